package main

// When famids cannot trust its events to have told it everything (at
// start-up, after the kernel's queue overflowed, at the end of a
// suspension) it compares every watched path with its record instead. A
// reload changes what is watched without a moment in which an unchanged
// path is not.

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// How differences found by comparing are introduced in their reports.
const (
	foundAtStart    = "at start-up (differs from the record of the previous run)"
	foundAfterFlood = "after queue overflow"
	foundAfterMount = "after a mount change"
	foundAtVerify   = "at verification"
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

// watchedPaths returns, sorted, every path famids reports on as the file
// system stands: each entry's path, the important names in the entries
// that are directories, and every path it holds a record of.
func (d *daemon) watchedPaths() []string {
	set := make(map[string]bool, len(d.record)+len(d.cfg.Entries))
	for p := range d.record {
		set[p] = true
	}
	for _, e := range d.cfg.Entries {
		set[e.Path] = true
		if _, dir := d.w.kind(e.Path); !dir {
			continue // a directory made since is armed, and scanned, when it comes
		}
		names, err := readDirNames(e.Path)
		if err != nil {
			continue
		}
		for _, n := range names {
			if e.matches(n) {
				set[filepath.Join(e.Path, n)] = true
			}
		}
	}
	paths := make([]string, 0, len(set))
	for p := range set {
		if !d.state.owns(p) {
			paths = append(paths, p)
		}
	}
	slices.Sort(paths)
	return paths
}

// baseline records every watched path. With the state of a previous run,
// the paths that run watched keep its record, and resync reports what
// changed since; the others are recorded as they are.
func (d *daemon) baseline(prev *state) {
	d.catchUp()
	if prev == nil {
		d.recordPaths(d.watchedPaths())
		return
	}
	// The previous record becomes this run's, less what is no longer
	// watched: a large record is not held twice.
	maps.DeleteFunc(prev.Records, func(p string, _ attrs) bool { return !prev.watched(p) || len(d.cfg.owners(p)) == 0 })
	d.record, prev.Records = prev.Records, nil
	var fresh []string
	for _, p := range d.watchedPaths() {
		if _, known := d.record[p]; !prev.watched(p) || !known && prev.mangled(p) {
			fresh = append(fresh, p)
		}
	}
	d.recordPaths(fresh)
	d.resync(foundAtStart, false)
}

// recordPaths records paths as they are, without reporting anything.
func (d *daemon) recordPaths(paths []string) {
	d.aliasAll(paths)
	for i, a := range d.rec.recordAll(paths, nil) {
		d.remember(paths[i], a)
	}
}

// A difference is a watched path that is not as famids recorded it.
type difference struct {
	path          string
	event         string // create, delete or change
	before, after attrs
}

// compare returns every watched path that differs from its record. With
// trust, a file that stat says is unchanged is not hashed again.
func (d *daemon) compare(trust bool) []difference {
	paths := d.watchedPaths()
	d.aliasAll(paths)
	var prev map[string]attrs
	if trust {
		prev = d.record
	}
	var diffs []difference
	for i, after := range d.rec.recordAll(paths, prev) {
		before := d.record[paths[i]]
		if len(differs(before, after)) == 0 {
			continue
		}
		ev := "change"
		switch {
		case !before.Exists:
			ev = "create"
		case !after.Exists:
			ev = "delete"
		}
		diffs = append(diffs, difference{paths[i], ev, before, after})
	}
	return diffs
}

// resync reports, as found, every watched path that differs from its
// record, as if its events had been seen; actions run as for any report.
func (d *daemon) resync(found string, trust bool) {
	d.flush(time.Time{})
	now := time.Now()
	for _, df := range d.compare(trust) {
		d.aliasEntry(df.path) // it may be another file now
		b := &burst{path: df.path, told: true, events: []string{df.event}, entries: entryPaths(d.cfg.owners(df.path)), found: found, first: now}
		d.report(b, df.after)
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
	if d.holding {
		return // the resume compares
	}
	full := time.Since(d.hashedAll) >= fullHashEvery
	d.catchUp()
	d.resync(foundAtVerify, !full)
	if full {
		d.hashedAll = time.Now()
	}
}

// remount acts on a change of the mount table: a mount on or above a
// watched path changes what it names without an event on it. Every entry
// is armed again, and every path compared with its record.
func (d *daemon) remount() {
	d.armAll()
	if d.holding {
		return // the resume compares
	}
	d.catchUp()
	d.resync(foundAfterMount, true)
}

// overflow is the kernel's queue overflowing: events were lost, so every
// entry is armed again and every path compared with its record.
func (d *daemon) overflow() {
	if d.holding {
		d.overflows++ // a comparison follows anyway
		return
	}
	fmt.Fprintln(os.Stderr, "famids: the inotify event queue overflowed; comparing every watched path with its record")
	d.notice("the kernel's inotify event queue overflowed: events were lost",
		"famids compares every watched path with its record and reports each difference, with \"Found: "+foundAfterFlood+"\".",
		"Raise /proc/sys/fs/inotify/max_queued_events if this happens often.")
	d.armAll()
	d.catchUp()
	d.resync(foundAfterFlood, true)
}

// armAll arms every entry again; what the paths became is left to a
// comparison with their records.
func (d *daemon) armAll() {
	c := newWalkCache()
	for _, e := range d.cfg.Entries {
		d.armWith(e, c)
	}
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
		fmt.Fprintf(os.Stderr, "famids: SIGHUP: not reloading %s, keeping the configuration in use: %v\n", file, err)
		for _, p := range invalid {
			fmt.Fprintf(os.Stderr, "famids: %s\n", p)
		}
		d.notice(fmt.Sprintf("configuration %s not reloaded: %v; the one in use is kept", file, err), invalid...)
		return
	}
	for _, p := range problems {
		fmt.Fprintf(os.Stderr, "famids: %s\n", p) // warnings: the lines are used
	}
	d.flush(time.Time{})
	old := d.cfg
	d.cfg = cfg
	var added, removed []string
	c := newWalkCache()
	for _, e := range cfg.Entries {
		if old.lookup(e.Path) == nil {
			added = append(added, e.Path)
			d.armNew(e, c)
		}
	}
	for _, e := range old.Entries {
		if cfg.lookup(e.Path) == nil {
			removed = append(removed, e.Path)
			d.w.disarm(e.Path)
		}
	}
	// Forget what no entry reports on any more; record what is newly
	// reported on, as it is now.
	for p := range d.record {
		if len(cfg.owners(p)) == 0 {
			d.remember(p, attrs{})
		}
	}
	var fresh []string
	for _, p := range d.watchedPaths() {
		if len(old.owners(p)) == 0 {
			fresh = append(fresh, p)
		}
	}
	d.recordPaths(fresh)
	for p := range d.pending {
		if len(cfg.owners(p)) == 0 {
			delete(d.pending, p)
		}
	}
	for p := range d.unwatched {
		if cfg.lookup(p) == nil {
			d.watchFailed(p) // no longer watched
		}
	}
	d.retryWatches()
	d.noticeWatchErrors()

	details := []string{fmt.Sprintf("%d entries are watched.", len(cfg.Entries))}
	for _, p := range added {
		details = append(details, "Added: "+quoteIfNeeded(p))
	}
	for _, p := range removed {
		details = append(details, "Removed: "+quoteIfNeeded(p))
	}
	fmt.Fprintf(os.Stderr, "famids: SIGHUP: reloaded %s: %d added, %d removed\n", file, len(added), len(removed))
	d.notice(fmt.Sprintf("configuration reloaded from %s: %d added, %d removed", file, len(added), len(removed)), details...)
	d.checkConfigSecurity()
	d.state.dirty = d.state.file != "" // the entries changed
	fitMemoryLimit()
}

// suspend is SIGUSR1: reports stop, for a prelink run or a package update,
// until SIGUSR2 or -max-suspend. What is pending is reported first. A
// second SIGUSR1 does not make the suspension longer.
func (d *daemon) suspend() {
	if !d.suspended.IsZero() {
		fmt.Fprintln(os.Stderr, "famids: SIGUSR1: reporting is suspended already")
		d.notice(fmt.Sprintf("still suspended (SIGUSR1 again); the suspension ends by itself at %s as before",
			d.suspended.Add(*maxSuspend).UTC().Format(time.RFC3339)),
			fmt.Sprintf("Suspended since %s; %d event(s) seen so far.", d.suspended.UTC().Format(time.RFC3339), d.held))
		return
	}
	d.flush(time.Time{})
	d.suspended = time.Now()
	d.holding = true
	d.held, d.overflows = 0, 0
	fmt.Fprintf(os.Stderr, "famids: SIGUSR1: reporting suspended until SIGUSR2, for %v at most\n", *maxSuspend)
	d.notice(fmt.Sprintf("reporting suspended (SIGUSR1) until SIGUSR2, for %v at most", *maxSuspend),
		"Events are counted, not reported. On resume, famids sends one notice listing every watched path that differs from what it recorded before.")
}

// resume ends a suspension: every entry is armed again (package managers
// replace files by rename), and one notice lists every watched path that
// differs from its record, which then records it as it is. No action runs.
func (d *daemon) resume(how string) {
	if d.suspended.IsZero() {
		fmt.Fprintf(os.Stderr, "famids: resume %s: reporting was not suspended\n", how)
		d.notice(fmt.Sprintf("resume %s, but reporting was not suspended", how))
		return
	}
	d.armAll()
	d.catchUp()
	diffs := d.compare(true)
	details := []string{
		fmt.Sprintf("Suspended: %s, for %v.", d.suspended.UTC().Format(time.RFC3339), time.Since(d.suspended).Round(time.Second)),
		fmt.Sprintf("Events seen meanwhile: %d.", d.held),
	}
	if d.overflows > 0 {
		details = append(details, fmt.Sprintf("Queue overflows meanwhile: %d.", d.overflows))
	}
	if len(diffs) > 0 {
		details = append(details, "Changed while suspended:")
	}
	var changed []string
	for _, df := range diffs {
		line := (&report{Path: df.path, Events: []string{df.event}, Before: df.before, After: df.after}).summary()
		details = append(details, line)
		changed = append(changed, line)
		d.remember(df.path, df.after)
	}
	d.suspended = time.Time{}
	d.holding = false
	fmt.Fprintf(os.Stderr, "famids: reporting resumed %s; %d path(s) changed while suspended\n", how, len(diffs))
	d.notice(fmt.Sprintf("reporting resumed %s: %d watched path(s) changed while suspended", how, len(diffs)), details...)
	for _, line := range changed {
		d.syslog("changed while suspended: " + line)
	}
}
