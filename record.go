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
	Rdev   uint64 // the device a character or block device file stands for

	Ext *extended // nil when the path has none of them, as most have none

	// Partial marks a record whose flags and extended attributes are not
	// known: one from an older state file, which did not record them, or
	// of a file that could not be opened. They are not compared, and the
	// file is read again at the next comparison.
	Partial bool
	// busy says the content could not be read because another process
	// holds a lease on the file, which the kernel breaks within
	// /proc/sys/fs/lease-break-time: it is worth reading again soon.
	busy bool
	// cut says the record was cut short: famids is stopping.
	cut bool
	// compared says a comparison took the record and told what differed
	// (after an overflow, say): events of the same change, read later,
	// have nothing more to tell when nothing differs from it.
	compared bool
}

// extended are the attributes few paths have, kept apart so that the
// many records without them stay small. Every string is as the file
// system gave it, byte for byte.
type extended struct {
	Link       string // where a symbolic link at the path points, readlink(2)
	LinkOwner  string // the symbolic link's own owner and group, UID:GID
	LinkXattrs string // the symbolic link's own extended attributes, as Xattrs
	Real       string // the file the path resolves to, when not the path itself
	Caps       string // security.capability, as getcap(8) prints it
	ACL        string // system.posix_acl_access: its entries beyond the mode, acl(5) short text form
	DefaultACL string // system.posix_acl_default, acl(5) short text form
	SELinux    string // security.selinux, the SELinux context
	Xattrs     string // every other extended attribute: NAME:HASH,... (xattrEntry), HASH shortened
	XattrsSum  string // the SHA-256 of every name and whole value of Xattrs: a change shows, whatever HASH shows
}

// digestUnreadable stands for content that could not be read, and
// digestPending for content not hashed yet: a file over bigFile is hashed
// beside, at the lowest priority, one at a time (see hashLater).
const (
	digestUnreadable = "unreadable"
	digestPending    = "pending"
)

// bigFile is the size past which a file is not hashed with its record: a
// 15 TiB sparse file takes hours to hash.
const bigFile = 256 << 20

// knownDigest reports whether sha is a file's hash, not a word for one.
func knownDigest(sha string) bool {
	return sha != "" && sha != digestUnreadable && sha != digestPending
}

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
	return rc.recordJob(context.Background(), nil, path, prev, "", true)
}

// recordJob is record for a job of the pool: the hash tells j of its
// progress, and stops once ctx is done, cutting the record short. j may
// be nil. real, when not "", is what the watches found the path resolves
// to, through every symbolic link on the way; when "", the record asks
// the kernel of the file it opened. Unless follow, a symbolic link at path
// is recorded as itself, as a dangling one is: an entry of a tree, which
// never reaches outside itself.
func (rc *recorder) recordJob(ctx context.Context, j *job, path string, prev *attrs, real string, follow bool) attrs {
	var lst unix.Stat_t
	if err := unix.Lstat(path, &lst); err != nil {
		return attrs{}
	}
	st, isLink := lst, lst.Mode&unix.S_IFMT == unix.S_IFLNK
	if isLink && (!follow || unix.Stat(path, &st) != nil) {
		st = lst // dangling: the link itself
	}
	a := fromStat(&st)
	if prev != nil && unchanged(prev, &a) && (a.Size > 0 || a.Type != "file" || statTells(path, isLink, &a)) {
		a.SHA256, a.Flags, a.Ext = prev.SHA256, prev.Flags, prev.Ext
		if isLink || a.Ext != nil && a.Ext.Link != "" {
			rc.readLink(path, &lst, isLink, &a) // the link's own inode may have changed
		}
		return a
	}
	switch a.Type {
	case "file", "dir":
		rc.readInode(ctx, j, path, !isLink, real, &a)
	case "symlink":
		// A dangling link: what it points to is all there is.
	default:
		// A FIFO or a device is never opened: that could block or act.
		x := rc.readXattrs(func(buf []byte) (int, error) { return listxattr(path, buf, isLink) },
			func(name string, buf []byte) (int, error) { return getxattr(path, name, buf, isLink) })
		a.setExt(x)
	}
	rc.readLink(path, &lst, isLink, &a)
	return a
}

