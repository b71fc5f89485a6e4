package main

// The event loop, and what it does on a signal or a deadline: reload the
// configuration, suspend and resume, compare after an overflow, a mount
// change or at verification, and stop. Nothing it does waits for the file
// system, the mail program or an action.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// loop is the event loop. One poll(2) waits for inotify events, signals,
// jobs done and the next deadline; the loop then folds events into
// bursts, hands out the record of each burst that settled, reports what
// the jobs found, saves the state, and so on, until a signal stops
// famids. Nothing it does waits for the file system, the mail program or
// an action: that is the pool's, the mailer's and the actions' work.
func (d *daemon) loop(sigs <-chan os.Signal) int {
	signals := d.forwardSignals(sigs)
	r := &eventReader{src: d.w, retry: readRetry, buf: make([]byte, 64<<10)}
	d.base.beatFrom(time.Now())
	for {
		readable, fanReadable, mounted := d.wait(r)
		if d.trace.on() {
			d.trace.turn = stages{woke: time.Now()}
		}
		if mounted {
			d.readMountTable() // at once: the mount may be gone when it is acted on
			d.mounts.changed(time.Now())
		}
		for _, sig := range signals.take() {
			if code, stop := d.signal(sig); stop {
				return code
			}
		}
		if err := d.take(r, readable, fanReadable); err != nil {
			fmt.Fprintf(os.Stderr, "famids: ERROR: %v\nPossibly the inotify instance is broken; exiting so that init restarts famids.\n", err)
			d.fatal = err.Error()
			d.stop()
			return 1
		}
		d.finishJobs()
		d.by.unmark()
		if d.bursts.ordering() {
			d.reportInOrder() // those a slow record held up
		}
		d.tend(time.Now())
	}
}

// wait waits for events, a signal, a job done or the next deadline, and
// reports whether inotify's or fanotify's events are queued, and whether
// the mount table changed.
func (d *daemon) wait(r *eventReader) (readable, fanReadable, mounted bool) {
	now := time.Now()
	next := earliest(d.bursts.next(), d.base.due(), d.susp.end(), r.resumeAt(now), d.scans.nextVerify(), d.mounts.next(), d.jobs.next(),
		d.out.digestsDue(), d.trouble.watchErrorsDue(), d.bursts.orderAt(now), d.by.next(), d.held.next(), d.mem.due())
	timeout := time.Duration(-1)
	if !next.IsZero() {
		timeout = max(next.Sub(now), 0)
	}
	if left := r.pauseLeft(now); left > 0 {
		// A storm's pause: sleeping lets Go's scheduler rest, where
		// waiting in a system call would keep it busy. A signal waits
		// for the pause to end.
		time.Sleep(min(left, timeout))
		return true, true, false // what piled up meanwhile
	}
	if !d.out.idle() {
		// Let the mailer's goroutine take what was just sent on this
		// thread, before it sleeps in poll: a report printed with
		// -stdout then goes out at once.
		runtime.Gosched()
	}
	return d.poll.wait(d.w.fd, d.by.fd(), timeout, r.waiting(now))
}

// tend does what is due by now: save the baseline, end a suspension that
// ran out, act on a mount change, verify, tell of watches that could not
// be set, send the minute's digests.
func (d *daemon) tend(now time.Time) {
	d.base.tend(now, d.ready, d.out.idle(), func() { d.save(false) })
	d.mem.fit(now, false)
	d.followWriters(now)
	if end := d.susp.end(); !end.IsZero() && !now.Before(end) {
		d.resume(fmt.Sprintf("by itself after %v", *maxSuspend))
	}
	if d.mounts.due(now) {
		d.remount()
	}
	if d.scans.verifyDue(now) {
		d.verify()
	}
	if d.arms.idle() && d.ready && !now.Before(d.trouble.watchErrorsDue()) {
		d.trouble.noticeWatchErrors() // once the arms of a moment are all done
	}
	if due := d.out.digestsDue(); !due.IsZero() && !now.Before(due) {
		if d.out.sendDigests(false) >= bigDigest {
			d.mem.after(now)
		}
	}
}

// mountSettle is how long famids waits after a change of the mount table
// before it acts on it: a mount seldom comes alone.
const mountSettle = 100 * time.Millisecond

