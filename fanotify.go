package main

// Who made a change: inotify tells famids what changed, never who changed
// it. A fanotify group (fanotify(7)) marked on the same inodes as the
// watches tells, for each event, which process caused it, with a pidfd
// that keeps that process's identity however soon its pid is reused. The
// watcher owns the group beside the inotify instance: each inode it
// watches is marked through the same descriptor, and the group's events
// are routed to entries by the inode's watch, as inotify's are.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"os"
	"slices"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// fanInitFlags make a group for notification only, whose events name the
// directory and entry name of each change (FAN_REPORT_DFID_NAME) and the
// inode changed (FAN_REPORT_FID), and carry a pidfd of the process behind
// it (FAN_REPORT_PIDFD, Linux 5.15).
const fanInitFlags = unix.FAN_CLASS_NOTIF | unix.FAN_CLOEXEC | unix.FAN_NONBLOCK |
	unix.FAN_REPORT_DFID_NAME | unix.FAN_REPORT_FID | unix.FAN_REPORT_PIDFD

// atHandleFID asks name_to_handle_at(2) for a handle encoded as fanotify
// encodes the ones it reports (AT_HANDLE_FID, linux/fcntl.h, Linux 6.5);
// older kernels encode both alike without it.
const atHandleFID = 0x200

// The fanotify events that tell of a change of a directory's entries.
const fanEntryMask = unix.FAN_CREATE | unix.FAN_DELETE | unix.FAN_MOVED_FROM | unix.FAN_MOVED_TO

// A fanGroup is famids's fanotify group. Its maps are the watcher's, under
// the watcher's lock.
type fanGroup struct {
	fd          int
	seed        maphash.Seed
	byKey       map[uint64]int32   // the watch of each marked inode, by the key of its handle
	handleFlags int                // for name_to_handle_at
	pidfs       bool               // pidfds have inodes of their own (pidfdID)
	proc        procfs             // where processes are looked up
	mntns       string             // famids's mount namespace, as /proc/self/ns/mnt reads
	unmarks     []unmark           // marks of inodes no longer watched, for a job to remove
	unmarked    map[string]refusal // paths whose inode could not be marked, and why
	quiet       map[uint64]bool    // marks removed for a storm, by key (quiet)

	fsidMu sync.Mutex
	fsids  map[uint64]unix.Fsid // the file system id of each device: one fstatfs a file system, not a file
}

// A refusal is why a path's inode could not be marked, and whether that
// was told.
type refusal struct {
	err  error
	told bool
}

// maxUnmarked bounds the paths an unmarked group keeps to tell of: a user
// making files by the thousand on a file system that refuses marks must
// not grow famids.
const maxUnmarked = 1000

// openFanGroup makes famids's fanotify group, or says why it cannot: famids
// then reports as before, without saying who made a change.
func openFanGroup() (*fanGroup, error) {
	proc, err := openProcfs()
	if err != nil {
		return nil, err
	}
	fd, err := unix.FanotifyInit(fanInitFlags, unix.O_RDONLY|unix.O_CLOEXEC)
	if err != nil {
		unix.Close(proc.root)
	}
	switch {
	case err == nil:
	case errors.Is(err, syscall.EPERM):
		if os.Geteuid() == 0 {
			return nil, errors.New("famids runs without CAP_SYS_ADMIN, which fanotify needs")
		}
		return nil, errors.New("famids does not run as root: fanotify needs CAP_SYS_ADMIN")
	case errors.Is(err, syscall.EINVAL), errors.Is(err, syscall.ENOSYS):
		return nil, errors.New("the kernel's fanotify cannot report who made a change (Linux 5.15 or later is needed)")
	default:
		return nil, fmt.Errorf("fanotify_init: %w", err)
	}
	g := &fanGroup{fd: fd, proc: proc, seed: maphash.MakeSeed(), byKey: make(map[uint64]int32), unmarked: make(map[string]refusal), fsids: make(map[uint64]unix.Fsid), quiet: make(map[uint64]bool), handleFlags: unix.AT_EMPTY_PATH | atHandleFID, pidfs: havePidfs()}
	g.mntns, _ = os.Readlink("/proc/self/ns/mnt")
	if _, _, err := unix.NameToHandleAt(unix.AT_FDCWD, "/", atHandleFID); errors.Is(err, syscall.EINVAL) {
		g.handleFlags = unix.AT_EMPTY_PATH
	}
	return g, nil
}

