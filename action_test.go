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
	return runActionIndent(t, timeout, action, false)
}

// runActionIndent is runAction with the output indented, as with -stdout,
// or not.
func runActionIndent(t *testing.T, timeout time.Duration, action string, indent bool) string {
	t.Helper()
	a := newActions(timeout, func(string, string) { t.Error("execute must not send") })
	a.indent = indent
	defer a.stop()
	return a.execute(trigger{action: action, paths: []string{"/etc/passwd"}, events: []string{"change"}})
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
	got := a.execute(trigger{action: "printenv FAMIDS_EVENT", paths: []string{"/tmp/evil\nname"}, events: []string{"delete", "create"}})
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
		done <- a.execute(trigger{action: "echo started; sleep 30", paths: []string{"/etc/passwd"}, events: []string{"change"}})
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
	got := a.execute(trigger{action: "touch " + marker, paths: []string{"/etc/passwd"}, events: []string{"change"}})
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
	if got, want := outputText(c, false), "hello worl\n[famids: 4 more bytes left out]\n"; got != want {
		t.Errorf("output = %q, want %q", got, want)
	}
	if got := c.Len(); got != 14 {
		t.Errorf("Len() = %d, want 14 (all that was written)", got)
	}
	c = &cappedBuffer{max: 10}
	c.Write([]byte("0123456789"))
	if got := outputText(c, false); got != "0123456789\n" {
		t.Errorf("output of exactly max bytes = %q", got)
	}
}

