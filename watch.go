package main

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// famids follows a PATH, not an inode: it watches every directory in which
// the kernel looks up a name on the way to PATH (so that a rename, a
// deletion, a re-creation or a replaced symlink anywhere on the way is
// seen), and the file or directory PATH finally resolves to (so that a
// write, even through a hard link elsewhere, is seen). Each time a name on
// the way changes, the entry is armed again from scratch. The entries of a
// watched directory that it reports on are watched through their inodes
// too (aliases): a write through another name of the same file, or to the
// file a symbolic link points to, sends no event to the directory.

// A role says why an entry subscribes to a watch.
type role uint8

const (
	roleLookup  role = iota // a directory in which a name on the way to PATH is looked up
	roleLeaf                // the directory holding PATH's own last name
	roleSelf                // the file PATH resolves to
	roleEntries             // the directory PATH resolves to
	roleAlias               // the file an entry of the directory PATH names
)

// Event masks for each kind of watch. IN_MASK_ADD makes the kernel add to
// the mask of an inode that another role already watches. IN_CLOSE_WRITE
// tells of writes that send no IN_MODIFY: through a shared memory mapping.
const (
	lookupMask  = unix.IN_CREATE | unix.IN_DELETE | unix.IN_MOVED_FROM | unix.IN_MOVED_TO | unix.IN_DELETE_SELF | unix.IN_MOVE_SELF | unix.IN_ONLYDIR | unix.IN_MASK_ADD
	leafMask    = lookupMask | unix.IN_ATTRIB // a symbolic link's own owner: it has no watch of its own
	contentMask = unix.IN_MODIFY | unix.IN_ATTRIB | unix.IN_CLOSE_WRITE
	entriesMask = lookupMask | contentMask
	selfMask    = contentMask | unix.IN_MASK_ADD
	// An alias tells of writes through another name of the file, at
	// their close (IN_CLOSE_WRITE), not at each write: the directory
	// already sends IN_MODIFY for writes through the watched name, and
	// two watches sending it in turn defeat the kernel's merging of
	// identical events, so that a user writing a byte at a time to a file
	// in a watched directory would overflow the queue.
	aliasMask = unix.IN_ATTRIB | unix.IN_CLOSE_WRITE | unix.IN_MASK_ADD
)

// A sub is one entry's interest in a watch.
type sub struct {
	path string // the entry's path
	role role
	name string // for roleLookup and roleLeaf: the name looked up
}

// key is the name a sub cares about in its watch: "" for every name. An
// alias cares only for events on the inode itself, which have no name,
// and its watch is a file's: it takes every event, and keeps no map of
// its own (a flood of files in a watched directory makes thousands).
func (s sub) key() string {
	switch s.role {
	case roleSelf, roleEntries, roleAlias:
		return ""
	}
	return s.name
}

// A watch is one inotify watch descriptor.
type watch struct {
	wd    int32
	fmask uint32               // the fanotify events marked (64 bytes a watch, with 10,000 of them)
	fkey  uint64               // the key of its inode's fanotify mark; 0 without
	path  string               // the path it was added for
	all   []sub                // the subs that care about every name
	named map[string][]pathSub // the others, by the name they care about
}

// A pathSub is a sub kept under the name it cares about: 10,000 entries in
// one directory make 10,000 of them in each directory above it.
type pathSub struct {
	path string
	role role
}

// add subscribes s, which must not be subscribed already.
func (wt *watch) add(s sub) {
	k := s.key()
	if k == "" {
		wt.all = append(wt.all, s)
		return
	}
	if wt.named == nil {
		wt.named = make(map[string][]pathSub)
	}
	wt.named[k] = append(wt.named[k], pathSub{s.path, s.role})
}

// remove unsubscribes s.
func (wt *watch) remove(s sub) {
	k := s.key()
	if k == "" {
		wt.all = slices.DeleteFunc(wt.all, func(x sub) bool { return x == s })
		return
	}
	list := wt.named[k]
	i := slices.Index(list, pathSub{s.path, s.role})
	if i < 0 {
		return
	}
	list[i] = list[len(list)-1]
	list = list[:len(list)-1]
	if len(list) == 0 {
		delete(wt.named, k)
	} else {
		wt.named[k] = list
	}
}

// empty reports whether nobody subscribes to the watch.
func (wt *watch) empty() bool {
	return len(wt.all) == 0 && len(wt.named) == 0
}

// A wsub is one of an armed entry's subs: the entry's path is left out,
// for it is the armed entry's own, and there are thousands of them.
type wsub struct {
	wd   int32
	role role
	name string
}

