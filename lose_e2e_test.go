package main

// End-to-end tests of the windows in which a watcher could miss a change:
// while famids is down, during a reload, a suspension or a queue overflow.

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// mailsSince returns the mails delivered after the first n.
func (r *famidsRun) mailsSince(n int) []mail {
	all := r.mails()
	if n > len(all) {
		return nil
	}
	return all[n:]
}

// waitNthReport waits for the nth report on path and returns it.
func (r *famidsRun) waitNthReport(path string, n int) mail {
	r.t.Helper()
	r.waitMail(fmt.Sprintf("report %d on %s", n, path), func(mail) bool { return len(r.reportsOn(path)) >= n })
	return r.reportsOn(path)[n-1]
}

// restart starts famids again on the same configuration and state and
// returns how many mails there were before.
func (r *famidsRun) restart(args ...string) int {
	r.t.Helper()
	n := len(r.mails())
	r.start(args...)
	return n
}

// readStateFile decodes the run's state file.
func (r *famidsRun) readStateFile() state {
	r.t.Helper()
	return readStateAt(r.t, r.state)
}

// readStateAt decodes the state file at path, with the batches of its
// journal, as the next start reads them.
func readStateAt(t *testing.T, path string) state {
	t.Helper()
	s, err := loadState(path)
	must(t, err)
	if s == nil {
		t.Fatalf("no state file %s", path)
	}
	_, err = replayJournal(s, journalFile(path))
	must(t, err)
	return *s
}

func TestRestartAfterKillReportsWhatChanged(t *testing.T) {
	dir := t.TempDir()
	ls := filepath.Join(dir, "ls")
	sshd := filepath.Join(dir, "sshd")
	etc := filepath.Join(dir, "etc")
	must(t, os.Mkdir(etc, 0o755))
	passwd := filepath.Join(etc, "passwd")
	shadow := filepath.Join(etc, "shadow")
	writeFile(t, ls, "real ls")
	writeFile(t, sshd, "real sshd")
	writeFile(t, passwd, "root:x:0:0")
	r := startFamids(t, fmt.Sprintf("%s\n%s\n%s, , passwd | shadow\n", ls, sshd, etc))
	pid := r.cmd.Process.Pid
	if s := r.readStateFile(); s.Clean || s.PID != pid || s.Records.len() != 4 {
		t.Errorf("state while running: clean=%v pid=%d records=%d, want false, %d, 4 (three entries and etc/passwd)", s.Clean, s.PID, s.Records.len(), pid)
	}
	r.stop(syscall.SIGKILL)

	// The intruder's work, while famids is down.
	tmp := filepath.Join(dir, ".ls.new")
	writeFile(t, tmp, "trojan ls")
	must(t, os.Rename(tmp, ls))
	must(t, os.Remove(sshd))
	writeFile(t, shadow, "root:$6$")

	n := r.restart()
	m := r.waitNotice(fmt.Sprintf("the previous famids (pid %d) did not stop cleanly; last known alive at ", pid))
	alive := strings.TrimSpace(strings.SplitAfter(strings.SplitN(m.Body, "\n", 2)[0], "alive at ")[1])
	if when, err := time.Parse(time.RFC3339, alive); err != nil || time.Since(when) > time.Minute {
		t.Errorf("last known alive %q (%v), want a time within the last minute", alive, err)
	}
	for _, want := range []struct{ path, event, differs string }{
		{ls, "change", "size mtime ctime inode sha256"},
		{sshd, "delete", "existence"},
		{shadow, "create", "existence"},
	} {
		m := r.waitReport(want.path, want.event)
		if got := field(m.Body, "Found"); got != foundAtStart {
			t.Errorf("Found: %q, want %q", got, foundAtStart)
		}
		if got := field(m.Body, "Differs"); got != want.differs {
			t.Errorf("%s: Differs: %q, want %q", want.path, got, want.differs)
		}
	}
	// Then famids watches as usual, from the new record.
	appendFile(t, ls, "!")
	m = r.waitNthReport(ls, 2)
	if got := field(m.Body, "Differs"); field(m.Body, "Found") != "" || got != "size mtime ctime sha256" {
		t.Errorf("after the restart, a write: Differs: %q, want size mtime ctime sha256", got)
	}
	var notices, reports int
	for _, m := range r.mailsSince(n) {
		switch m.Subject {
		case subjectNotice:
			notices++
		case subjectReport:
			reports++
		}
	}
	if notices != 1 || reports != 4 {
		t.Errorf("after the restart: %d notices and %d reports, want 1 and 4:\n%s", notices, reports, r.dump())
	}
}

