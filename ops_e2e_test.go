package main

// End-to-end tests of how famids is operated: mail that fails, -stdout,
// -check and the other flags, stopping by signal, bursts, and real mail.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// runFamids runs famids to completion with args and returns what it wrote
// and its exit status.
func runFamids(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	cmd := exec.CommandContext(ctx, famidsBin, args...)
	var out, errOut syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("famids %q did not exit within %v; stderr:\n%s", args, waitFor, errOut.String())
	case err != nil && !errors.As(err, &exit):
		t.Fatalf("famids %q: %v", args, err)
	}
	return out.String(), errOut.String(), cmd.ProcessState.ExitCode()
}

// waitStderr waits until famids's standard error holds want.
func (r *famidsRun) waitStderr(what, want string) {
	r.t.Helper()
	deadline := time.Now().Add(waitFor)
	for !strings.Contains(r.stderr.String(), want) {
		if time.Now().After(deadline) {
			r.t.Fatalf("no %s on standard error within %v; want %q in:\n%s", what, waitFor, want, r.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// reportsOn returns the reports delivered so far on path.
func (r *famidsRun) reportsOn(path string) []mail {
	var out []mail
	for _, m := range r.reports() {
		if field(m.Body, "Pathname") == path {
			out = append(out, m)
		}
	}
	return out
}

// reportLines matches a whole report body: the Perl script's first line,
// then only "Key: value" lines.
var reportLines = regexp.MustCompile(`^Possible intrusion:\n(?:[A-Z][a-z]*: [^\n]*\n)+$`)

func TestMailFailureGoesToStderr(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "f")
	writeFile(t, f, "x")
	r := newRun(t, f+"\n")
	failing := r.writeScript("failmail", "#!/bin/sh\necho 'failmail: cannot send' >&2\nexit 1\n")
	r.start("-mail", failing)
	appendFile(t, f, "!")
	r.waitStderr("undeliverable report", "Possible intrusion:\nPathname: "+f+"\nEvent: change\n")
	stderr := r.stderr.String()
	i := strings.Index(stderr, "Possible intrusion:\n")
	rest := stderr[i:]
	for _, key := range []string{"Host", "Time", "Before", "After", "Differs"} {
		if field(rest, key) == "" {
			t.Errorf("the report written to standard error lacks its %s line:\n%s", key, stderr)
		}
	}
	if !strings.Contains(stderr[:i], "Subject: famids report\n") {
		t.Errorf("the report written to standard error does not say its subject:\n%s", stderr)
	}
	if !strings.Contains(stderr, "failmail: cannot send") {
		t.Errorf("standard error does not say why mail failed:\n%s", stderr)
	}
}

func TestMailRetried(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "f")
	writeFile(t, f, "x")
	r := newRun(t, f+"\n")
	count := filepath.Join(r.dir, "count")
	// Fails the first time, then hands over to the recording mail program.
	flaky := r.writeScript("flakymail", fmt.Sprintf(`#!/bin/sh
n=$(cat %[1]s 2>/dev/null || echo 0)
echo $((n + 1)) > %[1]s
if [ "$n" -eq 0 ]; then echo 'flakymail: try later' >&2; exit 1; fi
exec %[2]s "$@"
`, count, filepath.Join(r.dir, "mail")))
	r.start("-mail", flaky)
	appendFile(t, f, "!")
	changed := time.Now()
	m := r.waitReport(f, "change")
	if elapsed := time.Since(changed); elapsed < 900*time.Millisecond {
		t.Errorf("delivered %v after the change: the retry did not wait", elapsed)
	}
	if !strings.Contains(r.stderr.String(), "flakymail: try later") {
		t.Errorf("the failed try is not on standard error:\n%s", r.stderr.String())
	}
	if data, _ := os.ReadFile(count); strings.TrimSpace(string(data)) != "2" {
		t.Errorf("mail program run %q times, want 2", strings.TrimSpace(string(data)))
	}
	if len(r.mails()) != 1 || !reportLines.MatchString(m.Body) {
		t.Errorf("want the one report, whole:\n%s", r.dump())
	}
}

func TestStdout(t *testing.T) {
	r, f := startOnFile(t, "-stdout")
	appendFile(t, f, "!")
	head := "Subject: famids report\n" + reportHead(f, "change")
	deadline := time.Now().Add(waitFor)
	for !strings.Contains(r.stdout.String(), head) {
		if time.Now().After(deadline) {
			t.Fatalf("no report on standard output within %v:\n%s\nstderr:\n%s", waitFor, r.stdout.String(), r.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code := r.stop(syscall.SIGTERM); code != 0 {
		t.Errorf("exit status after SIGTERM = %d, want 0", code)
	}
	out := r.stdout.String()
	body, ok := strings.CutPrefix(out, "Subject: famids report\n")
	if !ok || !strings.HasSuffix(body, "\n\n") || !reportLines.MatchString(strings.TrimSuffix(body, "\n")) {
		t.Errorf("standard output is not \"Subject: famids report\", one whole report and an empty line:\n%q", out)
	}
	if len(r.mails()) != 0 {
		t.Errorf("-stdout ran the mail program:\n%s", r.dump())
	}
}

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "passwd")
	writeFile(t, f, "x")
	home := filepath.Join(dir, "root")
	must(t, os.Mkdir(home, 0o755))
	missing := filepath.Join(dir, "ld.so.preload")
	conf := filepath.Join(dir, "famids.conf")
	writeConf := func(text string) {
		must(t, os.WriteFile(conf, []byte(text), 0o600))
	}

	writeConf(fmt.Sprintf("# comment\n%s, rpm -V shadow-utils\n\n%s, , .rhosts | *.so\n%s\n", f, home, missing))
	stdout, stderr, code := runFamids(t, "-check", "-config", conf)
	want := fmt.Sprintf("%s file action=%q important=\"\"\n%s directory action=\"\" important=%q\n%s missing action=\"\" important=\"\"\n",
		f, "rpm -V shadow-utils", home, ".rhosts | *.so", missing)
	if code != 0 || stdout != want {
		t.Errorf("-check of a valid configuration: exit %d, output:\n%s\nwant exit 0 and:\n%s\nstderr:\n%s", code, stdout, want, stderr)
	}
	if !strings.Contains(stderr, missing) {
		t.Errorf("-check does not warn about the missing path:\n%s", stderr)
	}

	writeConf(fmt.Sprintf("%s\n\nrelative/path\n", f))
	_, stderr, code = runFamids(t, "-check", "-config", conf)
	if code != 1 || !strings.Contains(stderr, conf+":3:") {
		t.Errorf("-check of an invalid line 3: exit %d, stderr:\n%s\nwant exit 1 and %q", code, stderr, conf+":3:")
	}

	writeConf(fmt.Sprintf("%s, \"unbalanced\n", f))
	_, stderr, code = runFamids(t, "-check", "-config", conf)
	if code != 1 || !strings.Contains(stderr, conf+":1:") {
		t.Errorf("-check of an unbalanced quote on line 1: exit %d, stderr:\n%s", code, stderr)
	}

	gone := filepath.Join(dir, "no-such.conf")
	for _, args := range [][]string{
		{"-check", "-config", gone},
		{"-config", gone, "-mail", "/bin/false"},
	} {
		_, stderr, code = runFamids(t, args...)
		if code != 2 || !strings.Contains(stderr, gone) {
			t.Errorf("famids %q: exit %d, stderr:\n%s\nwant exit 2 naming %s", args, code, stderr, gone)
		}
	}
}

func TestVersionHelpAndBadFlags(t *testing.T) {
	stdout, stderr, code := runFamids(t, "-version")
	if code != 0 || stdout != "famids 1.0.0\n" {
		t.Errorf("-version: exit %d, stdout %q, stderr %q; want 0 and \"famids 1.0.0\\n\"", code, stdout, stderr)
	}
	stdout, stderr, code = runFamids(t, "-h")
	if code != 0 {
		t.Errorf("-h: exit %d, want 0", code)
	}
	help := stdout + stderr
	for _, name := range []string{"config", "notify", "mail", "stdout", "check", "settle", "action-timeout", "state", "syslog", "max-suspend", "verify", "max-mails", "version"} {
		if !regexp.MustCompile(`(?m)^\s+-` + regexp.QuoteMeta(name) + `\b`).MatchString(help) {
			t.Errorf("-h does not list -%s:\n%s", name, help)
		}
	}
	_, stderr, code = runFamids(t, "-no-such-flag")
	if code != 2 || !strings.Contains(stderr, "no-such-flag") {
		t.Errorf("an unknown flag: exit %d, stderr:\n%s\nwant exit 2 naming it", code, stderr)
	}
	_, _, code = runFamids(t, "stray-argument")
	if code != 2 {
		t.Errorf("a stray argument: exit %d, want 2", code)
	}
	// An address the mail program would take for an option.
	for _, addr := range []string{"-froot", "--help", ""} {
		_, stderr, code := runFamids(t, "-notify", addr, "-config", "famids.conf.example")
		if code != 2 || !strings.Contains(stderr, "-notify") {
			t.Errorf("-notify %q: exit %d, stderr %q; want exit 2 naming -notify", addr, code, stderr)
		}
	}
	for _, args := range [][]string{{"-settle", "-1s"}, {"-action-timeout", "0s"}, {"-max-suspend", "-1h0m0s"}, {"-verify", "-1s"}, {"-max-mails", "0"}} {
		_, stderr, code = runFamids(t, args...)
		if want := "famids: " + args[0] + " " + args[1] + ": must"; code != 2 || !strings.HasPrefix(stderr, want) {
			t.Errorf("%s %s: exit %d, stderr %q; want exit 2 and %q...", args[0], args[1], code, stderr, want)
		}
	}
}

var stopSignals = []syscall.Signal{syscall.SIGTERM, syscall.SIGINT}

func TestStopSignalFlushesPendingReport(t *testing.T) {
	for _, sig := range stopSignals {
		t.Run(sig.String(), func(t *testing.T) {
			dir := t.TempDir()
			f := filepath.Join(dir, "f")
			writeFile(t, f, "x")
			r := startFamids(t, f+"\n", "-settle", "5s")
			appendFile(t, f, "!")
			// Give famids a moment to read the event, so that it is a
			// burst settling for 5s when the signal comes (the signal
			// at once is TestStopSignalRightAfterChange).
			time.Sleep(300 * time.Millisecond)
			start := time.Now()
			code := r.stop(sig)
			if elapsed := time.Since(start); elapsed > 3*time.Second {
				t.Errorf("famids took %v to stop", elapsed)
			}
			if code != 0 {
				t.Errorf("exit status after %v = %d, want 0; stderr:\n%s", sig, code, r.stderr.String())
			}
			if reports := r.reports(); len(reports) != 1 || !strings.HasPrefix(reports[0].Body, reportHead(f, "change")) {
				t.Errorf("the pending report was not delivered before famids exited:\n%s\nstderr:\n%s", r.dump(), r.stderr.String())
			}
		})
	}
}

// stopRaces is how many famids processes the tests of a signal that comes
// at once start, for each signal, and stop together: each has a race to
// lose, and one loss fails the test.
const stopRaces = 8

// startRacers starts stopRaces famids for each stop signal, each watching
// its own file, and returns them with their files and signals.
func startRacers(t *testing.T, args ...string) (runs []*famidsRun, files []string, sigs []syscall.Signal) {
	t.Helper()
	for _, sig := range stopSignals {
		for range stopRaces {
			f := filepath.Join(t.TempDir(), "f")
			writeFile(t, f, "x")
			runs = append(runs, startFamids(t, f+"\n", args...))
			files = append(files, f)
			sigs = append(sigs, sig)
		}
	}
	return runs, files, sigs
}

func TestStopSignalRightAfterReady(t *testing.T) {
	var runs []*famidsRun
	var sigs []syscall.Signal
	for _, sig := range stopSignals {
		for range stopRaces {
			f := filepath.Join(t.TempDir(), "f")
			writeFile(t, f, "x")
			r := startFamids(t, f+"\n")
			// READY=1 says famids is running: a stop request from then
			// on must be a clean stop.
			must(t, r.cmd.Process.Signal(sig))
			runs = append(runs, r)
			sigs = append(sigs, sig)
		}
	}
	for i, r := range runs {
		if code := r.wait(); code != 0 {
			t.Errorf("famids %d: %v right after READY=1: exit status %d (%v), want 0; stderr:\n%s", i, sigs[i], code, r.exit, r.stderr.String())
		}
	}
}

func TestStopSignalRightAfterChange(t *testing.T) {
	runs, files, sigs := startRacers(t, "-settle", "5s")
	// Each change is made, and queued by the kernel, before the signal is
	// sent: it is pending, and must be reported. Half of the famids are
	// also held up (SIGSTOP) from before the change until after the
	// signal, as a busy machine may do: they find the change and the
	// signal waiting for them together.
	var wg sync.WaitGroup
	errs := make([]error, len(runs))
	for i, r := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := r.cmd.Process
			held := i%2 == 1
			if held {
				p.Signal(syscall.SIGSTOP)
			}
			f, err := os.OpenFile(files[i], os.O_WRONLY|os.O_APPEND, 0)
			if err == nil {
				_, err = f.WriteString("!")
				f.Close()
			}
			errs[i] = err
			p.Signal(sigs[i])
			if held {
				p.Signal(syscall.SIGCONT)
			}
		}()
	}
	wg.Wait()
	for i, r := range runs {
		must(t, errs[i])
		r.wait()
	}
	lost := 0
	for i, r := range runs {
		if code := r.exit.ExitCode(); code != 0 {
			t.Errorf("famids %d: exit status after %v = %d, want 0", i, sigs[i], code)
		}
		if reports := r.reports(); len(reports) != 1 || !strings.HasPrefix(reports[0].Body, reportHead(files[i], "change")) {
			lost++
			t.Errorf("famids %d: a change made just before %v was not reported:\n%s\nstderr:\n%s", i, sigs[i], r.dump(), r.stderr.String())
		}
	}
	if lost > 0 {
		t.Errorf("%d of %d changes made just before a stop signal were lost", lost, len(runs))
	}
}

func TestStopSignalStopsRunningAction(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "f")
	writeFile(t, f, "x")
	pidFile := filepath.Join(t.TempDir(), "pid")
	action := fmt.Sprintf("echo $$ > %s; exec sleep 30", pidFile)
	r := startFamids(t, fmt.Sprintf("%s, %s\n", f, action))
	appendFile(t, f, "!")
	r.waitReport(f, "change")
	var pid int
	deadline := time.Now().Add(waitFor)
	for {
		data, _ := os.ReadFile(pidFile)
		if n, err := strconv.Atoi(strings.TrimSpace(string(data))); err == nil && n > 0 {
			pid = n
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the action did not start within %v:\n%s", waitFor, r.dump())
		}
		time.Sleep(20 * time.Millisecond)
	}
	start := time.Now()
	code := r.stop(syscall.SIGTERM)
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("famids took %v to stop with an action running", elapsed)
	}
	if code != 0 {
		t.Errorf("exit status after SIGTERM = %d, want 0", code)
	}
	acts := r.actionReports()
	if len(acts) != 1 {
		t.Fatalf("want one action report saying the action was stopped:\n%s", r.dump())
	}
	if !strings.HasPrefix(acts[0].Body, actionHead(f, action)) || !strings.Contains(acts[0].Body, "famids was stopping") {
		t.Errorf("action report of a stopped action:\n%s\nwant it to say \"famids was stopping\"", acts[0].Body)
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		syscall.Kill(pid, syscall.SIGKILL)
		t.Errorf("the action (pid %d) outlived famids (kill: %v)", pid, err)
	}
}

