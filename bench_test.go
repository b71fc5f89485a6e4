package main

// Benchmarks of what famids does per event, per report and per watched
// file. The side-by-side comparison with its peers is in compare_test.go.
//
//	go test -run '^$' -bench . -benchmem .

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// benchDaemon returns a daemon watching the entries of conf, mailing
// nowhere, with no state.
func benchDaemon(b testing.TB, conf string) *daemon {
	b.Helper()
	cfg, problems := parseConfig("bench.conf", conf)
	if len(problems) > 0 {
		b.Fatalf("configuration: %v", problems)
	}
	m := newMailer(nil, "root", io.Discard, io.Discard)
	b.Cleanup(func() { m.close(time.Now().Add(time.Second)) })
	*stateFile = ""
	d, err := newDaemon(cfg, m)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		d.w.Close()
		d.poll.close()
	})
	d.start(nil)
	runJobs(d, func() bool { return d.ready })
	return d
}

// runJobs runs the daemon's jobs, as its loop would, until cond holds.
func runJobs(d *daemon, cond func() bool) {
	for !cond() {
		d.jobs.pool.await(10 * time.Millisecond)
		for _, j := range d.jobs.pool.take() {
			j.done()
		}
		d.flush(time.Now())
	}
}

// recordAll records paths in a pool of its own, and returns their
// records once all are taken.
func recordAll(paths []string, prev map[string]attrs) map[string]attrs {
	rc := newRecorder()
	p := newPool(func() {})
	out := make(map[string]attrs, len(paths))
	left := len(paths)
	for _, path := range paths {
		var pa *attrs
		if a, ok := prev[path]; ok {
			pa = &a
		}
		var a attrs
		p.submit(&job{path: path,
			work: func(ctx context.Context, j *job) { a = rc.recordJob(ctx, j, path, pa, "", true) },
			done: func() { out[path] = a; left-- }})
	}
	for left > 0 {
		p.await(10 * time.Millisecond)
		for _, j := range p.take() {
			j.done()
		}
	}
	return out
}

// rawEvents encodes events as the kernel does.
func rawEvents(evs []event) []byte {
	var buf bytes.Buffer
	for _, ev := range evs {
		n := (len(ev.name) + 1 + 15) / 16 * 16
		if ev.name == "" {
			n = 0
		}
		binary.Write(&buf, binary.NativeEndian, unix.InotifyEvent{Wd: int32(ev.wd), Mask: ev.mask, Cookie: ev.cookie, Len: uint32(n)})
		name := make([]byte, n)
		copy(name, ev.name)
		buf.Write(name)
	}
	return buf.Bytes()
}

// stormEvents returns, for the watch of dir, n events of a storm on names
// that do not matter: create, modify, delete.
func stormEvents(d *daemon, dir string, n int) []event {
	wd := -1
	for w, wt := range d.w.byWd {
		if wt.path == dir && len(wt.all) > 0 {
			wd = w
		}
	}
	masks := []uint32{unix.IN_CREATE, unix.IN_MODIFY, unix.IN_DELETE}
	evs := make([]event, n)
	for i := range evs {
		evs[i] = event{wd: wd, mask: masks[i%3], name: "junk" + strconv.Itoa(i/3)}
	}
	return evs
}

// BenchmarkStormEvent is the cost of one event of a storm on names that
// do not matter, from the bytes the kernel gives to the decision to ignore
// it.
func BenchmarkStormEvent(b *testing.B) {
	dir := b.TempDir()
	d := benchDaemon(b, dir+", , passwd | shadow | *.conf\n")
	const batch = 512
	raw := rawEvents(stormEvents(d, dir, batch))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += batch {
		evs, err := parseEvents(raw, nil)
		if err != nil {
			b.Fatal(err)
		}
		d.handle(evs)
	}
	b.StopTimer()
	if len(d.bursts.pending) != 0 {
		b.Fatalf("%d bursts pending, want none", len(d.bursts.pending))
	}
}

// BenchmarkStorm floods a watched directory with real file operations,
// while famids reads and handles the events, until it has seen the last
// one. The generator's system calls are included: compare it with
// BenchmarkStormUnwatched. "by" reads fanotify's events too, as famids
// does as root; "inotify" only inotify's.
func BenchmarkStorm(b *testing.B) {
	b.Run("by", func(b *testing.B) { benchStorm(b, true) })
	b.Run("inotify", func(b *testing.B) { benchStorm(b, false) })
}