func TestCleanRestartSendsNothing(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a")
	b := filepath.Join(dir, "b")
	writeFile(t, a, "a")
	writeFile(t, b, "b")
	r := startFamids(t, a+"\n"+b+"\n"+dir+"\n")
	if code := r.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("exit status %d after SIGTERM", code)
	}
	if s := r.readStateFile(); !s.Clean {
		t.Errorf("state after SIGTERM: clean=false, want true")
	}
	n := r.restart()
	// A change after the restart is reported, and it is the only mail:
	// famids queues what it finds at start-up before it is ready, and
	// mails in order.
	appendFile(t, b, "!")
	r.waitReport(b, "change")
	if got := r.mailsSince(n); len(got) != 1 {
		t.Errorf("after a clean restart and one change: %d mails, want 1:\n%s", len(got), r.dump())
	}
}

func TestChangeBetweenCleanRuns(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "sshd_config")
	writeFile(t, f, "PermitRootLogin no\n")
	r := startFamids(t, f+", /bin/echo checked\n")
	r.stop(syscall.SIGTERM)
	must(t, os.Chmod(f, 0o666))
	n := r.restart()
	m := r.waitReport(f, "change")
	if field(m.Body, "Found") != foundAtStart || field(m.Body, "Differs") != "mode ctime" {
		t.Errorf("report of a change made between runs:\n%s", m.Body)
	}
	// Its action runs, as for any report.
	act := r.waitAction(f)
	if !strings.Contains(act.Body, "checked\n") {
		t.Errorf("action report:\n%s", act.Body)
	}
	for _, m := range r.mailsSince(n) {
		if m.Subject == subjectNotice {
			t.Errorf("a notice after a clean stop:\n%s", m.Body)
		}
	}
}

func TestNewEntryIsNotReportedAtStart(t *testing.T) {
	dir := t.TempDir()
	old := filepath.Join(dir, "old")
	added := filepath.Join(dir, "added")
	writeFile(t, old, "x")
	writeFile(t, added, "y")
	r := startFamids(t, old+"\n")
	r.stop(syscall.SIGTERM)
	must(t, os.WriteFile(r.conf, []byte(old+"\n"+added+"\n"), 0o600))
	n := r.restart()
	appendFile(t, added, "!")
	m := r.waitReport(added, "change")
	if field(m.Body, "Found") != "" || field(m.Body, "Differs") != "size mtime ctime sha256" {
		t.Errorf("first report on an entry new to the configuration:\n%s", m.Body)
	}
	if got := r.mailsSince(n); len(got) != 1 {
		t.Errorf("%d mails after the restart, want 1:\n%s", len(got), r.dump())
	}
}

func TestDamagedStateIsReportedAndRebuilt(t *testing.T) {
	for _, tc := range []struct{ name, content, want string }{
		{"damaged", `{"version":1,"records":{`, "damaged"},
		{"foreign", `{"version":99,"records":{}}`, "format version 99"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			f := filepath.Join(dir, "f")
			writeFile(t, f, "x")
			r := newRun(t, f+"\n")
			must(t, os.MkdirAll(filepath.Dir(r.state), 0o700))
			must(t, os.WriteFile(r.state, []byte(tc.content), 0o600))
			r.start()
			m := r.waitNotice("the state file cannot be used; a new baseline is recorded")
			if !strings.Contains(m.Body, tc.want) || !strings.Contains(m.Body, r.state) {
				t.Errorf("notice does not name the file and say %q:\n%s", tc.want, m.Body)
			}
			appendFile(t, f, "!")
			r.waitReport(f, "change")
			if code := r.stop(syscall.SIGTERM); code != 0 {
				t.Errorf("exit status %d", code)
			}
			if s := r.readStateFile(); !s.Clean || s.Version != stateVersion || s.recordOf(f).SHA256 == "" {
				t.Errorf("rebuilt state: %+v", s)
			}
		})
	}
}

