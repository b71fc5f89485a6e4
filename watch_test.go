package main

// Unit tests of the watches: decoding and reading inotify events, path
// resolution, and the watch bookkeeping on a real inotify instance.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// rawEvent encodes one inotify event as the kernel does, its name (if any)
// padded with NULs to padTo bytes.
func rawEvent(wd int32, mask, cookie uint32, name string, padTo int) []byte {
	nameLen := 0
	if name != "" {
		nameLen = max(len(name)+1, padTo)
	}
	b := make([]byte, unix.SizeofInotifyEvent+nameLen)
	binary.NativeEndian.PutUint32(b[0:], uint32(wd))
	binary.NativeEndian.PutUint32(b[4:], mask)
	binary.NativeEndian.PutUint32(b[8:], cookie)
	binary.NativeEndian.PutUint32(b[12:], uint32(nameLen))
	copy(b[unix.SizeofInotifyEvent:], name)
	return b
}

func TestParseEvents(t *testing.T) {
	// Two events as the kernel lays them out: names padded to 16 bytes,
	// so that each event starts aligned.
	buf := append(rawEvent(3, unix.IN_MODIFY, 0, "", 0), rawEvent(7, unix.IN_MOVED_FROM, 42, "passwd", 16)...)
	buf = append(buf, rawEvent(-1, unix.IN_Q_OVERFLOW, 0, "", 0)...)
	// Copy into an aligned buffer, as the kernel's reads are.
	aligned := make([]byte, len(buf), 4096)
	copy(aligned, buf)
	evs, err := parseEvents(aligned, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []event{
		{wd: 3, mask: unix.IN_MODIFY},
		{wd: 7, mask: unix.IN_MOVED_FROM, cookie: 42, name: "passwd"},
		{wd: -1, mask: unix.IN_Q_OVERFLOW},
	}
	if !slices.Equal(evs, want) {
		t.Errorf("parseEvents = %+v, want %+v", evs, want)
	}
	if evs, err := parseEvents(nil, nil); err != nil || len(evs) != 0 {
		t.Errorf("parseEvents(nil, nil) = %v, %v; want nothing", evs, err)
	}
}

func TestParseEventsTruncated(t *testing.T) {
	full := make([]byte, 0, 4096)
	full = append(full, rawEvent(3, unix.IN_MODIFY, 0, "", 0)...)
	full = append(full, rawEvent(7, unix.IN_CREATE, 0, "shadow", 16)...)
	first := []event{{wd: 3, mask: unix.IN_MODIFY}}
	for _, n := range []int{
		unix.SizeofInotifyEvent + 5,        // the second header cut short
		unix.SizeofInotifyEvent*2 + 4,      // the second name cut short
		unix.SizeofInotifyEvent*2 + 16 - 1, // one byte short
	} {
		evs, err := parseEvents(full[:n], nil)
		if err == nil {
			t.Errorf("parseEvents of %d of %d bytes: no error", n, len(full))
		}
		if !slices.Equal(evs, first) {
			t.Errorf("parseEvents of %d of %d bytes = %+v, want the whole first event %+v", n, len(full), evs, first)
		}
	}
	if _, err := parseEvents(full[:3], nil); err == nil {
		t.Error("parseEvents of 3 bytes: no error")
	}
}

// A fakeReader returns its results in turn, then nothing.
type fakeReader struct {
	results []fakeRead
	reads   int
}

type fakeRead struct {
	data []byte
	err  error
}

func (f *fakeReader) Read(p []byte) (int, error) {
	f.reads++
	if len(f.results) == 0 {
		return 0, nil
	}
	r := f.results[0]
	f.results = f.results[1:]
	return copy(p, r.data), r.err
}

func TestEventReaderRetry(t *testing.T) {
	batch := rawEvent(5, unix.IN_ATTRIB, 0, "hosts", 16)
	eio := &os.PathError{Op: "read", Path: "inotify", Err: syscall.EIO}
	tests := []struct {
		name    string
		reads   []fakeRead
		batches int
		wantErr string // "" for none
	}{
		{"nothing", nil, 0, ""},
		{"one failure, then data", []fakeRead{{err: eio}, {data: batch}}, 1, ""},
		{"failures apart", []fakeRead{{err: eio}, {data: batch}, {err: eio}, {data: batch}}, 2, ""},
		{"two failures in a row", []fakeRead{{err: eio}, {err: eio}, {data: batch}}, 0, "input/output error"},
		{"data, then two failures in a row", []fakeRead{{data: batch}, {err: eio}, {err: eio}}, 1, "input/output error"},
		{"garbage twice", []fakeRead{{data: []byte{1, 2, 3}}, {data: []byte{1, 2, 3}}}, 0, "short inotify event"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := &fakeReader{results: slices.Clone(tt.reads)}
			r := &eventReader{src: src, retry: 15 * time.Second, buf: make([]byte, 4096)}
			now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
			var batches int
			var err error
			var last time.Time // of the last read
			for range len(tt.reads) + 1 {
				if !r.waiting(now) {
					if r.retrying(now) {
						t.Errorf("a retry is due at once after a failure")
					}
					if at := r.resumeAt(now); !at.Equal(last.Add(r.retry)) {
						t.Errorf("after a failure, the reader wants to be asked at %v, want %v", at, last.Add(r.retry))
					}
					now = r.resumeAt(now) // the loop waits until then
					if !r.retrying(now) {
						t.Fatalf("no retry at %v", now)
					}
				}
				var evs []event
				evs, err = r.read(now)
				last = now
				if err != nil {
					break
				}
				if len(evs) > 0 {
					batches++
					if want := []event{{wd: 5, mask: unix.IN_ATTRIB, name: "hosts"}}; !slices.Equal(evs, want) {
						t.Errorf("batch %+v, want %+v", evs, want)
					}
				}
				now = now.Add(time.Second) // apart: no storm
			}
			if tt.wantErr == "" && err != nil {
				t.Errorf("read = %v, want nil", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "inotify")) {
				t.Errorf("read = %v, want an error that says what failed and %q", err, tt.wantErr)
			}
			if tt.name == "two failures in a row" && src.reads != 2 {
				t.Errorf("%d reads, want 2: it stops at the second failure", src.reads)
			}
			if batches != tt.batches {
				t.Errorf("%d batches, want %d", batches, tt.batches)
			}
		})
	}
}

