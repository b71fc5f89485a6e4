package main

// End-to-end tests of actions: the second mail, "famids action report",
// what it holds, how an action is run, and what famids refuses to run.

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// actionHead is the first two lines of an action report.
func actionHead(path, action string) string {
	return fmt.Sprintf("Taking action in response to event for %s\nAction: %s\n", path, action)
}

// waitAction waits for the action report on path and returns it.
func (r *famidsRun) waitAction(path string) mail {
	r.t.Helper()
	return r.waitMail("action report on "+path, func(m mail) bool {
		return m.Subject == subjectAction && strings.HasPrefix(m.Body, "Taking action in response to event for "+path+"\n")
	})
}

// actionReports returns the "famids action report" messages delivered so far.
func (r *famidsRun) actionReports() []mail {
	var out []mail
	for _, m := range r.mails() {
		if m.Subject == subjectAction {
			out = append(out, m)
		}
	}
	return out
}

// mailIndex returns the position of the first message for which match is
// true among those delivered so far, or -1.
func (r *famidsRun) mailIndex(match func(mail) bool) int {
	return slices.IndexFunc(r.mails(), match)
}

func TestActionReportOutput(t *testing.T) {
	dir := t.TempDir()
	noisy := filepath.Join(dir, "noisy")
	clean := filepath.Join(dir, "clean")
	warns := filepath.Join(dir, "warns")
	writeFile(t, noisy, "n")
	writeFile(t, clean, "c")
	writeFile(t, warns, "w")
	const noisyAction = "echo out; echo err >&2; exit 3"
	const cleanAction = "echo all is well"
	const warnAction = "echo warning >&2"
	r := startFamids(t, fmt.Sprintf("%s, %s\n%s, %s\n%s, %s\n", noisy, noisyAction, clean, cleanAction, warns, warnAction))

	appendFile(t, noisy, "!")
	r.waitReport(noisy, "change")
	m := r.waitAction(noisy)
	if !slices.Equal(m.Args, []string{"-s", "famids action report", "admin@example.org"}) {
		t.Errorf("action report argv = %q", m.Args)
	}
	want := actionHead(noisy, noisyAction) + "out\nStandard error:\nerr\nExit status: 3\n"
	if m.Body != want {
		t.Errorf("action report of a failing action:\n%s\nwant:\n%s", m.Body, want)
	}
	reportAt := r.mailIndex(func(m mail) bool { return m.Subject == subjectReport })
	actionAt := r.mailIndex(func(m mail) bool { return m.Subject == subjectAction })
	if reportAt < 0 || actionAt < reportAt {
		t.Errorf("the action report must come after the report it answers:\n%s", r.dump())
	}

	appendFile(t, clean, "!")
	r.waitReport(clean, "change")
	m = r.waitAction(clean)
	if want := actionHead(clean, cleanAction) + "all is well\n"; m.Body != want {
		t.Errorf("action report of a clean action:\n%s\nwant:\n%s", m.Body, want)
	}
	if strings.Contains(m.Body, "Standard error") || strings.Contains(m.Body, "Exit status") {
		t.Errorf("a clean action's report names no standard error and no exit status:\n%s", m.Body)
	}

	// Standard error alone, with exit status 0, is shown too.
	appendFile(t, warns, "!")
	m = r.waitAction(warns)
	if want := actionHead(warns, warnAction) + "Standard error:\nwarning\nExit status: 0\n"; m.Body != want {
		t.Errorf("action report of an action that only wrote on standard error:\n%s\nwant:\n%s", m.Body, want)
	}
	if n := len(r.actionReports()); n != 3 {
		t.Errorf("%d action reports, want 3:\n%s", n, r.dump())
	}
}

