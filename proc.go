package main

// What famids reads of a process behind an event, from /proc (proc(5)):
// at once on the loop, what no process can make a reader wait for; then,
// beside the loop, the rest.

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// unsetID is the login uid and session id of a process started outside
// any login (proc(5), /proc/PID/loginuid): (uid_t)-1.
const unsetID = 1<<32 - 1

// A process is what famids read of one process behind an event.
type process struct {
	pid    int32
	exited bool // gone before all could be read
	known  bool // the fields below were read, and are the process's
	comm   string
	exe    string
	uid    uint32 // effective
	user   string // uid's name
	ruid   uint32 // real: whoever ran a setuid program
	ruser  string
	auid   uint32 // unsetID when unset
	auser  string
	ses    uint32 // unsetID when unset
	mntns  string // its mount namespace, when not famids's: exe is a path there
	// exeOther says the program it runs is not the file at exe's path
	// (a file mounted over that path, or put there since).
	exeOther bool
	// covered says its entry in /proc is covered by a mount: nothing
	// read there could be trusted, and nothing was.
	covered bool
	// threadUIDs are the effective uids of its threads, when they are
	// not all uid: any of them may have made the change.
	threadUIDs []uidName
	tty        string // "" when none
	parents    []ancestor
	cmdline    []string // nil when unread
	cut        bool     // the command line is longer than what was read
}

// An ancestor is a process up the chain of parents.
type ancestor struct {
	comm string
	pid  int
}

// A procID tells one process from another: its pid, and the inode of a
// pidfd of it, which pidfs (Linux 6.9) never gives two processes; 0 where
// every pidfd shares one inode, or without a pidfd.
type procID struct {
	pid int32
	ino uint64
}

// same reports whether b, a process an event read later names, may be a,
// a process named before. Without pidfs every inode is 0: one pid, one
// process. With it, an inode of 0 is a process that had exited when its
// event was read: b may then be a, which exited since; but a process
// read alive after a was read gone is another, a pid reused.
func (a procID) same(b procID) bool {
	return a.pid == b.pid && (a.ino == b.ino || b.ino == 0)
}

// pidfdID returns the procID of the process of pidfd, whose pid is pid;
// pidfs says pidfds are pidfs's, whose inodes tell processes apart.
func pidfdID(pid, pidfd int32, pidfs bool) procID {
	id := procID{pid: pid}
	var st unix.Stat_t
	if pidfs && pidfd >= 0 && unix.Fstat(int(pidfd), &st) == nil {
		id.ino = st.Ino
	}
	return id
}

// pidfsMagic is the file system type of pidfds on Linux 6.9 and later
// (PIDFS_MAGIC, linux/magic.h).
const pidfsMagic = 0x50494446