func (ws wsub) sub(path string) sub { return sub{path: path, role: ws.role, name: ws.name} }

// An armed entry: its subscriptions and what its path named when they
// were set.
type armed struct {
	real    string // what the path resolved to, when it exists
	subs    []wsub
	aliases map[string]int32 // for a directory: the watch of each entry watched through its inode, by name
	users   map[string]bool  // the names among aliases of files another user than root owns
	exists  bool
	dir     bool
	dev     uint64
	ino     uint64
}

// watching returns the entry's sub of role r on the inode st describes,
// when it had one.
func (a *armed) watching(st unix.Stat_t, r role) (wsub, bool) {
	if !a.exists || a.dev != uint64(st.Dev) || a.ino != st.Ino {
		return wsub{}, false
	}
	for _, ws := range a.subs {
		if ws.role == r {
			return ws, true
		}
	}
	return wsub{}, false
}

// wds returns the watch descriptors the entry subscribes to.
func (a *armed) wds() []int {
	var wds []int
	for _, ws := range a.subs {
		if !slices.Contains(wds, int(ws.wd)) {
			wds = append(wds, int(ws.wd))
		}
	}
	return wds
}

// A hit is an event routed to an entry that subscribed to its watch.
type hit struct {
	sub
	mask uint32
	name string
}

// errNoWatches names the limit to raise when inotify runs out of watches.
var errNoWatches = errors.New("out of inotify watches: raise /proc/sys/fs/inotify/max_user_watches")

// A watcher owns the inotify instance and all watch descriptor bookkeeping,
// under mu, which route takes for every event. A watch is added without
// holding mu: adding one looks a path up, which a file system that does
// not answer can make wait. While watches are being added, a watch nobody
// subscribes to any more is not removed at once (doomed) but once no add
// is in progress: the add may have been given that very watch.
type watcher struct {
	mu     sync.Mutex // held while the maps are read or changed
	fd     int        // the inotify instance, non-blocking
	adding int        // adds in progress, outside mu
	doomed []int      // watches nobody subscribes to, removed once adding is 0

	byWd  map[int]*watch
	armed map[string]*armed // by entry path

	// aliasBudget is how many watches famids may hold before it stops
	// watching the entries of watched directories through their inodes:
	// a user who can make files in a watched directory must not use up
	// the watches that configured paths need. 0: no budget.
	aliasBudget int
	// userAliases is how many of the aliases are of files another user
	// than root owns: together, at most half the budget.
	userAliases int
	// treeBudget is how many watches famids may hold before it stops
	// watching more directories of trees; limit, what inotify allows in
	// all. 0: no budget.
	treeBudget, limit int
	// protectedLinks is fs.protected_hardlinks: a user may link only a
	// file they own or may read and write (alias.go).
	protectedLinks bool

	// addWatch is unix.InotifyAddWatch; tests replace it to inject errors.
	addWatch func(fd int, path string, mask uint32) (int, error)

	// fan is the fanotify group that tells who made each change; nil
	// without one (fanotify.go).
	fan *fanGroup
}

func newWatcher() (*watcher, error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("inotify_init1: %w", err)
	}
	return &watcher{
		fd:             fd,
		byWd:           make(map[int]*watch),
		armed:          make(map[string]*armed),
		addWatch:       unix.InotifyAddWatch,
		protectedLinks: protectedHardlinks(),
	}, nil
}

// beginAdd says that watches are about to be added without mu; endAdd,
// called with mu held, that they were. Watches doomed meanwhile and still
// unused are removed then.
func (w *watcher) beginAdd() {
	w.mu.Lock()
	w.adding++
	w.mu.Unlock()
}

func (w *watcher) endAdd() {
	w.adding--
	if w.adding > 0 {
		return
	}
	for _, wd := range w.doomed {
		if wt := w.byWd[wd]; wt != nil && wt.empty() {
			unix.InotifyRmWatch(w.fd, uint32(wd))
			w.forgetMark(wt)
			delete(w.byWd, wd)
		}
	}
	w.doomed = nil
}

// Read reads the events queued into buf, without waiting: when none are,
// it returns 0 and no error.
func (w *watcher) Read(buf []byte) (int, error) {
	for {
		n, err := unix.Read(w.fd, buf)
		switch err {
		case nil:
			return n, nil
		case unix.EAGAIN:
			return 0, nil
		case unix.EINTR:
			continue
		}
		return 0, fmt.Errorf("read inotify: %w", err)
	}
}

