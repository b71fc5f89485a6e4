package main

// End-to-end tests of mail programs that misbehave.

import (
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestMailProgramLeavingAChildBehind(t *testing.T) {
	f := filepath.Join(t.TempDir(), "f")
	writeFile(t, f, "x")
	r := newRun(t, f+"\n")
	children := filepath.Join(r.dir, "children")
	// It leaves a child holding its output pipe, then hands the message to
	// the recording mail program.
	forking := r.writeScript("forkmail", fmt.Sprintf(`#!/bin/sh
sleep 100000 &
echo $! >> %s
exec %s "$@"
`, children, filepath.Join(r.dir, "mail")))
	r.start("-mail", forking)
	appendFile(t, f, "!")
	r.waitReport(f, "change")
	if code := r.stop(syscall.SIGTERM); code != 0 {
		t.Errorf("exit status after SIGTERM = %d, want 0; stderr:\n%s", code, r.stderr.String())
	}
	if strings.Contains(r.stderr.String(), "could not mail") {
		t.Errorf("a mail program that exited 0 counted as failed:\n%s", r.stderr.String())
	}
	left := readPids(t, children)
	if len(left) == 0 {
		t.Fatal("the mail program recorded no child")
	}
	checkGone(t, "a child of the mail program", left)
}

// A mail program that hangs: famids still reports (on standard error),
// stops within 10 s of SIGTERM, and the change whose report could not be
// delivered is found again at the next start.
func TestMailProgramThatHangs(t *testing.T) {
	f := filepath.Join(t.TempDir(), "f")
	writeFile(t, f, "x")
	r := newRun(t, f+"\n")
	hang := r.writeScript("hangmail", "#!/bin/sh\nexec sleep 100000\n")
	r.start("-mail", hang)
	appendFile(t, f, "!")
	time.Sleep(500 * time.Millisecond) // the report is in the mail program's hands
	start := time.Now()
	if code := r.stop(syscall.SIGTERM); code != 0 {
		t.Errorf("exit status %d", code)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("famids took %v to stop", took)
	}
	if !strings.Contains(r.stderr.String(), "Possible intrusion:\nPathname: "+f+"\nEvent: change\n") {
		t.Errorf("the undelivered report is not on standard error:\n%s", r.stderr.String())
	}
	// Next start, with a mail program that works: the change again.
	r.restart()
	m := r.waitReport(f, "change")
	if field(m.Body, "Found") != foundAtStart {
		t.Errorf("the change was not found again:\n%s", m.Body)
	}
}

// A mail program that cannot be run is said at start-up, not at the first
// report.
func TestMailProgramMissingAtStart(t *testing.T) {
	f := filepath.Join(t.TempDir(), "f")
	writeFile(t, f, "x")
	r := newRun(t, f+"\n")
	r.start("-mail", filepath.Join(r.dir, "no-such-mail"))
	if !strings.Contains(r.stderr.String(), "-mail") || !strings.Contains(r.stderr.String(), "no-such-mail") {
		t.Errorf("standard error at start-up does not say the mail program is missing:\n%s", r.stderr.String())
	}
}
