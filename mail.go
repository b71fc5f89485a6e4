package main

import (
	"context"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

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
