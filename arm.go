package main

// Arming: an entry's watches are set as its path resolves now, in a job,
// at start-up, after a reload, and whenever a name on the way to its path
// changes. One arm of an entry runs at a time; one asked for meanwhile
// follows it.

import "context"

// An arming is an entry being armed by a job.
type arming struct {
	tell  bool     // an event asked for it: what the path became is observed
	warn  bool     // the entry is new: warn of what is odd about it
	again bool     // arm once more when it is done: a name on the way changed meanwhile
	then  []func() // run once it is armed
}

// An armer hands out the arms of entries and follows them until they are
// done. Only the event loop's goroutine touches it.
type armer struct {
	w      *watcher
	hand   func(*job)
	arming map[string]*arming // by entry path
	// armed is told, on the loop, of each arm of an entry done: what its
	// path became ("create", "delete" or "") and the watches that could
	// not be set, as a says.
	armed func(e *entry, a *arming, became string, errs []error)
}

// arm arms e, as ask says.
func (r *armer) arm(e *entry, ask arming) {
	if a := r.arming[e.Path]; a != nil {
		a.again = true
		a.tell = a.tell || ask.tell
		a.warn = a.warn || ask.warn
		a.then = append(a.then, ask.then...)
		return
	}
	a := ask
	r.armBatch([]*entry{e}, &a)
}

// armThen arms e and then runs then. What the path became is left to a
// comparison; with warn, what is odd about an entry new to famids is
// said, as its arm found the file system.
func (r *armer) armThen(e *entry, warn bool, then func()) {
	a := arming{warn: warn}
	if then != nil {
		a.then = []func(){then}
	}
	r.arm(e, a)
}

// idle reports whether no arm is out.
func (r *armer) idle() bool { return len(r.arming) == 0 }

// armBatch hands out one job that arms entries, all with arming a:
// entries armed together look at each directory they share once. An arm
// asked for meanwhile of one of them has them all armed again.
func (r *armer) armBatch(entries []*entry, a *arming) {
	for _, e := range entries {
		r.arming[e.Path] = a
	}
	became := make([]string, len(entries))
	errs := make([][]error, len(entries))
	roots := make([]string, len(entries)) // of a tree's directories, read here: a reload sets e.in
	for i, e := range entries {
		if e.in != nil {
			roots[i] = e.in.Path
		}
	}
	r.hand(&job{path: entries[0].Path,
		work: func(context.Context, *job) {
			c := newWalkCache()
			if len(entries) == 1 {
				c = nil // one entry: nothing to share
			}
			for i, e := range entries {
				if roots[i] != "" {
					became[i], errs[i] = r.w.armTree(e.Path, roots[i])
					continue
				}
				became[i], errs[i] = r.w.armWith(e.Path, c)
			}
		},
		done: func() {
			for i, e := range entries {
				r.done(e, a, became[i], errs[i])
			}
		}})
}

// done is the end of an arm of e.
func (r *armer) done(e *entry, a *arming, became string, errs []error) {
	if r.arming[e.Path] == a {
		delete(r.arming, e.Path)
	}
	r.armed(e, a, became, errs)
	if a.again {
		// Once more, with what is still to be done.
		r.arm(e, arming{tell: a.tell && became == "", then: a.then})
		return
	}
	for _, f := range a.then {
		f()
	}
}

// armBatchSize is how many entries one job arms at most.
const armBatchSize = 128

// armAll arms entries, then runs then.
func (r *armer) armAll(entries []*entry, warn bool, then func()) {
	left := len(entries)
	if left == 0 {
		then()
		return
	}
	one := func() {
		if left--; left == 0 {
			if len(r.arming) == 0 {
				r.arming = make(map[string]*arming) // a map keeps the room it grew to
			}
			then()
		}
	}
	// One arming for a batch: its then runs once for each of them.
	shared := func() *arming { return &arming{warn: warn, then: []func(){one}} }
	var batch []*entry
	a := shared()
	for _, e := range entries {
		if r.arming[e.Path] != nil {
			r.armThen(e, warn, one) // joins the arm out
			continue
		}
		batch = append(batch, e)
		if len(batch) == armBatchSize {
			r.armBatch(batch, a)
			batch, a = nil, shared()
		}
	}
	if len(batch) > 0 {
		r.armBatch(batch, a)
	}
}
