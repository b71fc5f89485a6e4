package main

// From events to observations: each event is routed to the entries that
// watch it and becomes an observation of a path, which joins its path's
// burst (bursts.go).

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"golang.org/x/sys/unix"
)

// An observation is one event on one path, on behalf of an entry. A weak
// one (a file opened for writing was closed, an inode's metadata changed)
// may change nothing the path's record holds: its path is compared, and
// reported only when it differs.
type observation struct {
	path  string
	event string
	entry string
	weak  bool
}

// handle turns one batch of events into observations. The same observation
// twice in a batch (a write seen through a file and through its directory)
// counts once. After a queue overflow, every path is compared with its
// record: the events that would have told are lost.
func (d *daemon) handle(evs []event) {
	var obs []observation
	overflowed := false
	hits, ends := d.w.routeAll(evs, d.hits[:0], d.ends[:0])
	start := 0
	var last *entry // the entry of the hit before: in a storm, the same
	for i, ev := range evs {
		if ev.mask&unix.IN_Q_OVERFLOW != 0 {
			overflowed = true
		}
		for _, h := range hits[start:ends[i]] {
			e := last
			if e == nil || e.Path != h.path {
				e = d.entryFor(h.path)
			}
			if e != nil {
				last = e
				obs = append(obs, d.interpret(e, h)...)
			}
		}
		start = ends[i]
	}
	d.hits, d.ends = hits, ends
	var seen map[observation]bool
	if len(obs) > 1 {
		seen = make(map[observation]bool, len(obs))
	}
	for _, o := range obs {
		if !seen[o] && !d.base.owns(o.path) {
			if seen != nil {
				seen[o] = true
			}
			d.observe(o)
		}
	}
	if overflowed {
		d.overflow()
	}
}

// Masks that tell how a directory entry changed.
const (
	nsMask   = unix.IN_CREATE | unix.IN_DELETE | unix.IN_MOVED_FROM | unix.IN_MOVED_TO
	goneMask = unix.IN_DELETE_SELF | unix.IN_MOVE_SELF | unix.IN_IGNORED | unix.IN_UNMOUNT
)

// interpret maps an event, routed to entry e, to what it says happened to
// which path, and arms e again when a name on its way changed.
func (d *daemon) interpret(e *entry, h hit) []observation {
	named := h.name != ""
	switch h.role {
	case roleLeaf:
		if named && h.mask&nsMask != 0 {
			d.arm(e)
			return []observation{{path: e.Path, event: famEvent(h.mask), entry: e.reporter()}}
		}
		if named && h.mask&unix.IN_ATTRIB != 0 {
			// The name's own inode: a symbolic link's owner, say.
			return []observation{{path: e.Path, event: "change", entry: e.reporter(), weak: true}}
		}
		if h.mask&goneMask != 0 {
			return d.rearm(e)
		}
	case roleLookup:
		if (named && h.mask&nsMask != 0) || h.mask&goneMask != 0 {
			return d.rearm(e)
		}
	case roleSelf:
		switch {
		case h.mask&unix.IN_MODIFY != 0:
			return []observation{{path: e.Path, event: "change", entry: e.reporter()}}
		case h.mask&(unix.IN_ATTRIB|unix.IN_CLOSE_WRITE) != 0:
			// Unlinking or renaming over a file changes its link count
			// before the directory says the name went: the path is
			// compared, not reported on the word of this event.
			return []observation{{path: e.Path, event: "change", entry: e.reporter(), weak: true}}
		case h.mask&goneMask != 0:
			return d.rearm(e)
		}
	case roleAlias:
		if h.name == "" && e.matches(h.sub.name) && h.mask&contentMask != 0 {
			p := filepath.Join(e.Path, h.sub.name)
			return []observation{{path: p, event: "change", entry: e.Path, weak: h.mask&unix.IN_MODIFY == 0}}
		}
	case roleEntries:
		switch {
		case named:
			if !e.matches(h.name) {
				return nil
			}
			p := filepath.Join(e.Path, h.name)
			if h.mask&(unix.IN_DELETE|unix.IN_MOVED_FROM) != 0 {
				d.w.unalias(e.Path, h.name) // the file may live on under another name
				d.unfollow(p)
			}
			return []observation{{path: p, event: famEvent(h.mask), entry: e.Path, weak: h.mask&contentMask == unix.IN_CLOSE_WRITE}}
		case h.mask&unix.IN_ATTRIB != 0:
			return []observation{{path: e.Path, event: "change", entry: e.reporter()}}
		case h.mask&unix.IN_CLOSE_WRITE != 0:
			return nil // a directory is never written
		case h.mask&goneMask != 0:
			return d.rearm(e)
		}
	}
	return nil
}

// rearm arms e again because a name on the way to its path changed, and
// has the path compared with its record: what it resolves to may have
// changed, and by the time the arm looks, the name may be back, another
// way (a directory swapped for a link to a copy of it).
func (d *daemon) rearm(e *entry) []observation {
	d.arm(e)
	return []observation{{path: e.Path, event: "change", entry: e.reporter(), weak: true}}
}

