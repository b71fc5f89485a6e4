package main

// The side-by-side comparison of famids with the tools administrators use
// today, run on this machine in one run, so that the ratios hold whatever
// the machine:
//
//	FAMIDS_COMPARE=1 go test -run TestCompare -count=1 -v .
//
// It needs inotifywait (Debian package inotify-tools) and aide (package
// aide), root (for /proc/sys/fs/inotify), and about two minutes. It prints
// each figure, the peer's, and the ratio, and fails where famids misses
// the goal the README gives. The regular test suite never runs it: its
// figures depend on the machine.

import (
	"bufio"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestCompare(t *testing.T) {
	if os.Getenv("FAMIDS_COMPARE") == "" {
		t.Skip("set FAMIDS_COMPARE=1 to compare famids with inotifywait and aide")
	}
	if raceEnabled {
		t.Fatal("run the comparison without -race: the race detector slows famids down tenfold")
	}
	for _, tool := range []string{"inotifywait", "aide"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("the comparison needs %s: %v", tool, err)
		}
	}
	t.Run("storm", compareStorm)
	t.Run("storm outside", compareStormOutside)
	t.Run("storm in a tree", compareStormInTree)
	t.Run("latency", compareLatency)
	t.Run("latency in a tree", compareLatencyInTree)
	t.Run("scale", compareScale)
	t.Run("idle", compareIdle)
	t.Run("flood", compareFlood)
	t.Run("tree", compareTree)
}

// A spawned is a peer or famids run by the comparison, whose output lines
// are handed to a function as they arrive, with the time they were read.
type spawned struct {
	t    *testing.T
	name string
	cmd  *exec.Cmd
	done chan struct{} // output read to the end
}

// spawn starts argv; onLine sees each line of standard output and
// onErrLine each line of standard error, from their own goroutines.
func spawn(t *testing.T, env []string, onLine, onErrLine func(line string, at time.Time), argv ...string) *spawned {
	t.Helper()
	s := &spawned{t: t, name: filepath.Base(argv[0]), cmd: exec.Command(argv[0], argv[1:]...), done: make(chan struct{})}
	s.cmd.Env = append(os.Environ(), env...)
	stdout, err := s.cmd.StdoutPipe()
	must(t, err)
	stderr, err := s.cmd.StderrPipe()
	must(t, err)
	must(t, s.cmd.Start())
	var wg sync.WaitGroup
	read := func(r io.Reader, f func(string, time.Time)) {
		defer wg.Done()
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			if f != nil {
				f(sc.Text(), time.Now())
			}
		}
	}
	wg.Add(2)
	go read(stdout, onLine)
	go read(stderr, onErrLine)
	go func() { wg.Wait(); close(s.done) }()
	t.Cleanup(func() {
		if s.cmd.ProcessState == nil {
			s.cmd.Process.Kill()
			s.cmd.Wait()
		}
	})
	return s
}

// stop ends the process with SIGTERM and returns the CPU time it used.
func (s *spawned) stop() time.Duration {
	s.t.Helper()
	s.cmd.Process.Signal(syscall.SIGTERM)
	<-s.done
	s.cmd.Wait()
	return s.cmd.ProcessState.UserTime() + s.cmd.ProcessState.SystemTime()
}

// peakRSS returns the peak resident set size of the running process,
// from /proc: rusage's would count the memory of the test process, which
// the child shares until it execs.
func (s *spawned) peakRSS() int64 {
	s.t.Helper()
	return procStatus(s.t, s.cmd.Process.Pid, "VmHWM:")
}

// spawnFamids starts famids with args and waits until it says it is ready;
// it returns the time that took.
func spawnFamids(t *testing.T, onLine func(string, time.Time), args ...string) (*spawned, time.Duration) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "notify.sock")
	ready, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	must(t, err)
	defer ready.Close()
	start := time.Now()
	s := spawn(t, []string{"NOTIFY_SOCKET=" + sock}, onLine, func(line string, _ time.Time) { t.Logf("famids: %s", line) }, append([]string{famidsBin}, args...)...)
	must(t, ready.SetReadDeadline(time.Now().Add(time.Minute)))
	buf := make([]byte, 64)
	for {
		n, err := ready.Read(buf)
		if err != nil {
			t.Fatalf("famids did not say it was ready: %v", err)
		}
		if string(buf[:n]) == "READY=1" {
			return s, time.Since(start)
		}
	}
}

