package main

// End-to-end tests of "By:" lines: who made a change, read through
// fanotify and /proc while famids runs as root.

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// byLines returns the By: lines of a report.
func byLines(m mail) []string {
	var out []string
	for _, line := range strings.Split(m.Body, "\n") {
		if v, ok := strings.CutPrefix(line, "By: "); ok {
			out = append(out, v)
		}
	}
	return out
}

// byPid returns the By: line naming pid, or "".
func byPid(m mail, pid int) string {
	for _, l := range byLines(m) {
		if strings.HasPrefix(l+" ", "pid="+strconv.Itoa(pid)+" ") {
			return l
		}
	}
	return ""
}

// heldShell starts sh -c script, prefixed with wrap, and keeps the shell
// alive once its script is done (it waits on its standard input), until
// the test ends or release is called: famids then finds it in /proc.
func heldShell(t *testing.T, wrap []string, script string) (pid int, release func()) {
	t.Helper()
	argv := append(append([]string{}, wrap...), "sh", "-c", script+"\nread line")
	cmd, release := startHeld(t, argv, nil)
	return cmd.Process.Pid, release
}

// startHeld starts argv, after prepare (when not nil) has set up its
// command, with a pipe on its standard input that release, or the test's
// end, closes: a program that reads it lives until then.
func startHeld(t *testing.T, argv []string, prepare func(*exec.Cmd)) (cmd *exec.Cmd, release func()) {
	t.Helper()
	cmd = exec.Command(argv[0], argv[1:]...)
	in, err := cmd.StdinPipe()
	must(t, err)
	if prepare != nil {
		prepare(cmd)
	}
	must(t, cmd.Start())
	release = func() {
		in.Close()
		cmd.Wait()
	}
	t.Cleanup(release)
	return cmd, release
}

func TestByShell(t *testing.T) {
	r, f := startOnFile(t)
	pid, _ := heldShell(t, nil, "echo changed >> "+f)
	m := r.waitReport(f, "change")
	by := byPid(m, pid)
	if by == "" {
		t.Fatalf("no By: line names the shell, pid %d:\n%s", pid, m.Body)
	}
	for _, want := range []string{" comm=sh ", " exe=/usr/bin/dash ", " uid=0(root) ", " parents=famids.test(" + strconv.Itoa(os.Getpid()) + ")<", ` cmdline="sh -c 'echo changed >> ` + f + `\nread line'"`} {
		if !strings.Contains(by+" ", want) {
			t.Errorf("By: %s\nwant it to hold %q", by, want)
		}
	}
	if strings.Contains(by, "(exited)") {
		t.Errorf("the shell is still running, By: says it exited: %s", by)
	}
	if strings.Contains(by, " mntns=") || strings.Contains(by, " thread_uids=") || strings.Contains(by, " exe_replaced") {
		t.Errorf("a shell in famids's mount namespace, of one thread: %s", by)
	}
}

// sharedFile returns a new file, holding "x", that every user can write,
// in a directory every user can search.
func sharedFile(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "famids-shared")
	must(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	must(t, os.Chmod(dir, 0o755))
	f := filepath.Join(dir, "f")
	writeFile(t, f, "x")
	must(t, os.Chmod(f, 0o666))
	return f
}

func TestByAnotherUser(t *testing.T) {
	needTool(t, "setpriv")
	f := sharedFile(t)
	r := startFamids(t, f+"\n")
	pid, _ := heldShell(t, []string{"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"}, "echo nobody was here >> "+f)
	m := r.waitMail("the report of nobody's write", func(m mail) bool { return strings.Contains(m.Body, "nobody was here") || byPid(m, pid) != "" })
	by := byPid(m, pid)
	if !strings.Contains(by, " uid=65534(nobody) ") {
		t.Errorf("By: %q, want pid=%d with uid=65534(nobody):\n%s", by, pid, m.Body)
	}
}

func TestByShortLivedCopy(t *testing.T) {
	r, f := startOnFile(t)
	src := filepath.Join(t.TempDir(), "trojan")
	writeFile(t, src, "#!/bin/sh\n")
	cp := exec.Command("cp", src, f)
	must(t, cp.Run())
	m := r.waitReport(f, "change")
	by := byPid(m, cp.Process.Pid)
	if by == "" {
		t.Fatalf("no By: line names cp, pid %d:\n%s", cp.Process.Pid, m.Body)
	}
	if !strings.Contains(by, "(exited)") && !strings.Contains(by, " comm=cp ") {
		t.Errorf("By: %s\nwant comm=cp, or (exited)", by)
	}
}

