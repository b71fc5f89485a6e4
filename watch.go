package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// famids follows a PATH, not an inode: it watches every directory in which
// the kernel looks up a name on the way to PATH (so that a rename, a
// deletion, a re-creation or a replaced symlink anywhere on the way is
// seen), and the file or directory PATH finally resolves to (so that a
// write, even through a hard link elsewhere, is seen). Each time a name on
// the way changes, the entry is armed again from scratch.

// A role says why an entry subscribes to a watch.
type role uint8

const (
	roleLookup  role = iota // a directory in which a name on the way to PATH is looked up
	roleLeaf                // the directory holding PATH's own last name
	roleSelf                // the file PATH resolves to
	roleEntries             // the directory PATH resolves to
)

// Event masks for each kind of watch. IN_MASK_ADD makes the kernel add to
// the mask of an inode that another role already watches.
const (
	lookupMask  = unix.IN_CREATE | unix.IN_DELETE | unix.IN_MOVED_FROM | unix.IN_MOVED_TO | unix.IN_DELETE_SELF | unix.IN_MOVE_SELF | unix.IN_ONLYDIR | unix.IN_MASK_ADD
	entriesMask = lookupMask | unix.IN_MODIFY | unix.IN_ATTRIB
	selfMask    = unix.IN_MODIFY | unix.IN_ATTRIB | unix.IN_MASK_ADD
)

// A sub is one entry's interest in a watch.
type sub struct {
	path string // the entry's path
	role role
	name string // for roleLookup and roleLeaf: the name looked up
}

// A watch is one inotify watch descriptor.
type watch struct {
	wd   int
	path string           // the path it was added for
	subs map[string][]sub // by the name they care about; "" for every name
}

// An armed entry: the watches it subscribes to and what its path named
// when they were set.
type armed struct {
	wds    []int
	exists bool
	dev    uint64
	ino    uint64
}

// An event is one inotify event.
type event struct {
	wd     int
	mask   uint32
	cookie uint32
	name   string
}

// A hit is an event routed to an entry that subscribed to its watch.
type hit struct {
	sub
	mask uint32
	name string
}

// errNoWatches names the limit to raise when inotify runs out of watches.
var errNoWatches = errors.New("out of inotify watches: raise /proc/sys/fs/inotify/max_user_watches")

// A watcher owns the inotify instance and all watch descriptor bookkeeping.
type watcher struct {
	mu   sync.Mutex
	fd   int // the inotify instance, non-blocking
	wake int // an eventfd written to by barrier and interrupt

	stopping   atomic.Bool // interrupt was called
	catchingUp bool        // Read is reading up to a barrier; only Read uses it

	byWd  map[int]*watch
	armed map[string]*armed // by entry path

	// addWatch is unix.InotifyAddWatch; tests replace it to inject errors.
	addWatch func(fd int, path string, mask uint32) (int, error)
}

func newWatcher() (*watcher, error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("inotify_init1: %w", err)
	}
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	return &watcher{
		fd:       fd,
		wake:     wake,
		byWd:     make(map[int]*watch),
		armed:    make(map[string]*armed),
		addWatch: unix.InotifyAddWatch,
	}, nil
}

// errBarrier is what Read returns, once, after it has read every event
// queued when barrier was called.
var errBarrier = errors.New("inotify: barrier")

