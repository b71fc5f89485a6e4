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
	"context"
	"fmt"
	"io"
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

// An inquiry is one process being read, for one or more bursts.
type inquiry struct {
	id    procID
	pid   int32
	pidfd int32 // closed by the job; < 0 when the process had exited already

	mu    sync.Mutex
	p     process // what is read so far, under mu
	ready bool    // all but its threads is read; set on the loop
	done  bool    // all is read; set on the loop

	trace *stages // nil but in BenchmarkReportLatency
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
	by     []*inquiry
	extra  map[int32][]uint64 // processes past maxBy: the pidfd inodes of each pid (procID)
	nextra int                // how many, up to maxExtra
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
	return slices.ContainsFunc(a.by, func(l *inquiry) bool { return l.id.same(id) }) ||
		slices.ContainsFunc(a.extra[id.pid], func(ino uint64) bool { return procID{id.pid, ino}.same(id) })
}

func (a *attribution) addExtra(id procID) {
	if a.nextra == maxExtra || a.names(id) {
		return
	}
	if a.extra == nil {
		a.extra = make(map[int32][]uint64)
	}
	a.extra[id.pid] = append(a.extra[id.pid], id.ino)
	a.nextra++
}

// merge adds the processes b names.
func (a *attribution) merge(b attribution) {
	for _, l := range b.by {
		a.add(l)
	}
	for pid, inos := range b.extra {
		for _, ino := range inos {
			a.addExtra(procID{pid, ino})
		}
	}
}

// more returns how many processes made changes past those named.
func (a *attribution) more() int { return a.nextra }

