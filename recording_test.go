package main

// Unit tests of what a settled burst becomes.

import (
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Only a name the kernel gives a file made with O_TMPFILE, that never
// existed when famids looked, is passed over: a real file named #123 is
// reported as ever.
func TestPlaceholder(t *testing.T) {
	file := attrs{Exists: true, Type: "file"}
	for _, tt := range []struct {
		name          string
		path          string
		events        []string
		before, after attrs
		want          bool
	}{
		{"written before its name", "/etc/cron.d/#9983731", []string{"change"}, attrs{}, attrs{}, true},
		{"a real file of that name", "/etc/cron.d/#9983731", []string{"change"}, attrs{}, file, false},
		{"one famids recorded", "/etc/cron.d/#9983731", []string{"change"}, file, attrs{}, false},
		{"made and removed", "/etc/cron.d/#9983731", []string{"create", "delete"}, attrs{}, attrs{}, false},
		{"another name", "/etc/cron.d/#job", []string{"change"}, attrs{}, attrs{}, false},
		{"a bare #", "/etc/cron.d/#", []string{"change"}, attrs{}, attrs{}, false},
	} {
		b := &burst{path: tt.path, told: true, events: tt.events}
		if got := placeholder(b, tt.before, tt.after); got != tt.want {
			t.Errorf("%s: placeholder = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// A file famids could read neither time, whose stat is the same, has
// nothing new to tell; one whose stat moved, or that could be read once,
// has.
func TestStillUnreadable(t *testing.T) {
	at := time.Unix(1700000000, 0)
	leased := attrs{Exists: true, Type: "file", Size: 10, Mtime: at, Ctime: at, Inode: 7, SHA256: digestUnreadable}
	written := leased
	written.Mtime, written.Ctime = at.Add(time.Second), at.Add(time.Second)
	read := leased
	read.SHA256 = strings.Repeat("ab", 32)
	for _, tt := range []struct {
		name          string
		before, after attrs
		want          bool
	}{
		{"unreadable, unchanged", leased, leased, true},
		{"unreadable, written", leased, written, false},
		{"read once", read, leased, false},
	} {
		if got := stillUnreadable(tt.before, tt.after, differs(tt.before, tt.after)); got != tt.want {
			t.Errorf("%s: stillUnreadable = %v, want %v (differs: %q)", tt.name, got, tt.want, differs(tt.before, tt.after))
		}
	}
}

// After an overflow, a comparison may find a new file before the events
// queued past the overflow are read: their burst, recorded the same, has
// nothing to add, and no "Differs: nothing" report follows the
// comparison's. A later change is reported as ever.
func TestComparedThenEventsTellNothingNew(t *testing.T) {
	dir := t.TempDir()
	var out syncBuffer
	d := benchDaemon(t, dir+"\n")
	d.out.mail = newMailer(nil, "root", &out, io.Discard)
	t.Cleanup(func() { d.out.mail.close(time.Now().Add(time.Second)) })
	p := filepath.Join(dir, "new")
	writeFile(t, p, "x")
	after := statPath(p)
	d.scanned(&scan{kind: "overflow", found: foundAfterFlood, trust: true}, p, &look{after: after})
	d.recorded(&burst{path: p, told: true, events: []string{"create"}, entries: []string{dir}, first: time.Now()}, statPath(p))
	appendFile(t, p, "y")
	d.recorded(&burst{path: p, told: true, events: []string{"change"}, entries: []string{dir}, first: time.Now()}, statPath(p))
	deadline := time.Now().Add(waitFor)
	for strings.Count(out.String(), "Subject: ") < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	got := out.String()
	if n := strings.Count(got, "Subject: "); n != 2 || strings.Contains(got, "Differs: nothing") ||
		!strings.Contains(got, "Found: "+foundAfterFlood) || !strings.Contains(got, "Event: change\n") {
		t.Errorf("want the comparison's report and the change's, nothing else:\n%s", got)
	}
}

// A record out for longer than orderPatience no longer holds up the
// reports after it, and is reported itself once done; in a flood of
// records queued for minutes, taking what is ready passes over none of
// the late ones.
func TestLateRecordsAreReportedOnceDone(t *testing.T) {
	bs := newBursts(0)
	t0 := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	var recs []*ordered
	for i := range 10_000 {
		recs = append(recs, bs.recording(&burst{path: fmt.Sprintf("/d/f%05d", i)}, t0))
	}
	later := t0.Add(orderPatience + time.Millisecond)
	if got := bs.reportable(later); len(got) != 0 {
		t.Fatalf("%d reportable with no record done", len(got))
	}
	if len(bs.inOrder) != 0 {
		t.Errorf("%d late records still in the order: each record done would pass over them", len(bs.inOrder))
	}
	bs.finished(recs[5000])
	if got := bs.reportable(later); len(got) != 1 || got[0] != recs[5000] {
		t.Errorf("a late record done: %d reportable, want it alone", len(got))
	}
	young := bs.recording(&burst{path: "/d/young"}, later)
	bs.finished(recs[0])
	if got := bs.reportable(later); len(got) != 1 || got[0] != recs[0] {
		t.Errorf("the first late record done: %d reportable, want it alone", len(got))
	}
	if !bs.ordering() {
		t.Errorf("a young record out, and nothing says a record is out")
	}
	bs.finished(young)
	if got := bs.reportable(later); len(got) != 1 || got[0] != young {
		t.Errorf("the young record done: %d reportable", len(got))
	}
}
