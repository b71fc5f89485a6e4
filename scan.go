package main

// When famids cannot trust its events to have told it everything (at
// start-up, after the kernel's queue overflowed, after a mount change, at
// verification, at the end of a suspension) it compares every watched
// path with its record instead: a scan. A scan is jobs in the pool, like
// every look at the file system: the loop goes on meanwhile. A reload
// changes what is watched without a moment in which an unchanged path is
// not.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// How differences found by comparing are introduced in their reports.
const (
	foundAtStart    = "at start-up (differs from the record of the previous run)"
	foundAfterFlood = "after queue overflow"
	foundAfterMount = "after a mount change"
	foundAtVerify   = "at verification"
	// A path whose watch could not be set (out of inotify watches), once
	// it could be.
	foundOnceWatched = "once it could be watched"
)

// owners returns the entries that report on path: the entry of that path,
// and the watched directory holding it when the name is important.
func (c *config) owners(path string) []*entry {
	var es []*entry
	if e := c.lookup(path); e != nil {
		es = append(es, e)
	}
	if dir := filepath.Dir(path); dir != path {
		if e := c.lookup(dir); e != nil && e.matches(filepath.Base(path)) {
			es = append(es, e)
		}
	}
	return es
}

// entryPaths returns the paths of entries.
func entryPaths(entries []*entry) []string {
	paths := make([]string, len(entries))
	for i, e := range entries {
		paths[i] = e.Path
	}
	return paths
}

// An arming is an entry being armed by a job.
type arming struct {
	tell  bool     // an event asked for it: what the path became is observed
	warn  bool     // the entry is new: warn of what is odd about it
	again bool     // arm once more when it is done: a name on the way changed meanwhile
	then  []func() // run once it is armed
}

// arm hands out the job that arms e because an event said a name on its
// way changed: it sets e's watches as its path now resolves, and what the
// path became (created, deleted) is observed, unless events are held:
// then the comparison that ends the holding tells. One arm of an entry
// runs at a time; one asked for meanwhile follows it.
func (d *daemon) arm(e *entry) {
	d.armWith(e, arming{tell: !d.susp.holds()})
}

// armThen arms e and then runs then. What the path became is left to a
// comparison; with warn, what is odd about an entry new to famids is
// said, as its arm found the file system.
func (d *daemon) armThen(e *entry, warn bool, then func()) {
	a := arming{warn: warn}
	if then != nil {
		a.then = []func(){then}
	}
	d.armWith(e, a)
}

func (d *daemon) armWith(e *entry, ask arming) {
	if a := d.arming[e.Path]; a != nil {
		a.again = true
		a.tell = a.tell || ask.tell
		a.warn = a.warn || ask.warn
		a.then = append(a.then, ask.then...)
		return
	}
	a := ask
	d.armBatch([]*entry{e}, &a)
}

// armBatch hands out one job that arms entries, all with arming a:
// entries armed together look at each directory they share once. An arm
// asked for meanwhile of one of them has them all armed again.
func (d *daemon) armBatch(entries []*entry, a *arming) {
	for _, e := range entries {
		d.arming[e.Path] = a
	}
	became := make([]string, len(entries))
	errs := make([][]error, len(entries))
	d.hand(&job{path: entries[0].Path,
		work: func(context.Context, *job) {
			c := newWalkCache()
			if len(entries) == 1 {
				c = nil // one entry: nothing to share
			}
			for i, e := range entries {
				became[i], errs[i] = d.w.armWith(e.Path, c)
			}
		},
		done: func() {
			for i, e := range entries {
				d.armed(e, a, became[i], errs[i])
			}
		}})
}

// armed is the end of an arm of e.
func (d *daemon) armed(e *entry, a *arming, became string, errs []error) {
	if d.arming[e.Path] == a {
		delete(d.arming, e.Path)
	}
	if d.entryFor(e.Path) != e {
		d.w.disarm(e.Path) // removed by a reload meanwhile
	} else {
		d.trouble.watchFailed(e.Path, errs...)
		if a.warn {
			exists, dir := d.w.kind(e.Path)
			for _, w := range entryWarnings(d.cfg, e, exists, dir) {
				fmt.Fprintf(os.Stderr, "famids: %s\n", w)
			}
		}
		if became != "" && a.tell {
			d.observe(observation{path: e.Path, event: became, entry: e.reporter()})
			d.compareEntries(e) // another directory, or none: its entries too
		}
	}
	if a.again {
		// Once more, with what is still to be done.
		d.armWith(e, arming{tell: a.tell && became == "", then: a.then})
		return
	}
	for _, f := range a.then {
		f()
	}
}

