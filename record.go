package main

// What famids records of a path: its stat(2), the SHA-256 of a regular
// file's content, where a symbolic link points, its inode flags and its
// extended attributes (capabilities, ACLs, the SELinux label and every
// other one). Everything that gives a file power or hides it changes one
// of them.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// attrs are what famids records of a path. The zero value, with Exists
// false, stands for a path that does not exist.
type attrs struct {
	Exists bool
	Type   string // file, dir, symlink, fifo, socket, chardev, blockdev
	Mode   uint32 // permission bits with setuid, setgid and sticky
	UID    uint32
	GID    uint32
	Size   int64
	Mtime  time.Time
	Ctime  time.Time // only the kernel sets it: any change moves it
	Inode  uint64
	Links  uint64
	Dev    uint64 // not shown: an inode number names a file only with it
	SHA256 string // hex, for regular files only; digestUnreadable when it could not be read
	Flags  uint32 // inode flags, FS_IOC_GETFLAGS (linux/fs.h)

	Ext *extended // nil when the path has none of them, as most have none

	// Partial marks a record from an older state file, which did not
	// record Flags and Ext: they are not compared.
	Partial bool
	// busy says the content could not be read because another process
	// holds a lease on the file, which the kernel breaks within
	// /proc/sys/fs/lease-break-time: it is worth reading again soon.
	busy bool
	// cut says the record was cut short: famids is stopping.
	cut bool
}

// extended are the attributes few paths have, kept apart so that the
// many records without them stay small. Every string is as the file
// system gave it, byte for byte.
type extended struct {
	Link       string // where a symbolic link at the path points, readlink(2)
	Caps       string // security.capability, as getcap(8) prints it
	ACL        string // system.posix_acl_access: its entries beyond the mode, acl(5) short text form
	DefaultACL string // system.posix_acl_default, acl(5) short text form
	SELinux    string // security.selinux, the SELinux context
	Xattrs     string // every other extended attribute: NAME:HASH,... (xattrSummary)
}

// digestUnreadable stands for content that could not be read.
const digestUnreadable = "unreadable"

// maxZeroSize is how much of a file whose stat size is 0 (procfs, sysfs:
// their size says nothing of their content) is read and hashed.
const maxZeroSize = 1 << 20

// A recorder records paths. It is safe for concurrent use.
type recorder struct {
	names *idNames // user and group names for ACL entries
}

func newRecorder() *recorder {
	return &recorder{names: newIDNames()}
}

// record returns what path is now, following symbolic links; a dangling
// link is described as the link itself. With prev, the record of the same
// path taken before, a file that stat says is unchanged since (same
// device, inode, size, mtime and ctime, which only the kernel sets, and
// which every change of content, flags or extended attributes moves)
// keeps prev's hash, flags and extended attributes without being read.
func (rc *recorder) record(path string, prev *attrs) attrs {
	return rc.recordJob(context.Background(), nil, path, prev)
}

// recordJob is record for a job of the pool: the hash tells j of its
// progress, and stops once ctx is done, cutting the record short. j may
// be nil.
func (rc *recorder) recordJob(ctx context.Context, j *job, path string, prev *attrs) attrs {
	var lst unix.Stat_t
	if err := unix.Lstat(path, &lst); err != nil {
		return attrs{}
	}
	st, link, isLink := lst, "", lst.Mode&unix.S_IFMT == unix.S_IFLNK
	if isLink {
		link = readlink(path)
		if unix.Stat(path, &st) != nil {
			st = lst // dangling: the link itself
		}
	}
	a := fromStat(&st)
	if prev != nil && unchanged(prev, &a) {
		a.SHA256, a.Flags, a.Ext = prev.SHA256, prev.Flags, prev.Ext
		a.setLink(link)
		return a
	}
	switch a.Type {
	case "file", "dir":
		rc.readInode(ctx, j, path, !isLink, &a)
	case "symlink":
		// A dangling link: what it points to is all there is.
	default:
		// A FIFO or a device is never opened: that could block or act.
		rc.readXattrs(func(buf []byte) (int, error) { return listxattr(path, buf, isLink) },
			func(name string, buf []byte) (int, error) { return getxattr(path, name, buf, isLink) }, &a)
	}
	a.setLink(link)
	return a
}

