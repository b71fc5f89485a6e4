package main

// From bursts to reports: a burst that settled has its path recorded by a
// job, and is reported, in the order bursts settled, with what differs
// from the path's record and who made the change.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// handle turns one batch of events into observations, and observes them.
// The same observation twice in a batch (a write seen through a file and
// through its directory) counts once. After a queue overflow, every path
// is compared with its record: the events that would have told are lost.
func (d *daemon) handle(evs []event) {
	obs, overflowed := d.route.route(evs)
	var seen map[observation]bool
	if len(obs) > 1 {
		seen = make(map[observation]bool, len(obs))
	}
	for _, o := range obs {
		if !seen[o] && !d.base.owns(o.path) {
			if seen != nil {
				seen[o] = true
			}
			d.observe(o)
		}
	}
	if overflowed {
		d.overflow()
	}
}

// observe adds an observation to its path's burst; while events are held,
// it only counts it.
func (d *daemon) observe(o observation) {
	if d.susp.holds() {
		d.susp.count(o.weak)
		return
	}
	now := time.Now()
	if b, began := d.bursts.add(o, now); began {
		b.by, b.trace = d.by.takeRecent(o.path, now), d.trace.burst()
	}
}

// flush hands out the record of every burst whose deadline has passed by
// now; a zero now, every burst.
func (d *daemon) flush(now time.Time) {
	for _, b := range d.bursts.due(now) {
		d.recordBurst(b)
	}
}

// compareEntries has every important entry of the directory entry e
// compared with its record, once its path names another directory (made,
// replaced by a rename, or gone): entries with the same names as before
// may be other files, and no event on them tells. Names without a record
// are reported as created, those with one when they differ.
func (d *daemon) compareEntries(e *entry) {
	var names, dirs []string
	tree := d.route.inTree(e)
	d.hand(&job{path: e.Path,
		work: func(context.Context, *job) {
			if tree {
				names, dirs = readDirKinds(e.Path)
			} else {
				names, _ = readDirNames(e.Path)
			}
		},
		done: func() {
			if d.route.entryFor(e.Path) != e || !e.lists() {
				return
			}
			for _, n := range dirs {
				// A directory made before the watch on e was set: no
				// event told, and its name may not be one the tree
				// reports, yet what it holds is the tree's.
				d.treeDirFound(filepath.Join(e.Path, n))
			}
			seen := make(map[string]bool, len(names))
			for _, n := range names {
				p := filepath.Join(e.Path, n)
				for _, o := range d.cfg.childOwners(e.Path, n) {
					seen[p] = true
					d.observe(observation{path: p, event: "create", entry: o.Path, weak: d.base.has(p)})
				}
			}
			for _, p := range d.base.entriesOf(e.Path) {
				if !seen[p] {
					for _, o := range d.cfg.owners(p) {
						d.observe(observation{path: p, event: "delete", entry: o.Path, weak: true})
					}
				}
			}
		}})
}

// recordBurst hands out the job that records b's path, and, for an entry
// of a watched directory, watches it through its inode first, so that any
// change after the record sends an event.
func (d *daemon) recordBurst(b *burst) {
	o := d.bursts.recording(b, time.Now())
	o.l = d.route.lookAt(b.path)
	if b.trace != nil {
		b.trace.handed = time.Now()
	}
	d.hand(&job{path: b.path,
		work: func(ctx context.Context, j *job) {
			d.look(ctx, j, &o.l, b.path)
			if b.trace != nil {
				b.trace.recording, b.trace.recorded = time.Unix(0, j.started.Load()), time.Now()
			}
		},
		done: func() {
			d.bursts.finished(o)
			d.reportInOrder()
		}})
}

// reportInOrder reports the bursts whose records are done, in the order
// they settled (see bursts.reportable).
func (d *daemon) reportInOrder() {
	for _, o := range d.bursts.reportable(time.Now()) {
		d.recordedBy(o.b.path, &o.l)
		d.recorded(o.b, o.l.after)
	}
}

// A look is a job's record of one path: for an entry of a watched
// directory, how it is watched through its inode first, so that any
// change after the record sends an event.
type look struct {
	prev  *attrs // the record to trust while stat says it holds
	dir   string // the watched directory it is an entry of, or ""
	own   bool   // it is an entry of the configuration too, armed as its own
	link  bool   // the entry is a symbolic link, watched as a path of its own
	tree  bool   // an entry of trees alone: a symbolic link is recorded as itself, never followed
	errs  []error
	after attrs
}