// havePidfs reports whether pidfds are pidfs's: each process's pidfd has
// an inode of its own.
func havePidfs() bool {
	fd, err := unix.PidfdOpen(os.Getpid(), 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	var fs unix.Statfs_t
	return unix.Fstatfs(fd, &fs) == nil && fs.Type == pidfsMagic
}

// fdPath returns the name in /proc of famids's descriptor fd.
func fdPath(fd int) string { return "/proc/self/fd/" + strconv.Itoa(fd) }

// procBufSize is the size of the buffer the loop reads /proc into: a
// /proc/PID/status is about 1.5 KiB.
const procBufSize = 4096

// A procfs is famids's way into /proc: a descriptor of it, checked to be
// procfs, beneath which every file is opened without crossing a mount
// point or following a symbolic link (openat2(2), RESOLVE_BENEATH and
// RESOLVE_NO_XDEV). root can mount anything over /proc/PID, or over one
// of its files, to make a process pass for another: such an entry is
// refused (EXDEV), never read.
type procfs struct{ root int }

// procSuperMagic is procfs's file system type (PROC_SUPER_MAGIC,
// linux/magic.h).
const procSuperMagic = 0x9fa0

// openProcfs opens /proc, or says why it cannot be trusted.
func openProcfs() (procfs, error) {
	fd, err := unix.Open("/proc", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return procfs{-1}, fmt.Errorf("/proc: %w", err)
	}
	var fs unix.Statfs_t
	if err := unix.Fstatfs(fd, &fs); err != nil || fs.Type != procSuperMagic {
		unix.Close(fd)
		return procfs{-1}, errors.New("/proc is not procfs: famids reads there who a process is")
	}
	return procfs{fd}, nil
}

// open opens name, a path beneath /proc ("4242/stat").
func (fs procfs) open(name string, flags uint64) (int, error) {
	return unix.Openat2(fs.root, name, &unix.OpenHow{
		Flags:   flags | unix.O_CLOEXEC | unix.O_NOFOLLOW,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_XDEV | unix.RESOLVE_NO_SYMLINKS,
	})
}

// read reads the small file name into buf, in one read (the kernel makes
// such a file whole at the first).
func (fs procfs) read(name string, buf []byte) ([]byte, error) {
	fd, err := fs.open(name, unix.O_RDONLY)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	n, err := unix.Read(fd, buf)
	if err != nil {
		return nil, err
	}
	return buf[:n], nil
}

// readlink returns where the symbolic link name points (exe, ns/mnt).
func (fs procfs) readlink(name string) (string, error) {
	fd, err := fs.open(name, unix.O_PATH)
	if err != nil {
		return "", err
	}
	defer unix.Close(fd)
	buf := make([]byte, unix.PathMax)
	n, err := unix.Readlinkat(fd, "", buf)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}

// names returns up to max names of the directory name.
func (fs procfs) names(name string, max int) []string {
	fd, err := fs.open(name, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return nil
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	names, _ := f.Readdirnames(max)
	return names
}

// glance reads, on the loop, the moment a process's first event is read,
// who it is: a short-lived process (a cp, a chmod) is often gone within
// a few tens of microseconds, before a job could start. These files of
// /proc (stat, loginuid, sessionid, exe, and status where the pidfd
// cannot tell the uid) are made from the process's own structures
// without taking its memory's lock: no process can make reading them
// wait. Ids are named when their names are known already. What was read
// is the process's only if pidfd's process was not reaped after: when it
// was, p says it exited, and nothing else. It returns the process's
// parent's pid and number of threads too, for readMore; p.known is false
// when it was gone, or when its entry in /proc is covered by a mount
// (p.covered).
func glance(fs procfs, pid, pidfd int32, buf []byte, names *idNames) (p process, ppid string, threads uint32) {
	p = process{pid: pid}
	dir := strconv.Itoa(int(pid))
	stat, err := fs.read(dir+"/stat", buf)
	if err != nil {
		p.covered = errors.Is(err, unix.EXDEV)
		p.exited = !p.covered
		return p, "", 0
	}
	comm, fields := parseStat(stat)
	p.known, p.comm = true, comm
	if len(fields) > 4 {
		p.tty = ttyName(fields[4])
	}
	if len(fields) > 1 {
		ppid = fields[1]
	}
	threads = threadsOfStat(fields)
	p.auid = readID(fs, dir+"/loginuid", buf)
	p.ses = readID(fs, dir+"/sessionid", buf)
	p.exe, err = fs.readlink(dir + "/exe")
	if errors.Is(err, unix.EXDEV) {
		return process{pid: pid, covered: true}, "", 0
	}
	// Last: the pidfd's answer also says its process was not reaped, so
	// that the pid named it in every read above.
	ruid, uid, gone, ok := pidfdUIDs(pidfd)
	if !ok && !gone {
		status, err := fs.read(dir+"/status", buf)
		if errors.Is(err, unix.EXDEV) {
			return process{pid: pid, covered: true}, "", 0
		}
		ruid, uid = statusField(status, "Uid:", 0), statusField(status, "Uid:", 1)
		threads, gone = threadsOf(status), !alive(pidfd)
	}
	if gone {
		return process{pid: pid, exited: true}, "", 0
	}
	p.uid, p.ruid = uid, ruid
	// A process whose first thread has exited while others run on is
	// not gone: its program and command line are read through those.
	p.exited = exiting(fields) && threads <= 1
	p.user, _ = names.cachedUser(p.uid)
	p.ruser, _ = names.cachedUser(p.ruid)
	if p.auid != unsetID {
		p.auser, _ = names.cachedUser(p.auid)
	}
	return p, ppid, threads
}

// readMore reads, beside the loop, the rest of what is told of l's
// process: its ids' names, its parents (from ppid up), its mount
// namespace when not famids's (mntns), whether its program is the file
// at exe's path, and its command line, which the process's memory lock
// can hold up. What was read is kept only if the pidfd's process was
// still there after: the pid then named it throughout.
func readMore(fs procfs, l *inquiry, ppid string, threads uint32, names *idNames, mntns string) {
	p := l.snapshot()
	dir := strconv.Itoa(int(l.pid))
	buf := make([]byte, procBufSize)
	// First what only /proc tells, then what the user database and the
	// program's file system tell, which may not answer (NSS over the
	// network, a FUSE mount that hangs): each is published as soon as it
	// is read, for a report that stops waiting.
	p.parents = readParents(fs, ppid, buf)
	if ns, err := fs.readlink(dir + "/ns/mnt"); err == nil && mntns != "" && ns != mntns {
		p.mntns = strings.TrimSuffix(strings.TrimPrefix(ns, "mnt:["), "]")
	}
	from := dir
	if p.exe == "" && threads > 1 {
		if tid := liveThread(fs, dir); tid != "" {
			from = dir + "/task/" + tid // the first thread has exited
			p.exe, _ = fs.readlink(from + "/exe")
		}
	}
	if !alive(l.pidfd) {
		l.publish(process{pid: l.pid, exited: true})
		return
	}
	l.publish(p)
	if !p.exited {
		var gone bool
		p.cmdline, p.cut, gone = readCommandLine(fs, l, from, buf)
		p.exited = gone
		l.publish(p)
	}
	p.user = names.user(p.uid)
	if p.ruid != p.uid {
		p.ruser = names.user(p.ruid)
	}
	if p.auid != unsetID {
		p.auser = names.user(p.auid)
	}
	if p.mntns == "" && p.exe != "" && !p.exited {
		p.exeOther = !sameFile(fs, from+"/exe", p.exe)
		if !alive(l.pidfd) {
			p.exeOther = false // what was read may be another's
		}
	}
	l.publish(p)
}

// readCommandLine reads the command line of l's process from /proc/from;
// gone says the process is gone, or began to exit since the glance: its
// memory, and with it the command line, may have been gone when it was
// read (args is then nil, unless some was read).
func readCommandLine(fs procfs, l *inquiry, from string, buf []byte) (args []string, cut, gone bool) {
	args, cut = readCmdline(fs, from+"/cmdline")
	if !alive(l.pidfd) {
		return nil, false, true // what was read before is its; the command line may not be
	}
	if stat, err := fs.read(from+"/stat", buf); err != nil || exitingStat(stat) {
		if len(args) == 0 {
			return nil, false, true
		}
		return args, cut, true
	}
	return args, cut, false
}

// sameFile reports whether the program a process runs (link, its exe
// beneath /proc) is the file at path, that link's text, in famids's mount
// namespace, and that file is not mounted there: a file mounted over that
// path, or put there since, is another. What cannot be told is taken as the same, but for a program
// deleted since it started. It may stat any path a process ran from: it
// runs beside the loop.
func sameFile(fs procfs, link, path string) bool {
	if strings.HasSuffix(path, " (deleted)") {
		return true // the kernel says so in the path itself
	}
	// The link is the kernel's own (readlink found no mount over it);
	// stat follows it to the file the process runs.
	var run, there unix.Stat_t
	if unix.Fstatat(fs.root, link, &run, 0) != nil || unix.Stat(path, &there) != nil {
		return true
	}
	return run.Dev == there.Dev && run.Ino == there.Ino && !mountedOn(path)
}

// mountedOn reports whether path is itself where something is mounted
// (a file bind-mounted over a program, say): its mount is not its
// directory's.
func mountedOn(path string) bool {
	var file, dir unix.Statx_t
	if unix.Statx(unix.AT_FDCWD, path, 0, unix.STATX_MNT_ID, &file) != nil ||
		unix.Statx(unix.AT_FDCWD, filepath.Dir(path), 0, unix.STATX_MNT_ID, &dir) != nil ||
		file.Mask&dir.Mask&unix.STATX_MNT_ID == 0 {
		return false
	}
	return file.Mnt_id != dir.Mnt_id
}

// maxThreads is how many threads of a process famids reads the
// credentials of.
const maxThreads = 64

// liveThread returns the id of a thread of the process whose directory
// beneath /proc is dir that has not exited, or "".
func liveThread(fs procfs, dir string) string {
	buf := make([]byte, procBufSize)
	for _, tid := range fs.names(dir+"/task", maxThreads) {
		if stat, err := fs.read(dir+"/task/"+tid+"/stat", buf); err == nil && !exitingStat(stat) {
			return tid
		}
	}
	return ""
}

// readThreadUIDs adds to what l tells the effective uids of its process's
// threads, when they are not all one: each thread has credentials of its
// own, and fanotify does not say which thread made the change. It reads
// a status file a thread (of the first maxThreads), and runs after the
// rest is read: a report that cannot wait goes without it.
func readThreadUIDs(fs procfs, l *inquiry, names *idNames) {
	dir := strconv.Itoa(int(l.pid))
	buf := make([]byte, procBufSize)
	var uids []uidName
	for _, tid := range fs.names(dir+"/task", maxThreads) {
		status, err := fs.read(dir+"/task/"+tid+"/status", buf)
		if err != nil {
			continue
		}
		uid := statusField(status, "Uid:", 1)
		if uid != unsetID && !slices.ContainsFunc(uids, func(u uidName) bool { return u.id == uid }) {
			uids = append(uids, uidName{uid, names.user(uid)})
		}
	}
	if len(uids) < 2 || !alive(l.pidfd) {
		return
	}
	p := l.snapshot()
	p.threadUIDs = uids
	l.publish(p)
}

// readID reads a number such as /proc/PID/loginuid into buf; unsetID when
// it cannot.
func readID(fs procfs, name string, buf []byte) uint32 {
	data, err := fs.read(name, buf)
	if err != nil {
		return unsetID
	}
	n, err := strconv.ParseUint(string(bytes.TrimSpace(data)), 10, 32)
	if err != nil {
		return unsetID
	}
	return uint32(n)
}

// readParents returns up to maxParents ancestors, from the parent pid up,
// reading their stat files into buf.
func readParents(fs procfs, ppid string, buf []byte) []ancestor {
	var out []ancestor
	for len(out) < maxParents {
		pid, err := strconv.Atoi(ppid)
		if err != nil || pid <= 0 {
			break
		}
		stat, err := fs.read(ppid+"/stat", buf)
		if err != nil {
			break
		}
		comm, fields := parseStat(stat)
		out = append(out, ancestor{comm, pid})
		if len(fields) < 2 {
			break
		}
		ppid = fields[1]
	}
	return out
}

// exitingStat reports whether a /proc/PID/stat is an exiting process's.
func exitingStat(stat []byte) bool {
	_, fields := parseStat(stat)
	return exiting(fields)
}

// threadsOf returns the number of threads of a /proc/PID/status, 1 when
// it does not say.
func threadsOf(status []byte) uint32 {
	if n := statusField(status, "Threads:", 0); n != unsetID {
		return n
	}
	return 1
}

// threadsOfStat returns the number of threads (num_threads) of the
// fields of a /proc/PID/stat after the name, 1 when they do not say.
func threadsOfStat(fields []string) uint32 {
	if len(fields) > 17 {
		if n, err := strconv.ParseUint(fields[17], 10, 32); err == nil && n > 0 {
			return uint32(n)
		}
	}
	return 1
}

// pidfdUIDs returns the real and effective uids of pidfd's process,
// asked of the pidfd itself (PIDFD_GET_INFO, Linux 6.13), which names no
// other process whatever becomes of its pid: the first two uids of
// /proc/PID/status. Its answer also says the process was not reaped when
// asked, as alive does; gone says it was. ok is false when the kernel
// cannot tell.
func pidfdUIDs(pidfd int32) (ruid, euid uint32, gone, ok bool) {
	info := unix.PidfdInfo{Mask: unix.PIDFD_INFO_CREDS}
	switch err := unix.IoctlPidfdInfo(int(pidfd), &info); {
	case err == unix.ESRCH:
		return 0, 0, true, false
	case err != nil || info.Mask&unix.PIDFD_INFO_CREDS == 0:
		return 0, 0, false, false
	}
	return info.Ruid, info.Euid, false, true
}

// A uidName is a user id with its name.
type uidName struct {
	id   uint32
	name string
}

// pfExiting is the flag of a process on its way out, in the flags field of
// /proc/PID/stat (PF_EXITING, linux/sched.h).
const pfExiting = 0x4

// exiting reports whether the fields of a /proc/PID/stat after the name
// are those of a process that has exited, or is exiting: a zombie, or one
// whose memory (its command line, its executable) may be gone already.
func exiting(fields []string) bool {
	if len(fields) > 0 && fields[0] == "Z" {
		return true
	}
	if len(fields) > 6 {
		flags, err := strconv.ParseUint(fields[6], 10, 32)
		return err == nil && flags&pfExiting != 0
	}
	return false
}

// alive reports whether the process pidfd names has not been reaped: its
// pid still names it (pidfd_send_signal(2) with signal 0).
func alive(pidfd int32) bool {
	return unix.PidfdSendSignal(int(pidfd), 0, nil, 0) == nil
}

// parseStat returns the command name of a /proc/PID/stat and the fields
// after it (state, ppid, pgrp, session, tty_nr, ...): the name, in
// parentheses, may hold spaces and parentheses itself.
func parseStat(stat []byte) (comm string, fields []string) {
	open := bytes.IndexByte(stat, '(')
	end := bytes.LastIndexByte(stat, ')')
	if open < 0 || end < open {
		return "", nil
	}
	return string(stat[open+1 : end]), strings.Fields(string(stat[end+1:]))
}

// statusLine returns the value of the line of a /proc/PID/status that
// begins with key, or "".
func statusLine(status []byte, key string) string {
	for _, line := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, key); ok {
			return rest
		}
	}
	return ""
}