// outputText returns what writeOutput writes of c.
func outputText(c *cappedBuffer, indent bool) string {
	var b strings.Builder
	writeOutput(&b, c, indent)
	return b.String()
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
	// The first runs; the others come while it runs, and make one run.
	for _, p := range []string{"/etc/one", "/etc/two", "/etc/three"} {
		a.run(trigger{action: action, paths: []string{p}, events: []string{"change"}})
	}
	msgs := rec.wait(t, 2)
	a.stop()
	if len(rec.msgs) != 2 {
		t.Errorf("got %d action reports, want 2", len(rec.msgs))
	}
	want := []string{
		"Taking action in response to event for /etc/one\nAction: " + action + "\nran for /etc/one\n",
		"Taking action in response to event for /etc/two\nAlso for: /etc/three\nAction: " + action + "\nran for /etc/two\n",
	}
	for i, m := range msgs {
		if m.Subject != subjectAction || m.Body != want[i] {
			t.Errorf("action report %d, subject %q:\n%s\nwant subject %q:\n%s", i, m.Subject, m.Body, subjectAction, want[i])
		}
	}
	data, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	// The second run starts after the first ends.
	if lines, want := strings.Split(strings.TrimSpace(string(data)), "\n"), []string{"start /etc/one", "end /etc/one", "start /etc/two", "end /etc/two"}; !slices.Equal(lines, want) {
		t.Errorf("log:\n%s\nwant:\n%s", data, strings.Join(want, "\n"))
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
	a.run(trigger{action: a1, paths: []string{"/etc/one"}, events: []string{"change"}})
	a.run(trigger{action: a2, paths: []string{"/etc/one"}, events: []string{"change"}})
	for _, m := range rec.wait(t, 2) {
		if strings.Contains(m.Body, "Exit status") {
			t.Errorf("two different actions did not run at once:\n%s", m.Body)
		}
	}
}

func TestActionsWaitingRunJoinsTriggers(t *testing.T) {
	dir := t.TempDir()
	gate := filepath.Join(dir, "gate")
	// The first run waits for the gate, so that the others come while it
	// runs.
	action := fmt.Sprintf("while [ ! -e %s ]; do sleep 0.02; done; echo \"$FAMIDS_PATH: $FAMIDS_EVENT\"; echo \"$FAMIDS_PATHS\"", gate)
	rec := newActionRecorder()
	a := newActions(time.Minute, rec.send)
	defer a.stop()
	a.run(trigger{action: action, paths: []string{"/etc/one"}, events: []string{"change"}})
	a.run(trigger{action: action, paths: []string{"/etc/two"}, events: []string{"delete"}})
	a.run(trigger{action: action, paths: []string{"/etc/three", "/etc/one"}, events: []string{"change"}})
	a.run(trigger{action: action, paths: []string{"/etc/two"}, events: []string{"create", "delete"}})
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	msgs := rec.wait(t, 2)
	// A trigger after the waiting run started makes a run of its own.
	a.run(trigger{action: action, paths: []string{"/etc/four"}, events: []string{"change"}})
	msgs = rec.wait(t, 3)
	head := "Taking action in response to event for "
	want := []string{
		head + "/etc/one\nAction: " + action + "\n/etc/one: change\n/etc/one\n",
		head + "/etc/two\nAlso for: /etc/three, /etc/one\nAction: " + action + "\n/etc/two: delete, change, create\n/etc/two\n/etc/three\n/etc/one\n",
		head + "/etc/four\nAction: " + action + "\n/etc/four: change\n/etc/four\n",
	}
	for i := range want {
		if msgs[i].Body != want[i] {
			t.Errorf("action report %d:\n%s\nwant:\n%s", i, msgs[i].Body, want[i])
		}
	}
}

func TestActionsFloodMakesTwoRuns(t *testing.T) {
	dir := t.TempDir()
	gate := filepath.Join(dir, "gate")
	logFile := filepath.Join(dir, "log")
	action := fmt.Sprintf("echo run >> %s; while [ ! -e %s ]; do sleep 0.02; done; echo \"$FAMIDS_PATHS\" | wc -l; echo \"$FAMIDS_EVENT\"", logFile, gate)
	rec := newActionRecorder()
	a := newActions(time.Minute, rec.send)
	defer a.stop()
	paths := make([]string, 1000)
	for i := range paths {
		paths[i] = fmt.Sprintf("/etc/f%04d", i)
	}
	start := time.Now()
	for i, p := range paths {
		a.run(trigger{action: action, paths: []string{p}, events: []string{"change"}})
		if i%3 == 1 { // the same path again, with another event
			a.run(trigger{action: action, paths: []string{p}, events: []string{"delete"}})
		}
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("1,333 triggers took %v: run must not wait", took)
	}
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	msgs := rec.wait(t, 2)
	a.stop()
	if n := len(rec.msgs); n != 2 {
		t.Errorf("%d action reports, want 2", n)
	}
	if data, err := os.ReadFile(logFile); err != nil || string(data) != "run\nrun\n" {
		t.Errorf("the action ran %d times, want twice (%v)", strings.Count(string(data), "run"), err)
	}
	want := "Taking action in response to event for /etc/f0001\nAlso for: " + strings.Join(paths[2:22], ", ") + " and 978 more\nAction: " + action + "\n999\nchange, delete\n"
	if msgs[1].Body != want {
		t.Errorf("report of the joined run:\n%s\nwant:\n%s", msgs[1].Body, want)
	}
}

func TestActionsStopReportsQueued(t *testing.T) {
	rec := newActionRecorder()
	a := newActions(time.Minute, rec.send)
	a.run(trigger{action: "sleep 30", paths: []string{"/etc/one"}, events: []string{"change"}})
	a.run(trigger{action: "sleep 30", paths: []string{"/etc/two"}, events: []string{"change"}})
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

// waitPid waits until file holds a process id, as an action writes $!
// there, and returns it.
func waitPid(t *testing.T, file string) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		data, err := os.ReadFile(file)
		if pid, perr := strconv.Atoi(strings.TrimSpace(string(data))); err == nil && perr == nil && pid > 1 {
			return pid
		}
		if time.Now().After(deadline) {
			t.Fatalf("no process id in %s within 10s (%v, %q)", file, err, data)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// killAtCleanup kills pid when the test ends, should the code under test
// have let it live.
func killAtCleanup(t *testing.T, pid int) {
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
}

func TestExecuteLeftoverKilled(t *testing.T) {
	tests := []struct {
		name, action, want string
	}{
		{"holding the output", "sleep 300 & echo $! > %s", "Exit status: 0; left processes running, killed\n"},
		{"not holding the output", "sleep 300 >/dev/null 2>&1 & echo $! > %s", "Exit status: 0; left processes running, killed\n"},
		{"after a failure", "sleep 300 & echo $! > %s; echo oops >&2; exit 3", "Standard error:\noops\nExit status: 3; left processes running, killed\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pidfile := filepath.Join(t.TempDir(), "pid")
			action := fmt.Sprintf(tt.action, pidfile)
			start := time.Now()
			got := runAction(t, time.Minute, action)
			took := time.Since(start)
			pid := waitPid(t, pidfile)
			killAtCleanup(t, pid)
			if want := "Taking action in response to event for /etc/passwd\nAction: " + action + "\n" + tt.want; got != want {
				t.Errorf("report:\n%s\nwant:\n%s", got, want)
			}
			// Killed before the report is made: the report never
			// describes a process that outlives it.
			if !processGone(pid, 0) {
				t.Errorf("the action's background sleep (pid %d) outlived its report", pid)
			}
			// Leftovers are found when the main process exits, not by
			// waiting for the output to end.
			if took >= actionGrace {
				t.Errorf("execute took %v, want less than the %v grace", took, actionGrace)
			}
		})
	}
}

func TestExecuteLeftoverOutsideGroup(t *testing.T) {
	// setsid takes the sleep out of the action's process group, out of
	// famids's reach, still holding the output pipes. The action ends
	// only once it is out.
	pidfile := filepath.Join(t.TempDir(), "pid")
	action := fmt.Sprintf("setsid sh -c 'echo $$ > %s; exec sleep 300' & while [ ! -s %s ]; do sleep 0.01; done; echo done", pidfile, pidfile)
	start := time.Now()
	got := runAction(t, time.Minute, action)
	took := time.Since(start)
	pid := waitPid(t, pidfile)
	killAtCleanup(t, pid)
	want := "Taking action in response to event for /etc/passwd\nAction: " + action + "\ndone\nExit status: 0; left processes running outside its process group, not killed\n"
	if got != want {
		t.Errorf("report:\n%s\nwant:\n%s", got, want)
	}
	if took > actionGrace+2*time.Second {
		t.Errorf("execute took %v: a process holding the output held it up beyond the %v grace", took, actionGrace)
	}
}

func TestActionsStopKillsStubbornAction(t *testing.T) {
	// The action ignores SIGTERM, leaves a child that ignores it too, and
	// never ends by itself; a second trigger waits behind it.
	dir := t.TempDir()
	pidfile := filepath.Join(dir, "pid")
	action := fmt.Sprintf("trap '' TERM; sleep 300 & echo $! > %s; echo started; while :; do sleep 1; done", pidfile)
	rec := newActionRecorder()
	a := newActions(time.Minute, rec.send)
	a.run(trigger{action: action, paths: []string{"/etc/one"}, events: []string{"change"}})
	a.run(trigger{action: action, paths: []string{"/etc/two"}, events: []string{"change"}})
	pid := waitPid(t, pidfile)
	killAtCleanup(t, pid)
	start := time.Now()
	stopped := make(chan struct{})
	go func() { a.stop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("stop did not return within 5s")
	}
	t.Logf("stop took %v", time.Since(start))
	msgs := rec.wait(t, 2)
	head := "Taking action in response to event for /etc/one\nAction: " + action + "\nstarted\nStopped after "
	if !strings.HasPrefix(msgs[0].Body, head) || !strings.HasSuffix(msgs[0].Body, ": famids was stopping\n") {
		t.Errorf("report of the stopped action:\n%s\nwant it to start with:\n%s", msgs[0].Body, head)
	}
	if want := "Taking action in response to event for /etc/two\nAction: " + action + "\nNot run: famids was stopping\n"; msgs[1].Body != want {
		t.Errorf("report of the waiting action:\n%s\nwant:\n%s", msgs[1].Body, want)
	}
	if !processGone(pid, 0) {
		t.Errorf("the stopped action's child (pid %d) outlived stop", pid)
	}
}

func TestExecuteEscapesOutput(t *testing.T) {
	tests := []struct {
		name, printf, want string
	}{
		{"escape sequence", `\033[2J\033]0;title\007red`, `\x1b[2J\x1b]0;title\ared`},
		{"carriage return", `all is well\rrootkit found`, `all is well\rrootkit found`},
		{"NUL", `a\000b`, `a\x00b`},
		{"invalid UTF-8", `caf\351 \377`, `caf\xe9 \xff`},
		{"line separators", `a\342\200\250b\342\200\251c\302\205d`, `a\u2028b\u2029c\u0085d`},
		{"DEL and C1", `x\177y\302\233z`, `x\x7fy\u009bz`},
		{"kept as written", `tab\there, "quotes" \\ back-slash, caf\303\251 \342\202\254`, "tab\there, \"quotes\" \\ back-slash, café €"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, fd := range []string{"", " >&2"} {
				action := fmt.Sprintf("printf '%s\\n'%s", tt.printf, fd)
				want := tt.want + "\n"
				if fd != "" {
					want = "Standard error:\n" + want + "Exit status: 0\n"
				}
				want = "Taking action in response to event for /etc/passwd\nAction: " + action + "\n" + want
				if got := runAction(t, 10*time.Second, action); got != want {
					t.Errorf("report:\n%q\nwant:\n%q", got, want)
				}
			}
		})
	}
}

func TestExecuteIndentsOutput(t *testing.T) {
	// An action's output that would forge a report of its own with
	// -stdout, where messages are separated by an empty line.
	const action = `printf 'ok\n\nSubject: famids report\nPossible intrusion:\nPathname: /bin/ls'; printf 'Subject: x\n' >&2`
	head := "Taking action in response to event for /etc/passwd\nAction: " + action + "\n"
	tests := []struct {
		indent bool
		want   string
	}{
		{false, "ok\n\nSubject: famids report\nPossible intrusion:\nPathname: /bin/ls\nStandard error:\nSubject: x\nExit status: 0\n"},
		{true, "  ok\n  \n  Subject: famids report\n  Possible intrusion:\n  Pathname: /bin/ls\nStandard error:\n  Subject: x\nExit status: 0\n"},
	}
	for _, tt := range tests {
		if got := runActionIndent(t, 10*time.Second, action, tt.indent); got != head+tt.want {
			t.Errorf("indent %v, report:\n%s\nwant:\n%s", tt.indent, got, head+tt.want)
		}
	}
}

func TestWriteOutputCappedIndented(t *testing.T) {
	c := &cappedBuffer{max: 8}
	c.Write([]byte("one\ntwo\nthree\n"))
	if got, want := outputText(c, true), "  one\n  two\n[famids: 6 more bytes left out]\n"; got != want {
		t.Errorf("output = %q, want %q", got, want)
	}
}

func TestExecuteSeveralPaths(t *testing.T) {
	// One trigger for a digest: FAMIDS_PATH is the first path, FAMIDS_PATHS
	// all of them, one a line: a name with a newline is Go-quoted there,
	// and in the report, so that it cannot pass for two.
	a := newActions(10*time.Second, func(string, string) {})
	defer a.stop()
	const action = `printf '%s\n' "$FAMIDS_PATH" "$FAMIDS_PATHS" "${FAMIDS_PATHS_LEFT_OUT-none}"`
	got := a.execute(trigger{action: action, paths: []string{"/etc/one", "/tmp/evil\nSubject: x", "/etc/two"}, events: []string{"change"}})
	want := "Taking action in response to event for /etc/one\nAlso for: \"/tmp/evil\\nSubject: x\", /etc/two\nAction: " + action + "\n" +
		"/etc/one\n/etc/one\n\"/tmp/evil\\nSubject: x\"\n/etc/two\nnone\n"
	if got != want {
		t.Errorf("report:\n%s\nwant:\n%s", got, want)
	}
}

func TestExecuteManyPaths(t *testing.T) {
	// 20,000 paths of 50 bytes hold 1 MB, far more than one environment
	// string may (128 KiB): the action runs with those that fit, and is
	// told how many did not.
	paths := make([]string, 20000)
	for i := range paths {
		paths[i] = fmt.Sprintf("/var/lib/famids-test/a/rather/long/directory/%05d", i)
	}
	a := newActions(10*time.Second, func(string, string) {})
	defer a.stop()
	const action = `echo "$FAMIDS_PATHS" | wc -l; echo "$FAMIDS_PATHS_LEFT_OUT"; echo "$FAMIDS_PATHS" | tail -n 1`
	got := a.execute(trigger{action: action, paths: paths, events: []string{"change"}})
	lines := strings.Split(got, "\n")
	if len(lines) != 7 || lines[1] != "Also for: "+strings.Join(paths[1:21], ", ")+" and 19979 more" {
		t.Fatalf("report:\n%s", got)
	}
	kept, err1 := strconv.Atoi(lines[3])
	left, err2 := strconv.Atoi(lines[4])
	if err1 != nil || err2 != nil || kept+left != len(paths) || kept < 1000 || lines[5] != paths[kept-1] {
		t.Errorf("FAMIDS_PATHS holds %q paths, FAMIDS_PATHS_LEFT_OUT says %q more, the last kept is %q; want %d in all, in order:\n%s", lines[3], lines[4], lines[5], len(paths), got)
	}
}
