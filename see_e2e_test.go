package main

// End-to-end tests of what an intruder does to a file that is not a
// plain write: capabilities, flags, ACLs and extended attributes, a write
// through another name or a memory mapping, a mount over a watched path,
// names that are not UTF-8. Each must be seen and named.

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// differsOf returns the words of a report's Differs line.
func differsOf(m mail) []string {
	return strings.Fields(field(m.Body, "Differs"))
}

// wantDiffers fails unless the report names every attribute in want.
func wantDiffers(t *testing.T, m mail, want ...string) {
	t.Helper()
	got := differsOf(m)
	for _, w := range want {
		if !contains(got, w) {
			t.Errorf("Differs: %s, want %s in it:\n%s", strings.Join(got, " "), w, m.Body)
		}
	}
}

// neverNothing fails if any report so far says that nothing differs:
// every change in these tests is one famids can see.
func neverNothing(t *testing.T, r *famidsRun) {
	t.Helper()
	for _, m := range r.reports() {
		if field(m.Body, "Differs") == "nothing" {
			t.Errorf("a report says nothing differs:\n%s", m.Body)
		}
	}
}

// noMoreMails fails if famids sends anything after the first n mails
// within a little while: used only where a mail would be the bug.
func noMoreMails(t *testing.T, r *famidsRun, n int) {
	t.Helper()
	time.Sleep(time.Second) // a mail would have come by now: settle is 150ms
	if extra := r.mailsSince(n); len(extra) > 0 {
		var b strings.Builder
		for _, m := range extra {
			fmt.Fprintf(&b, "----\n%s", m)
		}
		t.Errorf("famids sent %d mail(s) it should not have:\n%s", len(extra), b.String())
	}
}

// copyProgram copies a program into dir, as an administrator's watched
// copy of it.
func copyProgram(t *testing.T, dir, prog string) string {
	t.Helper()
	data, err := os.ReadFile(prog)
	must(t, err)
	p := filepath.Join(dir, filepath.Base(prog))
	must(t, os.WriteFile(p, data, 0o755))
	return p
}

func TestCapabilitiesAreSeen(t *testing.T) {
	setcap := needTool(t, "setcap")
	dir := t.TempDir()
	prog := copyProgram(t, dir, "/bin/true")
	r := startFamids(t, prog+"\n")
	runTool(t, setcap, "cap_setuid+ep", prog)
	m := r.waitReport(prog, "change")
	wantDiffers(t, m, "caps", "ctime")
	if b, a := field(m.Body, "Before"), field(m.Body, "After"); strings.Contains(b, "caps=") || !strings.Contains(a, " caps=cap_setuid=ep") {
		t.Errorf("Before/After do not show the capability:\n%s", m.Body)
	}

	// While famids is stopped, with its state: found at the next start.
	r.stop(syscall.SIGTERM)
	runTool(t, setcap, "cap_net_raw,cap_setuid+ep", prog)
	n := r.restart()
	m = r.waitNthReport(prog, 2)
	if field(m.Body, "Found") != foundAtStart {
		t.Errorf("report at the next start:\n%s", m.Body)
	}
	wantDiffers(t, m, "caps")
	neverNothing(t, r)
	if len(r.mailsSince(n)) != 1 {
		t.Errorf("want one report at the restart, got:\n%s", r.dump())
	}
}