// armBatchSize is how many entries one job arms at most.
const armBatchSize = 128

// armEntries arms entries, then runs then.
func (d *daemon) armEntries(entries []*entry, warn bool, then func()) {
	left := len(entries)
	if left == 0 {
		then()
		return
	}
	one := func() {
		if left--; left == 0 {
			if len(d.arming) == 0 {
				d.arming = make(map[string]*arming) // a map keeps the room it grew to
			}
			then()
		}
	}
	// One arming for a batch: its then runs once for each of them.
	shared := func() *arming { return &arming{warn: warn, then: []func(){one}} }
	var batch []*entry
	a := shared()
	for _, e := range entries {
		if d.arming[e.Path] != nil {
			d.armThen(e, warn, one) // joins the arm out
			continue
		}
		batch = append(batch, e)
		if len(batch) == armBatchSize {
			d.armBatch(batch, a)
			batch, a = nil, shared()
		}
	}
	if len(batch) > 0 {
		d.armBatch(batch, a)
	}
}

// A scan compares every watched path with its record.
type scan struct {
	kind  string            // start, overflow, mount, verify, resume, reload: one of each runs at a time
	found string            // the Found line of its reports; "" for a scan that reports nothing (resume, reload)
	trust bool              // a file whose stat is unchanged since its record is not read again
	fresh func(string) bool // paths recorded without a report, when they have no record
	only  func(string) bool // when set, the paths it looks at
	then  func(*scan)       // runs once every job is done

	diffs []difference // for a scan that reports nothing, what differs
	queue []string     // paths to record, not handed out yet
	out   int          // record jobs out
	left  int          // jobs still out
	again bool         // asked for again while it ran
	ended bool
}

// A difference is a watched path that is not as famids recorded it.
type difference struct {
	path          string
	event         string // create, delete or change
	before, after attrs
}

// startScan hands out the jobs of s: the entries' paths, every path there
// is a record of, and the important names found in each watched
// directory, recorded by jobs of scanBatchSize paths, a few at a time. A
// scan of a kind already running runs once more after it.
func (d *daemon) startScan(s *scan) {
	if running := d.scans[s.kind]; running != nil {
		running.again = true
		return
	}
	d.scans[s.kind] = s
	s.queue = d.base.paths()
	for _, e := range d.cfg.Entries {
		if !d.base.has(e.Path) {
			s.queue = append(s.queue, e.Path)
		}
		if _, dir := d.w.kind(e.Path); dir {
			d.listForScan(s, e)
		}
	}
	d.feedScan(s)
	d.scanStep(s)
}

// listForScan hands out the job that lists the directory entry e, whose
// important names s then looks at.
func (d *daemon) listForScan(s *scan, e *entry) {
	s.left++
	var names []string
	d.hand(&job{path: e.Path,
		work: func(context.Context, *job) { names, _ = readDirNames(e.Path) },
		done: func() {
			s.left--
			if d.cfg.lookup(e.Path) == e {
				slices.Sort(names)
				for _, n := range names {
					p := filepath.Join(e.Path, n)
					if e.matches(n) && !d.base.has(p) {
						s.queue = append(s.queue, p) // those with a record are in it already
					}
				}
				d.feedScan(s)
			}
			d.scanStep(s)
		}})
}

// scanBatchSize is how many paths one job of a scan records at most: a
// job costs more than a small file does. batchesOut is how many such jobs
// a scan has out at most: the rest of its paths wait in its queue, so
// that a scan of 10,000 paths does not hold 10,000 looks at once.
const (
	scanBatchSize = 32
	batchesOut    = 8
)

// feedScan hands out the next jobs of s, while it has fewer than
// batchesOut out. A path is left out when an event is in the course of
// being reported for it (that report tells what differs), or a job is out
// for it already.
func (d *daemon) feedScan(s *scan) {
	for s.out < batchesOut && len(s.queue) > 0 {
		var paths []string
		for len(paths) < scanBatchSize && len(s.queue) > 0 {
			p := s.queue[0]
			s.queue = s.queue[1:]
			if d.base.owns(p) || s.only != nil && !s.only(p) || !d.bursts.claim(p) {
				continue
			}
			paths = append(paths, p)
		}
		if len(paths) > 0 {
			d.handBatch(s, paths)
		}
	}
	if len(s.queue) == 0 {
		s.queue = nil
	}
}