// finishJobs runs the done of every job that has returned, after waiting
// a little for those just handed out, and looks at the jobs that run
// long: a new worker for each, and a notice for each that does not
// return.
func (d *daemon) finishJobs() {
	d.jobs.awaitHanded()
	d.by.awaitLooking()
	for _, j := range d.by.takeDone() {
		j.done()
	}
	for {
		done := d.jobs.takeDone()
		if len(done) == 0 {
			break
		}
		for _, j := range done {
			j.done()
		}
		d.flush(time.Now()) // bursts that waited for a job
		d.jobs.awaitHanded()
	}
	if stuck := d.jobs.check(time.Now()); len(stuck) > 0 {
		d.trouble.noticeStuck(stuck...)
	}
}

// hand hands a job out to the pool.
func (d *daemon) hand(j *job) { d.jobs.hand(j) }

// earliest returns the earliest of times that is not zero, or zero.
func earliest(times ...time.Time) time.Time {
	var first time.Time
	for _, t := range times {
		if !t.IsZero() && (first.IsZero() || t.Before(first)) {
			first = t
		}
	}
	return first
}

// A signalQueue holds the signals caught, in the order Go's runtime passed
// them on, until the loop takes them. It never blocks whoever adds to it:
// os/signal drops a signal its channel has no room for.
type signalQueue struct {
	mu   sync.Mutex
	sigs []os.Signal
}

func (q *signalQueue) add(sig os.Signal) {
	q.mu.Lock()
	q.sigs = append(q.sigs, sig)
	q.mu.Unlock()
}

// take returns the signals queued, oldest first.
func (q *signalQueue) take() []os.Signal {
	q.mu.Lock()
	defer q.mu.Unlock()
	sigs := q.sigs
	q.sigs = nil
	return sigs
}

// forwardSignals passes the signals caught on to the loop, waking it.
func (d *daemon) forwardSignals(sigs <-chan os.Signal) *signalQueue {
	q := new(signalQueue)
	go func() {
		for sig := range sigs {
			q.add(sig)
			d.poll.poke()
		}
	}()
	return q
}

// signal acts on a signal; it returns the exit status when famids stops.
func (d *daemon) signal(sig os.Signal) (code int, stop bool) {
	switch sig {
	case syscall.SIGHUP:
		d.reload()
	case syscall.SIGUSR1:
		if d.susp.stray(time.Now()) {
			fmt.Fprintln(os.Stderr, "famids: SIGUSR1 right after a SIGUSR2: taken as sent before it; reporting goes on")
			return 0, false
		}
		d.suspend()
	case syscall.SIGUSR2:
		d.susp.resumeAsked(time.Now())
		d.resume("on SIGUSR2")
	default:
		sdNotify("STOPPING=1")
		d.stop()
		return 0, true
	}
	return 0, false
}

// Stopping: jobs are given jobsAtStop to finish, and the mail, with the
// actions' reports, until stopWithin after the signal; famids then exits,
// whatever is still being hashed, mailed or run.
const (
	jobsAtStop = 3 * time.Second
	stopWithin = 7 * time.Second
)

// stop reports every pending burst, stops the actions, each of which
// reports how it ended, delivers every message it can, and only then
// saves the state: a change whose report was not delivered, or whose path
// could not be recorded in time, is found again at the next start.
func (d *daemon) stop() {
	begin := time.Now()
	d.stopping = true
	if d.susp.suspended() {
		d.resume("as famids stops")
	}
	d.drain()
	d.flush(time.Time{})
	for (d.jobs.busy() || !d.bursts.idle()) && time.Since(begin) < jobsAtStop {
		d.jobs.pool.await(50 * time.Millisecond)
		for _, j := range d.jobs.pool.take() {
			j.done()
		}
		d.flush(time.Time{})
	}
	d.jobs.stop()
	d.by.stop()
	d.w.Close()
	for _, o := range d.bursts.heldUp() { // by a record that did not end in time
		d.recordedBy(o.b.path, &o.l)
		d.recorded(o.b, o.l.after)
	}
	for _, p := range d.bursts.busyPaths() {
		fmt.Fprintf(os.Stderr, "famids: stopping before %s could be recorded (a file system that does not answer, or a file too large to hash in time); its record is kept, and it is compared with it at the next start\n", quoteIfNeeded(p))
	}
	d.out.sendDigests(true)
	for _, m := range d.out.stop(begin.Add(stopWithin)) {
		for _, p := range m.Paths {
			d.base.unreport(p) // found again at the next start
		}
	}
	d.save(true)
}

