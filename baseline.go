package main

// The baseline: what famids last recorded of each path it reports on, so
// that a change is told as what differs from it. It is kept between runs
// in the state file (state.go), and a report's record is taken back when
// the report cannot be delivered, so that the next start finds the
// change again.

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"time"
)

// A baseline is the record of every path famids reports on, the record
// each reported path had before its report until every report is
// delivered, and the state file that keeps them between runs. Only the
// event loop's goroutine touches it.
type baseline struct {
	recs    records
	before  map[string]attrs // by path, until every report is delivered
	keeper  stateKeeper
	started time.Time
	dirty   bool                // the records changed since they were last saved
	touched map[string]struct{} // the paths whose records changed since, for the journal
	journal journal             // what changed since the last snapshot (journal.go)
	resnap  bool                // the next save writes a snapshot: the entries changed
	follows bool                // the state file read is a snapshot this run may journal after (continue)
	saveAt  time.Time           // when they are saved: at most once a second; zero when not dirty
	saveFor time.Duration       // how long the last save took
	beatAt  time.Time           // when the state file's lock is touched next; zero without one
	covered map[string]covering // by path: the records of paths a mount covers
}

// A covering is the record of a path as it was before a mount covered
// it, and the mount's id.
type covering struct {
	rec   attrs
	mount int
}

// cover keeps the records of dir and of every path below it, which the
// mount id now covers: once it is gone, they are what those paths are
// compared with, not what the mount showed meanwhile. A path covered
// already keeps its first record.
func (bl *baseline) cover(dir string, id int) {
	keep := func(p string, a attrs) {
		if _, ok := bl.covered[p]; !ok {
			bl.covered[p] = covering{a, id}
		}
	}
	if a, ok := bl.recs.get(dir); ok {
		keep(dir, a)
	}
	for p, a := range bl.recs.under(dir) {
		keep(p, a)
	}
}

// uncover puts back the records the mount id covered: what was under it
// is back, and is compared with what it was before the mount.
func (bl *baseline) uncover(id int) {
	for p, c := range bl.covered {
		if c.mount != id {
			continue
		}
		delete(bl.covered, p)
		bl.set(p, c.rec)
	}
}

// saveEvery is how often the baseline is saved at most; and never more
// than a tenth of the time: a save writes what changed to the journal,
// but now and then the whole state file (some 50 MB for 150,000
// records), and a flood of files must not make famids spend its time
// saving.
const saveEvery = time.Second

// saveWait returns how long after a change the baseline is saved.
func (bl *baseline) saveWait() time.Duration { return max(saveEvery, 10*bl.saveFor) }

// beatFrom has the state file's lock touched once a minute from now: the
// mtime then tells, after a crash, when famids was last known alive.
func (bl *baseline) beatFrom(now time.Time) {
	if bl.kept() {
		bl.beatAt = now.Add(heartbeatEvery)
	}
}

// due returns when the baseline is next saved or its lock touched, or
// zero.
func (bl *baseline) due() time.Time { return earliest(bl.saveAt, bl.beatAt) }

// tend does what is due by now: it forgets the records before reports
// once every report is delivered, saves the baseline with save once it
// changed, famids is ready and what was reported is delivered (see
// saveWait), and touches the lock.
func (bl *baseline) tend(now time.Time, ready, delivered bool, save func()) {
	if delivered {
		bl.delivered()
	}
	switch {
	case !bl.dirty || !ready:
		bl.saveAt = time.Time{}
	case bl.saveAt.IsZero():
		bl.saveAt = now.Add(bl.saveWait())
	case !now.Before(bl.saveAt) && delivered:
		save()
		bl.saveFor = time.Since(now)
		bl.saveAt = time.Time{}
	case !now.Before(bl.saveAt):
		bl.saveAt = now.Add(saveEvery) // once what was reported is delivered
	}
	if !bl.beatAt.IsZero() && !now.Before(bl.beatAt) {
		bl.touch()
		bl.beatAt = now.Add(heartbeatEvery)
	}
}

// newBaseline returns an empty baseline kept in file ("" for none).
func newBaseline(file string) *baseline {
	return &baseline{recs: newPackedRecords(), before: make(map[string]attrs), keeper: stateKeeper{file: file}, started: time.Now(),
		touched: make(map[string]struct{}), journal: journal{file: journalFile(file)},
		covered: make(map[string]covering)}
}

// record returns the record of path; a path without one is absent.
func (bl *baseline) record(path string) (attrs, bool) { return bl.recs.get(path) }

// has reports whether path has a record.
func (bl *baseline) has(path string) bool { return bl.recs.has(path) }

// paths returns every path with a record, in byte order.
func (bl *baseline) paths() []string { return bl.recs.paths() }

// entriesOf returns the paths with a record directly in directory dir.
func (bl *baseline) entriesOf(dir string) []string { return bl.recs.in(dir) }

// below returns the paths with a record below directory dir, at any depth.
func (bl *baseline) below(dir string) []string {
	var ps []string
	for p := range bl.recs.under(dir) {
		ps = append(ps, p)
	}
	return ps
}