// A mark is what marking an inode for the fanotify group gave: the key of
// its handle, or why it could not be marked.
type mark struct {
	key  uint64
	mask uint64 // the events marked
	err  error
}

// An unmark is the mark of an inode that is watched no more, removed from
// the group by path while the path still leads to that inode.
type unmark struct {
	path string
	key  uint64
	mask uint64 // for a quiet mark: the events to mark again
}

// fanPairs pairs each inotify event famids asks for with fanotify's.
var fanPairs = [...]struct {
	in  uint32
	fan uint64
}{
	{unix.IN_CREATE, unix.FAN_CREATE}, {unix.IN_DELETE, unix.FAN_DELETE},
	{unix.IN_MOVED_FROM, unix.FAN_MOVED_FROM}, {unix.IN_MOVED_TO, unix.FAN_MOVED_TO},
	{unix.IN_DELETE_SELF, unix.FAN_DELETE_SELF}, {unix.IN_MOVE_SELF, unix.FAN_MOVE_SELF},
	{unix.IN_MODIFY, unix.FAN_MODIFY}, {unix.IN_ATTRIB, unix.FAN_ATTRIB},
	{unix.IN_CLOSE_WRITE, unix.FAN_CLOSE_WRITE},
}

// inMask returns the inotify events that stand for the fanotify events of
// mask.
func inMask(mask uint64) uint32 {
	var m uint32
	for _, p := range fanPairs {
		if mask&p.fan != 0 {
			m |= p.in
		}
	}
	return m
}

// fanMask returns the fanotify events that stand for the inotify events of
// mask; dir says the inode is a directory.
func fanMask(mask uint32, dir bool) uint64 {
	var m uint64
	for _, p := range fanPairs {
		if mask&p.in != 0 {
			m |= p.fan
		}
	}
	if dir {
		// A directory's inotify watch tells of its entries' changes and
		// its own; fanotify asks for both.
		m |= unix.FAN_ONDIR
		if m&(unix.FAN_MODIFY|unix.FAN_ATTRIB|unix.FAN_CLOSE_WRITE) != 0 {
			m |= unix.FAN_EVENT_ON_CHILD
		}
	}
	return m
}

// watchPath adds the inotify watch of path with mask and, with a fanotify
// group, marks the same inode: both through one descriptor opened on
// path, so that a name swapped meanwhile cannot have them set on two
// files. Like inotify_add_watch, it follows a symbolic link. A device, a
// FIFO or a socket is watched for its attributes only: what is written
// to it (every write to /dev/null, which a masked systemd unit links to)
// changes nothing famids records.
func (w *watcher) watchPath(path string, mask uint32) (int, mark, error) {
	if w.fan == nil {
		var st unix.Stat_t
		if unix.Stat(path, &st) == nil {
			mask = inodeMask(mask, &st)
		}
		wd, err := w.addWatch(w.fd, path, mask)
		return wd, mark{}, err
	}
	fd, err := unix.Open(path, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, mark{}, err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return -1, mark{}, err
	}
	mask = inodeMask(mask, &st)
	// The kernel takes an O_PATH descriptor only through its name in
	// /proc, which leads to the very inode it is open on.
	self := fdPath(fd)
	wd, err := w.addWatch(w.fd, self, mask)
	if err != nil {
		return wd, mark{}, err
	}
	return wd, w.fan.mark(fd, self, mask), nil
}

// inodeMask returns mask for the inode st: without the events of content
// for a device, a FIFO or a socket.
func inodeMask(mask uint32, st *unix.Stat_t) uint32 {
	if t := st.Mode & unix.S_IFMT; t != unix.S_IFREG && t != unix.S_IFDIR {
		mask &^= unix.IN_MODIFY | unix.IN_CLOSE_WRITE
	}
	return mask
}

// mark marks the inode fd is open on, whose name in /proc is self, for the
// events of the inotify mask.
func (g *fanGroup) mark(fd int, self string, mask uint32) mark {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return mark{err: err}
	}
	fm := fanMask(mask, st.Mode&unix.S_IFMT == unix.S_IFDIR)
	if st.Mode&unix.S_IFMT == unix.S_IFREG && mask&(unix.IN_MODIFY|unix.IN_CLOSE_WRITE) != 0 {
		fm |= unix.FAN_OPEN // a writer that sends no other event (writers.go)
	}
	if err := unix.FanotifyMark(g.fd, unix.FAN_MARK_ADD, fm, unix.AT_FDCWD, self); err != nil {
		return mark{err: fanMarkError(err)}
	}
	key, err := g.keyOf(fd, st.Dev)
	return mark{key: key, mask: fm, err: err}
}