func benchStorm(b *testing.B, by bool) {
	dir := b.TempDir()
	d := benchDaemon(b, dir+", , passwd | shadow | done\n")
	if by && d.w.fan == nil {
		b.Fatalf("no fanotify group: %s", d.by.why)
	}
	if !by && d.w.fan != nil {
		unix.Close(d.w.fan.fd) // its marks go with it
		d.w.fan = nil
	}
	r := &eventReader{src: d.w, retry: time.Second, buf: make([]byte, 64<<10)}
	done := filepath.Join(dir, "done")
	b.ResetTimer()
	go func() {
		storm(b, dir, b.N)
		writeFile(b, done, "")
	}()
	for d.bursts.gathering(done) == nil {
		if err := pump(d, r, -1); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if len(d.bursts.pending) != 1 {
		b.Fatalf("%d bursts pending, want the one on done", len(d.bursts.pending))
	}
}

// pump is one turn of the daemon's loop on its event queues, as run
// does it: wait for events (at most timeout; -1: until there are some,
// or a storm's pause ends), read and handle them, and take the jobs done.
func pump(d *daemon, r *eventReader, timeout time.Duration) error {
	now := time.Now()
	if at := r.resumeAt(now); !at.IsZero() && (timeout < 0 || at.Sub(now) < timeout) {
		timeout = max(at.Sub(now), 0)
	}
	readable, fanReadable, _ := d.poll.wait(d.w.fd, d.by.fd(), timeout, r.waiting(now))
	if err := d.take(r, readable, fanReadable); err != nil {
		return err
	}
	d.finishJobs()
	d.by.unmark()
	return nil
}

// BenchmarkStormUnwatched is BenchmarkStorm's file operations alone.
func BenchmarkStormUnwatched(b *testing.B) {
	storm(b, b.TempDir(), b.N)
}

// storm creates, writes, closes and removes n files in dir.
func storm(b testing.TB, dir string, n int) {
	data := []byte("junk\n")
	for i := range n {
		p := filepath.Join(dir, "junk"+strconv.Itoa(i))
		if err := os.WriteFile(p, data, 0o644); err != nil {
			b.Error(err)
			return
		}
		if err := os.Remove(p); err != nil {
			b.Error(err)
			return
		}
	}
}

// BenchmarkReport is one report: stat and hash a 16 KiB file, format.
func BenchmarkReport(b *testing.B) {
	f := filepath.Join(b.TempDir(), "ls")
	writeFile(b, f, string(bytes.Repeat([]byte("x"), 16<<10)))
	before := statPath(f)
	b.ReportAllocs()
	for b.Loop() {
		r := &report{Path: f, Events: []string{"change"}, Host: "web1", Time: time.Now(), Before: before, After: statPath(f)}
		_ = r.body()
	}
}

// benchFiles makes n files of 16 KiB.
func benchFiles(b *testing.B, n int) []string {
	b.Helper()
	dir := b.TempDir()
	data := bytes.Repeat([]byte("famids\n"), 16<<10/7)
	paths := make([]string, n)
	for i := range paths {
		paths[i] = filepath.Join(dir, fmt.Sprintf("f%05d", i))
		if err := os.WriteFile(paths[i], data, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	return paths
}

// BenchmarkRecord1000 records 1,000 files of 16 KiB, hashing each: the
// baseline at start-up.
func BenchmarkRecord1000(b *testing.B) {
	paths := benchFiles(b, 1000)
	for b.Loop() {
		recordAll(paths, nil)
	}
}

// BenchmarkRescan1000 compares 1,000 unchanged files of 16 KiB with their
// record: the rescan after an overflow or a resume.
func BenchmarkRescan1000(b *testing.B) {
	paths := benchFiles(b, 1000)
	record := recordAll(paths, nil)
	for b.Loop() {
		recordAll(paths, record)
	}
}

// BenchmarkDigest10000 is a flood: 10,000 reports in a minute, past
// -max-mails, folded into one digest and sent. Its CPU time per op and
// the memory it allocates are what a flood costs.
func BenchmarkDigest10000(b *testing.B) {
	dir := b.TempDir()
	d := benchDaemon(b, dir+"\n")
	after := attrs{Exists: true, Type: "file", Mode: 0o644, Size: 5, Mtime: time.Now(), Ctime: time.Now(),
		Inode: 7, Links: 1, SHA256: strings.Repeat("ab", 32)}
	paths := make([]string, 10000)
	for i := range paths {
		paths[i] = filepath.Join(dir, fmt.Sprintf("junk%05d", i))
	}
	b.ReportAllocs()
	var digest int
	for b.Loop() {
		for _, p := range paths {
			d.report(&burst{path: p, told: true, events: []string{"create"}, entries: []string{dir}, first: time.Now()}, after)
		}
		digest = 0
		for _, dg := range d.out.flood.digests(time.Now(), true) {
			digest += len(dg.reports)
		}
		for _, p := range paths {
			d.base.recs.remove(p)
		}
	}
	b.ReportMetric(float64(digest), "digest-bytes")
}