func TestEventReaderStorm(t *testing.T) {
	one := rawEvent(5, unix.IN_CREATE, 0, "junk", 16)
	many := bytes.Repeat(one, 300)
	var results []fakeRead
	for range stormMinEvents {
		results = append(results, fakeRead{data: one})
	}
	src := &fakeReader{results: append(results, fakeRead{data: many}, fakeRead{data: one})}
	r := &eventReader{src: src, retry: time.Second, buf: make([]byte, 64<<10)}
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	r.read(now)
	if !r.waiting(now) {
		t.Fatal("a lone event makes the reader pause")
	}
	// One change (IN_MODIFY, IN_ATTRIB, IN_CLOSE_WRITE), or an editor's
	// save (a dozen events), each read at once: no storm.
	for range 12 {
		now = now.Add(50 * time.Microsecond)
		r.read(now)
		if !r.waiting(now) {
			t.Fatal("the events of one save make the reader pause")
		}
	}
	for range stormMinEvents - 13 {
		now = now.Add(50 * time.Microsecond)
		r.read(now)
	}
	if r.waiting(now) || r.pause <= 0 || r.pause > maxPause {
		t.Fatalf("in a storm (%d events read at once one by one), pause %v, want a pause up to %v", stormMinEvents, r.pause, maxPause)
	}
	now = r.resumeAt(now)
	r.read(now) // 300 events piled up: still a storm
	if r.pause <= 0 {
		t.Fatalf("after 300 events at once, no pause")
	}
	now = r.resumeAt(now).Add(time.Minute)
	r.read(now) // one, much later: over
	if r.pause != 0 || !r.waiting(now) {
		t.Errorf("after the storm, pause %v, want none", r.pause)
	}
}

// tempDir returns a new temporary directory by its real path, with no
// symbolic link in it.
func tempDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// lookupsFrom returns the lookups made from dir on: those leading to dir
// itself are the same for every test.
func lookupsFrom(t *testing.T, lookups []lookup, dir string) []lookup {
	t.Helper()
	for i, l := range lookups {
		if l.dir == dir {
			return lookups[i:]
		}
	}
	t.Fatalf("no lookup in %s: %+v", dir, lookups)
	return nil
}

