package main

// From events to reports: each event is routed to the entries that watch
// it and becomes an observation of a path; observations of one path fold
// into a burst until it settles; then the path is recorded, by a job, and
// reported with what differs from its record.

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// A burst is the events seen on one path until it settles.
type burst struct {
	path     string
	told     bool        // an event said the path changed; else it is compared, and reported only if it differs
	events   []string    // FAM event names, each once, in the order seen
	entries  []string    // the configuration entries whose actions run
	found    string      // how a difference was found when not from an event
	by       attribution // who made its changes
	first    time.Time
	settled  time.Time // when it settles
	deadline time.Time // settled, or zero while it waits for a job on its path
	trace    *stages   // nil but in BenchmarkReportLatency
}

// An observation is one event on one path, on behalf of an entry. A weak
// one (a file opened for writing was closed, an inode's metadata changed)
// may change nothing the path's record holds: its path is compared, and
// reported only when it differs.
type observation struct {
	path  string
	event string
	entry string
	weak  bool
}

// handle turns one batch of events into observations. The same observation
// twice in a batch (a write seen through a file and through its directory)
// counts once. After a queue overflow, every path is compared with its
// record: the events that would have told are lost.
func (d *daemon) handle(evs []event) {
	var obs []observation
	overflowed := false
	hits, ends := d.w.routeAll(evs, d.hits[:0], d.ends[:0])
	start := 0
	var last *entry // the entry of the hit before: in a storm, the same
	for i, ev := range evs {
		if ev.mask&unix.IN_Q_OVERFLOW != 0 {
			overflowed = true
		}
		for _, h := range hits[start:ends[i]] {
			e := last
			if e == nil || e.Path != h.path {
				e = d.entryFor(h.path)
			}
			if e != nil {
				last = e
				obs = append(obs, d.interpret(e, h)...)
			}
		}
		start = ends[i]
	}
	d.hits, d.ends = hits, ends
	var seen map[observation]bool
	if len(obs) > 1 {
		seen = make(map[observation]bool, len(obs))
	}
	for _, o := range obs {
		if !seen[o] && !d.state.owns(o.path) {
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

// Masks that tell how a directory entry changed.
const (
	nsMask   = unix.IN_CREATE | unix.IN_DELETE | unix.IN_MOVED_FROM | unix.IN_MOVED_TO
	goneMask = unix.IN_DELETE_SELF | unix.IN_MOVE_SELF | unix.IN_IGNORED | unix.IN_UNMOUNT
)

// interpret maps an event, routed to entry e, to what it says happened to
// which path, and arms e again when a name on its way changed.
func (d *daemon) interpret(e *entry, h hit) []observation {
	named := h.name != ""
	switch h.role {
	case roleLeaf:
		if named && h.mask&nsMask != 0 {
			d.arm(e)
			return []observation{{path: e.Path, event: famEvent(h.mask), entry: e.reporter()}}
		}
		if named && h.mask&unix.IN_ATTRIB != 0 {
			// The name's own inode: a symbolic link's owner, say.
			return []observation{{path: e.Path, event: "change", entry: e.reporter(), weak: true}}
		}
		if h.mask&goneMask != 0 {
			return d.rearm(e)
		}
	case roleLookup:
		if (named && h.mask&nsMask != 0) || h.mask&goneMask != 0 {
			return d.rearm(e)
		}
	case roleSelf:
		switch {
		case h.mask&unix.IN_MODIFY != 0:
			return []observation{{path: e.Path, event: "change", entry: e.reporter()}}
		case h.mask&(unix.IN_ATTRIB|unix.IN_CLOSE_WRITE) != 0:
			// Unlinking or renaming over a file changes its link count
			// before the directory says the name went: the path is
			// compared, not reported on the word of this event.
			return []observation{{path: e.Path, event: "change", entry: e.reporter(), weak: true}}
		case h.mask&goneMask != 0:
			return d.rearm(e)
		}
	case roleAlias:
		if h.name == "" && e.matches(h.sub.name) && h.mask&contentMask != 0 {
			p := filepath.Join(e.Path, h.sub.name)
			return []observation{{path: p, event: "change", entry: e.Path, weak: h.mask&unix.IN_MODIFY == 0}}
		}
	case roleEntries:
		switch {
		case named:
			if !e.matches(h.name) {
				return nil
			}
			p := filepath.Join(e.Path, h.name)
			if h.mask&(unix.IN_DELETE|unix.IN_MOVED_FROM) != 0 {
				d.w.unalias(e.Path, h.name) // the file may live on under another name
				d.unfollow(p)
			}
			return []observation{{path: p, event: famEvent(h.mask), entry: e.Path, weak: h.mask&contentMask == unix.IN_CLOSE_WRITE}}
		case h.mask&unix.IN_ATTRIB != 0:
			return []observation{{path: e.Path, event: "change", entry: e.reporter()}}
		case h.mask&unix.IN_CLOSE_WRITE != 0:
			return nil // a directory is never written
		case h.mask&goneMask != 0:
			return d.rearm(e)
		}
	}
	return nil
}

// rearm arms e again because a name on the way to its path changed, and
// has the path compared with its record: what it resolves to may have
// changed, and by the time the arm looks, the name may be back, another
// way (a directory swapped for a link to a copy of it).
func (d *daemon) rearm(e *entry) []observation {
	d.arm(e)
	return []observation{{path: e.Path, event: "change", entry: e.reporter(), weak: true}}
}

// famEvent names an inotify event as FAM did.
func famEvent(mask uint32) string {
	switch {
	case mask&(unix.IN_CREATE|unix.IN_MOVED_TO) != 0:
		return "create"
	case mask&unix.IN_DELETE != 0:
		return "delete"
	case mask&unix.IN_MOVED_FROM != 0:
		return "move"
	}
	return "change"
}

// maxBurst bounds how long a path that never goes quiet waits for its
// report, in units of -settle.
const maxBurst = 20

// weakSettle is the least a burst of weak events waits before its path is
// compared: the close of a file seldom comes alone, and the write before
// it has been reported already.
const weakSettle = 100 * time.Millisecond

// observe adds an observation to its path's burst; while events are held,
// it only counts it.
func (d *daemon) observe(o observation) {
	if d.holding {
		if !o.weak {
			d.held++
		}
		return
	}
	now := time.Now()
	b := d.pending[o.path]
	if b == nil {
		b = &burst{path: o.path, first: now, by: d.takeRecent(o.path, now), trace: d.traceBurst()}
		d.pending[o.path] = b
	}
	if !o.weak {
		b.told = true
		b.events = appendNew(b.events, o.event)
	}
	b.entries = appendNew(b.entries, o.entry)
	wait := *settle
	if !b.told {
		wait = max(wait, weakSettle)
	}
	b.settled = now.Add(wait)
	if limit := b.first.Add(maxBurst * wait); b.settled.After(limit) {
		b.settled = limit
	}
	if !b.deadline.IsZero() || !d.busy[o.path] {
		b.deadline = b.settled
	}
}

// compareEntries has every important entry of the directory entry e
// compared with its record, once its path names another directory (made,
// replaced by a rename, or gone): entries with the same names as before
// may be other files, and no event on them tells. Names without a record
// are reported as created, those with one when they differ.
func (d *daemon) compareEntries(e *entry) {
	var names []string
	d.hand(&job{path: e.Path,
		work: func(context.Context, *job) { names, _ = readDirNames(e.Path) },
		done: func() {
			if d.cfg.lookup(e.Path) != e {
				return
			}
			seen := make(map[string]bool, len(names))
			for _, n := range names {
				if !e.matches(n) {
					continue
				}
				p := filepath.Join(e.Path, n)
				seen[p] = true
				_, known := d.record[p]
				d.observe(observation{path: p, event: "create", entry: e.Path, weak: known})
			}
			prefix := e.Path + "/"
			for p := range d.record {
				if !seen[p] && strings.HasPrefix(p, prefix) && !strings.Contains(p[len(prefix):], "/") {
					d.observe(observation{path: p, event: "delete", entry: e.Path, weak: true})
				}
			}
		}})
}

// nextDeadline returns the earliest burst deadline, or the zero time.
func (d *daemon) nextDeadline() time.Time {
	var next time.Time
	for _, b := range d.pending {
		next = earliest(next, b.deadline)
	}
	return next
}

// flush hands out the record of every burst whose deadline has passed by
// now; a zero now, every burst. A burst whose path a job is recording
// already waits for it: records of one path are taken one at a time, in
// order.
func (d *daemon) flush(now time.Time) {
	var due []*burst
	for p, b := range d.pending {
		if d.busy[p] {
			b.deadline = time.Time{} // recordedBy makes it due again
			continue
		}
		if now.IsZero() || !b.deadline.IsZero() && !b.deadline.After(now) {
			due = append(due, b)
			delete(d.pending, p)
		}
	}
	if len(due) > 1 {
		sortBursts(due)
	}
	for _, b := range due {
		d.recordBurst(b)
	}
}

// recordBurst hands out the job that records b's path, and, for an entry
// of a watched directory, watches it through its inode first, so that any
// change after the record sends an event.
func (d *daemon) recordBurst(b *burst) {
	d.busy[b.path] = true
	o := &ordered{b: b, handed: time.Now()}
	o.l.dir = d.aliasDir(b.path)
	d.inOrder = append(d.inOrder, o)
	if b.trace != nil {
		b.trace.handed = time.Now()
	}
	d.hand(&job{path: b.path,
		work: func(ctx context.Context, j *job) {
			o.l.take(ctx, j, d, b.path)
			if b.trace != nil {
				b.trace.recording, b.trace.recorded = time.Unix(0, j.started.Load()), time.Now()
			}
		},
		done: func() {
			o.done = true
			d.reportInOrder()
		}})
}

// An ordered is a burst whose record is out, in the order it settled.
type ordered struct {
	b      *burst
	l      look
	handed time.Time
	done   bool
}

// orderPatience is how long a record that takes long holds up the
// reports of bursts that settled after it: reports go out in the order
// things happened, but a huge file must not hold the others up.
const orderPatience = 200 * time.Millisecond

// reportInOrder reports the bursts whose records are done, in the order
// they settled: one is reported once every burst before it is reported or
// has been recording for longer than orderPatience.
func (d *daemon) reportInOrder() {
	now := time.Now()
	var left []*ordered
	waiting := false
	for _, o := range d.inOrder {
		done := o.done && (o.b.by.read() || now.Sub(o.handed) >= orderPatience)
		switch {
		case done && !waiting:
			d.recordedBy(o.b.path, &o.l)
			d.recorded(o.b, o.l.after)
		case done:
			left = append(left, o)
		default:
			left = append(left, o)
			if now.Sub(o.handed) < orderPatience {
				waiting = true
			}
		}
	}
	d.inOrder = left
}

// orderAt returns when a record that holds up reports stops doing so,
// or zero.
func (d *daemon) orderAt() time.Time {
	for _, o := range d.inOrder {
		if !o.done || !o.b.by.read() {
			if at := o.handed.Add(orderPatience); time.Now().Before(at) {
				return at
			}
		}
	}
	return time.Time{}
}

// A look is a job's record of one path: for an entry of a watched
// directory, how it is watched through its inode first, so that any
// change after the record sends an event.
type look struct {
	prev  *attrs // the record to trust while stat says it holds
	dir   string // the watched directory it is an entry of, or ""
	link  bool   // the entry is a symbolic link, watched as a path of its own
	errs  []error
	after attrs
}

// take watches path as l says, then records it; it runs in a job.
func (l *look) take(ctx context.Context, j *job, d *daemon, path string) {
	if l.dir != "" {
		l.link, l.errs = d.w.follow(l.dir, filepath.Base(path))
	}
	l.after = d.rec.recordJob(ctx, j, path, l.prev, d.w.realOf(path))
}

// recordedBy ends a job on path: another may be handed out for it.
func (d *daemon) recordedBy(path string, l *look) {
	delete(d.busy, path)
	if l.dir != "" {
		d.watchFailed(l.dir, l.errs...)
		if l.link {
			if d.derived[path] == nil {
				d.derived[path] = &entry{Path: path, owner: l.dir}
			}
		} else {
			delete(d.derived, path)
		}
	}
	if b := d.pending[path]; b != nil && b.deadline.IsZero() {
		b.deadline = b.settled // it waited for this job
	}
}

// entryFor returns the entry that watches path as its own: one of the
// configuration, or a symbolic link in a watched directory.
func (d *daemon) entryFor(path string) *entry {
	if e := d.cfg.lookup(path); e != nil {
		return e
	}
	return d.derived[path]
}

// unfollow stops watching a symbolic link in a watched directory as a
// path of its own: its name went.
func (d *daemon) unfollow(path string) {
	if d.derived[path] != nil {
		delete(d.derived, path)
		d.w.disarm(path)
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
		if next := d.pending[b.path]; next != nil {
			b.merge(next)
		}
		b.deadline = now.Add(leaseRetry)
		b.settled = b.deadline
		d.pending[b.path] = b
		return
	}
	if !b.told {
		before := d.record[b.path]
		if len(eventDiffers(before, after)) == 0 {
			d.remember(b.path, after)
			d.hashLater(b.path, after, "", "")
			return
		}
		b.events = []string{changeEvent(before, after)}
	}
	d.report(b, after)
	d.hashLater(b.path, after, "", "")
}

// hashLater hands the hash of a file over bigFile, recorded as rec with
// its content pending, to the slow lane. Once hashed, if the path still
// is the file rec stat'ed: with expect, the hash its record had, a hash
// that differs is reported, found as found says; else the record takes
// the hash.
func (d *daemon) hashLater(path string, rec attrs, expect, found string) {
	if rec.SHA256 != digestPending || d.hashing[path] {
		return
	}
	d.hashing[path] = true
	var sha string
	var ok bool
	d.slow.submit(&job{path: path,
		work: func(ctx context.Context, j *job) { sha, ok = d.rec.hashFile(ctx, j, path, rec) },
		done: func() {
			delete(d.hashing, path)
			cur, known := d.record[path]
			if !ok || !known || !sameStat(cur, rec) || d.pending[path] != nil || d.busy[path] {
				return // it changed meanwhile: another record tells
			}
			now := cur
			now.SHA256 = sha
			if expect != "" && sha != expect {
				b := &burst{path: path, told: true, events: []string{"change"},
					entries: entryPaths(d.cfg.owners(path)), found: found, first: time.Now()}
				d.report(b, now)
				return
			}
			if cur.SHA256 == digestPending {
				d.remember(path, now)
			}
		}})
}

// merge adds the events of o, a later burst on the same path, to b.
func (b *burst) merge(o *burst) {
	b.told = b.told || o.told
	b.by.merge(o.by)
	b.events = appendNew(b.events, o.events...)
	b.entries = appendNew(b.entries, o.entries...)
}

// leaseRetry is how often famids tries again to read a file another
// process holds a lease on.
const leaseRetry = time.Second

// aliasDir returns the watched directory entry whose entry path is, when
// famids reports on it, or "".
func (d *daemon) aliasDir(path string) string {
	dir := filepath.Dir(path)
	e := d.cfg.lookup(dir)
	if e == nil || dir == path || !e.matches(filepath.Base(path)) {
		return ""
	}
	if _, isDir := d.w.kind(dir); !isDir {
		return ""
	}
	return dir
}

// report mails the report of a burst, records the path's attributes now,
// after, and starts the actions of the entries concerned; past
// -max-mails a minute, the report and its actions are folded into the
// minute's digest.
func (d *daemon) report(b *burst, after attrs) {
	r := &report{Path: b.path, Events: b.events, Host: d.host, Time: b.first, Found: b.found, Before: d.record[b.path], After: after,
		By: b.by.processes(), ByMore: b.by.more()}
	// Events came, fanotify's among them, yet none named a process: say
	// so, rather than let the report pass for one found by comparison.
	r.ByUnknown = d.w.fan != nil && b.found == "" && len(r.By) == 0
	if *useSyslog {
		d.syslog("report: " + r.summary())
	}
	if _, ok := d.before[b.path]; !ok {
		d.before[b.path] = r.Before // the record to go back to, should no report of it be delivered
	}
	d.remember(b.path, after)
	var actions []string
	if d.actionsOK {
		for _, p := range b.entries {
			if e := d.cfg.lookup(p); e != nil && e.Action != "" && !slices.Contains(actions, e.Action) {
				actions = append(actions, e.Action)
			}
		}
	}
	if !d.flood.allow(time.Now()) {
		d.flood.foldReport(r, actions)
		return
	}
	d.mail.sendMessage(message{Subject: subjectReport, Body: r.body(), Paths: []string{b.path}})
	d.traceReport(b)
	for _, a := range actions {
		d.acts.run(trigger{action: a, paths: []string{b.path}, events: b.events, by: byEnv(r.By)})
	}
}

// sendDigests sends what the minute's flood folded: one digest of reports,
// with each of their actions run once for all of them, and one of notices.
func (d *daemon) sendDigests() {
	reports, paths, actions, notices := d.flood.digest(time.Now())
	if reports != "" {
		d.mail.sendMessage(message{Subject: subjectReport, Body: reports, Paths: paths})
	}
	for _, t := range actions {
		d.acts.run(t)
	}
	if notices != "" {
		d.mail.send(subjectNotice, notices)
	}
}

// unreport takes back the record a report of path made, when the report
// could not be delivered: the next start then finds the change again.
func (d *daemon) unreport(path string) {
	if a, ok := d.before[path]; ok {
		if a.Exists {
			d.record[path] = a
		} else {
			delete(d.record, path)
		}
	}
}

// remember records what path is now.
func (d *daemon) remember(path string, a attrs) {
	if old, ok := d.record[path]; ok == a.Exists && old.same(a) {
		return
	}
	if a.Exists {
		d.record[path] = a
	} else {
		delete(d.record, path)
	}
	d.state.dirty = d.state.file != ""
}

// drain handles the events already queued, so that a change made just
// before famids was told to stop is still reported.
func (d *daemon) drain() {
	evs, err := d.w.queued()
	d.handle(evs)
	if err != nil {
		d.warnOnce(err.Error()) // the loop, if it goes on, meets it again
	}
}

// catchUp takes in every event queued until now without reporting it, so
// that a comparison that follows finds what they would tell, once.
func (d *daemon) catchUp() {
	held := d.holding
	d.holding = true
	defer func() { d.holding = held }()
	d.drain()
}
