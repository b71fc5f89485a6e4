package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// A message is one mail: a report, an action report or a notice.
type message struct {
	Subject string
	Body    string
	Paths   []string // what a report is about, for famids: the mailer only carries them
}

const (
	// mailQueueCap is how many messages may wait for the mail program. Past
	// it, a message goes to standard error at once: a mail program that
	// hangs must not make famids hold every report of a flood in memory.
	mailQueueCap = 4096
	// mailOutputCap is how much of what the mail program writes is kept
	// for the error that says why it failed.
	mailOutputCap = 4096
	// mailWaitDelay is how long a try waits, after the mail program has
	// exited or been killed, for what it left behind to close its pipes.
	mailWaitDelay = 2 * time.Second
	// closeGrace is how long close waits past its deadline for the try in
	// progress to end before it gives the message up, and closeLimit how
	// long past it close returns at the latest, however errOut fares.
	closeGrace = 500 * time.Millisecond
	closeLimit = 900 * time.Millisecond
)

// errStopping is why a message that comes, or is still waiting, once famids
// stops is written to errOut instead.
var errStopping = errors.New("famids was stopping")

// A mailer delivers messages one at a time, in order, from its own
// goroutine, so that neither a mail program nor a reader of standard output
// ever holds up the watching: send only queues.
type mailer struct {
	argv     []string  // the mail program; nil prints on out instead
	to       string    // the recipient
	out      io.Writer // for -stdout
	errOut   io.Writer // where undeliverable messages end up, whole
	retries  []time.Duration
	timeout  time.Duration // for one try of the mail program
	maxQueue int           // messages waiting, past which send writes to errOut

	wake    chan struct{}   // a message was queued
	closing chan struct{}   // closed by close: no more waiting between tries
	expired context.Context // done at close's deadline: tries are cut there
	expire  context.CancelFunc
	done    chan struct{} // closed when the goroutine returns
	pending atomic.Int64  // messages queued or being delivered

	mu        sync.Mutex // for what follows; never held while writing
	queue     []message  // waiting, oldest first
	current   *message   // being delivered
	closed    bool
	abandoned bool      // close gave up on the goroutine: what it holds is close's
	failed    []message // written to errOut since close was called
}

func newMailer(argv []string, to string, out, errOut io.Writer) *mailer {
	m := &mailer{
		argv:     argv,
		to:       to,
		out:      out,
		errOut:   errOut,
		retries:  []time.Duration{time.Second, 3 * time.Second},
		timeout:  30 * time.Second,
		maxQueue: mailQueueCap,
		wake:     make(chan struct{}, 1),
		closing:  make(chan struct{}),
		done:     make(chan struct{}),
	}
	m.expired, m.expire = context.WithCancel(context.Background())
	go m.run()
	return m
}

// check tells whether the mail program can be run at all, before any
// message needs it: found, a regular file, executable.
func (m *mailer) check() error {
	if m.argv == nil {
		return nil
	}
	path, err := exec.LookPath(m.argv[0]) // executable, not a directory
	if err != nil {
		return fmt.Errorf("cannot run the mail program: %w", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("cannot run the mail program: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("cannot run the mail program: %s is not a regular file", quoteIfNeeded(path))
	}
	return nil
}

// send queues a message; it never waits.
func (m *mailer) send(subject, body string) {
	m.sendMessage(message{Subject: subject, Body: body})
}

// sendMessage queues msg; it never waits for the mail program or for a
// reader of standard output. A message that cannot be queued, the queue
// being full or famids stopping, is written to errOut at once.
func (m *mailer) sendMessage(msg message) {
	if err := m.enqueue(msg); err != nil {
		m.writeUndelivered(msg, err)
	}
}

func (m *mailer) enqueue(msg message) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case m.closed:
		return errStopping
	case len(m.queue) >= m.maxQueue:
		return fmt.Errorf("the mail queue is full (%d messages waiting)", len(m.queue))
	}
	m.queue = append(m.queue, msg)
	m.pending.Add(1)
	select {
	case m.wake <- struct{}{}:
	default: // the goroutine is already told
	}
	return nil
}

// idle reports whether every message sent so far is delivered, or written
// to errOut.
func (m *mailer) idle() bool {
	return m.pending.Load() == 0
}

// close delivers what is queued, giving each message one try at most, cut
// at deadline. It returns by deadline and a second at most, whatever the
// mail program or a reader of standard output does, with the messages that
// were not delivered: each is written whole to errOut instead. Calling it
// again returns nil at once.
func (m *mailer) close(deadline time.Time) []message {
	m.mu.Lock()
	again := m.closed
	m.closed = true
	m.mu.Unlock()
	if again {
		return nil
	}
	if d := time.Until(deadline); d > 0 {
		time.AfterFunc(d, m.expire)
	} else {
		m.expire()
	}
	defer m.expire() // nothing the mailer started outlives close
	close(m.closing)
	select {
	case <-m.done:
	case <-time.After(time.Until(deadline.Add(closeGrace))):
	}
	return m.abandon(deadline.Add(closeLimit))
}

// abandon takes what the goroutine has not delivered yet, writes it to
// errOut, and returns it after what failed since close was called. Writing
// to errOut is given until limit: it is standard error, which may be the
// same stalled pipe as standard output.
func (m *mailer) abandon(limit time.Time) []message {
	m.mu.Lock()
	m.abandoned = true
	left := m.queue
	if m.current != nil {
		left = append([]message{*m.current}, left...)
	}
	m.queue, m.current = nil, nil
	undelivered := append(m.failed, left...)
	m.mu.Unlock()
	if len(left) == 0 {
		return undelivered
	}
	written := make(chan struct{})
	go func() {
		defer close(written)
		for _, msg := range left {
			m.writeUndelivered(msg, errStopping)
			m.pending.Add(-1)
		}
	}()
	select {
	case <-written:
	case <-time.After(time.Until(limit)):
	}
	return undelivered
}