// unchanged reports whether a, just stat'ed, is the file prev recorded,
// untouched since: then prev's content attributes hold. A file of size 0
// is always read again: procfs and sysfs files change without a stat
// telling.
func unchanged(prev, a *attrs) bool {
	return prev.Exists && !prev.Partial && prev.Type == a.Type && prev.Dev == a.Dev && prev.Inode == a.Inode &&
		prev.Size == a.Size && prev.Mtime.Equal(a.Mtime) && prev.Ctime.Equal(a.Ctime) &&
		(a.Type != "file" || prev.SHA256 != "" && prev.SHA256 != digestUnreadable && a.Size > 0)
}

// fromStat returns the attributes stat(2) gives.
func fromStat(st *unix.Stat_t) attrs {
	return attrs{
		Exists: true,
		Type:   fileType(st.Mode),
		Mode:   st.Mode & 0o7777,
		UID:    st.Uid,
		GID:    st.Gid,
		Size:   st.Size,
		Mtime:  time.Unix(st.Mtim.Sec, st.Mtim.Nsec).UTC(),
		Ctime:  time.Unix(st.Ctim.Sec, st.Ctim.Nsec).UTC(),
		Inode:  st.Ino,
		Links:  uint64(st.Nlink),
		Dev:    st.Dev,
	}
}

func fileType(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFREG:
		return "file"
	case unix.S_IFDIR:
		return "dir"
	case unix.S_IFLNK:
		return "symlink"
	case unix.S_IFIFO:
		return "fifo"
	case unix.S_IFSOCK:
		return "socket"
	case unix.S_IFCHR:
		return "chardev"
	case unix.S_IFBLK:
		return "blockdev"
	}
	return "unknown"
}

// readInode opens the regular file or directory at path and records from
// the open file what stat cannot tell: its hash, flags and extended
// attributes. The open file is what is described: when it is not the
// inode a was stat'ed from (the path was replaced meanwhile), its own stat
// replaces a's. nofollow is set when path itself is not a symbolic link.
// It uses the system calls directly: an os.File would cost an epoll
// registration attempt and a finalizer per file.
func (rc *recorder) readInode(ctx context.Context, j *job, path string, nofollow bool, a *attrs) {
	flags := unix.O_RDONLY | unix.O_NONBLOCK | unix.O_CLOEXEC | unix.O_NOCTTY
	if nofollow {
		flags |= unix.O_NOFOLLOW
	}
	if a.Type == "dir" {
		flags |= unix.O_DIRECTORY
	}
	fd, err := unix.Open(path, flags, 0)
	if err != nil {
		if a.Type == "file" {
			a.SHA256 = digestUnreadable
			a.busy = errors.Is(err, unix.EWOULDBLOCK) // a lease, being broken
		}
		return
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if unix.Fstat(fd, &st) == nil && (uint64(st.Dev) != a.Dev || st.Ino != a.Inode) {
		if fileType(st.Mode) != a.Type {
			// Replaced by something else meanwhile: what was opened is
			// not what the path is now; the event that told of it
			// brings another record.
			if a.Type == "file" {
				a.SHA256 = digestUnreadable
			}
			return
		}
		*a = fromStat(&st)
	}
	if f, err := unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS); err == nil {
		a.Flags = f
	}
	rc.readXattrs(func(buf []byte) (int, error) { return unix.Flistxattr(fd, buf) },
		func(name string, buf []byte) (int, error) { return unix.Fgetxattr(fd, name, buf) }, a)
	if a.Type == "file" {
		a.SHA256 = hashFD(ctx, j, fd, a.Size)
		a.cut = ctx.Err() != nil
	}
}

// readlink returns where the symbolic link at path points, byte for byte.
func readlink(path string) string {
	buf := make([]byte, 256)
	for {
		n, err := unix.Readlink(path, buf)
		if err != nil {
			return ""
		}
		if n < len(buf) {
			return string(buf[:n])
		}
		buf = make([]byte, 2*len(buf))
	}
}

// setLink records where a symbolic link at the path points.
func (a *attrs) setLink(link string) {
	if link == "" && (a.Ext == nil || a.Ext.Link == "") {
		return
	}
	a.ext().Link = link
	a.dropEmptyExt()
}

// ext returns a's extended attributes, allocating them: a's own copy, so
// that a record shared with prev is never changed.
func (a *attrs) ext() *extended {
	x := new(extended)
	if a.Ext != nil {
		*x = *a.Ext
	}
	a.Ext = x
	return x
}

func (a *attrs) dropEmptyExt() {
	if a.Ext != nil && *a.Ext == (extended{}) {
		a.Ext = nil
	}
}