// fanMarkError says why an inode could not be marked.
func fanMarkError(err error) error {
	switch {
	case errors.Is(err, syscall.ENOSPC):
		return errors.New("out of fanotify marks: raise /proc/sys/fs/fanotify/max_user_marks")
	case errors.Is(err, syscall.ENODEV), errors.Is(err, syscall.EOPNOTSUPP), errors.Is(err, syscall.EXDEV):
		return fmt.Errorf("its file system cannot tell fanotify which file changed: %w", err)
	}
	return fmt.Errorf("fanotify_mark: %w", err)
}

// keyOf returns the key of the handle of the inode fd is open on, on
// device dev, laid out as fanotify reports it: the file system's id, then
// the file handle (struct file_handle, open_by_handle_at(2)).
func (g *fanGroup) keyOf(fd int, dev uint64) (uint64, error) {
	g.fsidMu.Lock()
	fsid, ok := g.fsids[dev]
	g.fsidMu.Unlock()
	if !ok {
		var fs unix.Statfs_t
		if err := unix.Fstatfs(fd, &fs); err != nil {
			return 0, fmt.Errorf("fstatfs: %w", err)
		}
		fsid = fs.Fsid
		g.fsidMu.Lock()
		g.fsids[dev] = fsid
		g.fsidMu.Unlock()
	}
	h, _, err := unix.NameToHandleAt(fd, "", g.handleFlags)
	if err != nil {
		return 0, fmt.Errorf("name_to_handle_at: %w", err)
	}
	b := make([]byte, 0, 16+h.Size())
	b = binary.NativeEndian.AppendUint32(b, uint32(fsid.Val[0]))
	b = binary.NativeEndian.AppendUint32(b, uint32(fsid.Val[1]))
	b = binary.NativeEndian.AppendUint32(b, uint32(h.Size()))
	b = binary.NativeEndian.AppendUint32(b, uint32(h.Type()))
	return maphash.Bytes(g.seed, append(b, h.Bytes()...)), nil
}

// keyOfFile returns the key of the inode fd is open on.
func (g *fanGroup) keyOfFile(fd int) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return 0, err
	}
	return g.keyOf(fd, st.Dev)
}

// noteMark records m, the mark of the inode of wt. The caller holds mu.
func (w *watcher) noteMark(wt *watch, m mark) {
	if w.fan == nil {
		return
	}
	if m.err != nil {
		if r, ok := w.fan.unmarked[wt.path]; ok {
			w.fan.unmarked[wt.path] = refusal{m.err, r.told && r.err.Error() == m.err.Error()}
		} else if len(w.fan.unmarked) < maxUnmarked {
			w.fan.unmarked[wt.path] = refusal{err: m.err}
		}
		return
	}
	if m.key == 0 {
		return
	}
	delete(w.fan.unmarked, wt.path)
	if wt.fkey != 0 && wt.fkey != m.key {
		w.forgetMark(wt)
	}
	wt.fkey = m.key
	wt.fmask |= uint32(m.mask)
	delete(w.fan.quiet, m.key) // marked again
	w.fan.byKey[m.key] = int32(wt.wd)
}

// takeUnmarked returns, sorted, each path whose inode could not be marked
// and was not told of yet, with why: who changes it cannot be told.
func (w *watcher) takeUnmarked() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fan == nil {
		return nil
	}
	var list []string
	for p, r := range w.fan.unmarked {
		if !r.told {
			list = append(list, quoteIfNeeded(p)+": "+quoteIfNeeded(r.err.Error()))
			w.fan.unmarked[p] = refusal{r.err, true}
		}
	}
	slices.Sort(list)
	return list
}

// unmarkedWhy returns why the inode of path could not be marked, or "":
// a report on it names no process for that reason.
func (w *watcher) unmarkedWhy(path string) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fan == nil {
		return ""
	}
	if r, ok := w.fan.unmarked[path]; ok {
		return r.err.Error()
	}
	return ""
}