// Close closes the inotify instance, releasing every watch. A job still
// adding a watch (one stuck in a file system that does not answer) meets
// a closed descriptor, or, should its number be taken again, a file that
// inotify_add_watch refuses: famids opens no other inotify instance.
func (w *watcher) Close() error {
	if w.fan != nil {
		unix.Close(w.fan.fd)
		unix.Close(w.fan.proc.root)
	}
	return unix.Close(w.fd)
}

// arm (re)sets every watch the entry at path needs and drops those it no
// longer needs. It returns what the path became since it was last armed,
// as an event name ("create", "delete" or ""), and the watches that could
// not be added.
func (w *watcher) arm(path string) (became string, errs []error) {
	return w.armWith(path, nil)
}

// armWith is arm, with what c remembers of the file system; c may be nil.
func (w *watcher) armWith(path string, c *walkCache) (became string, errs []error) {
	w.mu.Lock()
	var before armed
	if a := w.armed[path]; a != nil {
		before = *a
	}
	w.mu.Unlock()
	// A name may be made, removed or replaced between the look that found
	// it and the watch set on its directory (mkdir -p, then a file): no
	// event would tell. So once the watches are set, the path is looked at
	// again, and armed again until it stays as armed.
	for range maxSymlinks {
		more, settled := w.armOnce(path, c)
		errs = append(errs, more...)
		if settled {
			break
		}
		c = nil // what it remembers is out of date
	}
	return w.became(path, &before), errs
}

// became returns what the entry at path became since it was armed as
// before: "create", "delete", "create" again when replaced, or "".
func (w *watcher) became(path string, before *armed) string {
	w.mu.Lock()
	now := w.armed[path]
	w.mu.Unlock()
	switch {
	case !before.exists && now.exists:
		return "create"
	case before.exists && !now.exists:
		return "delete"
	case before.exists && (before.dev != now.dev || before.ino != now.ino):
		return "create" // replaced
	}
	return ""
}

// armOnce is armWith without the second look; it reports whether a second
// look finds the path as it armed it.
func (w *watcher) armOnce(path string, c *walkCache) (errs []error, settled bool) {
	lookups, real, st, found := resolveStat(path, c)
	exists := real != ""
	if !found && exists {
		exists = unix.Stat(real, &st) == nil
	}
	errs = w.subscribe(path, lookups, real, exists, st, c)
	if exists {
		var again unix.Stat_t
		return errs, unix.Stat(real, &again) == nil && again.Dev == st.Dev && again.Ino == st.Ino
	}
	further, real := resolve(path, nil)
	return errs, real == "" && len(further) <= len(lookups)
}