// hashBuffers are the read buffers of hashFD and of the extended
// attributes, which run on every CPU at start-up.
var hashBuffers = sync.Pool{New: func() any { return new([64 << 10]byte) }}

// hashFD returns the hex SHA-256 of the file's first size bytes, as stat
// saw it (all of it, unless it grew since), or digestUnreadable. A file of
// size 0 is read to its end, up to maxZeroSize: procfs and sysfs files
// have content that their size does not tell. Each read tells j (when
// not nil) of the progress, and the hash stops, unreadable, once ctx is
// done: a 15 TiB sparse file takes hours.
func hashFD(ctx context.Context, j *job, fd int, size int64) string {
	if size == 0 {
		size = maxZeroSize
	}
	buf := hashBuffers.Get().(*[64 << 10]byte)
	defer hashBuffers.Put(buf)
	h := sha256.New()
	for left := size; left > 0; {
		if ctx.Err() != nil {
			return digestUnreadable
		}
		n, err := unix.Read(fd, buf[:min(left, int64(len(buf)))])
		if j != nil && n > 0 {
			j.advance(int64(n))
		}
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return digestUnreadable
		case n == 0:
			left = 0 // it shrank, or its end was not known
		}
		h.Write(buf[:n])
		left -= int64(n)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Extended attributes that have their own field.
const (
	xattrCaps       = "security.capability"
	xattrACL        = "system.posix_acl_access"
	xattrDefaultACL = "system.posix_acl_default"
	xattrSELinux    = "security.selinux"
)

// readXattrs records every extended attribute that list names and get
// reads, each in its field; what cannot be read or decoded is still
// recorded, as the digest of its raw value, so that a change shows.
func (rc *recorder) readXattrs(list func([]byte) (int, error), get func(string, []byte) (int, error), a *attrs) {
	buf := hashBuffers.Get().(*[64 << 10]byte)
	defer hashBuffers.Put(buf)
	n, err := list(buf[:])
	if err != nil || n == 0 {
		return // no extended attributes, or a file system without them
	}
	names := strings.Split(strings.TrimSuffix(string(buf[:n]), "\x00"), "\x00")
	slices.Sort(names)
	var x extended
	var others []string
	for _, name := range names {
		n, err := get(name, buf[:])
		if err != nil {
			if errors.Is(err, unix.ENODATA) {
				continue // removed meanwhile
			}
			others = append(others, xattrEntry(name, nil, err))
			continue
		}
		value := buf[:n]
		var text string
		switch name {
		case xattrCaps:
			text, err = capsText(value)
			x.Caps = orRaw(text, value, err)
		case xattrACL:
			text, err = aclText(value, false, rc.names)
			x.ACL = orRaw(text, value, err)
		case xattrDefaultACL:
			text, err = aclText(value, true, rc.names)
			x.DefaultACL = orRaw(text, value, err)
		case xattrSELinux:
			x.SELinux = strings.TrimRight(string(value), "\x00")
		default:
			others = append(others, xattrEntry(name, value, nil))
		}
	}
	x.Xattrs = strings.Join(others, ",")
	if x != (extended{}) {
		*a.ext() = x
		a.dropEmptyExt()
	}
}

// orRaw returns text, or, when the value could not be decoded, a text
// that still changes with it.
func orRaw(text string, raw []byte, err error) string {
	if err != nil {
		return "undecodable:" + shortDigest(raw)
	}
	return text
}

// xattrEntry describes one extended attribute of the xattrs field: its
// name (quoted when it holds anything but letters, digits and ._-@+) and
// the first 8 hex digits of its value's SHA-256.
func xattrEntry(name string, value []byte, err error) string {
	if !plainXattrName(name) {
		name = strconv.Quote(name)
	}
	if err != nil {
		return name + ":unreadable"
	}
	return name + ":" + shortDigest(value)
}

func plainXattrName(name string) bool {
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("._-@+", c) >= 0) {
			return false
		}
	}
	return name != ""
}

func shortDigest(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:4])
}

// listxattr and getxattr read the extended attributes of path: of the
// file a symbolic link names when follow is set, else of path itself.
func listxattr(path string, buf []byte, follow bool) (int, error) {
	if follow {
		return unix.Listxattr(path, buf)
	}
	return unix.Llistxattr(path, buf)
}

func getxattr(path, name string, buf []byte, follow bool) (int, error) {
	if follow {
		return unix.Getxattr(path, name, buf)
	}
	return unix.Lgetxattr(path, name, buf)
}
