package main

// A mount on or above a watched path changes what the path names without
// an event on it. famids compares every path after a change of the mount
// table (see remount); it also reads the table at once, at each change,
// and tells of every mount or unmount on or above a watched path: a bind
// mount made, used and undone in a few milliseconds leaves no difference
// for a comparison to find.

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// A mountPoint is one line of /proc/self/mountinfo (proc(5)).
type mountPoint struct {
	id     int
	root   string // what of its file system is mounted
	path   string // where
	fstype string
	source string
}

func (m mountPoint) String() string {
	return fmt.Sprintf("%s (%s %s%s)", quoteIfNeeded(m.path), quoteIfNeeded(m.fstype), quoteIfNeeded(m.source), rootSuffix(m.root))
}

func rootSuffix(root string) string {
	if root == "/" || root == "" {
		return ""
	}
	return ", " + quoteIfNeeded(root)
}

// readMounts reads the mount table famids sees, by mount id.
func readMounts() (map[int]mountPoint, error) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	return parseMounts(string(data)), nil
}

// parseMounts parses the text of /proc/self/mountinfo: ID PARENT MAJ:MIN
// ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTIONS, the
// paths with space, tab, newline and backslash written as octal escapes.
// Lines it cannot read are skipped.
func parseMounts(text string) map[int]mountPoint {
	mounts := make(map[int]mountPoint)
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) < 10 {
			continue
		}
		id, err := strconv.Atoi(f[0])
		if err != nil {
			continue
		}
		sep := -1
		for i := 6; i < len(f); i++ {
			if f[i] == "-" {
				sep = i
				break
			}
		}
		if sep < 0 || sep+2 >= len(f) {
			continue
		}
		mounts[id] = mountPoint{id: id, root: unescapeMount(f[3]), path: unescapeMount(f[4]),
			fstype: unescapeMount(f[sep+1]), source: unescapeMount(f[sep+2])}
	}
	return mounts
}

// unescapeMount undoes the octal escapes of mountinfo (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// A mountTable is the mount table as famids last read it, and when a
// change of it is to be acted on.
type mountTable struct {
	mounts         map[int]mountPoint // by mount id; nil before the first read
	reading, again bool               // a read is out; another is asked for meanwhile
	actAt          time.Time          // when a change is acted on; zero when none is
	recent         []mountChange      // the changes of the last recentMounts, oldest first
}

// A mountChange is where a mount or an unmount was seen, and when.
type mountChange struct {
	path string
	at   time.Time
}

// recentMounts is how long a change of the mount table is remembered,
// for the bursts of events it sent: longer than a burst waits (20 times
// -settle at most) plus the read of the table.
const recentMounts = 30 * time.Second

// changedOn reports whether a mount or an unmount on path, or on a
// directory above it, was seen at since or after: the events on path
// then may be the mount's, not a process's.
func (t *mountTable) changedOn(path string, since time.Time) bool {
	for _, c := range t.recent {
		if !c.at.Before(since) && (c.path == path || c.path == "/" || strings.HasPrefix(path, c.path+"/")) {
			return true
		}
	}
	return false
}

// note remembers the mounts and unmounts at paths, seen at now, and
// forgets those older than recentMounts.
func (t *mountTable) note(paths []string, now time.Time) {
	keep := 0
	for _, c := range t.recent {
		if now.Sub(c.at) < recentMounts {
			t.recent[keep] = c
			keep++
		}
	}
	t.recent = t.recent[:keep]
	for _, p := range paths {
		if len(t.recent) < maxRecentMounts {
			t.recent = append(t.recent, mountChange{p, now})
		}
	}
}

// maxRecentMounts bounds the changes remembered: a loop of mounts must not
// make famids hold more.
const maxRecentMounts = 1024

// changed notes a change of the mount table, to act on after mountSettle:
// a mount seldom comes alone.
func (t *mountTable) changed(now time.Time) {
	if t.actAt.IsZero() {
		t.actAt = now.Add(mountSettle)
	}
}

// due reports whether a change is to be acted on by now, and forgets it.
func (t *mountTable) due(now time.Time) bool {
	if t.actAt.IsZero() || now.Before(t.actAt) {
		return false
	}
	t.actAt = time.Time{}
	return true
}

// next returns when a change is to be acted on, or zero.
func (t *mountTable) next() time.Time { return t.actAt }

// startRead reports whether a read of the table may start now; when one
// is out already, another follows it.
func (t *mountTable) startRead() bool {
	if t.reading {
		t.again = true
		return false
	}
	t.reading = true
	return true
}

// readDone ends a read; it reports whether another was asked for
// meanwhile.
func (t *mountTable) readDone() (again bool) {
	t.reading = false
	again, t.again = t.again, false
	return again
}

// A mountDiff is what changed in the mount table on or above watched
// paths: a line for each change, for a notice, and the mounts that came
// and went (a mount moved is both: gone from where it was, come where it
// is).
type mountDiff struct {
	lines      []string
	came, went []mountPoint
}

// update takes now as the table, and returns what changed since the
// table read before at paths watched says change what a watched path
// names.
func (t *mountTable) update(now map[int]mountPoint, watched func(path string) bool) mountDiff {
	before := t.mounts
	t.mounts = now
	var d mountDiff
	if before == nil {
		return d // the first look: nothing to compare with
	}
	var at []string
	for id, m := range now {
		was, ok := before[id]
		switch {
		case !ok && watched(m.path):
			d.lines, d.came = append(d.lines, "mounted: "+m.String()), append(d.came, m)
			at = append(at, m.path)
		case ok && was.path != m.path && (watched(m.path) || watched(was.path)):
			// mount --move: the same mount, elsewhere.
			d.lines = append(d.lines, "moved: from "+quoteIfNeeded(was.path)+" to "+m.String())
			d.came, d.went = append(d.came, m), append(d.went, was)
			at = append(at, was.path, m.path)
		}
	}
	for id, m := range before {
		if _, ok := now[id]; !ok && watched(m.path) {
			d.lines, d.went = append(d.lines, "unmounted: "+m.String()), append(d.went, m)
			at = append(at, m.path)
		}
	}
	t.note(at, time.Now())
	return d
}
