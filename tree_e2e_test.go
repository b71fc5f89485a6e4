package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// noReportOn fails t when a report delivered so far names path, or a path
// below it. Called once a later change has been reported, it tells that
// the change to path was not: reports go out in the order things happened.
func (r *famidsRun) noReportOn(path string) {
	r.t.Helper()
	for _, m := range r.reports() {
		p := field(m.Body, "Pathname")
		if p == path || strings.HasPrefix(p, path+"/") {
			r.t.Fatalf("report on %s, outside what is watched:\n%s", p, m)
		}
	}
}

// waitEvent waits for a report on path whose first event is event (a
// file made and written at once is reported "create, change").
func (r *famidsRun) waitEvent(path, event string) mail {
	r.t.Helper()
	return r.waitMail(fmt.Sprintf("report %q on %s", event, path), func(m mail) bool {
		ev := field(m.Body, "Event")
		return m.Subject == subjectReport && field(m.Body, "Pathname") == path && (ev == event || strings.HasPrefix(ev, event+", "))
	})
}

// A file made at once in a directory made at once, at any depth, is
// reported: each directory is watched before anything in it can go
// unseen. Repeated, for it is a race.
func TestTreeSeesDeepNewFiles(t *testing.T) {
	tree := t.TempDir()
	r := startFamids(t, tree+"/**\n", "-max-mails", "1000")
	for i := range 20 {
		deep := filepath.Join(tree, fmt.Sprintf("a%d", i), "b", "c")
		cmd := exec.Command("sh", "-c", `mkdir -p "$1" && echo x > "$1/f"`, "sh", deep)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		r.waitEvent(filepath.Join(deep, "f"), "create")
	}
	// An old file deep in the tree: written, and its attributes.
	f := filepath.Join(tree, "a0", "b", "c", "f")
	writeFile(t, f, "trojan")
	m := r.waitEvent(f, "change")
	if !strings.Contains(field(m.Body, "Differs"), "sha256") {
		t.Errorf("a write deep in a tree: Differs %q, want sha256:\n%s", field(m.Body, "Differs"), m)
	}
	must(t, os.Chmod(f, 0o4755))
	r.waitMail("report of the setuid bit", func(m mail) bool {
		return strings.HasPrefix(m.Body, reportHead(f, "change")) && strings.Contains(field(m.Body, "Differs"), "mode")
	})
}

// A directory moved into a tree brings its entries, each reported as
// made; one moved out takes them, each reported gone; a rename inside
// the tree is both. Paths below a directory moved away are no longer
// watched.
func TestTreeDirectoriesMoveInAndOut(t *testing.T) {
	base := t.TempDir()
	tree := filepath.Join(base, "tree")
	outside := filepath.Join(base, "outside")
	must(t, os.MkdirAll(filepath.Join(tree, "old", "deep"), 0o755))
	writeFile(t, filepath.Join(tree, "old", "deep", "kept"), "k")
	must(t, os.MkdirAll(filepath.Join(outside, "pack", "sub"), 0o755))
	writeFile(t, filepath.Join(outside, "pack", "sub", "payload"), "p")
	r := startFamids(t, tree+"/**\n")

	must(t, os.Rename(filepath.Join(outside, "pack"), filepath.Join(tree, "pack")))
	r.waitEvent(filepath.Join(tree, "pack", "sub", "payload"), "create")
	// Watched where it now is.
	writeFile(t, filepath.Join(tree, "pack", "sub", "payload"), "changed")
	r.waitEvent(filepath.Join(tree, "pack", "sub", "payload"), "change")

	must(t, os.Rename(filepath.Join(tree, "old"), filepath.Join(outside, "old")))
	r.waitEvent(filepath.Join(tree, "old", "deep", "kept"), "delete")
	// No longer watched: a write where it went is not reported.
	writeFile(t, filepath.Join(outside, "old", "deep", "kept"), "unwatched")

	must(t, os.Rename(filepath.Join(tree, "pack"), filepath.Join(tree, "renamed")))
	r.waitEvent(filepath.Join(tree, "renamed", "sub", "payload"), "create")
	r.waitEvent(filepath.Join(tree, "pack", "sub", "payload"), "delete")
	writeFile(t, filepath.Join(tree, "renamed", "sub", "payload"), "again")
	r.waitEvent(filepath.Join(tree, "renamed", "sub", "payload"), "change")
	r.noReportOn(filepath.Join(outside))
	for _, m := range r.reports() {
		if field(m.Body, "Pathname") == filepath.Join(tree, "old", "deep", "kept") && strings.HasPrefix(m.Body, reportHead(filepath.Join(tree, "old", "deep", "kept"), "change")) {
			t.Errorf("a write to a file moved out of the tree was reported:\n%s", m)
		}
	}
}

