package main

// Aliases: the entries of a watched directory that famids reports on are
// watched through their inodes too, so that a write through another name
// of the same file, or to the file a symbolic link points to, is seen. A
// user who can make files in a watched directory must not use up, this
// way, the watches the configured paths and the other directories need,
// nor famids's memory: aliases have a budget, and each directory a share
// of it.

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// errAliasBudget says the entries of a watched directory past its share
// are not watched through their inodes, to keep watches for the
// configured paths and the other directories.
var errAliasBudget = fmt.Errorf("entries past this directory's share of watches are not watched through their inodes (at most %d a directory, fewer for files users other than root own, and half of what /proc/sys/fs/inotify/max_user_watches leaves the others); they are compared at each verification", maxAliasesPerDir)

// maxAliasesPerDir is how many entries of one directory are watched
// through their inodes at most: each costs a watch and a fanotify mark in
// the kernel, and some 400 bytes in famids, and a user making files by the
// hundred thousand in a watched directory must not make famids hold them.
const maxAliasesPerDir = 16384

// watchLimit returns the number of watches inotify allows famids's user,
// in its user namespace (/proc/sys/user/max_inotify_watches) and in all
// (/proc/sys/fs/inotify/max_user_watches); 0 when neither can be read.
// The entries of watched directories may take half of it (aliases); the
// directories of trees, up to three quarters of it with the rest; the
// last quarter is left to the configuration's own lines.
func watchLimit() int {
	limit := 0
	for _, f := range []string{"/proc/sys/fs/inotify/max_user_watches", "/proc/sys/user/max_inotify_watches"} {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if n, err := strconv.Atoi(strings.TrimSpace(string(data))); err == nil && n > 0 && (limit == 0 || n < limit) {
			limit = n
		}
	}
	return limit
}

// overBudget reports whether no more aliases may be added to the
// directory entry dir: it has maxAliasesPerDir, or its own count twice
// against the budget, so that one directory never takes more than half
// of what the others leave. A file another user than root owns stops
// sooner: at half of maxAliasesPerDir, its directory's count three times
// against the budget. A user who floods a shared directory with files
// whose names sort first cannot leave root's files there without their
// aliases. The caller holds mu.
func (w *watcher) overBudget(dir string, rootOwned bool) bool {
	own := 0
	if a := w.armed[dir]; a != nil {
		own = len(a.aliases)
	}
	if rootOwned {
		return own >= maxAliasesPerDir || w.aliasBudget > 0 && len(w.byWd)+own >= w.aliasBudget
	}
	return own >= maxAliasesPerDir/2 || w.aliasBudget > 0 && (len(w.byWd)+2*own >= w.aliasBudget || w.userAliases >= w.aliasBudget/2)
}

// forgetAlias drops the alias name of the armed directory a from its
// maps, and from the count of users' aliases. The caller holds mu.
func (w *watcher) forgetAlias(a *armed, name string) {
	delete(a.aliases, name)
	if a.users[name] {
		delete(a.users, name)
		w.userAliases--
	}
}

// alias watches the file that name, an entry of the directory entry dir,
// names now, through its inode, so that a write through another name of
// it is seen too; for a symbolic link, the file it points to. Entries of
// other kinds (a directory, a FIFO) have none. It returns the error of a
// watch that could not be added.
func (w *watcher) alias(dir, name string) error {
	p := filepath.Join(dir, name)
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG && st.Mode&unix.S_IFMT != unix.S_IFLNK {
		w.unalias(dir, name)
		return nil
	}
	w.beginAdd()
	wd, m, err := w.watchPath(p, aliasMask)
	w.mu.Lock()
	defer w.mu.Unlock()
	defer w.endAdd()
	if err != nil {
		w.unaliasLocked(dir, name)
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ENOTDIR) || errors.Is(err, syscall.ELOOP) {
			return nil // gone meanwhile, or a link that leads nowhere
		}
		return watchError(p, err)
	}
	a := w.armed[dir]
	if a == nil || !a.dir {
		// The directory went meanwhile.
		if w.byWd[wd] == nil {
			w.doomed = append(w.doomed, wd)
			w.byWd[wd] = &watch{wd: int32(wd), path: p}
			w.noteMark(w.byWd[wd], m)
		}
		return nil
	}
	s := sub{path: dir, role: roleAlias, name: name}
	if old, ok := a.aliases[name]; ok {
		if int(old) == wd {
			return nil
		}
		w.release(dir, []wsub{{old, roleAlias, name}}, nil)
	}
	wt := w.byWd[wd]
	if wt == nil {
		wt = &watch{wd: int32(wd), path: p}
		w.byWd[wd] = wt
	}
	w.noteMark(wt, m)
	wt.add(s)
	if a.aliases == nil {
		a.aliases = make(map[string]int32)
	}
	a.aliases[name] = int32(wd)
	if user := st.Uid != 0; user != a.users[name] {
		if user {
			if a.users == nil {
				a.users = make(map[string]bool)
			}
			a.users[name] = true
			w.userAliases++
		} else {
			delete(a.users, name)
			w.userAliases--
		}
	}
	return nil
}