func TestBurstFolding(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "f")
	sentinel := filepath.Join(dir, "sentinel")
	writeFile(t, f, "x")
	writeFile(t, sentinel, "s")
	conf := f + "\n" + sentinel + "\n"

	t.Run("settle", func(t *testing.T) {
		r := startFamids(t, conf, "-settle", "300ms")
		// 10ms apart: each append is a raw event of its own, not merged
		// with the next by the kernel, but all come within 300ms.
		for i := range 20 {
			if i > 0 {
				time.Sleep(10 * time.Millisecond)
			}
			appendFile(t, f, strconv.Itoa(i))
		}
		r.waitReport(f, "change")
		appendFile(t, sentinel, "!")
		r.waitReport(sentinel, "change")
		if got := r.reportsOn(f); len(got) != 1 || field(got[0].Body, "Event") != "change" {
			t.Errorf("20 quick appends: want exactly one report \"Event: change\", got:\n%s", r.dump())
		}
	})

	t.Run("zero", func(t *testing.T) {
		r := startFamids(t, conf, "-settle", "0")
		const n = 5
		for i := range n {
			if i > 0 {
				time.Sleep(50 * time.Millisecond)
			}
			appendFile(t, f, strconv.Itoa(i))
		}
		r.waitReports(2)
		appendFile(t, sentinel, "!")
		r.waitReport(sentinel, "change")
		got := r.reportsOn(f)
		if len(got) < 2 || len(got) > n {
			t.Errorf("-settle 0 and %d appends 50ms apart: %d reports, want 2 to %d:\n%s", n, len(got), n, r.dump())
		}
		for _, m := range got {
			if field(m.Body, "Event") != "change" {
				t.Errorf("-settle 0 report:\n%s", m.Body)
			}
		}
		t.Logf("%d appends, %d reports", n, len(got))
	})
}