func TestStateDirectoryCannotBeCreated(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "f")
	writeFile(t, f, "x")
	notDir := filepath.Join(dir, "plain-file")
	writeFile(t, notDir, "")
	r := startFamids(t, f+"\n", "-state", filepath.Join(notDir, "famids", "state.json"))
	appendFile(t, f, "!")
	r.waitReport(f, "change")
	if got := strings.Count(r.stderr.String(), "warning: no baseline is kept between runs"); got != 1 {
		t.Errorf("%d warnings about the state, want 1; stderr:\n%s", got, r.stderr.String())
	}
	if code := r.stop(syscall.SIGTERM); code != 0 {
		t.Errorf("exit status %d", code)
	}
	for _, m := range r.mails() {
		if m.Subject == subjectNotice {
			t.Errorf("a notice, want only a warning:\n%s", m.Body)
		}
	}
}

func TestSecondFamidsDoesNotTakeTheState(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "f")
	writeFile(t, f, "x")
	first := startFamids(t, f+"\n")
	second := startFamids(t, f+"\n", "-state", first.state)
	second.waitStderr("warning", "is in use by another famids")
	second.stop(syscall.SIGTERM)
	first.stop(syscall.SIGTERM)
	if s := first.readStateFile(); s.PID != first.cmd.Process.Pid || !s.Clean {
		t.Errorf("state file: pid %d clean %v, want the first famids's (%d) clean stop", s.PID, s.Clean, first.cmd.Process.Pid)
	}
}

// inotifyWatches returns the watch descriptors of famids's inotify
// instance, by inode number, from /proc.
func inotifyWatches(t *testing.T, pid int) map[uint64]int {
	t.Helper()
	fds, err := filepath.Glob(fmt.Sprintf("/proc/%d/fd/*", pid))
	must(t, err)
	wd := regexp.MustCompile(`inotify wd:([0-9a-f]+) ino:([0-9a-f]+)`)
	for _, fd := range fds {
		if target, _ := os.Readlink(fd); target != "anon_inode:inotify" {
			continue
		}
		info, err := os.ReadFile(fmt.Sprintf("/proc/%d/fdinfo/%s", pid, filepath.Base(fd)))
		must(t, err)
		out := make(map[uint64]int)
		for _, m := range wd.FindAllStringSubmatch(string(info), -1) {
			w, _ := strconv.ParseInt(m[1], 16, 64)
			ino, _ := strconv.ParseUint(m[2], 16, 64)
			out[ino] = int(w)
		}
		return out
	}
	t.Fatalf("famids (pid %d) has no inotify instance", pid)
	return nil
}

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	var st syscall.Stat_t
	must(t, syscall.Stat(path, &st))
	return st.Ino
}