// follow watches the entry name of the directory entry dir through its
// inode: a regular file by an alias, a symbolic link as a path of its own,
// armed as an entry of the configuration is (the directories on the way
// to what it points to, and that), so that a change of its target, or of
// the way to it, is seen. It reports whether the entry is a symbolic link,
// and the watches that could not be set.
//
// An entry that is also an entry of the configuration (own) is armed as
// its own already: it is only watched through its inode as dir's entry,
// and never disarmed here. An entry of trees alone (tree) is watched
// through its inode only when it may have other names: a symbolic link
// is not followed (a tree never reaches outside itself, and a link to
// /dev/null must not make every write to it an event).
func (w *watcher) follow(dir, name string, own, tree bool) (link bool, errs []error) {
	p := filepath.Join(dir, name)
	var st unix.Stat_t
	lerr := unix.Lstat(p, &st)
	if tree && lerr == nil && !w.mayHaveOtherNames(&st) {
		w.unalias(dir, name)
		return false, nil
	}
	w.mu.Lock()
	_, armed := w.armed[p]
	_, aliased := w.armed[dir].aliasOf(name)
	over := !armed && !aliased && w.overBudget(dir, lerr == nil && st.Uid == 0)
	w.mu.Unlock()
	if over {
		return false, []error{fmt.Errorf("%s: %w", dir, errAliasBudget)}
	}
	if !own && lerr == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
		w.unalias(dir, name)
		_, errs = w.arm(p)
		return true, errs
	}
	if err := w.alias(dir, name); err != nil {
		errs = append(errs, err)
	}
	return false, errs
}

// mayHaveOtherNames reports whether the file st, an entry of a tree, may
// be written through another name than its own, which its directory's
// watch does not see: it has another already, or someone other than root
// may give it one. With fs.protected_hardlinks, only a file's owner, or a
// user who may read and write it, can link it (and root, who can write
// the disk under the file system too); a root-owned file of mode 0644 with
// one link has no other name an intruder without root could write it
// through. Trees leave those, most of /usr and /etc, without a watch of
// their own: a watch and a fanotify mark each for 150,000 files would
// take more watches than inotify allows, 60 MB in famids, and an event for
// every program run. The directory's watch still sees every change made
// through the file's own name.
func (w *watcher) mayHaveOtherNames(st *unix.Stat_t) bool {
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return false // a link of a tree is not followed; the rest have no other name to write through
	}
	return st.Nlink > 1 || st.Uid != 0 || st.Mode&0o022 != 0 || !w.protectedLinks
}

// protectedHardlinks reports whether /proc/sys/fs/protected_hardlinks is
// on (see proc_sys_fs(5)); false when it cannot be read.
func protectedHardlinks() bool {
	data, err := os.ReadFile("/proc/sys/fs/protected_hardlinks")
	return err == nil && strings.TrimSpace(string(data)) == "1"
}

// aliasOf returns the watch of the alias name of a, an armed directory.
func (a *armed) aliasOf(name string) (int32, bool) {
	if a == nil {
		return 0, false
	}
	wd, ok := a.aliases[name]
	return wd, ok
}

// aliased reports whether the entry name of the directory entry dir is
// watched through its inode.
func (w *watcher) aliased(dir, name string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	a := w.armed[dir]
	if a == nil {
		return false
	}
	_, ok := a.aliases[name]
	return ok
}

// unalias stops watching the entry name of the directory entry dir
// through its inode.
func (w *watcher) unalias(dir, name string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.unaliasLocked(dir, name)
}

// unaliasLocked is unalias; the caller holds mu.
func (w *watcher) unaliasLocked(dir, name string) {
	a := w.armed[dir]
	if a == nil {
		return
	}
	if wd, ok := a.aliases[name]; ok {
		w.forgetAlias(a, name)
		w.release(dir, []wsub{{wd, roleAlias, name}}, nil)
	}
}

// releaseAliases drops every alias of the armed entry a at path. The
// caller holds mu.
func (w *watcher) releaseAliases(path string, a *armed) {
	for name, wd := range a.aliases {
		w.release(path, []wsub{{wd, roleAlias, name}}, nil)
	}
	w.userAliases -= len(a.users)
	a.aliases, a.users = nil, nil
}