// A symbolic link in a tree is recorded as a link and never followed into
// the directory it points to; a symbolic link entry of a watched
// directory that points to a directory never makes that directory's
// entries reported (watching / must not mean watching /usr/bin).
func TestTreeLinksNeverWiden(t *testing.T) {
	base := t.TempDir()
	tree := filepath.Join(base, "tree")
	dir := filepath.Join(base, "dir")
	target := filepath.Join(base, "target")
	must(t, os.MkdirAll(filepath.Join(tree, "sub"), 0o755))
	must(t, os.Mkdir(dir, 0o755))
	must(t, os.Mkdir(target, 0o755))
	writeFile(t, filepath.Join(target, "old"), "o")
	must(t, os.Symlink(target, filepath.Join(tree, "sub", "link")))
	must(t, os.Symlink(target, filepath.Join(dir, "link")))
	mark := filepath.Join(tree, "mark")
	writeFile(t, mark, "m")
	r := startFamids(t, tree+"/**\n"+dir+"\n")

	writeFile(t, filepath.Join(target, "new"), "n")
	writeFile(t, filepath.Join(target, "old"), "changed")
	writeFile(t, mark, "changed")
	r.waitEvent(mark, "change")
	r.noReportOn(filepath.Join(tree, "sub", "link"))
	r.noReportOn(filepath.Join(dir, "link"))
	r.noReportOn(target)

	// Re-pointed, the link is reported, as a link.
	for _, l := range []string{filepath.Join(tree, "sub", "link"), filepath.Join(dir, "link")} {
		must(t, os.Remove(l))
		must(t, os.Symlink(filepath.Join(base, "elsewhere"), l))
		m := r.waitMail("report of the re-pointed "+l, func(m mail) bool {
			return field(m.Body, "Pathname") == l && strings.Contains(m.Body, "link=")
		})
		if !strings.Contains(m.Body, "elsewhere") {
			t.Errorf("the re-pointed link's report does not say where it points:\n%s", m)
		}
	}
}

// A symbolic link inside a tree is recorded as itself, never followed,
// even to a file: a change of the file outside the tree is not the tree's,
// and a masked systemd unit (a link to /dev/null) must not make every
// write to /dev/null a report. In a watched directory, a link is followed
// to its file, but data written to a device changes nothing famids
// records either.
func TestTreeLinksAreRecordedAsLinks(t *testing.T) {
	base := t.TempDir()
	tree := filepath.Join(base, "tree")
	dir := filepath.Join(base, "dir")
	outside := filepath.Join(base, "outside")
	must(t, os.MkdirAll(filepath.Join(tree, "wants"), 0o755))
	must(t, os.Mkdir(dir, 0o755))
	writeFile(t, outside, "o")
	treeNull := filepath.Join(tree, "wants", "masked.service")
	treeFile := filepath.Join(tree, "wants", "unit.service")
	dirNull := filepath.Join(dir, "masked.service")
	must(t, os.Symlink("/dev/null", treeNull))
	must(t, os.Symlink(outside, treeFile))
	must(t, os.Symlink("/dev/null", dirNull))
	mark := filepath.Join(tree, "mark")
	writeFile(t, mark, "m")
	r := startFamids(t, tree+"/**\n"+dir+"\n")

	null, err := os.OpenFile("/dev/null", os.O_WRONLY, 0)
	must(t, err)
	for range 3 {
		_, err := null.WriteString("x")
		must(t, err)
	}
	must(t, null.Close())
	writeFile(t, outside, "changed outside the tree")
	writeFile(t, mark, "changed")
	r.waitEvent(mark, "change")
	r.noReportOn(treeNull)
	r.noReportOn(treeFile)
	r.noReportOn(dirNull)

	// Re-pointed, each is reported, the tree's as a link.
	must(t, os.Remove(treeFile))
	must(t, os.Symlink("/dev/zero", treeFile))
	m := r.waitEvent(treeFile, "delete")
	if after := field(m.Body, "After"); !strings.HasPrefix(after, "type=symlink ") || !strings.Contains(after, "link=/dev/zero") {
		t.Errorf("a tree's link is not recorded as a link:\n%s", m)
	}
	if before := field(m.Body, "Before"); !strings.HasPrefix(before, "type=symlink ") || !strings.Contains(before, "link="+outside) {
		t.Errorf("a tree's link was recorded as the file it points to:\n%s", m)
	}
	must(t, os.Remove(dirNull))
	must(t, os.Symlink("/dev/zero", dirNull))
	m = r.waitEvent(dirNull, "delete")
	if !strings.Contains(field(m.Body, "Differs"), "link") {
		t.Errorf("the re-pointed link's report does not name the link:\n%s", m)
	}
}