// dirPrefix returns what the paths below directory dir begin with: dir
// and a slash, or "/" for the root.
func dirPrefix(dir string) string { return strings.TrimSuffix(dir, "/") + "/" }

// remember records what path is now; a record of an absent path is
// removed.
func (bl *baseline) remember(path string, a attrs) {
	if old, ok := bl.recs.get(path); ok == a.Exists && old.same(a) {
		return
	}
	bl.set(path, a)
}

// set puts a as path's record (none, for a path that does not exist),
// to be saved.
func (bl *baseline) set(path string, a attrs) {
	if a.Exists {
		bl.recs.put(path, a)
	} else {
		bl.recs.remove(path)
	}
	if bl.keeper.file != "" {
		bl.touched[path] = struct{}{}
	}
	bl.changed()
}

// reported records path as after, for a report, and returns its record
// before; that one is kept until every report is delivered, to go back to
// should no report of path be (see unreport).
func (bl *baseline) reported(path string, after attrs) (before attrs) {
	before, _ = bl.recs.get(path)
	if _, ok := bl.before[path]; !ok {
		bl.before[path] = before
	}
	bl.remember(path, after)
	return before
}

// delivered says every report made so far is delivered: the records
// before them are not needed any more.
func (bl *baseline) delivered() {
	if len(bl.before) > 0 {
		bl.before = make(map[string]attrs) // a map keeps the room it grew to
	}
}

// unreport takes back the record a report of path made, when the report
// could not be delivered: the next start then finds the change again.
func (bl *baseline) unreport(path string) {
	a, ok := bl.before[path]
	if !ok {
		return
	}
	bl.set(path, a)
}

// forget removes the record of every path keep refuses.
func (bl *baseline) forget(keep func(path string) bool) {
	var gone []string
	for _, p := range bl.recs.paths() {
		if !keep(p) {
			gone = append(gone, p)
		}
	}
	for _, p := range gone {
		bl.remember(p, attrs{})
	}
	maps.DeleteFunc(bl.covered, func(p string, _ covering) bool { return !keep(p) })
}

// changed says the baseline is to be saved: its records changed.
func (bl *baseline) changed() { bl.dirty = bl.keeper.file != "" }

// entriesChanged says the baseline is to be saved whole: the entries it is
// of changed.
func (bl *baseline) entriesChanged() {
	bl.changed()
	bl.resnap = true
}

// owns reports whether path is one of the state file's own, whose changes
// are famids's doing.
func (bl *baseline) owns(path string) bool { return bl.keeper.owns(path) }

// kept reports whether the baseline is kept between runs.
func (bl *baseline) kept() bool { return bl.keeper.file != "" }

// touch says famids is alive, in the state file's lock.
func (bl *baseline) touch() { bl.keeper.touch() }

// close lets go of the state file's lock.
func (bl *baseline) close() {
	bl.journal.close()
	bl.keeper.unlock()
}