// armTree is arm for a directory found below the root of a tree: only
// the directory itself is watched, for its entries, never through a
// symbolic link. The names on the way to it need no watches of their own:
// each is a directory of the tree, whose watch tells the tree of a
// directory made, moved or removed in it (tree.go), and the root's own
// watches tell of the way to the root. A watch on every directory above
// each of 17,000 directories would take some 20 MB. root is the tree's
// root, armed already.
func (w *watcher) armTree(path, root string) (became string, errs []error) {
	w.mu.Lock()
	var before armed
	if a := w.armed[path]; a != nil {
		before = *a
	}
	real := path
	if a := w.armed[root]; a != nil && a.exists && a.real != root {
		real = filepath.Join(a.real, strings.TrimPrefix(path, root))
	}
	w.mu.Unlock()
	for range maxSymlinks {
		var st unix.Stat_t
		exists := unix.Lstat(path, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR
		at := real
		if !exists {
			at = ""
		}
		errs = append(errs, w.subscribe(path, nil, at, exists, st, nil)...)
		var again unix.Stat_t
		if found := unix.Lstat(path, &again) == nil && again.Mode&unix.S_IFMT == unix.S_IFDIR; found == exists && (!found || again.Dev == st.Dev && again.Ino == st.Ino) {
			break // as armed: else made, removed or replaced meanwhile
		}
	}
	return w.became(path, &before), errs
}

// subscribe sets the watches of the entry at path as resolve found it, and
// drops those it no longer needs. Only one arm of an entry runs at a time.
// The watches are added first, without mu; then the bookkeeping.
func (w *watcher) subscribe(path string, lookups []lookup, real string, exists bool, st unix.Stat_t, c *walkCache) (errs []error) {
	w.beginAdd()
	w.mu.Lock()
	old := w.armed[path]
	if old == nil {
		old = &armed{}
	}
	oldSubs := slices.Clone(old.subs)
	w.mu.Unlock()

	wants, kept, errs := w.addWatches(path, lookups, real, exists, st, old, c)
	w.mu.Lock()
	defer w.mu.Unlock()
	defer w.endAdd()
	subs := w.subscribeLocked(wants, kept, oldSubs)
	now := &armed{real: real, subs: subs, exists: exists, dir: exists && st.Mode&unix.S_IFMT == unix.S_IFDIR, dev: uint64(st.Dev), ino: st.Ino}
	if cur := w.armed[path]; cur != nil {
		if now.dir && cur.dir && cur.dev == now.dev && cur.ino == now.ino {
			now.aliases, now.users = cur.aliases, cur.users // the same directory: its entries are
		} else {
			w.releaseAliases(path, cur)
		}
	}
	w.release(path, oldSubs, subs)
	w.armed[path] = now
	return errs
}

// A wanted is a watch added for a sub of an entry.
type wanted struct {
	wd  int
	dir string
	s   sub
	m   mark
}

// addWatches adds the watches of the entry at path as resolve found it,
// without mu: each directory looked up on the way, and what the path
// resolves to, unless the entry old is watching that inode already
// (kept).
func (w *watcher) addWatches(path string, lookups []lookup, real string, exists bool, st unix.Stat_t, old *armed, c *walkCache) (wants []wanted, kept *wsub, errs []error) {
	wants = make([]wanted, 0, len(lookups)+1)
	add := func(dir string, mask uint32, s sub) {
		var wd int
		var m mark
		var err error
		if r, ok := c.wdOf(dir, mask); ok {
			wd, m, err = r.wd, r.m, r.err
		} else {
			wd, m, err = w.watchPath(dir, mask)
			c.setWd(dir, mask, wdResult{wd, m, err})
		}
		if err != nil {
			if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ENOTDIR) {
				return // gone meanwhile: the watch on its parent will tell
			}
			errs = append(errs, watchError(dir, err))
			return
		}
		wants = append(wants, wanted{wd, dir, s, m})
	}
	for _, l := range lookups {
		r, mask := roleLookup, uint32(lookupMask)
		if l.leaf {
			r, mask = roleLeaf, leafMask
		}
		add(l.dir, mask, sub{path: path, role: r, name: l.name})
	}
	if exists {
		r, mask := roleSelf, uint32(selfMask)
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			r, mask = roleEntries, entriesMask
		}
		if ws, ok := old.watching(st, r); ok {
			kept = &ws // the same inode, watched already
		} else {
			add(real, mask, sub{path: path, role: r})
		}
	}
	return wants, kept, errs
}

// subscribeLocked subscribes an entry whose subs were oldSubs to the
// watches wanted, and kept, and returns its subs. The caller holds mu.
func (w *watcher) subscribeLocked(wants []wanted, kept *wsub, oldSubs []wsub) []wsub {
	subs := make([]wsub, 0, len(wants)+1)
	if kept != nil && w.byWd[int(kept.wd)] != nil {
		subs = append(subs, *kept)
	}
	for _, wt := range wants {
		ws := wsub{int32(wt.wd), wt.s.role, wt.s.name}
		if slices.Contains(subs, ws) {
			continue // the same lookup twice, through a symbolic link
		}
		wtch, fresh := w.byWd[wt.wd], false
		if wtch == nil {
			wtch, fresh = &watch{wd: int32(wt.wd), path: wt.dir}, true
			w.byWd[wt.wd] = wtch
		}
		w.noteMark(wtch, wt.m)
		// Only this entry subscribes its subs: the ones it had are
		// there already, unless the kernel dropped their watch since.
		if fresh || !slices.Contains(oldSubs, ws) {
			wtch.add(wt.s)
		}
		subs = append(subs, ws)
	}
	return subs
}

// watchError describes a watch on path that could not be added.
func watchError(path string, err error) error {
	if errors.Is(err, syscall.ENOSPC) {
		err = errNoWatches
	}
	return fmt.Errorf("watch %s: %w", path, err)
}

// kind reports whether path existed, and was a directory, when it was
// last armed.
func (w *watcher) kind(path string) (exists, dir bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if a := w.armed[path]; a != nil {
		return a.exists, a.dir
	}
	return false, false
}

// realOf returns what path resolved to when it, or the directory holding
// it, was last armed, or "" when famids did not arm it.
func (w *watcher) realOf(path string) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if a := w.armed[path]; a != nil {
		if a.exists {
			return a.real
		}
		return ""
	}
	dir := filepath.Dir(path)
	a := w.armed[dir]
	switch {
	case a == nil || !a.exists || !a.dir:
		return ""
	case a.real == dir:
		return path
	}
	return filepath.Join(a.real, filepath.Base(path))
}