// A file of a tree that may be written through another name is watched
// through its inode: one with a hard link already, and one a user other
// than root owns, who may link it anywhere and write it there. (A
// root-owned file of mode 0644 with one name needs no watch of its own:
// with fs.protected_hardlinks, only root may give it another.)
func TestTreeSeesWritesThroughOtherNames(t *testing.T) {
	needTool(t, "setpriv")
	base, err := os.MkdirTemp("", "famids-tree")
	must(t, err)
	t.Cleanup(func() { os.RemoveAll(base) })
	must(t, os.Chmod(base, 0o755))
	tree, elsewhere := filepath.Join(base, "tree"), filepath.Join(base, "elsewhere")
	must(t, os.MkdirAll(filepath.Join(tree, "deep"), 0o755))
	must(t, os.Mkdir(elsewhere, 0o755))
	must(t, os.Chmod(elsewhere, 0o1777))
	linked := filepath.Join(tree, "deep", "linked")
	writeFile(t, linked, "root's\n")
	must(t, os.Link(linked, filepath.Join(elsewhere, "linked")))
	users := filepath.Join(tree, "deep", "users")
	writeFile(t, users, "nobody's\n")
	must(t, os.Chown(users, 65534, 65534))
	plain := filepath.Join(tree, "deep", "plain")
	writeFile(t, plain, "root's alone\n")
	r := startFamids(t, tree+"/**\n")
	watches := inotifyWatches(t, r.cmd.Process.Pid)
	for _, p := range []string{linked, users} {
		if _, ok := watches[inode(t, p)]; !ok {
			t.Errorf("%s, which may be written through another name, has no watch of its own", p)
		}
	}
	if _, ok := watches[inode(t, plain)]; ok {
		t.Errorf("%s, root's with one name, takes a watch of its own", plain)
	}

	appendFile(t, filepath.Join(elsewhere, "linked"), "written through its other name\n")
	m := r.waitEvent(linked, "change")
	wantDiffers(t, m, "size", "mtime", "ctime", "sha256")

	link := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "sh", "-c",
		`ln "$1" "$2" && echo evil >> "$2"`, "sh", users, filepath.Join(elsewhere, "users"))
	if out, err := link.CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	m = r.waitEvent(users, "change")
	if !strings.Contains(field(m.Body, "Differs"), "sha256") {
		t.Errorf("nobody's write through a link of their own is not reported as one:\n%s", m)
	}
}

// A tree's important names are matched at any depth; directories are
// searched whatever their names, and reported only when their name is
// important.
func TestTreeNamesAtAnyDepth(t *testing.T) {
	home := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(home, "alice"), 0o755))
	r := startFamids(t, home+"/**, , authorized_keys | .*history\n")
	keys := filepath.Join(home, "alice", ".ssh", "authorized_keys")
	other := filepath.Join(home, "alice", ".ssh", "known_hosts")
	cmd := exec.Command("sh", "-c", `mkdir -p "$1" && echo k > "$1/known_hosts" && echo key > "$1/authorized_keys"`, "sh", filepath.Dir(keys))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	r.waitEvent(keys, "create")
	hist := filepath.Join(home, "bob", "deep", ".bash_history")
	must(t, os.MkdirAll(filepath.Dir(hist), 0o755))
	writeFile(t, hist, "rm -rf /")
	r.waitEvent(hist, "create")
	writeFile(t, keys, "key\nintruder\n")
	r.waitEvent(keys, "change")
	r.noReportOn(other)
	for _, m := range r.reports() {
		switch p := field(m.Body, "Pathname"); p {
		case filepath.Join(home, "alice"), filepath.Join(home, "alice", ".ssh"), filepath.Join(home, "bob"), filepath.Dir(hist):
			t.Errorf("a directory whose name is not important was reported:\n%s", m)
		}
	}
}

