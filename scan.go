package main

// Comparisons: when famids cannot trust its events to have told it
// everything (at start-up, after the kernel's queue overflowed, after a
// mount change, at verification, at the end of a suspension) it compares
// every watched path with its record instead: a scan. A scan is jobs in
// the pool, like every look at the file system: the loop goes on
// meanwhile.

import (
	"context"
	"path/filepath"
	"slices"
	"time"
)

// A scanner runs the scans, one of each kind at a time, and hands what
// each finds of a path to found. Only the event loop's goroutine touches
// it.
type scanner struct {
	scans       map[string]*scan // running, by kind
	verifyEvery time.Duration    // -verify
	verifyAt    time.Time        // when the next verification is due; zero without -verify
	hashedAll   time.Time        // when a verification last hashed every file, whatever its stat said
	base        *baseline
	bursts      *bursts
	w           *watcher
	hand        func(*job)
	config      func() *config         // the configuration in use
	dirs        func() []*entry        // the directories of trees, watched beside the configuration's entries
	current     func(e *entry) bool    // whether e is still watched
	inTree      func(e *entry) bool    // whether the directory entry e is in a tree
	dirFound    func(path string)      // a directory found in a directory of a tree (see daemon.treeDirFound)
	lookAt      func(path string) look // see router.lookAt
	take        func(ctx context.Context, j *job, l *look, path string)
	found       func(s *scan, path string, l *look) // on the loop, once path is recorded
}

// A scan compares every watched path with its record.
type scan struct {
	kind  string            // start, overflow, mount, verify, resume, reload: one of each runs at a time
	found string            // the Found line of its reports; "" for a scan that reports nothing (resume, reload)
	trust bool              // a file whose stat is unchanged since its record is not read again
	fresh func(string) bool // paths recorded without a report, when they have no record
	only  func(string) bool // when set, the paths it looks at
	then  func(*scan)       // runs once every job is done
	one   string            // the one path it looks at, or "" for every path

	diffs []difference // for a scan that reports nothing, what differs
	queue []string     // paths to record, not handed out yet
	out   int          // record jobs out
	left  int          // jobs still out
	again bool         // asked for again while it ran
	ended bool
}

// hashed returns the report of path, owned by entries, once its content,
// pending when s recorded it, is hashed and differs from what it was: a
// comparison that reports nothing of its own (a resume, a reload) reports
// it as found at verification.
func (s *scan) hashed(path string, entries []*entry) *burst {
	found := s.found
	if found == "" {
		found = foundAtVerify
	}
	return &burst{path: path, told: true, events: []string{"change"}, entries: entryPaths(entries), found: found, first: time.Now()}
}

// A difference is a watched path that is not as famids recorded it.
type difference struct {
	path          string
	event         string // create, delete or change
	before, after attrs
}

// start hands out the jobs of s: the entries' paths, every path there is
// a record of, and the important names found in each watched directory,
// recorded by jobs of scanBatchSize paths, a few at a time; or, with
// s.one, that path alone. A scan of a kind already running runs once more
// after it.
func (sc *scanner) start(s *scan) {
	if running := sc.scans[s.kind]; running != nil {
		running.again = true
		return
	}
	sc.scans[s.kind] = s
	if s.one != "" {
		s.queue = []string{s.one}
		sc.feed(s)
		sc.step(s)
		return
	}
	s.queue = sc.base.paths()
	for _, e := range sc.config().Entries {
		if !sc.base.has(e.Path) {
			s.queue = append(s.queue, e.Path)
		}
		if _, dir := sc.w.kind(e.Path); dir {
			sc.list(s, e)
		}
	}
	for _, e := range sc.dirs() {
		if _, dir := sc.w.kind(e.Path); dir || e.over {
			sc.list(s, e) // one past the budget of watches too: its entries are compared all the same
		}
	}
	sc.feed(s)
	sc.step(s)
}

