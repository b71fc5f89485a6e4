package main

// Unit tests of the mailer, with real mail programs: shell scripts that
// hang, fail or leave a process behind.

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// sendBound is how long send may take: it only queues, but the race
// detector and a loaded machine slow everything down.
const sendBound = 50 * time.Millisecond

// mailScript writes an executable shell script into dir, which it finds in
// $dir, and returns its path.
func mailScript(t *testing.T, dir, text string) string {
	t.Helper()
	p := filepath.Join(dir, "mail")
	must(t, os.WriteFile(p, []byte("#!/bin/sh\ndir='"+dir+"'\n"+text), 0o755))
	return p
}

// timedSend sends a message and fails the test when send did not return
// at once, or at all.
func timedSend(t *testing.T, m *mailer, subject, body string) {
	t.Helper()
	took := make(chan time.Duration, 1)
	go func() {
		start := time.Now()
		m.send(subject, body)
		took <- time.Since(start)
	}()
	select {
	case d := <-took:
		if d > sendBound {
			t.Errorf("send took %v, want it to return at once", d)
		}
	case <-time.After(waitFor):
		t.Fatalf("send blocked for %v", waitFor)
	}
}

// waitUntil polls cond until it holds, failing the test after waitFor.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, waitFor)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// readPids returns the pids a script appended to file, one a line.
func readPids(t *testing.T, file string) []int {
	t.Helper()
	data, err := os.ReadFile(file)
	if os.IsNotExist(err) {
		return nil
	}
	must(t, err)
	var pids []int
	for _, f := range strings.Fields(string(data)) {
		pid, err := strconv.Atoi(f)
		if err != nil || pid <= 1 {
			t.Fatalf("%s holds %q", file, data)
		}
		pids = append(pids, pid)
	}
	return pids
}

// checkGone fails the test for each pid still running, and kills it.
func checkGone(t *testing.T, what string, pids []int) {
	t.Helper()
	for _, pid := range pids {
		if !processGone(pid, 2*time.Second) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Errorf("%s (pid %d) is still running", what, pid)
		}
	}
}

// undelivered is how a message that could not be mailed to root reads on
// errOut.
func undelivered(why, subject, body string) string {
	return fmt.Sprintf("famids: could not mail this message to root: %s\nSubject: %s\n%s\n", why, subject, body)
}

func TestMailerKillsHangingMailProgram(t *testing.T) {
	for _, tc := range []struct{ name, script string }{
		{"after reading its input", "cat >/dev/null\necho $$ >> $dir/pids\nexec sleep 1000\n"},
		{"never reading its input", "echo $$ >> $dir/pids\nexec sleep 1000\n"},
		{"waiting for its child", "cat >/dev/null\nsleep 1000 &\necho $! >> $dir/pids\nwait\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			prog := mailScript(t, dir, tc.script)
			var errOut syncBuffer
			m := newMailer([]string{prog}, "root", nil, &errOut)
			defer m.close(time.Now())
			m.timeout = 300 * time.Millisecond
			m.retries = []time.Duration{50 * time.Millisecond, 100 * time.Millisecond}
			body := "Possible intrusion:\nPathname: /bin/ls\nEvent: change\n"
			start := time.Now()
			timedSend(t, m, subjectReport, body)

			pids := filepath.Join(dir, "pids")
			waitUntil(t, "the first try", func() bool { return len(readPids(t, pids)) >= 1 })
			first := readPids(t, pids)[0]
			if !processGone(first, waitFor) {
				t.Fatalf("the first try (pid %d) was not killed", first)
			}
			if took := time.Since(start); took < m.timeout {
				t.Errorf("the first try was killed after %v, before its time-out of %v", took, m.timeout)
			}

			want := undelivered(prog+": killed after 300ms", subjectReport, body)
			waitUntil(t, "the message on errOut", func() bool { return strings.Contains(errOut.String(), want) })
			if got := strings.Count(errOut.String(), "; trying again in "); got != 2 {
				t.Errorf("%d retries announced, want 2:\n%s", got, errOut.String())
			}
			if tries := readPids(t, pids); len(tries) != 3 {
				t.Errorf("%d tries, want 3", len(tries))
			} else {
				checkGone(t, "a try of the hanging mail program", tries)
			}
			waitUntil(t, "idle", m.idle)
		})
	}
}