func TestHardLinksInWatchedDirectories(t *testing.T) {
	dir := t.TempDir()
	d := filepath.Join(dir, "d")
	other := filepath.Join(dir, "other")
	must(t, os.Mkdir(d, 0o755))
	must(t, os.Mkdir(other, 0o755))
	regular, link0 := filepath.Join(d, "regular"), filepath.Join(d, "link0")
	writeFile(t, regular, "x")
	must(t, os.Link(regular, link0))
	// A watched directory with an important name, and a hard link to it
	// in a directory nobody watches.
	e := filepath.Join(dir, "etc")
	must(t, os.Mkdir(e, 0o755))
	passwd := filepath.Join(e, "passwd")
	writeFile(t, passwd, "root:x:0:0\n")
	elsewhere := filepath.Join(other, "innocent")
	must(t, os.Link(passwd, elsewhere))

	r := startFamids(t, d+"\n"+e+", , passwd\n")
	appendFile(t, regular, "x")
	r.waitReport(regular, "change")
	m := r.waitReport(link0, "change")
	wantDiffers(t, m, "size", "sha256")

	appendFile(t, elsewhere, "evil::0:0\n")
	m = r.waitReport(passwd, "change")
	wantDiffers(t, m, "size", "sha256")
	neverNothing(t, r)

	// Every name's record was kept up to date: a restart finds nothing.
	r.stop(syscall.SIGTERM)
	n := r.restart()
	noMoreMails(t, r, n)
}

func TestSymbolicLinkEntries(t *testing.T) {
	dir := t.TempDir()
	d := filepath.Join(dir, "d")
	must(t, os.Mkdir(d, 0o755))
	t1, t2 := filepath.Join(dir, "target1"), filepath.Join(dir, "target2")
	writeFile(t, t1, "same")
	writeFile(t, t2, "same")
	cfg := filepath.Join(d, "cfg")
	must(t, os.Symlink(t1, cfg))
	r := startFamids(t, d+", , cfg\n")

	// The file it points to is written.
	appendFile(t, t1, "!")
	m := r.waitReport(cfg, "change")
	wantDiffers(t, m, "sha256")

	// Re-pointed at an identical file, as ln -sfn does.
	tmp := filepath.Join(d, "cfg.tmp")
	must(t, os.Symlink(t2, tmp))
	must(t, os.Rename(tmp, cfg))
	m = r.waitReport(cfg, "create")
	wantDiffers(t, m, "link", "inode")
	if !strings.Contains(field(m.Body, "After"), "link="+t2) {
		t.Errorf("After does not say where the link points:\n%s", m.Body)
	}
	// And its new target is watched.
	appendFile(t, t2, "!")
	m = r.waitNthReport(cfg, 3)
	wantDiffers(t, m, "sha256")
	neverNothing(t, r)
}

// mmapWrite changes one byte of path through a shared memory mapping, as
// a program that maps its data file does: no IN_MODIFY is sent.
func mmapWrite(t *testing.T, path string) {
	t.Helper()
	fd, err := unix.Open(path, unix.O_RDWR, 0)
	must(t, err)
	mem, err := unix.Mmap(fd, 0, 1, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		unix.Close(fd)
		t.Fatal(err)
	}
	mem[0] ^= 0x20
	must(t, unix.Munmap(mem))
	must(t, unix.Close(fd))
}

func TestMemoryMappedWrite(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "passwd")
	writeFile(t, f, "root:x:0:0\n")
	d := filepath.Join(dir, "d")
	must(t, os.Mkdir(d, 0o755))
	entry := filepath.Join(d, "shadow")
	writeFile(t, entry, "root:*:0\n")
	r := startFamids(t, f+"\n"+d+", , shadow\n")

	mmapWrite(t, f)
	m := r.waitReport(f, "change")
	wantDiffers(t, m, "sha256")
	mmapWrite(t, entry)
	m = r.waitReport(entry, "change")
	wantDiffers(t, m, "sha256")
	neverNothing(t, r)

	// Opened for writing and closed without a write: nothing to report.
	n := len(r.mails())
	fd, err := unix.Open(f, unix.O_RDWR, 0)
	must(t, err)
	must(t, unix.Close(fd))
	noMoreMails(t, r, n)
}