func TestResolve(t *testing.T) {
	dir := tempDir(t)
	mkdir := func(p string) {
		if err := os.MkdirAll(filepath.Join(dir, p), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	symlink := func(target, p string) {
		if err := os.Symlink(target, filepath.Join(dir, p)); err != nil {
			t.Fatal(err)
		}
	}
	mkdir("usr/bin")
	if err := os.WriteFile(filepath.Join(dir, "usr/bin/ls"), []byte("ls"), 0o755); err != nil {
		t.Fatal(err)
	}
	symlink("usr/bin", "bin")                 // merged /usr, relative
	symlink(filepath.Join(dir, "usr"), "abs") // absolute
	symlink("../usr/bin/ls", "usr/lslink")    // with ..
	symlink("loop2", "loop1")                 // a loop
	symlink("loop1", "loop2")                 //
	symlink("nowhere", "dangling")            // dangling
	symlink("usr/bin/ls", "filelink")         // the leaf is a link
	in := func(p string) string { return filepath.Join(dir, p) }

	// The lookups from "/" down to dir.
	top, real := resolve(dir, nil)
	if real != dir || len(top) == 0 || top[0].dir != "/" || !top[len(top)-1].leaf {
		t.Fatalf("resolve(%s) = %+v, %q", dir, top, real)
	}
	for i, l := range top {
		next := dir
		if i < len(top)-1 {
			next = top[i+1].dir
		}
		if filepath.Join(l.dir, l.name) != next {
			t.Errorf("lookup %d %+v does not lead to %s", i, l, next)
		}
		if l.leaf != (i == len(top)-1) {
			t.Errorf("lookup %d %+v: leaf is %v", i, l, l.leaf)
		}
	}

	tests := []struct {
		name    string
		path    string
		lookups []lookup // from dir on
		real    string
	}{
		{"plain path", in("usr/bin/ls"), []lookup{
			{dir, "usr", false}, {in("usr"), "bin", false}, {in("usr/bin"), "ls", true},
		}, in("usr/bin/ls")},
		{"relative symlinked directory", in("bin/ls"), []lookup{
			{dir, "bin", false}, {dir, "usr", false}, {in("usr"), "bin", false}, {in("usr/bin"), "ls", true},
		}, in("usr/bin/ls")},
		{"absolute symlink", in("abs/bin/ls"), nil, in("usr/bin/ls")},
		{"symlink with ..", in("usr/lslink"), []lookup{
			{dir, "usr", false}, {in("usr"), "lslink", true}, {dir, "usr", false}, {in("usr"), "bin", false}, {in("usr/bin"), "ls", false},
		}, in("usr/bin/ls")},
		{"the leaf is a symlink", in("filelink"), []lookup{
			{dir, "filelink", true}, {dir, "usr", false}, {in("usr"), "bin", false}, {in("usr/bin"), "ls", false},
		}, in("usr/bin/ls")},
		{"a directory", in("usr/bin"), []lookup{
			{dir, "usr", false}, {in("usr"), "bin", true},
		}, in("usr/bin")},
		{"dot and double slash", in("usr/./bin//ls"), []lookup{
			{dir, "usr", false}, {in("usr"), "bin", false}, {in("usr/bin"), "ls", true},
		}, in("usr/bin/ls")},
		{"missing leaf", in("usr/bin/sl"), []lookup{
			{dir, "usr", false}, {in("usr"), "bin", false}, {in("usr/bin"), "sl", true},
		}, ""},
		{"missing component", in("usr/sbin/ls"), []lookup{
			{dir, "usr", false}, {in("usr"), "sbin", false},
		}, ""},
		{"missing component behind a symlink", in("bin/nope/ls"), []lookup{
			{dir, "bin", false}, {dir, "usr", false}, {in("usr"), "bin", false}, {in("usr/bin"), "nope", false},
		}, ""},
		{"a file where a directory should be", in("usr/bin/ls/x"), []lookup{
			{dir, "usr", false}, {in("usr"), "bin", false}, {in("usr/bin"), "ls", false},
		}, ""},
		{"dangling symlink", in("dangling"), []lookup{
			{dir, "dangling", true}, {dir, "nowhere", false},
		}, ""},
		{"symlink loop", in("loop1"), nil, ""},
		{"symlink loop on the way", in("loop1/x"), nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lookups, real := resolveWithin(t, tt.path, 5*time.Second)
			if real != tt.real {
				t.Errorf("resolve(%s) real = %q, want %q", tt.path, real, tt.real)
			}
			if tt.lookups == nil {
				if tt.real == "" && len(lookups) > 2*maxSymlinks+len(top)+10 {
					t.Errorf("resolve(%s, nil) made %d lookups", tt.path, len(lookups))
				}
				return
			}
			got := lookupsFrom(t, lookups, dir)
			if !slices.Equal(got, tt.lookups) {
				t.Errorf("resolve(%s, nil) lookups from %s:\n got %+v\nwant %+v", tt.path, dir, got, tt.lookups)
			}
			// Those leading to dir are the same as for dir itself, none a leaf.
			n := len(lookups) - len(got)
			if n != len(top) {
				t.Errorf("resolve(%s, nil) made %d lookups before reaching %s, want %d", tt.path, n, dir, len(top))
			}
			for i := range min(n, len(top)) {
				if lookups[i] != (lookup{top[i].dir, top[i].name, false}) {
					t.Errorf("resolve(%s, nil) lookup %d = %+v, want %+v", tt.path, i, lookups[i], top[i])
				}
			}
		})
	}
	// Following an absolute link starts again at "/".
	lookups, _ := resolve(in("abs/bin/ls"), nil)
	var roots int
	for _, l := range lookups {
		if l.dir == "/" {
			roots++
		}
	}
	if roots != 2 {
		t.Errorf("resolve through an absolute link looked up %d names in /, want 2: %+v", roots, lookups)
	}
}

// resolveWithin is resolve, failing the test if it does not return in
// time (a symbolic link loop followed forever).
func resolveWithin(t *testing.T, path string, d time.Duration) ([]lookup, string) {
	t.Helper()
	type result struct {
		lookups []lookup
		real    string
	}
	done := make(chan result, 1)
	go func() {
		l, r := resolve(path, nil)
		done <- result{l, r}
	}()
	select {
	case r := <-done:
		return r.lookups, r.real
	case <-time.After(d):
		t.Fatalf("resolve(%s, nil) did not return within %v", path, d)
		return nil, ""
	}
}

// newTestWatcher returns a watcher that is closed when the test ends.
func newTestWatcher(t *testing.T) *watcher {
	t.Helper()
	w, err := newWatcher()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

// readRouted reads events from w until done says the hits routed so far
// are enough, or until the deadline; it returns every hit routed.
func readRouted(t *testing.T, w *watcher, within time.Duration, done func([]hit) bool) []hit {
	t.Helper()
	var hits []hit
	deadline := time.Now().Add(within)
	buf := make([]byte, 64*1024)
	for !done(hits) {
		n, err := readBefore(w, buf, deadline)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return hits
		}
		if err != nil {
			t.Fatal(err)
		}
		evs, err := parseEvents(buf[:n], nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range evs {
			hits = append(hits, w.route(ev, nil)...)
		}
	}
	return hits
}

// readBefore reads events from w, waiting for them until deadline at most.
func readBefore(w *watcher, buf []byte, deadline time.Time) (int, error) {
	for {
		n, err := unix.Read(w.fd, buf)
		if err != unix.EAGAIN {
			return n, err
		}
		wait := time.Until(deadline)
		if wait <= 0 {
			return 0, os.ErrDeadlineExceeded
		}
		fds := []unix.PollFd{{Fd: int32(w.fd), Events: unix.POLLIN}}
		if _, err := unix.Poll(fds, int(wait/time.Millisecond)+1); err != nil && err != unix.EINTR {
			return 0, err
		}
	}
}

// drain routes every event queued now.
func drain(t *testing.T, w *watcher) []hit {
	t.Helper()
	return readRouted(t, w, 200*time.Millisecond, func([]hit) bool { return false })
}

func hasHit(hits []hit, path string, r role, mask uint32) bool {
	return slices.ContainsFunc(hits, func(h hit) bool { return h.path == path && h.role == r && h.mask&mask != 0 })
}

func hitFor(path string, r role, mask uint32) func([]hit) bool {
	return func(hits []hit) bool { return hasHit(hits, path, r, mask) }
}

// watchOf returns the watch added for dir.
func watchOf(t *testing.T, w *watcher, dir string) *watch {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, wt := range w.byWd {
		if wt.path == dir {
			return wt
		}
	}
	t.Fatalf("no watch for %s", dir)
	return nil
}

func armedWds(w *watcher, path string) []int {
	w.mu.Lock()
	defer w.mu.Unlock()
	if a := w.armed[path]; a != nil {
		return a.wds()
	}
	return nil
}

func writeTestFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestWatcherArmRoutesModify(t *testing.T) {
	dir := tempDir(t)
	f := filepath.Join(dir, "passwd")
	writeTestFile(t, f, "root:x:0:0\n")
	w := newTestWatcher(t)
	if n := w.count(); n != 0 {
		t.Fatalf("a new watcher has %d watches", n)
	}
	became, errs := w.arm(f)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if became != "create" {
		t.Errorf("first arm of an existing file became %q, want create", became)
	}
	// One watch per directory from / down, and one on the file.
	lookups, _ := resolve(f, nil)
	if n := w.count(); n != len(lookups)+1 {
		t.Errorf("count = %d, want %d: the directories on the way and the file", n, len(lookups)+1)
	}
	if became, _ := w.arm(f); became != "" {
		t.Errorf("arming again with nothing changed became %q", became)
	}
	drain(t, w)
	writeTestFile(t, f, "root:x:0:0\nevil::0:0\n")
	hits := readRouted(t, w, 5*time.Second, hitFor(f, roleSelf, unix.IN_MODIFY))
	if !hasHit(hits, f, roleSelf, unix.IN_MODIFY) {
		t.Fatalf("no roleSelf IN_MODIFY hit for %s: %+v", f, hits)
	}
	for _, h := range hits {
		if h.path != f {
			t.Errorf("hit for another entry: %+v", h)
		}
	}
	// A change of metadata too.
	if err := os.Chmod(f, 0o600); err != nil {
		t.Fatal(err)
	}
	if hits := readRouted(t, w, 5*time.Second, hitFor(f, roleSelf, unix.IN_ATTRIB)); !hasHit(hits, f, roleSelf, unix.IN_ATTRIB) {
		t.Errorf("no roleSelf IN_ATTRIB hit after chmod: %+v", hits)
	}
	// A sibling's events reach nobody: nothing watches it.
	sib := filepath.Join(dir, "group")
	writeTestFile(t, sib, "x")
	writeTestFile(t, sib, "y")
	if hits := drain(t, w); len(hits) > 0 {
		t.Errorf("events on a sibling reached %+v", hits)
	}
}

func TestWatcherSharedDirectory(t *testing.T) {
	dir := tempDir(t)
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	writeTestFile(t, a, "a")
	writeTestFile(t, b, "b")
	w := newTestWatcher(t)
	before := w.count()
	for _, p := range []string{a, b} {
		if _, errs := w.arm(p); len(errs) > 0 {
			t.Fatal(errs)
		}
	}
	lookups, _ := resolve(a, nil)
	if n := w.count(); n != len(lookups)+2 {
		t.Errorf("count = %d, want %d: the directories on the way, shared, and the two files", n, len(lookups)+2)
	}
	dw := watchOf(t, w, dir)
	if !slices.Contains(armedWds(w, a), int(dw.wd)) || !slices.Contains(armedWds(w, b), int(dw.wd)) {
		t.Errorf("the directory's watch %d is not in both entries' watches: a %v, b %v", dw.wd, armedWds(w, a), armedWds(w, b))
	}
	w.mu.Lock()
	subsA, subsB := slices.Clone(dw.named["a"]), slices.Clone(dw.named["b"])
	w.mu.Unlock()
	if !slices.Equal(subsA, []pathSub{{path: a, role: roleLeaf}}) || !slices.Equal(subsB, []pathSub{{path: b, role: roleLeaf}}) {
		t.Errorf("the directory's watch subscriptions: a %+v, b %+v", subsA, subsB)
	}

	// A name event in the directory goes to the entry with that name only.
	drain(t, w)
	if err := os.Remove(b); err != nil {
		t.Fatal(err)
	}
	writeTestFile(t, b, "b again")
	hits := readRouted(t, w, 5*time.Second, hitFor(b, roleLeaf, unix.IN_CREATE))
	if !hasHit(hits, b, roleLeaf, unix.IN_DELETE) || !hasHit(hits, b, roleLeaf, unix.IN_CREATE) {
		t.Errorf("no roleLeaf delete and create hits for b: %+v", hits)
	}
	for _, h := range hits {
		if h.path == a {
			t.Errorf("an event on b reached a: %+v", h)
		}
	}
	// Armed again only now, b may have got its old inode number back:
	// what it became is not checked here (see TestWatcherDeleteAndComeBack).
	if _, errs := w.arm(b); len(errs) > 0 {
		t.Fatal(errs)
	}

	// Disarming a keeps b's watches working.
	aWds := armedWds(w, a)
	w.disarm(a)
	if n := w.count(); n != len(lookups)+1 {
		t.Errorf("count after disarming a = %d, want %d", n, len(lookups)+1)
	}
	w.mu.Lock()
	_, stillA := dw.named["a"]
	_, dirWatched := w.byWd[int(dw.wd)]
	w.mu.Unlock()
	if stillA || !dirWatched {
		t.Errorf("after disarming a: subscription for a kept %v, directory watch kept %v", stillA, dirWatched)
	}
	drain(t, w)
	writeTestFile(t, a, "a changed")
	writeTestFile(t, b, "b changed")
	hits = readRouted(t, w, 5*time.Second, hitFor(b, roleSelf, unix.IN_MODIFY))
	if !hasHit(hits, b, roleSelf, unix.IN_MODIFY) {
		t.Errorf("after disarming a, no roleSelf hit for b: %+v", hits)
	}
	if err := os.Rename(b, b+".old"); err != nil {
		t.Fatal(err)
	}
	hits = readRouted(t, w, 5*time.Second, hitFor(b, roleLeaf, unix.IN_MOVED_FROM))
	if !hasHit(hits, b, roleLeaf, unix.IN_MOVED_FROM) {
		t.Errorf("after disarming a, no roleLeaf hit for b's rename: %+v", hits)
	}
	for _, h := range append(hits, drain(t, w)...) {
		if h.path == a {
			t.Errorf("a disarmed entry got a hit: %+v", h)
		}
	}
	for _, wd := range aWds {
		w.mu.Lock()
		wt := w.byWd[wd]
		w.mu.Unlock()
		if wt != nil {
			for _, s := range wt.all {
				if s.path == a {
					t.Errorf("watch %d (%s) still has a subscription of a", wd, wt.path)
				}
			}
			for _, ps := range slices.Concat(slices.Collect(maps.Values(wt.named))...) {
				if ps.path == a {
					t.Errorf("watch %d (%s) still has a subscription of a", wd, wt.path)
				}
			}
		}
	}

	// Disarming both removes every watch.
	w.disarm(b)
	if n := w.count(); n != before {
		t.Errorf("count after disarming both = %d, want %d", n, before)
	}
	w.mu.Lock()
	nArmed := len(w.armed)
	w.mu.Unlock()
	if nArmed != 0 {
		t.Errorf("%d entries still armed", nArmed)
	}
	// The kernel agrees: the watches are gone (each removal queues an
	// IN_IGNORED, and nothing routes anywhere).
	writeTestFile(t, filepath.Join(dir, "c"), "c")
	if hits := drain(t, w); len(hits) > 0 {
		t.Errorf("hits after disarming everything: %+v", hits)
	}
	w.disarm(b) // twice is harmless
}

func TestWatcherDeleteAndComeBack(t *testing.T) {
	dir := tempDir(t)
	f := filepath.Join(dir, "shadow")
	writeTestFile(t, f, "one")
	w := newTestWatcher(t)
	if _, errs := w.arm(f); len(errs) > 0 {
		t.Fatal(errs)
	}
	drain(t, w)
	n := w.count()
	selfWd := -1
	for _, wd := range armedWds(w, f) {
		w.mu.Lock()
		if wt := w.byWd[wd]; wt != nil && wt.path == f {
			selfWd = wd
		}
		w.mu.Unlock()
	}
	if selfWd < 0 {
		t.Fatalf("no watch on %s itself", f)
	}

	if err := os.Remove(f); err != nil {
		t.Fatal(err)
	}
	// Route events one at a time to see the count drop at IN_IGNORED.
	var ignored []hit
	deadline := time.Now().Add(5 * time.Second)
	buf := make([]byte, 64*1024)
	for ignored == nil {
		nr, err := readBefore(w, buf, deadline)
		if err != nil {
			t.Fatalf("no IN_IGNORED for the deleted file's watch: %v", err)
		}
		evs, err := parseEvents(buf[:nr], nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range evs {
			hits := w.route(ev, nil)
			if ev.wd == selfWd && ev.mask&unix.IN_IGNORED != 0 {
				ignored = hits
				if got := w.count(); got != n-1 {
					t.Errorf("count after IN_IGNORED = %d, want %d", got, n-1)
				}
				if slices.Contains(armedWds(w, f), selfWd) {
					t.Errorf("the entry still lists the dropped watch %d", selfWd)
				}
			}
		}
	}
	if !hasHit(ignored, f, roleSelf, unix.IN_IGNORED) {
		t.Errorf("IN_IGNORED routed to %+v, want a roleSelf hit for %s", ignored, f)
	}
	// The dropped watch routes nothing more.
	if hits := w.route(event{wd: selfWd, mask: unix.IN_MODIFY}, nil); len(hits) > 0 {
		t.Errorf("a forgotten watch still routes: %+v", hits)
	}

	if became, _ := w.arm(f); became != "delete" {
		t.Errorf("arm after the file went became %q, want delete", became)
	}
	if got := w.count(); got != n-1 {
		t.Errorf("count with the file gone = %d, want %d", got, n-1)
	}
	if became, _ := w.arm(f); became != "" {
		t.Errorf("arm again while it is still gone became %q", became)
	}
	writeTestFile(t, f, "two")
	if became, _ := w.arm(f); became != "create" {
		t.Errorf("arm after the file came back became %q, want create", became)
	}
	if got := w.count(); got != n {
		t.Errorf("count with the file back = %d, want %d", got, n)
	}
	// Replaced by a rename: a new inode under the same name.
	tmp := f + ".new"
	writeTestFile(t, tmp, "three")
	if err := os.Rename(tmp, f); err != nil {
		t.Fatal(err)
	}
	if became, _ := w.arm(f); became != "create" {
		t.Errorf("arm after a replacement by rename became %q, want create", became)
	}
	// The new inode is watched.
	drain(t, w)
	writeTestFile(t, f, "four")
	if hits := readRouted(t, w, 5*time.Second, hitFor(f, roleSelf, unix.IN_MODIFY)); !hasHit(hits, f, roleSelf, unix.IN_MODIFY) {
		t.Errorf("no roleSelf hit for the replacing file: %+v", hits)
	}
	if got := w.count(); got != n {
		t.Errorf("count after the replacement = %d, want %d (the old inode's watch dropped)", got, n)
	}
}

func TestWatcherMissingPath(t *testing.T) {
	dir := tempDir(t)
	f := filepath.Join(dir, "later", "file")
	w := newTestWatcher(t)
	became, errs := w.arm(f)
	if len(errs) > 0 || became != "" {
		t.Fatalf("arm of a missing path = %q, %v; want nothing", became, errs)
	}
	drain(t, w)
	if err := os.Mkdir(filepath.Join(dir, "later"), 0o755); err != nil {
		t.Fatal(err)
	}
	hits := readRouted(t, w, 5*time.Second, hitFor(f, roleLookup, unix.IN_CREATE))
	if !slices.ContainsFunc(hits, func(h hit) bool { return h.path == f && h.role == roleLookup && h.name == "later" }) {
		t.Fatalf("creating the missing directory did not reach the entry: %+v", hits)
	}
	if became, _ := w.arm(f); became != "" {
		t.Errorf("arm with the directory but not the file became %q", became)
	}
	writeTestFile(t, f, "x")
	hits = readRouted(t, w, 5*time.Second, hitFor(f, roleLeaf, unix.IN_CREATE))
	if !hasHit(hits, f, roleLeaf, unix.IN_CREATE) {
		t.Fatalf("creating the file did not reach the entry: %+v", hits)
	}
	if became, _ := w.arm(f); became != "create" {
		t.Errorf("arm after the file appeared became %q, want create", became)
	}
}

func TestWatcherDirectoryEntries(t *testing.T) {
	dir := tempDir(t)
	d := filepath.Join(dir, "etc")
	if err := os.Mkdir(d, 0o755); err != nil {
		t.Fatal(err)
	}
	w := newTestWatcher(t)
	if _, errs := w.arm(d); len(errs) > 0 {
		t.Fatal(errs)
	}
	drain(t, w)
	writeTestFile(t, filepath.Join(d, "hosts"), "x")
	hits := readRouted(t, w, 5*time.Second, hitFor(d, roleEntries, unix.IN_MODIFY))
	if !slices.ContainsFunc(hits, func(h hit) bool {
		return h.path == d && h.role == roleEntries && h.name == "hosts" && h.mask&unix.IN_CREATE != 0
	}) {
		t.Errorf("no roleEntries create hit for etc/hosts: %+v", hits)
	}
	if !hasHit(hits, d, roleEntries, unix.IN_MODIFY) {
		t.Errorf("no roleEntries modify hit for etc/hosts: %+v", hits)
	}
}

func TestWatcherOutOfWatches(t *testing.T) {
	dir := tempDir(t)
	a, b, c := filepath.Join(dir, "a"), filepath.Join(dir, "b"), filepath.Join(dir, "c")
	for _, p := range []string{a, b, c} {
		writeTestFile(t, p, p)
	}
	w := newTestWatcher(t)
	w.addWatch = func(fd int, path string, mask uint32) (int, error) {
		if path == b {
			return -1, syscall.ENOSPC
		}
		return unix.InotifyAddWatch(fd, path, mask)
	}
	if _, errs := w.arm(a); len(errs) > 0 {
		t.Fatal(errs)
	}
	_, errs := w.arm(b)
	if len(errs) != 1 {
		t.Fatalf("arm(b) returned %d errors, want 1: %v", len(errs), errs)
	}
	err := errs[0]
	if !errors.Is(err, errNoWatches) {
		t.Errorf("error %v is not errNoWatches", err)
	}
	if !strings.Contains(err.Error(), "/proc/sys/fs/inotify/max_user_watches") {
		t.Errorf("error %q does not name /proc/sys/fs/inotify/max_user_watches", err)
	}
	if !strings.Contains(err.Error(), b) {
		t.Errorf("error %q does not name the path that could not be watched", err)
	}
	if _, errs := w.arm(c); len(errs) > 0 {
		t.Fatal(errs)
	}
	lookups, _ := resolve(a, nil)
	if n := w.count(); n != len(lookups)+2 {
		t.Errorf("count = %d, want %d: the directories on the way, a and c", n, len(lookups)+2)
	}
	// a and c are watched, and b's name in the directory still is.
	drain(t, w)
	for _, p := range []string{a, b, c} {
		writeTestFile(t, p, "changed")
	}
	if err := os.Remove(b); err != nil {
		t.Fatal(err)
	}
	hits := readRouted(t, w, 5*time.Second, func(hits []hit) bool {
		return hasHit(hits, a, roleSelf, unix.IN_MODIFY) && hasHit(hits, c, roleSelf, unix.IN_MODIFY) && hasHit(hits, b, roleLeaf, unix.IN_DELETE)
	})
	for _, want := range []struct {
		path string
		role role
		mask uint32
	}{{a, roleSelf, unix.IN_MODIFY}, {c, roleSelf, unix.IN_MODIFY}, {b, roleLeaf, unix.IN_DELETE}} {
		if !hasHit(hits, want.path, want.role, want.mask) {
			t.Errorf("no hit for %s role %d mask %#x: %+v", want.path, want.role, want.mask, hits)
		}
	}
	if hasHit(hits, b, roleSelf, unix.IN_MODIFY) {
		t.Errorf("b's content is watched although its watch could not be added")
	}
}

var _ io.Reader = (*fakeReader)(nil)

// TestArmNameMadeMeanwhile makes the missing file of an entry between the
// look that finds it missing and the watch set on its directory: no event
// can tell, so arm must look again.
func TestArmNameMadeMeanwhile(t *testing.T) {
	dir := tempDir(t)
	app := filepath.Join(dir, "app")
	if err := os.Mkdir(app, 0o755); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(app, "conf")
	w := newTestWatcher(t)
	add := w.addWatch
	w.addWatch = func(fd int, path string, mask uint32) (int, error) {
		if path == app {
			writeTestFile(t, conf, "made meanwhile")
		}
		return add(fd, path, mask)
	}
	became, errs := w.arm(conf)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	w.mu.Lock()
	a := w.armed[conf]
	w.mu.Unlock()
	if became != "create" || !a.exists || !slices.ContainsFunc(a.subs, func(ws wsub) bool { return ws.role == roleSelf }) {
		t.Errorf("arm = %q, exists %v, subs %+v; want the file found and watched", became, a.exists, a.subs)
	}
}

// TestArmDeletedThenMadeAgain removes a watched file with its directory,
// and makes the directory again while famids arms the entry: the deletion
// must still be told, though the second look arms it once more.
func TestArmDeletedThenMadeAgain(t *testing.T) {
	dir := tempDir(t)
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(sub, "f")
	writeTestFile(t, f, "x")
	w := newTestWatcher(t)
	if _, errs := w.arm(f); len(errs) > 0 {
		t.Fatal(errs)
	}
	if err := os.RemoveAll(sub); err != nil {
		t.Fatal(err)
	}
	add := w.addWatch
	w.addWatch = func(fd int, path string, mask uint32) (int, error) {
		if path == dir {
			os.Mkdir(sub, 0o755) // rm -rf, then mkdir -p
		}
		return add(fd, path, mask)
	}
	if became, _ := w.arm(f); became != "delete" {
		t.Errorf("arm = %q, want delete", became)
	}
}

// TestArmSameLookupTwice arms a path whose absolute symbolic links look
// up the same names several times, arms it again with one link less, and
// disarms it: no watch may be left behind.
func TestArmSameLookupTwice(t *testing.T) {
	dir := tempDir(t)
	target := filepath.Join(dir, "target")
	writeTestFile(t, target, "x")
	must(t, os.Symlink(target, filepath.Join(dir, "l2")))
	must(t, os.Symlink(filepath.Join(dir, "l2"), filepath.Join(dir, "l1")))
	w := newTestWatcher(t)
	before := w.count()
	l1 := filepath.Join(dir, "l1")
	if _, errs := w.arm(l1); len(errs) > 0 {
		t.Fatal(errs)
	}
	// One link less: the names above dir are looked up once less.
	must(t, os.Remove(l1))
	must(t, os.Symlink(target, l1))
	if _, errs := w.arm(l1); len(errs) > 0 {
		t.Fatal(errs)
	}
	w.disarm(l1)
	if n := w.count(); n != before {
		t.Errorf("%d watches left after disarming, want %d", n-before, 0)
	}
}