func TestMailerKillsWhatMailProgramLeavesBehind(t *testing.T) {
	dir := t.TempDir()
	// It takes the message, then leaves a child holding its output pipe.
	prog := mailScript(t, dir, `cat > $dir/body
sleep 100000 &
echo $! >> $dir/children
exit 0
`)
	var errOut syncBuffer
	m := newMailer([]string{prog}, "root", nil, &errOut)
	timedSend(t, m, subjectNotice, "Notice: one\n")
	start := time.Now()
	if got := m.close(time.Now().Add(waitFor)); got != nil {
		t.Errorf("close returned %d messages as not delivered, want none", len(got))
	}
	// The child holds the try for mailWaitDelay, not for its life.
	if took := time.Since(start); took > mailWaitDelay+2*time.Second {
		t.Errorf("close took %v: the child held the try", took)
	}
	if errOut.String() != "" {
		t.Errorf("a mail program that exited 0 made famids say:\n%s", errOut.String())
	}
	if data, _ := os.ReadFile(filepath.Join(dir, "body")); string(data) != "Notice: one\n" {
		t.Errorf("the mail program was given %q, want the message", data)
	}
	children := readPids(t, filepath.Join(dir, "children"))
	if len(children) != 1 {
		t.Fatalf("%d children recorded, want 1", len(children))
	}
	checkGone(t, "the mail program's child", children)
}

func TestMailerSparesDetachedDelivery(t *testing.T) {
	dir := t.TempDir()
	// It delivers in the background, as dma does: detached with setsid,
	// its standard input and output closed.
	prog := mailScript(t, dir, `cat > $dir/queued
setsid sh -c 'exec </dev/null >/dev/null 2>&1; sleep 0.5; mv "$0/queued" "$0/delivered"' "$dir" &
exit 0
`)
	var errOut syncBuffer
	m := newMailer([]string{prog}, "root", nil, &errOut)
	start := time.Now()
	timedSend(t, m, subjectReport, "Possible intrusion:\n")
	waitUntil(t, "the message handed over", m.idle)
	if took := time.Since(start); took >= mailWaitDelay {
		t.Errorf("the try took %v: it waited for the detached delivery", took)
	}
	m.close(time.Now().Add(waitFor))
	waitUntil(t, "the background delivery", func() bool {
		data, _ := os.ReadFile(filepath.Join(dir, "delivered"))
		return string(data) == "Possible intrusion:\n"
	})
	if errOut.String() != "" {
		t.Errorf("a mail program that exited 0 made famids say:\n%s", errOut.String())
	}
}

func TestMailerCloseMeetsItsDeadline(t *testing.T) {
	dir := t.TempDir()
	prog := mailScript(t, dir, "cat >/dev/null\necho $$ >> $dir/pids\nexec sleep 1000\n")
	var errOut syncBuffer
	m := newMailer([]string{prog}, "root", nil, &errOut)
	sent := []message{
		{Subject: subjectReport, Body: "Possible intrusion:\nPathname: /bin/ls\nEvent: change\n", Paths: []string{"/bin/ls"}},
		{Subject: subjectReport, Body: "Possible intrusion:\nPathname: /bin/ps\nEvent: delete\n", Paths: []string{"/bin/ps"}},
		{Subject: subjectNotice, Body: "Notice: reporting suspended\n"},
	}
	for _, msg := range sent {
		m.sendMessage(msg)
	}
	pids := filepath.Join(dir, "pids")
	waitUntil(t, "the first try", func() bool { return len(readPids(t, pids)) >= 1 })

	deadline := time.Now().Add(500 * time.Millisecond)
	got := m.close(deadline)
	if late := time.Since(deadline); late > time.Second {
		t.Errorf("close returned %v after its deadline", late)
	}
	if !slices.EqualFunc(got, sent, func(a, b message) bool {
		return a.Subject == b.Subject && a.Body == b.Body && slices.Equal(a.Paths, b.Paths)
	}) {
		t.Errorf("close returned %+v, want the three messages sent, in order", got)
	}
	stderr := errOut.String()
	if want := undelivered(prog+": killed: famids was stopping", sent[0].Subject, sent[0].Body); !strings.Contains(stderr, want) {
		t.Errorf("the message being tried is not on errOut whole:\n%s", stderr)
	}
	for _, msg := range sent[1:] {
		if want := undelivered("famids was stopping", msg.Subject, msg.Body); !strings.Contains(stderr, want) {
			t.Errorf("a waiting message is not on errOut whole:\n%s", stderr)
		}
	}
	checkGone(t, "the hanging mail program", readPids(t, pids))

	if again := m.close(time.Now().Add(time.Minute)); again != nil {
		t.Errorf("close again returned %+v, want nil", again)
	}
	timedSend(t, m, subjectNotice, "Notice: late\n")
	if want := undelivered("famids was stopping", subjectNotice, "Notice: late\n"); !strings.HasSuffix(errOut.String(), want) {
		t.Errorf("a message sent after close is not on errOut at once:\n%s", errOut.String())
	}
}

