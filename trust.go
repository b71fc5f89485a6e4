package main

// What famids trusts. It runs as root: a configuration names commands it
// runs, and its state directory is where it writes. Both are trusted only
// when nobody else can change them, nor replace them: the file famids
// actually opened must be owned by root (or famids's user) and not
// writable by group or others, and so must every directory above it,
// unless it is sticky (then only a file's owner can replace it).

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// ownedByUs reports whether uid is root's or the user's famids runs as.
func ownedByUs(uid uint32) bool {
	return uid == 0 || int(uid) == os.Getuid()
}

// untrustedFile returns why the open file st describes, read as name,
// could have been written by someone else, or "".
func untrustedFile(name string, st *unix.Stat_t) string {
	if st.Mode&0o022 != 0 {
		return fmt.Sprintf("%s is writable by group or others (mode %04o)", quoteIfNeeded(name), st.Mode&0o7777)
	}
	if !ownedByUs(st.Uid) {
		return fmt.Sprintf("%s is owned by uid %d, neither root nor the user famids runs as (uid %d)", quoteIfNeeded(name), st.Uid, os.Getuid())
	}
	return ""
}

// untrustedDir returns why someone else could put another file in place
// of one in the directory st describes, or "".
func untrustedDir(dir string, st *unix.Stat_t) string {
	if !ownedByUs(st.Uid) {
		return fmt.Sprintf("directory %s is owned by uid %d, neither root nor the user famids runs as (uid %d)", quoteIfNeeded(dir), st.Uid, os.Getuid())
	}
	if st.Mode&0o022 != 0 && st.Mode&unix.S_ISVTX == 0 {
		return fmt.Sprintf("directory %s is writable by group or others (mode %04o) and not sticky", quoteIfNeeded(dir), st.Mode&0o7777)
	}
	return ""
}

// untrustedDirs returns why someone else could replace what path names,
// or "": a directory above it (or path itself, when it is one) that is not
// famids's own, or a symbolic link on the way (or path itself) that
// another user owns, and so may point elsewhere, even in a sticky
// directory. Each name is looked at as it is, a symbolic link as the link:
// the directories of its target are those of the real path, which the
// caller checks too.
func untrustedDirs(path string) string {
	for p := path; ; p = filepath.Dir(p) {
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			if p == path {
				continue // not made yet: its directory tells
			}
			return fmt.Sprintf("cannot look at directory %s: %s", quoteIfNeeded(p), quoteIfNeeded(err.Error()))
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			if why := untrustedDir(p, &st); why != "" {
				return why
			}
		case unix.S_IFLNK:
			if !ownedByUs(st.Uid) {
				return fmt.Sprintf("symbolic link %s is owned by uid %d, neither root nor the user famids runs as (uid %d): its owner can point it elsewhere", quoteIfNeeded(p), st.Uid, os.Getuid())
			}
		}
		if p == "/" || p == "." {
			return ""
		}
	}
}

// untrustedOpen returns why the file open as fd, opened by the name
// name, must not be trusted, or "": the file itself, the directories
// above the name it was opened by, and those above the file it really is.
func untrustedOpen(fd int, name string) string {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Sprintf("cannot look at %s: %s", quoteIfNeeded(name), quoteIfNeeded(err.Error()))
	}
	if why := untrustedFile(name, &st); why != "" {
		return why
	}
	abs, err := filepath.Abs(name)
	if err != nil {
		return fmt.Sprintf("cannot tell where %s is: %s", quoteIfNeeded(name), quoteIfNeeded(err.Error()))
	}
	if why := untrustedDirs(abs); why != "" {
		return why
	}
	real, err := os.Readlink(fdPath(fd))
	if err != nil || real == abs {
		return "" // without /proc, the name it was opened by is what there is
	}
	return untrustedDirs(real)
}
