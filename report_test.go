package main

// Unit tests of the reports: their text, the attributes they compare, and
// how path names are written.

import (
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// goldenFile compares got with testdata/name, or rewrites the file under
// -update.
func goldenFile(t *testing.T, name, got string) {
	t.Helper()
	file := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (run go test -run %s -update to create it)", err, t.Name())
	}
	if got != string(want) {
		t.Errorf("%s differs from the golden file %s:\n--- got\n%s--- want\n%s", t.Name(), file, got, want)
	}
}

// Hand-chosen attributes of a /bin/ls that was made setuid and rewritten.
var (
	lsBefore = attrs{
		Exists: true, Type: "file", Mode: 0o755, UID: 0, GID: 0, Size: 138216,
		Mtime: time.Date(2026, 11, 20, 8, 0, 0, 5, time.UTC),
		Ctime: time.Date(2026, 11, 20, 8, 0, 0, 7, time.UTC),
		Inode: 1234, Links: 1,
		SHA256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
		Flags:  0x80000,
	}
	lsAfter = attrs{
		Exists: true, Type: "file", Mode: 0o4755, UID: 0, GID: 0, Size: 140000,
		Mtime: time.Date(2026, 11, 25, 19, 15, 25, 123456789, time.UTC),
		Ctime: time.Date(2026, 11, 25, 19, 15, 25, 223456789, time.UTC),
		Inode: 1234, Links: 1,
		SHA256: "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752",
		Flags:  0x80010,
		Ext:    &extended{Caps: "cap_setuid=ep", Xattrs: "user.hidden:2cf24dba"},
	}
)

func TestReportBodyGolden(t *testing.T) {
	// Time in a zone other than UTC: the report must say it in UTC,
	// to the second.
	when := time.Date(2026, 11, 25, 20, 15, 25, 987654321, time.FixedZone("CET", 3600))
	tests := []struct {
		golden string
		r      report
	}{
		{"report.golden", report{
			Path: "/bin/ls", Events: []string{"change"}, Host: "web1", Time: when,
			Before: lsBefore, After: lsAfter,
		}},
		{"report-found.golden", report{
			Path: "/etc/cron.d/evil", Events: []string{"create"}, Host: "web1", Time: when,
			Found: foundAtStart, After: attrs{
				Exists: true, Type: "file", Mode: 0o644, Size: 6,
				Mtime: time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC),
				Ctime: time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC),
				Inode: 99, Links: 1,
				SHA256: "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03",
			},
		}},
		{"report-events.golden", report{
			Path: "/etc/bad\nname", Events: []string{"delete", "create"}, Host: "web1", Time: when,
			Before: lsBefore, After: lsBefore,
		}},
	}
	for _, tt := range tests {
		t.Run(strings.TrimSuffix(tt.golden, ".golden"), func(t *testing.T) {
			goldenFile(t, tt.golden, tt.r.body())
		})
	}
}

// The first lines are the Perl script's, whatever the golden file says.
func TestReportBodyPerlHead(t *testing.T) {
	r := report{Path: "/bin/ls", Events: []string{"change"}, Host: "h", Time: time.Unix(0, 0), Before: lsBefore, After: lsAfter}
	want := "Possible intrusion:\nPathname: /bin/ls\nEvent: change\n"
	if got := r.body(); !strings.HasPrefix(got, want) {
		t.Errorf("body starts\n%s\nwant it to start\n%s", got, want)
	}
}

func TestNoticeBodyGolden(t *testing.T) {
	body := noticeBody("a watch could not be set: watch /etc: out of inotify watches",
		"/etc/passwd is not fully watched; the rest is.",
		"a detail that ends in a newline already\n",
		"line one\nline two")
	goldenFile(t, "notice.golden", body)
	if !strings.HasPrefix(body, "Notice: ") {
		t.Errorf("notice does not start with \"Notice: \": %q", body)
	}
	if got, want := noticeBody("nothing else"), "Notice: nothing else\n"; got != want {
		t.Errorf("noticeBody without details = %q, want %q", got, want)
	}
}