// read reports whether every process is read.
func (a *attribution) read() bool {
	for _, l := range a.by {
		if !l.ready {
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

// An attributor names the processes behind each change: it reads the
// fanotify group's events, looks up each process in /proc once per burst,
// and quiets the marks of directories in a storm of events nobody is
// told of. Only the event loop's goroutine touches it, but for what its
// jobs read of a process, under each inquiry's lock.
type attributor struct {
	w     *watcher // and its fanotify group, w.fan; nil without one
	why   string   // why famids cannot tell who made a change, without one
	procs *pool    // processes looked up: a command line that never comes back holds no file's record
	hand  func(*job)
	names *idNames
	trace *tracer

	buf        []byte     // fanotify's events, read
	evs        []fanEvent // decoded, reused
	hits       []hit      // routed, reused
	ends       []int
	overflowed bool // the notice of an overflow of fanotify's queue is sent

	inquiries map[int32]*inquiry // processes being read, by pid
	lookups   int                // processes looked up in /proc since the start
	looking   int                // lookups handed out since the loop last waited for one
	procBuf   []byte             // what the loop reads of a process in /proc
	recent    map[string]*recent // processes of events read before their path's burst began
	expireAt  time.Time          // when the first of recent expires: full, it is not looked through before
	quieted   []unmark           // directories unmarked for a storm
	unquietAt time.Time          // when they are marked again, the storm being over; zero while it goes on

	// What it asks of the rest of famids: the burst of a path, the entry
	// that watches a path as its own, a report that may now go out, the
	// files another process opened; and where it tells what goes wrong.
	bursts   *bursts
	entryFor func(path string) *entry
	ready    func()
	opened   func(paths []string)
	self     int32  // famids's pid, whose own opens are its records
	exe      string // famids's program, "DEV INODE", whose other runs open only to read (peer)
	out      *publisher
	trouble  *troubles
}

// newAttributor returns the attributor of w's fanotify group; without
// one, why says why it cannot tell.
func newAttributor(w *watcher, why string, poke func(), names *idNames, trace *tracer) *attributor {
	exe := programOf("self")
	a := &attributor{w: w, why: why, names: names, trace: trace, self: int32(os.Getpid()), exe: exe,
		procs:     newPoolOf(poke, maxInquiries, maxInquiries, false),
		inquiries: make(map[int32]*inquiry), procBuf: make([]byte, procBufSize), recent: make(map[string]*recent)}
	if w.fan != nil {
		a.buf = make([]byte, 64<<10)
	}
	return a
}

// storm says whether the events read are a storm; calm, that they are
// not: the directories quieted for one are marked again once it is over.
func (a *attributor) storm(calm bool, now time.Time) {
	switch {
	case len(a.quieted) == 0:
	case !calm:
		a.unquietAt = time.Time{}
	case a.unquietAt.IsZero():
		a.unquietAt = now.Add(quietFor)
	}
}

// calmed marks again the directories quieted for a storm, once it has
// been over for quietFor.
func (a *attributor) calmed(now time.Time) {
	if !a.unquietAt.IsZero() && !now.Before(a.unquietAt) {
		a.unquiet()
	}
}

// next returns when quieted directories are marked again, or zero.
func (a *attributor) next() time.Time { return a.unquietAt }

// awaitLooking waits a little for the processes just looked up: a report
// may wait for one, as for a record just handed out.
func (a *attributor) awaitLooking() {
	if a.looking > 0 {
		a.looking = 0
		a.procs.await(quickWait)
	}
}

// takeDone returns the lookups done since it was last called.
func (a *attributor) takeDone() []*job { return a.procs.take() }

// stop cancels the lookups.
func (a *attributor) stop() { a.procs.stop() }

// fd returns the fanotify group's descriptor, or -1 without one.
func (a *attributor) fd() int {
	if a.w.fan == nil {
		return -1
	}
	return a.w.fan.fd
}

// unmark hands out the removal of the fanotify marks of inodes no longer
// watched.
func (a *attributor) unmark() {
	if us := a.w.takeUnmarks(); len(us) > 0 {
		a.hand(&job{path: us[0].path, work: func(context.Context, *job) { a.w.removeMarks(us) }, done: func() {}})
	}
}

// attribute reads the fanotify events queued and names their processes
// in the bursts of the paths they concern.
func (a *attributor) attribute() {
	if a.w.fan == nil {
		return
	}
	evs, err := a.w.readFan(a.buf, a.evs[:0])
	if err != nil {
		a.trouble.warnOnce("who made a change: " + err.Error())
	}
	evs = a.dropOwnOpens(evs)
	a.evs = evs
	if len(evs) == 0 {
		return
	}
	hits, ends := a.w.routeFan(evs, a.hits[:0], a.ends[:0])
	var batch map[procID]*inquiry // one inquiry per process per read
	var idle map[uint64]int       // events that concern nothing famids reports, by inode
	start := 0
	now := time.Now()
	for i, ev := range evs {
		if ev.mask&unix.FAN_Q_OVERFLOW != 0 && !a.overflowed {
			a.overflowed = true
			a.out.notice(notice{Summary: "fanotify's event queue overflowed: some reports do not say who made the change",
				Details: []string{"Every change is still reported; only who made it may be missing, until the queue is read again."}})
		}
		var paths []string
		for _, h := range hits[start:ends[i]] {
			if p := a.concerns(h); p != "" && !contains(paths, p) {
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
		if ev.mask&unix.FAN_OPEN != 0 && len(paths) > 0 && ev.pid != a.self && !a.peer(ev) {
			a.opened(paths)
		}
		if ev.mask&^(unix.FAN_OPEN|unix.FAN_ONDIR) == 0 {
			// An open alone changes nothing: nobody to name.
			if ev.pidfd >= 0 {
				unix.Close(int(ev.pidfd))
			}
			continue
		}
		if batch == nil && len(paths) > 0 {
			batch = make(map[procID]*inquiry)
		}
		a.name(ev, paths, batch, now)
	}
	a.hits, a.ends = hits, ends
	a.quiet(idle)
}

// dropOwnOpens removes from evs, before they are routed, famids's own
// opens of the files it records: every record is one.
func (a *attributor) dropOwnOpens(evs []fanEvent) []fanEvent {
	kept := evs[:0]
	for _, ev := range evs {
		if ev.pid == a.self && ev.mask&^(unix.FAN_OPEN|unix.FAN_ONDIR) == 0 {
			if ev.pidfd >= 0 {
				unix.Close(int(ev.pidfd))
			}
			continue
		}
		kept = append(kept, ev)
	}
	return kept
}

// peer reports whether the process behind ev, an open, is another famids:
// it runs famids's own program file (the same device and inode), and every
// uid it has is root's. Its opens are reads, its records' and its probes'
// (writers.go); taken for a writer's, two famids watching the same files
// (one started by hand beside the one that runs as a service) would probe
// each other's probes for ever, a CPU each. The program is the one the
// kernel mapped (programOf): a program bind-mounted over famids's path, in
// a mount namespace of its own or not, or put in its place, is another
// file. The uids are asked of the pidfd afterwards, which also proves the
// pid was not reused meanwhile. A famids run by another user is no peer.
// It runs on the loop, for each open of a watched file by another process.
func (a *attributor) peer(ev fanEvent) bool {
	if a.exe == "" || ev.pidfd < 0 {
		return false
	}
	// The path first, which the kernel gives without a lock: the maps
	// are read (under the process's mmap lock) only of a process that
	// runs a program of famids's own path.
	pid := strconv.Itoa(int(ev.pid))
	exe, err := os.Readlink("/proc/" + pid + "/exe")
	if self, _ := os.Readlink("/proc/self/exe"); err != nil || exe != self || programOf(pid) != a.exe {
		return false
	}
	ruid, euid, _, ok := pidfdUIDs(ev.pidfd)
	return ok && ruid == 0 && euid == 0
}

// programOf returns the device and inode of the file process pid (or
// "self") runs, "MAJOR:MINOR INODE", from the first line of
// /proc/PID/maps (proc(5)), which the kernel writes without asking the
// program's file system anything (a FUSE file system that hangs cannot
// hang famids); "" when it cannot tell.
func programOf(pid string) string {
	f, err := os.Open("/proc/" + pid + "/maps")
	if err != nil {
		return ""
	}
	defer f.Close()
	buf := make([]byte, 512)
	n, _ := io.ReadFull(f, buf)
	line, _, _ := strings.Cut(string(buf[:n]), "\n")
	fields := strings.Fields(line)
	if len(fields) < 6 || fields[4] == "0" {
		return "" // an anonymous first mapping: no program file to name
	}
	return fields[3] + " " + fields[4]
}

// name names the process behind ev in the bursts of paths, looking it up
// unless this batch of events or the bursts have it already; the
// inquiry takes ev's pidfd, else it is closed.
func (a *attributor) name(ev fanEvent, paths []string, batch map[procID]*inquiry, now time.Time) {
	used := false
	if len(paths) > 0 {
		id := pidfdID(ev.pid, ev.pidfd, a.w.fan.pidfs)
		l := batch[id]
		if l == nil && !a.named(paths, id, now) {
			l, used = a.inquire(ev, id), true
			batch[id] = l
		}
		if l != nil {
			for _, p := range paths {
				a.attach(p, l, now)
			}
		}
	}
	if !used && ev.pidfd >= 0 {
		unix.Close(int(ev.pidfd))
	}
}

// quiet unmarks, for a storm, the directories whose events concern
// nothing famids reports, idle counting them by inode: quietAfter in one
// read make a storm.
func (a *attributor) quiet(idle map[uint64]int) {
	var quiet []unmark
	for key, n := range idle {
		if n < quietAfter {
			continue
		}
		if u, ok := a.w.quiet(key); ok {
			quiet = append(quiet, u)
		}
	}
	if len(quiet) > 0 {
		a.quieted = append(a.quieted, quiet...)
		a.hand(&job{path: quiet[0].path, work: func(context.Context, *job) { a.w.setQuiet(quiet, true) }, done: func() {}})
	}
}

// unquiet marks again the directories made quiet for a storm, once it
// is over.
func (a *attributor) unquiet() {
	us := a.quieted
	a.quieted, a.unquietAt = nil, time.Time{}
	a.hand(&job{path: us[0].path, work: func(context.Context, *job) { a.w.setQuiet(us, false) }, done: func() {}})
}

// concerns returns the reported path a fanotify event routed as h is
// about, or "" when famids reports nothing for it: as interpret does for
// inotify's events, without acting on them.
func (a *attributor) concerns(h hit) string {
	e := a.entryFor(h.path)
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
func (a *attributor) inquire(ev fanEvent, id procID) *inquiry {
	l := &inquiry{id: id, pid: ev.pid, pidfd: ev.pidfd}
	l.p.pid = ev.pid
	if running := a.inquiries[ev.pid]; running != nil && running.id.same(id) {
		if ev.pidfd >= 0 {
			unix.Close(int(ev.pidfd))
		}
		return running
	}
	if ev.pidfd < 0 {
		l.p.exited = true // gone before the event was read
		l.ready, l.done = true, true
		return l
	}
	a.lookups++
	fs := a.w.fan.proc
	p, ppid, threads := glance(fs, ev.pid, l.pidfd, a.procBuf, a.names)
	if a.trace.on() {
		l.trace = &stages{fanRead: a.trace.turn.fanRead, glanced: time.Now()}
	}
	l.p = p
	if !p.known || len(a.inquiries) >= maxInquiries {
		// Gone; or every lookup is busy (command lines that do not come
		// back): what the glance saw is what is known, with the parents,
		// whose stat files no process can hold up either.
		if p.known {
			l.p.parents = readParents(fs, ppid, a.procBuf)
			if !alive(l.pidfd) {
				l.p = process{pid: ev.pid, exited: true}
			}
		}
		unix.Close(int(l.pidfd))
		l.ready, l.done = true, true
		return l
	}
	a.lookUp(l, ppid, threads)
	return l
}

// lookUp reads, beside the loop, the rest of what is told of l's process
// (readMore), then the uids of its threads when it has more than one;
// ppid and threads are what the glance found.
func (a *attributor) lookUp(l *inquiry, ppid string, threads uint32) {
	fs := a.w.fan.proc
	a.inquiries[l.pid] = l
	a.looking++
	finish := func() {
		l.done = true
		if a.inquiries[l.pid] == l {
			delete(a.inquiries, l.pid)
		}
		unix.Close(int(l.pidfd))
	}
	a.procs.submit(&job{path: "/proc/" + strconv.Itoa(int(l.pid)),
		work: func(context.Context, *job) {
			readMore(fs, l, ppid, threads, a.names, a.w.fan.mntns)
			if l.trace != nil {
				l.trace.attributed = time.Now()
			}
		},
		done: func() {
			l.ready = true
			a.ready() // a report may wait for it
			if threads <= 1 {
				finish()
				return
			}
			a.procs.submit(&job{path: "/proc/" + strconv.Itoa(int(l.pid)) + "/task",
				work: func(context.Context, *job) { readThreadUIDs(fs, l, a.names) },
				done: finish})
		}})
}

// attach names l's process in the burst of path: the one gathering
// events, or the one being recorded; without either, the one about to
// begin.
func (a *attributor) attach(path string, l *inquiry, now time.Time) {
	if b := a.bursts.of(path); b != nil {
		b.by.add(l)
		return
	}
	r := a.recent[path]
	if r == nil {
		if len(a.recent) >= maxRecent {
			a.expireRecent(now)
			if len(a.recent) >= maxRecent {
				return
			}
		}
		r = &recent{}
		a.recent[path] = r
	}
	r.at = now
	r.a.add(l)
}

// named reports whether the bursts (or recent events) of every one of
// paths name process id already: it is then not looked up again, once
// per process per burst.
func (a *attributor) named(paths []string, id procID, now time.Time) bool {
	for _, p := range paths {
		var by *attribution
		if b := a.bursts.of(p); b != nil {
			by = &b.by
		} else if r := a.recent[p]; r != nil && now.Sub(r.at) <= recentFor {
			by = &r.a
		}
		if by == nil || !by.names(id) {
			return false
		}
	}
	return true
}

// takeRecent returns the processes of events on path read before its
// burst began.
func (a *attributor) takeRecent(path string, now time.Time) attribution {
	r := a.recent[path]
	if r == nil {
		return attribution{}
	}
	delete(a.recent, path)
	if now.Sub(r.at) > recentFor {
		return attribution{}
	}
	return r.a
}

// expireRecent forgets the events read too long ago for a burst to begin.
// In a flood, recent stays full of events too young to forget: it is
// looked through again only once the first of them expires.
func (a *attributor) expireRecent(now time.Time) {
	if now.Before(a.expireAt) {
		return
	}
	var first time.Time
	for p, r := range a.recent {
		if now.Sub(r.at) > recentFor {
			delete(a.recent, p)
		} else if first.IsZero() || r.at.Before(first) {
			first = r.at
		}
	}
	a.expireAt = first.Add(recentFor)
}

// sayUnmarked tells, in one notice, of the watched paths fanotify refused
// to mark since it last told (a file system that cannot identify its
// files to it, or too many marks), each once: their reports will name no
// process, and say why. It is told at start-up, after each reload and at
// each verification.
func (a *attributor) sayUnmarked() {
	list := a.w.takeUnmarked()
	if len(list) == 0 {
		return
	}
	summary := fmt.Sprintf("fanotify cannot mark %d watched path(s): their reports will not say who made a change", len(list))
	a.trouble.noticeList(summary, []string{"Their file system (an overlay, a network or FUSE file system, say) cannot identify its files to fanotify, or famids holds too many marks. Every change of them is still reported, with \"By: unknown\" and why."}, list)
}