// Read reads the events queued into buf, waiting for one if there are
// none. After barrier, it reads what is queued without waiting, then
// returns errBarrier; after interrupt, it returns os.ErrClosed. It waits in
// poll(2) rather than in Go's network poller, which the kernel would wake
// for every event, even while famids is not reading. Only one goroutine may
// call Read.
func (w *watcher) Read(buf []byte) (int, error) {
	fds := []unix.PollFd{{Fd: int32(w.wake), Events: unix.POLLIN}, {Fd: int32(w.fd), Events: unix.POLLIN}}
	for {
		if w.catchingUp {
			n, err := unix.Read(w.fd, buf)
			switch err {
			case nil:
				return n, nil
			case unix.EAGAIN:
				w.catchingUp = false
				return 0, errBarrier
			case unix.EINTR:
				continue
			}
			return 0, err
		}
		fds[0].Revents, fds[1].Revents = 0, 0
		if _, err := unix.Poll(fds, -1); err != nil {
			if err == unix.EINTR {
				continue
			}
			return 0, fmt.Errorf("poll: %w", err)
		}
		if fds[0].Revents != 0 {
			if w.stopping.Load() {
				return 0, os.ErrClosed
			}
			var count [8]byte
			unix.Read(w.wake, count[:])
			w.catchingUp = true
			continue
		}
		n, err := unix.Read(w.fd, buf)
		switch err {
		case nil:
			return n, nil
		case unix.EAGAIN, unix.EINTR:
			continue
		}
		return 0, err
	}
}

// barrier makes Read return errBarrier once it has read every event queued
// now. Call it again only once Read has returned errBarrier.
func (w *watcher) barrier() {
	w.poke()
}

// interrupt makes Read return os.ErrClosed, now and from then on.
func (w *watcher) interrupt() {
	w.stopping.Store(true)
	w.poke()
}

func (w *watcher) poke() {
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	unix.Write(w.wake, one[:])
}

// Close closes the inotify instance, releasing every watch; call it once
// Read has returned.
func (w *watcher) Close() error {
	unix.Close(w.wake)
	return unix.Close(w.fd)
}

// A lookup is one name the kernel looks up in a directory on the way to a
// path.
type lookup struct {
	dir, name string
	leaf      bool // the path's own last name
}

const maxSymlinks = 40 // as the kernel's MAXSYMLINKS

// resolve walks path one name at a time, following symbolic links as the
// kernel does, and returns every lookup made and the real path that path
// names, or "" when a name on the way does not exist (yet).
func resolve(path string) (lookups []lookup, real string) {
	type part struct {
		name string
		leaf bool
	}
	var todo []part
	names := strings.Split(path, "/")
	for i, n := range names {
		todo = append(todo, part{n, i == len(names)-1})
	}
	dir, links := "/", 0
	for len(todo) > 0 {
		p := todo[0]
		todo = todo[1:]
		switch p.name {
		case "", ".":
			continue
		case "..":
			dir = filepath.Dir(dir)
			continue
		}
		lookups = append(lookups, lookup{dir, p.name, p.leaf})
		next := filepath.Join(dir, p.name)
		fi, err := os.Lstat(next)
		if err != nil {
			return lookups, ""
		}
		if fi.Mode()&os.ModeSymlink != 0 {
			links++
			target, err := os.Readlink(next)
			if err != nil || links > maxSymlinks {
				return lookups, ""
			}
			if filepath.IsAbs(target) {
				dir = "/"
			}
			var more []part
			for _, n := range strings.Split(target, "/") {
				more = append(more, part{name: n})
			}
			todo = append(more, todo...)
			continue
		}
		if !fi.IsDir() && len(todo) > 0 {
			return lookups, "" // a file where a directory should be
		}
		dir = next
	}
	return lookups, dir
}

