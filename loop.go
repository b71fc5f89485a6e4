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
	d.scans.start(&scan{kind: "verify", found: foundAtVerify, trust: !full})
}

// remount acts on a change of the mount table: a mount on or above a
// watched path changes what it names without an event on it. Every entry
// is armed again, then every path compared with its record.
func (d *daemon) remount() {
	d.arms.armAll(d.cfg.Entries, false, func() {
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
	d.arms.armAll(d.cfg.Entries, false, func() {
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
	d.arms.armAll(ch.added, true, func() {
		d.sayUnmarked()
		d.scans.start(&scan{kind: "reload", fresh: isNew, only: isNew})
	})
	d.retryWatches()
	fmt.Fprintf(os.Stderr, "famids: SIGHUP: reloaded %s: %s\n", quoteIfNeeded(file), ch.counts())
	d.out.notice(ch.notice(cfg))
	d.checkConfigSecurity()
	d.base.changed() // the entries changed
	fitMemoryLimit()
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
	d.arms.armAll(d.cfg.Entries, false, func() {
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
				d.mountsChanged(d.mounts.update(now, d.onWatched))
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
	d.trouble.noticeList(summary, []string{"What these paths name changed, for as long as the mount stays. famids compares every watched path with its record; differences follow in reports with \"Found: " + foundAfterMount + "\"."}, lines)
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
