package main

// End-to-end tests of mounts on watched paths: what a mount hides, what
// an unmount brings back, and mounts moved.

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// mount runs mount(8) and unmounts at the end of the test.
func mount(t *testing.T, args ...string) {
	t.Helper()
	runTool(t, "mount", args...)
	target := args[len(args)-1]
	t.Cleanup(func() { exec.Command("umount", "-l", target).Run() })
}

func TestBindMountOverWatchedFile(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "sshd")
	writeFile(t, f, "real sshd")
	trojan := filepath.Join(dir, "trojan")
	writeFile(t, trojan, "trojan sshd")
	r := startFamids(t, f+"\n")

	mount(t, "--bind", trojan, f)
	m := r.waitReport(f, "change")
	if field(m.Body, "Found") != foundAfterMount {
		t.Errorf("report of a bind mount:\n%s", m.Body)
	}
	wantDiffers(t, m, "inode", "sha256")
	// What the path names now is watched.
	appendFile(t, f, "!")
	m = r.waitNthReport(f, 2)
	if field(m.Body, "Found") != "" {
		t.Errorf("a write through the bind mount was not seen as an event:\n%s", m.Body)
	}
	wantDiffers(t, m, "sha256")
	neverNothing(t, r)
}

// cronDir returns a new directory, a directory cron.d in it to watch, and
// the job it holds.
func cronDir(t *testing.T) (dir, d, job string) {
	t.Helper()
	dir = t.TempDir()
	d = filepath.Join(dir, "cron.d")
	must(t, os.Mkdir(d, 0o755))
	job = filepath.Join(d, "job")
	writeFile(t, job, "* * * * * root true\n")
	return dir, d, job
}

func TestTmpfsOverWatchedDirectory(t *testing.T) {
	_, d, job := cronDir(t)
	r := startFamids(t, d+"\n")

	mount(t, "-t", "tmpfs", "famids-test", d)
	m := r.waitReport(job, "delete")
	if field(m.Body, "Found") != foundAfterMount {
		t.Errorf("report of an entry hidden by a mount:\n%s", m.Body)
	}
	dm := r.waitReport(d, "change")
	wantDiffers(t, dm, "inode")
	// The directory on top is watched.
	evil := filepath.Join(d, "evil")
	writeFile(t, evil, "* * * * * root sh -i\n")
	if m := r.waitReport(evil, "create", "create, change"); field(m.Body, "Found") != "" {
		t.Errorf("an entry made on the mounted file system:\n%s", m.Body)
	}
	neverNothing(t, r)
}

// What an unmount brings back was there all along: its entries are
// reported as found after a mount change, never as made by a process
// famids cannot name. Over the real settle time, as an administrator runs
// famids.
func TestUnmountFromWatchedDirectory(t *testing.T) {
	_, d, job := cronDir(t)
	r := startFamids(t, d+"\n", "-settle", "200ms")
	mount(t, "-t", "tmpfs", "famids-test", d)
	r.waitReport(job, "delete")
	runTool(t, "umount", d)
	r.waitNotice("a mount on a watched path: unmounted: ")
	m := r.waitNthReport(job, 2)
	if field(m.Body, "Found") != foundAfterMount || field(m.Body, "Event") != "create" || strings.Contains(m.Body, "\nBy: ") {
		t.Errorf("the entry an unmount brought back:\n%s\nwant Event: create, Found: %s, no By: line", m.Body, foundAfterMount)
	}
	for _, m := range r.reports() {
		if field(m.Body, "Found") == "" {
			t.Errorf("a report of the mount or the unmount without Found:\n%s", m.Body)
		}
	}
	neverNothing(t, r)
}

// A file system moved onto a watched directory (mount --move) is told in
// a notice, and what it hides is reported.
func TestMountMovedOntoWatchedDirectory(t *testing.T) {
	dir, d, job := cronDir(t)
	elsewhere := filepath.Join(dir, "elsewhere")
	must(t, os.Mkdir(elsewhere, 0o755))
	// mount --move needs a mount whose parent is private.
	mount(t, "--bind", dir, dir)
	runTool(t, "mount", "--make-private", dir)
	mount(t, "-t", "tmpfs", "famids-test", elsewhere)
	r := startFamids(t, d+"\n")
	runTool(t, "mount", "--move", elsewhere, d)
	t.Cleanup(func() { exec.Command("umount", "-l", d).Run() })
	r.waitNotice("a mount on a watched path: moved: from " + elsewhere + " to " + d + " ")
	if m := r.waitReport(job, "delete"); field(m.Body, "Found") != foundAfterMount {
		t.Errorf("report of an entry hidden by a mount moved over it:\n%s", m.Body)
	}
}
