package main

// Unit tests of the watch bookkeeping, on a real inotify instance.

import (
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