// look watches path as l says, then records it; it runs in a job.
func (d *daemon) look(ctx context.Context, j *job, l *look, path string) {
	if l.dir != "" {
		l.link, l.errs = d.w.follow(l.dir, filepath.Base(path), l.own, l.tree)
	}
	l.after = d.rec.recordJob(ctx, j, path, l.prev, d.w.realOf(path), !l.tree)
}

// recordedBy ends a job on path: another may be handed out for it.
func (d *daemon) recordedBy(path string, l *look) {
	d.bursts.recorded(path)
	if l.dir != "" {
		if len(l.errs) > 0 {
			// One entry watched says nothing of the others: a
			// directory is watched fully again only once realias has
			// set every watch it lacks.
			d.trouble.watchFailed(l.dir, l.errs...)
		}
		d.route.followed(path, l.dir, l.link)
	}
	if l.after.Type == "dir" && l.after.Exists {
		d.treeDirFound(path)
	}
}

// recorded reports b once its path is recorded: always when an event said
// the path changed, else only when it differs from its record.
func (d *daemon) recorded(b *burst, after attrs) {
	now := time.Now()
	if after.cut {
		return // famids is stopping: the path keeps its record, and is compared at the next start
	}
	if after.busy && !d.stopping && now.Before(b.first.Add(d.leaseWait)) {
		// Another process holds a lease on the file, which the kernel
		// breaks within lease-break-time: read it again then, rather
		// than report its content as unknown.
		d.bursts.retry(b, now.Add(leaseRetry))
		return
	}
	before, _ := d.base.record(b.path)
	if placeholder(b, before, after) {
		return
	}
	if b.found == "" && d.mounts.changedOn(b.path, b.first.Add(-mountSettle)) {
		// Events a mount or an unmount sent (an unmount brings back what
		// was under it): no process made them. The path is compared, as
		// after any mount change.
		b.told, b.found = false, foundAfterMount
	}
	if b.told && before.compared && b.found == "" && len(differs(before, after)) == 0 {
		// A comparison told of this change already: the events, read
		// after it (queued past an overflow), have nothing to add.
		d.base.remember(b.path, after)
		return
	}
	if !b.told {
		diff := eventDiffers(before, after)
		if b.found != "" {
			diff = differs(before, after) // what its report says differs
		}
		if len(diff) == 0 || stillUnreadable(before, after, diff) {
			if after.SHA256 == digestPending && knownDigest(before.SHA256) {
				// Content written with its times put back: the record
				// keeps its hash until the new one is known.
				d.hashLater(b.path, after, before.SHA256, b.hashed())
				return
			}
			d.base.remember(b.path, after)
			return
		}
		b.events = []string{changeEvent(before, after)}
	}
	d.report(b, after)
	d.hashLater(b.path, after, knownOrNone(before.SHA256), b.hashed())
}

// placeholder reports whether b is the events of a file made with
// O_TMPFILE, written before it has a name (open(2)): the kernel names it
// "#INODE" in its directory's events, and no such path ever exists. A
// real file of that name exists when recorded, or had a record, or came
// with an event that made or removed it.
func placeholder(b *burst, before, after attrs) bool {
	name := filepath.Base(b.path)
	if before.Exists || after.Exists || len(name) < 2 || name[0] != '#' || strings.Trim(name[1:], "0123456789") != "" {
		return false
	}
	for _, ev := range b.events {
		if ev != "change" {
			return false
		}
	}
	return true
}

// hashed returns the report of b's path once its content, pending in b's
// report, is hashed and differs from what it was before the change:
// the same entries and processes, found once hashed.
func (b *burst) hashed() *burst {
	return &burst{path: b.path, told: true, events: []string{"change"}, entries: b.entries, found: foundOnceHashed, by: b.by, first: b.first}
}

// knownOrNone returns sha when it is a known digest, else "".
func knownOrNone(sha string) string {
	if knownDigest(sha) {
		return sha
	}
	return ""
}

