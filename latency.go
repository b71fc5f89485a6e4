package main

import "time"

// A stages is when one report passed each stage of its way, from the
// loop's wake-up to the report handed to the mailer, for
// BenchmarkReportLatency. The daemon takes these times only while its
// traced hook is set, which it never is in production: a burst then
// carries no stages, and each stage of a report's way costs a nil check.
type stages struct {
	woke       time.Time // poll(2) returned
	read       time.Time // inotify's events were read
	handed     time.Time // they were routed into a burst, whose record was handed to the pool
	recording  time.Time // a worker began the record
	recorded   time.Time // the record was made
	fanRead    time.Time // fanotify's events were read
	glanced    time.Time // the loop's glance at the writer ended
	attributed time.Time // the rest of what is told of the writer was read (readMore)
	formatted  time.Time // the report was formatted and handed to the mailer
}

// A tracer hands the stages of each report to hook, in
// BenchmarkReportLatency; turn holds those of the loop's turn meanwhile.
// Its hook is nil in production.
type tracer struct {
	hook func(*stages)
	turn stages
}

// on reports whether reports are traced.
func (t *tracer) on() bool { return t.hook != nil }

// burst returns the stages of a burst that begins in this turn of the
// loop, or nil when nothing traces.
func (t *tracer) burst() *stages {
	if !t.on() {
		return nil
	}
	s := t.turn
	return &s
}

// report hands the stages of b, reported now, to the hook, with those of
// the first process it names.
func (t *tracer) report(b *burst) {
	s := b.trace
	if s == nil {
		return
	}
	s.formatted = time.Now()
	if len(b.by.by) > 0 {
		if l := b.by.by[0].trace; l != nil {
			s.fanRead, s.glanced, s.attributed = l.fanRead, l.glanced, l.attributed
		}
	}
	t.hook(s)
}
