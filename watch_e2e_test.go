package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

func writeFile(t testing.TB, path, text string) {
	t.Helper()
	must(t, os.WriteFile(path, []byte(text), 0o644))
}

func appendFile(t *testing.T, path, text string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	must(t, err)
	_, err = f.WriteString(text)
	must(t, err)
	must(t, f.Close())
}

// replaceByRename writes text to a new file and renames it over path, as
// editors, rpm, dpkg and install do.
func replaceByRename(t *testing.T, path, text string) {
	t.Helper()
	tmp := path + ".new"
	writeFile(t, tmp, text)
	must(t, os.Rename(tmp, path))
}

func TestModifyReport(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "passwd")
	writeFile(t, f, "root:x:0:0\n")
	r := startFamids(t, f+"\n")
	appendFile(t, f, "evil:x:0:0\n")
	m := r.waitReport(f, "change")
	if !slices.Equal(m.Args, []string{"-s", "famids report", "admin@example.org"}) {
		t.Errorf("mail argv = %q", m.Args)
	}
	if got := field(m.Body, "Differs"); got != "size mtime ctime sha256" {
		t.Errorf("Differs: %q, want size mtime ctime sha256\n%s", got, m.Body)
	}
	host, _ := os.Hostname()
	if got := field(m.Body, "Host"); got != host {
		t.Errorf("Host: %q, want %q", got, host)
	}
	before, after := field(m.Body, "Before"), field(m.Body, "After")
	if !strings.Contains(before, "size=11 ") || !strings.Contains(after, "size=22 ") || !strings.Contains(after, "type=file mode=0644 uid=") {
		t.Errorf("Before/After do not describe the file:\n%s", m.Body)
	}
	if code := r.stop(syscall.SIGTERM); code != 0 {
		t.Errorf("exit status after SIGTERM = %d, want 0", code)
	}
	if len(r.mails()) != 1 {
		t.Errorf("want exactly one mail, got:\n%s", r.dump())
	}
}

func TestReplaceByRenameKeepsWatching(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "ls")
	writeFile(t, f, "v0")
	r := startFamids(t, f+"\n")
	for i := 1; i <= 3; i++ {
		replaceByRename(t, f, fmt.Sprintf("v%d", i))
		r.waitReports(2*i - 1)
		appendFile(t, f, "!") // a write to the new file must be seen too
		reports := r.waitReports(2 * i)
		if !strings.HasPrefix(reports[2*i-2].Body, reportHead(f, "create")) {
			t.Errorf("replacement %d: want a create report, got:\n%s", i, reports[2*i-2].Body)
		}
		if !strings.HasPrefix(reports[2*i-1].Body, reportHead(f, "change")) {
			t.Errorf("write after replacement %d: want a change report, got:\n%s", i, reports[2*i-1].Body)
		}
	}
	first := r.reports()[0].Body
	if d := field(first, "Differs"); !strings.Contains(d, "inode") || !strings.Contains(d, "sha256") {
		t.Errorf("a file replaced by rename differs in inode and sha256, report says %q", d)
	}
}

func TestDeleteAndRecreate(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "sshd")
	writeFile(t, f, "real")
	r := startFamids(t, f+"\n")
	must(t, os.Remove(f))
	m := r.waitReport(f, "delete")
	if field(m.Body, "After") != "absent" || field(m.Body, "Differs") != "existence" {
		t.Errorf("delete report:\n%s", m.Body)
	}
	writeFile(t, f, "trojan")
	// The write lands before or after the new file's watch is set.
	m = r.waitReport(f, "create", "create, change")
	if field(m.Body, "Before") != "absent" {
		t.Errorf("create report:\n%s", m.Body)
	}
	appendFile(t, f, "more")
	r.waitReport(f, "change")
}

func TestWriteThroughHardLink(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "etc", "shadow")
	must(t, os.Mkdir(filepath.Dir(f), 0o755))
	writeFile(t, f, "x")
	other := filepath.Join(dir, "elsewhere")
	must(t, os.Link(f, other))
	r := startFamids(t, f+"\n")
	appendFile(t, other, "y")
	m := r.waitReport(f, "change")
	if !strings.Contains(field(m.Body, "Differs"), "sha256") {
		t.Errorf("write through a hard link:\n%s", m.Body)
	}
}