func TestMailerCloseTriesEachMessageOnce(t *testing.T) {
	dir := t.TempDir()
	prog := mailScript(t, dir, "cat >> $dir/tries\necho 'mail: no route' >&2\nexit 1\n")
	var errOut syncBuffer
	m := newMailer([]string{prog}, "root", nil, &errOut)
	m.sendMessage(message{Subject: subjectReport, Body: "one\n", Paths: []string{"/etc/passwd"}})
	m.send(subjectReport, "two\n")
	start := time.Now()
	got := m.close(time.Now().Add(waitFor))
	if took := time.Since(start); took > m.retries[0] {
		t.Errorf("close took %v: it waited to try again", took)
	}
	if len(got) != 2 || got[0].Body != "one\n" || got[1].Body != "two\n" || !slices.Equal(got[0].Paths, []string{"/etc/passwd"}) {
		t.Errorf("close returned %+v, want both messages", got)
	}
	// The first may have been tried once before close, and is tried once
	// more; the second is tried once.
	tries, _ := os.ReadFile(filepath.Join(dir, "tries"))
	if n := strings.Count(string(tries), "one\n"); n < 1 || n > 2 {
		t.Errorf("the first message was tried %d times, want 1 or 2", n)
	}
	if n := strings.Count(string(tries), "two\n"); n != 1 {
		t.Errorf("the second message was tried %d times, want once", n)
	}
	for _, body := range []string{"one\n", "two\n"} {
		if want := undelivered(prog+": exit status 1: mail: no route", subjectReport, body); !strings.Contains(errOut.String(), want) {
			t.Errorf("%q is not on errOut whole, with why:\n%s", body, errOut.String())
		}
	}
}

func TestMailerQueueIsCapped(t *testing.T) {
	dir := t.TempDir()
	prog := mailScript(t, dir, "cat >/dev/null\necho $$ >> $dir/pids\nexec sleep 1000\n")
	var errOut syncBuffer
	m := newMailer([]string{prog}, "root", nil, &errOut)
	m.maxQueue = 3
	timedSend(t, m, subjectReport, "being tried\n")
	pids := filepath.Join(dir, "pids")
	waitUntil(t, "the first try", func() bool { return len(readPids(t, pids)) >= 1 })
	for i := range 3 {
		timedSend(t, m, subjectReport, fmt.Sprintf("waiting %d\n", i))
	}
	if errOut.String() != "" {
		t.Errorf("a queue with room wrote on errOut:\n%s", errOut.String())
	}
	timedSend(t, m, subjectReport, "one too many\n")
	if want := undelivered("the mail queue is full (3 messages waiting)", subjectReport, "one too many\n"); errOut.String() != want {
		t.Errorf("errOut says:\n%s\nwant:\n%s", errOut.String(), want)
	}
	if m.idle() {
		t.Error("idle with four messages undelivered")
	}
	got := m.close(time.Now().Add(200 * time.Millisecond))
	if len(got) != 4 {
		t.Errorf("close returned %d messages, want the 4 queued ones", len(got))
	}
	checkGone(t, "the hanging mail program", readPids(t, pids))
}

// A writeRecorder records each write apart.
type writeRecorder struct {
	mu     sync.Mutex
	writes []string
}

func (w *writeRecorder) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writes = append(w.writes, string(p))
	return len(p), nil
}

func (w *writeRecorder) got() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.writes)
}

// A stalledWriter is a reader of standard output that stops reading: each
// write blocks until release is closed.
type stalledWriter struct {
	writeRecorder
	release chan struct{}
}

func (w *stalledWriter) Write(p []byte) (int, error) {
	<-w.release
	return w.writeRecorder.Write(p)
}