// take reads and handles what the two event queues hold: inotify's
// first, and the records of bursts that settle are handed out, then
// fanotify's, whose processes are looked up while those records are
// made; a burst begun before its process is known takes it when it is
// (attach). The error is inotify's: famids cannot go on without it.
func (d *daemon) take(r *eventReader, readable, fanReadable bool) error {
	now := time.Now()
	if readable || r.retrying(now) {
		evs, err := r.read(now)
		if err != nil {
			return err
		}
		if d.trace.on() {
			d.trace.turn.read = time.Now()
		}
		d.handle(evs)
		fanReadable = fanReadable || len(evs) > 0
		d.by.storm(r.calm(), time.Now())
	}
	handed := d.jobs.handedOut()
	d.flush(time.Now())
	if d.jobs.handedOut() > handed {
		// The worker woken for a record waits for this thread to yield:
		// the other CPU's scheduler steals it only after a sleep of tens
		// of microseconds. Yielding, the loop goes on there instead, and
		// the record is made beside what follows: who made the change.
		runtime.Gosched()
	}
	if fanReadable {
		if d.trace.on() {
			d.trace.turn.fanRead = time.Now()
		}
		d.by.attribute()
	}
	d.by.calmed(time.Now())
	return nil
}

// verify is -verify: it tries again the watches that could not be set,
// and compares every watched path with its record, to find what sends no
// event (chattr, a write through a memory mapping made after the file was
// closed, a write to the disk underneath the file system). A file is
// hashed again when its stat changed, and every file once a day.
func (d *daemon) verify() {
	d.retryWatches()
	d.regrowTrees(nil)
	d.by.sayUnmarked()
	if d.susp.holds() || !d.ready {
		return // the resume, or the start, compares
	}
	d.scans.start(&scan{kind: "verify", found: foundAtVerify, trust: !d.scans.hashAll(time.Now())})
}

// remount acts on a change of the mount table: a mount on or above a
// watched path changes what it names without an event on it. Every entry
// is armed again, then every path compared with its record.
func (d *daemon) remount() {
	d.armEntries(d.cfg.Entries, false, func() {
		if !d.susp.holds() && d.ready {
			d.scans.start(&scan{kind: "mount", found: foundAfterMount, trust: true})
		}
	})
}

// overflow is the kernel's queue overflowing: events were lost, so every
// entry is armed again and every path compared with its record.
func (d *daemon) overflow() {
	if d.susp.holds() {
		d.susp.overflowed() // a comparison follows anyway
		return
	}
	fmt.Fprintln(os.Stderr, "famids: the inotify event queue overflowed; comparing every watched path with its record")
	d.notice("the kernel's inotify event queue overflowed: events were lost",
		"famids compares every watched path with its record and reports each difference, with \"Found: "+foundAfterFlood+"\".",
		"Raise /proc/sys/fs/inotify/max_queued_events if this happens often.")
	d.catchUp()
	d.armEntries(d.cfg.Entries, false, func() {
		d.scans.start(&scan{kind: "overflow", found: foundAfterFlood, trust: true})
	})
}