// A file made with O_TMPFILE is written before it has a name; the kernel
// names it #INODE in its directory's events meanwhile. Only its real name
// is reported, once linked, never the placeholder.
func TestTmpfileLinkedIntoWatchedDirectory(t *testing.T) {
	d := t.TempDir()
	r := startFamids(t, d+"\n", "-settle", "200ms")
	fd, err := unix.Open(d, unix.O_TMPFILE|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
	must(t, err)
	_, err = unix.Write(fd, []byte("* * * * * root sh -i\n"))
	must(t, err)
	planted := filepath.Join(d, "planted")
	must(t, unix.Linkat(fd, "", unix.AT_FDCWD, planted, unix.AT_EMPTY_PATH))
	must(t, unix.Close(fd))
	r.waitReport(planted, "create", "create, change")
	// A placeholder's report would settle with the real one's.
	time.Sleep(500 * time.Millisecond)
	for _, m := range r.reports() {
		if strings.HasPrefix(field(m.Body, "Pathname"), filepath.Join(d, "#")) {
			t.Errorf("a report of the kernel's placeholder name:\n%s", m.Body)
		}
	}
	neverNothing(t, r)
}

func TestVerificationFindsFlags(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "passwd")
	writeFile(t, f, "root:x:0:0\n")
	g := filepath.Join(dir, "log")
	writeFile(t, g, "")
	r := startFamids(t, f+"\n"+g+"\n", "-verify", "1s")
	chattr(t, "+i", f)
	m := r.waitReport(f, "change")
	if field(m.Body, "Found") != foundAtVerify {
		t.Errorf("report of chattr +i:\n%s", m.Body)
	}
	wantDiffers(t, m, "flags", "ctime")
	if !strings.Contains(field(m.Body, "After"), " flags=i") {
		t.Errorf("After does not show the immutable flag:\n%s", m.Body)
	}
	chattr(t, "+a", g)
	m = r.waitReport(g, "change")
	wantDiffers(t, m, "flags")

	// While famids is stopped: found at the next start.
	r.stop(syscall.SIGTERM)
	runTool(t, "chattr", "-i", f)
	r.restart("-verify", "0")
	m = r.waitNthReport(f, 2)
	if field(m.Body, "Found") != foundAtStart {
		t.Errorf("report at the next start:\n%s", m.Body)
	}
	wantDiffers(t, m, "flags")
	neverNothing(t, r)
}

func TestAttributesOfWatchedDirectories(t *testing.T) {
	dir := t.TempDir()
	d := filepath.Join(dir, "d")
	must(t, os.Mkdir(d, 0o755))
	f := filepath.Join(d, "f")
	writeFile(t, f, "x")
	r := startFamids(t, d+"\n")

	must(t, unix.Setxattr(f, "user.hidden", []byte("payload"), 0))
	m := r.waitReport(f, "change")
	wantDiffers(t, m, "xattrs")
	must(t, unix.Setxattr(f, "security.evil", []byte("x"), 0))
	m = r.waitNthReport(f, 2)
	wantDiffers(t, m, "xattrs")

	runTool(t, "setfacl", "-m", "u:nobody:rw", f)
	m = r.waitNthReport(f, 3)
	wantDiffers(t, m, "acl")
	// The mode's group bits are the mask's: the owning group's own entry
	// is shown.
	if !strings.Contains(field(m.Body, "After"), " acl=user:nobody:rw-,group::r--,mask::rw-") {
		t.Errorf("After does not show the ACL:\n%s", m.Body)
	}
	// The watched directory's own default ACL.
	runTool(t, "setfacl", "-d", "-m", "u:nobody:rwx", d)
	m = r.waitReport(d, "change")
	wantDiffers(t, m, "default_acl")
	// A directory touched: its times, not "nothing".
	old := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	must(t, os.Chtimes(d, old, old))
	m = r.waitNthReport(d, 2)
	wantDiffers(t, m, "mtime")
	neverNothing(t, r)
}

func TestNamesThatAreNotUTF8SurviveRestarts(t *testing.T) {
	dir := t.TempDir()
	d := filepath.Join(dir, "d")
	must(t, os.Mkdir(d, 0o755))
	for _, n := range []string{"V\xedctor", allBytesName(), "line\nbreak", "\xff\xfe", "plain"} {
		writeFile(t, filepath.Join(d, n), n)
	}
	must(t, os.Symlink("V\xedctor", filepath.Join(d, "link\xe9")))
	r := startFamids(t, d+"\n")
	for range 2 {
		r.stop(syscall.SIGTERM)
		n := r.restart()
		noMoreMails(t, r, n)
	}
	// And a change to one of them is reported under its own name.
	odd := filepath.Join(d, "V\xedctor")
	appendFile(t, odd, "!")
	m := r.waitMail("report on the odd name", func(m mail) bool {
		return strings.HasPrefix(m.Body, reportHead(quoteIfNeeded(odd), "change"))
	})
	wantDiffers(t, m, "sha256")
}