func TestActionEnvironment(t *testing.T) {
	dir := t.TempDir()
	viaShell := filepath.Join(dir, "shell")
	direct := filepath.Join(dir, "direct")
	writeFile(t, viaShell, "s")
	writeFile(t, direct, "d")
	const shellAction = `echo "path=$FAMIDS_PATH"; echo "event=$FAMIDS_EVENT"`
	const directAction = "printenv FAMIDS_PATH FAMIDS_EVENT"
	// The shell action is quoted in the configuration: it holds quotes.
	r := startFamids(t, fmt.Sprintf("%s, '%s'\n%s, %s\n", viaShell, shellAction, direct, directAction))

	appendFile(t, viaShell, "!")
	m := r.waitAction(viaShell)
	if want := actionHead(viaShell, shellAction) + "path=" + viaShell + "\nevent=change\n"; m.Body != want {
		t.Errorf("FAMIDS_PATH and FAMIDS_EVENT seen by a shell action:\n%s\nwant:\n%s", m.Body, want)
	}

	must(t, os.Remove(direct))
	r.waitReport(direct, "delete")
	m = r.waitAction(direct)
	if want := actionHead(direct, directAction) + direct + "\ndelete\n"; m.Body != want {
		t.Errorf("FAMIDS_PATH and FAMIDS_EVENT seen by a direct action:\n%s\nwant:\n%s", m.Body, want)
	}
}

func TestActionShellOrDirect(t *testing.T) {
	dir := t.TempDir()
	direct := filepath.Join(dir, "direct")
	viaShell := filepath.Join(dir, "shell")
	writeFile(t, direct, "d")
	writeFile(t, viaShell, "s")
	// No shell character: split on white space and run directly, so "#c"
	// is an argument (a shell would take it for a comment) and the double
	// blank separates words without being kept.
	const directAction = "/bin/echo a  b #c"
	// A pipe needs the shell.
	const shellAction = "echo one | tr o 0"
	r := startFamids(t, fmt.Sprintf("%s, %s\n%s, %s\n", direct, directAction, viaShell, shellAction))

	appendFile(t, direct, "!")
	m := r.waitAction(direct)
	if want := actionHead(direct, directAction) + "a b #c\n"; m.Body != want {
		t.Errorf("an action without shell characters must run directly:\n%s\nwant:\n%s", m.Body, want)
	}
	appendFile(t, viaShell, "!")
	m = r.waitAction(viaShell)
	if want := actionHead(viaShell, shellAction) + "0ne\n"; m.Body != want {
		t.Errorf("an action with a shell character must run through /bin/sh -c:\n%s\nwant:\n%s", m.Body, want)
	}
}

func TestActionCannotStart(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "f")
	writeFile(t, f, "x")
	const action = "/nonexistent/prog arg"
	r := startFamids(t, fmt.Sprintf("%s, %s\n", f, action))
	appendFile(t, f, "!")
	r.waitReport(f, "change")
	m := r.waitAction(f)
	head := actionHead(f, action) + "Standard error:\n"
	if !strings.HasPrefix(m.Body, head) || !strings.HasSuffix(m.Body, "\nExit status: 127\n") {
		t.Fatalf("action report of an action that cannot start:\n%s\nwant %q, an error, then \"Exit status: 127\"", m.Body, head)
	}
	why := strings.TrimSuffix(strings.TrimPrefix(m.Body, head), "Exit status: 127\n")
	if strings.TrimSpace(why) == "" || !strings.Contains(why, "/nonexistent/prog") {
		t.Errorf("the error under \"Standard error:\" should say why /nonexistent/prog did not run, got %q", why)
	}
}

func TestActionTimeout(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "f")
	writeFile(t, f, "x")
	const action = "sleep 5"
	r := startFamids(t, fmt.Sprintf("%s, %s\n", f, action), "-action-timeout", "500ms")
	appendFile(t, f, "!")
	r.waitReport(f, "change")
	start := time.Now()
	m := r.waitAction(f)
	if elapsed := time.Since(start); elapsed > 4*time.Second {
		t.Errorf("the action report came %v after the report: the action was not killed after 500ms", elapsed)
	}
	if !strings.HasPrefix(m.Body, actionHead(f, action)) || !strings.Contains(m.Body, "Timed out after 500ms\n") {
		t.Errorf("action report of a timed-out action:\n%s\nwant \"Timed out after 500ms\"", m.Body)
	}
	if strings.Contains(m.Body, "Exit status") {
		t.Errorf("a timed-out action has no exit status line:\n%s", m.Body)
	}
}