// reload is SIGHUP: it reads the configuration again and watches what it
// now lists. New watches are set before old ones go, and the entries in
// both are not touched, so nothing that stays watched is ever unwatched. A
// configuration that cannot be read, or has an invalid line, is not used.
func (d *daemon) reload() {
	file := d.cfg.File
	cfg, problems, err := readConfig(file)
	if err == nil {
		err = invalidLines(problems)
	}
	if err != nil {
		d.keepConfig(file, err, problems)
		return
	}
	for _, p := range problems {
		fmt.Fprintf(os.Stderr, "famids: %s\n", p) // warnings: the lines are used
	}
	old := d.cfg
	d.cfg = cfg
	ch := compareConfigs(old, cfg)
	for _, p := range ch.removed {
		d.w.disarm(p)
	}
	// Forget what no entry reports on any more; record what is newly
	// reported on, as it is now, once its entry is armed.
	d.base.forget(func(p string) bool { return len(cfg.owners(p)) > 0 })
	d.bursts.drop(func(p string) bool { return len(cfg.owners(p)) > 0 })
	d.route.unfollowAll(func(e *entry) bool {
		if e.in == nil {
			return cfg.lookup(e.owner) != nil
		}
		t := cfg.trees[e.owner]
		if t != nil {
			e.in = t // its important names, as the tree now gives them
		}
		return t != nil
	})
	for _, p := range d.trouble.unwatchedEntries() {
		if d.route.entryFor(p) == nil {
			d.trouble.watchFailed(p) // no longer watched
		}
	}
	isNew := func(p string) bool { return len(old.owners(p)) == 0 }
	d.armEntries(ch.added, true, func() {
		d.by.sayUnmarked()
		d.scans.start(&scan{kind: "reload", fresh: isNew, only: isNew})
	})
	d.retryWatches()
	d.regrowTrees(ch.added)
	fmt.Fprintf(os.Stderr, "famids: SIGHUP: reloaded %s: %s\n", quoteIfNeeded(file), ch.counts())
	d.out.notice(ch.notice(cfg))
	d.checkConfigSecurity()
	d.base.entriesChanged()
	d.mem.fit(time.Now(), true)
}

// keepConfig says why the configuration in file is not reloaded, and that
// the one in use is kept.
func (d *daemon) keepConfig(file string, err error, problems []problem) {
	invalid := invalidOf(problems)
	msg := quoteIfNeeded(err.Error())
	fmt.Fprintf(os.Stderr, "famids: SIGHUP: not reloading %s, keeping the configuration in use: %s\n", quoteIfNeeded(file), msg)
	for _, p := range invalid {
		fmt.Fprintf(os.Stderr, "famids: %s\n", p)
	}
	d.notice(fmt.Sprintf("configuration %s not reloaded: %s; the one in use is kept", quoteIfNeeded(file), msg), invalid...)
}

// suspend is SIGUSR1: reports stop, for a prelink run or a package update,
// until SIGUSR2 or -max-suspend. What is pending is reported first. A
// second SIGUSR1 does not make the suspension longer.
func (d *daemon) suspend() {
	if d.susp.suspended() {
		fmt.Fprintln(os.Stderr, "famids: SIGUSR1: reporting is suspended already")
		d.out.notice(d.susp.stillNotice())
		return
	}
	d.flush(time.Time{})
	d.susp.begin(time.Now())
	fmt.Fprintf(os.Stderr, "famids: SIGUSR1: reporting suspended until SIGUSR2, for %v at most\n", *maxSuspend)
	d.notice(fmt.Sprintf("reporting suspended (SIGUSR1) until SIGUSR2, for %v at most", *maxSuspend),
		"Events are counted, not reported. On resume, famids sends one notice listing every watched path that differs from what it recorded before.")
}

// resume ends a suspension: the events queued are taken in, every entry
// is armed again (package managers replace files by rename), and one
// notice lists every watched path that differs from its record, which
// then records it as it is. No action runs. Events after the resume are
// reported as ever.
func (d *daemon) resume(how string) {
	if !d.susp.suspended() {
		fmt.Fprintf(os.Stderr, "famids: resume %s: reporting was not suspended\n", how)
		d.notice(fmt.Sprintf("resume %s, but reporting was not suspended", how))
		return
	}
	d.catchUp()
	was := d.susp.finish()
	d.armEntries(d.cfg.Entries, false, func() {
		d.scans.start(&scan{kind: "resume", trust: true, then: func(s *scan) {
			n, changed := was.notice(how, s.diffs)
			fmt.Fprintf(os.Stderr, "famids: reporting resumed %s; %d path(s) changed while suspended\n", how, len(s.diffs))
			d.out.notice(n)
			for _, line := range changed {
				d.syslog("changed while suspended: " + line)
			}
		}})
	})
}

