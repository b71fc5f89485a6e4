package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"
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

// A trigger asks for an action to run for the report on a path, or for
// the reports on several paths (a digest).
type trigger struct {
	action string
	paths  []string // the first is the one the report names first
	events []string
	by     []string // FAMIDS_BY_* of the first report's first process
}

// A joined run is a trigger that others may join.
type joined struct {
	trigger
	seen map[string]bool // paths, so that joining stays cheap in a flood
}

func newJoined(t trigger) *joined {
	j := &joined{trigger: trigger{action: t.action}, seen: make(map[string]bool)}
	j.join(t)
	return j
}

// join adds the paths and events of t that j lacks, after its own.
func (j *joined) join(t trigger) {
	for _, p := range t.paths {
		if !j.seen[p] {
			j.seen[p] = true
			j.paths = append(j.paths, p)
		}
	}
	j.events = appendNew(j.events, t.events...)
	if j.by == nil {
		j.by = t.by // who made the first change
	}
}

// actions runs entries' actions, each in its own goroutine so that none
// holds up the watching, and never two runs of the same action at once.
// At most one run waits behind the one in progress: every trigger that
// comes meanwhile joins it, so that a flood of 20,000 reports makes two
// runs, not 20,000.
type actions struct {
	timeout time.Duration
	send    func(subject, body string)
	// indent, set with -stdout before the first run, indents each line of
	// an action's output by two spaces, so that none can start a
	// "Subject:" line of its own.
	indent bool

	ctx    context.Context // cancelled when famids stops
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	waiting map[string]*joined // by action; present while the action runs, nil while no run waits
}

func newActions(timeout time.Duration, send func(subject, body string)) *actions {
	ctx, cancel := context.WithCancel(context.Background())
	return &actions{timeout: timeout, send: send, ctx: ctx, cancel: cancel, waiting: make(map[string]*joined)}
}

