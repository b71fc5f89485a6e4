package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// floodFiles and floodName are the flood of the comparison: files made
// by an ordinary user in a watched directory of mode 1777, each name this
// long.
const (
	floodFiles = 150_000
	floodName  = 200
)

// compareFlood floods a watched directory with files made by nobody,
// while another configured file changes, and measures what famids pays:
// its CPU time, its peak RSS, its RSS once the flood is over, and how
// soon the other file's report comes, on its own.
func compareFlood(t *testing.T) {
	// nobody must reach the directory: not under t.TempDir, which is
	// root's alone.
	top, err := os.MkdirTemp("/tmp", "famids-flood")
	must(t, err)
	t.Cleanup(func() { os.RemoveAll(top) })
	must(t, os.Chmod(top, 0o755))
	spool, passwd := filepath.Join(top, "spool"), filepath.Join(top, "passwd")
	must(t, os.Mkdir(spool, 0o755))
	must(t, os.Chmod(spool, 0o1777))
	writeFile(t, passwd, "root:x:0:0\n")
	conf := filepath.Join(t.TempDir(), "famids.conf")
	must(t, os.WriteFile(conf, []byte(spool+"\n"+passwd+"\n"), 0o600))

	var mu sync.Mutex
	var single, folded, twice int
	seen := make(map[string]bool)
	var last string // the path of the last Pathname: line, which a digest's Folded: line takes back
	see := func(path string) {
		if seen[path] {
			twice++
		}
		seen[path] = true
	}
	var otherAt time.Time
	other := "Pathname: " + passwd
	inDigest := false
	famids, _ := spawnFamids(t, func(line string, at time.Time) {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case line == other && otherAt.IsZero():
			otherAt = at
		case strings.HasPrefix(line, "Subject: "):
			inDigest = false
		case strings.HasPrefix(line, "Folded: "):
			inDigest = true
			if last != "" {
				single-- // the digest's own Pathname: line, its first path's
				delete(seen, last)
			}
		case inDigest && strings.HasPrefix(line, spool+"/"):
			path, _, _ := strings.Cut(line, ": ")
			see(path)
			folded++
		case !inDigest && strings.HasPrefix(line, "Pathname: "+spool+"/"):
			single++
			last = strings.TrimPrefix(line, "Pathname: ")
			if seen[last] {
				last = "" // reported before: not the digest's to take back
			}
			see(strings.TrimPrefix(line, "Pathname: "))
		}
	}, "-config", conf, "-stdout", "-settle", "200ms", "-state", filepath.Join(t.TempDir(), "state.json"))
	pid := famids.cmd.Process.Pid

	start := time.Now()
	flood := exec.Command("/bin/sh", "-c", `p=$(printf "%0`+strconv.Itoa(floodName-6)+`d" 0 | tr 0 x); i=0
while [ $i -lt `+strconv.Itoa(floodFiles)+` ]; do : > "$1/$p$i"; i=$((i+1)); done`, "flood", spool)
	flood.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	flood.Stderr = os.Stderr
	must(t, flood.Start())
	time.Sleep(2 * time.Second)
	changed := time.Now()
	appendFile(t, passwd, "evil::0:0\n")
	must(t, flood.Wait())
	made := time.Since(start)

	// Every file is reported, alone or in a digest, and the digests
	// go out at the end of their minute.
	deadline := time.Now().Add(5 * time.Minute)
	for {
		mu.Lock()
		done := len(seen) >= floodFiles && !otherAt.IsZero()
		mu.Unlock()
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 5 minutes, %d of %d files reported (%d alone, %d folded), passwd's report at %v", len(seen), floodFiles, single, folded, otherAt)
		}
		time.Sleep(100 * time.Millisecond)
	}
	cpu := cpuTime(t, pid)
	peak := procStatus(t, pid, "VmHWM:")
	// The memory given back once the digest is out: a few seconds.
	after := procStatus(t, pid, "VmRSS:")
	for range 40 {
		time.Sleep(500 * time.Millisecond)
		if now := procStatus(t, pid, "VmRSS:"); now < after {
			after = now
		}
	}
	famids.stop()

	mu.Lock()
	late := otherAt.Sub(changed)
	mu.Unlock()
	t.Logf("flood: %d files of %d-byte names made by nobody in %v: famids CPU %v (goal at most 20s), peak RSS %.1f MiB, RSS once over %.1f MiB (goal under 64 MiB); %d reported alone, %d folded, %d twice; another line's report %v after its change, on its own",
		floodFiles, floodName, made.Round(time.Millisecond), cpu.Round(10*time.Millisecond), float64(peak)/(1<<20), float64(after)/(1<<20),
		single, folded, twice, late.Round(time.Millisecond))
	if cpu > 20*time.Second {
		t.Errorf("the flood cost famids over 20s of CPU")
	}
	if after >= 64<<20 {
		t.Errorf("famids's RSS once the flood is over is 64 MiB or more")
	}
	if twice > 0 {
		t.Errorf("%d files reported twice, made once", twice)
	}
	if late > 5*time.Second {
		t.Errorf("another line's report came %v after its change, want within seconds", late)
	}
}

// procStatus returns the size, in bytes, that a line of
// /proc/PID/status (proc(5)) gives in kB, such as "VmRSS:".
func procStatus(t *testing.T, pid int, key string) int64 {
	t.Helper()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	must(t, err)
	for _, line := range strings.Split(string(status), "\n") {
		if kb, ok := strings.CutPrefix(line, key); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(kb), "kB")), 10, 64)
			must(t, err)
			return n << 10
		}
	}
	t.Fatalf("no %s in /proc/%d/status", key, pid)
	return 0
}