// arm (re)sets every watch the entry at path needs and drops those it no
// longer needs. It returns what the path became since it was last armed,
// as an event name ("create", "delete" or ""), and the watches that could
// not be added.
func (w *watcher) arm(path string) (became string, errs []error) {
	lookups, real := resolve(path)
	var st unix.Stat_t
	exists := real != "" && unix.Stat(real, &st) == nil

	w.mu.Lock()
	defer w.mu.Unlock()
	var wds []int
	add := func(dir string, mask uint32, s sub) {
		wd, err := w.addWatch(w.fd, dir, mask)
		if err != nil {
			if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ENOTDIR) {
				return // gone meanwhile: the watch on its parent will tell
			}
			if errors.Is(err, syscall.ENOSPC) {
				err = errNoWatches
			}
			errs = append(errs, fmt.Errorf("watch %s: %w", dir, err))
			return
		}
		wt := w.byWd[wd]
		if wt == nil {
			wt = &watch{wd: wd, path: dir, subs: make(map[string][]sub)}
			w.byWd[wd] = wt
		}
		key := s.name
		if s.role == roleSelf || s.role == roleEntries {
			key = ""
		}
		if !containsSub(wt.subs[key], s) {
			wt.subs[key] = append(wt.subs[key], s)
		}
		if !containsInt(wds, wd) {
			wds = append(wds, wd)
		}
	}
	for _, l := range lookups {
		r := roleLookup
		if l.leaf {
			r = roleLeaf
		}
		add(l.dir, lookupMask, sub{path: path, role: r, name: l.name})
	}
	if exists {
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			add(real, entriesMask, sub{path: path, role: roleEntries})
		} else {
			add(real, selfMask, sub{path: path, role: roleSelf})
		}
	}

	old := w.armed[path]
	if old == nil {
		old = &armed{}
	}
	now := &armed{wds: wds, exists: exists, dev: uint64(st.Dev), ino: st.Ino}
	w.unsubscribe(path, old.wds, wds)
	w.armed[path] = now
	switch {
	case !old.exists && now.exists:
		became = "create"
	case old.exists && !now.exists:
		became = "delete"
	case old.exists && (old.dev != now.dev || old.ino != now.ino):
		became = "create" // replaced
	}
	return became, errs
}

// names reports whether path still names the inode it was armed for.
func (w *watcher) names(path string) bool {
	var st unix.Stat_t
	if unix.Stat(path, &st) != nil {
		return false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	a := w.armed[path]
	return a != nil && a.exists && a.dev == uint64(st.Dev) && a.ino == st.Ino
}

// disarm drops every watch of the entry at path.
func (w *watcher) disarm(path string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if a := w.armed[path]; a != nil {
		w.unsubscribe(path, a.wds, nil)
		delete(w.armed, path)
	}
}

// unsubscribe removes the entry at path from the watches in wds that are not
// in keep, and removes watches nobody subscribes to any more. The caller
// holds w.mu.
func (w *watcher) unsubscribe(path string, wds, keep []int) {
	for _, wd := range wds {
		if containsInt(keep, wd) {
			continue
		}
		wt := w.byWd[wd]
		if wt == nil {
			continue
		}
		for key, subs := range wt.subs {
			kept := subs[:0]
			for _, s := range subs {
				if s.path != path {
					kept = append(kept, s)
				}
			}
			if len(kept) == 0 {
				delete(wt.subs, key)
			} else {
				wt.subs[key] = kept
			}
		}
		if len(wt.subs) == 0 {
			// Events still queued for wd find no watch and are dropped:
			// they concern an inode the path no longer names.
			unix.InotifyRmWatch(w.fd, uint32(wd))
			delete(w.byWd, wd)
		}
	}
}

// route appends to hits the subscriptions an event concerns, and returns
// them. For IN_IGNORED, the kernel has dropped the watch: it is forgotten,
// and every entry that used it is returned so that it can be armed again.
func (w *watcher) route(ev event, hits []hit) []hit {
	w.mu.Lock()
	defer w.mu.Unlock()
	wt := w.byWd[ev.wd]
	if wt == nil {
		return hits
	}
	start := len(hits)
	add := func(subs []sub) {
		for _, s := range subs {
			hits = append(hits, hit{sub: s, mask: ev.mask, name: ev.name})
		}
	}
	if ev.name == "" {
		// An event on the watched inode itself concerns every entry
		// that watches it.
		for _, subs := range wt.subs {
			add(subs)
		}
	} else {
		add(wt.subs[""])
		add(wt.subs[ev.name])
	}
	if ev.mask&unix.IN_IGNORED != 0 {
		delete(w.byWd, ev.wd)
		for _, h := range hits[start:] {
			if a := w.armed[h.path]; a != nil {
				a.wds = removeInt(a.wds, ev.wd)
			}
		}
	}
	return hits
}

// count returns the number of watch descriptors in use.
func (w *watcher) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.byWd)
}

