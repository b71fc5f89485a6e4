package main

// Unit tests of the baseline: records taken back when a report is not
// delivered, records forgotten, and the entries of a directory.

import (
	"path/filepath"
	"slices"
	"testing"
)

func TestBaselineUnreport(t *testing.T) {
	bl := newBaseline("")
	old := attrs{Exists: true, Type: "file", Size: 1}
	bl.remember("/etc/passwd", old)
	changed := attrs{Exists: true, Type: "file", Size: 2}
	if before := bl.reported("/etc/passwd", changed); !before.same(old) {
		t.Errorf("reported returned %v as the record before, want %v", before, old)
	}
	// A second report before the first is delivered keeps the first's
	// record to go back to.
	bl.reported("/etc/passwd", attrs{Exists: true, Type: "file", Size: 3})
	bl.reported("/etc/shadow", attrs{Exists: true, Type: "file"}) // created
	bl.unreport("/etc/passwd")
	bl.unreport("/etc/shadow")
	if a, _ := bl.record("/etc/passwd"); !a.same(old) {
		t.Errorf("after an undelivered report, the record is %v, want %v", a, old)
	}
	if bl.has("/etc/shadow") {
		t.Error("an undelivered report of a created file left a record of it")
	}

	// Once every report is delivered, nothing is taken back.
	bl.reported("/etc/passwd", changed)
	bl.delivered()
	bl.unreport("/etc/passwd")
	if a, _ := bl.record("/etc/passwd"); !a.same(changed) {
		t.Errorf("after a delivered report, the record is %v, want %v", a, changed)
	}
}

func TestBaselineEntriesAndForget(t *testing.T) {
	bl := newBaseline("")
	file := attrs{Exists: true, Type: "file"}
	for _, p := range []string{"/etc", "/etc/passwd", "/etc/pam.d/sshd", "/etcetera", "/bin", "/usr/bin/ls"} {
		bl.remember(p, file)
	}
	if got, want := bl.entriesOf("/etc"), []string{"/etc/passwd"}; !slices.Equal(got, want) {
		t.Errorf("entriesOf(/etc) = %q, want %q", got, want)
	}
	if got, want := bl.entriesOf("/"), []string{"/bin", "/etc", "/etcetera"}; !slices.Equal(got, want) {
		t.Errorf("entriesOf(/) = %q, want %q", got, want)
	}
	bl.forget(func(p string) bool { return filepath.Dir(p) != "/etc" })
	if got, want := bl.paths(), []string{"/bin", "/etc", "/etc/pam.d/sshd", "/etcetera", "/usr/bin/ls"}; !slices.Equal(got, want) {
		t.Errorf("after forgetting /etc's entries, the paths are %q, want %q", got, want)
	}
	if bl.dirty {
		t.Error("a baseline kept nowhere is dirty")
	}
	bl.remember("/bin", attrs{}) // absent: no record
	if bl.has("/bin") {
		t.Error("an absent path has a record")
	}
}
