package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Mail subjects, as the Perl script sent them, and one for famids's own news.
const (
	subjectReport = "famids report"
	subjectAction = "famids action report"
	subjectNotice = "famids notice"
)

func (a attrs) String() string {
	return string(a.appendTo(nil))
}

// appendTo appends the description of a to b. Reports are built with
// appends rather than fmt: a report is written the moment famids wakes up
// for an event, when every instruction counts.
func (a attrs) appendTo(b []byte) []byte {
	if !a.Exists {
		return append(b, "absent"...)
	}
	b = append(b, "type="...)
	b = append(b, a.Type...)
	b = append(b, " mode="...)
	for shift := 9; shift >= 0; shift -= 3 {
		b = append(b, byte('0'+a.Mode>>shift&7))
	}
	b = appendField(b, " uid=", uint64(a.UID))
	b = appendField(b, " gid=", uint64(a.GID))
	b = append(b, " size="...)
	b = strconv.AppendInt(b, a.Size, 10)
	b = appendTime(b, " mtime=", a.Mtime)
	b = appendTime(b, " ctime=", a.Ctime)
	b = appendField(b, " inode=", a.Inode)
	b = appendField(b, " links=", a.Links)
	if a.Type == "chardev" || a.Type == "blockdev" {
		b = appendField(append(appendField(b, " rdev=", uint64(unix.Major(a.Rdev))), ':'), "", uint64(unix.Minor(a.Rdev)))
	}
	if a.SHA256 != "" {
		b = append(b, " sha256="...)
		b = append(b, a.SHA256...)
	}
	if a.Flags != 0 {
		b = appendText(b, " flags=", flagLetters(a.Flags))
	}
	if x := a.Ext; x != nil {
		b = appendText(b, " link=", x.Link)
		b = appendText(b, " link_owner=", x.LinkOwner)
		b = appendText(b, " link_xattrs=", x.LinkXattrs)
		b = appendText(b, " realpath=", x.Real)
		b = appendText(b, " caps=", x.Caps)
		b = appendText(b, " acl=", x.ACL)
		b = appendText(b, " default_acl=", x.DefaultACL)
		b = appendText(b, " selinux=", x.SELinux)
		b = appendText(b, " xattrs=", x.Xattrs)
	}
	return b
}

// appendTime appends key and t in UTC, with nanoseconds:
// 2006-01-02T15:04:05.000000000Z. It is written digit by digit: time's
// own formatting parses its layout at each call, and a report holds four.
func appendTime(b []byte, key string, t time.Time) []byte {
	t = t.UTC()
	year, month, day := t.Date()
	b = append(b, key...)
	if year < 0 || year > 9999 {
		return t.AppendFormat(b, "2006-01-02T15:04:05.000000000Z07:00") // a time set to mislead
	}
	hour, minute, sec := t.Clock()
	b = appendDigits(b, year, 4)
	b = appendDigits(append(b, '-'), int(month), 2)
	b = appendDigits(append(b, '-'), day, 2)
	b = appendDigits(append(b, 'T'), hour, 2)
	b = appendDigits(append(b, ':'), minute, 2)
	b = appendDigits(append(b, ':'), sec, 2)
	b = appendDigits(append(b, '.'), t.Nanosecond(), 9)
	return append(b, 'Z')
}

// appendDigits appends n, which must not be negative, in at least width
// decimal digits.
func appendDigits(b []byte, n, width int) []byte {
	var digits [20]byte
	i := len(digits)
	for n >= 10 || width > 1 {
		i--
		digits[i] = byte('0' + n%10)
		n /= 10
		width--
	}
	i--
	digits[i] = byte('0' + n)
	return append(b, digits[i:]...)
}

// appendText appends key and value, unless value is empty. A value that
// holds a space, or anything quoteIfNeeded quotes, is Go-quoted, so that
// it cannot be mistaken for the next attribute or forge a line.
func appendText(b []byte, key, value string) []byte {
	if value == "" {
		return b
	}
	b = append(b, key...)
	if strings.IndexByte(value, ' ') >= 0 {
		return strconv.AppendQuote(b, value)
	}
	return append(b, quoteIfNeeded(value)...)
}

func appendField(b []byte, key string, n uint64) []byte {
	return strconv.AppendUint(append(b, key...), n, 10)
}