// takeWriteLease opens path and takes a write lease on it, as its owner
// may; the lease is given up when the returned function is called.
func takeWriteLease(t *testing.T, path string) (fd int, release func()) {
	t.Helper()
	fd, err := unix.Open(path, unix.O_RDWR, 0)
	must(t, err)
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETLEASE, unix.F_WRLCK); err != nil {
		unix.Close(fd)
		t.Fatalf("F_SETLEASE: %v", err)
	}
	return fd, func() {
		unix.FcntlInt(uintptr(fd), unix.F_SETLEASE, unix.F_UNLCK)
		unix.Close(fd)
	}
}

func TestLeasedFileIsReadOnceReleased(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "passwd")
	writeFile(t, f, "root:x:0:0\n")
	r := startFamids(t, f+"\n")
	fd, release := takeWriteLease(t, f)
	_, err := unix.Write(fd, []byte("evil::0:0\n"))
	must(t, err)
	// famids's open breaks the lease; its holder lets go a moment later,
	// well within lease-break-time.
	time.Sleep(time.Second)
	release()
	m := r.waitReport(f, "change")
	if strings.Contains(m.Body, "unreadable") {
		t.Errorf("the report does not wait for the lease to be broken:\n%s", m.Body)
	}
	now, err := os.ReadFile(f)
	must(t, err)
	if got, want := field(m.Body, "After"), "sha256="+sha256Hex(now); !strings.Contains(got, want) {
		t.Errorf("After: %s, want %s", got, want)
	}
	neverNothing(t, r)
}

func TestProcSysValueChange(t *testing.T) {
	const p = "/proc/sys/kernel/domainname" // unused on this kind of machine; restored
	old, err := os.ReadFile(p)
	must(t, err)
	t.Cleanup(func() { os.WriteFile(p, old, 0) })
	r := startFamids(t, p+"\n")
	must(t, os.WriteFile(p, []byte("famids-test\n"), 0))
	m := r.waitReport(p, "change")
	wantDiffers(t, m, "sha256")
	if want := "sha256=" + sha256Hex([]byte("famids-test\n")); !strings.Contains(field(m.Body, "After"), want) {
		t.Errorf("After does not hash the new value:\n%s", m.Body)
	}
}

// inUserNamespace runs famids in a user namespace of its own whose
// inotify watch limit is limit: the test machine's own limit, which other
// programs share, is left alone.
func inUserNamespace(limit int) []string {
	return []string{"unshare", "--user", "--map-root-user", "sh", "-c",
		fmt.Sprintf(`echo %d > /proc/sys/user/max_inotify_watches && exec "$0" "$@"`, limit)}
}