func TestReloadAddsAndRemovesWatches(t *testing.T) {
	dir := t.TempDir()
	kept := filepath.Join(dir, "kept")
	removed := filepath.Join(dir, "removed")
	must(t, os.Mkdir(filepath.Join(dir, "new"), 0o755))
	added := filepath.Join(dir, "new", "added")
	writeFile(t, kept, "k")
	writeFile(t, removed, "r")
	writeFile(t, added, "a")
	r := startFamids(t, kept+"\n"+removed+"\n")
	pid := r.cmd.Process.Pid
	before := inotifyWatches(t, pid)

	must(t, os.WriteFile(r.conf, []byte(kept+"\n"+added+"\n"), 0o600))
	r.cmd.Process.Signal(syscall.SIGHUP)
	m := r.waitNotice("configuration reloaded from " + r.conf + ": 1 added, 1 removed")
	if !strings.Contains(m.Body, "\nAdded: "+added+"\n") || !strings.Contains(m.Body, "\nRemoved: "+removed+"\n") {
		t.Errorf("reload notice:\n%s", m.Body)
	}
	after := inotifyWatches(t, pid)
	if wd, ok := after[inode(t, kept)]; !ok || wd != before[inode(t, kept)] {
		t.Errorf("the kept file's watch changed on reload: wd %d, then %d (%v): it was unwatched for a moment", before[inode(t, kept)], wd, ok)
	}
	if _, ok := after[inode(t, removed)]; ok {
		t.Errorf("the removed file is still watched")
	}

	appendFile(t, removed, "!") // no longer watched: no report
	appendFile(t, added, "!")
	m = r.waitReport(added, "change")
	if field(m.Body, "Differs") != "size mtime ctime sha256" {
		t.Errorf("the added file's first report does not start from its baseline:\n%s", m.Body)
	}
	appendFile(t, kept, "!")
	r.waitReport(kept, "change")
	if got := r.reportsOn(removed); len(got) != 0 {
		t.Errorf("a report on a removed entry:\n%s", got[0].Body)
	}
	// The state is saved within a second or so.
	want := entryNames{kept: nil, added: nil}
	deadline := time.Now().Add(waitFor)
	for s := r.readStateFile(); !reflect.DeepEqual(s.Watched, want); s = r.readStateFile() {
		if time.Now().After(deadline) {
			t.Fatalf("the state's watched entries after the reload: %q, want %q", s.Watched, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestReloadKeepsConfigurationOnError(t *testing.T) {
	r, f := startOnFile(t)
	for i, tc := range []struct {
		name    string
		prepare func()
		want    string
	}{
		{"invalid", func() { must(t, os.WriteFile(r.conf, []byte(f+"\n\"unbalanced\n"), 0o600)) }, "configuration " + r.conf + " not reloaded: 1 invalid line(s); the one in use is kept"},
		{"missing", func() { must(t, os.Remove(r.conf)) }, "configuration " + r.conf + " not reloaded: open " + r.conf + ": no such file or directory; the one in use is kept"},
	} {
		tc.prepare()
		r.cmd.Process.Signal(syscall.SIGHUP)
		m := r.waitNotice(tc.want)
		if tc.name == "invalid" && !strings.Contains(m.Body, r.conf+":2: unbalanced quote") {
			t.Errorf("%s: the notice does not name the line:\n%s", tc.name, m.Body)
		}
		appendFile(t, f, strconv.Itoa(i))
		r.waitNthReport(f, i+1)
	}
}

func TestSuspendAndResume(t *testing.T) {
	dir := t.TempDir()
	ls := filepath.Join(dir, "ls")
	cat := filepath.Join(dir, "cat")
	same := filepath.Join(dir, "same")
	writeFile(t, ls, "ls 1.0")
	writeFile(t, cat, "cat 1.0")
	writeFile(t, same, "same")
	r := startFamids(t, ls+", /bin/echo action ran\n"+cat+"\n"+same+"\n")
	r.cmd.Process.Signal(syscall.SIGUSR1)
	r.waitNotice("reporting suspended (SIGUSR1) until SIGUSR2, for 1h0m0s at most")

	replaceByRename(t, ls, "ls 2.0")
	replaceByRename(t, ls, "ls 2.10")
	must(t, os.Remove(cat))
	r.cmd.Process.Signal(syscall.SIGUSR2)
	m := r.waitNotice("reporting resumed on SIGUSR2: 2 watched path(s) changed while suspended")
	for _, want := range []string{
		"\nEvents seen meanwhile: ",
		"\nChanged while suspended:\n",
		"\n" + cat + ": delete; differs: existence\n",
		"\n" + ls + ": change; differs: size mtime ", // inode too, unless the first one was reused
	} {
		if !strings.Contains(m.Body, want) {
			t.Errorf("resume notice lacks %q:\n%s", want, m.Body)
		}
	}
	if strings.Contains(m.Body, same) {
		t.Errorf("resume notice lists an unchanged path:\n%s", m.Body)
	}
	if got := r.reports(); len(got) != 0 {
		t.Errorf("reports sent while suspended:\n%s", got[0].Body)
	}

	// The replaced file is watched again, from its new record, and its
	// action runs again for an ordinary report.
	appendFile(t, ls, "!")
	rep := r.waitReport(ls, "change")
	if field(rep.Body, "Differs") != "size mtime ctime sha256" || !strings.Contains(field(rep.Body, "Before"), "size=7 ") {
		t.Errorf("first report after the resume:\n%s", rep.Body)
	}
	r.waitAction(ls)
	if got := r.actionReports(); len(got) != 1 {
		t.Errorf("%d action reports, want 1 (none for the resume summary)", len(got))
	}
	noEmptyReports(t, r)
}

// noEmptyReports fails when a report says nothing differs: an event
// reported again after a comparison already took it in.
func noEmptyReports(t *testing.T, r *famidsRun) {
	t.Helper()
	for _, m := range r.reports() {
		if field(m.Body, "Differs") == "nothing" {
			t.Errorf("a report of nothing, after a comparison:\n%s", m.Body)
		}
	}
}

func TestResumeWhenNotSuspended(t *testing.T) {
	r, f := startOnFile(t)
	r.cmd.Process.Signal(syscall.SIGUSR2)
	r.waitNotice("resume on SIGUSR2, but reporting was not suspended")
	appendFile(t, f, "!")
	r.waitReport(f, "change") // reporting goes on
}

func TestSuspensionEndsByItself(t *testing.T) {
	r, f := startOnFile(t, "-max-suspend", "1s")
	r.cmd.Process.Signal(syscall.SIGUSR1)
	r.waitNotice("reporting suspended")
	appendFile(t, f, "!")
	m := r.waitNotice("reporting resumed by itself after 1s: 1 watched path(s) changed while suspended")
	if !strings.Contains(m.Body, "\nEvents seen meanwhile: 1.\n") {
		t.Errorf("resume notice:\n%s", m.Body)
	}
}

func TestSyslog(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "f")
	writeFile(t, f, "x")
	sock := filepath.Join(dir, "log.sock")
	logger, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	must(t, err)
	defer logger.Close()
	r := newRun(t, f+"\n")
	r.env = []string{"FAMIDS_SYSLOG_SOCKET=" + sock}
	r.start("-syslog")
	must(t, os.Chmod(f, 0o600))
	r.waitReport(f, "change")

	must(t, logger.SetReadDeadline(time.Now().Add(waitFor)))
	buf := make([]byte, 4096)
	n, err := logger.Read(buf)
	if err != nil {
		t.Fatalf("nothing logged: %v; stderr:\n%s", err, r.stderr.String())
	}
	line := string(buf[:n])
	// authpriv (10) * 8 + warning (4) = 84
	want := regexp.MustCompile(`^<84>.* famids\[` + strconv.Itoa(r.cmd.Process.Pid) + `\]: report: ` + regexp.QuoteMeta(f) + `: change; differs: mode ctime; by famids\.test\[` + strconv.Itoa(os.Getpid()) + `\] auid=(-|[0-9]+)\n?$`)
	if !want.MatchString(line) {
		t.Errorf("syslog line %q, want it to match %s", line, want)
	}
}

// setSysctl writes value to a file under /proc/sys and restores the old
// value when the test ends.
func setSysctl(t *testing.T, file, value string) {
	t.Helper()
	old, err := os.ReadFile(file)
	must(t, err)
	must(t, os.WriteFile(file, []byte(value), 0o644))
	t.Cleanup(func() { os.WriteFile(file, old, 0o644) })
}

// waitStopped waits until the process is stopped by a signal.
func waitStopped(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		must(t, err)
		// pid (comm) state ...: the state follows the last parenthesis.
		if i := strings.LastIndexByte(string(stat), ')'); i >= 0 && strings.HasPrefix(string(stat[i:]), ") T") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d not stopped within %v: %s", pid, waitFor, stat)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// startWithSmallQueue starts famids on conf with an inotify queue of 64
// events, its size set when famids creates its inotify instance.
func startWithSmallQueue(t *testing.T, conf string) *famidsRun {
	t.Helper()
	const queued = "/proc/sys/fs/inotify/max_queued_events"
	old, err := os.ReadFile(queued)
	must(t, err)
	setSysctl(t, queued, "64")
	r := startFamids(t, conf)
	must(t, os.WriteFile(queued, old, 0o644))
	return r
}

// overflowWhileStopped stops famids and overflows its queue with junk
// made and removed in spool; what is done before SIGCONT is lost too.
func overflowWhileStopped(t *testing.T, r *famidsRun, spool string) {
	t.Helper()
	must(t, r.cmd.Process.Signal(syscall.SIGSTOP))
	waitStopped(t, r.cmd.Process.Pid)
	for i := range 200 {
		p := filepath.Join(spool, fmt.Sprintf("junk%d", i))
		writeFile(t, p, "junk")
		must(t, os.Remove(p))
	}
}

func TestQueueOverflow(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to lower /proc/sys/fs/inotify/max_queued_events")
	}
	dir := t.TempDir()
	spool := filepath.Join(dir, "spool")
	must(t, os.Mkdir(spool, 0o755))
	important := filepath.Join(spool, "important")
	writeFile(t, important, "x")
	passwd := filepath.Join(dir, "passwd")
	writeFile(t, passwd, "root:x:0:0")

	r := startWithSmallQueue(t, spool+", , important\n"+passwd+"\n")
	overflowWhileStopped(t, r, spool)
	// The queue is full: these events are lost.
	appendFile(t, passwd, "intruder::0:0")
	appendFile(t, important, "!")
	must(t, r.cmd.Process.Signal(syscall.SIGCONT))

	r.waitNotice("the kernel's inotify event queue overflowed: events were lost")
	for _, p := range []string{passwd, important} {
		m := r.waitReport(p, "change")
		if field(m.Body, "Found") != foundAfterFlood || field(m.Body, "Differs") != "size mtime ctime sha256" {
			t.Errorf("report of a change lost in the flood:\n%s", m.Body)
		}
	}
	// famids watches on as before.
	appendFile(t, passwd, "\n")
	if m := r.waitNthReport(passwd, 2); field(m.Body, "Found") != "" {
		t.Errorf("the report of a change after the overflow:\n%s", m.Body)
	}
	for _, m := range r.reports() {
		if strings.Contains(m.Body, "junk") {
			t.Errorf("a report on an unimportant name:\n%s", m.Body)
		}
	}
	noEmptyReports(t, r)
}

func TestStopWhileSuspended(t *testing.T) {
	r, f := startOnFile(t)
	r.cmd.Process.Signal(syscall.SIGUSR1)
	r.waitNotice("reporting suspended")
	appendFile(t, f, "!")
	if code := r.stop(syscall.SIGTERM); code != 0 {
		t.Errorf("exit status %d", code)
	}
	r.waitNotice("reporting resumed as famids stops: 1 watched path(s) changed while suspended")
	if got := len(r.mails()); got != 2 {
		t.Errorf("%d mails, want the two notices:\n%s", got, r.dump())
	}
	if s := r.readStateFile(); !s.Clean || s.recordOf(f).Size != 2 {
		t.Errorf("state after a stop while suspended: clean=%v, size of f %d; want true, 2", s.Clean, s.recordOf(f).Size)
	}
}

func TestStateFileInWatchedDirectoryIsNotReported(t *testing.T) {
	dir := t.TempDir()
	watched := filepath.Join(dir, "lib")
	must(t, os.Mkdir(watched, 0o700))
	link := filepath.Join(dir, "link")
	must(t, os.Symlink(watched, link))
	a := filepath.Join(watched, "a")
	writeFile(t, a, "a")
	state := filepath.Join(link, "state.json") // the same directory, by another name
	r := startFamids(t, watched+"\n", "-state", state)
	before := readStateAt(t, state).Saved
	appendFile(t, a, "!")
	r.waitReport(a, "change")
	// Once the state is saved again, a second change: its report comes
	// after any report the save could cause.
	deadline := time.Now().Add(waitFor)
	for !readStateAt(t, state).Saved.After(before) {
		if time.Now().After(deadline) {
			t.Fatal("the state was not saved after a report")
		}
		time.Sleep(50 * time.Millisecond)
	}
	appendFile(t, a, "?")
	r.waitNthReport(a, 2)
	for _, m := range r.reports() {
		if p := field(m.Body, "Pathname"); p != a {
			t.Errorf("a report on %s, famids's own state:\n%s", p, m.Body)
		}
	}
}

func TestUndeliveredReportIsFoundAfterKill(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "shadow")
	writeFile(t, f, "root:*:")
	r := newRun(t, f+"\n")
	failing := r.writeScript("failing-mail", "#!/bin/sh\ncat >/dev/null\nexit 1\n")
	r.start("-mail", failing)
	appendFile(t, f, "x")
	r.waitStderr("a failed delivery", "trying again in 3s")
	r.stop(syscall.SIGKILL) // with the report still being tried
	n := r.restart()
	m := r.waitReport(f, "change")
	if field(m.Body, "Found") != foundAtStart || field(m.Body, "Differs") != "size mtime ctime sha256" {
		t.Errorf("after a kill with the report undelivered:\n%s", m.Body)
	}
	if got := len(r.mailsSince(n)); got != 2 {
		t.Errorf("%d mails after the restart, want the unclean-stop notice and the report:\n%s", got, r.dump())
	}
}

func TestAddedImportantNameIsNotReportedAtStart(t *testing.T) {
	dir := t.TempDir()
	d := filepath.Join(dir, "root")
	must(t, os.Mkdir(d, 0o700))
	one := filepath.Join(d, ".rhosts")
	two := filepath.Join(d, ".netrc")
	writeFile(t, one, "1")
	writeFile(t, two, "2")
	r := startFamids(t, d+", , .rhosts\n")
	r.stop(syscall.SIGTERM)
	must(t, os.WriteFile(r.conf, []byte(d+", , .rhosts | .netrc\n"), 0o600))
	n := r.restart()
	appendFile(t, two, "!")
	m := r.waitReport(two, "change")
	if field(m.Body, "Found") != "" {
		t.Errorf("a name newly important was reported at start-up:\n%s", m.Body)
	}
	if got := r.mailsSince(n); len(got) != 1 {
		t.Errorf("%d mails after the restart, want 1:\n%s", len(got), r.dump())
	}
}

func TestMissingStateFileIsReported(t *testing.T) {
	r, _ := startOnFile(t)
	r.stop(syscall.SIGKILL)
	must(t, os.Remove(r.state)) // the intruder covers their tracks
	r.restart()
	m := r.waitNotice("the state file is missing; a new baseline is recorded")
	if !strings.Contains(m.Body, r.state) {
		t.Errorf("the notice does not name the file:\n%s", m.Body)
	}
}

func TestSecondSuspendDoesNotExtendIt(t *testing.T) {
	r, _ := startOnFile(t, "-max-suspend", "2s")
	r.cmd.Process.Signal(syscall.SIGUSR1)
	r.waitNotice("reporting suspended")
	time.Sleep(time.Second) // a second SIGUSR1 a second later must not move the end
	r.cmd.Process.Signal(syscall.SIGUSR1)
	again := r.waitNotice("still suspended (SIGUSR1 again); the suspension ends by itself at ")
	resumed := r.waitNotice("reporting resumed by itself after 2s")
	since, err := time.Parse(time.RFC3339, strings.TrimSuffix(strings.Fields(field(resumed.Body, "Suspended"))[0], ","))
	must(t, err)
	end := strings.Fields(strings.SplitN(again.Body, "\n", 2)[0])
	until, err := time.Parse(time.RFC3339, end[len(end)-3])
	must(t, err)
	if d := until.Sub(since); d != 2*time.Second { // both to the second
		t.Errorf("suspended at %v, ends at %v after a second SIGUSR1: want the first deadline", since, until)
	}
}

// A state directory a user may write into: famids keeps no baseline
// there, says why, and writes nothing through the link the user planted.
func TestStateDirectoryOthersMayWriteIsNotUsed(t *testing.T) {
	r, f := startOnFileWith(t, func(r *famidsRun) {
		dir := filepath.Dir(r.state)
		must(t, os.MkdirAll(dir, 0o755))
		must(t, os.Chmod(dir, 0o777))
		victim := filepath.Join(r.dir, "victim")
		writeFile(t, victim, "precious")
		must(t, os.Symlink(victim, r.state+".lock"))
		must(t, os.Symlink(victim, r.state+".tmp"))
	})
	m := r.waitNotice("no baseline is kept between runs: the state directory cannot be trusted")
	if !strings.Contains(m.Body, "writable by group or others") {
		t.Errorf("notice:\n%s", m.Body)
	}
	appendFile(t, f, "!")
	r.waitReport(f, "change")
	r.stop(syscall.SIGTERM)
	if data, _ := os.ReadFile(filepath.Join(r.dir, "victim")); string(data) != "precious" {
		t.Errorf("the file behind the planted links was written: %q", data)
	}
	if _, err := os.Lstat(r.state); err == nil {
		t.Errorf("famids wrote its state into a directory others may write into")
	}
}

// startOnFileWith starts famids watching a new file, after prepare has
// set the scratch directory up.
func startOnFileWith(t *testing.T, prepare func(*famidsRun)) (*famidsRun, string) {
	t.Helper()
	f := filepath.Join(t.TempDir(), "f")
	writeFile(t, f, "x")
	r := newRun(t, f+"\n")
	prepare(r)
	r.start()
	return r, f
}

// A system logger that cannot be reached is said at start-up; one that
// takes no line (its socket full) never holds the reports up.
func TestSyslogUnreachableOrStalled(t *testing.T) {
	t.Run("unreachable", func(t *testing.T) {
		r, f := startOnFileWith(t, func(r *famidsRun) {
			r.env = []string{"FAMIDS_SYSLOG_SOCKET=" + filepath.Join(r.dir, "no-such.sock")}
		})
		_ = f
		r.stop(syscall.SIGTERM)
		// startOnFileWith starts without -syslog: start again with it.
		r.start("-syslog")
		m := r.waitNotice("-syslog: the system logger cannot be reached")
		if !strings.Contains(r.stderr.String(), "the system logger cannot be reached") {
			t.Errorf("standard error does not say so:\n%s\nnotice:\n%s", r.stderr.String(), m.Body)
		}
	})
	t.Run("stalled", func(t *testing.T) {
		dir := t.TempDir()
		sock := filepath.Join(dir, "log.sock")
		stalled, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
		must(t, err)
		defer stalled.Close()
		// Never read, and full before famids starts: a send to it
		// blocks.
		filler, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: sock, Net: "unixgram"})
		must(t, err)
		defer filler.Close()
		for {
			filler.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
			if _, err := filler.Write([]byte("<84>filler")); err != nil {
				break
			}
		}
		var conf strings.Builder
		var files []string
		for i := range 40 {
			f := filepath.Join(dir, fmt.Sprintf("f%d", i))
			writeFile(t, f, "x")
			files = append(files, f)
			fmt.Fprintln(&conf, f)
		}
		r := newRun(t, conf.String())
		r.env = []string{"FAMIDS_SYSLOG_SOCKET=" + sock}
		r.start("-syslog", "-max-mails", "1000")
		for _, f := range files {
			appendFile(t, f, "!")
		}
		r.waitReports(len(files))
		if code := r.stop(syscall.SIGTERM); code != 0 {
			t.Errorf("exit status %d", code)
		}
	})
}