// hashLater hands the hash of a file over bigFile, recorded as rec with
// its content pending, to the slow lane. Once hashed, if the path still
// is the file rec stat'ed: with expect, the hash the path had before, a
// hash that differs is reported as tell, with that hash as the record
// before; else the record takes the hash.
func (d *daemon) hashLater(path string, rec attrs, expect string, tell *burst) {
	if rec.SHA256 != digestPending {
		if knownDigest(rec.SHA256) {
			d.bursts.hashKnown(path)
		}
		return
	}
	start, ask := d.bursts.askHash(path, hashAsk{rec, expect, tell})
	if !start {
		return
	}
	var sha string
	var ok bool
	d.jobs.handSlow(&job{path: path,
		work: func(ctx context.Context, j *job) { sha, ok = d.rec.hashFile(ctx, j, path, ask.rec) },
		done: func() {
			if next := d.bursts.hashDone(path); next != nil {
				d.hashLater(path, next.rec, next.expect, next.tell) // recorded again meanwhile
				return
			}
			cur, known := d.base.record(path)
			if !ok || !known || !sameStat(cur, ask.rec) || !d.bursts.quiet(path) {
				return // it changed meanwhile: another record tells, with what was expected
			}
			d.bursts.hashKnown(path)
			now := cur
			now.SHA256 = sha
			if ask.expect != "" && sha != ask.expect {
				if cur.SHA256 == digestPending {
					cur.SHA256 = ask.expect // what the content was, for the report's Before
					d.base.remember(path, cur)
				}
				d.report(ask.tell, now)
				return
			}
			if cur.SHA256 == digestPending {
				d.base.remember(path, now)
			}
		}})
}

// report mails the report of a burst, records the path's attributes now,
// after, and starts the actions of the entries concerned; past
// -max-mails a minute, the report and its actions are folded into the
// minute's digest.
func (d *daemon) report(b *burst, after attrs) {
	r := &report{Path: b.path, Events: b.events, Host: d.host, Time: b.first, Found: b.found, Before: d.base.reported(b.path, after), After: after,
		By: b.by.processes(), ByMore: b.by.more()}
	if !d.ready && b.found == "" && r.Events[0] == "create" && r.Before.Exists && r.Before.Dev == after.Dev && r.Before.Inode == after.Inode && r.Before.Ctime.Equal(after.Ctime) {
		// Made while the start-up compared, which recorded the new file
		// before its event was read: that record is of the file as
		// made, not of what was there before it, which was nothing.
		r.Before = attrs{}
	}
	if i := slices.Index(r.Events, "create"); i > 0 && !r.Before.Exists && !slices.Contains(r.Events[:i], "delete") {
		// A file made in a directory of a tree just made: the write was
		// read from the directory's new watch before the comparison of
		// what it held told of its creation.
		r.Events = append([]string{"create"}, slices.Delete(slices.Clone(r.Events), i, i+1)...)
	}
	// Events came, fanotify's among them, yet none named a process: say
	// so, rather than let the report pass for one found by comparison.
	r.ByUnknown = d.w.fan != nil && b.found == "" && len(r.By) == 0
	if r.ByUnknown {
		r.Unmarked = d.w.unmarkedWhy(b.path)
	}
	var actions []string
	if d.actionsOK {
		for _, p := range b.entries {
			if e := d.cfg.lookup(p); e != nil && e.Action != "" && !slices.Contains(actions, e.Action) {
				actions = append(actions, e.Action)
			}
		}
	}
	d.out.report(r, b.entries, actions)
	d.trace.report(b)
}

