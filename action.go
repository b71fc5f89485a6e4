package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// shellChars are the characters for which Perl's backticks hand a command
// to /bin/sh -c instead of running it directly.
const shellChars = "$&*(){}[]'\";\\|?<>~`\n"

// maxOutput caps what famids keeps of an action's standard output and of
// its standard error: a report is mail, not a log.
const maxOutput = 1 << 20

// actionCommand builds the command for action as Perl's backticks would:
// through the shell only when it holds a shell special character, else
// split on white space and run directly.
func actionCommand(ctx context.Context, action string) *exec.Cmd {
	if strings.ContainsAny(action, shellChars) {
		return exec.CommandContext(ctx, "/bin/sh", "-c", action)
	}
	f := strings.Fields(action)
	return exec.CommandContext(ctx, f[0], f[1:]...)
}

// A trigger asks for an action to run for a report on a path.
type trigger struct {
	action string
	path   string
	events []string
}

// actions runs entries' actions, each in its own goroutine so that none
// holds up the watching, and never two runs of the same action at once: a
// trigger that comes while its action runs waits for its turn.
type actions struct {
	timeout time.Duration
	send    func(subject, body string)

	ctx    context.Context // cancelled when famids stops
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	waiting map[string][]trigger // by action; present while the action runs
}

func newActions(timeout time.Duration, send func(subject, body string)) *actions {
	ctx, cancel := context.WithCancel(context.Background())
	return &actions{timeout: timeout, send: send, ctx: ctx, cancel: cancel, waiting: make(map[string][]trigger)}
}

// run starts t's action, or queues it behind the run in progress. A path
// already waiting for the same action is not queued twice: its events are
// added to the waiting trigger.
func (a *actions) run(t trigger) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if q, busy := a.waiting[t.action]; busy {
		for i := range q {
			if q[i].path == t.path {
				q[i].events = appendNew(q[i].events, t.events...)
				return
			}
		}
		a.waiting[t.action] = append(q, t)
		return
	}
	a.waiting[t.action] = nil
	a.wg.Add(1)
	go a.loop(t)
}

// loop runs t, then each trigger that queued behind it.
func (a *actions) loop(t trigger) {
	defer a.wg.Done()
	for {
		a.send(subjectAction, a.execute(t))
		a.mu.Lock()
		q := a.waiting[t.action]
		if len(q) == 0 {
			delete(a.waiting, t.action)
			a.mu.Unlock()
			return
		}
		t, a.waiting[t.action] = q[0], q[1:]
		a.mu.Unlock()
	}
}

// stop kills the actions still running and waits until each has sent its
// report; queued ones are reported as not run.
func (a *actions) stop() {
	a.cancel()
	a.wg.Wait()
}

// execute runs t's action and returns the action report.
func (a *actions) execute(t trigger) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Taking action in response to event for %s\n", quoteIfNeeded(t.path))
	fmt.Fprintf(&b, "Action: %s\n", t.action)
	if a.ctx.Err() != nil {
		b.WriteString("Not run: famids was stopping\n")
		return b.String()
	}
	ctx, cancel := context.WithTimeout(a.ctx, a.timeout)
	defer cancel()
	cmd := actionCommand(ctx, t.action)
	cmd.Env = append(os.Environ(), "FAMIDS_PATH="+t.path, "FAMIDS_EVENT="+strings.Join(t.events, ", "))
	stdout, stderr := &cappedBuffer{max: maxOutput}, &cappedBuffer{max: maxOutput}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	// The action and whatever it starts form one process group, killed
	// together on time-out, so that no grandchild outlives it holding the
	// output pipes.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 2 * time.Second
	start := time.Now()
	err := cmd.Run()

	writeText(&b, stdout.String())
	if stderr.Len() == 0 && err == nil {
		return b.String()
	}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit) || err == nil:
		if stderr.Len() > 0 {
			b.WriteString("Standard error:\n")
			writeText(&b, stderr.String())
		}
		switch {
		case errors.Is(ctx.Err(), context.DeadlineExceeded):
			fmt.Fprintf(&b, "Timed out after %v\n", a.timeout)
		case a.ctx.Err() != nil:
			fmt.Fprintf(&b, "Stopped after %v: famids was stopping\n", time.Since(start).Round(time.Millisecond))
		default:
			fmt.Fprintf(&b, "Exit status: %d\n", exitStatus(cmd.ProcessState))
		}
	default: // it could not be started
		fmt.Fprintf(&b, "Standard error:\nfamids: cannot run the action: %v\nExit status: 127\n", err)
	}
	return b.String()
}

// exitStatus returns the status as a shell would: 128+N for signal N.
func exitStatus(ps *os.ProcessState) int {
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ps.ExitCode()
}

// writeText writes s, ending it with a newline if it lacks one.
func writeText(b *strings.Builder, s string) {
	b.WriteString(s)
	if s != "" && !strings.HasSuffix(s, "\n") {
		b.WriteByte('\n')
	}
}

// A cappedBuffer keeps the first max bytes written to it and counts the
// rest.
type cappedBuffer struct {
	max     int
	buf     bytes.Buffer
	dropped int
}

func (c *cappedBuffer) Write(p []byte) (int, error) {
	n := len(p)
	if room := c.max - c.buf.Len(); len(p) > room {
		c.dropped += len(p) - room
		p = p[:room]
	}
	c.buf.Write(p)
	return n, nil
}

func (c *cappedBuffer) Len() int { return c.buf.Len() + c.dropped }

func (c *cappedBuffer) String() string {
	if c.dropped > 0 {
		return fmt.Sprintf("%s\n[famids: %d more bytes left out]\n", c.buf.String(), c.dropped)
	}
	return c.buf.String()
}
