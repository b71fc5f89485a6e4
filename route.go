package main

// From events to observations: each event is routed to the entries that
// watch it and becomes what it says happened to which path, an
// observation, which then joins its path's burst (bursts.go).

import (
	"path/filepath"

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

// A router turns events into observations, and arms again the entries
// whose way changed. It owns the entries watched beside the
// configuration's: the symbolic links in watched directories, each
// watched as a path of its own, and the directories of trees. Only the
// event loop's goroutine touches it.
type router struct {
	w       *watcher
	config  func() *config    // the configuration in use
	arm     func(e *entry)    // a name on e's way changed
	grow    func(dir string)  // a directory came into a tree (tree.go)
	prune   func(dir string)  // a directory of a tree went (tree.go)
	derived map[string]*entry // symbolic links in watched directories, and directories of trees, by path
	hits    []hit             // reused: a storm routes thousands of events a second
	ends    []int             // where the hits of each event of the batch end
}

// route turns a batch of events into observations, in the order they
// came; overflowed says the kernel's queue overflowed, and the events
// that would have told were lost.
func (rt *router) route(evs []event) (obs []observation, overflowed bool) {
	hits, ends := rt.w.routeAll(evs, rt.hits[:0], rt.ends[:0])
	start := 0
	var last *entry // the entry of the hit before: in a storm, the same
	for i, ev := range evs {
		if ev.mask&unix.IN_Q_OVERFLOW != 0 {
			overflowed = true
		}
		for _, h := range hits[start:ends[i]] {
			e := last
			if e == nil || e.Path != h.path {
				e = rt.entryFor(h.path)
			}
			if e != nil {
				last = e
				obs = append(obs, rt.interpret(e, h)...)
			}
		}
		start = ends[i]
	}
	rt.hits, rt.ends = hits, ends
	return obs, overflowed
}

// followed notes what a record of path, an entry of the watched directory
// dir, found: a symbolic link is watched as a path of its own; anything
// else is not.
func (rt *router) followed(path, dir string, link bool) {
	e := rt.derived[path]
	switch {
	case e != nil && e.in != nil:
		// A directory of a tree: the tree's walk follows it.
	case !link:
		rt.unfollow(path) // it may have been a link
	case e == nil:
		rt.derived[path] = &entry{Path: path, owner: dir}
	}
}

// unfollowAll stops watching the paths watched beside the configuration's
// that keep refuses.
func (rt *router) unfollowAll(keep func(e *entry) bool) {
	for p, e := range rt.derived {
		if !keep(e) {
			rt.unfollow(p)
		}
	}
}

// Masks that tell how a directory entry changed.
const (
	nsMask   = unix.IN_CREATE | unix.IN_DELETE | unix.IN_MOVED_FROM | unix.IN_MOVED_TO
	goneMask = unix.IN_DELETE_SELF | unix.IN_MOVE_SELF | unix.IN_IGNORED | unix.IN_UNMOUNT
)

// interpret maps an event, routed to entry e, to what it says happened to
// which path, and arms e again when a name on its way changed.
func (rt *router) interpret(e *entry, h hit) []observation {
	named := h.name != ""
	switch h.role {
	case roleLeaf:
		if named && h.mask&nsMask != 0 {
			rt.arm(e)
			return rt.self(e, famEvent(h.mask), false)
		}
		if named && h.mask&unix.IN_ATTRIB != 0 {
			// The name's own inode: a symbolic link's owner, say.
			return rt.self(e, "change", true)
		}
		if h.mask&goneMask != 0 {
			return rt.rearm(e)
		}
	case roleLookup:
		if (named && h.mask&nsMask != 0) || h.mask&goneMask != 0 {
			return rt.rearm(e)
		}
	case roleSelf:
		switch {
		case h.mask&unix.IN_MODIFY != 0:
			return rt.self(e, "change", false)
		case h.mask&(unix.IN_ATTRIB|unix.IN_CLOSE_WRITE) != 0:
			// Unlinking or renaming over a file changes its link count
			// before the directory says the name went: the path is
			// compared, not reported on the word of this event.
			return rt.self(e, "change", true)
		case h.mask&goneMask != 0:
			return rt.rearm(e)
		}
	case roleAlias:
		if h.name == "" && h.mask&contentMask != 0 && e.lists() {
			p := filepath.Join(e.Path, h.sub.name)
			return rt.entryObs(nil, e, h.sub.name, p, "change", h.mask&unix.IN_MODIFY == 0)
		}
	case roleEntries:
		switch {
		case named:
			if e.link() {
				return nil // a symbolic link to a directory: its entries are not the link's
			}
			if (h.mask&unix.IN_ISDIR == 0 || !rt.inTree(e)) && len(rt.owners(e, h.name)) == 0 {
				// A name no line reports on (a directory of a tree is
				// searched whatever its name): it has no alias, nor a
				// link followed, and a storm of such names costs
				// nothing more.
				return nil
			}
			p := filepath.Join(e.Path, h.name)
			if h.mask&unix.IN_ISDIR != 0 && h.mask&nsMask != 0 && rt.inTree(e) {
				if h.mask&(unix.IN_CREATE|unix.IN_MOVED_TO) != 0 {
					rt.grow(p)
				} else {
					rt.prune(p)
				}
			}
			if h.mask&(unix.IN_DELETE|unix.IN_MOVED_FROM) != 0 {
				rt.w.unalias(e.Path, h.name) // the file may live on under another name
				rt.unfollow(p)
			}
			return rt.entryObs(nil, e, h.name, p, famEvent(h.mask), h.mask&contentMask == unix.IN_CLOSE_WRITE)
		case h.mask&unix.IN_ATTRIB != 0:
			return rt.self(e, "change", false)
		case h.mask&unix.IN_CLOSE_WRITE != 0:
			return nil // a directory is never written
		case h.mask&goneMask != 0:
			return rt.rearm(e)
		}
	}
	return nil
}

// inTree reports whether the directory entry e is in a tree: a tree's
// root, a directory found below it, or an entry of the configuration
// inside one.
func (rt *router) inTree(e *entry) bool {
	return e.in != nil || e.Tree || len(rt.config().treesAt(e.Path)) > 0
}

// self returns the observation of e's own path, on behalf of each entry
// that reports on it: a directory of a tree is reported only when its
// name is important to the tree.
func (rt *router) self(e *entry, event string, weak bool) []observation {
	if e.in == nil {
		return []observation{{path: e.Path, event: event, entry: e.reporter(), weak: weak}}
	}
	var obs []observation
	for _, o := range rt.config().owners(e.Path) {
		obs = append(obs, observation{path: e.Path, event: event, entry: o.Path, weak: weak})
	}
	return obs
}

// entryObs appends to obs the observation of path, the entry name of the
// directory entry dir, on behalf of each entry that reports on it.
func (rt *router) entryObs(obs []observation, dir *entry, name, path, event string, weak bool) []observation {
	for _, o := range rt.owners(dir, name) {
		obs = append(obs, observation{path: path, event: event, entry: o.Path, weak: weak})
	}
	return obs
}

// treesOf returns the trees that hold dir, a directory of a tree (none
// of the configuration's own lines, which would make it an entry of its
// own): childOwners, for its entries, less the walk up every directory.
func (rt *router) treesOf(dir *entry) []*entry {
	if c := rt.config(); dir.treesOf != c {
		dir.trees, dir.treesOf = c.treesAt(dir.Path), c
	}
	return dir.trees
}

// owners returns the lines of the configuration that report on the entry
// name of the directory entry dir: childOwners, found for a directory of
// a tree among the trees that hold it. A name no line reports on costs no
// allocation.
func (rt *router) owners(dir *entry, name string) []*entry {
	if dir.in == nil {
		return rt.config().childOwners(dir.Path, name)
	}
	var es []*entry
	for _, t := range rt.treesOf(dir) {
		if t.matches(name) {
			es = append(es, t)
		}
	}
	return es
}

// rearm arms e again because a name on the way to its path changed, and
// has the path compared with its record: what it resolves to may have
// changed, and by the time the arm looks, the name may be back, another
// way (a directory swapped for a link to a copy of it).
func (rt *router) rearm(e *entry) []observation {
	rt.arm(e)
	return rt.self(e, "change", true)
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
// configuration, a symbolic link in a watched directory, or a directory
// of a tree.
func (rt *router) entryFor(path string) *entry {
	if e := rt.config().lookup(path); e != nil {
		return e
	}
	return rt.derived[path]
}

// unfollow stops watching a symbolic link in a watched directory as a
// path of its own: its name went.
func (rt *router) unfollow(path string) {
	if rt.derived[path] != nil {
		delete(rt.derived, path)
		rt.w.disarm(path)
	}
}

// lookAt returns how a record of path watches it first: through its
// inode, as an entry of the watched directory it is in (when famids
// reports on it there), unless it is an entry of the configuration too,
// armed as its own.
func (rt *router) lookAt(path string) look {
	e := rt.entryFor(path)
	l := look{dir: rt.aliasDir(path), own: e != nil && !e.link()}
	l.tree = l.dir != "" && !l.own && rt.config().treesAlone(l.dir, filepath.Base(path))
	return l
}

// aliasDir returns the watched directory entry whose entry path is, when
// famids reports on it, or "".
func (rt *router) aliasDir(path string) string {
	dir := filepath.Dir(path)
	if dir == path {
		return ""
	}
	e := rt.entryFor(dir)
	if e == nil || !e.lists() || len(rt.config().childOwners(dir, filepath.Base(path))) == 0 {
		return ""
	}
	if _, isDir := rt.w.kind(dir); !isDir {
		return ""
	}
	return dir
}