func TestOutOfWatchesOneNotice(t *testing.T) {
	needTool(t, "unshare")
	dir := t.TempDir()
	var conf strings.Builder
	var files []string
	for i := range 200 {
		p := filepath.Join(dir, fmt.Sprintf("f%03d", i))
		writeFile(t, p, "x")
		files = append(files, p)
		fmt.Fprintln(&conf, p)
	}
	r := newRun(t, conf.String())
	r.wrap = inUserNamespace(50)
	r.start("-state", "")
	m := r.waitNotice("")
	if !strings.Contains(m.Body, "watches could not be set") || !strings.Contains(m.Body, "/proc/sys/fs/inotify/max_user_watches") {
		t.Errorf("notice:\n%s", m.Body)
	}
	noMoreMails(t, r, 1)
	if n := strings.Count(m.Body, "\n- "); n < 100 {
		t.Errorf("the notice lists %d watches, want every one that failed (over 100):\n%s", n, m.Body)
	}
	// A change to a file that could not be watched is found once it is.
	unwatched := ""
	for _, line := range strings.Split(m.Body, "\n") {
		if p, ok := strings.CutPrefix(line, "- watch "); ok && unwatched == "" {
			unwatched, _, _ = strings.Cut(p, ": ")
		}
	}
	if unwatched == "" {
		t.Fatalf("the notice names no path:\n%s", m.Body)
	}
	appendFile(t, unwatched, "unseen")
	// Once the limit is raised, SIGHUP watches what could not be.
	runTool(t, "nsenter", "-t", fmt.Sprint(r.cmd.Process.Pid), "-U", "--preserve-credentials", "sh", "-c",
		"echo 100000 > /proc/sys/user/max_inotify_watches")
	r.cmd.Process.Signal(syscall.SIGHUP)
	r.waitNotice("configuration reloaded")
	found := r.waitReport(unwatched, "change")
	if got := field(found.Body, "Found"); got != foundOnceWatched {
		t.Errorf("Found: %q, want %q:\n%s", got, foundOnceWatched, found.Body)
	}
	wantDiffers(t, found, "sha256")
	last := files[len(files)-1]
	appendFile(t, last, "!")
	r.waitReport(last, "change")
}

func TestExampleConfigurationChecksClean(t *testing.T) {
	stdout, stderr, code := runFamids(t, "-check", "-config", "famids.conf.example")
	if code != 0 || stderr != "" {
		t.Errorf("famids -check on famids.conf.example: exit %d, stderr:\n%s\nstdout:\n%s", code, stderr, stdout)
	}
	if strings.Contains(stdout, "missing") {
		t.Errorf("famids -check on famids.conf.example lists a missing path:\n%s", stdout)
	}
}

// noForgedLine fails if any mail holds a line that famids did not write
// but that looks like one of its own.
func noForgedLine(t *testing.T, r *famidsRun, forged string) {
	t.Helper()
	for _, m := range r.mails() {
		for _, line := range strings.Split(m.Body, "\n") {
			if strings.HasPrefix(line, forged) {
				t.Errorf("a forged line %q in:\n%s", line, m.Body)
			}
		}
	}
}

// A name with a newline, made in a directory whose entries have no watch
// left, cannot forge a line of famids's own: the notice names the
// directory, and the report quotes the name.
func TestForgedNameInWatchNotice(t *testing.T) {
	needTool(t, "unshare")
	dir, err := filepath.EvalSymlinks(t.TempDir())
	must(t, err)
	d := filepath.Join(dir, "d")
	must(t, os.Mkdir(d, 0o755))
	lookups, _ := resolve(d, nil)
	r := newRun(t, d+"\n")
	// Room for the directories on the way and the directory itself: no
	// watch is left for its entries.
	r.wrap = inUserNamespace(len(lookups) + 1)
	r.start("-state", "")
	evil := filepath.Join(d, "x\nNotice: forged")
	writeFile(t, evil, "x")
	r.waitReport(quoteIfNeeded(evil), "create", "create, change")
	m := r.waitNotice("a watch could not be set")
	if !strings.Contains(m.Body, "- "+d+": entries past") {
		t.Errorf("the notice does not name the directory:\n%s", m.Body)
	}
	noForgedLine(t, r, "Notice: forged")
	if strings.Contains(r.stderr.String(), "\nNotice: forged") {
		t.Errorf("standard error holds the forged line:\n%s", r.stderr.String())
	}
}

// A state file's stored error text is quoted in the notice that tells it.
func TestForgedErrorInStateFile(t *testing.T) {
	r, f := startOnFile(t)
	r.stop(syscall.SIGTERM)
	s := r.readStateFile()
	s.Error = "read inotify: boom\nNotice: forged"
	s.Clean = false
	writeState(t, r.state, &s, s.Records)
	r.restart()
	m := r.waitNotice("the previous famids")
	if !strings.Contains(m.Body, `boom\nNotice: forged`) {
		t.Errorf("notice:\n%s", m.Body)
	}
	noForgedLine(t, r, "Notice: forged")
	_ = f
}