// handBatch hands out the job that records paths for s, each watched
// through its inode first when it is an entry of a watched directory.
func (d *daemon) handBatch(s *scan, paths []string) {
	s.left++
	s.out++
	looks := make([]look, len(paths))
	for i, p := range paths {
		if a, ok := d.base.record(p); ok && s.trust {
			looks[i].prev = &a
		}
		looks[i].dir = d.aliasDir(p)
	}
	d.hand(&job{path: paths[0],
		work: func(ctx context.Context, j *job) {
			for i, p := range paths {
				looks[i].take(ctx, j, d, p)
			}
		},
		done: func() {
			s.left--
			s.out--
			for i, p := range paths {
				d.recordedBy(p, &looks[i])
				d.scanned(s, p, looks[i].after)
			}
			d.feedScan(s)
			d.scanStep(s)
		}})
}

// scanned takes in what a scan found of path.
func (d *daemon) scanned(s *scan, path string, after attrs) {
	if after.cut {
		return // famids is stopping
	}
	before, known := d.base.record(path)
	fresh := !known && s.fresh != nil && s.fresh(path)
	if b := d.bursts.gathering(path); b != nil {
		// An event came meanwhile: its report tells what differs. A
		// path without a record takes this one, and the event is
		// compared with it, as it may be in it already.
		if fresh {
			d.base.remember(path, after)
			b.told, b.events = false, nil
		}
		return
	}
	if after.busy && known {
		d.observe(observation{path: path, event: "change", weak: true}) // read again once the lease is broken
		return
	}
	if after.SHA256 == digestPending && knownDigest(before.SHA256) && sameStat(before, after) {
		// A large file hashed again: the record keeps its hash until the
		// new one is known, and a difference is reported then.
		found := s.found
		if found == "" {
			found = foundAtVerify
		}
		d.hashLater(path, after, before.SHA256, found)
		return
	}
	if after.SHA256 == digestPending {
		defer d.hashLater(path, after, "", "")
	}
	diff := differs(before, after)
	switch {
	case fresh, len(diff) == 0:
		d.base.remember(path, after)
	case s.found == "":
		s.diffs = append(s.diffs, difference{path, changeEvent(before, after), before, after})
		d.base.remember(path, after)
	default:
		b := &burst{path: path, told: true, events: []string{changeEvent(before, after)},
			entries: entryPaths(d.cfg.owners(path)), found: s.found, first: time.Now()}
		d.report(b, after)
	}
}

// changeEvent names the event a difference stands for.
func changeEvent(before, after attrs) string {
	switch {
	case !before.Exists:
		return "create"
	case !after.Exists:
		return "delete"
	}
	return "change"
}

// scanStep ends s once every job is done, and starts it again when it was
// asked for meanwhile.
func (d *daemon) scanStep(s *scan) {
	if s.left > 0 || len(s.queue) > 0 || s.ended {
		return
	}
	s.ended = true
	delete(d.scans, s.kind)
	d.bursts.compact()
	if s.then != nil {
		s.then(s)
	}
	if s.again {
		d.startScan(&scan{kind: s.kind, found: s.found, trust: s.trust, fresh: s.fresh, only: s.only, then: s.then})
	}
}

// fullHashEvery is how often a verification hashes every file, whatever
// its stat says: a root intruder can set the clock back to a file's ctime
// before changing it, and put its mtime back.
const fullHashEvery = 24 * time.Hour

// verify is -verify: it tries again the watches that could not be set,
// and compares every watched path with its record, to find what sends no
// event (chattr, a write through a memory mapping made after the file was
// closed, a write to the disk underneath the file system). A file is
// hashed again when its stat changed, and every file once a day.
func (d *daemon) verify() {
	d.retryWatches()
	if d.susp.holds() || !d.ready {
		return // the resume, or the start, compares
	}
	full := time.Since(d.hashedAll) >= fullHashEvery
	if full {
		d.hashedAll = time.Now()
	}
	d.startScan(&scan{kind: "verify", found: foundAtVerify, trust: !full})
}