// statusField returns the i-th number of the line of a /proc/PID/status
// that begins with key (Uid: real, effective, saved, file system), or
// unsetID.
func statusField(status []byte, key string, i int) uint32 {
	if f := strings.Fields(statusLine(status, key)); len(f) > i {
		if n, err := strconv.ParseUint(f[i], 10, 32); err == nil {
			return uint32(n)
		}
	}
	return unsetID
}

// ttyName names the terminal of a tty_nr of /proc/PID/stat (its device
// number: devices.txt of the kernel's documentation), or "" for none.
func ttyName(field string) string {
	n, err := strconv.ParseUint(field, 10, 32)
	if err != nil || n == 0 {
		return ""
	}
	major, minor := uint32((n>>8)&0xfff), uint32((n&0xff)|((n>>12)&0xfff00))
	switch {
	case major >= 136 && major <= 143:
		return "pts/" + strconv.Itoa(int((major-136)*256+minor))
	case major == 4 && minor < 64:
		return "tty" + strconv.Itoa(int(minor))
	case major == 4:
		return "ttyS" + strconv.Itoa(int(minor-64))
	}
	return strconv.Itoa(int(major)) + ":" + strconv.Itoa(int(minor))
}

// readCmdline reads a process's cmdline, name beneath /proc, up to
// maxCmdline bytes, as its arguments; cut says there was more.
func readCmdline(fs procfs, name string) (args []string, cut bool) {
	fd, err := fs.open(name, unix.O_RDONLY)
	if err != nil {
		return nil, false
	}
	defer unix.Close(fd)
	buf := make([]byte, maxCmdline+1)
	n := 0
	for n < len(buf) {
		m, err := unix.Read(fd, buf[n:])
		if err != nil || m <= 0 {
			break
		}
		n += m
	}
	if n > maxCmdline {
		n, cut = maxCmdline, true
	}
	data := strings.TrimSuffix(string(buf[:n]), "\x00")
	if data == "" {
		return []string{}, cut
	}
	return strings.Split(data, "\x00"), cut
}