// readLink records, of a path that is a symbolic link, where it points,
// its own owner and its own extended attributes (in a sticky directory,
// its owner decides who may follow it); of any other path, none of them.
func (rc *recorder) readLink(path string, lst *unix.Stat_t, isLink bool, a *attrs) {
	x := a.extended()
	x.Link, x.LinkOwner, x.LinkXattrs = "", "", ""
	if isLink {
		x.Link = readlink(path)
		x.LinkOwner = strconv.FormatUint(uint64(lst.Uid), 10) + ":" + strconv.FormatUint(uint64(lst.Gid), 10)
		lx := rc.readXattrs(func(buf []byte) (int, error) { return unix.Llistxattr(path, buf) },
			func(name string, buf []byte) (int, error) { return unix.Lgetxattr(path, name, buf) })
		x.LinkXattrs = joinXattrs(lx)
	}
	a.setExt(x)
}

// unchanged reports whether a, just stat'ed, is the file prev recorded,
// untouched since: then prev's content attributes hold, but for a file
// of size 0 on a file system whose stat does not tell (statTells).
func unchanged(prev, a *attrs) bool {
	return prev.Exists && !prev.Partial && prev.Type == a.Type && prev.Dev == a.Dev && prev.Inode == a.Inode &&
		prev.Size == a.Size && prev.Mtime.Equal(a.Mtime) && prev.Ctime.Equal(a.Ctime) &&
		(a.Type != "file" || knownDigest(prev.SHA256))
}

// statTells reports whether the stat of the empty file a, at path, tells
// of its content: not on procfs, sysfs and their kind, whose files say
// size 0 and change without their times moving, nor on FUSE, whose server
// says what it likes. Every other empty file is trusted, as a flood of
// empty files by the hundred thousand must not make each comparison open
// and read them all. The file system asked is the one of the inode opened,
// checked to be a's, not of whatever the path leads to by then.
func statTells(path string, isLink bool, a *attrs) bool {
	flags := unix.O_PATH | unix.O_CLOEXEC
	if !isLink {
		flags |= unix.O_NOFOLLOW
	}
	h, err := unix.Open(path, flags, 0)
	if err != nil {
		return false
	}
	defer unix.Close(h)
	var st unix.Stat_t
	var fs unix.Statfs_t
	if unix.Fstat(h, &st) != nil || uint64(st.Dev) != a.Dev || st.Ino != a.Inode || unix.Fstatfs(h, &fs) != nil {
		return false
	}
	switch uint32(fs.Type) {
	case unix.PROC_SUPER_MAGIC, unix.SYSFS_MAGIC, unix.DEBUGFS_MAGIC, unix.TRACEFS_MAGIC, unix.SECURITYFS_MAGIC,
		configfsMagic, unix.CGROUP_SUPER_MAGIC, unix.CGROUP2_SUPER_MAGIC, unix.EFIVARFS_MAGIC, unix.BPF_FS_MAGIC,
		unix.PSTOREFS_MAGIC, unix.FUSE_SUPER_MAGIC:
		return false
	}
	return true
}

// configfsMagic is CONFIGFS_MAGIC of linux/magic.h.
const configfsMagic = 0x62656570

