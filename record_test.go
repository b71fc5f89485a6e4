package main

// Unit tests of what famids records of a path, on real files.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// statPath records path as a report does, with nothing to trust.
func statPath(path string) attrs {
	return newRecorder().record(path, nil)
}

// needTool returns the path of a command a test needs. Without it the
// test is skipped, except in CI (CI=true), where .ci/run installs it and
// its absence is a failure.
func needTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is missing: .ci/run should have installed it", name)
		}
		t.Skipf("%s is not installed", name)
	}
	return p
}

// runTool runs a command a test needs to succeed.
func runTool(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(needTool(t, name), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// chattr sets inode flags on path and takes them off when the test ends,
// so that the test's directory can be removed.
func chattr(t testing.TB, flags, path string) {
	t.Helper()
	runTool(t, "chattr", flags, path)
	t.Cleanup(func() { exec.Command("chattr", "-ia", path).Run() })
}

func sha256Hex(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

func TestRecordRegularFile(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "file")
	must(t, os.WriteFile(f, []byte("hello\n"), 0o640))
	must(t, syscall.Chmod(f, 0o4750)) // setuid: os.Chmod would want os.ModeSetuid
	mtime := time.Date(2025, 6, 7, 8, 9, 10, 123456789, time.UTC)
	must(t, os.Chtimes(f, mtime, mtime))
	var st unix.Stat_t
	must(t, unix.Stat(f, &st))
	a := statPath(f)
	want := attrs{
		Exists: true, Type: "file", Mode: 0o4750, UID: st.Uid, GID: st.Gid, Size: 6,
		Mtime: mtime, Ctime: time.Unix(st.Ctim.Sec, st.Ctim.Nsec).UTC(),
		Inode: st.Ino, Links: 1, Dev: st.Dev, SHA256: sha256Hex([]byte("hello\n")),
		Flags: a.Flags, // the file system's own (ext4's extents): checked against lsattr below
	}
	if !a.same(want) || a.Ext != nil {
		t.Errorf("record =\n%v\nwant\n%v", a, want)
	}
	if a.Mtime.Location() != time.UTC || a.Ctime.Location() != time.UTC {
		t.Errorf("times are in %v and %v, want UTC", a.Mtime.Location(), a.Ctime.Location())
	}
	if _, err := exec.LookPath("lsattr"); err == nil {
		if got, want := flagLetters(a.Flags), lsattrLetters(t, f); got != want {
			t.Errorf("flags %q, lsattr says %q", got, want)
		}
	}

	// Through a symbolic link: the file it names, and where it points.
	link := filepath.Join(dir, "link-to-file")
	must(t, os.Symlink("file", link))
	got := statPath(link)
	if got.Ext == nil || got.Ext.Link != "file" {
		t.Errorf("record through a symlink: link %v, want file", got.Ext)
	}
	got.Ext = nil
	if !got.same(want) {
		t.Errorf("record through a symlink =\n%v\nwant\n%v", got, want)
	}
	// A hard link adds to links.
	must(t, os.Link(f, filepath.Join(dir, "hardlink")))
	if got := statPath(f).Links; got != 2 {
		t.Errorf("links after a hard link = %d, want 2", got)
	}
}

// lsattrLetters returns the letters lsattr prints for path, without its
// dashes.
func lsattrLetters(t *testing.T, path string) string {
	t.Helper()
	out := runTool(t, "lsattr", "-d", path)
	return strings.ReplaceAll(strings.Fields(out)[0], "-", "")
}

func TestRecordKinds(t *testing.T) {
	dir := t.TempDir()

	t.Run("empty file", func(t *testing.T) {
		f := filepath.Join(dir, "empty")
		must(t, os.WriteFile(f, nil, 0o644))
		if got, want := statPath(f).SHA256, sha256Hex(nil); got != want {
			t.Errorf("sha256 of an empty file = %q, want %q", got, want)
		}
	})

	t.Run("procfs file of size 0", func(t *testing.T) {
		const p = "/proc/sys/kernel/hostname"
		data, err := os.ReadFile(p)
		must(t, err)
		a := statPath(p)
		if a.Size != 0 {
			t.Skipf("%s has stat size %d: the test wants 0", p, a.Size)
		}
		if a.SHA256 != sha256Hex(data) {
			t.Errorf("sha256 of %s = %s, want that of its content %q", p, a.SHA256, data)
		}
		// Its stat tells nothing of its content: it is read again
		// even when stat says it is the file recorded before.
		prev := a
		prev.SHA256 = strings.Repeat("ab", 32)
		if got := newRecorder().record(p, &prev).SHA256; got != sha256Hex(data) {
			t.Errorf("%s compared with its record: sha256 %s, want it read again (%s)", p, got, sha256Hex(data))
		}
	})

	t.Run("empty file compared with its record", func(t *testing.T) {
		// An empty file whose stat is the one recorded is not read
		// again: a flood of empty files costs a stat each.
		f := filepath.Join(dir, "empty2")
		must(t, os.WriteFile(f, nil, 0o644))
		prev := statPath(f)
		prev.SHA256 = strings.Repeat("cd", 32)
		if got := newRecorder().record(f, &prev).SHA256; got != prev.SHA256 {
			t.Errorf("an unchanged empty file was read again: sha256 %s", got)
		}
		appendFile(t, f, "x")
		if got := newRecorder().record(f, &prev).SHA256; got != sha256Hex([]byte("x")) {
			t.Errorf("an empty file written: sha256 %s, want that of x", got)
		}
	})

	t.Run("directory", func(t *testing.T) {
		d := filepath.Join(dir, "sub")
		must(t, os.Mkdir(d, 0o750))
		a := statPath(d)
		if !a.Exists || a.Type != "dir" || a.Mode != 0o750 || a.SHA256 != "" || a.Inode == 0 {
			t.Errorf("record(directory) = %v, want type=dir mode=0750 and no sha256", a)
		}
	})

	t.Run("dangling symlink", func(t *testing.T) {
		l := filepath.Join(dir, "dangling")
		must(t, os.Symlink("no-such-target", l))
		a := statPath(l)
		if !a.Exists || a.Type != "symlink" || a.SHA256 != "" || a.Size != int64(len("no-such-target")) || a.Ext == nil || a.Ext.Link != "no-such-target" {
			t.Errorf("record(dangling symlink) = %v, want an existing symlink of size %d pointing to no-such-target", a, len("no-such-target"))
		}
	})

	t.Run("symlink target byte for byte", func(t *testing.T) {
		l := filepath.Join(dir, "odd-link")
		target := "V\xedctor\nline"
		must(t, os.Symlink(target, l))
		if a := statPath(l); a.Ext == nil || a.Ext.Link != target {
			t.Errorf("link = %q, want %q", a.Ext, target)
		}
	})

	t.Run("fifo", func(t *testing.T) {
		p := filepath.Join(dir, "fifo")
		must(t, syscall.Mkfifo(p, 0o600))
		a := recordWithin(t, p, nil)
		if !a.Exists || a.Type != "fifo" || a.Mode != 0o600 || a.SHA256 != "" {
			t.Errorf("record(fifo) = %v, want type=fifo mode=0600 and no sha256", a)
		}
	})

	t.Run("missing path", func(t *testing.T) {
		for _, p := range []string{filepath.Join(dir, "missing"), filepath.Join(dir, "missing", "deeper")} {
			if a := statPath(p); a.Exists || a.Ext != nil {
				t.Errorf("record(%s) = %#v, want the zero attrs", p, a)
			}
		}
	})
}

// recordWithin records path, failing the test if that blocks: a FIFO
// must never hold famids up.
func recordWithin(t *testing.T, p string, prev *attrs) attrs {
	t.Helper()
	got := make(chan attrs, 1)
	go func() { got <- newRecorder().record(p, prev) }()
	select {
	case a := <-got:
		return a
	case <-time.After(5 * time.Second):
		// Unblock the stuck open before failing.
		if f, err := os.OpenFile(p, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			f.Close()
		}
		t.Fatalf("recording %s blocked", p)
		return attrs{}
	}
}

// A FIFO swapped in between the stat and the open must not block it.
func TestReadInodeFIFODoesNotBlock(t *testing.T) {
	p := filepath.Join(t.TempDir(), "fifo")
	must(t, syscall.Mkfifo(p, 0o600))
	a := attrs{Exists: true, Type: "file", Size: 1} // what stat said before the swap
	done := make(chan struct{})
	go func() {
		newRecorder().readInode(context.Background(), nil, p, true, "", &a)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		if f, err := os.OpenFile(p, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			f.Close()
		}
		t.Fatal("readInode blocked on a FIFO")
	}
	if a.SHA256 != digestUnreadable {
		t.Errorf("a FIFO where a file was: sha256 %q, want %s", a.SHA256, digestUnreadable)
	}
}

func TestRecordExtendedAttributes(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "f")
	writeFile(t, f, "x")
	base := statPath(f)
	if base.Ext != nil {
		t.Fatalf("a new file has extended attributes: %+v", *base.Ext)
	}

	must(t, unix.Setxattr(f, "user.note", []byte("hello"), 0))
	must(t, unix.Setxattr(f, "trusted.hidden", []byte("x"), 0))
	a := statPath(f)
	want := "trusted.hidden:" + sha256Hex([]byte("x"))[:8] + ",user.note:" + sha256Hex([]byte("hello"))[:8]
	if a.Ext == nil || a.Ext.Xattrs != want {
		t.Fatalf("xattrs = %+v, want %s", a.Ext, want)
	}
	if d := differs(base, a); !contains(d, "xattrs") || !contains(d, "ctime") {
		t.Errorf("differs after setxattr = %q, want xattrs and ctime", d)
	}
	must(t, unix.Setxattr(f, "user.note", []byte("hellO"), 0))
	if d := differs(a, statPath(f)); !contains(d, "xattrs") {
		t.Errorf("differs after a value changed = %q, want xattrs", d)
	}
	// A name that could forge the list is quoted.
	must(t, unix.Setxattr(f, "user.a,b:c d", []byte("v"), 0))
	if x := statPath(f).Ext.Xattrs; !strings.Contains(x, `"user.a,b:c d":`) {
		t.Errorf("xattrs with an odd name = %s, want it quoted", x)
	}

	t.Run("capabilities", func(t *testing.T) {
		g := filepath.Join(dir, "prog")
		writeFile(t, g, "#!/bin/sh\n")
		before := statPath(g)
		runTool(t, "setcap", "cap_setuid,cap_net_raw+ep", g)
		after := statPath(g)
		want := strings.TrimSpace(strings.TrimPrefix(runTool(t, "getcap", g), g))
		if after.Ext == nil || after.Ext.Caps != want {
			t.Errorf("caps = %+v, want %q as getcap prints", after.Ext, want)
		}
		if d := differs(before, after); !contains(d, "caps") {
			t.Errorf("differs after setcap = %q, want caps", d)
		}
	})

	t.Run("access and default ACLs", func(t *testing.T) {
		g := filepath.Join(dir, "acl")
		writeFile(t, g, "x")
		must(t, os.Chmod(g, 0o644))
		before := statPath(g)
		runTool(t, "setfacl", "-m", "u:nobody:r", g)
		after := statPath(g)
		if after.Ext == nil || after.Ext.ACL != "user:nobody:r--,mask::r--" {
			t.Errorf("acl = %+v, want user:nobody:r--,mask::r--", after.Ext)
		}
		if d := differs(before, after); !contains(d, "acl") {
			t.Errorf("differs after setfacl = %q, want acl", d)
		}
		sub := filepath.Join(dir, "aclsub")
		must(t, os.Mkdir(sub, 0o755))
		runTool(t, "setfacl", "-d", "-m", "u:nobody:rx", sub)
		if a := statPath(sub); a.Ext == nil || !strings.Contains(a.Ext.DefaultACL, "user:nobody:r-x") {
			t.Errorf("default acl of a directory = %+v, want user:nobody:r-x in it", a.Ext)
		}
	})

	t.Run("inode flags", func(t *testing.T) {
		g := filepath.Join(dir, "immutable")
		writeFile(t, g, "x")
		before := statPath(g)
		chattr(t, "+i", g)
		after := statPath(g)
		if !strings.Contains(flagLetters(after.Flags), "i") {
			t.Errorf("flags after chattr +i = %q, want i", flagLetters(after.Flags))
		}
		if d := differs(before, after); !contains(d, "flags") {
			t.Errorf("differs after chattr +i = %q, want flags", d)
		}
		h := filepath.Join(dir, "appendonly")
		writeFile(t, h, "x")
		chattr(t, "+a", h)
		if got := flagLetters(statPath(h).Flags); !strings.Contains(got, "a") {
			t.Errorf("flags after chattr +a = %q, want a", got)
		}
	})
}

// TestRecordTrustsOnlyUnchanged checks the shortcut of comparisons: a
// file that stat says is unchanged keeps its recorded hash; any write,
// even one that puts the mtime back, is read again because the ctime
// moved.
func TestRecordTrustsOnlyUnchanged(t *testing.T) {
	rc := newRecorder()
	f := filepath.Join(t.TempDir(), "ls")
	writeFile(t, f, "real")
	prev := rc.record(f, nil)
	forged := prev
	forged.SHA256 = "recorded"
	if got := rc.record(f, &forged).SHA256; got != "recorded" {
		t.Errorf("unchanged file: sha256 %q, want the recorded one reused", got)
	}
	// The kernel's clock for ctime is coarse: write until it moves.
	deadline := time.Now().Add(waitFor)
	var now attrs
	for {
		must(t, os.WriteFile(f, []byte("fake"), 0o644))
		must(t, os.Chtimes(f, prev.Mtime, prev.Mtime))
		now = rc.record(f, &forged)
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
	// Content that could not be read is read again, whatever stat says.
	unread := now
	unread.SHA256 = digestUnreadable
	if got := rc.record(f, &unread).SHA256; got != now.SHA256 {
		t.Errorf("after an unreadable record: sha256 %q, want it read again (%s)", got, now.SHA256)
	}
}