func TestDirectoryAllEntries(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "old"), "o")
	r := startFamids(t, dir+"\n")
	writeFile(t, filepath.Join(dir, "new"), "n")
	r.waitReport(filepath.Join(dir, "new"), "create, change")
	must(t, os.Remove(filepath.Join(dir, "old")))
	m := r.waitReport(filepath.Join(dir, "old"), "delete")
	if !strings.HasPrefix(field(m.Body, "Before"), "type=file") {
		t.Errorf("an entry present at start-up has a recorded Before:\n%s", m.Body)
	}
	must(t, os.Mkdir(filepath.Join(dir, "sub"), 0o755))
	r.waitReport(filepath.Join(dir, "sub"), "create")
	// Not recursive: what happens inside sub is not reported.
	writeFile(t, filepath.Join(dir, "sub", "deep"), "d")
	must(t, os.Rename(filepath.Join(dir, "new"), filepath.Join(dir, "renamed")))
	r.waitReport(filepath.Join(dir, "renamed"), "create")
	r.waitReport(filepath.Join(dir, "new"), "move")
	for _, m := range r.reports() {
		if strings.Contains(m.Body, "deep") {
			t.Errorf("an entry of a subdirectory was reported:\n%s", m.Body)
		}
	}
}

func TestDirectoryImportantNames(t *testing.T) {
	dir := t.TempDir()
	r := startFamids(t, fmt.Sprintf("%s, , .bash_history | *.so\n", dir))
	writeFile(t, filepath.Join(dir, ".profile"), "unimportant")
	writeFile(t, filepath.Join(dir, "notes.txt"), "unimportant")
	writeFile(t, filepath.Join(dir, "libevil.so"), "x")
	r.waitReport(filepath.Join(dir, "libevil.so"), "create, change")
	writeFile(t, filepath.Join(dir, ".bash_history"), "ls\n")
	r.waitReport(filepath.Join(dir, ".bash_history"), "create, change")
	must(t, os.Chmod(dir, 0o700))
	r.waitReport(dir, "change")
	for _, m := range r.reports() {
		if strings.Contains(m.Body, ".profile") || strings.Contains(m.Body, "notes.txt") {
			t.Errorf("an unimportant entry was reported:\n%s", m.Body)
		}
	}
	// The directory's own removal is always reported.
	must(t, os.RemoveAll(dir))
	r.waitReport(dir, "delete")
}

func TestMissingPathAppears(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "opt", "app", "conf")
	r := startFamids(t, f+"\n")
	if !strings.Contains(r.stderr.String(), f+" does not exist (yet)") {
		t.Errorf("no warning for the missing path; stderr:\n%s", r.stderr.String())
	}
	must(t, os.MkdirAll(filepath.Dir(f), 0o755))
	writeFile(t, f, "appeared")
	m := r.waitMail("create report", func(m mail) bool {
		return strings.HasPrefix(m.Body, "Possible intrusion:\nPathname: "+f+"\nEvent: create")
	})
	if field(m.Body, "Before") != "absent" {
		t.Errorf("report:\n%s", m.Body)
	}
	// Once there, it is watched like any other file.
	appendFile(t, f, "!")
	r.waitReport(f, "change")
}

func TestSymlinkedDirectory(t *testing.T) {
	// As on merged-/usr systems, where /bin links to usr/bin.
	root := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(root, "usr", "bin"), 0o755))
	must(t, os.Symlink("usr/bin", filepath.Join(root, "bin")))
	real := filepath.Join(root, "usr", "bin", "ls")
	writeFile(t, real, "ls")
	ls := filepath.Join(root, "bin", "ls")
	r := startFamids(t, ls+"\n")
	appendFile(t, real, "trojan")
	r.waitReport(ls, "change")
	replaceByRename(t, real, "trojan2")
	r.waitReport(ls, "create")
	// Pointing the link elsewhere is seen too.
	must(t, os.MkdirAll(filepath.Join(root, "evil"), 0o755))
	writeFile(t, filepath.Join(root, "evil", "ls"), "evil")
	must(t, os.Symlink("evil", filepath.Join(root, "bin.new")))
	must(t, os.Rename(filepath.Join(root, "bin.new"), filepath.Join(root, "bin")))
	r.waitReport(ls, "create")
	for _, m := range r.reports() {
		if strings.Contains(field(m.Body, "Pathname"), "usr") {
			t.Errorf("report names the resolved path, not the configured one:\n%s", m.Body)
		}
	}
}

func TestSymlinkLeafReplaced(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "zoneinfo")
	writeFile(t, target, "UTC")
	link := filepath.Join(dir, "localtime")
	must(t, os.Symlink(target, link))
	r := startFamids(t, link+"\n")
	appendFile(t, target, "+1")
	r.waitReport(link, "change")
	must(t, os.Remove(link))
	r.waitReport(link, "delete")
}