// famEvent names an inotify event as FAM did.
func famEvent(mask uint32) string {
	switch {
	case mask&(unix.IN_CREATE|unix.IN_MOVED_TO) != 0:
		return "create"
	case mask&unix.IN_DELETE != 0:
		return "delete"
	case mask&unix.IN_MOVED_FROM != 0:
		return "move"
	}
	return "change"
}

// entryFor returns the entry that watches path as its own: one of the
// configuration, or a symbolic link in a watched directory.
func (d *daemon) entryFor(path string) *entry {
	if e := d.cfg.lookup(path); e != nil {
		return e
	}
	return d.derived[path]
}

// unfollow stops watching a symbolic link in a watched directory as a
// path of its own: its name went.
func (d *daemon) unfollow(path string) {
	if d.derived[path] != nil {
		delete(d.derived, path)
		d.w.disarm(path)
	}
}

// aliasDir returns the watched directory entry whose entry path is, when
// famids reports on it, or "".
func (d *daemon) aliasDir(path string) string {
	dir := filepath.Dir(path)
	e := d.cfg.lookup(dir)
	if e == nil || dir == path || !e.matches(filepath.Base(path)) {
		return ""
	}
	if _, isDir := d.w.kind(dir); !isDir {
		return ""
	}
	return dir
}

// drain handles the events already queued, so that a change made just
// before famids was told to stop is still reported.
func (d *daemon) drain() {
	evs, err := d.w.queued()
	d.handle(evs)
	if err != nil {
		d.trouble.warnOnce(err.Error()) // the loop, if it goes on, meets it again
	}
}

// catchUp takes in every event queued until now without reporting it, so
// that a comparison that follows finds what they would tell, once.
func (d *daemon) catchUp() {
	defer d.susp.hold()()
	d.drain()
}

// arm hands out the job that arms e because an event said a name on its
// way changed: it sets e's watches as its path now resolves, and what the
// path became (created, deleted) is observed, unless events are held:
// then the comparison that ends the holding tells.
func (d *daemon) arm(e *entry) {
	d.arms.arm(e, arming{tell: !d.susp.holds()})
}

// armed takes in an arm of e done, as a asked: the watches that could not
// be set, what is odd about an entry new to famids, and what its path
// became.
func (d *daemon) armed(e *entry, a *arming, became string, errs []error) {
	if d.entryFor(e.Path) != e {
		d.w.disarm(e.Path) // removed by a reload meanwhile
		return
	}
	d.trouble.watchFailed(e.Path, errs...)
	if a.warn {
		exists, dir := d.w.kind(e.Path)
		for _, w := range entryWarnings(d.cfg, e, exists, dir) {
			fmt.Fprintf(os.Stderr, "famids: %s\n", w)
		}
	}
	if became != "" && a.tell {
		d.observe(observation{path: e.Path, event: became, entry: e.reporter()})
		d.compareEntries(e) // another directory, or none: its entries too
	}
}

// retryWatches arms again every entry with a watch that could not be set,
// and, in a watched directory whose entries could not all be watched
// through their inodes, sets those that are missing. Once an entry's
// watches are all set, what it reports on is compared with its record:
// while it was not watched, no event could tell of a change.
func (d *daemon) retryWatches() {
	var back []string // entries watched in full now
	left := 0
	for _, p := range d.trouble.unwatchedEntries() {
		e := d.entryFor(p)
		if e == nil {
			d.trouble.watchFailed(p) // no longer an entry
			continue
		}
		left++
		d.arms.armThen(e, false, func() {
			if _, dir := d.w.kind(e.Path); dir {
				d.realias(e)
			}
			if d.trouble.watchedFully(e.Path) {
				back = append(back, e.Path)
			}
			if left--; left == 0 && len(back) > 0 {
				d.compareWatched(back)
			}
		})
	}
}

// compareWatched compares with their records the paths the entries listed
// report on, found "once watched".
func (d *daemon) compareWatched(entries []string) {
	in := func(p string) bool {
		return slices.Contains(entries, p) || slices.Contains(entries, filepath.Dir(p))
	}
	d.scans.start(&scan{kind: "watched", found: foundOnceWatched, trust: true, only: in})
}

// realias sets the aliases missing in the directory entry e.
func (d *daemon) realias(e *entry) {
	var errs []error
	d.hand(&job{path: e.Path,
		work: func(context.Context, *job) {
			names, _ := readDirNames(e.Path)
			for _, n := range names {
				if e.matches(n) && !d.w.aliased(e.Path, n) {
					_, more := d.w.follow(e.Path, n)
					errs = append(errs, more...)
				}
			}
		},
		done: func() {
			if d.cfg.lookup(e.Path) == e {
				d.trouble.watchFailed(e.Path, errs...)
			}
		}})
}
