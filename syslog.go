package main

// With -syslog, every report and notice is also logged, so that a log
// server keeps a copy an intruder cannot take back. A system logger that
// is gone, or whose socket is full, must not hold famids up: lines go
// through a queue to a goroutine of their own.

import (
	"fmt"
	"log/syslog"
	"os"
	"sync"
	"time"
)

// A logger writes lines to syslog from its own goroutine.
type logger struct {
	lines   chan string
	mu      sync.Mutex
	dropped int             // lines the queue had no room for since the last one written
	warned  map[string]bool // what went wrong, said on standard error once
	done    chan struct{}
}

// loggerQueue is how many lines wait for the system logger at most; past
// that, lines are counted, not kept: syslog holds a copy of what is
// mailed, not the only one.
const loggerQueue = 1024

// redialEvery is how often a logger that could not reach the system
// logger tries again.
const redialEvery = 10 * time.Second

// newLogger starts a logger. It tries the system logger at once, so that
// one that cannot be reached is said at start-up; the error is returned,
// and the logger tries again later.
func newLogger() (*logger, error) {
	l := &logger{lines: make(chan string, loggerQueue), warned: make(map[string]bool), done: make(chan struct{})}
	w, err := dialSyslog()
	go l.run(w)
	return l, err
}

// warn says msg on standard error, once.
func (l *logger) warn(msg string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.warned[msg] {
		l.warned[msg] = true
		fmt.Fprintf(os.Stderr, "famids: %s\n", msg)
	}
}

// log queues line; it never waits.
func (l *logger) log(line string) {
	select {
	case l.lines <- line:
	default:
		l.mu.Lock()
		l.dropped++
		l.mu.Unlock()
	}
}

// close stops the logger; lines still queued are given up.
func (l *logger) close() {
	close(l.lines)
	select {
	case <-l.done:
	case <-time.After(time.Second): // a logger that does not take them
	}
}

func (l *logger) run(w *syslog.Writer) {
	defer close(l.done)
	var retry time.Time
	for line := range l.lines {
		if w == nil && time.Now().After(retry) {
			var err error
			if w, err = dialSyslog(); err != nil {
				l.warn(fmt.Sprintf("-syslog: %s; reports are still mailed, famids tries again every %v", quoteIfNeeded(err.Error()), redialEvery))
				retry = time.Now().Add(redialEvery)
			}
		}
		if w == nil {
			continue // not reachable: mail has it
		}
		l.mu.Lock()
		dropped := l.dropped
		l.dropped = 0
		l.mu.Unlock()
		if dropped > 0 {
			line = fmt.Sprintf("%d line(s) not logged (the system logger was too slow); %s", dropped, line)
		}
		if err := w.Warning(line); err != nil {
			l.warn(fmt.Sprintf("-syslog: %s; reports are still mailed", quoteIfNeeded(err.Error())))
			w.Close()
			w = nil
		}
	}
	if w != nil {
		w.Close()
	}
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