func TestDiffers(t *testing.T) {
	file := lsBefore
	dir := attrs{
		Exists: true, Type: "dir", Mode: 0o755, UID: 0, GID: 0, Size: 4096,
		Mtime: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Inode: 2, Links: 5,
	}
	with := func(a attrs, f func(*attrs)) attrs {
		f(&a)
		return a
	}
	tests := []struct {
		name          string
		before, after attrs
		want          []string
	}{
		{"identical files", file, file, nil},
		{"both absent", attrs{}, attrs{}, nil},
		{"absent then present", attrs{}, file, []string{"existence"}},
		{"present then absent", file, attrs{}, []string{"existence"}},
		{"mode only", file, with(file, func(a *attrs) { a.Mode = 0o4755 }), []string{"mode"}},
		{"mtime nanoseconds only", file, with(file, func(a *attrs) { a.Mtime = a.Mtime.Add(1) }), []string{"mtime"}},
		{"same instant in another zone", file, with(file, func(a *attrs) { a.Mtime = a.Mtime.In(time.FixedZone("X", 7200)) }), nil},
		{"content rewritten", file, with(file, func(a *attrs) {
			a.SHA256 = lsAfter.SHA256
			a.Size++
			a.Mtime = a.Mtime.Add(time.Hour)
		}), []string{"size", "mtime", "sha256"}},
		{"owner and group", file, with(file, func(a *attrs) { a.UID, a.GID = 1000, 1000 }), []string{"uid", "gid"}},
		{"replaced by another inode", file, with(file, func(a *attrs) { a.Inode = 4321 }), []string{"inode"}},
		{"hard link added", file, with(file, func(a *attrs) { a.Links = 2 }), []string{"links"}},
		{"file became a symlink", file, attrs{Exists: true, Type: "symlink", Mode: 0o777, Mtime: file.Mtime, Inode: 1234, Links: 1, Size: 7},
			[]string{"type", "mode", "size", "ctime", "sha256"}},
		{"directory: entries changed its size, mtime and links", dir, with(dir, func(a *attrs) {
			a.Size = 8192
			a.Mtime = a.Mtime.Add(time.Minute)
			a.Links = 6
		}), nil},
		{"directory: mode and uid", dir, with(dir, func(a *attrs) {
			a.Mode = 0o777
			a.UID = 1000
			a.Mtime = a.Mtime.Add(time.Minute)
		}), []string{"mode", "uid"}},
		{"directory replaced by another", dir, with(dir, func(a *attrs) { a.Inode = 3 }), []string{"inode"}},
		{"directory replaced by a file", dir, file, []string{"type", "size", "mtime", "ctime", "inode", "links", "sha256"}},
		{"ctime only: chattr, or a write with mtime put back", file, with(file, func(a *attrs) { a.Ctime = a.Ctime.Add(1) }), []string{"ctime"}},
		{"same inode number on another device: a bind mount", file, with(file, func(a *attrs) { a.Dev++ }), []string{"inode"}},
		{"immutable flag", file, with(file, func(a *attrs) { a.Flags |= 0x10 }), []string{"flags"}},
		{"capabilities", file, with(file, func(a *attrs) { a.Ext = &extended{Caps: "cap_setuid=ep"} }), []string{"caps"}},
		{"acl, default acl, selinux, xattrs", file, with(file, func(a *attrs) {
			a.Ext = &extended{ACL: "user:nobody:r--,mask::r--", DefaultACL: "user::rwx", SELinux: "u:r:t:s0", Xattrs: "user.x:00000000"}
		}), []string{"acl", "default_acl", "selinux", "xattrs"}},
		{"symbolic link re-pointed at an identical file", with(file, func(a *attrs) { a.Ext = &extended{Link: "a"} }),
			with(file, func(a *attrs) { a.Ext = &extended{Link: "b"} }), []string{"link"}},
		{"unreadable is never the same as unreadable", with(file, func(a *attrs) { a.SHA256 = digestUnreadable }),
			with(file, func(a *attrs) { a.SHA256 = digestUnreadable }), []string{"sha256"}},
		{"an older record: no flags or extended attributes to compare", with(file, func(a *attrs) { a.Partial, a.Flags = true, 0 }),
			with(file, func(a *attrs) { a.Ext = &extended{Caps: "cap_setuid=ep"} }), nil},
		{"an extended attribute's value changed, its short digest alike", with(file, func(a *attrs) { a.Ext = &extended{Xattrs: "trusted.x:770e6076", XattrsSum: "aa"} }),
			with(file, func(a *attrs) { a.Ext = &extended{Xattrs: "trusted.x:770e6076", XattrsSum: "bb"} }), []string{"xattrs"}},
		{"a file that could not be opened: its flags are not known", file, with(file, func(a *attrs) { a.Partial, a.Flags, a.SHA256 = true, 0, digestUnreadable }),
			[]string{"sha256"}},
		{"another device number", with(file, func(a *attrs) { a.Type, a.Rdev, a.SHA256 = "chardev", 0x103, "" }),
			with(file, func(a *attrs) { a.Type, a.Rdev, a.SHA256 = "chardev", 0x101, "" }), []string{"rdev"}},
		{"directory grown: the file system's own index flag", with(dir, func(a *attrs) { a.Flags = 0x80000 }),
			with(dir, func(a *attrs) { a.Flags = 0x81000 }), nil},
		{"directory: ctime of its entries", dir, with(dir, func(a *attrs) { a.Ctime = a.Ctime.Add(time.Second) }), nil},
		{"directory: acl", dir, with(dir, func(a *attrs) { a.Ext = &extended{DefaultACL: "user::rwx"} }), []string{"default_acl"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := differs(tt.before, tt.after); !slices.Equal(got, tt.want) {
				t.Errorf("differs(\n\t%v,\n\t%v) = %q, want %q", tt.before, tt.after, got, tt.want)
			}
		})
	}
}

