package main

// What could not be watched or looked at, told once: each kind of
// trouble of one moment in one notice, however many paths it concerns.

import (
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// troubles are what could not be watched or looked at: each is told once
// on standard error, and the watches that could not be set, or the jobs
// that do not return, of one moment in one notice, however many paths
// they concern.
type troubles struct {
	out         *publisher
	warned      map[string]bool            // told already
	watchErrs   []string                   // watches that could not be set, not yet in a notice
	watchErrsAt time.Time                  // when they are told in a notice
	stuck       []string                   // jobs that do not return, not yet in a notice
	unwatched   map[string]map[string]bool // entries with a watch that could not be set, with the errors
}

func newTroubles(out *publisher) *troubles {
	return &troubles{out: out, warned: make(map[string]bool), unwatched: make(map[string]map[string]bool)}
}

// warnOnce writes msg on standard error unless it already did.
func (t *troubles) warnOnce(msg string) {
	if !t.warned[msg] {
		t.warned[msg] = true
		fmt.Fprintf(os.Stderr, "famids: %s\n", msg)
	}
}

// watchFailed notes the watches of entry that could not be set, or, with
// no errors, that they all are: those that failed are tried again at each
// verification and each reload, and told in one notice (see
// noticeWatchErrors), each once.
func (t *troubles) watchFailed(entry string, errs ...error) {
	if len(errs) == 0 {
		for msg := range t.unwatched[entry] {
			delete(t.warned, msg) // told again should it fail again
		}
		delete(t.unwatched, entry)
		return
	}
	for _, err := range errs {
		msg := err.Error()
		if t.unwatched[entry] == nil {
			t.unwatched[entry] = make(map[string]bool)
		}
		t.unwatched[entry][msg] = true
		if !t.warned[msg] {
			t.warned[msg] = true
			if len(t.watchErrs) == 0 {
				t.watchErrsAt = time.Now().Add(gatherWatchErrors)
			}
			t.watchErrs = append(t.watchErrs, msg)
		}
	}
}

// unwatchedEntries returns the entries with a watch that could not be
// set.
func (t *troubles) unwatchedEntries() []string {
	return slices.Sorted(maps.Keys(t.unwatched))
}

// watchedFully reports whether every watch of entry is set.
func (t *troubles) watchedFully(entry string) bool { return len(t.unwatched[entry]) == 0 }

// watchErrorsDue returns when the watches that could not be set are told,
// or zero.
func (t *troubles) watchErrorsDue() time.Time { return t.watchErrsAt }

// shownOnStderr is how many lines of one notice's list famids also writes
// on standard error; listedInNotice, how many the notice lists.
const (
	shownOnStderr  = 20
	listedInNotice = 1000
)

// gatherWatchErrors is how long famids gathers watches that could not be
// set before it tells of them: a user making files by the thousand must
// not make a notice each.
const gatherWatchErrors = time.Second

// noticeWatchErrors tells, in one notice, of every watch that could not
// be set since it was last called: a hundred failures are one mail.
func (t *troubles) noticeWatchErrors() {
	errs := t.watchErrs
	if len(errs) == 0 {
		return
	}
	t.watchErrs = nil
	t.watchErrsAt = time.Time{}
	summary := "a watch could not be set: " + quoteIfNeeded(errs[0])
	if len(errs) > 1 {
		summary = fmt.Sprintf("%d watches could not be set", len(errs))
	}
	details := []string{"What these paths lead to is not fully watched; the rest is. famids tries again at each verification (-verify) and each reload (SIGHUP)."}
	for _, msg := range errs {
		if strings.Contains(msg, errNoWatches.Error()) {
			details = append(details, noWatchesAdvice)
			break
		}
	}
	t.noticeList(summary, details, errs)
}

// treeTooDeep tells, once for each tree, that the entries of its
// directory deep have paths longer than the kernel resolves: what lies
// below deep is not watched, recorded or compared.
func (t *troubles) treeTooDeep(tree, deep string) {
	key := "tree too deep " + tree
	if t.warned[key] {
		return
	}
	t.warned[key] = true
	summary := fmt.Sprintf("tree %s holds directories too deep to watch: below a directory %d levels down", quoteIfNeeded(tree), strings.Count(deep, "/"))
	fmt.Fprintf(os.Stderr, "famids: %s\n", summary)
	t.out.notice(notice{Summary: summary, Details: []string{
		fmt.Sprintf("The paths of the entries of this directory are longer than the %d bytes Linux resolves (PATH_MAX): what lies below it is not watched, recorded or compared, and whoever made it may hide files there. Look with find(1) from the directory:", unix.PathMax),
		quoteIfNeeded(deep)}})
}

// treeOver tells, once for each tree, that its directories need more
// watches than famids may take: need in all, where inotify allows limit.
// The directories walked first (those nearest the root) are watched.
func (t *troubles) treeOver(tree string, need, limit int) {
	key := "tree over " + tree
	if t.warned[key] {
		return
	}
	t.warned[key] = true
	summary := fmt.Sprintf("tree %s needs more inotify watches than famids may take: %d in all, where max_user_watches is %d", quoteIfNeeded(tree), need, limit)
	fmt.Fprintf(os.Stderr, "famids: %s\n", summary)
	t.out.notice(notice{Summary: summary, Details: []string{
		"famids takes at most three quarters of the limit for the directories of trees, leaving the rest to the other lines of the configuration. The directories nearest the tree's root are watched; in the others, a change of a file with a record is found at the next verification, which also tries again to watch them.",
		fmt.Sprintf("Raise the limit to at least %d (sysctl fs.inotify.max_user_watches=%d, and in /etc/sysctl.d), then send famids SIGHUP.", need*4/3+1, need*4/3+1)}})
}

const noWatchesAdvice = "Raise /proc/sys/fs/inotify/max_user_watches (sysctl fs.inotify.max_user_watches), then send famids SIGHUP."

// noticeStuck tells, in one notice, of every path whose job has not
// returned (a stat, an open or a read that hangs: a FUSE or NFS file
// system that does not answer), paths among them.
func (t *troubles) noticeStuck(paths ...string) {
	t.stuck = append(t.stuck, paths...)
	paths = t.stuck
	if len(paths) == 0 {
		return
	}
	t.stuck = nil
	summary := "a file system does not answer: " + quoteIfNeeded(paths[0])
	if len(paths) > 1 {
		summary = fmt.Sprintf("a file system does not answer: %d paths", len(paths))
	}
	details := []string{fmt.Sprintf("Looking at these paths (a stat, an open or a read) has not returned for %v. They are reported once it does; the rest is watched and reported as ever.", stuckAfter)}
	t.noticeList(summary, details, paths)
}

// noticeList sends a notice whose details end with a list, and writes
// the summary and the start of the list on standard error.
func (t *troubles) noticeList(summary string, details, list []string) {
	fmt.Fprintf(os.Stderr, "famids: %s\n", summary)
	for i, item := range list {
		if i == shownOnStderr {
			fmt.Fprintf(os.Stderr, "famids: ... and %d more (see the notice)\n", len(list)-shownOnStderr)
			break
		}
		fmt.Fprintf(os.Stderr, "famids: - %s\n", quoteIfNeeded(item))
	}
	for i, item := range list {
		if i == listedInNotice {
			details = append(details, fmt.Sprintf("... and %d more", len(list)-listedInNotice))
			break
		}
		details = append(details, "- "+quoteIfNeeded(item))
	}
	t.out.notice(notice{Summary: summary, Details: details})
}
