package main

// End-to-end tests of mounts on watched paths: what a mount hides, what
// an unmount brings back, and mounts moved.

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// mount runs mount(8) and unmounts at the end of the test.
func mount(t *testing.T, args ...string) {
	t.Helper()
	runTool(t, "mount", args...)
	target := args[len(args)-1]
	t.Cleanup(func() { exec.Command("umount", "-l", target).Run() })
}

// sshdAndTrojan returns a file to watch and a trojan of it to mount
// over it, in a new directory.
func sshdAndTrojan(t *testing.T) (f, trojan string) {
	t.Helper()
	dir := t.TempDir()
	f, trojan = filepath.Join(dir, "sshd"), filepath.Join(dir, "trojan")
	writeFile(t, f, "real sshd")
	writeFile(t, trojan, "trojan sshd")
	return f, trojan
}

func TestBindMountOverWatchedFile(t *testing.T) {
	f, trojan := sshdAndTrojan(t)
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

// What an unmount brings back was there all along: compared with what it
// was before the mount, an entry left alone is not reported again, and
// no report passes for a process's change. Over the real settle time, as
// an administrator runs famids.
func TestUnmountFromWatchedDirectory(t *testing.T) {
	_, d, job := cronDir(t)
	r := startFamids(t, d+"\n", "-settle", "200ms")
	mount(t, "-t", "tmpfs", "famids-test", d)
	r.waitReport(job, "delete")
	runTool(t, "umount", d)
	r.waitNotice("a mount on a watched path: unmounted: ")
	time.Sleep(time.Second) // the events of the unmount settle, and the comparison after it ends
	if got := r.reportsOn(job); len(got) != 1 {
		t.Errorf("%d reports on the entry the unmount brought back as it was, want 1 (the mount hiding it):\n%s", len(got), r.dump())
	}
	for _, m := range r.reports() {
		if field(m.Body, "Found") == "" || strings.Contains(m.Body, "\nBy: ") {
			t.Errorf("a report of the mount or the unmount without Found, or naming a process:\n%s", m.Body)
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

// A file written while a mount covers its directory (through a
// descriptor taken before) is compared, once the mount is gone, with what
// it was before the mount: the write is reported, the untouched file is
// not.
func TestWriteUnderAMountFoundAtUnmount(t *testing.T) {
	_, d, job := cronDir(t)
	other := filepath.Join(d, "other")
	writeFile(t, other, "* * * * * root true\n")
	r := startFamids(t, d+"\n", "-settle", "200ms")
	under, err := os.Open(d) // the directory under the mount
	must(t, err)
	defer under.Close()
	mount(t, "-t", "tmpfs", "famids-test", d)
	r.waitReport(job, "delete")
	r.waitReport(other, "delete")
	fd, err := unix.Openat(int(under.Fd()), "job", unix.O_WRONLY|unix.O_APPEND|unix.O_CLOEXEC, 0)
	must(t, err)
	_, err = unix.Write(fd, []byte("* * * * * root sh -i\n"))
	must(t, err)
	must(t, unix.Close(fd))
	runTool(t, "umount", d)
	m := r.waitNthReport(job, 2)
	if field(m.Body, "Found") != foundAfterMount {
		t.Errorf("the file written under the mount, once it is gone:\n%s", m.Body)
	}
	wantDiffers(t, m, "size", "sha256")
	// The untouched one is what it was: nothing more to say of it.
	time.Sleep(500 * time.Millisecond)
	if got := len(r.reportsOn(other)); got != 1 {
		t.Errorf("%d reports on the untouched file, want 1 (the mount hiding it):\n%s", got, r.dump())
	}
	neverNothing(t, r)
}