func TestByTwoProcessesOneBurst(t *testing.T) {
	r, f := startOnFile(t, "-settle", "1s")
	writer, _ := heldShell(t, nil, "echo x >> "+f)
	chmod := exec.Command("chmod", "600", f)
	must(t, chmod.Run())
	m := r.waitReport(f, "change")
	if byPid(m, writer) == "" || byPid(m, chmod.Process.Pid) == "" {
		t.Errorf("want a By: line for the writer (pid %d) and for chmod (pid %d):\n%s", writer, chmod.Process.Pid, m.Body)
	}
	if n := len(byLines(m)); n != 2 {
		t.Errorf("%d By: lines, want 2:\n%s", n, m.Body)
	}
}

// Eight processes write in one burst: five are named, the other three
// counted once each, however often they write.
func TestByManyProcessesOneBurst(t *testing.T) {
	r, f := startOnFile(t, "-settle", "1s")
	for i := range 8 {
		cmd := exec.Command("sh", "-c", fmt.Sprintf("echo %d >> %s; echo %d >> %s", i, f, i, f))
		must(t, cmd.Run())
	}
	m := r.waitReport(f, "change")
	lines := byLines(m)
	if len(lines) != maxBy+1 || lines[maxBy] != "... and 3 more" {
		t.Errorf("By: lines %q, want %d processes and \"... and 3 more\":\n%s", lines, maxBy, m.Body)
	}
}

func TestByLoginUser(t *testing.T) {
	r, f := startOnFile(t)
	// Setting the login uid of a process that has none is what pam_loginuid
	// does at a login; the session id comes with it.
	pid, _ := heldShell(t, nil, "echo 4242 > /proc/self/loginuid && echo by a login >> "+f)
	m := r.waitReport(f, "change")
	by := byPid(m, pid)
	ses, err := os.ReadFile(fmt.Sprintf("/proc/%d/sessionid", pid))
	must(t, err)
	for _, want := range []string{" auid=4242 ", " ses=" + strings.TrimSpace(string(ses)) + " "} {
		if !strings.Contains(by, want) {
			t.Errorf("By: %q, want it to hold %q:\n%s", by, want, m.Body)
		}
	}
}

func TestByThroughAnotherName(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "d")
	must(t, os.Mkdir(dir, 0o755))
	f := filepath.Join(dir, "f")
	writeFile(t, f, "x")
	other := filepath.Join(t.TempDir(), "link")
	must(t, os.Link(f, other))
	r := startFamids(t, dir+"\n")
	pid, _ := heldShell(t, nil, "echo through a link >> "+other)
	m := r.waitReport(f, "change")
	if byPid(m, pid) == "" {
		t.Errorf("no By: line names the shell that wrote through %s, pid %d:\n%s", other, pid, m.Body)
	}
}

func TestByCreateAndRename(t *testing.T) {
	dir, passwd := etcDir(t)
	r := startFamids(t, dir+", , passwd | cron.d\n")
	// Replaced as editors and package managers do: a new file renamed
	// over the old name; and a name that should never appear.
	writeFile(t, passwd+".new", "evil\n")
	mv := exec.Command("mv", passwd+".new", passwd)
	must(t, mv.Run())
	cronD := filepath.Join(dir, "cron.d")
	mkdir := exec.Command("mkdir", cronD)
	must(t, mkdir.Run())
	for p, pid := range map[string]int{passwd: mv.Process.Pid, cronD: mkdir.Process.Pid} {
		m := r.waitReport(p, "create", "change")
		if byPid(m, pid) == "" {
			t.Errorf("no By: line names pid %d in the report on %s:\n%s", pid, p, m.Body)
		}
	}
}

func TestByInActionEnvironment(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "f")
	writeFile(t, f, "x")
	out := filepath.Join(dir, "by.env")
	r := startFamids(t, fmt.Sprintf("%s, env | grep ^FAMIDS_BY_ | sort > %s\n", f, out))
	shell, _ := heldShell(t, nil, "echo 77 > /proc/self/loginuid && echo x >> "+f)
	r.waitAction(f)
	env, err := os.ReadFile(out)
	must(t, err)
	want := fmt.Sprintf("FAMIDS_BY_AUID=77\nFAMIDS_BY_PID=%d\nFAMIDS_BY_UID=0\n", shell)
	if got := string(env); got != want {
		t.Errorf("the action's FAMIDS_BY_ environment:\n%s\nwant:\n%s", got, want)
	}
}

func TestByWithoutCapSysAdmin(t *testing.T) {
	needTool(t, "setpriv")
	f := filepath.Join(t.TempDir(), "f")
	writeFile(t, f, "x")
	r := newRun(t, f+"\n")
	r.wrap = []string{"setpriv", "--bounding-set=-sys_admin", "--inh-caps=-sys_admin", "--"}
	r.start()
	appendFile(t, f, "y")
	m := r.waitReport(f, "change")
	if lines := byLines(m); len(lines) != 0 {
		t.Errorf("famids without CAP_SYS_ADMIN wrote By: lines:\n%s", m.Body)
	}
	const why = "famids: reports will not say who made a change: famids runs without CAP_SYS_ADMIN, which fanotify needs\n"
	if n := strings.Count(r.stderr.String(), why); n != 1 {
		t.Errorf("standard error says why %d times, want once:\n%s", n, r.stderr.String())
	}
	noMoreMails(t, r, 1)
}

