package main

// End-to-end tests of what could stall famids: a file too large to hash
// soon, a file system that never answers, signals sent back to back.

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// reportWithin fails unless a report on path, whose Event line is one of
// events, comes within d.
func reportWithin(t *testing.T, r *famidsRun, d time.Duration, path string, events ...string) {
	t.Helper()
	start := time.Now()
	r.waitReport(path, events...)
	if took := time.Since(start); took > d {
		t.Errorf("the report on %s took %v, want it within %v", path, took.Round(time.Millisecond), d)
	}
}

// stopWithin stops famids with SIGTERM and fails unless it exits 0 within
// 10 seconds.
func stopWithin10s(t *testing.T, r *famidsRun) {
	t.Helper()
	start := time.Now()
	if code := r.stop(syscall.SIGTERM); code != 0 {
		t.Errorf("exit status %d after SIGTERM", code)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("famids took %v to stop", took.Round(time.Millisecond))
	}
}

// A user makes an important name of a watched directory a huge sparse
// file: its hash takes long, but other paths are still reported at once,
// and famids still stops within 10 seconds.
func TestHugeFileDoesNotStall(t *testing.T) {
	dir := t.TempDir()
	w := filepath.Join(dir, "W")
	must(t, os.Mkdir(w, 0o755))
	must(t, os.Chmod(w, 0o1777))
	g := filepath.Join(dir, "g")
	writeFile(t, g, "x")
	r := startFamids(t, w+", , big*\n"+g+"\n", "-max-mails", "1000")
	const huge = 100
	for i := range huge {
		big := filepath.Join(w, fmt.Sprintf("big%03d", i))
		f, err := os.Create(big)
		must(t, err)
		must(t, f.Truncate(15<<40)) // 15 TiB of holes: hours of hashing
		must(t, f.Close())
		must(t, os.Chown(big, 65534, 65534))
	}
	time.Sleep(500 * time.Millisecond) // the hashes are under way
	appendFile(t, g, "!")
	reportWithin(t, r, 2*time.Second, g, "change")
	// Each huge file is reported at once, its content pending.
	m := r.waitReport(filepath.Join(w, "big000"), "create", "create, change")
	if !strings.Contains(field(m.Body, "After"), " sha256=pending") {
		t.Errorf("a huge file's report:\n%s", m.Body)
	}
	// Signals are acted on: a suspension and its resume notice.
	r.cmd.Process.Signal(syscall.SIGUSR1)
	r.waitNotice("reporting suspended")
	r.cmd.Process.Signal(syscall.SIGUSR2)
	r.waitNotice("reporting resumed")
	stopWithin10s(t, r)
}

// The owner of a watched file makes it a huge sparse file: reported at
// once, with what stat says.
func TestOwnerMakesWatchedFileHuge(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "crontab")
	writeFile(t, f, "* * * * * true\n")
	must(t, os.Chown(f, 65534, 65534))
	r := startFamids(t, f+"\n")
	writeFile(t, f, "* * * * * evil\n")
	must(t, os.Truncate(f, 15<<40))
	m := r.waitNthReport(f, 1)
	wantDiffers(t, m, "size")
	stopWithin10s(t, r)
}

// A file over bigFile, hashed in the slow lane, takes its hash into its
// record once done.
func TestLargeFileIsHashedBeside(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "image")
	fh, err := os.Create(f)
	must(t, err)
	must(t, fh.Truncate(bigFile+1))
	must(t, fh.Close())
	r := startFamids(t, f+"\n")
	// The baseline's hash, once the slow lane is done with it.
	zeros := fileSHA256(t, f)
	deadline := time.Now().Add(waitFor)
	for {
		s := readStateAt(t, r.state)
		if a := s.recordOf(f); knownDigest(a.SHA256) {
			if a.SHA256 != zeros {
				t.Errorf("recorded sha256 %s, want %s", a.SHA256, zeros)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the large file's hash never came into its record")
		}
		time.Sleep(50 * time.Millisecond)
	}

	// A trojan of the same size, written in place: reported at once with
	// its content pending, then again once hashed, with what the hash was
	// and is. (osquery #3080's case.)
	fh, err = os.OpenFile(f, os.O_WRONLY, 0)
	must(t, err)
	_, err = fh.WriteAt([]byte("TROJAN"), bigFile/2)
	must(t, err)
	must(t, fh.Close())
	trojan := fileSHA256(t, f)
	first := r.waitReport(f, "change")
	if got := field(first.Body, "After"); !strings.Contains(got, "sha256=pending") {
		t.Errorf("the first report's After: %s; want sha256=pending", got)
	}
	m := r.waitMail("the report once hashed", func(m mail) bool {
		return m.Subject == subjectReport && strings.Contains(m.Body, "Found: "+foundOnceHashed+"\n")
	})
	if got := field(m.Body, "Differs"); got != "sha256" {
		t.Errorf("once hashed, Differs: %s; want sha256:\n%s", got, m.Body)
	}
	if before, after := field(m.Body, "Before"), field(m.Body, "After"); !strings.Contains(before, "sha256="+zeros) || !strings.Contains(after, "sha256="+trojan) {
		t.Errorf("once hashed, Before: %s\nAfter: %s\nwant sha256=%s, then sha256=%s", before, after, zeros, trojan)
	}

	// Changed again, then its mode changed while it is hashed: the hash
	// once known is compared with the one before the first change, not
	// with the pending one of the report between.
	hashedBefore := 1
	fh, err = os.OpenFile(f, os.O_WRONLY, 0)
	must(t, err)
	_, err = fh.WriteAt([]byte("EVIL"), bigFile/4)
	must(t, err)
	must(t, fh.Close())
	time.Sleep(300 * time.Millisecond) // a burst of its own for the mode
	must(t, os.Chmod(f, 0o600))
	evil := fileSHA256(t, f)
	onceHashed := func(m mail) bool { return strings.Contains(m.Body, "Found: "+foundOnceHashed+"\n") }
	r.waitMail("the report once hashed after two changes", func(mail) bool { return len(r.mailsMatching(onceHashed)) > hashedBefore })
	m = r.mailsMatching(onceHashed)[hashedBefore]
	if before, after := field(m.Body, "Before"), field(m.Body, "After"); !strings.Contains(before, "sha256="+trojan) || !strings.Contains(after, "sha256="+evil) {
		t.Errorf("once hashed after two changes, Before: %s\nAfter: %s\nwant sha256=%s, then sha256=%s", before, after, trojan, evil)
	}
}

