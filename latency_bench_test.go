package main

import (
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// BenchmarkReportLatency is the latency comparison's report (compare_test.go),
// broken into the stages of its way: a daemon runs its loop on a watched
// file, with -settle 0 and reports printed on a pipe, and each op appends
// a line to the file, then waits for the whole report to be written. The
// daemon's timestamps (stages) tell, as the median over the ops in µs:
//
//	wake         from the write(2) to poll(2) returning in the loop
//	read         the loop reading inotify's events
//	route        routing them into a burst, and handing out its record
//	record-start the record waiting for a worker
//	record       the record, from handed out to made (record-start included)
//	attribution  from fanotify's events read to the writer read whole
//	glance       the part of it on the loop (stat, status, loginuid, ...)
//	format       from the later of record and attribution to the report
//	             formatted and handed to the mailer
//	delivery     from there to the end of the report's write(2)
//	total        from the write(2) to the end of the report's
//
// As root the writer is named (attribution); otherwise those stages are
// left out. Between ops it sleeps 2 ms, as between real changes: the loop
// waits in poll(2) each time, from cold caches. Give it a count of ops:
//
//	go test -run '^$' -bench ReportLatency -benchtime 300x .
func BenchmarkReportLatency(b *testing.B) {
	dir := b.TempDir()
	f := filepath.Join(dir, "passwd")
	writeFile(b, f, "root:x:0:0:root:/root:/bin/bash\n")
	out := newStampWriter(b)
	d, traces := tracedDaemon(b, f+"\n", out)

	var times [][2]time.Time // write, delivered
	var all []stages
	for b.Loop() {
		b.StopTimer()
		time.Sleep(2 * time.Millisecond) // let the daemon go idle
		b.StartTimer()
		wrote := appendTimed(b, f, "user"+strconv.Itoa(len(all))+":x:1000:1000::/home/user:/bin/sh\n")
		var delivered time.Time
		select {
		case delivered = <-out.at:
		case <-time.After(10 * time.Second):
			b.Fatal("no report within 10s")
		}
		all = append(all, traces.next(b))
		times = append(times, [2]time.Time{wrote, delivered})
	}
	reportStages(b, all, times, d.w.fan != nil)
}

// reportStages reports the median of each stage of the reports.
func reportStages(b *testing.B, all []stages, times [][2]time.Time, by bool) {
	stage := func(name string, from, to func(int) time.Time) {
		ds := make([]float64, len(all))
		for i := range all {
			ds[i] = float64(to(i).Sub(from(i))) / float64(time.Microsecond)
		}
		slices.Sort(ds)
		b.ReportMetric(ds[len(ds)/2], name+"-µs")
	}
	s := func(i int) *stages { return &all[i] }
	wrote := func(i int) time.Time { return times[i][0] }
	stage("wake", wrote, func(i int) time.Time { return s(i).woke })
	stage("read", func(i int) time.Time { return s(i).woke }, func(i int) time.Time { return s(i).read })
	stage("route", func(i int) time.Time { return s(i).read }, func(i int) time.Time { return s(i).handed })
	stage("record-start", func(i int) time.Time { return s(i).handed }, func(i int) time.Time { return s(i).recording })
	stage("record", func(i int) time.Time { return s(i).handed }, func(i int) time.Time { return s(i).recorded })
	ready := func(i int) time.Time { return s(i).recorded }
	if by {
		stage("attribution", func(i int) time.Time { return s(i).fanRead }, func(i int) time.Time { return s(i).attributed })
		stage("glance", func(i int) time.Time { return s(i).fanRead }, func(i int) time.Time { return s(i).glanced })
		ready = func(i int) time.Time {
			if s(i).attributed.After(s(i).recorded) {
				return s(i).attributed
			}
			return s(i).recorded
		}
	}
	stage("format", ready, func(i int) time.Time { return s(i).formatted })
	stage("delivery", func(i int) time.Time { return s(i).formatted }, func(i int) time.Time { return times[i][1] })
	stage("total", wrote, func(i int) time.Time { return times[i][1] })
	b.ReportMetric(0, "ns/op") // the op's time includes the daemon's waits for the next op
}

// appendTimed appends text to path, as compare_test.go's writes do, and
// returns when its write(2) began.
func appendTimed(b *testing.B, path, text string) time.Time {
	fd, err := syscall.Open(path, syscall.O_WRONLY|syscall.O_APPEND|syscall.O_CLOEXEC, 0)
	must(b, err)
	at := time.Now()
	_, err = syscall.Write(fd, []byte(text))
	must(b, err)
	must(b, syscall.Close(fd))
	return at
}

// A traces is the stages of the reports the daemon sent, taken from its
// loop without waking a goroutine: one woken there would run before the
// mailer's, and delay the report's write.
type traces struct {
	mu  sync.Mutex
	all []stages
}

func (t *traces) add(s *stages) {
	t.mu.Lock()
	t.all = append(t.all, *s)
	t.mu.Unlock()
}

// next returns the stages of the oldest report not returned yet; its
// write may end before the loop hands them over.
func (t *traces) next(b *testing.B) stages {
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		t.mu.Lock()
		if len(t.all) > 0 {
			s := t.all[0]
			t.all = t.all[1:]
			t.mu.Unlock()
			return s
		}
		t.mu.Unlock()
		time.Sleep(50 * time.Microsecond)
	}
	b.Fatal("a report was written, but its stages were not handed over within 10s")
	return stages{}
}

// tracedDaemon runs, in its loop, a daemon watching the entries of conf
// with -settle 0, printing its reports on out, with no state and no limit
// on the mails a minute; it returns the stages of each report.
func tracedDaemon(b *testing.B, conf string, out io.Writer) (*daemon, *traces) {
	b.Helper()
	oldSettle, oldMails, oldState := *settle, *maxMails, *stateFile
	*settle, *maxMails, *stateFile = 0, 1<<30, ""
	b.Cleanup(func() { *settle, *maxMails, *stateFile = oldSettle, oldMails, oldState })
	cfg, problems := parseConfig("bench.conf", conf)
	if len(problems) > 0 {
		b.Fatalf("configuration: %v", problems)
	}
	m := newMailer(nil, "root", out, io.Discard)
	d, err := newDaemon(cfg, m)
	if err != nil {
		b.Fatal(err)
	}
	tr := new(traces)
	d.trace.hook = tr.add
	d.start(nil)
	runJobs(d, func() bool { return d.ready })
	sigs := make(chan os.Signal, 1)
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		d.loop(sigs)
	}()
	b.Cleanup(func() {
		sigs <- syscall.SIGTERM // the loop stops the daemon, closing its watches and the mailer
		<-stopped
		d.close()
	})
	return d, tr
}

// A stampWriter writes what the mailer prints on a pipe, as -stdout does
// to a reader, and sends when each write ended.
type stampWriter struct {
	w  *os.File
	at chan time.Time
}

func newStampWriter(b *testing.B) *stampWriter {
	r, w, err := os.Pipe()
	must(b, err)
	go io.Copy(io.Discard, r)
	b.Cleanup(func() { w.Close(); r.Close() })
	return &stampWriter{w: w, at: make(chan time.Time, 16)}
}

func (s *stampWriter) Write(p []byte) (int, error) {
	n, err := s.w.Write(p)
	s.at <- time.Now()
	return n, err
}