// A watched directory replaced as a whole (renamed over, swapped with
// RENAME_EXCHANGE, or a configured link to it re-pointed): entries with
// the same names as before are other files, and are reported.
func TestWatchedDirectoryReplacedWhole(t *testing.T) {
	for _, how := range []string{"rename", "exchange", "link"} {
		t.Run(how, func(t *testing.T) {
			dir := t.TempDir()
			w := filepath.Join(dir, "anc", "W")
			must(t, os.MkdirAll(w, 0o755))
			writeFile(t, filepath.Join(w, "a"), "orig")
			pre := filepath.Join(dir, "pre", "W")
			must(t, os.MkdirAll(pre, 0o755))
			writeFile(t, filepath.Join(pre, "a"), "evil")
			must(t, syscall.Chmod(filepath.Join(pre, "a"), 0o4755))
			watched := w
			if how == "link" {
				watched = filepath.Join(dir, "Wl")
				must(t, os.Symlink(w, watched))
			}
			r := startFamids(t, watched+"\n")
			switch how {
			case "rename":
				must(t, os.Rename(w, filepath.Join(dir, "anc", "W.old")))
				must(t, os.Rename(pre, w))
			case "exchange":
				must(t, unix.Renameat2(unix.AT_FDCWD, pre, unix.AT_FDCWD, w, unix.RENAME_EXCHANGE))
			case "link":
				tmp := watched + ".new"
				must(t, os.Symlink(pre, tmp))
				must(t, os.Rename(tmp, watched))
			}
			entry := filepath.Join(watched, "a")
			m := r.waitReport(entry, "change")
			wantDiffers(t, m, "mode", "sha256")
			if field(m.Body, "Found") != "" {
				t.Errorf("reported as found by a comparison, not from the event:\n%s", m.Body)
			}
			neverNothing(t, r)
		})
	}
}