// mailsMatching returns the mails delivered so far for which match holds.
func (r *famidsRun) mailsMatching(match func(mail) bool) []mail {
	var out []mail
	for _, m := range r.mails() {
		if match(m) {
			out = append(out, m)
		}
	}
	return out
}

// fileSHA256 returns the hex SHA-256 of the file path.
func fileSHA256(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	must(t, err)
	defer f.Close()
	return sha256Of(t, f)
}

// hungFUSE mounts a FUSE file system whose server never answers: every
// look into it waits. It is undone when the test ends: closing the
// server's end aborts the connection.
func hungFUSE(t *testing.T) string {
	t.Helper()
	mnt := filepath.Join(t.TempDir(), "fuse")
	must(t, os.Mkdir(mnt, 0o755))
	hungFUSEAt(t, mnt)
	return mnt
}

// hungFUSEAt mounts such a file system on the directory mnt.
func hungFUSEAt(t *testing.T, mnt string) {
	t.Helper()
	if _, err := os.Stat("/dev/fuse"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("no /dev/fuse: %v", err)
		}
		t.Skipf("no /dev/fuse: %v", err)
	}
	fd, err := unix.Open("/dev/fuse", unix.O_RDWR|unix.O_CLOEXEC, 0)
	must(t, err)
	opts := fmt.Sprintf("fd=%d,rootmode=40000,user_id=0,group_id=0,allow_other", fd)
	if err := unix.Mount("famids-test", mnt, "fuse", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
		unix.Close(fd)
		t.Fatalf("mount fuse: %v", err)
	}
	t.Cleanup(func() {
		unix.Close(fd) // aborts: whatever waits gets ENOTCONN
		exec.Command("umount", "-l", mnt).Run()
	})
}

// An important name made a symbolic link into a file system that never
// answers: its record never returns, the rest is reported as ever, a
// notice says which path does not answer, and famids still stops.
func TestFileSystemThatNeverAnswers(t *testing.T) {
	dir := t.TempDir()
	mnt := hungFUSE(t)
	w := filepath.Join(dir, "W")
	must(t, os.Mkdir(w, 0o755))
	g := filepath.Join(dir, "g")
	writeFile(t, g, "x")
	r := startFamids(t, w+", , evil\n"+g+"\n")
	evil := filepath.Join(w, "evil")
	must(t, os.Symlink(filepath.Join(mnt, "file"), evil))
	time.Sleep(500 * time.Millisecond) // famids is stuck looking at it
	appendFile(t, g, "!")
	reportWithin(t, r, 2*time.Second, g, "change")
	m := r.waitNotice("a file system does not answer")
	if !strings.Contains(m.Body, "evil") {
		t.Errorf("the notice does not name the path:\n%s", m.Body)
	}
	appendFile(t, g, "?")
	reportWithin(t, r, 2*time.Second, g, "change")
	stopWithin10s(t, r)
}

// SIGUSR1 and SIGUSR2 sent back to back, any number of times, leave
// famids reporting: the kernel may hand them to two threads, and Go may
// pass the second on first.
func TestSuspendResumeBackToBack(t *testing.T) {
	r, f := startOnFile(t)
	pid := r.cmd.Process.Pid
	for range 50 {
		must(t, syscall.Kill(pid, syscall.SIGUSR1))
		must(t, syscall.Kill(pid, syscall.SIGUSR2))
	}
	// Once every signal is taken in (a notice each, folded past
	// -max-mails), a change is reported.
	deadline := time.Now().Add(waitFor)
	for {
		appendFile(t, f, "!")
		time.Sleep(300 * time.Millisecond)
		if len(r.reportsOn(f)) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("famids is left suspended after SIGUSR1 and SIGUSR2 back to back:\n%s", r.stderr.String())
		}
	}
}