func TestSlowActionDoesNotHoldUpReports(t *testing.T) {
	dir := t.TempDir()
	slow := filepath.Join(dir, "slow")
	other := filepath.Join(dir, "other")
	writeFile(t, slow, "s")
	writeFile(t, other, "o")
	r := startFamids(t, fmt.Sprintf("%s, sleep 30\n%s\n", slow, other))
	appendFile(t, slow, "!")
	r.waitReport(slow, "change")
	changed := time.Now()
	appendFile(t, other, "!")
	r.waitReport(other, "change")
	if elapsed := time.Since(changed); elapsed > 3*time.Second {
		t.Errorf("the report on another path took %v while an action ran", elapsed)
	}
	if n := len(r.actionReports()); n != 0 {
		t.Errorf("sleep 30 cannot have finished yet, but there are %d action reports:\n%s", n, r.dump())
	}
	if code := r.stop(syscall.SIGTERM); code != 0 {
		t.Errorf("exit status after SIGTERM = %d, want 0", code)
	}
}

func TestSameActionNeverRunsTwiceAtOnce(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a")
	b := filepath.Join(dir, "b")
	writeFile(t, a, "a")
	writeFile(t, b, "b")
	log := filepath.Join(t.TempDir(), "log")
	action := fmt.Sprintf("echo start $FAMIDS_PATH $(date +%%s%%N) >> %s; sleep 1; echo end $FAMIDS_PATH $(date +%%s%%N) >> %s", log, log)
	r := startFamids(t, fmt.Sprintf("%s, %s\n%s, %s\n", a, action, b, action))

	appendFile(t, a, "1")
	r.waitReport(a, "change")
	// While the first run sleeps, trigger the same action again for the
	// same path and for another path that shares it: both join one run.
	appendFile(t, a, "2")
	appendFile(t, b, "1")
	r.waitReports(3)
	if data, _ := os.ReadFile(log); strings.Contains(string(data), "end") {
		t.Fatalf("the first run ended before the second trigger was reported; the test proves nothing:\n%s", data)
	}
	deadline := time.Now().Add(waitFor)
	for len(r.actionReports()) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("%d action reports within %v, want 2:\n%s", len(r.actionReports()), waitFor, r.dump())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code := r.stop(syscall.SIGTERM); code != 0 {
		t.Errorf("exit status after SIGTERM = %d, want 0", code)
	}
	if reports := r.actionReports(); len(reports) != 2 || !strings.HasPrefix(reports[1].Body, "Taking action in response to event for "+a+"\nAlso for: "+b+"\nAction: ") {
		t.Errorf("want 2 action reports, the second for %s and %s:\n%s", a, b, r.dump())
	}
	data, err := os.ReadFile(log)
	must(t, err)
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) != 4 {
		t.Fatalf("want 2 runs (4 lines) in the log, got:\n%s", data)
	}
	var last int64
	runs := map[string]int{}
	for i, line := range lines {
		f := strings.Fields(line)
		if len(f) != 3 {
			t.Fatalf("log line %q", line)
		}
		ts, err := strconv.ParseInt(f[2], 10, 64)
		must(t, err)
		want := "start"
		if i%2 == 1 {
			want = "end"
			if f[1] != strings.Fields(lines[i-1])[1] {
				t.Errorf("a run for %s ended while one for %s ran:\n%s", f[1], strings.Fields(lines[i-1])[1], data)
			}
		} else {
			runs[f[1]]++
		}
		if f[0] != want || ts < last {
			t.Fatalf("runs of the same action overlap:\n%s", data)
		}
		last = ts
	}
	if runs[a] != 2 {
		t.Errorf("runs by FAMIDS_PATH = %v, want 2 for %s", runs, a)
	}
}