// run starts t's action, or has t join the run waiting behind the one in
// progress. It never waits for an action.
func (a *actions) run(t trigger) {
	if len(t.paths) == 0 {
		return // nothing to act on
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	next, busy := a.waiting[t.action]
	switch {
	case !busy:
		a.waiting[t.action] = nil
		a.wg.Add(1)
		go a.loop(newJoined(t))
	case next == nil:
		a.waiting[t.action] = newJoined(t)
	default:
		next.join(t)
	}
}

// loop runs j, then the run that waited behind it, if any, and so on.
func (a *actions) loop(j *joined) {
	defer a.wg.Done()
	for {
		a.send(subjectAction, a.execute(j.trigger))
		a.mu.Lock()
		next := a.waiting[j.action]
		if next == nil {
			delete(a.waiting, j.action)
			a.mu.Unlock()
			return
		}
		a.waiting[j.action] = nil // next runs: a new one may wait behind it
		a.mu.Unlock()
		j = next
	}
}

// stop kills the actions still running, each with everything it started,
// and waits until each has sent its report; a run waiting behind one is
// reported as not run. It returns within seconds whatever the actions do:
// runGroup gives up on a process that does not die when killed.
func (a *actions) stop() {
	a.cancel()
	a.wg.Wait()
}

// execute runs t's action and returns the action report.
func (a *actions) execute(t trigger) string {
	var b strings.Builder
	writeHead(&b, t)
	if a.ctx.Err() != nil {
		b.WriteString("Not run: famids was stopping\n")
		return b.String()
	}
	ctx, cancel := context.WithTimeout(a.ctx, a.timeout)
	defer cancel()
	cmd := actionCommand(ctx, t.action)
	cmd.Env = actionEnv(t)
	r, err := runGroup(ctx, cmd)
	if err != nil {
		fmt.Fprintf(&b, "Standard error:\nfamids: cannot run the action: %v\nExit status: 127\n", err)
		return b.String()
	}
	writeOutput(&b, r.stdout, a.indent)
	if r.stderr.Len() == 0 && r.clean() {
		return b.String()
	}
	if r.stderr.Len() > 0 {
		b.WriteString("Standard error:\n")
		writeOutput(&b, r.stderr, a.indent)
	}
	switch {
	case errors.Is(r.ctxErr, context.DeadlineExceeded):
		fmt.Fprintf(&b, "Timed out after %v\n", a.timeout)
	case r.ctxErr != nil:
		fmt.Fprintf(&b, "Stopped after %v: famids was stopping\n", r.took.Round(time.Millisecond))
	case r.state == nil:
		fmt.Fprintf(&b, "Exit status: unknown: %v\n", r.waitErr)
	default:
		fmt.Fprintf(&b, "Exit status: %d%s\n", exitStatus(r.state), r.leftovers())
	}
	return b.String()
}

// maxAlsoFor caps the paths listed on the "Also for:" line of a report.
const maxAlsoFor = 20

// writeHead writes the first lines of the report on t: the first path,
// the others, and the action.
func writeHead(b *strings.Builder, t trigger) {
	fmt.Fprintf(b, "Taking action in response to event for %s\n", quoteIfNeeded(t.paths[0]))
	if more := t.paths[1:]; len(more) > 0 {
		b.WriteString("Also for: ")
		for i, p := range more[:min(len(more), maxAlsoFor)] {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(quoteListed(p))
		}
		if len(more) > maxAlsoFor {
			fmt.Fprintf(b, " and %d more", len(more)-maxAlsoFor)
		}
		b.WriteByte('\n')
	}
	fmt.Fprintf(b, "Action: %s\n", escapeOutput(t.action))
}

// quoteListed returns p as a list of paths shows it: Go-quoted when it
// holds anything quoteIfNeeded quotes, a comma followed by a space, or a
// leading quote, so that no name passes for two.
func quoteListed(p string) string {
	if strings.Contains(p, ", ") || strings.HasPrefix(p, `"`) {
		return strconv.Quote(p)
	}
	return quoteIfNeeded(p)
}

// maxPathsEnv caps FAMIDS_PATHS: Linux refuses to start a program with an
// environment string over 128 KiB (MAX_ARG_STRLEN), and the action would
// not run at all.
const maxPathsEnv = 64 << 10

// actionEnv returns the environment of t's action: famids's own, and
// FAMIDS_PATH (the first path), FAMIDS_PATHS (all, one a line, as many as
// fit in maxPathsEnv), FAMIDS_PATHS_LEFT_OUT (how many did not, when any
// did not) and FAMIDS_EVENT.
func actionEnv(t trigger) []string {
	// A name with a newline would pass for two paths: such a path, and one
	// that is Go-quoted already by its look, is Go-quoted.
	listed := make([]string, 0, len(t.paths))
	n, size := 0, 0
	for ; n < len(t.paths); n++ {
		p := quoteListed(t.paths[n])
		if size+len(p) > maxPathsEnv {
			break
		}
		listed = append(listed, p)
		size += len(p) + 1
	}
	env := append(os.Environ(), "FAMIDS_PATH="+t.paths[0], "FAMIDS_PATHS="+strings.Join(listed, "\n"), "FAMIDS_EVENT="+strings.Join(t.events, ", "))
	if n < len(t.paths) {
		env = append(env, "FAMIDS_PATHS_LEFT_OUT="+strconv.Itoa(len(t.paths)-n))
	}
	return append(env, t.by...)
}

// actionGrace is how long famids waits, once an action's main process has
// exited or been killed, for the rest of it to die and its output to end.
const actionGrace = 2 * time.Second

// An outcome is what one run of an action did.
type outcome struct {
	stdout, stderr *cappedBuffer
	took           time.Duration    // until the main process ended
	ctxErr         error            // why it was killed, if it was: time-out or famids stopping
	state          *os.ProcessState // nil when the main process was not reaped
	waitErr        error            // why state is nil
	left           bool             // it left processes running in its group, which were killed
	held           bool             // something outside its group still held its output, not killed
}

// clean reports whether the action exited with status 0 and left nothing
// behind.
func (r *outcome) clean() bool {
	return r.ctxErr == nil && r.state != nil && r.state.Success() && !r.left && !r.held
}

// leftovers says what the action left running, for its exit status line.
func (r *outcome) leftovers() string {
	switch {
	case r.left && r.held:
		return "; left processes running, killed; others outside its process group hold its output, not killed"
	case r.left:
		return "; left processes running, killed"
	case r.held:
		return "; left processes running outside its process group, not killed"
	}
	return ""
}

// runGroup runs cmd in a process group of its own and collects its output.
// The whole group is killed when ctx is done, and whatever the main process
// leaves running in it is killed once it exits: an action is over when its
// report is sent. It returns an error only when cmd could not be started.
//
// The output goes through pipes famids makes itself rather than through
// exec's copying, so that the main process is reaped the moment it exits,
// without waiting for whoever else holds the pipes.
func runGroup(ctx context.Context, cmd *exec.Cmd) (*outcome, error) {
	r := &outcome{stdout: &cappedBuffer{max: maxOutput}, stderr: &cappedBuffer{max: maxOutput}}
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("standard output pipe: %w", err)
	}
	defer outR.Close()
	errR, errW, err := os.Pipe()
	if err != nil {
		outW.Close()
		return nil, fmt.Errorf("standard error pipe: %w", err)
	}
	defer errR.Close()
	cmd.Stdout, cmd.Stderr = outW, errW
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return killGroup(cmd.Process.Pid) }
	start := time.Now()
	err = cmd.Start()
	// The action holds the write ends now; famids must not, or reading
	// would never end.
	outW.Close()
	errW.Close()
	if err != nil {
		return nil, err
	}
	read := make(chan struct{}, 2)
	go copyOutput(r.stdout, outR, read)
	go copyOutput(r.stderr, errR, read)

	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	r.waitErr = waitMain(ctx, waited)
	r.took, r.ctxErr = time.Since(start), ctx.Err()
	deadline := time.Now().Add(actionGrace)
	if r.waitErr == errNotReaped {
		deadline = time.Now() // it had its grace already
	} else {
		r.state = cmd.ProcessState // nil only when wait(2) failed
	}
	r.left = killLeftovers(cmd.Process.Pid, deadline)
	r.held = !endOutput(read, deadline, outR, errR)
	return r, nil
}