// spawnInotifywait starts inotifywait -m on paths with the events given
// and waits until its watches are set.
func spawnInotifywait(t *testing.T, onLine func(string, time.Time), events []string, paths ...string) *spawned {
	t.Helper()
	ready := make(chan struct{})
	var once sync.Once
	argv := []string{"inotifywait", "-m"}
	for _, e := range events {
		argv = append(argv, "-e", e)
	}
	argv = append(argv, paths...)
	s := spawn(t, nil, onLine, func(line string, _ time.Time) {
		if strings.Contains(line, "Watches established") {
			once.Do(func() { close(ready) })
		}
	}, argv...)
	select {
	case <-ready:
	case <-time.After(time.Minute):
		t.Fatal("inotifywait did not set its watches")
	}
	return s
}

// A sighting is closed the first time a line holding want is seen.
type sighting struct {
	want string
	once sync.Once
	c    chan struct{}
}

func newSighting(want string) *sighting { return &sighting{want: want, c: make(chan struct{})} }

func (f *sighting) see(line string) {
	if strings.Contains(line, f.want) {
		f.once.Do(func() { close(f.c) })
	}
}

func (f *sighting) wait(t *testing.T, who string) {
	t.Helper()
	select {
	case <-f.c:
	case <-time.After(2 * time.Minute):
		t.Fatalf("%s never printed %q", who, f.want)
	}
}

// entriesEvents are the inotify events famids asks for on a watched
// directory, as inotifywait names them.
var entriesEvents = []string{"create", "delete", "moved_from", "moved_to", "delete_self", "move_self", "modify", "attrib", "close_write"}

// compareStorm storms a watched directory with create, modify, close and
// delete on names that are not important, beside inotifywait watching it.
func compareStorm(t *testing.T) {
	dir := t.TempDir()
	spool := filepath.Join(dir, "spool")
	must(t, os.Mkdir(spool, 0o755))
	compareStormAt(t, "storm", spool+", , passwd | shadow | done\n", spool, filepath.Join(spool, "done"), 0.2)
}

// compareStormOutside storms a directory outside every watched path, on
// the file system of a watched tree: the kernel tells famids nothing.
func compareStormOutside(t *testing.T) {
	dir := t.TempDir()
	tree, spool := filepath.Join(dir, "tree"), filepath.Join(dir, "spool")
	makeStormTree(t, tree)
	must(t, os.Mkdir(spool, 0o755))
	compareStormAt(t, "storm outside", tree+"/**\n", spool, filepath.Join(tree, "done"), 0.05)
}

// compareStormInTree storms a directory deep in a tree whose important
// names the storm's are not.
func compareStormInTree(t *testing.T) {
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	makeStormTree(t, tree)
	spool := filepath.Join(tree, "d3", "spool")
	must(t, os.Mkdir(spool, 0o755))
	compareStormAt(t, "storm in a tree", tree+"/**, , passwd | shadow | done\n", spool, filepath.Join(spool, "done"), 0.2)
}

// makeStormTree makes a small tree of 10 directories of 100 files.
func makeStormTree(t *testing.T, tree string) {
	for i := range 10 {
		d := filepath.Join(tree, "d"+strconv.Itoa(i))
		must(t, os.MkdirAll(d, 0o755))
		for j := range 100 {
			writeFile(t, filepath.Join(d, "f"+strconv.Itoa(j)), "x")
		}
	}
}