// Go's runtime may pass a SIGUSR2 on before the SIGUSR1 sent just before
// it: famids must end up reporting either way.
func TestSignalsPassedOnOutOfOrder(t *testing.T) {
	cfg, _ := parseConfig("famids.conf", filepath.Join(t.TempDir(), "f")+"\n")
	var out syncBuffer
	d, err := newDaemon(cfg, newMailer(nil, "root", &out, &out))
	must(t, err)
	t.Cleanup(func() {
		d.w.Close()
		d.poll.close()
	})
	for _, order := range [][]syscall.Signal{
		{syscall.SIGUSR1, syscall.SIGUSR2},
		{syscall.SIGUSR2, syscall.SIGUSR1}, // passed on out of order
		{syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGUSR2, syscall.SIGUSR1},
	} {
		for _, sig := range order {
			d.signal(sig)
		}
		if d.susp.suspended() {
			t.Errorf("after %v, famids is suspended", order)
		}
		d.susp = suspension{limit: *maxSuspend}
	}
}

// sha256Of returns the hex SHA-256 of what r holds.
func sha256Of(t *testing.T, r io.Reader) string {
	t.Helper()
	h := sha256.New()
	_, err := io.Copy(h, r)
	must(t, err)
	return hex.EncodeToString(h.Sum(nil))
}

// A user writing a byte at a time to a file in a watched directory: the
// kernel merges the identical events, the queue never overflows, and the
// file is reported, not thousands of times.
func TestWriteStormOnAnEntry(t *testing.T) {
	dir := t.TempDir()
	w := filepath.Join(dir, "W")
	must(t, os.Mkdir(w, 0o755))
	noisy := filepath.Join(w, "noisy")
	writeFile(t, noisy, "")
	r := startFamids(t, w+"\n", "-max-mails", "1000")
	f, err := os.OpenFile(noisy, os.O_WRONLY|os.O_APPEND, 0)
	must(t, err)
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); {
		for range 1000 {
			_, err := f.Write([]byte("x"))
			must(t, err)
		}
	}
	must(t, f.Close())
	r.waitReport(noisy, "change")
	stopWithin10s(t, r)
	for _, m := range r.mails() {
		if strings.Contains(m.Body, "overflowed") {
			t.Errorf("the queue overflowed:\n%s", m.Body)
		}
	}
	if n := len(r.reportsOn(noisy)); n > 3 { // 2 s of writes: one burst (20 times -settle at most), and its end
		t.Errorf("%d reports on the file, want one each 20 times -settle at most", n)
	}
}

// A famids killed while the content of a large file, changed in place, is
// still being hashed keeps the hash the file had before in its state, and
// marks the record partial: the next start reads the file again and
// compares its hash, once known, with that one. Without it, the change of
// content would never be reported with its hash.
func TestKilledWhileHashingKeepsTheHashBefore(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "image")
	fh, err := os.Create(f)
	must(t, err)
	must(t, fh.Truncate(15<<40)) // hours of hashing
	must(t, fh.Close())
	r := startFamids(t, f+"\n")
	r.stop(syscall.SIGTERM)
	// The baseline of an earlier run that hashed it: the hash before.
	s := r.readStateFile()
	before := strings.Repeat("ab", 32)
	a := s.recordOf(f)
	a.SHA256 = before
	s.Records.put(f, a)
	writeState(t, r.state, &s, s.Records)
	r.restart()
	fh, err = os.OpenFile(f, os.O_WRONLY, 0)
	must(t, err)
	_, err = fh.WriteAt([]byte("TROJAN"), 1<<30)
	must(t, err)
	must(t, fh.Close())
	st, err := os.Stat(f)
	must(t, err)
	m := r.waitReport(f, "change")
	if !strings.Contains(field(m.Body, "After"), "sha256=pending") {
		t.Fatalf("the report's After: %s; want sha256=pending", field(m.Body, "After"))
	}
	deadline := time.Now().Add(waitFor)
	for {
		got := r.readStateFile().recordOf(f)
		if got.Mtime.Equal(st.ModTime()) {
			if got.SHA256 != before || !got.Partial {
				t.Errorf("saved while hashing: sha256=%s partial=%v; want the hash before, partial", got.SHA256, got.Partial)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the change never came into the state file")
		}
		time.Sleep(50 * time.Millisecond)
	}
	r.stop(syscall.SIGKILL)
	// Started again, and killed again while hashing: the hash before is
	// still what the state keeps.
	r.restart()
	r.waitNotice("the previous famids")
	r.stop(syscall.SIGTERM)
	if got := r.readStateFile().recordOf(f); got.SHA256 != before || !got.Partial {
		t.Errorf("after a restart while hashing: sha256=%s partial=%v; want the hash before, partial", got.SHA256, got.Partial)
	}
}