func (m *mailer) run() {
	defer close(m.done)
	for {
		msg, ok := m.next()
		if !ok {
			return
		}
		m.finish(msg, m.deliver(msg))
	}
}

// next waits for the next message to deliver. It returns false once famids
// stops and nothing, or no time, is left to deliver it.
func (m *mailer) next() (message, bool) {
	for {
		m.mu.Lock()
		if len(m.queue) > 0 && m.expired.Err() == nil {
			msg := m.queue[0]
			m.queue[0] = message{} // the queue's array must not keep it
			m.queue = m.queue[1:]
			m.current = &msg
			m.mu.Unlock()
			return msg, true
		}
		closed := m.closed
		m.mu.Unlock()
		if closed {
			return message{}, false
		}
		select {
		case <-m.wake:
		case <-m.closing:
		}
	}
}

// finish records how msg's delivery ended, and writes it to errOut when it
// failed. Once close has given up on the goroutine, msg is close's.
func (m *mailer) finish(msg message, err error) {
	m.mu.Lock()
	if m.abandoned {
		m.mu.Unlock()
		return
	}
	m.current = nil
	if err != nil && m.closed {
		m.failed = append(m.failed, msg)
	}
	m.mu.Unlock()
	if err != nil {
		m.writeUndelivered(msg, err)
	}
	m.pending.Add(-1)
}

// deliver tries msg, and again after each delay in m.retries while famids
// runs; once it stops, a message is tried once more at most, and not at
// all past close's deadline. It returns why the last try failed.
func (m *mailer) deliver(msg message) error {
	for try := 0; ; try++ {
		if m.expired.Err() != nil {
			return errStopping
		}
		err := m.try(msg)
		if err == nil || try == len(m.retries) || m.stopping() {
			return err
		}
		fmt.Fprintf(m.errOut, "famids: %s: %v; trying again in %v\n", m.what(), err, m.retries[try])
		m.pause(m.retries[try])
	}
}

func (m *mailer) try(msg message) error {
	if m.argv == nil {
		return m.print(msg)
	}
	return m.mailOnce(msg)
}

func (m *mailer) stopping() bool {
	select {
	case <-m.closing:
		return true
	default:
		return false
	}
}

// pause waits d, or until famids stops.
func (m *mailer) pause(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-m.closing:
	}
}

// what says what the mailer does, for its messages on errOut.
func (m *mailer) what() string {
	if m.argv == nil {
		return "printing"
	}
	return "mail to " + m.to
}

// writeUndelivered writes msg whole to errOut, after a line that says why.
// One write, so that a message never mixes with another's lines.
func (m *mailer) writeUndelivered(msg message, err error) {
	verb := "mail this message to " + m.to
	if m.argv == nil {
		verb = "print this message"
	}
	fmt.Fprintf(m.errOut, "famids: could not %s: %v\nSubject: %s\n%s\n", verb, err, msg.Subject, msg.Body)
}

// print writes msg on out as a line "Subject: SUBJECT", the body and an
// empty line, with one write, so that lines of two messages never mix.
func (m *mailer) print(msg message) error {
	b := make([]byte, 0, len("Subject: \n\n")+len(msg.Subject)+len(msg.Body))
	b = append(append(append(append(b, "Subject: "...), msg.Subject...), '\n'), msg.Body...)
	_, err := m.out.Write(append(b, '\n'))
	return err
}

// mailOnce runs the mail program as MAIL -s SUBJECT ADDR, with the body on
// its standard input and no shell in between. It is killed, with every
// process it started, after m.timeout or at close's deadline.
func (m *mailer) mailOnce(msg message) error {
	ctx, cancel := context.WithTimeout(m.expired, m.timeout)
	defer cancel()
	args := append(append([]string(nil), m.argv[1:]...), "-s", msg.Subject, m.to)
	cmd := exec.CommandContext(ctx, m.argv[0], args...)
	cmd.Stdin = strings.NewReader(msg.Body)
	out := &cappedBuffer{max: mailOutputCap}
	cmd.Stdout, cmd.Stderr = out, out
	err := runMail(cmd)
	switch {
	case cmd.ProcessState != nil && cmd.ProcessState.Success():
		// Its exit status is what counts, not what it left behind.
		return nil
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		err = fmt.Errorf("killed after %v", m.timeout)
	case ctx.Err() != nil:
		err = fmt.Errorf("killed: %w", errStopping)
	case out.Len() > 0:
		err = fmt.Errorf("%w: %s", err, quoteIfNeeded(strings.TrimSpace(out.buf.String())))
	}
	return fmt.Errorf("%s: %w", m.argv[0], err)
}

// runMail runs cmd as the leader of its own process group, killed whole
// when cmd's context is done. A process it leaves behind holding its pipes
// holds the run for mailWaitDelay at most; then, and as soon as cmd has
// exited and its pipes are closed, whatever is left in the group is killed,
// so that nothing cmd started outlives the run. A process that detached
// itself (setsid, as daemon(3) does, to deliver in the background) has
// left the group by the time it closes the pipes, and is spared.
func runMail(cmd *exec.Cmd) error {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return killGroup(cmd.Process.Pid) }
	cmd.WaitDelay = mailWaitDelay
	if err := cmd.Start(); err != nil {
		return err
	}
	err := cmd.Wait()
	// While any of the group lives, its id cannot go to another process.
	killGroup(cmd.Process.Pid)
	return err
}