func TestDirectoryEntryAction(t *testing.T) {
	dir := t.TempDir()
	const action = "printenv FAMIDS_PATH FAMIDS_EVENT"
	r := startFamids(t, fmt.Sprintf("%s, %s\n", dir, action))
	entry := filepath.Join(dir, "newdir")
	must(t, os.Mkdir(entry, 0o755))
	r.waitReport(entry, "create")
	m := r.waitAction(entry)
	if want := actionHead(entry, action) + entry + "\ncreate\n"; m.Body != want {
		t.Errorf("the directory's action for one of its entries:\n%s\nwant:\n%s", m.Body, want)
	}
}

func TestWritableConfigurationRunsNoAction(t *testing.T) {
	for _, mode := range []os.FileMode{0o666, 0o620} {
		t.Run(fmt.Sprintf("%04o", mode), func(t *testing.T) {
			dir := t.TempDir()
			f := filepath.Join(dir, "f")
			sentinel := filepath.Join(dir, "sentinel")
			writeFile(t, f, "x")
			writeFile(t, sentinel, "s")
			proof := filepath.Join(t.TempDir(), "ran")
			r := newRun(t, fmt.Sprintf("%s, touch %s\n%s\n", f, proof, sentinel))
			must(t, os.Chmod(r.conf, mode))
			r.start()
			m := r.waitMail("notice about the writable configuration", func(m mail) bool { return m.Subject == subjectNotice })
			if !strings.HasPrefix(m.Body, "Notice: actions will not run") || !strings.Contains(m.Body, r.conf) {
				t.Errorf("notice:\n%s\nwant it to start with \"Notice: actions will not run\" and name %s", m.Body, r.conf)
			}
			appendFile(t, f, "!")
			r.waitReport(f, "change")
			appendFile(t, sentinel, "!")
			r.waitReport(sentinel, "change")
			if n := len(r.actionReports()); n != 0 {
				t.Errorf("an action ran from a configuration writable by others:\n%s", r.dump())
			}
			if _, err := os.Stat(proof); err == nil {
				t.Errorf("the action ran: %s exists", proof)
			}
		})
	}
}

func TestForgedFileName(t *testing.T) {
	dir := t.TempDir()
	r := startFamids(t, dir+"\n")
	// A file name cannot hold a slash, so the forged lines name a path
	// without one, and an event.
	p := filepath.Join(dir, "x\nPathname: passwd\nEvent: delete")
	writeFile(t, p, "forged")
	m := r.waitMail("report on the forged name", func(m mail) bool {
		return m.Subject == subjectReport && strings.HasPrefix(m.Body, "Possible intrusion:\nPathname: "+strconv.Quote(p)+"\nEvent: create")
	})
	for _, m := range r.mails() {
		lines := strings.Split(m.Body, "\n")
		if slices.Contains(lines, "Pathname: passwd") || slices.Contains(lines, "Event: delete") {
			t.Errorf("a file name forged a line of a message:\n%s", m.Body)
		}
	}
	if got := field(m.Body, "Pathname"); got != strconv.Quote(p) {
		t.Errorf("Pathname: %s, want the Go-quoted %s", got, strconv.Quote(p))
	}
}

func TestActionLeftoverKilled(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "f")
	writeFile(t, f, "x")
	const action = "sleep 300 &"
	r := startFamids(t, fmt.Sprintf("%s, %s\n", f, action))
	appendFile(t, f, "!")
	r.waitReport(f, "change")
	m := r.waitAction(f)
	if want := actionHead(f, action) + "Exit status: 0; left processes running, killed\n"; m.Body != want {
		t.Errorf("action report of an action that leaves a process running:\n%s\nwant:\n%s", m.Body, want)
	}
	start := time.Now()
	if code := r.stop(syscall.SIGTERM); code != 0 {
		t.Errorf("exit status after SIGTERM = %d, want 0; stderr:\n%s", code, r.stderr.String())
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("famids took %v to stop after SIGTERM, want at most 10s", took)
	}
}

