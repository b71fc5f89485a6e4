package main

// Bursts: the events seen on one path fold into a burst until it settles;
// the path is then recorded, one record of a path at a time, and reported
// in the order bursts settled.

import (
	"maps"
	"slices"
	"strings"
	"time"
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

// merge adds the events of o, a later burst on the same path, to b.
func (b *burst) merge(o *burst) {
	b.told = b.told || o.told
	b.by.merge(o.by)
	b.events = appendNew(b.events, o.events...)
	b.entries = appendNew(b.entries, o.entries...)
}

// maxBurst bounds how long a path that never goes quiet waits for its
// report, in units of -settle.
const maxBurst = 20

// weakSettle is the least a burst of weak events waits before its path is
// compared: the close of a file seldom comes alone, and the write before
// it has been reported already.
const weakSettle = 100 * time.Millisecond

// orderPatience is how long a record that takes long holds up the
// reports of bursts that settled after it: reports go out in the order
// things happened, but a huge file must not hold the others up.
const orderPatience = 200 * time.Millisecond

// leaseRetry is how often famids tries again to read a file another
// process holds a lease on.
const leaseRetry = time.Second

// An ordered is a burst whose record is out, in the order it settled.
type ordered struct {
	b      *burst
	l      look
	handed time.Time
	done   bool
	late   bool // out for longer than orderPatience: it no longer holds up the rest, and is reported once done
}

// bursts are the bursts gathering events, by path; the paths a job is
// out recording, one at a time each; the bursts whose records are out, in
// the order they settled; and the paths a hash is out for in the slow
// lane.
type bursts struct {
	settle   time.Duration // -settle
	pending  map[string]*burst
	busy     map[string]bool
	inOrder  []*ordered
	lateDone []*ordered        // late records done, to be reported
	out      map[string]*burst // the bursts of inOrder and the late ones, by path
	hashing  map[string]*hashOut
	expected map[string]string // the hash each path had before its content went pending, until it is known
}

func newBursts(settle time.Duration) *bursts {
	return &bursts{settle: settle, pending: make(map[string]*burst), busy: make(map[string]bool), out: make(map[string]*burst), hashing: make(map[string]*hashOut), expected: make(map[string]string)}
}

// add adds o, seen now, to its path's burst; began says the burst begins
// with it.
func (bs *bursts) add(o observation, now time.Time) (b *burst, began bool) {
	b = bs.pending[o.path]
	if b == nil {
		b, began = &burst{path: o.path, first: now}, true
		bs.pending[o.path] = b
	}
	if !o.weak {
		b.told = true
		b.events = appendNew(b.events, o.event)
	}
	b.entries = appendNew(b.entries, o.entry)
	wait := bs.settle
	if !b.told {
		wait = max(wait, weakSettle)
	}
	b.settled = now.Add(wait)
	if limit := b.first.Add(maxBurst * wait); b.settled.After(limit) {
		b.settled = limit
	}
	if !b.deadline.IsZero() || !bs.busy[o.path] {
		b.deadline = b.settled
	}
	return b, began
}

// gathering returns the burst of path that gathers events, or nil.
func (bs *bursts) gathering(path string) *burst { return bs.pending[path] }

// of returns the burst of path that gathers events, or else the one whose
// record is out; nil without either.
func (bs *bursts) of(path string) *burst {
	if b := bs.pending[path]; b != nil {
		return b
	}
	return bs.out[path]
}

// next returns the earliest burst deadline, or zero.
func (bs *bursts) next() time.Time {
	var next time.Time
	for _, b := range bs.pending {
		next = earliest(next, b.deadline)
	}
	return next
}

// due takes the bursts whose deadline has passed by now (a zero now:
// every burst), in the order they began. A burst whose path a job is
// recording already waits for it: records of one path are taken one at a
// time, in order.
func (bs *bursts) due(now time.Time) []*burst {
	var due []*burst
	for p, b := range bs.pending {
		if bs.busy[p] {
			b.deadline = time.Time{} // recorded makes it due again
			continue
		}
		if now.IsZero() || !b.deadline.IsZero() && !b.deadline.After(now) {
			due = append(due, b)
			delete(bs.pending, p)
		}
	}
	if len(due) > 1 {
		sortBursts(due)
	}
	return due
}

// recording notes that b's path is being recorded, from now, and returns
// its place in the order of reports.
func (bs *bursts) recording(b *burst, now time.Time) *ordered {
	bs.busy[b.path] = true
	o := &ordered{b: b, handed: now}
	bs.inOrder = append(bs.inOrder, o)
	bs.out[b.path] = b
	return o
}

// claim notes that a job records path for a comparison, unless a burst
// of path gathers events or a job records it already: false then.
func (bs *bursts) claim(path string) bool {
	if bs.pending[path] != nil || bs.busy[path] {
		return false
	}
	bs.busy[path] = true
	return true
}

// recorded ends a job on path: another may be handed out for it.
func (bs *bursts) recorded(path string) {
	delete(bs.busy, path)
	if b := bs.pending[path]; b != nil && b.deadline.IsZero() {
		b.deadline = b.settled // it waited for this job
	}
}

// compact lets the map of paths being recorded go of the room it grew
// to, once none is.
func (bs *bursts) compact() {
	if len(bs.busy) == 0 {
		bs.busy = make(map[string]bool)
	}
}

// reportable takes the bursts whose records are done, in the order they
// settled, as of now: one is reportable once every burst before it is,
// or has been recording for longer than orderPatience, and who made its
// changes is read, or it has waited orderPatience for that. A record out
// for longer is late: taken out of the order, it is reported once done,
// so that in a flood, with thousands of records queued for minutes, each
// record done costs what it makes ready, not a pass over every late one.
func (bs *bursts) reportable(now time.Time) []*ordered {
	ready := bs.lateDone
	bs.lateDone = nil
	i := 0
	for ; i < len(bs.inOrder); i++ {
		o := bs.inOrder[i]
		old := now.Sub(o.handed) >= orderPatience
		if o.done && (o.b.by.read() || old) {
			ready = append(ready, o)
			continue
		}
		if !old {
			break // it holds up every report after it
		}
		o.late = true
	}
	clear(bs.inOrder[:i])
	bs.inOrder = bs.inOrder[i:]
	for _, o := range ready {
		if bs.out[o.b.path] == o.b {
			delete(bs.out, o.b.path)
		}
	}
	return ready
}

// finished says o's record is done.
func (bs *bursts) finished(o *ordered) {
	o.done = true
	if o.late {
		bs.lateDone = append(bs.lateDone, o)
	}
}

// ordering reports whether a record is out for a report.
func (bs *bursts) ordering() bool { return len(bs.inOrder) > 0 || len(bs.lateDone) > 0 }

// orderAt returns when a record that holds up reports stops doing so,
// or zero.
func (bs *bursts) orderAt(now time.Time) time.Time {
	for _, o := range bs.inOrder {
		if !o.done || !o.b.by.read() {
			if at := o.handed.Add(orderPatience); now.Before(at) {
				return at
			}
		}
	}
	return time.Time{}
}

// retry gathers b again, to be recorded at: a file another process holds
// a lease on is read again once the lease is broken. A burst begun on its
// path meanwhile joins it.
func (bs *bursts) retry(b *burst, at time.Time) {
	if next := bs.pending[b.path]; next != nil {
		b.merge(next)
	}
	b.deadline, b.settled = at, at
	bs.pending[b.path] = b
}

// drop forgets the bursts gathering events on paths keep refuses.
func (bs *bursts) drop(keep func(path string) bool) {
	maps.DeleteFunc(bs.pending, func(p string, _ *burst) bool { return !keep(p) })
}

// quiet reports whether no burst gathers events on path and no job
// records it.
func (bs *bursts) quiet(path string) bool { return bs.pending[path] == nil && !bs.busy[path] }

// idle reports whether no burst gathers events.
func (bs *bursts) idle() bool { return len(bs.pending) == 0 }

// A hashAsk is a hash asked for of a file over bigFile: of the file
// recorded as rec, whose content is pending, to compare with expect (the
// hash the path had before, or ""), reported as tell when it differs.
type hashAsk struct {
	rec    attrs
	expect string
	tell   *burst
}

// askHash asks for ask's hash of path. Without an expectation of its own,
// it takes the hash the path had before its content went pending: a path
// changed again while it was hashed is compared with that one. It
// reports whether to start the hash now; one out already is followed by
// this one, the latest asked.
func (bs *bursts) askHash(path string, ask hashAsk) (start bool, _ hashAsk) {
	if ask.expect == "" {
		ask.expect = bs.expected[path]
	} else {
		bs.expected[path] = ask.expect
	}
	if out, ok := bs.hashing[path]; ok {
		out.next = &ask
		return false, ask
	}
	bs.hashing[path] = &hashOut{}
	return true, ask
}

// A hashOut is a hash out in the slow lane, and the one asked for
// meanwhile, of the path recorded again.
type hashOut struct{ next *hashAsk }

// hashDone ends the hash out for path, and returns the one asked for
// meanwhile, or nil.
func (bs *bursts) hashDone(path string) *hashAsk {
	out := bs.hashing[path]
	delete(bs.hashing, path)
	if out == nil {
		return nil
	}
	return out.next
}

// contentPending reports whether the content of path is being hashed, or
// expected to be: a report of it follows, as the events that made it
// pending say.
func (bs *bursts) contentPending(path string) bool {
	_, out := bs.hashing[path]
	_, expected := bs.expected[path]
	return out || expected
}

// pendingBefore returns the hash path had before its content went
// pending, when it is expected still.
func (bs *bursts) pendingBefore(path string) (string, bool) {
	sha, ok := bs.expected[path]
	return sha, ok
}

// hashKnown says the content of path is known again: nothing is expected
// of it any more.
func (bs *bursts) hashKnown(path string) { delete(bs.expected, path) }

// heldUp returns the bursts whose records are done but whose reports are
// held up by a record that is not.
func (bs *bursts) heldUp() []*ordered {
	held := slices.Clone(bs.lateDone)
	for _, o := range bs.inOrder {
		if o.done {
			held = append(held, o)
		}
	}
	return held
}

// busyPaths returns the paths a job is out recording, in order.
func (bs *bursts) busyPaths() []string { return slices.Sorted(maps.Keys(bs.busy)) }

// sortBursts orders bursts by their first event, then by path, so that
// reports go out in the order things happened.
func sortBursts(bs []*burst) {
	slices.SortFunc(bs, func(a, b *burst) int {
		if c := a.first.Compare(b.first); c != 0 {
			return c
		}
		return strings.Compare(a.path, b.path)
	})
}
