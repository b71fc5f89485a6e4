package main

// Floods: a hundred thousand files created in a watched directory must
// not become a hundred thousand mails, nor as many runs of an action, nor
// bury the report of another line. The reports that come through one line
// of the configuration are mailed one by one up to -max-mails a minute;
// past that, that line's reports of the rest of the minute fold into one
// digest, sent when the minute ends, while the other lines' reports go out
// on their own. famids's notices are counted and folded the same way, as
// a line of their own. Nothing is dropped: every report is in a mail,
// alone or in a digest.

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// A folded report is what a digest keeps of it: its line, not its
// records, for a flood may fold a hundred thousand. The line is its path
// and the rest, which the reports of a flood share: kept once.
type folded struct {
	path string
	rest string // of the line, after "PATH: "
}

// maxShared is how many different rests of lines a minute keeps once
// each: past that, each is kept as it comes.
const maxShared = 1024

// A flood keeps a minute for each configuration line a report comes
// through, and one for famids's own notices: a line whose files are
// flooded folds its own reports, and every other line's report still
// goes out on its own, at once.
type flood struct {
	limit int                // -max-mails, for each line
	lines map[string]*minute // by the line's path; noticeLine for famids's notices
}

// noticeLine is the minute of famids's own notices: no line of the
// configuration has an empty path.
const noticeLine = ""

// A minute counts the messages of one line in the current minute, and
// holds those folded into its digest.
type minute struct {
	start   time.Time // when the minute began
	sent    int       // messages sent one by one in it
	reports []folded  // folded
	events  []string  // of the first report folded
	shared  map[string]string
	actions map[string]*trigger
	order   []string // of actions, as first folded
	notices []string // the notices folded, whole
}

// A digest is what a minute folded: the body of a digest of reports,
// with their paths and their actions, or of a digest of notices.
type digest struct {
	reports string
	paths   []string
	actions []trigger
	notices string
}

func newFlood(limit int) *flood {
	return &flood{limit: limit, lines: make(map[string]*minute)}
}

// allow reports whether a message that comes through lines may go out on
// its own now, counting it against each of them: it may when one of
// them has sent fewer than -max-mails this minute and folds nothing.
// False means it is to be folded.
func (f *flood) allow(lines []string, now time.Time) bool {
	ok := false
	for _, l := range lines {
		if m := f.minuteOf(l, now); m.sent < f.limit && !m.holding() {
			ok = true
		}
	}
	if ok {
		for _, l := range lines {
			f.lines[l].sent++
		}
	}
	return ok
}

// minuteOf returns the minute of line as of now, a new one once the last
// has ended with nothing folded.
func (f *flood) minuteOf(line string, now time.Time) *minute {
	m := f.lines[line]
	if m == nil || now.Sub(m.start) >= time.Minute && !m.holding() {
		m = &minute{start: now}
		f.lines[line] = m
	}
	return m
}

// holding reports whether messages are folded, waiting for the minute's
// end.
func (m *minute) holding() bool { return len(m.reports) > 0 || len(m.notices) > 0 }

// due returns when the first digest goes out, or zero when nothing is
// folded.
func (f *flood) due() time.Time {
	var due time.Time
	for _, m := range f.lines {
		if m.holding() {
			due = earliest(due, m.start.Add(time.Minute))
		}
	}
	return due
}

// foldReport folds r, which came through lines, and the actions its
// entries run, into the digest of the first of lines.
func (f *flood) foldReport(r *report, lines []string, actions []string) {
	m := f.lines[lines[0]]
	if len(m.reports) == 0 {
		m.events, m.shared = r.Events, make(map[string]string)
	}
	m.reports = append(m.reports, folded{r.Path, m.share(r.summaryRest())})
	if m.actions == nil {
		m.actions = make(map[string]*trigger)
	}
	for _, a := range actions {
		t := m.actions[a]
		if t == nil {
			t = &trigger{action: a}
			m.actions[a] = t
			m.order = append(m.order, a)
		}
		t.paths = appendNew(t.paths, r.Path)
		t.events = appendNew(t.events, r.Events...)
		if t.by == nil {
			t.by = byEnv(r.By)
		}
	}
}

// share returns rest, kept once in m.
func (m *minute) share(rest string) string {
	if kept, ok := m.shared[rest]; ok {
		return kept
	}
	if len(m.shared) < maxShared {
		m.shared[rest] = rest
	}
	return rest
}

// foldNotice folds a notice, its body, into the digest of notices.
func (f *flood) foldNotice(body string) {
	m := f.lines[noticeLine]
	m.notices = append(m.notices, body)
}

// digests returns the digests of the minutes ended by now, or of all
// with all, and forgets those minutes: the next message of their line
// begins a new one.
func (f *flood) digests(now time.Time, all bool) []digest {
	var ds []digest
	for l, m := range f.lines {
		switch {
		case m.holding() && (all || !now.Before(m.start.Add(time.Minute))):
			ds = append(ds, m.digest())
			delete(f.lines, l)
		case !m.holding() && now.Sub(m.start) >= time.Minute:
			delete(f.lines, l) // a quiet line keeps no minute
		}
	}
	return ds
}

// digest returns what m folded.
func (m *minute) digest() digest {
	var d digest
	if len(m.reports) > 0 {
		d.reports = reportDigest(m.reports, m.events)
		for _, r := range m.reports {
			d.paths = append(d.paths, r.path)
		}
		for _, a := range m.order {
			d.actions = append(d.actions, *m.actions[a])
		}
	}
	if len(m.notices) > 0 {
		d.notices = noticeDigest(m.notices)
	}
	return d
}

// reportDigest is the body of a digest of reports: the first three lines
// of a report on the first path folded, so that whoever reads only those
// is told, then how many were folded, then one line for each.
func reportDigest(rs []folded, events []string) string {
	var b strings.Builder
	n := 0
	for _, r := range rs {
		n += len(r.path) + len(r.rest) + 8
	}
	b.Grow(n + 256)
	b.WriteString("Possible intrusion:\n")
	b.WriteString("Pathname: " + quoteIfNeeded(rs[0].path) + "\n")
	b.WriteString("Event: " + strings.Join(events, ", ") + "\n")
	b.WriteString("Folded: " + strconv.Itoa(len(rs)) + " reports (more than -max-mails a minute)\n")
	for _, r := range rs {
		b.WriteString(quoteSummarized(r.path))
		b.WriteString(": ")
		b.WriteString(r.rest)
		b.WriteByte('\n')
	}
	return b.String()
}

// noticeDigest is the body of a digest of notices: a summary, then each
// notice folded, whole.
func noticeDigest(bodies []string) string {
	first, _, _ := strings.Cut(strings.TrimPrefix(bodies[0], "Notice: "), "\n")
	details := []string{fmt.Sprintf("Folded: %d notices (more than -max-mails a minute)", len(bodies))}
	for _, b := range bodies {
		details = append(details, "", b)
	}
	return noticeBody(fmt.Sprintf("%d notices folded, the first: %s", len(bodies), first), details...)
}