// A configuration in a directory that a user owns: the user can put
// another file in its place. Whatever famids reads there runs no action,
// even once root's own file is back by the time famids could look again.
func TestConfigurationInAUsersDirectoryRunsNoAction(t *testing.T) {
	const nobody = 65534
	dir := t.TempDir()
	f := filepath.Join(dir, "f")
	writeFile(t, f, "x")
	proof := filepath.Join(t.TempDir(), "ran")
	r := newRun(t, f+"\n")
	confDir := filepath.Join(r.dir, "conf.d")
	must(t, os.Mkdir(confDir, 0o755))
	must(t, os.Chown(confDir, nobody, nobody))
	root := filepath.Join(confDir, "famids.conf")
	must(t, os.WriteFile(root, []byte(f+"\n"), 0o600))
	r.conf = root
	r.start()
	m := r.waitNotice("actions will not run")
	if !strings.Contains(m.Body, "directory "+confDir+" is owned by uid 65534") {
		t.Errorf("notice:\n%s", m.Body)
	}

	// The user's configuration, swapped in for a reload, then root's
	// swapped back.
	saved := filepath.Join(r.dir, "root.conf")
	must(t, os.Rename(root, saved))
	must(t, os.WriteFile(root, []byte(fmt.Sprintf("%s, touch %s\n", f, proof)), 0o600))
	must(t, os.Chown(root, nobody, nobody))
	n := len(r.mails())
	r.cmd.Process.Signal(syscall.SIGHUP)
	r.waitMail("the notices of the reload", func(m mail) bool {
		return len(r.mailsSince(n)) >= 2
	})
	must(t, os.Rename(saved, root))
	appendFile(t, f, "!")
	r.waitReport(f, "change")
	if _, err := os.Stat(proof); err == nil {
		t.Errorf("the user's action ran as root: %s exists", proof)
	}
	if len(r.actionReports()) != 0 {
		t.Errorf("an action ran:\n%s", r.dump())
	}
}

// A path reported through two lines of the configuration, a directory and
// a file in it, runs each line's action, each with its own action report:
// after a write, and after the file is replaced by a rename. The
// directory's watch on the file's inode must not take the place of the
// file's own entry.
func TestEveryLineActionRuns(t *testing.T) {
	for name, names := range map[string]string{"every name": "", "sshd important": ", sshd"} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			f := filepath.Join(dir, "sshd")
			writeFile(t, f, "auth required pam_unix.so\n")
			dirAction, fileAction := "echo directory-line", "echo file-line"
			r := startFamids(t, dir+", "+dirAction+names+"\n"+f+", "+fileAction+"\n")
			change := func(how, event string, do func()) {
				t.Helper()
				before := len(r.actionReports())
				do()
				r.waitReport(f, event)
				for _, action := range []string{dirAction, fileAction} {
					r.waitMail(how+": the action "+action, func(m mail) bool {
						return m.Subject == subjectAction && strings.HasPrefix(m.Body, actionHead(f, action))
					})
				}
				// One report for each line, none twice: a second would
				// follow the first at once.
				time.Sleep(300 * time.Millisecond)
				if got := len(r.actionReports()) - before; got != 2 {
					t.Errorf("%s: %d action reports, want 2 (one for each line):\n%s", how, got, r.dump())
				}
			}
			change("a write", "change", func() { appendFile(t, f, "auth optional pam_permit.so\n") })
			change("a rename over it", "create", func() {
				tmp := filepath.Join(t.TempDir(), "sshd.new") // outside the watched directory
				writeFile(t, tmp, "auth sufficient pam_permit.so\n")
				must(t, os.Rename(tmp, f))
			})
		})
	}
}
