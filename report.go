package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/syslog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Mail subjects, as the Perl script sent them, and one for famids's own news.
const (
	subjectReport = "famids report"
	subjectAction = "famids action report"
	subjectNotice = "famids notice"
)

// attrs are what famids records of a path. The zero value, with Exists
// false, stands for a path that does not exist.
type attrs struct {
	Exists bool      `json:"exists"`
	Type   string    `json:"type,omitempty"`
	Mode   uint32    `json:"mode,omitempty"` // permission bits with setuid, setgid and sticky
	UID    uint32    `json:"uid,omitempty"`
	GID    uint32    `json:"gid,omitempty"`
	Size   int64     `json:"size,omitempty"`
	Mtime  time.Time `json:"mtime,omitzero"`
	Inode  uint64    `json:"inode,omitempty"`
	Links  uint64    `json:"links,omitempty"`
	SHA256 string    `json:"sha256,omitempty"` // regular files only

	// Not reported: they tell whether a file may have changed since it
	// was hashed, for only the kernel sets a ctime.
	Dev   uint64    `json:"dev,omitempty"`
	Ctime time.Time `json:"ctime,omitzero"`
}

// statPath returns the attributes of path, following symbolic links; a
// dangling link is described as the link itself.
func statPath(path string) attrs {
	return restat(path, attrs{})
}

// restat is statPath, but when stat says the file is the one prev was
// recorded of, unchanged since (same device, inode, size, mtime and ctime),
// it takes prev's hash instead of reading the file again.
func restat(path string, prev attrs) attrs {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		if err := unix.Lstat(path, &st); err != nil {
			return attrs{}
		}
	}
	a := attrs{
		Exists: true,
		Type:   fileType(st.Mode),
		Mode:   st.Mode & 07777,
		UID:    st.Uid,
		GID:    st.Gid,
		Size:   st.Size,
		Mtime:  time.Unix(st.Mtim.Sec, st.Mtim.Nsec).UTC(),
		Inode:  st.Ino,
		Links:  uint64(st.Nlink),
		Dev:    st.Dev,
		Ctime:  time.Unix(st.Ctim.Sec, st.Ctim.Nsec).UTC(),
	}
	if a.Type != "file" {
		return a
	}
	if prev.SHA256 != "" && prev.Type == "file" && prev.Dev == a.Dev && prev.Inode == a.Inode &&
		prev.Size == a.Size && prev.Mtime.Equal(a.Mtime) && prev.Ctime.Equal(a.Ctime) {
		a.SHA256 = prev.SHA256
	} else {
		a.SHA256 = hashFile(path, a.Size)
	}
	return a
}

func fileType(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFREG:
		return "file"
	case unix.S_IFDIR:
		return "dir"
	case unix.S_IFLNK:
		return "symlink"
	case unix.S_IFIFO:
		return "fifo"
	case unix.S_IFSOCK:
		return "socket"
	case unix.S_IFCHR:
		return "chardev"
	case unix.S_IFBLK:
		return "blockdev"
	}
	return "unknown"
}

// hashBuffers are the read buffers of hashFile, which runs on every CPU
// at start-up.
var hashBuffers = sync.Pool{New: func() any { return new([64 << 10]byte) }}