// errNotReaped says that an action's main process did not die when killed.
var errNotReaped = errors.New("the action's main process did not die when killed")

// waitMain waits for the main process's Wait to return, and returns its
// error, or errNotReaped when ctx is done and the process is still not
// reaped after actionGrace (a process stuck in the kernel, say): famids
// stops within seconds whatever an action does.
func waitMain(ctx context.Context, waited <-chan error) error {
	select {
	case err := <-waited:
		return err
	case <-ctx.Done():
	}
	select {
	case err := <-waited:
		return err
	case <-time.After(actionGrace):
		return errNotReaped
	}
}

// killGroup kills the process group pgid.
func killGroup(pgid int) error {
	err := syscall.Kill(-pgid, syscall.SIGKILL)
	if errors.Is(err, syscall.ESRCH) {
		return os.ErrProcessDone
	}
	return err
}

// killLeftovers kills what is left running in the process group pgid once
// its leader has exited, and waits, until deadline, for it to be gone. It
// reports whether anything was left.
func killLeftovers(pgid int, deadline time.Time) bool {
	if !groupAlive(pgid) {
		return false
	}
	killGroup(pgid)
	for groupAlive(pgid) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

// groupAlive reports whether a process of the group pgid is alive. A
// zombie is dead: it waits to be reaped by an init that may never do it.
func groupAlive(pgid int) bool {
	if err := syscall.Kill(-pgid, 0); errors.Is(err, syscall.ESRCH) {
		return false
	}
	live, seen := scanGroup(pgid)
	if !seen {
		// /proc shows none of the group that kill(2) found: either it
		// just went, or /proc cannot tell (hidepid, another namespace).
		return !errors.Is(syscall.Kill(-pgid, 0), syscall.ESRCH)
	}
	return live
}

// scanGroup looks through /proc for the processes of group pgid: whether
// one is alive, and whether any was seen at all.
func scanGroup(pgid int) (live, seen bool) {
	d, err := os.Open("/proc")
	if err != nil {
		return false, false
	}
	defer d.Close()
	names, _ := d.Readdirnames(-1)
	for _, name := range names {
		if name[0] < '0' || name[0] > '9' {
			continue
		}
		state, pgrp, ok := procStat(name)
		if !ok || pgrp != pgid {
			continue
		}
		seen = true
		if state != 'Z' && state != 'X' {
			return true, true
		}
	}
	return false, seen
}

// procStat returns the state and the process group of process pid from
// /proc/PID/stat, or ok false when it is gone.
func procStat(pid string) (state byte, pgrp int, ok bool) {
	data, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0, 0, false
	}
	_, f := parseStat(data) // state ppid pgrp ...
	if len(f) < 3 || len(f[0]) != 1 {
		return 0, 0, false
	}
	pgrp, err = strconv.Atoi(f[2])
	return f[0][0], pgrp, err == nil
}

