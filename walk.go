package main

// Walking a path as the kernel resolves it: every name looked up on the
// way, through symbolic links, so that each directory on the way can be
// watched.

import (
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// A lookup is one name the kernel looks up in a directory on the way to a
// path.
type lookup struct {
	dir, name string
	leaf      bool // the path's own last name
}

const maxSymlinks = 40 // as the kernel's MAXSYMLINKS

// A walkCache remembers, for one batch of arms, what the file system
// looked like: each name's lstat and each directory's watch descriptor, so
// that arming 10,000 entries of one directory looks at it once, not 10,000
// times. A change meanwhile is told by the watches already set.
type walkCache struct {
	lstat map[string]lstatResult
	wd    map[wdKey]wdResult // for the masks of lookups
}

type wdKey struct {
	dir  string
	mask uint32
}

type lstatResult struct {
	st     unix.Stat_t
	target string // of a symbolic link
	err    error
}

func (r lstatResult) isLink() bool { return r.st.Mode&unix.S_IFMT == unix.S_IFLNK }
func (r lstatResult) isDir() bool  { return r.st.Mode&unix.S_IFMT == unix.S_IFDIR }

type wdResult struct {
	wd  int
	m   mark
	err error
}

func newWalkCache() *walkCache {
	return &walkCache{lstat: make(map[string]lstatResult), wd: make(map[wdKey]wdResult)}
}

// lstatOf returns path's mode and, for a symbolic link, its target; c may
// be nil.
func (c *walkCache) lstatOf(path string) lstatResult {
	if c != nil {
		if r, ok := c.lstat[path]; ok {
			return r
		}
	}
	var r lstatResult
	r.err = unix.Lstat(path, &r.st)
	if r.err == nil && r.isLink() {
		r.target, r.err = os.Readlink(path)
	}
	if c != nil {
		c.lstat[path] = r
	}
	return r
}

// wdOf returns the watch descriptor added for dir with mask in this batch.
func (c *walkCache) wdOf(dir string, mask uint32) (wdResult, bool) {
	if c == nil || mask != lookupMask && mask != leafMask {
		return wdResult{}, false
	}
	r, ok := c.wd[wdKey{dir, mask}]
	return r, ok
}

func (c *walkCache) setWd(dir string, mask uint32, r wdResult) {
	if c != nil && (mask == lookupMask || mask == leafMask) {
		c.wd[wdKey{dir, mask}] = r
	}
}

// resolve walks path one name at a time, following symbolic links as the
// kernel does, and returns every lookup made and the real path that path
// names, or "" when a name on the way does not exist (yet).
func resolve(path string, c *walkCache) (lookups []lookup, real string) {
	lookups, real, _, _ = resolveStat(path, c)
	return lookups, real
}

// resolveStat is resolve, which also returns the stat of real when its
// last look found it (found). The stat is returned by value: a pointer to
// each look's would cost an allocation per name per entry.
func resolveStat(path string, c *walkCache) (lookups []lookup, real string, st unix.Stat_t, found bool) {
	if !filepath.IsAbs(path) || filepath.Clean(path) != path {
		return walk(path, c)
	}
	// The usual case, without a symbolic link on the way, is walked
	// without building a string: every name and directory is part of path.
	lookups = make([]lookup, 0, strings.Count(path, "/"))
	dir := "/"
	for start := 1; start < len(path); {
		end := strings.IndexByte(path[start:], '/')
		if end < 0 {
			end = len(path)
		} else {
			end += start
		}
		leaf := end == len(path)
		lookups = append(lookups, lookup{dir, path[start:end], leaf})
		cache := c
		if leaf {
			cache = nil // an entry's own name: looked up once
		}
		fi := cache.lstatOf(path[:end])
		switch {
		case fi.err != nil:
			return lookups, "", st, false
		case fi.isLink():
			return walk(path, c)
		case !fi.isDir() && !leaf:
			return lookups, "", st, false // a file where a directory should be
		}
		dir, st, found = path[:end], fi.st, true
		start = end + 1
	}
	return lookups, dir, st, found
}

// walk is resolveStat for any path: it follows symbolic links.
func walk(path string, c *walkCache) (lookups []lookup, real string, st unix.Stat_t, found bool) {
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
			dir, found = filepath.Dir(dir), false
			continue
		}
		lookups = append(lookups, lookup{dir, p.name, p.leaf})
		next := filepath.Join(dir, p.name)
		cache := c
		if p.leaf {
			cache = nil // an entry's own name: looked up once
		}
		fi := cache.lstatOf(next)
		if fi.err != nil {
			return lookups, "", st, false
		}
		found = false
		if fi.isLink() {
			links++
			if links > maxSymlinks {
				return lookups, "", st, false
			}
			if filepath.IsAbs(fi.target) {
				dir = "/"
			}
			var more []part
			for _, n := range strings.Split(fi.target, "/") {
				more = append(more, part{name: n})
			}
			todo = append(more, todo...)
			continue
		}
		if !fi.isDir() && len(todo) > 0 {
			return lookups, "", st, false // a file where a directory should be
		}
		dir = next
		st, found = fi.st, true
	}
	return lookups, dir, st, found
}