// list hands out the job that lists the directory entry e, whose
// important names s then looks at.
func (sc *scanner) list(s *scan, e *entry) {
	s.left++
	var names, dirs []string
	tree := sc.inTree(e)
	sc.hand(&job{path: e.Path, idle: s.kind == "verify",
		work: func(context.Context, *job) {
			if tree {
				names, dirs = readDirKinds(e.Path)
			} else {
				names, _ = readDirNames(e.Path)
			}
		},
		done: func() {
			s.left--
			if sc.current(e) {
				for _, n := range dirs {
					sc.dirFound(filepath.Join(e.Path, n)) // one no walk or event told of
				}
				slices.Sort(names)
				cfg := sc.config()
				for _, n := range names {
					p := filepath.Join(e.Path, n)
					if !sc.base.has(p) && len(cfg.childOwners(e.Path, n)) > 0 {
						s.queue = append(s.queue, p) // those with a record are in it already
					}
				}
				sc.feed(s)
			}
			sc.step(s)
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

// feed hands out the next jobs of s, while it has fewer than
// batchesOut out. A path is left out when an event is in the course of
// being reported for it (that report tells what differs), or a job is out
// for it already.
func (sc *scanner) feed(s *scan) {
	for s.out < batchesOut && len(s.queue) > 0 {
		var paths []string
		for len(paths) < scanBatchSize && len(s.queue) > 0 {
			p := s.queue[0]
			s.queue = s.queue[1:]
			if sc.base.owns(p) || s.only != nil && !s.only(p) || !sc.bursts.claim(p) {
				continue
			}
			paths = append(paths, p)
		}
		if len(paths) > 0 {
			sc.handBatch(s, paths)
		}
	}
	if len(s.queue) == 0 {
		s.queue = nil
	}
}

// handBatch hands out the job that records paths for s, each watched
// through its inode first when it is an entry of a watched directory.
func (sc *scanner) handBatch(s *scan, paths []string) {
	s.left++
	s.out++
	looks := make([]look, len(paths))
	for i, p := range paths {
		looks[i] = sc.lookAt(p)
		if a, ok := sc.base.record(p); ok && s.trust {
			looks[i].prev = &a
		}
	}
	sc.hand(&job{path: paths[0], idle: s.kind == "verify",
		work: func(ctx context.Context, j *job) {
			for i, p := range paths {
				sc.take(ctx, j, &looks[i], p)
			}
		},
		done: func() {
			s.left--
			s.out--
			for i, p := range paths {
				sc.found(s, p, &looks[i])
			}
			sc.feed(s)
			sc.step(s)
		}})
}

// step ends s once every job is done, and starts it again when it was
// asked for meanwhile.
func (sc *scanner) step(s *scan) {
	if s.left > 0 || len(s.queue) > 0 || s.ended {
		return
	}
	s.ended = true
	delete(sc.scans, s.kind)
	sc.bursts.compact()
	if s.then != nil {
		s.then(s)
	}
	if s.again {
		sc.start(&scan{kind: s.kind, found: s.found, trust: s.trust, fresh: s.fresh, only: s.only, one: s.one, then: s.then})
	}
}

// How differences found by comparing are introduced in their reports.
const (
	foundAtStart    = "at start-up (differs from the record of the previous run)"
	foundAfterFlood = "after queue overflow"
	foundAfterMount = "after a mount change"
	foundAtVerify   = "at verification"
	// A write that sent no event, while another process held the file
	// open for writing (writers.go).
	foundWhileHeld = "while held open for writing (a write that sent no event: Linux AIO, a loop device)"
	// Content of a file over bigFile, hashed after its report.
	foundOnceHashed = "once hashed (a file over 256 MiB is hashed after its report)"
	// A path whose watch could not be set (out of inotify watches), once
	// it could be.
	foundOnceWatched = "once it could be watched"
)

// fullHashEvery is how often a verification hashes every file, whatever
// its stat says: a root intruder can set the clock back to a file's ctime
// before changing it, and put its mtime back.
const fullHashEvery = 24 * time.Hour

// scheduleVerify has the first verification made -verify from now, once
// the start-up's comparison is done. That one trusted what stat says of a
// file since the last run: the first verification hashes every file.
func (sc *scanner) scheduleVerify(now time.Time) {
	sc.hashedAll = time.Time{}
	if sc.verifyEvery > 0 {
		sc.verifyAt = now.Add(sc.verifyEvery)
	}
}

// nextVerify returns when the next verification is due, or zero.
func (sc *scanner) nextVerify() time.Time { return sc.verifyAt }

// verifyDue reports whether a verification is due by now, and schedules
// the next.
func (sc *scanner) verifyDue(now time.Time) bool {
	if sc.verifyAt.IsZero() || now.Before(sc.verifyAt) {
		return false
	}
	sc.verifyAt = now.Add(sc.verifyEvery)
	return true
}

// hashAll reports whether the verification made now hashes every file,
// whatever its stat says: once every fullHashEvery.
func (sc *scanner) hashAll(now time.Time) bool {
	if now.Sub(sc.hashedAll) < fullHashEvery {
		return false
	}
	sc.hashedAll = now
	return true
}