// printed is how a message reads on standard output with -stdout.
func printed(subject, body string) string {
	return "Subject: " + subject + "\n" + body + "\n"
}

func TestMailerStdoutPrintsInOrder(t *testing.T) {
	var out writeRecorder
	var errOut syncBuffer
	m := newMailer(nil, "root", &out, &errOut)
	var want []string
	for i := range 5 {
		body := fmt.Sprintf("Possible intrusion:\nPathname: /bin/%d\nEvent: change\n", i)
		timedSend(t, m, subjectReport, body)
		want = append(want, printed(subjectReport, body))
	}
	waitUntil(t, "five writes", func() bool { return len(out.got()) >= 5 })
	if got := out.got(); !slices.Equal(got, want) {
		t.Errorf("writes:\n%q\nwant one per message, in order:\n%q", got, want)
	}
	if got := m.close(time.Now().Add(waitFor)); got != nil || errOut.String() != "" {
		t.Errorf("close returned %+v, errOut %q: want nothing undelivered", got, errOut.String())
	}
}

func TestMailerStdoutStalledReader(t *testing.T) {
	out := &stalledWriter{release: make(chan struct{})}
	var errOut syncBuffer
	m := newMailer(nil, "root", out, &errOut)
	var want []string
	for i := range 100 {
		body := fmt.Sprintf("Notice: %d\n", i)
		timedSend(t, m, subjectNotice, body)
		want = append(want, printed(subjectNotice, body))
	}
	if m.idle() {
		t.Error("idle with a hundred messages not printed")
	}
	close(out.release)
	waitUntil(t, "every message printed", m.idle)
	if got := out.got(); !slices.Equal(got, want) {
		t.Errorf("writes once the reader is back:\n%q\nwant one per message, in order:\n%q", got, want)
	}
	m.close(time.Now().Add(waitFor))
}

func TestMailerStdoutStalledReaderAtClose(t *testing.T) {
	out := &stalledWriter{release: make(chan struct{})}
	defer close(out.release) // lets the mailer's goroutine go
	var errOut syncBuffer
	m := newMailer(nil, "root", out, &errOut)
	timedSend(t, m, subjectReport, "held\n")
	timedSend(t, m, subjectReport, "waiting\n")
	deadline := time.Now().Add(200 * time.Millisecond)
	got := m.close(deadline)
	if late := time.Since(deadline); late > time.Second {
		t.Errorf("close returned %v after its deadline", late)
	}
	if len(got) != 2 || got[0].Body != "held\n" || got[1].Body != "waiting\n" {
		t.Errorf("close returned %+v, want both messages", got)
	}
	for _, body := range []string{"held\n", "waiting\n"} {
		want := "famids: could not print this message: famids was stopping\n" + printed(subjectReport, body)
		if !strings.Contains(errOut.String(), want) {
			t.Errorf("%q is not on errOut whole:\n%s", body, errOut.String())
		}
	}
}

func TestMailerCheck(t *testing.T) {
	dir := t.TempDir()
	good := mailScript(t, dir, "cat >/dev/null\n")
	plain := filepath.Join(dir, "plain")
	must(t, os.WriteFile(plain, []byte("#!/bin/sh\n"), 0o644))
	fifo := filepath.Join(dir, "fifo")
	must(t, syscall.Mkfifo(fifo, 0o755))
	for _, tc := range []struct {
		argv []string
		want string // in the error; "" for none
	}{
		{[]string{good, "-n"}, ""},
		{[]string{"sh"}, ""}, // found in $PATH
		{nil, ""},            // -stdout
		{[]string{filepath.Join(dir, "missing")}, "no such file or directory"},
		{[]string{"famids-no-such-mail-program"}, "not found in $PATH"},
		{[]string{dir}, "is a directory"},
		{[]string{plain}, "permission denied"},
		{[]string{fifo}, fifo + " is not a regular file"},
	} {
		m := newMailer(tc.argv, "root", nil, nil)
		err := m.check()
		m.close(time.Now())
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("check of %q: %v, want nil", tc.argv, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("check of %q: %v, want an error saying %q", tc.argv, err, tc.want)
		case err != nil && !strings.HasPrefix(err.Error(), "cannot run the mail program: "):
			t.Errorf("check of %q: %v, want it to say what cannot run", tc.argv, err)
		}
	}
}
