package main

import (
	"fmt"
	"strings"
	"testing"
	"time"
	"unsafe"
)

// A packed record gives back what was put, whatever a state file held:
// hashes and types famids never writes, times of any year, no record at
// all.
func TestPackedRecordsGiveBackWhatWasPut(t *testing.T) {
	at := time.Date(2026, 12, 3, 9, 41, 7, 123456789, time.UTC)
	file := attrs{Exists: true, Type: "file", Mode: 0o4755, UID: 0, GID: 0, Size: 1 << 40, Mtime: at, Ctime: at.Add(time.Nanosecond),
		Inode: 1<<63 + 5, Links: 1 << 33, Dev: 0x803, SHA256: strings.Repeat("0f", 32), Flags: 0x10, Ext: &extended{Caps: "cap_setuid=ep"}}
	cases := map[string]attrs{
		"/bin/su":   file,
		"/gone":     {},
		"/dev/null": {Exists: true, Type: "chardev", Mode: 0o666, Rdev: 0x103},
		"/big":      changed(file, func(a *attrs) { a.SHA256 = digestPending }),
		"/locked": changed(file, func(a *attrs) {
			a.SHA256, a.Partial, a.busy, a.cut, a.compared = digestUnreadable, true, true, true, true
		}),
		"/upper":          changed(file, func(a *attrs) { a.SHA256 = strings.Repeat("0F", 32) }),
		"/short":          changed(file, func(a *attrs) { a.SHA256 = "abc123" }),
		"/odd\nname":      changed(file, func(a *attrs) { a.Type = "door" }),
		"/far":            changed(file, func(a *attrs) { a.Mtime, a.Ctime = time.Date(9999, 1, 1, 0, 0, 0, 999, time.UTC), time.Unix(-1<<40, 0) }),
		"/dir":            {Exists: true, Type: "dir", Mode: 0o1777, Mtime: at, Ctime: at},
		"/link":           {Exists: true, Type: "symlink", Ext: &extended{Link: "\xff/target"}},
		"/not-hex-at-all": changed(file, func(a *attrs) { a.SHA256 = strings.Repeat("zz", 32) }),
	}
	r := newPackedRecords()
	for p, a := range cases {
		r.put(p, a)
	}
	if r.len() != len(cases) {
		t.Fatalf("%d records, want %d", r.len(), len(cases))
	}
	for p, want := range cases {
		got, ok := r.get(p)
		if !ok || !got.same(want) || got.SHA256 != want.SHA256 || got.Type != want.Type || got.busy != want.busy || got.cut != want.cut || got.compared != want.compared {
			t.Errorf("%q: got %+v, want %+v", p, got, want)
		}
	}
	// An odd record replaced by a plain one, and removed, leaves nothing
	// aside.
	r.put("/short", file)
	r.remove("/odd\nname")
	if got, _ := r.get("/short"); got.SHA256 != file.SHA256 {
		t.Errorf("/short after a plain put: sha256 %q", got.SHA256)
	}
	if len(r.odd) != 2 {
		t.Errorf("%d records kept aside, want 2 (/upper and /not-hex-at-all): %v", len(r.odd), r.odd)
	}
	var paths []string
	for p := range r.under("/dir") {
		paths = append(paths, p)
	}
	if len(paths) != 0 {
		t.Errorf("under /dir: %q", paths)
	}
	r.put("/dir/f", file)
	for p := range r.under("/dir") {
		paths = append(paths, p)
	}
	if len(paths) != 1 || paths[0] != "/dir/f" {
		t.Errorf("under /dir: %q, want /dir/f", paths)
	}
	// Made and removed by the thousand, records leave their room.
	for i := range 5000 {
		r.put(fmt.Sprintf("/tmp/junk%d", i), file)
	}
	for i := range 5000 {
		r.remove(fmt.Sprintf("/tmp/junk%d", i))
	}
	if r.len() != len(cases) || len(r.chunks) > 1 {
		t.Errorf("%d records in %d chunks after 5,000 made and removed, want %d in one", r.len(), len(r.chunks), len(cases))
	}
	for p, want := range cases {
		if got, ok := r.get(p); p != "/odd\nname" && p != "/short" && (!ok || !got.same(want)) {
			t.Errorf("%q after a repack: got %+v, want %+v", p, got, want)
		}
	}
	if size := unsafe.Sizeof(packed{}); size > 128 {
		t.Errorf("a packed record takes %d bytes, want at most 128", size)
	}
}

// changed returns a copy of a changed by f.
func changed(a attrs, f func(*attrs)) attrs {
	f(&a)
	return a
}
