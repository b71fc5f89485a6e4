package main

// Unit tests of the reports: their text, the attributes they compare, and
// how path names are written.

import (
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
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
		Inode: 1234, Links: 1,
		SHA256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
	}
	lsAfter = attrs{
		Exists: true, Type: "file", Mode: 0o4755, UID: 0, GID: 0, Size: 140000,
		Mtime: time.Date(2026, 11, 25, 19, 15, 25, 123456789, time.UTC),
		Inode: 1234, Links: 1,
		SHA256: "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752",
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
			Found: "at start-up", After: attrs{
				Exists: true, Type: "file", Mode: 0o644, Size: 6,
				Mtime: time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC),
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
			[]string{"type", "mode", "size", "sha256"}},
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
		{"directory replaced by a file", dir, file, []string{"type", "size", "mtime", "inode", "links", "sha256"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := differs(tt.before, tt.after); !slices.Equal(got, tt.want) {
				t.Errorf("differs(\n\t%v,\n\t%v) = %q, want %q", tt.before, tt.after, got, tt.want)
			}
		})
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
			Mtime: time.Date(2026, 11, 25, 19, 15, 25, 5, time.UTC), Inode: 1234, Links: 1,
			SHA256: "abc123",
		}, "type=file mode=4755 uid=0 gid=10 size=138216 mtime=2026-11-25T19:15:25.000000005Z inode=1234 links=1 sha256=abc123"},
		{"plain file, whole second", attrs{
			Exists: true, Type: "file", Mode: 0o644, Size: 0,
			Mtime: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Inode: 7, Links: 2,
			SHA256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
		}, "type=file mode=0644 uid=0 gid=0 size=0 mtime=2026-01-02T03:04:05.000000000Z inode=7 links=2 sha256=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
		{"sticky directory", attrs{
			Exists: true, Type: "dir", Mode: 0o1777, Size: 4096,
			Mtime: time.Date(2026, 1, 2, 3, 4, 5, 120000000, time.UTC), Inode: 2, Links: 9,
		}, "type=dir mode=1777 uid=0 gid=0 size=4096 mtime=2026-01-02T03:04:05.120000000Z inode=2 links=9"},
		{"fifo", attrs{
			Exists: true, Type: "fifo", Mode: 0o600, UID: 1000, GID: 1000,
			Mtime: time.Date(2026, 1, 2, 3, 4, 5, 999999999, time.UTC), Inode: 3, Links: 1,
		}, "type=fifo mode=0600 uid=1000 gid=1000 size=0 mtime=2026-01-02T03:04:05.999999999Z inode=3 links=1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.a.String(); got != tt.want {
				t.Errorf("String() =\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

func TestStatPath(t *testing.T) {
	dir := t.TempDir()
	const helloSHA = "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03" // sha256 of "hello\n"

	t.Run("regular file", func(t *testing.T) {
		f := filepath.Join(dir, "file")
		if err := os.WriteFile(f, []byte("hello\n"), 0o640); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Chmod(f, 0o4750); err != nil { // setuid: os.Chmod would want os.ModeSetuid
			t.Fatal(err)
		}
		mtime := time.Date(2025, 6, 7, 8, 9, 10, 123456789, time.UTC)
		if err := os.Chtimes(f, mtime, mtime); err != nil {
			t.Fatal(err)
		}
		var st syscall.Stat_t
		if err := syscall.Stat(f, &st); err != nil {
			t.Fatal(err)
		}
		a := statPath(f)
		want := attrs{
			Exists: true, Type: "file", Mode: 0o4750, UID: st.Uid, GID: st.Gid, Size: 6,
			Mtime: mtime, Inode: st.Ino, Links: 1, SHA256: helloSHA,
			Dev: st.Dev, Ctime: time.Unix(st.Ctim.Sec, st.Ctim.Nsec).UTC(),
		}
		if a != want {
			t.Errorf("statPath =\n%v\nwant\n%v", a, want)
		}
		if a.Mtime.Location() != time.UTC {
			t.Errorf("mtime is in %v, want UTC", a.Mtime.Location())
		}
		// Through a symbolic link: the file it names.
		link := filepath.Join(dir, "link-to-file")
		if err := os.Symlink("file", link); err != nil {
			t.Fatal(err)
		}
		if got := statPath(link); got != want {
			t.Errorf("statPath through a symlink =\n%v\nwant\n%v", got, want)
		}
		// A hard link adds to links.
		if err := os.Link(f, filepath.Join(dir, "hardlink")); err != nil {
			t.Fatal(err)
		}
		if got := statPath(f).Links; got != 2 {
			t.Errorf("links after a hard link = %d, want 2", got)
		}
	})

	t.Run("empty file", func(t *testing.T) {
		f := filepath.Join(dir, "empty")
		if err := os.WriteFile(f, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if got, want := statPath(f).SHA256, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"; got != want {
			t.Errorf("sha256 of an empty file = %q, want %q", got, want)
		}
	})

	t.Run("directory", func(t *testing.T) {
		d := filepath.Join(dir, "sub")
		if err := os.Mkdir(d, 0o750); err != nil {
			t.Fatal(err)
		}
		a := statPath(d)
		if !a.Exists || a.Type != "dir" || a.Mode != 0o750 || a.SHA256 != "" || a.Inode == 0 {
			t.Errorf("statPath(directory) = %v, want type=dir mode=0750 and no sha256", a)
		}
	})

	t.Run("dangling symlink", func(t *testing.T) {
		l := filepath.Join(dir, "dangling")
		if err := os.Symlink("no-such-target", l); err != nil {
			t.Fatal(err)
		}
		a := statPath(l)
		if !a.Exists || a.Type != "symlink" || a.SHA256 != "" || a.Size != int64(len("no-such-target")) {
			t.Errorf("statPath(dangling symlink) = %v, want an existing symlink of size %d", a, len("no-such-target"))
		}
	})

	t.Run("fifo", func(t *testing.T) {
		p := filepath.Join(dir, "fifo")
		if err := syscall.Mkfifo(p, 0o600); err != nil {
			t.Fatal(err)
		}
		got := make(chan attrs, 1)
		go func() { got <- statPath(p) }()
		select {
		case a := <-got:
			if !a.Exists || a.Type != "fifo" || a.Mode != 0o600 || a.SHA256 != "" {
				t.Errorf("statPath(fifo) = %v, want type=fifo mode=0600 and no sha256", a)
			}
		case <-time.After(5 * time.Second):
			// Unblock the stuck open before failing.
			if f, err := os.OpenFile(p, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
				f.Close()
			}
			t.Fatal("statPath blocked on a FIFO")
		}
	})

	t.Run("missing path", func(t *testing.T) {
		for _, p := range []string{filepath.Join(dir, "missing"), filepath.Join(dir, "missing", "deeper")} {
			if a := statPath(p); a != (attrs{}) {
				t.Errorf("statPath(%s) = %#v, want the zero attrs", p, a)
			}
		}
	})
}

func TestHashFileFIFODoesNotBlock(t *testing.T) {
	// A FIFO swapped in between the stat and the hash must not block it.
	p := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(p, 0o600); err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 1)
	go func() { got <- hashFile(p, 1) }()
	select {
	case <-got:
	case <-time.After(5 * time.Second):
		if f, err := os.OpenFile(p, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			f.Close()
		}
		t.Fatal("hashFile blocked on a FIFO")
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

// TestRestatReusesHashOnlyWhenUnchanged checks the shortcut of rescans: a
// file that stat says is unchanged keeps its recorded hash; any write, even
// one that puts the mtime back, is hashed again because the ctime moved.
func TestRestatReusesHashOnlyWhenUnchanged(t *testing.T) {
	f := filepath.Join(t.TempDir(), "ls")
	writeFile(t, f, "real")
	prev := statPath(f)
	forged := prev
	forged.SHA256 = "recorded"
	if got := restat(f, forged).SHA256; got != "recorded" {
		t.Errorf("unchanged file: sha256 %q, want the recorded one reused", got)
	}
	// The kernel's clock for ctime is coarse: write until it moves.
	deadline := time.Now().Add(waitFor)
	var now attrs
	for {
		must(t, os.WriteFile(f, []byte("fake"), 0o644))
		must(t, os.Chtimes(f, prev.Mtime, prev.Mtime))
		now = restat(f, forged)
		if !now.Ctime.Equal(prev.Ctime) || time.Now().After(deadline) {
			break
		}
	}
	if !now.Mtime.Equal(prev.Mtime) || now.Size != prev.Size {
		t.Fatalf("the test needs the same size and mtime: %v, then %v", prev, now)
	}
	if now.SHA256 == "recorded" || now.SHA256 == prev.SHA256 {
		t.Errorf("a write with the mtime put back: sha256 %q, want the new content's", now.SHA256)
	}
}