// load opens the state kept by the previous run and tells, through
// notice, what is wrong with it: an unclean stop, a fatal error, or a file
// that cannot be used. It returns nil when there is no previous state to
// compare with. Before anything else, it marks the file as written by a
// run that has not stopped yet, so that a kill even during start-up is
// seen by the next run.
func (bl *baseline) load(notice func(summary string, details ...string)) *state {
	k := &bl.keeper
	if k.file == "" {
		return nil
	}
	if err := k.open(); err != nil {
		msg := quoteIfNeeded(err.Error())
		fmt.Fprintf(os.Stderr, "famids: warning: no baseline is kept between runs: %s\n", msg)
		switch {
		case errors.Is(err, errUntrustedDir):
			notice("no baseline is kept between runs: "+msg,
				"famids writes its state there as root: whoever can write into that directory could make it overwrite another file.",
				"Make the state directory, and every directory above it, owned by root and not writable by group or others, then restart famids.")
		case errors.Is(err, errNoStateDir):
			// A warning only: famids run by hand by a user, say.
		default:
			notice("no baseline is kept between runs: "+msg,
				"What changes while famids is not running cannot be told at the next start.")
		}
		k.file = ""
		return nil
	}
	prev, err := loadState(k.file)
	if err == nil && prev != nil {
		batches, jerr := replayJournal(prev, journalFile(k.file))
		bl.follows = prev.ID != "" && prev.Version == stateVersion && !prev.legacy && batches == 0 && jerr == nil && !pathExists(journalFile(k.file))
		if jerr != nil {
			msg := quoteIfNeeded(jerr.Error())
			fmt.Fprintf(os.Stderr, "famids: %s; the records it holds after that are not used\n", msg)
			notice("the state's journal is damaged: the records it holds past the damage are not used", msg,
				"Paths whose records were in that part are compared with older records: a change made before this start may be reported again.")
		}
	}
	switch {
	case err != nil:
		msg := quoteIfNeeded(err.Error()) // it may hold what the file holds
		fmt.Fprintf(os.Stderr, "famids: %s; recording a new baseline\n", msg)
		notice("the state file cannot be used; a new baseline is recorded", msg,
			"What changed while famids was not running cannot be told. Check the watched files by other means (dpkg --verify, rpm -Va).")
	case prev == nil && k.used:
		fmt.Fprintf(os.Stderr, "famids: %s is missing; recording a new baseline\n", quoteIfNeeded(k.file))
		notice("the state file is missing; a new baseline is recorded",
			fmt.Sprintf("%s is gone, though %s.lock shows that a famids kept its state there before.", quoteIfNeeded(k.file), quoteIfNeeded(k.file)),
			"What changed while famids was not running cannot be told. Check the watched files by other means (dpkg --verify, rpm -Va).")
	case prev == nil:
		fmt.Fprintf(os.Stderr, "famids: no state in %s yet; recording the baseline\n", quoteIfNeeded(k.file))
	case prev.Error != "" && (k.mark == "" || k.markPID() == prev.PID):
		fmt.Fprintf(os.Stderr, "famids: the previous famids (pid %d) stopped on an error: %s\n", prev.PID, quoteIfNeeded(string(prev.Error)))
		notice(fmt.Sprintf("the previous famids (pid %d) stopped on an error at %s", prev.PID, prev.Saved.UTC().Format(time.RFC3339)),
			"Error: "+quoteIfNeeded(string(prev.Error)), "Every watched path is compared with what it recorded; differences follow in reports with \"Found: "+foundAtStart+"\".")
	case !prev.Clean || k.mark != "":
		alive := k.alive
		if alive.Before(prev.Saved) {
			alive = prev.Saved
		}
		pid := prev.PID
		if k.mark != "" {
			pid = k.markPID() // the run that marked, which may not have saved
		}
		fmt.Fprintf(os.Stderr, "famids: the previous famids (pid %d) did not stop cleanly\n", pid)
		notice(fmt.Sprintf("the previous famids (pid %d) did not stop cleanly; last known alive at %s", pid, alive.UTC().Format(time.RFC3339)),
			"It was killed, crashed, or the machine lost power.",
			"Every watched path is compared with what it recorded; differences follow in reports with \"Found: "+foundAtStart+"\".")
	}
	if err != nil {
		return nil
	}
	return prev
}

// adopt takes the previous run's records as this run's, less those keep
// refuses: the records read are not copied, so that 150,000 of them are
// never held twice.
func (bl *baseline) adopt(prev *state, keep func(path string) bool) {
	recs, ok := prev.Records.(*packedRecords)
	if !ok {
		recs = newPackedRecords()
		for p, a := range prev.Records.all() {
			recs.put(p, a)
		}
	}
	recs.keepOnly(keep)
	bl.recs, prev.Records = recs, nil
}

// pathExists reports whether anything is at path, link or not.
func pathExists(path string) bool {
	_, err := os.Lstat(path)
	return !errors.Is(err, os.ErrNotExist)
}

// continueJournal has this run's saves journalled after the snapshot prev
// was read from, when that snapshot holds the entries watched now and had
// no journal: a restart need not write 50 MB again before it is ready. A
// crash is still told at the next start, by the lock's mark of the run.
func (bl *baseline) continueJournal(prev *state, watched entryNames) {
	if prev == nil || !bl.follows || !maps.EqualFunc(prev.Watched, watched, slices.Equal) {
		return
	}
	bl.journal.of, bl.journal.size, bl.journal.snap = prev.ID, 0, prev.size
	bl.changed() // the first save marks the records compared at start-up
}

// save writes the baseline to the state file, as a baseline of the
// entries watched; clean says famids is stopping because it was told to,
// fatal why it stops on its own.
func (bl *baseline) save(clean bool, fatal string, watched entryNames, pendingBefore func(path string) (string, bool)) error {
	k := &bl.keeper
	if k.file == "" {
		return nil
	}
	kept := keptRecords{bl.recs, pendingBefore}
	if !clean && fatal == "" && !bl.resnap && bl.journal.of != "" && !bl.journal.full(len(bl.touched)) {
		err := bl.journal.appendBatch(touchedPaths(bl.touched), kept.get, time.Now())
		if err == nil {
			clear(bl.touched)
			bl.dirty = false
			return nil
		}
		// A snapshot holds it all, journal or not.
		bl.journal.close()
		fmt.Fprintf(os.Stderr, "famids: %s; writing the whole state instead\n", quoteIfNeeded(err.Error()))
	}
	s := &state{
		Version: stateVersion,
		ID:      newSnapshotID(),
		PID:     os.Getpid(),
		Started: bl.started,
		Saved:   time.Now(),
		Clean:   clean,
		Error:   exact(fatal),
		Watched: watched,
	}
	size, err := saveState(k.file, s, kept)
	if err != nil {
		return err
	}
	bl.journal.restart(s.ID, size)
	clear(bl.touched)
	bl.dirty, bl.resnap = false, false
	if clean && fatal == "" {
		k.setMark("")
	}
	return nil
}