// An editor saving a file makes a dozen events on names famids does not
// report (its swap file made, written, removed) just before it writes the
// file, then exits a few milliseconds later: famids must read on at once,
// not pause as in a storm, and name it while it is still there.
func TestByEditorSave(t *testing.T) {
	dir, passwd := etcDir(t)
	r := startFamids(t, dir+", , passwd\n")
	script := "cd " + dir + "; for i in 1 2 3 4; do : > .passwd.swp; echo s >> .passwd.swp; rm .passwd.swp; done; echo evil >> passwd; sleep 0.01"
	sh := exec.Command("sh", "-c", script)
	must(t, sh.Run())
	m := r.waitReport(passwd, "change")
	by := byPid(m, sh.Process.Pid)
	if !strings.Contains(by, " comm=sh ") || !strings.Contains(by, " uid=0(root) ") {
		t.Errorf("By: %q; want the shell (pid %d) named with comm=sh and its uid, as it lived 10ms after its write:\n%s", by, sh.Process.Pid, m.Body)
	}
}

// etcDir returns a new directory etc holding passwd, and passwd's path.
func etcDir(t *testing.T) (dir, passwd string) {
	t.Helper()
	dir = filepath.Join(t.TempDir(), "etc")
	must(t, os.Mkdir(dir, 0o755))
	passwd = filepath.Join(dir, "passwd")
	writeFile(t, passwd, "root:x:0:0::/root:/bin/sh\n")
	return dir, passwd
}

// buildC compiles the C program testdata/name.c, for a test that needs
// what Go does not do (a thread with credentials of its own, a pid
// chosen), and returns its path.
func buildC(t *testing.T, name string) string {
	t.Helper()
	gcc := needTool(t, "gcc")
	bin := filepath.Join(t.TempDir(), name)
	if out, err := exec.Command(gcc, "-pthread", "-o", bin, filepath.Join("testdata", name+".c")).CombinedOutput(); err != nil {
		t.Fatalf("gcc %s.c: %v\n%s", name, err, out)
	}
	return bin
}

// heldProgram starts argv and waits for its first line of output; the
// program lives until the test ends (its standard input is closed then).
func heldProgram(t *testing.T, argv ...string) (pid int, line string) {
	t.Helper()
	var out io.Reader
	cmd, _ := startHeld(t, argv, func(cmd *exec.Cmd) {
		var err error
		out, err = cmd.StdoutPipe()
		must(t, err)
	})
	var b strings.Builder
	buf := make([]byte, 1)
	for !strings.HasSuffix(b.String(), "\n") {
		if _, err := out.Read(buf); err != nil {
			t.Fatalf("%s: %v before a line (%q)", argv[0], err, b.String())
		}
		b.WriteByte(buf[0])
	}
	return cmd.Process.Pid, strings.TrimSpace(b.String())
}

// A thread has credentials of its own: a root thread writes while the
// first thread, whose credentials /proc/PID/status shows, is nobody
// (setuid). A process whose first thread exited writes through another
// (leader-exits): it is alive, and its program and command line are read
// through that thread.
func TestByThreads(t *testing.T) {
	bin := buildC(t, "threads")
	for _, mode := range []string{"setuid", "leader-exits"} {
		t.Run(mode, func(t *testing.T) {
			r, f := startOnFile(t)
			pid, _ := heldProgram(t, bin, f, mode)
			m := r.waitReport(f, "change")
			by := byPid(m, pid)
			want := []string{" exe=" + bin + " ", ` cmdline="` + bin + " " + f + " " + mode + `"`}
			if mode == "setuid" {
				want = append(want, " uid=65534(nobody) thread_uids=65534(nobody),0(root) ")
			}
			for _, w := range want {
				if !strings.Contains(by, w) || strings.Contains(by, "(exited)") {
					t.Errorf("By: %q; want it alive, holding %q:\n%s", by, w, m.Body)
				}
			}
		})
	}
}

// A setuid-root program run by nobody writes as root, and is named with
// both: uid=0(root), ruid=65534(nobody).
func TestByRealUser(t *testing.T) {
	bin := buildC(t, "ruid")
	r, f := startOnFile(t)
	pid, _ := heldProgram(t, bin, f)
	m := r.waitReport(f, "change")
	if by := byPid(m, pid); !strings.Contains(by, " uid=0(root) ruid=65534(nobody) ") {
		t.Errorf("By: %q; want pid=%d with uid=0(root) ruid=65534(nobody):\n%s", by, pid, m.Body)
	}
}