// scanned takes in what a scan found of path, recorded as l says.
func (d *daemon) scanned(s *scan, path string, l *look) {
	d.recordedBy(path, l)
	after := l.after
	if after.cut {
		return // famids is stopping
	}
	if s.one != "" {
		// A file held open for writing, compared while its writer may be
		// writing: the kernel queued the event of a write(2) before the
		// write returned, so before the record could read it. Taken in
		// first, it is reported as the event it is, not as a write that
		// sent none.
		d.drain()
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
		d.hashLater(path, after, before.SHA256, s.hashed(path, d.cfg.owners(path)))
		return
	}
	if after.SHA256 == digestPending {
		defer d.hashLater(path, after, knownOrNone(before.SHA256), s.hashed(path, d.cfg.owners(path)))
	}
	diff := differs(before, after)
	switch {
	case fresh, len(diff) == 0, stillUnreadable(before, after, diff):
		d.base.remember(path, after)
	case s.found == "":
		s.diffs = append(s.diffs, difference{path, changeEvent(before, after), before, after})
		after.compared = true
		d.base.remember(path, after)
	default:
		b := &burst{path: path, told: true, events: []string{changeEvent(before, after)},
			entries: entryPaths(d.cfg.owners(path)), found: s.found, first: time.Now()}
		after.compared = true
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

// drain handles the events already queued, so that a change made just
// before famids was told to stop is still reported.
func (d *daemon) drain() {
	evs, err := d.w.queued()
	d.handle(evs)
	if err != nil {
		d.trouble.warnOnce(err.Error()) // the loop, if it goes on, meets it again
	}
}

// catchUp takes in every event queued until now without reporting it, so
// that a comparison that follows finds what they would tell, once.
func (d *daemon) catchUp() {
	defer d.susp.hold()()
	d.drain()
}

// arm hands out the job that arms e because an event said a name on its
// way changed: it sets e's watches as its path now resolves, and what the
// path became (created, deleted) is observed, unless events are held:
// then the comparison that ends the holding tells.
func (d *daemon) arm(e *entry) {
	d.arms.arm(e, arming{tell: !d.susp.holds()})
}

// armed takes in an arm of e done, as a asked: the watches that could not
// be set, what is odd about an entry new to famids, and what its path
// became.
func (d *daemon) armed(e *entry, a *arming, became string, errs []error) {
	if d.route.entryFor(e.Path) != e {
		d.w.disarm(e.Path) // removed by a reload meanwhile
		return
	}
	d.trouble.watchFailed(e.Path, errs...)
	if a.warn {
		exists, dir := d.w.kind(e.Path)
		for _, w := range entryWarnings(d.cfg, e, exists, dir) {
			fmt.Fprintf(os.Stderr, "famids: %s\n", w)
		}
	}
	if became != "" && a.tell {
		for _, o := range d.route.self(e, became, false) {
			d.observe(o)
		}
		d.compareEntries(e) // another directory, or none: its entries too
		if exists, _ := d.w.kind(e.Path); exists && d.route.inTree(e) {
			d.growFrom(e.Path, growTell, nil) // a tree's directory replaced: what is below it too
		}
	}
	if exists, _ := d.w.kind(e.Path); !exists && e.in != nil {
		// A directory of a tree that went: so did what it held.
		d.route.unfollow(e.Path)
		if a.tell {
			d.compareGone(e.Path)
		}
	}
}

// opened takes in watched paths another process opened: a regular file
// among them is asked whether someone holds it open for writing.
func (d *daemon) opened(paths []string) {
	now := time.Now()
	for _, p := range paths {
		if a, ok := d.base.record(p); ok && a.Type == "file" && d.held.opened(p, now) {
			d.probeWriters(p)
		}
	}
}

// probeWriters hands out the job that asks whether someone holds path
// open for writing.
func (d *daemon) probeWriters(path string) {
	real := d.w.realOf(path)
	if real == "" {
		real = path
	}
	var writer bool
	var err error
	var loops []string
	d.hand(&job{path: path,
		work: func(context.Context, *job) {
			// Looked for at each probe that finds a writer: losetup's
			// open is seen before the device it sets up names its file.
			if writer, err = heldForWriting(real); writer {
				loops = loopsOn(real)
			}
		},
		done: func() {
			if err != nil {
				d.trouble.warnOnce(err.Error())
			}
			d.held.probed(path, writer, time.Now())
			for _, dev := range loops {
				if d.held.newLoop(dev, path) {
					d.out.notice(notice{Summary: "a loop device is set up on a watched file: " + dev + " on " + quoteIfNeeded(path),
						Details: []string{"Writes through the device send no event. While it stays attached, famids compares the file with its record every second; the device can be detached with losetup -d " + dev + "."}})
				}
			}
		}})
}

// followWriters compares with their records the files held open for
// writing when last asked, and asks again.
func (d *daemon) followWriters(now time.Time) {
	compare, probe := d.held.due(now)
	for _, p := range compare {
		if len(d.cfg.owners(p)) == 0 {
			d.held.forget(p) // no longer watched
			continue
		}
		if d.bursts.contentPending(p) {
			continue // its hash, once known, is reported as the events that made it pending say
		}
		d.scans.start(&scan{kind: "held " + p, found: foundWhileHeld, trust: true, one: p})
	}
	for _, p := range probe {
		d.probeWriters(p)
	}
}