func containsSub(list []sub, s sub) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func containsInt(list []int, n int) bool {
	for _, x := range list {
		if x == n {
			return true
		}
	}
	return false
}

func removeInt(list []int, n int) []int {
	out := list[:0]
	for _, x := range list {
		if x != n {
			out = append(out, x)
		}
	}
	return out
}

// parseEvents decodes the inotify events in buf.
func parseEvents(buf []byte) ([]event, error) {
	var evs []event
	all := string(buf) // one allocation for every name of the batch
	for off := 0; off < len(buf); {
		if len(buf)-off < unix.SizeofInotifyEvent {
			return evs, fmt.Errorf("short inotify event: %d bytes", len(buf)-off)
		}
		raw := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
		end := off + unix.SizeofInotifyEvent + int(raw.Len)
		if end > len(buf) {
			return evs, fmt.Errorf("inotify event name runs past the buffer")
		}
		name := all[off+unix.SizeofInotifyEvent : end]
		if i := strings.IndexByte(name, 0); i >= 0 {
			name = name[:i]
		}
		evs = append(evs, event{wd: int(raw.Wd), mask: raw.Mask, cookie: raw.Cookie, name: name})
		off = end
	}
	return evs, nil
}

// A storm is events arriving faster than famids reads them one at a time:
// reads closer together than stormGap. In a storm, famids pauses between
// reads to let about stormBatch events pile up in the kernel's queue (a
// sixteenth of its default size), for a read and a hand-over cost far more
// than an event does; the pause is never longer than maxPause. A lone event
// is read at once.
const (
	stormGap   = time.Millisecond
	stormBatch = 1000
	maxPause   = 20 * time.Millisecond
)

// stormPause returns how long to wait before the next read when n events
// came in the time since the previous read, or 0 outside a storm.
func stormPause(n int, since time.Duration, storm bool) time.Duration {
	if !(since < stormGap || storm && n > 1) {
		return 0
	}
	pause := since * stormBatch / time.Duration(max(n, 1))
	return min(pause, maxPause)
}

// readEvents reads batches of events from r and sends them on out until r
// says it is closed; at a barrier, it sends nil. A read that fails is tried again
// after retry; a second failure in a row ends it with an error, as the Perl
// script gave up when its FAM server failed twice.
func readEvents(r io.Reader, retry time.Duration, out chan<- []event) error {
	buf := make([]byte, 64*1024)
	failed := false
	var last time.Time
	var pause time.Duration
	for {
		n, err := r.Read(buf)
		if errors.Is(err, os.ErrClosed) {
			return nil
		}
		if err == errBarrier {
			out <- nil // every event queued at the barrier is delivered
			continue
		}
		var evs []event
		if err == nil {
			evs, err = parseEvents(buf[:n])
			if len(evs) > 0 {
				out <- evs
			}
		}
		if err == nil {
			failed = false
			now := time.Now()
			pause = stormPause(len(evs), now.Sub(last), pause > 0)
			last = now
			time.Sleep(pause)
			continue
		}
		if failed {
			return fmt.Errorf("reading inotify events: %w", err)
		}
		failed = true
		fmt.Fprintf(os.Stderr, "famids: reading inotify events: %v; trying again in %v\n", err, retry)
		time.Sleep(retry)
	}
}

// queued returns the events waiting in the queue without blocking. Call it
// only once readEvents has returned.
func (w *watcher) queued() ([]event, error) {
	var all []event
	buf := make([]byte, 64*1024)
	for {
		n, err := unix.Read(w.fd, buf)
		if err == unix.EAGAIN || n == 0 {
			return all, nil
		}
		if err != nil {
			return all, fmt.Errorf("reading inotify events: %w", err)
		}
		evs, err := parseEvents(buf[:n])
		all = append(all, evs...)
		if err != nil {
			return all, err
		}
	}
}