// hashFile returns the hex SHA-256 of the file's first size bytes, as
// stat saw it (all of it, unless it grew since), or a word saying why there
// is none. O_NONBLOCK keeps a FIFO swapped in meanwhile from blocking the
// open. It uses the system calls directly: an os.File would cost an epoll
// registration attempt and a finalizer per file.
func hashFile(path string, size int64) string {
	const flags = unix.O_RDONLY | unix.O_NONBLOCK | unix.O_CLOEXEC
	fd, err := unix.Open(path, flags|unix.O_NOFOLLOW, 0)
	if err == unix.ELOOP { // path names a symbolic link
		fd, err = unix.Open(path, flags, 0)
	}
	if err != nil {
		return "unreadable"
	}
	defer unix.Close(fd)
	buf := hashBuffers.Get().(*[64 << 10]byte)
	defer hashBuffers.Put(buf)
	h := sha256.New()
	for left := size; left > 0; {
		n, err := unix.Read(fd, buf[:min(left, int64(len(buf)))])
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return "unreadable"
		case n == 0:
			left = 0 // it shrank
		}
		h.Write(buf[:n])
		left -= int64(n)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// same reports whether a and b record the same: their times may differ in
// representation (read from the state file or from stat), not in value.
func (a attrs) same(b attrs) bool {
	return a.Mtime.Equal(b.Mtime) && a.Ctime.Equal(b.Ctime) &&
		a.Exists == b.Exists && a.Type == b.Type && a.Mode == b.Mode && a.UID == b.UID && a.GID == b.GID &&
		a.Size == b.Size && a.Inode == b.Inode && a.Links == b.Links && a.SHA256 == b.SHA256 && a.Dev == b.Dev
}

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
	mode := strconv.FormatUint(uint64(a.Mode), 8)
	for range 4 - len(mode) {
		b = append(b, '0')
	}
	b = append(b, mode...)
	b = appendField(b, " uid=", uint64(a.UID))
	b = appendField(b, " gid=", uint64(a.GID))
	b = append(b, " size="...)
	b = strconv.AppendInt(b, a.Size, 10)
	b = append(b, " mtime="...)
	b = a.Mtime.UTC().AppendFormat(b, "2006-01-02T15:04:05.000000000Z")
	b = appendField(b, " inode=", a.Inode)
	b = appendField(b, " links=", a.Links)
	if a.SHA256 != "" {
		b = append(b, " sha256="...)
		b = append(b, a.SHA256...)
	}
	return b
}

func appendField(b []byte, key string, n uint64) []byte {
	return strconv.AppendUint(append(b, key...), n, 10)
}

// differs names the attributes in which before and after differ. For a
// directory, what its entries change (mtime, size, links) is left out: the
// entries are reported on their own.
func differs(before, after attrs) []string {
	if before.Exists != after.Exists {
		return []string{"existence"}
	}
	if !before.Exists {
		return nil
	}
	dir := before.Type == "dir" && after.Type == "dir"
	var d []string
	add := func(name string, differ bool) {
		if differ {
			d = append(d, name)
		}
	}
	add("type", before.Type != after.Type)
	add("mode", before.Mode != after.Mode)
	add("uid", before.UID != after.UID)
	add("gid", before.GID != after.GID)
	add("size", before.Size != after.Size && !dir)
	add("mtime", !before.Mtime.Equal(after.Mtime) && !dir)
	add("inode", before.Inode != after.Inode)
	add("links", before.Links != after.Links && !dir)
	add("sha256", before.SHA256 != after.SHA256)
	return d
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
	if r.Found != "" {
		line("Found: ", r.Found)
	}
	b = append(r.Before.appendTo(append(b, "Before: "...)), '\n')
	b = append(r.After.appendTo(append(b, "After: "...)), '\n')
	d := differs(r.Before, r.After)
	if len(d) == 0 {
		d = []string{"nothing"}
	}
	line("Differs: ", strings.Join(d, " "))
	return string(b)
}

// summary is the report on one line, for syslog.
func (r *report) summary() string {
	d := differs(r.Before, r.After)
	if len(d) == 0 {
		d = []string{"nothing"}
	}
	s := fmt.Sprintf("%s: %s; differs: %s", quoteIfNeeded(r.Path), strings.Join(r.Events, ", "), strings.Join(d, " "))
	if r.Found != "" {
		s += "; found " + r.Found
	}
	return s
}

// dialSyslog connects to the system logger, or to the socket named by
// $FAMIDS_SYSLOG_SOCKET (for tests).
func dialSyslog() (*syslog.Writer, error) {
	const prio = syslog.LOG_AUTHPRIV | syslog.LOG_WARNING
	if sock := os.Getenv("FAMIDS_SYSLOG_SOCKET"); sock != "" {
		return syslog.Dial("unixgram", sock, prio, "famids")
	}
	return syslog.New(prio, "famids")
}

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