// A realPath is what an armed path resolved to.
type realPath struct {
	path string
	dir  bool
}

// reals returns every armed path, and what it resolved to when it
// exists.
func (w *watcher) reals() []realPath {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]realPath, 0, 2*len(w.armed))
	for path, a := range w.armed {
		out = append(out, realPath{path, a.dir})
		if a.exists && a.real != path {
			out = append(out, realPath{a.real, a.dir})
		}
	}
	return out
}

// disarm drops every watch of the entry at path.
func (w *watcher) disarm(path string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if a := w.armed[path]; a != nil {
		w.releaseAliases(path, a)
		w.release(path, a.subs, nil)
		delete(w.armed, path)
	}
}

// release removes the subscriptions in old that are not in keep, and the
// watches nobody subscribes to any more. The caller holds w.mu.
func (w *watcher) release(path string, old, keep []wsub) {
	for _, ws := range old {
		if slices.Contains(keep, ws) {
			continue
		}
		wt := w.byWd[int(ws.wd)]
		if wt == nil {
			continue
		}
		wt.remove(ws.sub(path))
		switch {
		case !wt.empty():
		case w.adding > 0:
			w.doomed = append(w.doomed, int(ws.wd)) // an add may have been given it
		default:
			// Events still queued for wd find no watch and are dropped:
			// they concern an inode the path no longer names.
			unix.InotifyRmWatch(w.fd, uint32(ws.wd))
			w.forgetMark(wt)
			delete(w.byWd, int(ws.wd))
		}
	}
}

// route appends to hits the subscriptions an event concerns, and returns
// them. For IN_IGNORED, the kernel has dropped the watch: it is forgotten,
// and every entry that used it is returned so that it can be armed again.
func (w *watcher) route(ev event, hits []hit) []hit {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.routeLocked(ev, hits)
}

// routeAll routes every event of a batch, under one lock: a storm brings
// thousands at a time. ends[i] is where the hits of evs[i] end in hits.
func (w *watcher) routeAll(evs []event, hits []hit, ends []int) ([]hit, []int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, ev := range evs {
		hits = w.routeLocked(ev, hits)
		ends = append(ends, len(hits))
	}
	return hits, ends
}

// routeLocked is route; the caller holds mu.
func (w *watcher) routeLocked(ev event, hits []hit) []hit {
	wt := w.byWd[ev.wd]
	if wt == nil {
		return hits
	}
	start := len(hits)
	for _, s := range wt.all {
		hits = append(hits, hit{sub: s, mask: ev.mask, name: ev.name})
	}
	addNamed := func(key string, subs []pathSub) {
		for _, ps := range subs {
			hits = append(hits, hit{sub: sub{path: ps.path, role: ps.role, name: key}, mask: ev.mask, name: ev.name})
		}
	}
	if ev.name == "" {
		// An event on the watched inode itself concerns every entry
		// that watches it.
		for key, subs := range wt.named {
			addNamed(key, subs)
		}
	} else {
		addNamed(ev.name, wt.named[ev.name])
	}
	if ev.mask&unix.IN_IGNORED != 0 {
		if w.fan != nil && w.fan.byKey[wt.fkey] == int32(ev.wd) {
			delete(w.fan.byKey, wt.fkey) // the kernel dropped the mark too
			delete(w.fan.quiet, wt.fkey)
		}
		delete(w.byWd, ev.wd)
		for _, h := range hits[start:] {
			if a := w.armed[h.path]; a != nil {
				a.subs = slices.DeleteFunc(a.subs, func(ws wsub) bool { return int(ws.wd) == ev.wd })
				if h.role == roleAlias && a.aliases[h.sub.name] == int32(ev.wd) {
					w.forgetAlias(a, h.sub.name)
				}
			}
		}
	}
	return hits
}

// fitLimit sets the budgets of watches from limit, what inotify allows
// famids's user (watchLimit): raised, the limit lets famids watch what it
// could not, at the next verification or reload.
func (w *watcher) fitLimit(limit int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.aliasBudget, w.treeBudget, w.limit = limit/2, limit*3/4, limit
}

// treeRoom returns how many more directories of trees may be watched,
// each with a watch of its own; -1 without a budget.
func (w *watcher) treeRoom() int {
	if w.treeBudget == 0 {
		return -1
	}
	return max(0, w.treeBudget-w.count())
}

// count returns the number of watch descriptors in use.
func (w *watcher) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.byWd)
}