// copyOutput copies from r to w until r ends, then says so on done.
func copyOutput(w io.Writer, r io.Reader, done chan<- struct{}) {
	io.Copy(w, r)
	done <- struct{}{}
}

// endOutput waits until deadline for both copyOutputs to end, then stops
// them: a process that escaped the action's group (setsid) may hold its
// pipes for ever. It reports whether they ended by themselves.
func endOutput(done <-chan struct{}, deadline time.Time, pipes ...*os.File) bool {
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	ended := 0
	for ended < len(pipes) {
		select {
		case <-done:
			ended++
		case <-timer.C:
			for _, p := range pipes {
				p.SetReadDeadline(time.Now())
			}
			for ; ended < len(pipes); ended++ {
				<-done
			}
			return false
		}
	}
	return true
}

// exitStatus returns the status as a shell would: 128+N for signal N.
func exitStatus(ps *os.ProcessState) int {
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ps.ExitCode()
}

// writeOutput writes what an action wrote on one stream, escaped, each
// line indented when indent is set, ending it with a newline if it lacks
// one, then how much was left out.
func writeOutput(b *strings.Builder, c *cappedBuffer, indent bool) {
	s := escapeOutput(c.buf.String())
	if s != "" && !strings.HasSuffix(s, "\n") {
		s += "\n"
	}
	if !indent {
		b.WriteString(s)
	} else {
		// Empty lines too: with -stdout an empty line ends a message.
		for line := range strings.Lines(s) {
			b.WriteString("  ")
			b.WriteString(line)
		}
	}
	if c.dropped > 0 {
		fmt.Fprintf(b, "[famids: %d more bytes left out]\n", c.dropped)
	}
}

// escapeOutput escapes, as Go quotes them, the control characters of s but
// newline and tab, the Unicode line and paragraph separators, and every
// byte that is not UTF-8: so an action's output can neither forge a line
// of its report nor send escape sequences to the terminal of whoever reads
// it.
func escapeOutput(s string) string {
	var b strings.Builder
	done := 0 // s[:done] is in b
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if !mustEscape(r, n) {
			i += n
			continue
		}
		if done == 0 {
			b.Grow(len(s) + 16)
		}
		b.WriteString(s[done:i])
		if r == utf8.RuneError && n == 1 {
			fmt.Fprintf(&b, `\x%02x`, s[i])
		} else {
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		}
		i += n
		done = i
	}
	if done == 0 {
		return s
	}
	b.WriteString(s[done:])
	return b.String()
}

// mustEscape reports whether escapeOutput escapes rune r, of n bytes.
func mustEscape(r rune, n int) bool {
	switch {
	case r == '\n' || r == '\t':
		return false
	case r == utf8.RuneError && n == 1: // not UTF-8; U+FFFD itself takes 3 bytes
		return true
	case r < utf8.RuneSelf:
		return r < ' ' || r == 0x7f
	}
	return unicode.IsControl(r) || r == '\u2028' || r == '\u2029'
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