// compareStormAt makes 300,000 events (create, modify, close, delete of 100,000
// files) in spool, with famids running conf and inotifywait watching
// spool, then writes done, which famids must report, and fails when
// famids's CPU time is over goal times inotifywait's.
func compareStormAt(t *testing.T, name, conf, spool, done string, goal float64) {
	const rounds = 100_000
	confFile := filepath.Join(t.TempDir(), "famids.conf")
	must(t, os.WriteFile(confFile, []byte(conf), 0o600))

	var mu sync.Mutex
	var famidsOut []string
	famidsDone := newSighting("Pathname: " + done)
	famids, _ := spawnFamids(t, func(line string, _ time.Time) {
		mu.Lock()
		famidsOut = append(famidsOut, line)
		mu.Unlock()
		famidsDone.see(line)
	}, "-config", confFile, "-stdout", "-state", "")
	var iwLines int
	iwDone := newSighting(" CREATE done")
	iw := spawnInotifywait(t, func(line string, _ time.Time) {
		iwLines++
		iwDone.see(line)
	}, entriesEvents, spool)

	start := time.Now()
	buf := []byte("junk\n")
	for i := range rounds {
		f, err := os.OpenFile(filepath.Join(spool, "junk"+strconv.Itoa(i)), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		must(t, err)
		_, err = f.Write(buf)
		must(t, err)
		must(t, f.Close())
		must(t, os.Remove(f.Name()))
	}
	took := time.Since(start)
	writeFile(t, filepath.Join(spool, "done"), "")
	if done != filepath.Join(spool, "done") {
		writeFile(t, done, "")
	}
	famidsDone.wait(t, "famids")
	iwDone.wait(t, "inotifywait")
	famidsCPU := famids.stop()
	iwCPU := iw.stop()

	mu.Lock()
	out := strings.Join(famidsOut, "\n")
	mu.Unlock()
	if n := strings.Count(out, "Subject: "); n != 1 {
		t.Errorf("famids printed %d messages, want only the report on done:\n%.2000s", n, out)
	}
	if iwLines < 3*rounds {
		t.Errorf("inotifywait printed %d lines, want %d: it lost events", iwLines, 3*rounds)
	}
	ratio := float64(famidsCPU) / float64(iwCPU)
	t.Logf("%s: %d events in %v", name, 3*rounds, took.Round(time.Millisecond))
	t.Logf("%s: famids CPU %v, inotifywait CPU %v: famids uses %.3f of inotifywait's CPU (goal at most %g)",
		name, famidsCPU.Round(time.Millisecond), iwCPU.Round(time.Millisecond), ratio, goal)
	if ratio > goal {
		t.Errorf("famids's CPU time is more than %g of inotifywait's", goal)
	}
}

// compareLatency times, for the same writes, the end of famids's whole
// report (-settle 0 -stdout) and inotifywait's line.
func compareLatency(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "passwd")
	writeFile(t, f, "root:x:0:0:root:/root:/bin/bash\n")
	compareLatencyOf(t, "latency", f+"\n", f)
}

// compareLatencyInTree is compareLatency for a file five directories
// deep in a tree of 1,000 files: the same report, through a tree.
func compareLatencyInTree(t *testing.T) {
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	makeStormTree(t, tree)
	deep := filepath.Join(tree, "d4", "a", "b", "c", "d")
	must(t, os.MkdirAll(deep, 0o755))
	f := filepath.Join(deep, "passwd")
	writeFile(t, f, "root:x:0:0:root:/root:/bin/bash\n")
	compareLatencyOf(t, "latency in a tree", tree+"/**\n", f)
}