// A report is one "Possible intrusion" message.
type report struct {
	Path   string
	Events []string // FAM event names, in the order seen
	Host   string
	Time   time.Time
	Found  string // how it was found when not from an event: "at start-up", ...
	Before attrs
	After  attrs
	By     []process // who made the changes, when famids could tell
	ByMore int       // processes past those
	// ByUnknown says that famids could have told who made the change,
	// and cannot (see the README, "Who made the change"); Unmarked, why,
	// when fanotify refused to mark the path's inode.
	ByUnknown bool
	Unmarked  string
}

func (r *report) body() string {
	b := make([]byte, 0, 512)
	line := func(key, value string) {
		b = append(b, key...)
		b = append(b, value...)
		b = append(b, '\n')
	}
	b = append(b, "Possible intrusion:\n"...)
	line("Pathname: ", quoteIfNeeded(r.Path))
	line("Event: ", strings.Join(r.Events, ", "))
	line("Host: ", r.Host)
	b = append(b, "Time: "...)
	b = append(r.Time.UTC().AppendFormat(b, time.RFC3339), '\n')
	for _, p := range r.By {
		b = append(appendBy(append(b, "By: "...), p), '\n')
	}
	if r.ByMore > 0 {
		b = append(strconv.AppendInt(append(b, "By: ... and "...), int64(r.ByMore), 10), " more\n"...)
	}
	switch {
	case r.ByUnknown && r.Unmarked != "":
		b = append(b, "By: unknown (fanotify cannot mark this file: "...)
		b = append(b, quoteIfNeeded(r.Unmarked)...)
		b = append(b, ")\n"...)
	case r.ByUnknown:
		b = append(b, "By: unknown\n"...)
	}
	if r.Found != "" {
		line("Found: ", r.Found)
	}
	b = append(r.Before.appendTo(append(b, "Before: "...)), '\n')
	b = append(r.After.appendTo(append(b, "After: "...)), '\n')
	line("Differs: ", strings.Join(r.differs(), " "))
	return string(b)
}

// differs names what differs between Before and After, or "nothing".
func (r *report) differs() []string {
	d := differs(r.Before, r.After)
	if r.Found == "" {
		d = eventDiffers(r.Before, r.After)
	}
	if len(d) == 0 {
		return []string{"nothing"}
	}
	return d
}

// summary is the report on one line, for syslog.
func (r *report) summary() string { return quoteSummarized(r.Path) + ": " + r.summaryRest() }

// summaryRest is the summary after "PATH: ": what the reports of a flood
// share, so that a digest keeps it once.
func (r *report) summaryRest() string {
	s := fmt.Sprintf("%s; differs: %s", strings.Join(r.Events, ", "), strings.Join(r.differs(), " "))
	if r.Found != "" {
		s += "; found " + r.Found
	}
	if by := byline(r.By); by != "" {
		s += "; " + by
	} else if r.ByUnknown {
		s += "; by unknown"
	}
	return s
}

// quoteSummarized returns path as a report's summary shows it: Go-quoted
// when it holds anything quoteIfNeeded quotes, a colon or a semicolon
// followed by a space, or a leading quote, so that no name can pass for
// the fields after it (a digest's line, syslog, a resume's notice).
func quoteSummarized(path string) string {
	if strings.Contains(path, ": ") || strings.Contains(path, "; ") || strings.HasPrefix(path, `"`) {
		return strconv.Quote(path)
	}
	return quoteIfNeeded(path)
}

// A notice is famids's own news: what happened to famids, rather than
// to a watched path.
type notice struct {
	Summary string
	Details []string
}

func (n *notice) body() string { return noticeBody(n.Summary, n.Details...) }

// noticeBody formats famids's own news: a one-line summary, then details.
func noticeBody(summary string, details ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Notice: %s\n", summary)
	for _, d := range details {
		b.WriteString(d)
		if !strings.HasSuffix(d, "\n") {
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// quoteIfNeeded returns s, or s Go-quoted when it holds a control
// character, invalid UTF-8 or anything else Go would escape (a quote, a
// backslash, a line separator), so that no file name can forge a line of a
// report and a quoted name is never mistaken for a plain one.
func quoteIfNeeded(s string) string {
	plain := true // printable ASCII that Go leaves alone: the usual case
	for i := 0; i < len(s) && plain; i++ {
		plain = s[i] >= ' ' && s[i] <= '~' && s[i] != '"' && s[i] != '\\'
	}
	if plain {
		return s
	}
	if q := strconv.Quote(s); q[1:len(q)-1] != s {
		return q
	}
	return s
}