func TestRealMail(t *testing.T) {
	for _, prog := range []string{"/bin/mail", "/usr/sbin/sendmail"} {
		if _, err := os.Stat(prog); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s is needed for the real mail test: %v", prog, err)
			}
			t.Skipf("no %s: %v", prog, err)
		}
	}
	const mbox = "/var/mail/root"
	dir := t.TempDir()
	f := filepath.Join(dir, fmt.Sprintf("real-mail-%d", time.Now().UnixNano()))
	writeFile(t, f, "x")
	r := startFamids(t, f+"\n", "-mail", "/bin/mail", "-notify", "root")
	appendFile(t, f, "!")
	deadline := time.Now().Add(15 * time.Second)
	for {
		data, _ := os.ReadFile(mbox)
		if i := strings.Index(string(data), "Pathname: "+f+"\n"); i >= 0 {
			msg := string(data)
			if j := strings.LastIndex(msg[:i], "\nFrom "); j >= 0 {
				msg = msg[j:]
			}
			if !strings.Contains(msg, "Subject: famids report\n") || !strings.Contains(msg, "Possible intrusion:\nPathname: "+f+"\nEvent: change\n") {
				t.Errorf("the message in %s:\n%s", mbox, msg)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no report on %s in %s within 15s; famids's stderr:\n%s", f, mbox, r.stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code := r.stop(syscall.SIGTERM); code != 0 {
		t.Errorf("exit status after SIGTERM = %d, want 0", code)
	}
}
