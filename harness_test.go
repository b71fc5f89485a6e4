package main

// The end-to-end harness: tests build the real famids binary once, run it
// on real files with a recording mail program, and read what root would
// receive.

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// famidsBin is the binary the end-to-end tests run.
var famidsBin string

func TestMain(m *testing.M) {
	os.Exit(buildAndRun(m))
}

func buildAndRun(m *testing.M) int {
	dir, err := os.MkdirTemp("", "famids-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	famidsBin = filepath.Join(dir, "famids")
	args := []string{"build", "-o", famidsBin}
	if raceEnabled {
		args = append(args, "-race") // the daemon's races fail the tests too
	}
	if out, err := exec.Command("go", append(args, ".")...).CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// waitFor is how long a test waits for something famids should do at once.
const waitFor = 10 * time.Second

// recorderScript is a mail program that stores each message it is given,
// with its arguments, as one file.
const recorderScript = `#!/bin/sh
tmp="$MAILDIR/.tmp.$$"
{ for a in "$@"; do printf 'arg: %s\n' "$a"; done; echo; cat; } > "$tmp"
mv "$tmp" "$MAILDIR/msg.$(date +%s%N).$$"
`

// A famidsRun is one famids process under test.
type famidsRun struct {
	t       *testing.T
	dir     string // scratch directory: the configuration, the mail program
	conf    string
	mailDir string
	state   string   // the -state file, kept across restarts of this run
	env     []string // added to famids's environment
	wrap    []string // a command that runs famids, given famids's argv after its own
	cmd     *exec.Cmd
	stdout  syncBuffer
	stderr  syncBuffer
	exited  chan struct{}
	exit    *os.ProcessState
}

// A mail is one message famids handed to the mail program.
type mail struct {
	Args    []string
	Subject string
	To      string
	Body    string
}

func (m mail) String() string {
	return fmt.Sprintf("To: %s\nSubject: %s\n%s", m.To, m.Subject, m.Body)
}

// startFamids writes conf and starts famids on it with a recording mail
// program, waiting until famids says it is ready. Extra args come after the
// defaults, so they override them.
func startFamids(t *testing.T, conf string, args ...string) *famidsRun {
	t.Helper()
	r := newRun(t, conf)
	r.start(args...)
	return r
}

// startOnFile starts famids watching a new file, holding "x", and returns
// the run and the file's path.
func startOnFile(t *testing.T, args ...string) (*famidsRun, string) {
	t.Helper()
	f := filepath.Join(t.TempDir(), "f")
	writeFile(t, f, "x")
	return startFamids(t, f+"\n", args...), f
}

// newRun prepares a scratch directory with the configuration and the
// recording mail program, without starting famids.
func newRun(t *testing.T, conf string) *famidsRun {
	t.Helper()
	dir := t.TempDir()
	r := &famidsRun{t: t, dir: dir, conf: filepath.Join(dir, "famids.conf"), mailDir: filepath.Join(dir, "mailbox"), state: filepath.Join(dir, "state", "state.json")}
	must(t, os.Mkdir(r.mailDir, 0o755))
	must(t, os.WriteFile(r.conf, []byte(conf), 0o600))
	r.writeScript("mail", recorderScript)
	return r
}

// writeScript writes an executable shell script into the scratch directory
// and returns its path.
func (r *famidsRun) writeScript(name, text string) string {
	p := filepath.Join(r.dir, name)
	must(r.t, os.WriteFile(p, []byte(text), 0o755))
	return p
}

func (r *famidsRun) start(args ...string) {
	t := r.t
	t.Helper()
	sock := filepath.Join(r.dir, "notify.sock")
	os.Remove(sock) // left by an earlier start of this run
	ready, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	must(t, err)
	defer ready.Close()
	all := append([]string{"-config", r.conf, "-mail", filepath.Join(r.dir, "mail"), "-notify", "admin@example.org", "-settle", "150ms", "-state", r.state}, args...)
	argv := append(append(slices.Clone(r.wrap), famidsBin), all...)
	r.cmd = exec.Command(argv[0], argv[1:]...)
	r.cmd.Env = append(os.Environ(), "MAILDIR="+r.mailDir, "NOTIFY_SOCKET="+sock, "GORACE=halt_on_error=1 atexit_sleep_ms=0")
	r.cmd.Env = append(r.cmd.Env, r.env...)
	r.cmd.Stdout, r.cmd.Stderr = &r.stdout, &r.stderr
	must(t, r.cmd.Start())
	r.exited = make(chan struct{})
	go func() {
		r.cmd.Wait()
		r.exit = r.cmd.ProcessState
		close(r.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-r.exited:
		default:
			r.cmd.Process.Kill()
			<-r.exited
		}
		if strings.Contains(r.stderr.String(), "DATA RACE") {
			t.Errorf("famids reported a data race:\n%s", r.stderr.String())
		}
	})
	ready.SetReadDeadline(time.Now().Add(waitFor))
	buf := make([]byte, 64)
	n, _, err := ready.ReadFromUnix(buf)
	if err != nil || string(buf[:n]) != "READY=1" {
		t.Fatalf("famids did not get ready (%v, %q); stderr:\n%s", err, buf[:n], r.stderr.String())
	}
}

// stop sends sig and returns famids's exit status.
func (r *famidsRun) stop(sig syscall.Signal) int {
	r.t.Helper()
	r.cmd.Process.Signal(sig)
	return r.wait()
}

// wait returns famids's exit status once it has exited by itself.
func (r *famidsRun) wait() int {
	r.t.Helper()
	select {
	case <-r.exited:
	case <-time.After(waitFor):
		r.t.Fatalf("famids did not exit within %v; stderr:\n%s", waitFor, r.stderr.String())
	}
	return r.exit.ExitCode()
}

// mails returns every message delivered so far, oldest first.
func (r *famidsRun) mails() []mail {
	r.t.Helper()
	names, err := filepath.Glob(filepath.Join(r.mailDir, "msg.*"))
	must(r.t, err)
	sort.Strings(names)
	var out []mail
	for _, n := range names {
		data, err := os.ReadFile(n)
		must(r.t, err)
		head, body, _ := strings.Cut(string(data), "\n\n")
		m := mail{Body: body}
		for _, line := range strings.Split(head, "\n") {
			m.Args = append(m.Args, strings.TrimPrefix(line, "arg: "))
		}
		if len(m.Args) == 3 && m.Args[0] == "-s" {
			m.Subject, m.To = m.Args[1], m.Args[2]
		}
		out = append(out, m)
	}
	return out
}

// waitMail waits for a message for which match is true and returns it.
func (r *famidsRun) waitMail(what string, match func(mail) bool) mail {
	r.t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		for _, m := range r.mails() {
			if match(m) {
				return m
			}
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("no %s within %v; mails:\n%s\nstderr:\n%s", what, waitFor, r.dump(), r.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitReport waits for the report on path whose Event line is event.
func (r *famidsRun) waitReport(path string, events ...string) mail {
	r.t.Helper()
	return r.waitMail(fmt.Sprintf("report %q on %s", strings.Join(events, `" or "`), path), func(m mail) bool {
		if m.Subject != subjectReport {
			return false
		}
		for _, ev := range events {
			if strings.HasPrefix(m.Body, reportHead(path, ev)) {
				return true
			}
		}
		return false
	})
}

// waitNotice waits for the notice whose summary starts with prefix.
func (r *famidsRun) waitNotice(prefix string) mail {
	r.t.Helper()
	return r.waitMail(fmt.Sprintf("notice %q", prefix), func(m mail) bool {
		return m.Subject == subjectNotice && strings.HasPrefix(m.Body, "Notice: "+prefix)
	})
}

// waitReports waits for n reports in all and returns them.
func (r *famidsRun) waitReports(n int) []mail {
	r.t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		reports := r.reports()
		if len(reports) >= n {
			return reports
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("%d reports within %v, want %d; mails:\n%s", len(reports), waitFor, n, r.dump())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// reports returns the "famids report" messages delivered so far.
func (r *famidsRun) reports() []mail {
	var out []mail
	for _, m := range r.mails() {
		if m.Subject == subjectReport {
			out = append(out, m)
		}
	}
	return out
}

func (r *famidsRun) dump() string {
	var b strings.Builder
	for _, m := range r.mails() {
		fmt.Fprintf(&b, "----\n%s", m)
	}
	return b.String()
}

// reportHead is the first three lines of a report, as the Perl script
// wrote them.
func reportHead(path, event string) string {
	return fmt.Sprintf("Possible intrusion:\nPathname: %s\nEvent: %s\n", path, event)
}

// field returns the value of the line "key: value" in body.
func field(body, key string) string {
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, key+": "); ok {
			return v
		}
	}
	return ""
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// A syncBuffer is a bytes.Buffer safe for a process to write while the test
// reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