// fromStat returns the attributes stat(2) gives.
func fromStat(st *unix.Stat_t) attrs {
	var rdev uint64
	if t := st.Mode & unix.S_IFMT; t == unix.S_IFCHR || t == unix.S_IFBLK {
		rdev = st.Rdev
	}
	return attrs{
		Rdev:   rdev,
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
func (rc *recorder) readInode(ctx context.Context, j *job, path string, nofollow bool, real string, a *attrs) {
	fd, st, err := openInode(path, nofollow, a.Type == "dir")
	if err != nil {
		if a.Type == "file" {
			a.SHA256 = digestUnreadable
			a.busy = errors.Is(err, unix.EWOULDBLOCK) // a lease, being broken
		}
		a.Partial = true // its flags and extended attributes are not known
		return
	}
	defer unix.Close(fd)
	if uint64(st.Dev) != a.Dev || st.Ino != a.Inode {
		*a = fromStat(&st) // replaced meanwhile by another of its kind
	}
	if f, err := unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS); err == nil {
		a.Flags = f
	}
	x := rc.readXattrs(func(buf []byte) (int, error) { return unix.Flistxattr(fd, buf) },
		func(name string, buf []byte) (int, error) { return unix.Fgetxattr(fd, name, buf) })
	// What the path resolves to, through whatever symbolic links: a
	// directory on the way swapped for a link to a copy of it shows.
	if real == "" {
		real = readlink(fdPath(fd))
	}
	if real != "" && real != path {
		x.Real = real
	}
	a.setExt(x)
	switch {
	case a.Type != "file":
	case a.Size > bigFile:
		a.SHA256 = digestPending
	default:
		a.SHA256 = hashFD(ctx, j, fd, a.Size)
		a.cut = ctx.Err() != nil
	}
}

// errOtherKind says a path names, by the time famids opens it, something
// else than the regular file or directory it stat'ed.
var errOtherKind = errors.New("not the kind of file it was")

// openInode opens the regular file or directory at path for reading,
// never anything else, and returns the stat of the file opened. Through a
// symbolic link (nofollow unset), which a user can point anywhere, the
// path is opened first as a handle only (O_PATH), which opens no device
// and no FIFO, and only once fstat says it is of the kind wanted is that
// very inode opened for reading, through /proc/self/fd: a link swapped to
// point at a device between a stat and an open cannot make famids open
// the device. A path that is not a link is opened at once, O_NOFOLLOW: a
// user cannot put a device node in its place (making one takes
// CAP_MKNOD, a hard link to one is refused across file systems and by
// fs.protected_hardlinks), and a FIFO of their own, opened read-only
// without waiting, is closed again unread.
func openInode(path string, nofollow, dir bool) (fd int, st unix.Stat_t, err error) {
	if nofollow {
		return openDirect(path, dir)
	}
	h, err := unix.Open(path, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, st, err
	}
	defer unix.Close(h)
	if err := unix.Fstat(h, &st); err != nil {
		return -1, st, err
	}
	kind, flags := st.Mode&unix.S_IFMT, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC|unix.O_NOCTTY
	switch {
	case kind == unix.S_IFDIR && dir:
		flags |= unix.O_DIRECTORY
	case kind == unix.S_IFREG && !dir:
	default:
		return -1, st, errOtherKind
	}
	fd, err = unix.Open(fdPath(h), flags, 0)
	return fd, st, err
}

// openDirect is openInode for a path that is not a symbolic link.
func openDirect(path string, dir bool) (fd int, st unix.Stat_t, err error) {
	flags, want := unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC|unix.O_NOCTTY|unix.O_NOFOLLOW, uint32(unix.S_IFREG)
	if dir {
		flags, want = flags|unix.O_DIRECTORY, unix.S_IFDIR
	}
	fd, err = unix.Open(path, flags, 0)
	if err != nil {
		return -1, st, err
	}
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != want {
		unix.Close(fd)
		if err == nil {
			err = errOtherKind
		}
		return -1, st, err
	}
	return fd, st, nil
}

// sameStat reports whether a and b stat'ed the same file, untouched in
// between: the same device, inode, size, mtime and ctime.
func sameStat(a, b attrs) bool {
	return a.Exists && b.Exists && a.Type == b.Type && a.Dev == b.Dev && a.Inode == b.Inode &&
		a.Size == b.Size && a.Mtime.Equal(b.Mtime) && a.Ctime.Equal(b.Ctime)
}

// hashFile returns the hash of the regular file at path, if it is still
// the file want stat'ed, untouched (sameStat), before and after it is
// read; ok is false otherwise. It opens it as readInode does.
func (rc *recorder) hashFile(ctx context.Context, j *job, path string, want attrs) (sha string, ok bool) {
	fd, _, err := openInode(path, false, false) // it may be a link: as one
	if err != nil {
		return "", false
	}
	defer unix.Close(fd)
	same := func() bool {
		var st unix.Stat_t
		return unix.Fstat(fd, &st) == nil && sameStat(fromStat(&st), want)
	}
	if !same() {
		return "", false
	}
	sha = hashFD(ctx, j, fd, want.Size)
	return sha, ctx.Err() == nil && same()
}

// readlink returns where the symbolic link at path points, byte for byte.
func readlink(path string) string {
	var small [256]byte // most are short: no allocation but the string
	buf := small[:]
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

// setExt sets a's extended attributes to x: a's own copy, or none when x
// holds none, so that a record shared with prev is never changed.
func (a *attrs) setExt(x extended) {
	if x == (extended{}) {
		a.Ext = nil
		return
	}
	// A copy of its own, not &x: x would then be allocated even when it
	// holds nothing, as it does for nearly every file.
	p := new(extended)
	*p = x
	a.Ext = p
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

// An xattrList is what readXattrs found of the extended attributes that
// have no field of their own: each entry, and the digest of each whole
// value.
type xattrList struct {
	entries []string // NAME:HASH, HASH shortened
	sum     []byte   // sha256 of NAME, NUL, whole value digest, NUL, ...
}

// readXattrs returns the extended attributes that list names and get
// reads, each in its field; what cannot be read or decoded is still
// recorded, as the digest of its raw value, so that a change shows.
func (rc *recorder) readXattrs(list func([]byte) (int, error), get func(string, []byte) (int, error)) extended {
	var x extended
	var small [256]byte
	n, err := list(small[:])
	buf := small[:]
	if errors.Is(err, unix.ERANGE) {
		big := hashBuffers.Get().(*[64 << 10]byte)
		defer hashBuffers.Put(big)
		buf = big[:]
		n, err = list(buf)
	}
	if err != nil || n == 0 {
		return x // no extended attributes, or a file system without them
	}
	names := strings.Split(strings.TrimSuffix(string(buf[:n]), "\x00"), "\x00")
	slices.Sort(names)
	value := hashBuffers.Get().(*[64 << 10]byte)
	defer hashBuffers.Put(value)
	sum := sha256.New()
	var others []string
	for _, name := range names {
		n, err := get(name, value[:])
		if err != nil {
			if errors.Is(err, unix.ENODATA) {
				continue // removed meanwhile
			}
			others = append(others, xattrEntry(name, "unreadable"))
			sum.Write([]byte(name + "\x00unreadable\x00"))
			continue
		}
		v := value[:n]
		var text string
		switch name {
		case xattrCaps:
			text, err = capsText(v)
			x.Caps = orRaw(text, v, err)
		case xattrACL:
			text, err = aclText(v, false, rc.names)
			x.ACL = orRaw(text, v, err)
		case xattrDefaultACL:
			text, err = aclText(v, true, rc.names)
			x.DefaultACL = orRaw(text, v, err)
		case xattrSELinux:
			x.SELinux = strings.TrimRight(string(v), "\x00")
		default:
			whole := sha256.Sum256(v)
			others = append(others, xattrEntry(name, hex.EncodeToString(whole[:4])))
			sum.Write([]byte(name + "\x00"))
			sum.Write(whole[:])
			sum.Write([]byte{0})
		}
	}
	if len(others) > 0 {
		x.Xattrs = strings.Join(others, ",")
		x.XattrsSum = hex.EncodeToString(sum.Sum(nil))
	}
	return x
}

// joinXattrs returns the extended attributes x found, in one text for a
// symbolic link's own: those with fields of their own first.
func joinXattrs(x extended) string {
	var parts []string
	for _, f := range []struct{ name, value string }{
		{xattrCaps, x.Caps}, {xattrACL, x.ACL}, {xattrDefaultACL, x.DefaultACL}, {xattrSELinux, x.SELinux},
	} {
		if f.value != "" {
			parts = append(parts, xattrEntry(f.name, shortDigest([]byte(f.value))))
		}
	}
	if x.Xattrs != "" {
		parts = append(parts, x.Xattrs)
	}
	if x.XattrsSum != "" {
		parts = append(parts, "sum:"+x.XattrsSum)
	}
	return strings.Join(parts, ",")
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
// what stands for its value: the first 8 hex digits of its SHA-256.
func xattrEntry(name, digest string) string {
	if !plainXattrName(name) {
		name = strconv.Quote(name)
	}
	return name + ":" + digest
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