// A pid freed and taken again within one burst names two processes.
func TestByPidReusedInBurst(t *testing.T) {
	if !havePidfs() {
		t.Skip("before Linux 6.9, pidfds do not tell two processes of one pid apart")
	}
	bin := buildC(t, "reuse")
	r, f := startOnFile(t, "-settle", "1s")
	_, line := heldProgram(t, bin, f)
	pid, err := strconv.Atoi(line)
	must(t, err)
	m := r.waitReport(f, "change")
	var named []string
	for _, l := range byLines(m) {
		if strings.HasPrefix(l+" ", "pid="+line+" ") {
			named = append(named, l)
		}
	}
	if len(named) != 2 || !strings.Contains(named[1], " comm=second ") && !strings.Contains(named[0], " comm=second ") {
		t.Errorf("pid %d wrote as two processes; By: lines naming it %q, want two, one of them comm=second:\n%s", pid, named, m.Body)
	}
}

// A process in a mount namespace of its own may see other files at the
// paths famids sees: its program's path is marked as its namespace's.
func TestByOtherMountNamespace(t *testing.T) {
	needTool(t, "unshare")
	r, f := startOnFile(t)
	pid, _ := heldShell(t, []string{"unshare", "-m", "--propagation", "private"}, "echo from another namespace >> "+f)
	m := r.waitReport(f, "change")
	by := byPid(m, pid)
	ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", pid))
	must(t, err)
	want := " mntns=" + strings.TrimSuffix(strings.TrimPrefix(ns, "mnt:["), "]") + " "
	if !strings.Contains(by, want) {
		t.Errorf("By: %q; want it to hold %q:\n%s", by, want, m.Body)
	}
}

// root can mount another process's /proc entry over a writer's, to have
// it named instead: famids reads /proc without crossing a mount, and
// says the entry is covered rather than name anyone.
func TestByProcEntryCoveredByAMount(t *testing.T) {
	needTool(t, "mount")
	r, f := startOnFile(t)
	script := "mount --bind /proc/1 /proc/$$ || exit 1\necho forged >> " + f + "\nread line\numount /proc/$$"
	pid, _ := heldShell(t, nil, script)
	m := r.waitReport(f, "change")
	by := byPid(m, pid)
	if by != "pid="+strconv.Itoa(pid)+" (its /proc entry is covered by a mount: not read)" {
		t.Errorf("By: %q; want pid %d said covered, and nothing of process 1 read through it:\n%s", by, pid, m.Body)
	}
}

// A program run from a path another file is mounted over is not the file
// an administrator finds there once it is unmounted: exe_replaced says so.
// A writer whose program lies on a file system that stops answering is
// still named with its parents and command line: checking the program's
// file is what waits, and that comes last.
func TestByProgramOnAHungFileSystem(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "bin")
	must(t, os.Mkdir(dir, 0o755))
	prog := filepath.Join(dir, "sh")
	must(t, exec.Command("cp", "/bin/sh", prog).Run())
	r, f := startOnFile(t)
	pr, pw, err := os.Pipe() // the shell's standard input: a line lets it write
	must(t, err)
	defer pr.Close()
	sh, _ := startHeld(t, []string{prog, "-c", "read line\necho x >> " + f + "\nread line"}, func(cmd *exec.Cmd) { cmd.Stdin = pr })
	t.Cleanup(func() { pw.Close() }) // before the shell is waited for
	hungFUSEAt(t, dir)               // over the program's directory: a stat of it waits
	_, err = io.WriteString(pw, "go\n")
	must(t, err)
	m := r.waitReport(f, "change")
	by := byPid(m, sh.Process.Pid)
	for _, want := range []string{" parents=", ` cmdline="` + prog + ` -c `} {
		if !strings.Contains(by, want) {
			t.Errorf("By: %q; want %q in it, though the program's file system does not answer:\n%s", by, want, m.Body)
		}
	}
}

func TestByProgramMountedOver(t *testing.T) {
	needTool(t, "mount")
	dir := t.TempDir()
	prog, other := filepath.Join(dir, "prog"), filepath.Join(dir, "other")
	for _, p := range []string{prog, other} {
		must(t, exec.Command("cp", "/bin/sh", p).Run())
	}
	mount(t, "--bind", other, prog)
	r, f := startOnFile(t)
	sh, _ := startHeld(t, []string{prog, "-c", "echo x >> " + f + "\nread line"}, nil)
	pid := sh.Process.Pid
	m := r.waitReport(f, "change")
	by := byPid(m, pid)
	if !strings.Contains(by, " exe_replaced ") {
		t.Errorf("By: %q; want exe_replaced, for %s runs from a path %s is mounted over:\n%s", by, prog, other, m.Body)
	}
}