// forgetMark forgets the mark of the inode of wt, which is watched no
// more, and has a job remove it: the kernel drops it by itself only once
// the inode is gone. The caller holds mu.
func (w *watcher) forgetMark(wt *watch) {
	if w.fan == nil || wt.fkey == 0 {
		return
	}
	if w.fan.byKey[wt.fkey] == int32(wt.wd) {
		delete(w.fan.byKey, wt.fkey)
		delete(w.fan.quiet, wt.fkey)
		w.fan.unmarks = append(w.fan.unmarks, unmark{path: wt.path, key: wt.fkey})
	}
	wt.fkey, wt.fmask = 0, 0
}

// takeUnmarks returns the marks to remove.
func (w *watcher) takeUnmarks() []unmark {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fan == nil {
		return nil
	}
	u := w.fan.unmarks
	w.fan.unmarks = nil
	return u
}

// removeMarks removes the marks of inodes no longer watched, each while
// its path still leads to it, and not when the inode is watched again.
// It looks paths up: it runs in a job.
func (w *watcher) removeMarks(us []unmark) {
	for _, u := range us {
		fd, err := unix.Open(u.path, unix.O_PATH|unix.O_CLOEXEC, 0)
		if err != nil {
			continue // gone: so is the mark
		}
		key, err := w.fan.keyOfFile(fd)
		w.mu.Lock()
		_, again := w.fan.byKey[key]
		w.mu.Unlock()
		if err == nil && key == u.key && !again {
			unix.FanotifyMark(w.fan.fd, unix.FAN_MARK_REMOVE, allFanEvents, unix.AT_FDCWD, fdPath(fd))
		}
		unix.Close(fd)
	}
}

// A storm of events on names famids does not report, in a directory it
// watches, would cost famids a pidfd and a read for each event, for
// nothing: a directory that sends quietAfter such events in one read is
// unmarked (quiet) until the storm ends. inotify still tells of every
// change in it; only who made a change of its entries is not told
// meanwhile. An entry's own inode stays marked.
const quietAfter = 256

// quietFor is how long reads stay calm before a storm is over.
const quietFor = time.Second

// quiet marks the watch of the inode key names as quiet, and returns the
// mark to remove; ok is false when there is none, or it is quiet already.
func (w *watcher) quiet(key uint64) (u unmark, ok bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	wd, known := w.fan.byKey[key]
	wt := w.byWd[int(wd)]
	if !known || wt == nil || w.fan.quiet[key] {
		return unmark{}, false
	}
	w.fan.quiet[key] = true
	return unmark{path: wt.path, key: key, mask: uint64(wt.fmask)}, true
}

// setQuiet removes (quiet) or restores the marks of us, each while its path
// still leads to the inode marked; it looks paths up: it runs in a job.
func (w *watcher) setQuiet(us []unmark, quiet bool) {
	for _, u := range us {
		fd, err := unix.Open(u.path, unix.O_PATH|unix.O_CLOEXEC, 0)
		if err != nil {
			continue
		}
		if key, err := w.fan.keyOfFile(fd); err == nil && key == u.key {
			if quiet {
				unix.FanotifyMark(w.fan.fd, unix.FAN_MARK_REMOVE, allFanEvents, unix.AT_FDCWD, fdPath(fd))
			} else {
				unix.FanotifyMark(w.fan.fd, unix.FAN_MARK_ADD, u.mask, unix.AT_FDCWD, fdPath(fd))
			}
		}
		unix.Close(fd)
	}
	if !quiet {
		w.mu.Lock()
		for _, u := range us {
			delete(w.fan.quiet, u.key)
		}
		w.mu.Unlock()
	}
}

// allFanEvents is every event famids marks inodes for.
const allFanEvents = fanEntryMask | unix.FAN_DELETE_SELF | unix.FAN_MOVE_SELF | unix.FAN_MODIFY |
	unix.FAN_ATTRIB | unix.FAN_CLOSE_WRITE | unix.FAN_OPEN | unix.FAN_ONDIR | unix.FAN_EVENT_ON_CHILD

// A fanEvent is one fanotify event: the process behind it and the inodes
// it concerns, each as the key of its handle and, for a directory's
// entry, the entry's name.
type fanEvent struct {
	mask  uint64
	pid   int32
	pidfd int32 // < 0: the process had exited when famids read the event (FAN_NOPIDFD)
	refs  [2]fanRef
	nrefs int
}

type fanRef struct {
	key  uint64
	name string // "" for the inode itself
}