// compareLatencyOf times, for 300 writes to f, the end of the report of
// famids running the configuration conf and inotifywait's line.
func compareLatencyOf(t *testing.T, name, conf, f string) {
	const writes = 300
	confFile := filepath.Join(t.TempDir(), "famids.conf")
	must(t, os.WriteFile(confFile, []byte(conf), 0o600))

	famidsAt := make(chan time.Time, writes)
	inReport := false
	famids, _ := spawnFamids(t, func(line string, at time.Time) {
		switch {
		case line == "Pathname: "+f:
			inReport = true
		case line == "" && inReport:
			inReport = false
			famidsAt <- at
		}
	}, "-config", confFile, "-stdout", "-settle", "0", "-state", "", "-max-mails", "1000000")
	iwAt := make(chan time.Time, writes)
	iw := spawnInotifywait(t, func(line string, at time.Time) { iwAt <- at }, []string{"modify"}, f)

	var famidsLat, iwLat []time.Duration
	for i := range writes {
		start := time.Now()
		appendFile(t, f, fmt.Sprintf("user%d:x:%d:%d::/home/user%d:/bin/sh\n", i, 1000+i, 1000+i, i))
		for range 2 {
			select {
			case at := <-famidsAt:
				famidsLat = append(famidsLat, at.Sub(start))
			case at := <-iwAt:
				iwLat = append(iwLat, at.Sub(start))
			case <-time.After(10 * time.Second):
				t.Fatalf("write %d: no report and line within 10s", i)
			}
		}
		time.Sleep(2 * time.Millisecond) // let both go idle, as between real changes
	}
	famids.stop()
	iw.stop()
	fm, im := median(famidsLat), median(iwLat)
	t.Logf("%s: median of %d writes: famids's whole report %v, inotifywait's line %v: ratio %.2f (goal at most 1.6)",
		name, writes, fm, im, float64(fm)/float64(im))
	if float64(fm) > 1.6*float64(im) {
		t.Errorf("famids's median latency is more than 1.6 times inotifywait's")
	}
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// compareScale has famids record 10,000 files of 16 KiB, each its own
// entry, and aide --init record the same files with the same attributes.
func compareScale(t *testing.T) {
	const files = 10_000
	dir := t.TempDir()
	data := filepath.Join(dir, "files")
	must(t, os.Mkdir(data, 0o755))
	var conf strings.Builder
	content := make([]byte, 16<<10)
	for i := range files {
		rand.Read(content)
		p := filepath.Join(data, fmt.Sprintf("f%05d", i))
		must(t, os.WriteFile(p, content, 0o644))
		fmt.Fprintf(&conf, "%s\n", p)
	}
	confFile := filepath.Join(dir, "famids.conf")
	must(t, os.WriteFile(confFile, []byte(conf.String()), 0o600))
	state := filepath.Join(dir, "state", "state.json")

	resumed := newSighting("Notice: reporting resumed")
	suspended := newSighting("Notice: reporting suspended")
	famids, ready := spawnFamids(t, func(line string, _ time.Time) { resumed.see(line); suspended.see(line) },
		"-config", confFile, "-stdout", "-state", state)
	t.Logf("scale: peak RSS once ready: %.1f MiB", float64(famids.peakRSS())/(1<<20))
	famids.cmd.Process.Signal(syscall.SIGUSR1)
	suspended.wait(t, "famids")
	start := time.Now()
	famids.cmd.Process.Signal(syscall.SIGUSR2)
	resumed.wait(t, "famids")
	rescan := time.Since(start)
	rss := famids.peakRSS()
	famids.stop()

	_, restart := spawnFamids(t, nil, "-config", confFile, "-stdout", "-state", state)

	aideConf := filepath.Join(dir, "aide.conf")
	must(t, os.WriteFile(aideConf, []byte(fmt.Sprintf("database_out=file:%s\ngzip_dbout=no\nFAMIDS = ftype+p+u+g+s+m+c+i+n+sha256+xattrs+acl+caps+e2fsattrs\n%s FAMIDS\n",
		filepath.Join(dir, "aide.db"), data)), 0o600))
	start = time.Now()
	if out, err := exec.Command("aide", "--init", "-c", aideConf).CombinedOutput(); err != nil {
		t.Fatalf("aide --init: %v\n%s", err, out)
	}
	aide := time.Since(start)

	t.Logf("scale: %d files of 16 KiB: famids ready in %v (first start) and %v (start-up comparing with its state), aide --init %v: ratio %.2f (goal at most 0.5, and 0.5s)",
		files, ready.Round(time.Millisecond), restart.Round(time.Millisecond), aide.Round(time.Millisecond), float64(ready)/float64(aide))
	t.Logf("scale: peak RSS %.1f MiB (goal at most 24); rescan on resume %v (goal at most 0.3s)", float64(rss)/(1<<20), rescan.Round(time.Millisecond))
	if ready > 500*time.Millisecond || ready*2 > aide {
		t.Errorf("famids is not ready within 0.5s and half of aide's time")
	}
	if rss > 24<<20 {
		t.Errorf("famids's peak RSS is over 24 MiB")
	}
	if rescan > 300*time.Millisecond {
		t.Errorf("the rescan takes over 0.3s")
	}
}

// cpuTime returns the CPU time used so far by every thread of pid.
func cpuTime(t *testing.T, pid int) time.Duration {
	t.Helper()
	stats, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	must(t, err)
	var total time.Duration
	for _, s := range stats {
		data, err := os.ReadFile(s)
		if err != nil {
			continue // the thread ended
		}
		ns, _ := strconv.ParseInt(strings.Fields(string(data))[0], 10, 64)
		total += time.Duration(ns)
	}
	return total
}

// compareIdle measures what an idle minute costs famids, watching the
// example configuration, beside a second famids watching the same files
// (one run by hand beside the service): neither may take the other's
// reads for a writer's.
func compareIdle(t *testing.T) {
	famids, _ := spawnFamids(t, nil, "-config", "famids.conf.example", "-stdout", "-state", filepath.Join(t.TempDir(), "state.json"))
	pid := famids.cmd.Process.Pid
	other, _ := spawnFamids(t, nil, "-config", "famids.conf.example", "-stdout", "-state", "")
	defer other.stop()
	time.Sleep(2 * time.Second) // let start-up's garbage be collected
	before := cpuTime(t, pid)
	time.Sleep(time.Minute)
	idle := cpuTime(t, pid) - before
	famids.stop()
	t.Logf("idle: one minute cost famids %v of CPU, beside another famids watching the same files (goal under 10ms)", idle.Round(10*time.Microsecond))
	if idle >= 10*time.Millisecond {
		t.Errorf("an idle minute costs 10ms of CPU or more")
	}
}