// readMountTable hands out the job that reads the mount table, and tells
// of what changed on or above a watched path since it was last read.
func (d *daemon) readMountTable() {
	if !d.mounts.startRead() {
		return
	}
	var now map[int]mountPoint
	var err error
	d.hand(&job{path: "/proc/self/mountinfo",
		work: func(context.Context, *job) { now, err = readMounts() },
		done: func() {
			again := d.mounts.readDone()
			if err == nil {
				diff := d.mounts.update(now, d.onWatched)
				for _, m := range diff.went {
					d.base.uncover(m.id) // what it covered is back
				}
				for _, m := range diff.came {
					d.base.cover(m.path, m.id)
				}
				d.mountsChanged(diff.lines)
			}
			if again {
				d.readMountTable()
			}
		}})
}

// mountsChanged tells in a notice of each mount and unmount on or above
// a watched path, lines.
func (d *daemon) mountsChanged(lines []string) {
	if len(lines) == 0 {
		return
	}
	summary := "a mount on a watched path: " + lines[0]
	if len(lines) > 1 {
		summary = fmt.Sprintf("%d mounts and unmounts on watched paths", len(lines))
	}
	d.trouble.noticeList(summary, []string{"What these paths name changed with the mount table. famids compares every watched path with its record; differences follow in reports with \"Found: " + foundAfterMount + "\"."}, lines)
}

// onWatched reports whether a mount at path changes what a watched path
// names: it is the path, a directory on its way, or an entry of a watched
// directory.
func (d *daemon) onWatched(path string) bool {
	for _, real := range d.w.reals() {
		if real.path == path || strings.HasPrefix(real.path, path+"/") || path == "/" ||
			real.dir && filepath.Dir(path) == real.path {
			return true
		}
	}
	return false
}

// notice sends famids's own news; past -max-mails a minute, it is folded
// into the minute's digest of notices.
func (d *daemon) notice(summary string, details ...string) {
	d.out.notice(notice{Summary: summary, Details: details})
}

// syslog logs one line with -syslog; it never waits for the system
// logger.
func (d *daemon) syslog(line string) { d.out.syslog(line) }

// retryWatches arms again every entry with a watch that could not be set,
// and, in a watched directory whose entries could not all be watched
// through their inodes, sets those that are missing. Once an entry's
// watches are all set, what it reports on is compared with its record:
// while it was not watched, no event could tell of a change.
func (d *daemon) retryWatches() {
	var back []string // entries watched in full now
	left := 0
	for _, p := range d.trouble.unwatchedEntries() {
		e := d.route.entryFor(p)
		if e == nil {
			d.trouble.watchFailed(p) // no longer an entry
			continue
		}
		left++
		d.arms.armThen(e, false, func() {
			if _, dir := d.w.kind(e.Path); dir {
				d.realias(e)
			}
			if d.trouble.watchedFully(e.Path) {
				back = append(back, e.Path)
			}
			if left--; left == 0 && len(back) > 0 {
				d.compareWatched(back)
			}
		})
	}
}

// compareWatched compares with their records the paths the entries listed
// report on, found "once watched".
func (d *daemon) compareWatched(entries []string) {
	in := func(p string) bool {
		return slices.Contains(entries, p) || slices.Contains(entries, filepath.Dir(p))
	}
	d.scans.start(&scan{kind: "watched", found: foundOnceWatched, trust: true, only: in})
}

// realias sets the aliases missing in the directory entry e.
func (d *daemon) realias(e *entry) {
	var errs []error
	own := make(map[string]bool) // names that are entries of their own
	cfg := d.cfg
	for _, o := range cfg.Entries {
		if filepath.Dir(o.Path) == e.Path {
			own[filepath.Base(o.Path)] = true
		}
	}
	// A reload may give a tree's directory its tree anew meanwhile: the
	// job matches names as e stands now.
	matches := e.matches
	if e.in != nil {
		matches = e.in.matches
	}
	d.hand(&job{path: e.Path,
		work: func(context.Context, *job) {
			names, _ := readDirNames(e.Path)
			for _, n := range names {
				if matches(n) && !d.w.aliased(e.Path, n) {
					_, more := d.w.follow(e.Path, n, own[n], cfg.treesAlone(e.Path, n))
					errs = append(errs, more...)
				}
			}
		},
		done: func() {
			if d.route.entryFor(e.Path) == e {
				d.trouble.watchFailed(e.Path, errs...)
			}
		}})
}