// readFan reads the fanotify events queued into buf, without waiting, and
// decodes them into evs. Every pidfd read is in an event returned: the
// caller closes it.
func (w *watcher) readFan(buf []byte, evs []fanEvent) ([]fanEvent, error) {
	evs = evs[:0]
	for {
		n, err := unix.Read(w.fan.fd, buf)
		switch err {
		case nil:
			return parseFanEvents(buf[:n], evs, w.fan.seed), nil
		case unix.EAGAIN:
			return evs, nil
		case unix.EINTR:
			continue
		}
		return evs, fmt.Errorf("read fanotify: %w", err)
	}
}

// The layout of struct fanotify_event_metadata (linux/fanotify.h): its
// size, and where its fields are.
const (
	fanMetaSize    = 24
	fanMetaVersion = 4  // u8 vers
	fanMetaLenAt   = 6  // u16 metadata_len
	fanMaskAt      = 8  // u64 mask
	fanPidAt       = 20 // s32 pid
)

// parseFanEvents decodes the fanotify events in buf (linux/fanotify.h):
// each a struct fanotify_event_metadata, then its information records.
// It reads fields by their offsets, so that no buffer, however made, is
// read out of bounds or misaligned.
func parseFanEvents(buf []byte, evs []fanEvent, seed maphash.Seed) []fanEvent {
	for off := 0; off+fanMetaSize <= len(buf); {
		eventLen := int(binary.NativeEndian.Uint32(buf[off:]))
		metaLen := int(binary.NativeEndian.Uint16(buf[off+fanMetaLenAt:]))
		end := off + eventLen
		if buf[off+fanMetaVersion] != unix.FANOTIFY_METADATA_VERSION || eventLen < fanMetaSize || end > len(buf) || metaLen < fanMetaSize || metaLen > eventLen {
			break // not what the kernel writes
		}
		ev := fanEvent{
			mask:  binary.NativeEndian.Uint64(buf[off+fanMaskAt:]),
			pid:   int32(binary.NativeEndian.Uint32(buf[off+fanPidAt:])),
			pidfd: -1,
		}
		for rec := off + metaLen; rec+4 <= end; {
			typ := buf[rec]
			n := int(binary.NativeEndian.Uint16(buf[rec+2:]))
			if n < 4 || rec+n > end {
				break
			}
			body := buf[rec : rec+n]
			switch typ {
			case unix.FAN_EVENT_INFO_TYPE_PIDFD:
				if n >= 8 {
					ev.pidfd = int32(binary.NativeEndian.Uint32(body[4:]))
				}
			case unix.FAN_EVENT_INFO_TYPE_FID, unix.FAN_EVENT_INFO_TYPE_DFID, unix.FAN_EVENT_INFO_TYPE_DFID_NAME:
				if r, ok := parseFanRef(body, typ == unix.FAN_EVENT_INFO_TYPE_DFID_NAME, seed); ok && ev.nrefs < len(ev.refs) {
					ev.refs[ev.nrefs] = r
					ev.nrefs++
				}
			}
			rec += n
		}
		evs = append(evs, ev)
		off = end
	}
	return evs
}

// parseFanRef decodes one record of struct fanotify_event_info_fid: its
// header, the file system's id, a struct file_handle and, with named, the
// entry's name.
func parseFanRef(body []byte, named bool, seed maphash.Seed) (fanRef, bool) {
	const handleAt = 4 + 8 // header, fsid
	if len(body) < handleAt+8 {
		return fanRef{}, false
	}
	size := int(binary.NativeEndian.Uint32(body[handleAt:]))
	end := handleAt + 8 + size
	if size > len(body) || end > len(body) {
		return fanRef{}, false
	}
	r := fanRef{key: maphash.Bytes(seed, body[4:end])}
	if named {
		name := body[end:]
		for i, c := range name {
			if c == 0 {
				name = name[:i]
				break
			}
		}
		if s := string(name); s != "." {
			r.name = s
		}
	}
	return r, true
}

// routeFan routes each fanotify event to the subscriptions of the watch
// of each inode it names, as route does inotify's; ends[i] is where the
// hits of evs[i] end in hits.
func (w *watcher) routeFan(evs []fanEvent, hits []hit, ends []int) ([]hit, []int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, ev := range evs {
		for _, r := range ev.refs[:ev.nrefs] {
			if wd, ok := w.fan.byKey[r.key]; ok {
				hits = w.routeLocked(event{wd: int(wd), mask: inMask(ev.mask), name: r.name}, hits)
			}
		}
		ends = append(ends, len(hits))
	}
	return hits, ends
}