// A message is one mail: a report, an action report or a notice.
type message struct {
	Subject string
	Body    string
}

// A mailer delivers messages one at a time, in order, from its own
// goroutine, so that a slow mail program never holds up the watching.
type mailer struct {
	argv    []string  // the mail program; nil prints on out instead
	to      string    // the recipient
	out     io.Writer // for -stdout
	errOut  io.Writer // where undeliverable messages end up, whole
	retries []time.Duration
	timeout time.Duration // for one run of the mail program

	queue    chan message
	done     chan struct{}
	hurried  atomic.Bool  // stopping: no more waiting between tries
	pending  atomic.Int64 // messages queued or being delivered
	closing  sync.Once
	printing sync.Mutex // for -stdout: one message at a time
}

func newMailer(argv []string, to string, out, errOut io.Writer) *mailer {
	m := &mailer{
		argv:    argv,
		to:      to,
		out:     out,
		errOut:  errOut,
		retries: []time.Duration{time.Second, 3 * time.Second},
		timeout: 2 * time.Minute,
		queue:   make(chan message, 1024),
		done:    make(chan struct{}),
	}
	go m.run()
	return m
}

// send queues a message.
func (m *mailer) send(subject, body string) {
	if m.argv == nil {
		// Printing is quick: no need to keep famids waiting for it.
		m.printing.Lock()
		defer m.printing.Unlock()
		msg := make([]byte, 0, len("Subject: \n\n")+len(subject)+len(body))
		msg = append(append(append(append(msg, "Subject: "...), subject...), '\n'), body...)
		m.out.Write(append(msg, '\n')) // one write, so that lines of two messages never mix
		return
	}
	m.pending.Add(1)
	m.queue <- message{subject, body}
}

// idle reports whether every message sent so far is delivered, or written
// to errOut.
func (m *mailer) idle() bool {
	return m.pending.Load() == 0
}

// close delivers what is queued, trying each message once more at most,
// and returns when all is delivered or written to errOut. Calling it
// again does nothing.
func (m *mailer) close() {
	m.closing.Do(func() {
		m.hurried.Store(true)
		close(m.queue)
		<-m.done
	})
}

func (m *mailer) run() {
	defer close(m.done)
	for msg := range m.queue {
		m.deliver(msg)
		m.pending.Add(-1)
	}
}

// deliver mails msg, trying again after each delay in m.retries; a message
// that cannot be mailed is written whole to errOut.
func (m *mailer) deliver(msg message) {
	for try := 0; ; try++ {
		err := m.mailOnce(msg)
		if err == nil {
			return
		}
		if try == len(m.retries) || m.hurried.Load() {
			fmt.Fprintf(m.errOut, "famids: could not mail this message to %s: %v\nSubject: %s\n%s\n", m.to, err, msg.Subject, msg.Body)
			return
		}
		fmt.Fprintf(m.errOut, "famids: mail to %s: %v; trying again in %v\n", m.to, err, m.retries[try])
		time.Sleep(m.retries[try])
	}
}

// mailOnce runs the mail program as MAIL -s SUBJECT ADDR, with the body on
// its standard input and no shell in between.
func (m *mailer) mailOnce(msg message) error {
	ctx, cancel := context.WithTimeout(context.Background(), m.timeout)
	defer cancel()
	args := append(append([]string(nil), m.argv[1:]...), "-s", msg.Subject, m.to)
	cmd := exec.CommandContext(ctx, m.argv[0], args...)
	cmd.Stdin = strings.NewReader(msg.Body)
	out, err := cmd.CombinedOutput()
	if err != nil {
		if s := strings.TrimSpace(string(out)); s != "" {
			err = fmt.Errorf("%w: %s", err, s)
		}
		return fmt.Errorf("%s: %w", m.argv[0], err)
	}
	return nil
}
