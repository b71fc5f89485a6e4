package main

// Trees: a PATH/** of the configuration names a directory and every entry
// below it, on the directory's file system. Each directory of a tree is
// watched as a directory of the configuration is, by an entry of its own
// that the router keeps beside the configuration's (its owner is the
// tree): its entries are reported as the tree's, its ACTION runs. A walk
// finds the directories, in a job; the loop then arms those it did not
// watch yet. A directory that comes into a tree (made, moved in, found by
// a comparison) is walked and armed at once, and its entries compared
// with their records, so that what was made in it before its watch was
// set is reported too; one that goes takes its entries with it.

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// walkTree returns dir and the directories below it that a tree holds:
// on dir's file system (on its parent's, unless root says dir is a
// tree's root: a file system mounted on a directory of a tree is not
// entered), never through a symbolic link, each directory once (a bind
// mount of a directory inside itself would make the walk endless). It
// returns nothing when dir is not such a directory. deep is the first
// directory found whose entries' paths are too long for the kernel to
// resolve (PATH_MAX): what lies below it cannot be watched, nor recorded.
func walkTree(dir string, root bool) (dirs []string, deep string) {
	if len(dir) >= unix.PathMax {
		return nil, parentOf(dir)
	}
	var st unix.Stat_t
	if unix.Lstat(dir, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return nil, ""
	}
	dev := st.Dev
	if !root {
		var up unix.Stat_t
		if unix.Lstat(parentOf(dir), &up) != nil || up.Dev != dev {
			return nil, ""
		}
	}
	type inode struct{ dev, ino uint64 }
	seen := make(map[inode]bool)
	next := []string{dir}
	for len(next) > 0 {
		d := next[0]
		next = next[1:]
		f, err := os.OpenFile(d, os.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
		if err != nil {
			continue // gone, or replaced meanwhile: its parent's watch tells
		}
		var fst unix.Stat_t
		if unix.Fstat(int(f.Fd()), &fst) != nil || fst.Dev != dev || seen[inode{uint64(fst.Dev), fst.Ino}] {
			f.Close()
			continue
		}
		seen[inode{uint64(fst.Dev), fst.Ino}] = true
		dirs = append(dirs, d)
		des, _ := f.ReadDir(-1)
		f.Close()
		for _, de := range des {
			if !de.IsDir() {
				continue
			}
			if p := filepath.Join(d, de.Name()); len(p) < unix.PathMax {
				next = append(next, p)
			} else if deep == "" {
				deep = d
			}
		}
	}
	return dirs, deep
}

// under reports whether path is dir or below it.
func under(path, dir string) bool {
	return path == dir || strings.HasPrefix(path, dirPrefix(dir))
}

// treeDirs returns the directories of trees watched beside the
// configuration's entries.
func (rt *router) treeDirs() []*entry {
	var es []*entry
	for _, e := range rt.derived {
		if e.in != nil {
			es = append(es, e)
		}
	}
	return es
}

// addTreeDir watches path, a directory of tree t, as an entry of its own.
func (rt *router) addTreeDir(path string, t *entry) *entry {
	if e := rt.derived[path]; e != nil {
		rt.unfollow(path) // a symbolic link that was there before
	}
	e := &entry{Path: path, owner: t.Path, in: t}
	rt.derived[path] = e
	return e
}

// unfollowBelow stops watching every path watched beside the
// configuration's at or below dir that keep refuses, and returns the
// directories of trees among them.
func (rt *router) unfollowBelow(dir string, keep func(path string) bool) (dirs []string) {
	for p, e := range rt.derived {
		if under(p, dir) && !keep(p) {
			if e.in != nil {
				dirs = append(dirs, p)
			}
			rt.unfollow(p)
		}
	}
	return dirs
}

// armEntries arms entries, grows the trees among them, and then runs
// then.
func (d *daemon) armEntries(entries []*entry, warn bool, then func()) {
	d.arms.armAll(entries, warn, func() { d.growTrees(entries, then) })
}

// growTrees walks every tree among entries from its root and arms its
// directories, then runs then. What is in them is left to the comparison
// that follows.
func (d *daemon) growTrees(entries []*entry, then func()) {
	left := 1
	one := func() {
		if left--; left == 0 {
			then()
		}
	}
	for _, e := range entries {
		if e.Tree {
			left++
			d.growFrom(e.Path, growQuiet, one)
		}
	}
	one()
}

// A growth says what a walk of a tree compares of the directories it
// arms.
type growth uint8

const (
	growQuiet growth = iota // nothing: a comparison of every path follows
	growTell                // what each holds: the directory came into the tree
	growFresh               // what the directories not watched before hold: a walk again
)

// regrowTrees walks every tree of the configuration again, but those in
// skip: directories a walk missed, or that were past the budget of
// watches, are watched once they can be.
func (d *daemon) regrowTrees(skip []*entry) {
	d.w.fitLimit(watchLimit()) // raised meanwhile, say
	for _, e := range d.cfg.Entries {
		if e.Tree && !slices.Contains(skip, e) {
			d.growFrom(e.Path, growFresh, nil)
		}
	}
}

// grow is a directory that came into a tree: it and every directory below
// it are watched, and what they hold is compared with its records; while
// events are held, the comparison that ends the holding tells instead.
func (d *daemon) grow(dir string) {
	how := growTell
	if d.susp.holds() {
		how = growQuiet
	}
	d.growFrom(dir, how, nil)
}

// growFrom hands out the job that walks dir, then arms on the loop the
// directories the walk found, and stops watching those below dir it no
// longer found. Then the entries of those how says are compared with
// their records: names without one are reported as made. then, when set,
// runs once the directories are armed.
func (d *daemon) growFrom(dir string, how growth, then func()) {
	var dirs []string
	var deep string
	root := d.cfg.trees[dir] != nil
	d.hand(&job{path: dir,
		work: func(context.Context, *job) { dirs, deep = walkTree(dir, root) },
		done: func() {
			if then == nil {
				then = func() {}
			}
			trees := d.cfg.treesAt(dir)
			if len(trees) == 0 {
				then() // no longer in a tree
				return
			}
			if deep != "" {
				d.trouble.treeTooDeep(trees[len(trees)-1].line(), deep)
			}
			found := make(map[string]bool, len(dirs))
			for _, p := range dirs {
				found[p] = true
			}
			gone := d.route.unfollowBelow(dir, func(p string) bool {
				e := d.route.derived[p]
				return found[p] || found[parentOf(p)] && e.in == nil // a symbolic link of a directory still there
			})
			for _, g := range gone {
				if how != growQuiet {
					d.compareGone(g) // another directory took its place, or none
				}
			}
			var arm, fresh []*entry
			room, left, added := d.w.treeRoom(), 0, 0
			for _, p := range dirs {
				if d.cfg.lookup(p) != nil {
					continue // an entry of its own, armed as such
				}
				e := d.route.derived[p]
				if e == nil || e.in == nil || e.over {
					if e == nil || e.in == nil {
						e = d.route.addTreeDir(p, d.cfg.treesAt(p)[0])
					}
					if room >= 0 && added >= room {
						// Past the budget: not watched, its entries
						// compared at each verification.
						e.over = true
						left++
						continue
					}
					e.over = false
					added++
					fresh = append(fresh, e)
				}
				arm = append(arm, e)
			}
			if left > 0 {
				d.trouble.treeOver(trees[len(trees)-1].line(), d.w.count()+added+left, d.w.limit)
			}
			d.arms.armAll(arm, false, func() {
				var compare []*entry
				switch how {
				case growTell:
					compare = arm
				case growFresh:
					compare = fresh // what they hold was not watched
				}
				for _, e := range compare {
					if d.route.entryFor(e.Path) == e {
						d.compareEntries(e)
					}
				}
				then()
			})
		}})
}

// prune is a directory of a tree that went (removed, moved away): the
// paths watched below it are no longer, and each path with a record below
// it is compared, to be reported gone.
func (d *daemon) prune(dir string) {
	d.route.unfollowBelow(dir, func(string) bool { return false })
	for _, p := range d.base.below(dir) {
		d.compareRecord(p)
	}
}

// compareGone has the paths with a record in dir, a directory of a tree
// no longer watched, compared: those gone are reported.
func (d *daemon) compareGone(dir string) {
	for _, p := range d.base.entriesOf(dir) {
		d.compareRecord(p)
	}
}

// compareRecord has path, which has a record, compared with it, on behalf
// of each entry that reports on it: gone, it is reported as deleted.
func (d *daemon) compareRecord(path string) {
	for _, o := range d.cfg.owners(path) {
		d.observe(observation{path: path, event: "delete", entry: o.Path, weak: true})
	}
}

// treeDirFound is a directory recorded at path: when it is in a tree and
// not yet watched as one of its directories, it comes into the tree.
func (d *daemon) treeDirFound(path string) {
	if d.route.entryFor(path) != nil || len(d.cfg.treesAt(parentOf(path))) == 0 {
		return
	}
	if e := d.route.entryFor(parentOf(path)); e == nil || !e.lists() {
		return // its directory is not watched as the tree's: across a mount, say
	}
	d.grow(path)
}