// remount acts on a change of the mount table: a mount on or above a
// watched path changes what it names without an event on it. Every entry
// is armed again, then every path compared with its record.
func (d *daemon) remount() {
	d.armEntries(d.cfg.Entries, false, func() {
		if !d.susp.holds() && d.ready {
			d.startScan(&scan{kind: "mount", found: foundAfterMount, trust: true})
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
		d.startScan(&scan{kind: "overflow", found: foundAfterFlood, trust: true})
	})
}

// reload is SIGHUP: it reads the configuration again and watches what it
// now lists. New watches are set before old ones go, and the entries in
// both are not touched, so nothing that stays watched is ever unwatched. A
// configuration that cannot be read, or has an invalid line, is not used.
func (d *daemon) reload() {
	file := d.cfg.File
	cfg, problems, err := readConfig(file)
	var invalid []string
	for _, p := range problems {
		if !p.Warning {
			invalid = append(invalid, p.String())
		}
	}
	if err == nil && len(invalid) > 0 {
		err = fmt.Errorf("%d invalid line(s)", len(invalid))
	}
	if err != nil {
		msg := quoteIfNeeded(err.Error())
		fmt.Fprintf(os.Stderr, "famids: SIGHUP: not reloading %s, keeping the configuration in use: %s\n", quoteIfNeeded(file), msg)
		for _, p := range invalid {
			fmt.Fprintf(os.Stderr, "famids: %s\n", p)
		}
		d.notice(fmt.Sprintf("configuration %s not reloaded: %s; the one in use is kept", quoteIfNeeded(file), msg), invalid...)
		return
	}
	for _, p := range problems {
		fmt.Fprintf(os.Stderr, "famids: %s\n", p) // warnings: the lines are used
	}
	old := d.cfg
	d.cfg = cfg
	var added []*entry
	var removed, changed []string
	for _, e := range cfg.Entries {
		was := old.lookup(e.Path)
		switch {
		case was == nil:
			added = append(added, e)
		case was.Action != e.Action || !slices.Equal(was.Names, e.Names):
			changed = append(changed, fmt.Sprintf("%s: action %q, important names %q", quoteIfNeeded(e.Path), e.Action, strings.Join(e.Names, " | ")))
		}
	}
	for _, e := range old.Entries {
		if cfg.lookup(e.Path) == nil {
			removed = append(removed, e.Path)
			d.w.disarm(e.Path)
		}
	}
	// Forget what no entry reports on any more; record what is newly
	// reported on, as it is now, once its entry is armed.
	d.base.forget(func(p string) bool { return len(cfg.owners(p)) > 0 })
	d.bursts.drop(func(p string) bool { return len(cfg.owners(p)) > 0 })
	for p, e := range d.derived {
		if cfg.lookup(e.owner) == nil {
			d.unfollow(p)
		}
	}
	for _, p := range d.trouble.unwatchedEntries() {
		if d.entryFor(p) == nil {
			d.trouble.watchFailed(p) // no longer watched
		}
	}
	isNew := func(p string) bool { return len(old.owners(p)) == 0 }
	d.armEntries(added, true, func() {
		d.sayUnmarked()
		d.startScan(&scan{kind: "reload", fresh: isNew, only: isNew})
	})
	d.retryWatches()

	details := []string{fmt.Sprintf("%d entries are watched.", len(cfg.Entries))}
	for _, e := range added {
		details = append(details, "Added: "+quoteIfNeeded(e.Path))
	}
	for _, p := range removed {
		details = append(details, "Removed: "+quoteIfNeeded(p))
	}
	for _, c := range changed {
		details = append(details, "Changed: "+c)
	}
	fmt.Fprintf(os.Stderr, "famids: SIGHUP: reloaded %s: %d added, %d removed, %d changed\n", quoteIfNeeded(file), len(added), len(removed), len(changed))
	d.notice(fmt.Sprintf("configuration reloaded from %s: %d added, %d removed, %d changed", quoteIfNeeded(file), len(added), len(removed), len(changed)), details...)
	d.checkConfigSecurity()
	d.base.changed() // the entries changed
	fitMemoryLimit()
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
		d.startScan(&scan{kind: "resume", trust: true, then: func(s *scan) {
			n, changed := was.notice(how, s.diffs)
			fmt.Fprintf(os.Stderr, "famids: reporting resumed %s; %d path(s) changed while suspended\n", how, len(s.diffs))
			d.out.notice(n)
			for _, line := range changed {
				d.syslog("changed while suspended: " + line)
			}
		}})
	})
}