// A change deep in a tree made while famids was stopped is found at its
// next start; a tree's baseline survives a restart.
func TestTreeRestartFindsDeepChanges(t *testing.T) {
	tree := t.TempDir()
	deep := filepath.Join(tree, "etc", "systemd", "system", "multi-user.target.wants")
	must(t, os.MkdirAll(deep, 0o755))
	unit := filepath.Join(deep, "ssh.service")
	writeFile(t, unit, "[Service]\n")
	r := startFamids(t, tree+"/**\n")
	if code := r.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("famids exited %d:\n%s", code, r.stderr.String())
	}
	writeFile(t, unit, "[Service]\nExecStartPre=/tmp/x\n")
	backdoor := filepath.Join(deep, "backdoor.service")
	writeFile(t, backdoor, "[Service]\n")
	newDir := filepath.Join(tree, "etc", "cron.d", "sub")
	must(t, os.MkdirAll(newDir, 0o755))
	writeFile(t, filepath.Join(newDir, "job"), "* * * * * root sh\n")
	r.start()
	for _, p := range []string{unit, backdoor, filepath.Join(newDir, "job")} {
		m := r.waitMail("report on "+p, func(m mail) bool { return field(m.Body, "Pathname") == p })
		if !strings.HasPrefix(field(m.Body, "Found"), "at start-up") {
			t.Errorf("%s changed while famids was stopped: Found %q:\n%s", p, field(m.Body, "Found"), m)
		}
	}
	// The new directory is watched after the restart.
	writeFile(t, filepath.Join(newDir, "job2"), "x")
	r.waitEvent(filepath.Join(newDir, "job2"), "create")
}

// The tree's ACTION runs for an entry deep in it, FAMIDS_PATH naming the
// entry; a file also configured on a line of its own runs that line's
// ACTION too.
func TestTreeActionRunsForDeepEntries(t *testing.T) {
	tree := t.TempDir()
	f := filepath.Join(tree, "a", "b", "passwd")
	must(t, os.MkdirAll(filepath.Dir(f), 0o755))
	writeFile(t, f, "root:x:0:0\n")
	r := startFamids(t, fmt.Sprintf("%s/**, echo tree $FAMIDS_PATH\n%s, echo own $FAMIDS_PATH\n", tree, f))
	writeFile(t, f, "root:x:0:0\nevil:x:0:0\n")
	r.waitEvent(f, "change")
	for _, want := range []string{"tree " + f, "own " + f} {
		r.waitMail("action output "+want, func(m mail) bool {
			return m.Subject == subjectAction && strings.Contains(m.Body, want)
		})
	}
}

// A tree stays on its file system: a file system mounted inside it is
// not entered, and the mount itself is told of.
func TestTreeStaysOnItsFileSystem(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting needs root")
	}
	needTool(t, "mount")
	tree := t.TempDir()
	mnt := filepath.Join(tree, "mnt")
	must(t, os.Mkdir(mnt, 0o755))
	mark := filepath.Join(tree, "mark")
	writeFile(t, mark, "m")
	under := filepath.Join(mnt, "under")
	writeFile(t, under, "there all along")
	r := startFamids(t, tree+"/**\n")
	if out, err := exec.Command("mount", "-t", "tmpfs", "none", mnt).CombinedOutput(); err != nil {
		t.Fatalf("mount: %v: %s", err, out)
	}
	mounted := true
	t.Cleanup(func() {
		if mounted {
			exec.Command("umount", "-l", mnt).Run()
		}
	})
	r.waitNotice("a mount on a watched path")
	must(t, os.MkdirAll(filepath.Join(mnt, "in"), 0o755))
	writeFile(t, filepath.Join(mnt, "in", "file"), "x")
	writeFile(t, mark, "changed")
	r.waitEvent(mark, "change")
	r.noReportOn(filepath.Join(mnt, "in"))

	// Unmounted, what was under the mount is the tree's again: watched,
	// and never reported as made by an unknown process.
	if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
		t.Fatalf("umount: %v: %s", err, out)
	}
	mounted = false
	r.waitNotice("a mount on a watched path")
	n := len(r.mails())
	appendFile(t, under, " and written")
	r.waitMail("report of the write to "+under, func(m mail) bool {
		return m.Subject == subjectReport && field(m.Body, "Pathname") == under && strings.Contains(field(m.Body, "Differs"), "sha256")
	})
	for _, m := range r.mails()[:n] {
		if field(m.Body, "Pathname") == under && strings.HasPrefix(field(m.Body, "Event"), "create") && field(m.Body, "Found") == "" {
			t.Errorf("a file there all along is reported as made:\n%s", m)
		}
	}
}