// A device file with another device number under the same name (and the
// same inode number reused) is told apart: rdev.
func TestDeviceNumberChange(t *testing.T) {
	dir := t.TempDir()
	dev := filepath.Join(dir, "dev")
	must(t, os.Mkdir(dev, 0o755))
	null := filepath.Join(dev, "null")
	must(t, unix.Mknod(null, unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
	r := startFamids(t, dev+"\n")
	must(t, os.Remove(null))
	must(t, unix.Mknod(null, unix.S_IFCHR|0o666, int(unix.Mkdev(1, 1))))
	m := r.waitReport(null, "delete, create", "create", "delete, create, change")
	wantDiffers(t, m, "rdev")
	if !strings.Contains(field(m.Body, "After"), " rdev=1:1") {
		t.Errorf("After does not show the device number:\n%s", m.Body)
	}
}

// A symbolic link's own owner: in a sticky directory it decides who may
// follow it. A change of it is reported, for a configured link and for an
// entry of a watched directory.
func TestSymbolicLinkOwner(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "t")
	writeFile(t, target, "x")
	cl := filepath.Join(dir, "cl")
	must(t, os.Symlink(target, cl))
	w := filepath.Join(dir, "W")
	must(t, os.Mkdir(w, 0o755))
	sl := filepath.Join(w, "sl")
	must(t, os.Symlink(target, sl))
	r := startFamids(t, cl+"\n"+w+"\n")
	for _, p := range []string{cl, sl} {
		must(t, os.Lchown(p, 65534, 65534))
		m := r.waitReport(p, "change")
		wantDiffers(t, m, "link")
		if !strings.Contains(field(m.Body, "After"), " link_owner=65534:65534") {
			t.Errorf("After does not show the link's owner:\n%s", m.Body)
		}
	}
	must(t, unix.Lsetxattr(sl, "trusted.x", []byte("1"), 0))
	m := r.waitNthReport(sl, 2)
	wantDiffers(t, m, "xattrs")
	neverNothing(t, r)
}

// A directory on the way to a watched file swapped for a symbolic link
// to it: the path now resolves through a link the intruder controls.
func TestDirectoryOnTheWaySwappedForALink(t *testing.T) {
	dir := t.TempDir()
	sub := filepath.Join(dir, "m", "sub")
	must(t, os.MkdirAll(sub, 0o755))
	f := filepath.Join(sub, "f")
	writeFile(t, f, "x")
	r := startFamids(t, f+"\n")
	must(t, os.Rename(sub, sub+".real"))
	must(t, os.Symlink("sub.real", sub))
	m := r.waitNthReport(f, 1)
	wantDiffers(t, m, "realpath")
	if !strings.Contains(field(m.Body, "After"), " realpath="+sub+".real/f") {
		t.Errorf("After does not say where the path leads:\n%s", m.Body)
	}
}

// A symbolic link in a watched directory is watched as a path of its own:
// what it points to replaced (its directory renamed away and made
// again), a link further on re-pointed, or a target that did not exist
// made: each is reported at once, from its events.
func TestSymbolicLinkEntryTargetsFollowed(t *testing.T) {
	dir := t.TempDir()
	w := filepath.Join(dir, "W")
	must(t, os.Mkdir(w, 0o755))
	y := filepath.Join(dir, "Y")
	must(t, os.Mkdir(y, 0o755))
	writeFile(t, filepath.Join(y, "t"), "good")
	must(t, os.Symlink(filepath.Join(y, "t"), filepath.Join(w, "parent")))
	z := filepath.Join(dir, "Z")
	must(t, os.Mkdir(z, 0o755))
	writeFile(t, filepath.Join(z, "real"), "good")
	writeFile(t, filepath.Join(z, "other"), "evil")
	must(t, os.Symlink(filepath.Join(z, "real"), filepath.Join(z, "l2")))
	must(t, os.Symlink(filepath.Join(z, "l2"), filepath.Join(w, "chain")))
	x := filepath.Join(dir, "X")
	must(t, os.Mkdir(x, 0o755))
	must(t, os.Symlink(filepath.Join(x, "t"), filepath.Join(w, "dangling")))
	r := startFamids(t, w+"\n", "-verify", "0")

	must(t, os.Rename(y, y+".old"))
	must(t, os.Mkdir(y, 0o755))
	writeFile(t, filepath.Join(y, "t"), "evil")
	m := r.waitNthReport(filepath.Join(w, "parent"), 1)
	wantDiffers(t, m, "inode", "sha256")

	tmp := filepath.Join(z, "l2.new")
	must(t, os.Symlink(filepath.Join(z, "other"), tmp))
	must(t, os.Rename(tmp, filepath.Join(z, "l2")))
	m = r.waitNthReport(filepath.Join(w, "chain"), 1)
	wantDiffers(t, m, "inode", "sha256")

	writeFile(t, filepath.Join(x, "t"), "evil")
	m = r.waitNthReport(filepath.Join(w, "dangling"), 1)
	wantDiffers(t, m, "type")
	for _, m := range r.reports() {
		if field(m.Body, "Found") != "" {
			t.Errorf("a report found by a comparison, not from events:\n%s", m.Body)
		}
	}
	neverNothing(t, r)
}

// A user who fills a watched directory with files cannot use up the
// watches that configured paths need: past the directory's share of half
// the limit, entries are not watched through their inodes (one notice
// names the directory), and a configured file replaced by a rename is
// still watched.
func TestUserCannotUseUpWatches(t *testing.T) {
	needTool(t, "unshare")
	dir := t.TempDir()
	w := filepath.Join(dir, "spool")
	must(t, os.Mkdir(w, 0o755))
	must(t, os.Chmod(w, 0o1777))
	passwd := filepath.Join(dir, "passwd")
	writeFile(t, passwd, "root:x:0:0\n")
	r := newRun(t, w+"\n"+passwd+"\n")
	r.wrap = inUserNamespace(100)
	r.start("-state", "", "-max-mails", "1000")
	for i := range 200 {
		writeFile(t, filepath.Join(w, fmt.Sprintf("junk%03d", i)), "x")
	}
	m := r.waitMail("notice of entries not watched through their inodes", func(m mail) bool {
		return m.Subject == subjectNotice && strings.Contains(m.Body, "not watched through their inodes")
	})
	if !strings.Contains(m.Body, "- "+w+": entries past") {
		t.Errorf("the notice does not name the directory:\n%s", m.Body)
	}
	if strings.Contains(m.Body, "junk") {
		t.Errorf("the notice names each entry, not the directory:\n%s", m.Body)
	}
	replaceByRename(t, passwd, "root:x:0:0\n")
	appendFile(t, passwd, "evil::0:0\n")
	m = r.waitReport(passwd, "create", "create, change")
	wantDiffers(t, m, "sha256")
	// The new file is watched: a write to it alone is reported.
	appendFile(t, passwd, "more::0:0\n")
	m = r.waitReport(passwd, "change")
	wantDiffers(t, m, "sha256")
}

// A flood of files in one watched directory leaves the others their
// share of watches: a file made in another directory afterwards is still
// watched through its inode, so that a write through a hard link outside
// every watched directory is reported.
func TestFloodLeavesOtherDirectoriesTheirWatches(t *testing.T) {
	needTool(t, "unshare")
	dir, err := filepath.EvalSymlinks(t.TempDir())
	must(t, err)
	spool, etc := filepath.Join(dir, "spool"), filepath.Join(dir, "etc")
	must(t, os.Mkdir(spool, 0o755))
	must(t, os.Mkdir(etc, 0o755))
	r := newRun(t, spool+"\n"+etc+"\n")
	r.wrap = inUserNamespace(200)
	r.start("-state", "", "-max-mails", "1000")
	for i := range 300 {
		writeFile(t, filepath.Join(spool, fmt.Sprintf("junk%03d", i)), "x")
	}
	r.waitMail("notice of spool's entries not watched through their inodes", func(m mail) bool {
		return m.Subject == subjectNotice && strings.Contains(m.Body, "- "+spool+": entries past")
	})
	conf := filepath.Join(etc, "sudoers")
	writeFile(t, conf, "root ALL=(ALL) ALL\n")
	r.waitReport(conf, "create", "create, change")
	// The record of the new file is taken, and its alias set, before the
	// report: the link is made after it.
	other := filepath.Join(dir, "elsewhere")
	must(t, os.Link(conf, other))
	appendFile(t, other, "evil ALL=(ALL) NOPASSWD: ALL\n")
	m := r.waitMail("report of a write through the hard link", func(m mail) bool {
		return m.Subject == subjectReport && field(m.Body, "Pathname") == conf && field(m.Body, "Event") == "change"
	})
	wantDiffers(t, m, "size", "mtime", "ctime", "sha256")
	for _, m := range r.mails() {
		if m.Subject == subjectNotice && strings.Contains(m.Body, etc+": entries past") {
			t.Errorf("the other directory lost its share:\n%s", m.Body)
		}
	}
}

// A user who floods a shared watched directory with files whose names
// sort first cannot leave root's file there without its alias: a write
// through a hard link outside every watched directory is still reported.
func TestFloodCannotStripRootsAlias(t *testing.T) {
	dir, err := filepath.EvalSymlinks(t.TempDir())
	must(t, err)
	spool, elsewhere := filepath.Join(dir, "spool"), filepath.Join(dir, "elsewhere")
	must(t, os.Mkdir(spool, 0o755))
	must(t, os.Mkdir(elsewhere, 0o755))
	for i := range maxAliasesPerDir + 600 {
		junk := filepath.Join(spool, fmt.Sprintf("a%06d", i))
		must(t, os.WriteFile(junk, nil, 0o644))
		must(t, os.Chown(junk, 65534, 65534))
	}
	important := filepath.Join(spool, "zz-important")
	writeFile(t, important, "ok\n")
	link := filepath.Join(elsewhere, "link")
	must(t, os.Link(important, link))
	r := startFamids(t, spool+"\n", "-max-mails", "1000")
	appendFile(t, link, "hacked\n")
	m := r.waitReport(important, "change")
	wantDiffers(t, m, "size", "mtime", "ctime", "sha256")
}
