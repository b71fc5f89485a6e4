package main

// Unit tests of what a settled burst becomes.

import (
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
