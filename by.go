package main

// Who made the change: each fanotify event on a reported path names the
// process behind it. famids reads who that process is (proc(5)) as soon
// as it reads the event, before the burst settles and while the process
// is most likely still there, once per process per burst, in a job: a
// process can make reading its command line wait. The pidfd the event
// carries pins the process: what was read is kept only if the process the
// pidfd names was still there once it was read, so that a pid reused
// meanwhile is never named for another process's change.

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Limits of attribution. A burst names at most maxBy processes; famids
// looks at most maxInquiries processes up at once (a process whose command
// line cannot be read keeps its inquiry busy); a process's ancestors are
// named up to maxParents; its command line is read up to maxCmdline bytes.
// An event read before its path's burst begins is kept for recentFor, at
// most maxRecent paths.
const (
	maxBy        = 5
	maxInquiries = 16
	maxParents   = 3
	maxCmdline   = 4096
	recentFor    = 2 * time.Second
	maxRecent    = 4096
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
	uid    uint32
	user   string // uid's name
	auid   uint32 // unsetID when unset
	auser  string
	ses    uint32 // unsetID when unset
	mntns  string // its mount namespace, when not famids's: exe is a path there
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

// same reports whether a and b may be the same process.
func (a procID) same(b procID) bool {
	return a.pid == b.pid && (a.ino == 0 || b.ino == 0 || a.ino == b.ino)
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

// An inquiry is one process being read, for one or more bursts.
type inquiry struct {
	id    procID
	pid   int32
	pidfd int32 // closed by the job; < 0 when the process had exited already

	mu   sync.Mutex
	p    process // what is read so far, under mu
	done bool    // the job is done; set on the loop
}

// snapshot returns what is read of the process so far.
func (l *inquiry) snapshot() process {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.p
}

func (l *inquiry) publish(p process) {
	l.mu.Lock()
	l.p = p
	l.mu.Unlock()
}

// An attribution is who made the changes of one burst.
type attribution struct {
	by    []*inquiry
	extra map[procID]bool // processes past maxBy, up to maxExtra
}

// maxExtra bounds the processes past maxBy a burst counts.
const maxExtra = 1024

// add names l, unless its process is named already.
func (a *attribution) add(l *inquiry) {
	if a.names(l.id) {
		return
	}
	if len(a.by) < maxBy {
		a.by = append(a.by, l)
		return
	}
	a.addExtra(l.id)
}

// names reports whether the attribution names process id already.
func (a *attribution) names(id procID) bool {
	return slices.ContainsFunc(a.by, func(l *inquiry) bool { return l.id.same(id) }) || a.extra[id]
}

func (a *attribution) addExtra(id procID) {
	if len(a.extra) == maxExtra || a.names(id) {
		return
	}
	if a.extra == nil {
		a.extra = make(map[procID]bool)
	}
	a.extra[id] = true
}

// merge adds the processes b names.
func (a *attribution) merge(b attribution) {
	for _, l := range b.by {
		a.add(l)
	}
	for id := range b.extra {
		a.addExtra(id)
	}
}

// more returns how many processes made changes past those named.
func (a *attribution) more() int { return len(a.extra) }

// read reports whether every process is read.
func (a *attribution) read() bool {
	for _, l := range a.by {
		if !l.done {
			return false
		}
	}
	return true
}

// processes returns what was read of each process.
func (a *attribution) processes() []process {
	ps := make([]process, len(a.by))
	for i, l := range a.by {
		ps[i] = l.snapshot()
	}
	return ps
}

// A recent is the processes of events read before their path's burst
// began: the two interfaces' queues are read one after the other.
type recent struct {
	at time.Time
	a  attribution
}

// fanFd returns the fanotify group's descriptor, or -1 without one.
func (d *daemon) fanFd() int {
	if d.w.fan == nil {
		return -1
	}
	return d.w.fan.fd
}

// unmark hands out the removal of the fanotify marks of inodes no longer
// watched.
func (d *daemon) unmark() {
	if us := d.w.takeUnmarks(); len(us) > 0 {
		d.hand(&job{path: us[0].path, work: func(context.Context, *job) { d.w.removeMarks(us) }, done: func() {}})
	}
}

// attribute reads the fanotify events queued and names their processes
// in the bursts of the paths they concern.
func (d *daemon) attribute() {
	if d.w.fan == nil {
		return
	}
	evs, err := d.w.readFan(d.fanBuf, d.fanEvs[:0])
	d.fanEvs = evs
	if err != nil {
		d.warnOnce("who made a change: " + err.Error())
	}
	if len(evs) == 0 {
		return
	}
	hits, ends := d.w.routeFan(evs, d.hits[:0], d.ends[:0])
	var batch map[procID]*inquiry // one inquiry per process per read
	var idle map[uint64]int       // events that concern nothing famids reports, by inode
	start := 0
	now := time.Now()
	for i, ev := range evs {
		if ev.mask&unix.FAN_Q_OVERFLOW != 0 && !d.fanOverflowed {
			d.fanOverflowed = true
			d.notice("fanotify's event queue overflowed: some reports do not say who made the change",
				"Every change is still reported; only who made it may be missing, until the queue is read again.")
		}
		var paths []string
		for _, h := range hits[start:ends[i]] {
			if p := d.concerns(h); p != "" && !contains(paths, p) {
				paths = append(paths, p)
			}
		}
		start = ends[i]
		if len(paths) == 0 && ev.nrefs > 0 {
			if idle == nil {
				idle = make(map[uint64]int)
			}
			idle[ev.refs[0].key]++
		}
		used := false
		if len(paths) > 0 {
			id := pidfdID(ev.pid, ev.pidfd, d.w.fan.pidfs)
			l := batch[id]
			if l == nil && !d.named(paths, id, now) {
				l, used = d.inquire(ev, id), true
				if batch == nil {
					batch = make(map[procID]*inquiry)
				}
				batch[id] = l
			}
			if l != nil {
				for _, p := range paths {
					d.attach(p, l, now)
				}
			}
		}
		if !used && ev.pidfd >= 0 {
			unix.Close(int(ev.pidfd))
		}
	}
	d.hits, d.ends = hits, ends
	var quiet []unmark
	for key, n := range idle {
		if n < quietAfter {
			continue
		}
		if u, ok := d.w.quiet(key); ok {
			quiet = append(quiet, u)
		}
	}
	if len(quiet) > 0 {
		d.quieted = append(d.quieted, quiet...)
		d.hand(&job{path: quiet[0].path, work: func(context.Context, *job) { d.w.setQuiet(quiet, true) }, done: func() {}})
	}
}

// unquiet marks again the directories made quiet for a storm, once it
// is over.
func (d *daemon) unquiet() {
	us := d.quieted
	d.quieted, d.unquietAt = nil, time.Time{}
	d.hand(&job{path: us[0].path, work: func(context.Context, *job) { d.w.setQuiet(us, false) }, done: func() {}})
}

// concerns returns the reported path a fanotify event routed as h is
// about, or "" when famids reports nothing for it: as interpret does for
// inotify's events, without acting on them.
func (d *daemon) concerns(h hit) string {
	e := d.entryFor(h.path)
	if e == nil {
		return ""
	}
	named := h.name != ""
	switch h.role {
	case roleLookup, roleLeaf:
		if named || h.mask&goneMask != 0 {
			return e.Path
		}
	case roleSelf:
		return e.Path
	case roleAlias:
		if !named && e.matches(h.sub.name) {
			return e.Path + "/" + h.sub.name
		}
	case roleEntries:
		if !named {
			return e.Path
		}
		if e.matches(h.name) {
			return e.Path + "/" + h.name
		}
	}
	return ""
}

// inquire starts reading who the process behind ev is; the inquiry takes
// ev's pidfd. A process being read already (one that makes reading it
// wait) is not read twice.
func (d *daemon) inquire(ev fanEvent, id procID) *inquiry {
	l := &inquiry{id: id, pid: ev.pid, pidfd: ev.pidfd}
	l.p.pid = ev.pid
	if running := d.inquiries[ev.pid]; running != nil && running.id.same(id) {
		if ev.pidfd >= 0 {
			unix.Close(int(ev.pidfd))
		}
		return running
	}
	if ev.pidfd < 0 {
		l.p.exited, l.done = true, true // gone before the event was read
		return l
	}
	d.lookups++
	g := glanceAt(ev.pid)
	if len(d.inquiries) >= maxInquiries {
		// Every lookup is busy (command lines that do not come back):
		// what the glance saw is what is known, its ids unnamed.
		p, _ := g.process(ev.pid)
		if p.known && !alive(l.pidfd) {
			p = process{pid: ev.pid, exited: true}
		}
		l.p, l.done = p, true
		unix.Close(int(l.pidfd))
		return l
	}
	d.inquiries[ev.pid] = l
	d.procs.submit(&job{path: "/proc/" + strconv.Itoa(int(ev.pid)),
		work: func(context.Context, *job) {
			readProcess(l, g, d.rec.names, d.w.fan.mntns)
			unix.Close(int(l.pidfd))
		},
		done: func() {
			l.done = true
			if d.inquiries[l.pid] == l {
				delete(d.inquiries, l.pid)
			}
			d.reportInOrder() // a report may wait for it
		}})
	return l
}

// attach names l's process in the burst of path: the one gathering
// events, or the one being recorded; without either, the one about to
// begin.
func (d *daemon) attach(path string, l *inquiry, now time.Time) {
	if b := d.pending[path]; b != nil {
		b.by.add(l)
		return
	}
	if b := d.inOrderBurst(path); b != nil {
		b.by.add(l)
		return
	}
	r := d.recent[path]
	if r == nil {
		if len(d.recent) >= maxRecent {
			d.expireRecent(now)
			if len(d.recent) >= maxRecent {
				return
			}
		}
		r = &recent{}
		d.recent[path] = r
	}
	r.at = now
	r.a.add(l)
}

// takeRecent returns the processes of events on path read before its
// burst began.
// inOrderBurst returns the burst of path that settled and waits for its
// record, or nil.
func (d *daemon) inOrderBurst(path string) *burst {
	for _, o := range d.inOrder {
		if o.b.path == path {
			return o.b
		}
	}
	return nil
}

// named reports whether the bursts (or recent events) of every one of
// paths name process id already: it is then not looked up again, once
// per process per burst.
func (d *daemon) named(paths []string, id procID, now time.Time) bool {
	for _, p := range paths {
		var a *attribution
		if b := d.pending[p]; b != nil {
			a = &b.by
		} else if b := d.inOrderBurst(p); b != nil {
			a = &b.by
		} else if r := d.recent[p]; r != nil && now.Sub(r.at) <= recentFor {
			a = &r.a
		}
		if a == nil || !a.names(id) {
			return false
		}
	}
	return true
}

func (d *daemon) takeRecent(path string, now time.Time) attribution {
	r := d.recent[path]
	if r == nil {
		return attribution{}
	}
	delete(d.recent, path)
	if now.Sub(r.at) > recentFor {
		return attribution{}
	}
	return r.a
}

// expireRecent forgets the events read too long ago for a burst to begin.
func (d *daemon) expireRecent(now time.Time) {
	for p, r := range d.recent {
		if now.Sub(r.at) > recentFor {
			delete(d.recent, p)
		}
	}
}

// A glance is what famids reads of a process on its loop, the moment its
// first event is read: a short-lived process (a cp, a chmod) is often
// gone within a few tens of microseconds, before a job could start.
// These files of /proc are made from the process's own structures
// without taking its memory's lock, so that no process can make reading
// them wait; the rest (names, ancestors, threads, the command line) is
// read by a job.
type glance struct {
	stat, status []byte // nil: the process was gone
	auid, ses    uint32
	exe          string
}

// glanceAt reads what a glance holds of process pid.
func glanceAt(pid int32) glance {
	dir := "/proc/" + strconv.Itoa(int(pid))
	stat, err := os.ReadFile(dir + "/stat")
	if err != nil {
		return glance{}
	}
	g := glance{stat: stat, auid: readID(dir + "/loginuid"), ses: readID(dir + "/sessionid")}
	g.status, _ = os.ReadFile(dir + "/status")
	g.exe, _ = os.Readlink(dir + "/exe")
	return g
}

// process returns what g tells of process pid, its ids not yet named, and
// its parent's pid; known is false when it was gone. A process whose
// first thread has exited while others run on is not gone: its program
// and command line are read through those (see readThreads).
func (g glance) process(pid int32) (p process, ppid string) {
	p = process{pid: pid}
	if g.stat == nil {
		p.exited = true
		return p, ""
	}
	comm, fields := parseStat(g.stat)
	p.known = true
	p.comm = comm
	p.uid = statusField(g.status, "Uid:", 1)
	p.auid, p.ses, p.exe = g.auid, g.ses, g.exe
	p.exited = exiting(fields) && threadsOf(g.status) <= 1
	if len(fields) > 4 {
		p.tty = ttyName(fields[4])
	}
	if len(fields) > 1 {
		ppid = fields[1]
	}
	return p, ppid
}

// readProcess reads who l's process is, from what a glance saw and from
// /proc/PID, publishing what it has read as it goes: first what never
// makes a reader wait, then the command line, which the process's memory
// lock can hold up. What was read is kept only if the pidfd's process was
// still there after: the pid then named it throughout. mntns is famids's
// own mount namespace.
func readProcess(l *inquiry, g glance, names *idNames, mntns string) {
	p, ppid := g.process(l.pid)
	if !p.known {
		l.publish(p)
		return
	}
	dir := "/proc/" + strconv.Itoa(int(l.pid))
	p.user = names.user(p.uid)
	if p.auid != unsetID {
		p.auser = names.user(p.auid)
	}
	p.parents = readParents(ppid)
	if ns, err := os.Readlink(dir + "/ns/mnt"); err == nil && mntns != "" && ns != mntns {
		p.mntns = strings.TrimSuffix(strings.TrimPrefix(ns, "mnt:["), "]")
	}
	// The program and command line of a process whose first thread has
	// exited are its other threads'.
	from := dir
	if threadsOf(g.status) > 1 {
		var live string
		p.threadUIDs, live = readThreads(dir, names)
		if p.exe == "" && live != "" {
			from = dir + "/task/" + live
			p.exe, _ = os.Readlink(from + "/exe")
		}
	}
	if !alive(l.pidfd) {
		l.publish(process{pid: l.pid, exited: true})
		return
	}
	l.publish(p)
	if p.exited {
		return // its memory is gone: no command line
	}
	args, cut := readCmdline(from + "/cmdline")
	if !alive(l.pidfd) {
		p.exited = true // what was read before is its; the command line may not be
		l.publish(p)
		return
	}
	if stat, err := os.ReadFile(from + "/stat"); err != nil || exitingStat(stat) {
		// It began to exit since the glance: its memory, and with it the
		// command line, may have been gone when it was read.
		p.exited = true
		if len(args) == 0 {
			l.publish(p)
			return
		}
	}
	p.cmdline, p.cut = args, cut
	l.publish(p)
}

// exitingStat reports whether a /proc/PID/stat is an exiting process's.
func exitingStat(stat []byte) bool {
	_, fields := parseStat(stat)
	return exiting(fields)
}

// maxThreads is how many threads of a process famids reads the
// credentials of.
const maxThreads = 64

// readThreads returns the effective uids of the threads of the process
// whose /proc directory is dir, when they are not all one (each thread has
// credentials of its own, and any of them may have made the change), and
// the id of a thread that has not exited.
func readThreads(dir string, names *idNames) (uids []uidName, live string) {
	f, err := os.Open(dir + "/task")
	if err != nil {
		return nil, ""
	}
	tids, _ := f.Readdirnames(maxThreads)
	f.Close()
	for _, tid := range tids {
		status, err := os.ReadFile(dir + "/task/" + tid + "/status")
		if err != nil {
			continue
		}
		if live == "" && !strings.Contains(statusLine(status, "State:"), "Z") {
			live = tid
		}
		uid := statusField(status, "Uid:", 1)
		if uid != unsetID && !slices.ContainsFunc(uids, func(u uidName) bool { return u.id == uid }) {
			uids = append(uids, uidName{uid, names.user(uid)})
		}
	}
	if len(uids) < 2 {
		uids = nil
	}
	return uids, live
}

// threadsOf returns the number of threads of a /proc/PID/status, 1 when
// it does not say.
func threadsOf(status []byte) uint32 {
	if n := statusField(status, "Threads:", 0); n != unsetID {
		return n
	}
	return 1
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

// readID reads a number such as /proc/PID/loginuid; unsetID when it
// cannot.
func readID(file string) uint32 {
	data, err := os.ReadFile(file)
	if err != nil {
		return unsetID
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(data)), 10, 32)
	if err != nil {
		return unsetID
	}
	return uint32(n)
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

// readParents returns up to maxParents ancestors, from the parent pid up.
func readParents(ppid string) []ancestor {
	var out []ancestor
	for len(out) < maxParents {
		pid, err := strconv.Atoi(ppid)
		if err != nil || pid <= 0 {
			break
		}
		stat, err := os.ReadFile("/proc/" + ppid + "/stat")
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

// readCmdline reads a /proc/PID/cmdline, up to maxCmdline bytes, as its
// arguments; cut says there was more.
func readCmdline(file string) (args []string, cut bool) {
	f, err := os.Open(file)
	if err != nil {
		return nil, false
	}
	defer f.Close()
	buf := make([]byte, maxCmdline+1)
	n := 0
	for n < len(buf) {
		m, err := f.Read(buf[n:])
		n += m
		if err != nil || m == 0 {
			break
		}
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

// appendBy appends the By: line's value for p (CONTRACT "Who made the
// change"): every text the process chose (its name, its executable's
// path, its arguments) is quoted, so that none can forge a field or a
// line.
func appendBy(b []byte, p process) []byte {
	b = append(b, "pid="...)
	b = strconv.AppendInt(b, int64(p.pid), 10)
	if p.pid == 0 {
		return append(b, " (outside famids's pid namespace)"...)
	}
	if p.exited {
		b = append(b, " (exited)"...)
	}
	if !p.known {
		return b
	}
	b = appendText(b, " comm=", p.comm)
	b = appendText(b, " exe=", orDash(p.exe))
	if p.mntns != "" {
		b = append(append(b, " mntns="...), p.mntns...)
	}
	b = appendID(b, " uid=", p.uid, p.user)
	for i, u := range p.threadUIDs {
		key := ","
		if i == 0 {
			key = " thread_uids="
		}
		b = appendID(b, key, u.id, u.name)
	}
	b = appendID(b, " auid=", p.auid, p.auser)
	b = append(b, " ses="...)
	if p.ses == unsetID {
		b = append(b, '-')
	} else {
		b = strconv.AppendUint(b, uint64(p.ses), 10)
	}
	b = appendText(b, " tty=", orDash(p.tty))
	if len(p.parents) > 0 {
		var chain []byte
		for i, a := range p.parents {
			if i > 0 {
				chain = append(chain, '<')
			}
			chain = append(chain, quoteComm(a.comm)...)
			chain = append(strconv.AppendInt(append(chain, '('), int64(a.pid), 10), ')')
		}
		b = appendText(b, " parents=", string(chain))
	}
	if p.cmdline != nil {
		line := shellJoin(p.cmdline)
		if p.cut {
			line += " ..."
		}
		b = strconv.AppendQuote(append(b, " cmdline="...), line)
	}
	return b
}

// appendID appends key and a user id with its name, or "-" when unset.
func appendID(b []byte, key string, id uint32, name string) []byte {
	b = append(b, key...)
	if id == unsetID {
		return append(b, '-')
	}
	b = strconv.AppendUint(b, uint64(id), 10)
	if name != "" && name != strconv.FormatUint(uint64(id), 10) {
		b = append(append(append(b, '('), name...), ')')
	}
	return b
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// quoteComm quotes a process name in a chain of parents, or in a syslog
// line's "COMM[PID]", when it holds anything that could be read as part
// of either.
func quoteComm(comm string) string {
	if strings.ContainsAny(comm, "()<[] ") {
		return strconv.Quote(comm)
	}
	return quoteIfNeeded(comm)
}

// shellJoin joins arguments as a shell would read them back: an argument
// that holds anything but plain characters is single-quoted.
func shellJoin(args []string) string {
	var b strings.Builder
	for i, a := range args {
		if i > 0 {
			b.WriteByte(' ')
		}
		if a != "" && strings.Trim(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,+@%") == "" {
			b.WriteString(a)
			continue
		}
		b.WriteString("'" + strings.ReplaceAll(a, "'", `'\''`) + "'")
	}
	return b.String()
}

// byline returns the end of a syslog line for the first process of ps:
// "by COMM[PID] auid=N", or "" without one.
func byline(ps []process) string {
	if len(ps) == 0 {
		return ""
	}
	p := ps[0]
	comm := "?"
	if p.known {
		comm = quoteComm(p.comm)
	}
	auid := "-"
	if p.known && p.auid != unsetID {
		auid = strconv.FormatUint(uint64(p.auid), 10)
	}
	return "by " + comm + "[" + strconv.Itoa(int(p.pid)) + "] auid=" + auid
}

// byEnv returns the action's environment of who made the change: the
// first process's pid, uid and login uid, each left out when unknown.
func byEnv(ps []process) []string {
	if len(ps) == 0 {
		return nil
	}
	p := ps[0]
	env := []string{"FAMIDS_BY_PID=" + strconv.Itoa(int(p.pid))}
	if p.known {
		env = append(env, "FAMIDS_BY_UID="+strconv.FormatUint(uint64(p.uid), 10))
		if p.auid != unsetID {
			env = append(env, "FAMIDS_BY_AUID="+strconv.FormatUint(uint64(p.auid), 10))
		}
	}
	return env
}

// sayUnmarked says, on standard error and in syslog, which watched paths
// fanotify refused to mark (a file system that cannot identify its files
// to it, or too many marks): their reports will have no By: line. It is
// said at start-up and after each reload, not mailed: the reports
// themselves are whole.
func (d *daemon) sayUnmarked() {
	list := d.w.takeUnmarked()
	if len(list) == 0 {
		return
	}
	msg := fmt.Sprintf("reports of %d path(s) will not say who made a change", len(list))
	fmt.Fprintf(os.Stderr, "famids: %s:\n", msg)
	for i, item := range list {
		if i == shownOnStderr {
			fmt.Fprintf(os.Stderr, "famids: ... and %d more\n", len(list)-shownOnStderr)
			break
		}
		fmt.Fprintf(os.Stderr, "famids: - %s\n", item)
	}
	d.syslog(fmt.Sprintf("notice: %s: %s", msg, list[0]))
}