// A tree that needs more watches than famids may take is told of once,
// with the count it needs and the limit; it is watched as far as its
// share allows, nearest its root first, and the other lines keep theirs.
func TestTreeOverTheWatchLimit(t *testing.T) {
	needTool(t, "unshare")
	needTool(t, "nsenter")
	base, err := filepath.EvalSymlinks(t.TempDir())
	must(t, err)
	tree := filepath.Join(base, "tree")
	var files []string
	for i := range 300 {
		d := filepath.Join(tree, "top", fmt.Sprintf("d%03d", i))
		must(t, os.MkdirAll(d, 0o755))
		files = append(files, filepath.Join(d, "f"))
		writeFile(t, files[i], "x")
	}
	passwd := filepath.Join(base, "passwd")
	writeFile(t, passwd, "root:x:0:0\n")
	r := newRun(t, tree+"/**\n"+passwd+"\n")
	r.wrap = inUserNamespace(200)
	r.start("-state", "", "-max-mails", "1000", "-verify", "2s")
	m := r.waitNotice("tree " + tree + "/** needs more inotify watches than famids may take")
	if !strings.Contains(m.Body, "max_user_watches is 200") || !strings.Contains(m.Body, "sysctl fs.inotify.max_user_watches=") {
		t.Errorf("the notice does not say the limit and what to raise it to:\n%s", m.Body)
	}
	var need int
	if _, err := fmt.Sscanf(m.Body[strings.Index(m.Body, "may take: ")+len("may take: "):], "%d in all", &need); err != nil || need < 302 {
		t.Errorf("the notice says the tree needs %d watches (%v), want at least its 302 directories:\n%s", need, err, m.Body)
	}
	noMoreNotices := func() {
		n := 0
		for _, m := range r.mails() {
			if m.Subject == subjectNotice && strings.Contains(m.Body, "needs more inotify watches") {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%d notices of the tree over the limit, want 1:\n%s", n, r.dump())
		}
	}
	appendFile(t, passwd, "evil:x:0:0\n")
	r.waitEvent(passwd, "change")
	shallow := filepath.Join(tree, "top", "new")
	writeFile(t, shallow, "x")
	r.waitEvent(shallow, "create")
	// A change in any directory, watched or past the budget, is
	// reported: by its event, or at the next verification.
	for _, f := range files {
		appendFile(t, f, "changed\n")
	}
	for _, f := range files {
		r.waitEvent(f, "change")
	}
	noMoreNotices()

	// The limit raised and famids told, every directory is watched.
	raise := exec.Command("nsenter", "-U", "-t", strconv.Itoa(r.cmd.Process.Pid), "--preserve-credentials",
		"sh", "-c", "echo 100000 > /proc/sys/user/max_inotify_watches")
	if out, err := raise.CombinedOutput(); err != nil {
		t.Fatalf("raising the limit: %v: %s", err, out)
	}
	must(t, r.cmd.Process.Signal(syscall.SIGHUP))
	deadline := time.Now().Add(waitFor)
	for len(inotifyWatches(t, r.cmd.Process.Pid)) < 302 {
		if time.Now().After(deadline) {
			t.Fatalf("%d watches once the limit is raised, want one for each of the tree's 302 directories at least", len(inotifyWatches(t, r.cmd.Process.Pid)))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A tree's root replaced by a rename, removed, and made again: what the
// new root holds is reported as made, and watched; what the old one held,
// as gone.
func TestTreeRootReplacedAndRemoved(t *testing.T) {
	base := t.TempDir()
	tree := filepath.Join(base, "tree")
	must(t, os.MkdirAll(filepath.Join(tree, "old"), 0o755))
	oldFile := filepath.Join(tree, "old", "file")
	writeFile(t, oldFile, "o")
	fake := filepath.Join(base, "fake")
	must(t, os.MkdirAll(filepath.Join(fake, "sub"), 0o755))
	writeFile(t, filepath.Join(fake, "sub", "trojan"), "t")
	r := startFamids(t, tree+"/**\n", "-max-mails", "1000")

	must(t, os.Rename(tree, filepath.Join(base, "was")))
	must(t, os.Rename(fake, tree))
	trojan := filepath.Join(tree, "sub", "trojan")
	r.waitEvent(trojan, "create")
	r.waitEvent(oldFile, "delete")
	writeFile(t, trojan, "written")
	r.waitEvent(trojan, "change")
	// A write where the old root went is not the tree's.
	writeFile(t, filepath.Join(base, "was", "old", "file"), "elsewhere")

	must(t, os.RemoveAll(tree))
	r.waitEvent(trojan, "delete")
	deep := filepath.Join(tree, "a", "b", "again")
	must(t, os.MkdirAll(filepath.Dir(deep), 0o755))
	writeFile(t, deep, "x")
	r.waitEvent(deep, "create")
	for _, m := range r.reports() {
		if field(m.Body, "Pathname") == oldFile && strings.HasPrefix(field(m.Body, "Event"), "change") {
			t.Errorf("a write to the old root, moved away, was reported:\n%s", m)
		}
	}
}

// A suspension's resume compares every path of a tree, at any depth:
// what changed meanwhile is in its notice.
func TestTreeResumeComparesDeepPaths(t *testing.T) {
	tree := t.TempDir()
	deep := filepath.Join(tree, "a", "b", "c")
	must(t, os.MkdirAll(deep, 0o755))
	f := filepath.Join(deep, "lib.so")
	writeFile(t, f, "v1")
	r := startFamids(t, tree+"/**\n")
	r.cmd.Process.Signal(syscall.SIGUSR1)
	r.waitNotice("reporting suspended")
	writeFile(t, f, "v2 trojan")
	added := filepath.Join(deep, "new", "added.so")
	must(t, os.MkdirAll(filepath.Dir(added), 0o755))
	writeFile(t, added, "x")
	r.cmd.Process.Signal(syscall.SIGUSR2)
	m := r.waitNotice("reporting resumed on SIGUSR2")
	for _, want := range []string{"\n" + f + ": change; differs: ", "\n" + added + ": create; "} {
		if !strings.Contains(m.Body, want) {
			t.Errorf("resume notice lacks %q:\n%s", want, m.Body)
		}
	}
	// Watched after the resume.
	writeFile(t, added, "changed")
	r.waitEvent(added, "change")
}

// A directory's line turned into a tree's keeps the baseline of what the
// directory held: a change made meanwhile is found at start-up, and what
// lies deeper is recorded, not reported as made.
func TestTreeCarriesTheDirectorysBaseline(t *testing.T) {
	dir := t.TempDir()
	top := filepath.Join(dir, "sshd_config")
	writeFile(t, top, "PermitRootLogin no\n")
	deep := filepath.Join(dir, "sshd_config.d", "local.conf")
	must(t, os.MkdirAll(filepath.Dir(deep), 0o755))
	writeFile(t, deep, "x\n")
	r := startFamids(t, dir+"\n")
	r.stop(syscall.SIGTERM)
	writeFile(t, top, "PermitRootLogin yes\n")
	must(t, os.WriteFile(r.conf, []byte(dir+"/**\n"), 0o600))
	n := r.restart()
	m := r.waitEvent(top, "change")
	if !strings.HasPrefix(field(m.Body, "Found"), "at start-up") {
		t.Errorf("Found %q:\n%s", field(m.Body, "Found"), m)
	}
	writeFile(t, deep, "changed\n")
	r.waitEvent(deep, "change")
	for _, m := range r.mails()[n:] {
		if p := field(m.Body, "Pathname"); p == deep && strings.HasPrefix(field(m.Body, "Event"), "create") {
			t.Errorf("a file that was there is reported as made:\n%s", m)
		}
	}
}

// A chain of directories deeper than the kernel resolves paths (PATH_MAX)
// made in a tree is told of in a notice, once, naming the directory below
// which nothing can be watched; famids stays quick to report the rest.
func TestTreeTooDeepIsToldOf(t *testing.T) {
	tree := t.TempDir()
	other := filepath.Join(t.TempDir(), "passwd")
	writeFile(t, other, "root:x:0:0\n")
	r := startFamids(t, tree+"/**\n"+other+"\n") // the chain's reports folded into a digest
	fd, err := unix.Open(tree, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	must(t, err)
	levels := (unix.PathMax-len(tree))/2 + 50 // "/e" each: past PATH_MAX
	for range levels {
		must(t, unix.Mkdirat(fd, "e", 0o755))
		next, err := unix.Openat(fd, "e", unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
		must(t, err)
		unix.Close(fd)
		fd = next
	}
	f, err := unix.Openat(fd, "bottom", unix.O_CREAT|unix.O_WRONLY|unix.O_CLOEXEC, 0o4755)
	must(t, err)
	unix.Close(f)
	unix.Close(fd)
	m := r.waitNotice("tree " + tree + "/** holds directories too deep to watch")
	if !strings.Contains(m.Body, "PATH_MAX") || !strings.Contains(m.Body, tree+"/e/e/e") {
		t.Errorf("the notice does not say where, nor why:\n%.3000s", m.Body)
	}
	appendFile(t, other, "evil:x:0:0\n")
	r.waitEvent(other, "change")
	n := 0
	for _, m := range r.mails() {
		if m.Subject == subjectNotice && strings.Contains(m.Body, "too deep to watch") {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d notices of the tree too deep, want 1", n)
	}
}

// After inotify's queue overflows, a tree is compared whole: a change
// deep in it, and a directory made meanwhile with a file in it, are
// reported, and the new directory is watched from then on.
func TestTreeAfterAnOverflow(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to lower /proc/sys/fs/inotify/max_queued_events")
	}
	tree := t.TempDir()
	deep := filepath.Join(tree, "a", "b", "c", "passwd")
	must(t, os.MkdirAll(filepath.Dir(deep), 0o755))
	writeFile(t, deep, "root:x:0:0\n")
	spool := filepath.Join(tree, "spool")
	must(t, os.Mkdir(spool, 0o755))

	r := startWithSmallQueue(t, tree+"/**, , passwd | new*\n")
	overflowWhileStopped(t, r, spool)
	// Lost in the overflow:
	appendFile(t, deep, "intruder::0:0\n")
	made := filepath.Join(tree, "x", "y", "z", "newkey")
	must(t, os.MkdirAll(filepath.Dir(made), 0o755))
	writeFile(t, made, "k")
	must(t, r.cmd.Process.Signal(syscall.SIGCONT))

	r.waitNotice("the kernel's inotify event queue overflowed: events were lost")
	m := r.waitReport(deep, "change")
	if field(m.Body, "Found") != foundAfterFlood || !strings.Contains(field(m.Body, "Differs"), "sha256") {
		t.Errorf("the deep change lost in the overflow:\n%s", m.Body)
	}
	m = r.waitEvent(made, "create")
	if field(m.Body, "Found") == "" {
		t.Errorf("the file made during the overflow is reported as if an event told:\n%s", m.Body)
	}
	appendFile(t, made, "more")
	r.waitEvent(made, "change")
}

// Users' files take at most half the watches of other names: a user's
// files in a tree's many directories, and directories made after them,
// cannot leave a root-owned file that others may write without a watch
// of its own, so that a write through a hard link elsewhere is seen.
func TestTreeUsersCannotTakeRootsAliases(t *testing.T) {
	needTool(t, "unshare")
	base, err := filepath.EvalSymlinks(t.TempDir())
	must(t, err)
	tree := filepath.Join(base, "tree")
	for i := range 40 {
		d := filepath.Join(tree, "pub", fmt.Sprintf("u%02d", i))
		must(t, os.MkdirAll(d, 0o755))
		for j := range 10 {
			f := filepath.Join(d, fmt.Sprintf("f%02d", j))
			writeFile(t, f, "x")
			must(t, os.Chown(f, 65534, 65534))
		}
	}
	r := newRun(t, tree+"/**\n")
	r.wrap = inUserNamespace(400)
	r.start("-state", "", "-max-mails", "10000")
	for i := range 30 {
		must(t, os.MkdirAll(filepath.Join(tree, "pub", fmt.Sprintf("later%02d", i)), 0o755))
	}
	shared := filepath.Join(tree, "zz", "shared")
	must(t, os.MkdirAll(filepath.Dir(shared), 0o755))
	writeFile(t, shared, "root's\n")
	must(t, os.Chmod(shared, 0o666))
	r.waitEvent(shared, "create")
	deadline := time.Now().Add(waitFor)
	for {
		if _, ok := inotifyWatches(t, r.cmd.Process.Pid)[inode(t, shared)]; ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("root's file that others may write has no watch of its own beside users' files:\n%s", r.dump())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
