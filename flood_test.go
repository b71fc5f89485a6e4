package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestFloodFoldsPastTheLimit(t *testing.T) {
	f := newFlood(3)
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	d := []string{"/d"}
	for i := range 3 {
		if !f.allow(d, now.Add(time.Duration(i)*time.Second)) {
			t.Fatalf("message %d of 3 in a minute was folded", i+1)
		}
	}
	if !f.due().IsZero() {
		t.Errorf("a digest is due with nothing folded")
	}
	for i := range 5 {
		if f.allow(d, now.Add(10*time.Second)) {
			t.Fatalf("message %d past the limit went out on its own", i+1)
		}
		r := &report{Path: fmt.Sprintf("/d/f%d", i), Events: []string{"create"}, After: attrs{Exists: true, Type: "file"}}
		f.foldReport(r, d, []string{"rpm -V x", "true"})
	}
	for i := range 3 {
		if !f.allow([]string{noticeLine}, now) {
			t.Fatalf("notice %d of 3 was folded: the flood of /d folds only /d's reports", i+1)
		}
	}
	if f.allow([]string{noticeLine}, now.Add(30*time.Second)) {
		t.Fatalf("a fourth notice went out on its own")
	}
	f.foldNotice(noticeBody("the kernel's inotify event queue overflowed", "detail"))
	// Another line, and a report through both lines, go out on their
	// own: the flood of /d buries neither.
	if !f.allow([]string{"/etc/passwd"}, now.Add(40*time.Second)) || !f.allow([]string{"/d", "/d/sshd"}, now.Add(40*time.Second)) {
		t.Errorf("a report of another line was folded into /d's flood")
	}
	if due := f.due(); !due.Equal(now.Add(time.Minute)) {
		t.Errorf("digest due at %v, want a minute after the first message", due)
	}
	// Until the digest goes, everything folds, even a minute later.
	if f.allow(d, now.Add(2*time.Minute)) {
		t.Errorf("a message went out on its own before the digest")
	}
	if ds := f.digests(now.Add(59*time.Second), false); len(ds) != 0 {
		t.Errorf("digests before the minute ended: %+v", ds)
	}
	ds := f.digests(now.Add(time.Minute), false)
	if len(ds) != 2 {
		t.Fatalf("%d digests, want one of /d's reports and one of notices", len(ds))
	}
	if ds[0].reports == "" {
		ds[0], ds[1] = ds[1], ds[0]
	}
	reports, paths, actions, notices := ds[0].reports, ds[0].paths, ds[0].actions, ds[1].notices
	if len(paths) != 5 || paths[0] != "/d/f0" {
		t.Errorf("paths of the digest: %q", paths)
	}
	if !strings.HasPrefix(reports, "Possible intrusion:\nPathname: /d/f0\nEvent: create\nFolded: 5 reports (more than -max-mails a minute)\n") {
		t.Errorf("digest of reports:\n%s", reports)
	}
	for i := range 5 {
		if !strings.Contains(reports, fmt.Sprintf("\n/d/f%d: create; differs: existence\n", i)) {
			t.Errorf("the digest lacks /d/f%d:\n%s", i, reports)
		}
	}
	if len(actions) != 2 || actions[0].action != "rpm -V x" || len(actions[0].paths) != 5 {
		t.Errorf("actions of the digest: %+v, want each action once, with the 5 paths", actions)
	}
	if !strings.HasPrefix(notices, "Notice: 1 notices folded, the first: the kernel's inotify event queue overflowed\n") || !strings.Contains(notices, "\ndetail\n") {
		t.Errorf("digest of notices:\n%s", notices)
	}
	// A new minute: messages go out on their own again.
	if !f.allow(d, now.Add(61*time.Second)) {
		t.Errorf("after the digest, a message was folded")
	}
}

// A flood of new files in a watched directory with an action: a few
// reports one by one, then one digest with the rest, and the action run
// a few times, not once per file.
func TestFloodOfFilesIsOneDigest(t *testing.T) {
	dir := t.TempDir()
	spool := filepath.Join(dir, "spool")
	must(t, os.Mkdir(spool, 0o755))
	counter := filepath.Join(dir, "runs")
	r := startFamids(t, fmt.Sprintf("%s, echo run >> %s\n", spool, counter), "-max-mails", "10")
	const files = 300
	for i := range files {
		writeFile(t, filepath.Join(spool, fmt.Sprintf("junk%03d", i)), "x")
	}
	r.waitReports(10)
	if code := r.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("exit status %d", code)
	}
	var single, digests int
	var folded []string
	for _, m := range r.reports() {
		if n := field(m.Body, "Folded"); n != "" {
			digests++
			folded = append(folded, strings.Split(strings.TrimSpace(m.Body), "\n")[4:]...)
			continue
		}
		single++
	}
	if single > 10 || digests != 1 {
		t.Errorf("%d reports one by one and %d digests, want at most 10 and one", single, digests)
	}
	if single+len(folded) != files {
		t.Errorf("%d reports one by one and %d folded, want %d in all: nothing is dropped", single, len(folded), files)
	}
	runs, _ := os.ReadFile(counter)
	if n := strings.Count(string(runs), "run\n"); n < 1 || n > 12 {
		t.Errorf("the action ran %d times for %d files, want a few", n, files)
	}
}

// A flood on one line of the configuration buries no other line's
// report: a change of another configured file, made while the flood's
// reports are being folded, is mailed on its own at once, and so is a
// file of the flooded directory that has a line of its own.
func TestFloodBuriesNoOtherLine(t *testing.T) {
	dir := t.TempDir()
	spool := filepath.Join(dir, "spool")
	must(t, os.Mkdir(spool, 0o755))
	passwd, own := filepath.Join(dir, "passwd"), filepath.Join(spool, "sshd_config")
	writeFile(t, passwd, "root:x:0:0\n")
	writeFile(t, own, "PermitRootLogin no\n")
	r := startFamids(t, spool+"\n"+passwd+"\n"+own+"\n", "-max-mails", "10")
	for i := range 300 {
		writeFile(t, filepath.Join(spool, fmt.Sprintf("junk%03d", i)), "x")
	}
	r.waitReports(10)
	appendFile(t, passwd, "evil::0:0\n")
	appendFile(t, own, "PermitRootLogin yes\n")
	m := r.waitReport(passwd, "change")
	wantDiffers(t, m, "size", "mtime", "ctime", "sha256")
	if field(m.Body, "Folded") != "" {
		t.Errorf("the report of another line is a digest:\n%s", m.Body)
	}
	r.waitReport(own, "change")
	if code := r.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("exit status %d", code)
	}
	digests := 0
	for _, m := range r.reports() {
		if field(m.Body, "Folded") == "" {
			continue
		}
		digests++
		if strings.Contains(m.Body, passwd+":") || strings.Contains(m.Body, own+":") {
			t.Errorf("a digest holds another line's report:\n%.2000s", m.Body)
		}
	}
	if digests != 1 {
		t.Errorf("%d digests, want the flooded line's one", digests)
	}
}