// An event on a directory itself is not one of its entries: its times
// are then differences, never "nothing".
func TestEventDiffers(t *testing.T) {
	dir := attrs{Exists: true, Type: "dir", Mode: 0o755, Inode: 2, Links: 5,
		Mtime: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Ctime: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	touched := dir
	touched.Mtime = touched.Mtime.Add(-time.Hour)
	touched.Ctime = touched.Ctime.Add(time.Second)
	if got := eventDiffers(dir, touched); !slices.Equal(got, []string{"mtime", "ctime"}) {
		t.Errorf("eventDiffers(touched directory) = %q, want mtime ctime", got)
	}
	chmodded := touched
	chmodded.Mode = 0o700
	if got := eventDiffers(dir, chmodded); !slices.Equal(got, []string{"mode"}) {
		t.Errorf("eventDiffers(chmod of a directory) = %q, want mode", got)
	}
	r := report{Path: "/d", Events: []string{"change"}, Before: dir, After: touched}
	if got := field(r.body(), "Differs"); got != "mtime ctime" {
		t.Errorf("report of a touched directory: Differs: %s, want mtime ctime", got)
	}
	r.Found = foundAtVerify
	if got := field(r.body(), "Differs"); got != "nothing" {
		t.Errorf("found report of a directory whose entries changed: Differs: %s, want nothing", got)
	}
}

// Times an intruder sets with utimensat(2) to mislead, and ordinary ones,
// are written as time's own formatting writes them.
func TestAppendTime(t *testing.T) {
	for _, tm := range []time.Time{
		time.Date(2026, 11, 25, 19, 15, 25, 5, time.UTC),
		time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(999, 12, 31, 23, 59, 59, 999999999, time.FixedZone("X", 3600)),
		time.Unix(-1e12, 0), time.Unix(1e13, 7), time.Time{},
	} {
		got := string(appendTime(nil, "", tm))
		want := tm.UTC().Format("2006-01-02T15:04:05.000000000Z07:00")
		if got != want {
			t.Errorf("appendTime(%v) = %s, want %s", tm, got, want)
		}
	}
}

func TestAttrsString(t *testing.T) {
	if got := (attrs{}).String(); got != "absent" {
		t.Errorf("zero attrs = %q, want absent", got)
	}
	// Absent, whatever else is set.
	if got := (attrs{Type: "file", Mode: 0o644}).String(); got != "absent" {
		t.Errorf("attrs with Exists false = %q, want absent", got)
	}
	tests := []struct {
		name string
		a    attrs
		want string
	}{
		{"setuid file", attrs{
			Exists: true, Type: "file", Mode: 0o4755, UID: 0, GID: 10, Size: 138216,
			Mtime: time.Date(2026, 11, 25, 19, 15, 25, 5, time.UTC), Ctime: time.Date(2026, 11, 25, 19, 15, 26, 0, time.UTC),
			Inode: 1234, Links: 1, SHA256: "abc123",
		}, "type=file mode=4755 uid=0 gid=10 size=138216 mtime=2026-11-25T19:15:25.000000005Z ctime=2026-11-25T19:15:26.000000000Z inode=1234 links=1 sha256=abc123"},
		{"plain file, whole second", attrs{
			Exists: true, Type: "file", Mode: 0o644, Size: 0,
			Mtime: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Inode: 7, Links: 2,
			SHA256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
		}, "type=file mode=0644 uid=0 gid=0 size=0 mtime=2026-01-02T03:04:05.000000000Z ctime=0001-01-01T00:00:00.000000000Z inode=7 links=2 sha256=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
		{"sticky directory", attrs{
			Exists: true, Type: "dir", Mode: 0o1777, Size: 4096,
			Mtime: time.Date(2026, 1, 2, 3, 4, 5, 120000000, time.UTC), Inode: 2, Links: 9,
		}, "type=dir mode=1777 uid=0 gid=0 size=4096 mtime=2026-01-02T03:04:05.120000000Z ctime=0001-01-01T00:00:00.000000000Z inode=2 links=9"},
		{"fifo", attrs{
			Exists: true, Type: "fifo", Mode: 0o600, UID: 1000, GID: 1000,
			Mtime: time.Date(2026, 1, 2, 3, 4, 5, 999999999, time.UTC), Inode: 3, Links: 1,
		}, "type=fifo mode=0600 uid=1000 gid=1000 size=0 mtime=2026-01-02T03:04:05.999999999Z ctime=0001-01-01T00:00:00.000000000Z inode=3 links=1"},
		{"everything that gives power or hides", attrs{
			Exists: true, Type: "file", Mode: 0o755, Size: 1, Inode: 5, Links: 1, SHA256: digestUnreadable,
			Mtime: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Ctime: time.Date(2026, 1, 2, 3, 4, 6, 0, time.UTC),
			Flags: 0x80030,
			Ext: &extended{Link: "../x y", Caps: "cap_net_raw=ei cap_chown+ep", ACL: "user:nobody:r--,mask::r--",
				DefaultACL: "user::rwx,group::r-x,other::---", SELinux: "system_u:object_r:bin_t:s0", Xattrs: `"user.a b":12345678,user.c:9abcdef0`},
		}, `type=file mode=0755 uid=0 gid=0 size=1 mtime=2026-01-02T03:04:05.000000000Z ctime=2026-01-02T03:04:06.000000000Z inode=5 links=1 sha256=unreadable` +
			` flags=iae link="../x y" caps="cap_net_raw=ei cap_chown+ep" acl=user:nobody:r--,mask::r-- default_acl=user::rwx,group::r-x,other::---` +
			` selinux=system_u:object_r:bin_t:s0 xattrs="\"user.a b\":12345678,user.c:9abcdef0"`},
		{"a link target that could forge a line", attrs{Exists: true, Type: "symlink", Mode: 0o777, Ext: &extended{Link: "x\nAfter: absent"}},
			`type=symlink mode=0777 uid=0 gid=0 size=0 mtime=0001-01-01T00:00:00.000000000Z ctime=0001-01-01T00:00:00.000000000Z inode=0 links=0 link="x\nAfter: absent"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.a.String(); got != tt.want {
				t.Errorf("String() =\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

func TestQuoteIfNeeded(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"/bin/ls", "/bin/ls"},
		{"/home/user/.bash_history", "/home/user/.bash_history"},
		{"/srv/with space/é", "/srv/with space/é"},
		{"", ""},
		{"/tmp/evil\nEvent: nothing", `"/tmp/evil\nEvent: nothing"`},
		{"/tmp/a\tb", `"/tmp/a\tb"`},
		{"/tmp/\x1b[31mred", `"/tmp/\x1b[31mred"`},
		{"/tmp/\r", `"/tmp/\r"`},
		{"/tmp/\xff\xfe", `"/tmp/\xff\xfe"`},
		{"/tmp/line\u2028sep", `"/tmp/line\u2028sep"`},
		{"/tmp/para\u2029sep", `"/tmp/para\u2029sep"`},
		{"/tmp/\x7f", `"/tmp/\x7f"`},
		{`/tmp/"quoted"`, `"/tmp/\"quoted\""`},
		{`/tmp/back\slash`, `"/tmp/back\\slash"`},
	}
	for _, tt := range tests {
		if got := quoteIfNeeded(tt.in); got != tt.want {
			t.Errorf("quoteIfNeeded(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

// No path name can add a line to a report.
func TestReportBodyPathCannotForgeLines(t *testing.T) {
	for _, p := range []string{"/tmp/x\nEvent: nothing", "/tmp/x\rEvent: nothing", "/tmp/x\u2028Event: nothing", "/tmp/x\u0085Event: nothing"} {
		r := report{Path: p, Events: []string{"change"}, Host: "h", Time: time.Unix(0, 0)}
		body := r.body()
		lines := strings.Split(strings.TrimSuffix(body, "\n"), "\n")
		if len(lines) != 8 {
			t.Errorf("path %q gave a body of %d lines, want 8:\n%s", p, len(lines), body)
		}
		for _, l := range lines {
			if strings.ContainsAny(l, "\r\u2028\u2029\u0085") {
				t.Errorf("path %q: line %q holds a line separator", p, l)
			}
		}
	}
}

// A name that holds a summary's own separators cannot pass, in a digest's
// line, syslog or a resume notice, for the fields after it.
func TestSummaryPathCannotForgeFields(t *testing.T) {
	for _, tc := range []struct{ path, want string }{
		{"/tmp/y: create; differs: existence; by sshd[1] auid=0", `"/tmp/y: create; differs: existence; by sshd[1] auid=0": create; differs: existence`},
		{"/tmp/y; by sshd[1] auid=0", `"/tmp/y; by sshd[1] auid=0": create; differs: existence`},
		{`"/tmp/y"`, `"\"/tmp/y\"": create; differs: existence`},
		{"/tmp/a:b;c", "/tmp/a:b;c: create; differs: existence"}, // no space after: nothing to forge
	} {
		r := report{Path: tc.path, Events: []string{"create"}, After: attrs{Exists: true, Type: "file"}}
		if got := r.summary(); got != tc.want {
			t.Errorf("summary of %q:\n got %s\nwant %s", tc.path, got, tc.want)
		}
	}
}

// A report that names no process says so, and why, when fanotify could
// not mark the file: its reader does not take it for a change made by
// nobody.
func TestReportSaysWhyNoProcess(t *testing.T) {
	r := &report{Path: "/srv/ovl/passwd", Events: []string{"change"}, Host: "h", Time: time.Unix(0, 0),
		Before: attrs{Exists: true, Type: "file"}, After: attrs{Exists: true, Type: "file", Size: 1}, ByUnknown: true}
	if body := r.body(); !strings.Contains(body, "\nBy: unknown\n") {
		t.Errorf("no By: unknown line:\n%s", body)
	}
	r.Unmarked = "its file system cannot tell fanotify which file changed\nBy: forged"
	body := r.body()
	if !strings.Contains(body, "\nBy: unknown (fanotify cannot mark this file: \"its file system cannot tell fanotify which file changed\\nBy: forged\")\n") {
		t.Errorf("the By: line does not say why, quoted:\n%s", body)
	}
}
