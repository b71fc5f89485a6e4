package main

// Unit tests of the actions: how a command is run, what its report says,
// time-outs, and the queue that keeps one action from running twice at
// once.

import (
	"context"
	"errors"
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

func TestActionCommandShell(t *testing.T) {
	specials := strings.Split("$&*(){}[]'\";\\|?<>~", "")
	specials = append(specials, "`", "\n")
	for _, c := range specials {
		action := "echo a" + c + "b"
		cmd := actionCommand(context.Background(), action)
		if cmd.Path != "/bin/sh" || !slices.Equal(cmd.Args, []string{"/bin/sh", "-c", action}) {
			t.Errorf("actionCommand(%q) runs %s %q, want /bin/sh [/bin/sh -c %q]", action, cmd.Path, cmd.Args, action)
		}
	}
}

func TestActionCommandDirect(t *testing.T) {
	tests := []struct {
		action string
		args   []string
	}{
		{"rpm -V  coreutils", []string{"rpm", "-V", "coreutils"}},
		{"  /usr/bin/logger\tfamids  saw\tit ", []string{"/usr/bin/logger", "famids", "saw", "it"}},
		{"true", []string{"true"}},
		// Characters that are not special to Perl's backticks.
		{"cmd -a=b +c %d @e ,f .g /h #i", []string{"cmd", "-a=b", "+c", "%d", "@e", ",f", ".g", "/h", "#i"}},
	}
	for _, tt := range tests {
		cmd := actionCommand(context.Background(), tt.action)
		if !slices.Equal(cmd.Args, tt.args) {
			t.Errorf("actionCommand(%q).Args = %q, want %q", tt.action, cmd.Args, tt.args)
		}
		if cmd.Path == "/bin/sh" && tt.args[0] != "/bin/sh" {
			t.Errorf("actionCommand(%q) runs through the shell", tt.action)
		}
	}
	// The program is looked up as a direct exec would: by name in $PATH.
	if cmd := actionCommand(context.Background(), "true --ignored"); filepath.Base(cmd.Path) != "true" || !filepath.IsAbs(cmd.Path) {
		t.Errorf("actionCommand(\"true --ignored\").Path = %q, want an absolute path to true", cmd.Path)
	}
}

// runAction executes one trigger with a fresh actions and returns its
// report.
func runAction(t *testing.T, timeout time.Duration, action string) string {
	t.Helper()
	a := newActions(timeout, func(string, string) { t.Error("execute must not send") })
	defer a.stop()
	return a.execute(trigger{action: action, path: "/etc/passwd", events: []string{"change"}})
}

func TestExecuteReports(t *testing.T) {
	head := func(action string) string {
		return "Taking action in response to event for /etc/passwd\nAction: " + action + "\n"
	}
	tests := []struct {
		name, action, want string
	}{
		{"stdout only", "echo hello world", "hello world\n"},
		{"stdout without a final newline", "printf 'one\\ntwo'", "one\ntwo\n"},
		{"nothing at all", "true", ""},
		{"stderr and exit status", "echo out; echo err >&2; exit 3", "out\nStandard error:\nerr\nExit status: 3\n"},
		{"stderr of a successful action", "echo warning >&2", "Standard error:\nwarning\nExit status: 0\n"},
		{"failure without output", "false", "Exit status: 1\n"},
		{"killed by a signal", "kill -9 $$", "Exit status: 137\n"},
		{"environment", "echo \"$FAMIDS_PATH|$FAMIDS_EVENT\"", "/etc/passwd|change\n"},
		{"direct exec environment", "printenv FAMIDS_PATH FAMIDS_EVENT", "/etc/passwd\nchange\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, want := runAction(t, 10*time.Second, tt.action), head(tt.action)+tt.want; got != want {
				t.Errorf("report:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

func TestExecuteCannotStart(t *testing.T) {
	got := runAction(t, 10*time.Second, "/nonexistent/famids-test-program --flag")
	for _, want := range []string{
		"Action: /nonexistent/famids-test-program --flag\n",
		"\nStandard error:\nfamids: cannot run the action: ",
		"/nonexistent/famids-test-program",
		"\nExit status: 127\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("report lacks %q:\n%s", want, got)
		}
	}
}

func TestExecuteEventsAndQuotedPath(t *testing.T) {
	a := newActions(10*time.Second, func(string, string) {})
	defer a.stop()
	got := a.execute(trigger{action: "printenv FAMIDS_EVENT", path: "/tmp/evil\nname", events: []string{"delete", "create"}})
	want := "Taking action in response to event for \"/tmp/evil\\nname\"\nAction: printenv FAMIDS_EVENT\ndelete, create\n"
	if got != want {
		t.Errorf("report:\n%q\nwant:\n%q", got, want)
	}
}

func TestExecuteTimeout(t *testing.T) {
	start := time.Now()
	got := runAction(t, 200*time.Millisecond, "sleep 5")
	took := time.Since(start)
	want := "Taking action in response to event for /etc/passwd\nAction: sleep 5\nTimed out after 200ms\n"
	if got != want {
		t.Errorf("report:\n%s\nwant:\n%s", got, want)
	}
	// A liveness bound, far above the time-out and far below the sleep.
	if took > 3*time.Second {
		t.Errorf("execute returned after %v, want soon after the 200ms time-out", took)
	}
}

func TestExecuteTimeoutKeepsOutput(t *testing.T) {
	got := runAction(t, 300*time.Millisecond, "echo before; echo oops >&2; sleep 5")
	want := "Taking action in response to event for /etc/passwd\nAction: echo before; echo oops >&2; sleep 5\nbefore\nStandard error:\noops\nTimed out after 300ms\n"
	if got != want {
		t.Errorf("report:\n%s\nwant:\n%s", got, want)
	}
}

// processGone waits until no process has the given id, or only a zombie
// that is dead but not reaped yet (an orphan waits for init to reap it,
// and some container inits never do).
func processGone(pid int, within time.Duration) bool {
	deadline := time.Now().Add(within)
	for {
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			return true
		}
		if stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
			// pid (comm) STATE ...: comm may hold spaces and parentheses.
			if i := strings.LastIndexByte(string(stat), ')'); i >= 0 && strings.HasPrefix(string(stat[i:]), ") Z") {
				return true
			}
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestExecuteTimeoutKillsProcessGroup(t *testing.T) {
	pidfile := filepath.Join(t.TempDir(), "pid")
	action := fmt.Sprintf("sleep 30 & echo $! > %s; wait", pidfile)
	start := time.Now()
	got := runAction(t, 500*time.Millisecond, action)
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("execute returned after %v, want soon after the 500ms time-out", took)
	}
	if !strings.HasSuffix(got, "Timed out after 500ms\n") {
		t.Errorf("report does not end with the time-out:\n%s", got)
	}
	data, err := os.ReadFile(pidfile)
	if err != nil {
		t.Fatalf("the action wrote no pid file: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 1 {
		t.Fatalf("pid file holds %q", data)
	}
	if !processGone(pid, 2*time.Second) {
		syscall.Kill(pid, syscall.SIGKILL)
		t.Errorf("the action's background sleep (pid %d) outlived the time-out", pid)
	}
}

func TestExecuteStoppedWhileRunning(t *testing.T) {
	a := newActions(time.Minute, func(string, string) {})
	done := make(chan string, 1)
	start := time.Now()
	go func() {
		done <- a.execute(trigger{action: "echo started; sleep 30", path: "/etc/passwd", events: []string{"change"}})
	}()
	time.Sleep(300 * time.Millisecond)
	a.stop()
	select {
	case got := <-done:
		if !strings.Contains(got, "\nstarted\n") || !strings.Contains(got, "famids was stopping") {
			t.Errorf("report of a stopped action:\n%s", got)
		}
		if strings.Contains(got, "Timed out") || strings.Contains(got, "Exit status") {
			t.Errorf("a stopped action is reported as timed out or exited:\n%s", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("execute still running 10s after stop")
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("stopping took %v", took)
	}
	// Once stopped, nothing runs.
	marker := filepath.Join(t.TempDir(), "ran")
	got := a.execute(trigger{action: "touch " + marker, path: "/etc/passwd", events: []string{"change"}})
	if !strings.HasSuffix(got, "Not run: famids was stopping\n") {
		t.Errorf("report after stop:\n%s", got)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("an action ran after stop")
	}
}

func TestExecuteOutputCapped(t *testing.T) {
	// 100 bytes more than the cap, of "y\n".
	got := runAction(t, 30*time.Second, fmt.Sprintf("yes | head -c %d", maxOutput+100))
	if !strings.Contains(got, "\n[famids: 100 more bytes left out]\n") {
		t.Errorf("report of %d bytes lacks the truncation note; it ends %q", len(got), got[max(0, len(got)-200):])
	}
	if n := strings.Count(got, "y\n"); n != maxOutput/2 {
		t.Errorf("report keeps %d lines of output, want %d", n, maxOutput/2)
	}
	if strings.Contains(got, "Exit status") {
		t.Errorf("a successful action with no standard error reports an exit status")
	}
}

func TestCappedBuffer(t *testing.T) {
	c := &cappedBuffer{max: 10}
	for _, s := range []string{"hello", " wor", "ld", "!!!"} {
		if n, err := c.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatalf("Write(%q) = %d, %v; want %d, nil", s, n, err, len(s))
		}
	}
	if got, want := c.String(), "hello worl\n[famids: 4 more bytes left out]\n"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if got := c.Len(); got != 14 {
		t.Errorf("Len() = %d, want 14 (all that was written)", got)
	}
	c = &cappedBuffer{max: 10}
	c.Write([]byte("0123456789"))
	if got := c.String(); got != "0123456789" {
		t.Errorf("String() of exactly max bytes = %q", got)
	}
}

// A recorder collects what actions send.
type actionRecorder struct {
	mu   sync.Mutex
	msgs []message
	got  chan struct{}
}

func newActionRecorder() *actionRecorder {
	return &actionRecorder{got: make(chan struct{}, 100)}
}

func (r *actionRecorder) send(subject, body string) {
	r.mu.Lock()
	r.msgs = append(r.msgs, message{Subject: subject, Body: body})
	r.mu.Unlock()
	r.got <- struct{}{}
}

// wait waits for n messages in all.
func (r *actionRecorder) wait(t *testing.T, n int) []message {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		r.mu.Lock()
		msgs := slices.Clone(r.msgs)
		r.mu.Unlock()
		if len(msgs) >= n {
			return msgs
		}
		select {
		case <-r.got:
		case <-timeout:
			t.Fatalf("got %d action reports, want %d: %v", len(msgs), n, msgs)
		}
	}
}

func TestActionsNeverOverlap(t *testing.T) {
	dir := t.TempDir()
	logFile := filepath.Join(dir, "log")
	action := fmt.Sprintf("echo start $FAMIDS_PATH >> %s; sleep 0.3; echo end $FAMIDS_PATH >> %s; echo ran for $FAMIDS_PATH", logFile, logFile)
	rec := newActionRecorder()
	a := newActions(time.Minute, rec.send)
	defer a.stop()
	paths := []string{"/etc/one", "/etc/two", "/etc/three"}
	for _, p := range paths {
		a.run(trigger{action: action, path: p, events: []string{"change"}})
	}
	msgs := rec.wait(t, 3)
	a.stop()
	if len(rec.msgs) != 3 {
		t.Errorf("got %d action reports, want 3", len(rec.msgs))
	}
	var reported []string
	for _, m := range msgs {
		if m.Subject != subjectAction {
			t.Errorf("subject %q, want %q", m.Subject, subjectAction)
		}
		for _, p := range paths {
			if strings.HasPrefix(m.Body, "Taking action in response to event for "+p+"\n") {
				reported = append(reported, p)
				if !strings.Contains(m.Body, "\nran for "+p+"\n") {
					t.Errorf("report for %s:\n%s", p, m.Body)
				}
			}
		}
	}
	if slices.Sort(reported); !slices.Equal(reported, []string{"/etc/one", "/etc/three", "/etc/two"}) {
		t.Errorf("action reports for %q, want one for each of %q", reported, paths)
	}
	data, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) != 6 {
		t.Fatalf("log has %d lines, want 6:\n%s", len(lines), data)
	}
	for i := 0; i < len(lines); i += 2 {
		start, end := lines[i], lines[i+1]
		if !strings.HasPrefix(start, "start ") || end != "end "+strings.TrimPrefix(start, "start ") {
			t.Fatalf("runs of one action overlap:\n%s", data)
		}
	}
	// The first trigger runs first; the queue keeps the order.
	if want := []string{"start /etc/one", "end /etc/one", "start /etc/two", "end /etc/two", "start /etc/three", "end /etc/three"}; !slices.Equal(lines, want) {
		t.Errorf("log:\n%s\nwant the triggers' order:\n%s", data, strings.Join(want, "\n"))
	}
}

func TestActionsDifferentActionsRunTogether(t *testing.T) {
	dir := t.TempDir()
	// Each action waits for the other's marker: they finish only if they
	// run at the same time.
	a1 := fmt.Sprintf("touch %s/a; for i in $(seq 100); do [ -e %s/b ] && exit 0; sleep 0.05; done; exit 1", dir, dir)
	a2 := fmt.Sprintf("touch %s/b; for i in $(seq 100); do [ -e %s/a ] && exit 0; sleep 0.05; done; exit 1", dir, dir)
	rec := newActionRecorder()
	a := newActions(time.Minute, rec.send)
	defer a.stop()
	a.run(trigger{action: a1, path: "/etc/one", events: []string{"change"}})
	a.run(trigger{action: a2, path: "/etc/one", events: []string{"change"}})
	for _, m := range rec.wait(t, 2) {
		if strings.Contains(m.Body, "Exit status") {
			t.Errorf("two different actions did not run at once:\n%s", m.Body)
		}
	}
}

func TestActionsQueuedTriggerMergesEvents(t *testing.T) {
	dir := t.TempDir()
	gate := filepath.Join(dir, "gate")
	// The first run waits for the gate, so that the others queue behind it.
	action := fmt.Sprintf("while [ ! -e %s ]; do sleep 0.02; done; echo \"$FAMIDS_PATH: $FAMIDS_EVENT\"", gate)
	rec := newActionRecorder()
	a := newActions(time.Minute, rec.send)
	defer a.stop()
	a.run(trigger{action: action, path: "/etc/one", events: []string{"change"}})
	a.run(trigger{action: action, path: "/etc/two", events: []string{"delete"}})
	a.run(trigger{action: action, path: "/etc/two", events: []string{"create", "delete"}})
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	rec.wait(t, 2)
	// Had the second trigger for /etc/two run on its own, its report
	// would come before this one's.
	a.run(trigger{action: action, path: "/etc/three", events: []string{"change"}})
	msgs := rec.wait(t, 3)
	if !strings.Contains(msgs[2].Body, "\n/etc/three: change\n") {
		t.Fatalf("third report, want the one on /etc/three (the second trigger for /etc/two joins the first):\n%v", msgs)
	}
	if !strings.Contains(msgs[0].Body, "\n/etc/one: change\n") {
		t.Errorf("first report:\n%s", msgs[0].Body)
	}
	if !strings.Contains(msgs[1].Body, "\n/etc/two: delete, create\n") {
		t.Errorf("second report, want the events of both triggers:\n%s", msgs[1].Body)
	}
}

func TestActionsStopReportsQueued(t *testing.T) {
	rec := newActionRecorder()
	a := newActions(time.Minute, rec.send)
	a.run(trigger{action: "sleep 30", path: "/etc/one", events: []string{"change"}})
	a.run(trigger{action: "sleep 30", path: "/etc/two", events: []string{"change"}})
	time.Sleep(200 * time.Millisecond)
	stopped := make(chan struct{})
	go func() { a.stop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("stop did not return within 10s")
	}
	msgs := rec.wait(t, 2)
	if len(msgs) != 2 {
		t.Fatalf("got %d reports, want 2", len(msgs))
	}
	if !strings.Contains(msgs[0].Body, "event for /etc/one\n") || !strings.Contains(msgs[0].Body, "famids was stopping") {
		t.Errorf("report of the running action:\n%s", msgs[0].Body)
	}
	if !strings.Contains(msgs[1].Body, "event for /etc/two\n") || !strings.HasSuffix(msgs[1].Body, "Not run: famids was stopping\n") {
		t.Errorf("report of the queued action:\n%s", msgs[1].Body)
	}
}
