package main

// Unit tests of who made a change: reading /proc, writing By: lines, and
// decoding fanotify's events.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

func TestParseStat(t *testing.T) {
	// A process may name itself anything, parentheses and spaces too:
	// the name ends at the last ')'.
	comm, fields := parseStat([]byte("4242 (a) (b) S 1 c) R 17 4242 4242 34816 4242 0\n"))
	if comm != "a) (b) S 1 c" {
		t.Errorf("comm = %q", comm)
	}
	if len(fields) < 5 || fields[0] != "R" || fields[1] != "17" || fields[4] != "34816" {
		t.Errorf("fields = %q", fields)
	}
	if comm, fields := parseStat([]byte("4242 no name")); comm != "" || fields != nil {
		t.Errorf("without parentheses: %q %q", comm, fields)
	}
}

func TestTTYName(t *testing.T) {
	for _, tt := range []struct {
		major, minor uint32
		want         string
	}{
		{0, 0, ""},
		{136, 0, "pts/0"},
		{136, 7, "pts/7"},
		{137, 44, "pts/300"},
		{136, 300, "pts/300"}, // a minor past 255, encoded high
		{4, 1, "tty1"},
		{4, 64, "ttyS0"},
		{4, 65, "ttyS1"},
		{5, 1, "5:1"},
	} {
		// tty_nr in /proc/PID/stat: minor bits 0-7 and 20-31, major bits 8-19.
		n := tt.minor&0xff | tt.major<<8 | (tt.minor&^0xff)<<12
		if got := ttyName(fmt.Sprint(n)); got != tt.want {
			t.Errorf("ttyName(%d:%d) = %q, want %q", tt.major, tt.minor, got, tt.want)
		}
	}
	if got := ttyName("junk"); got != "" {
		t.Errorf("ttyName(junk) = %q", got)
	}
}

func TestStatusField(t *testing.T) {
	status := []byte("Name:\tsudo\nState:\tS (sleeping)\nUid:\t1000\t0\t0\t0\nThreads:\t3\n")
	if got := statusField(status, "Uid:", 1); got != 0 {
		t.Errorf("effective uid = %d, want 0", got)
	}
	if got := threadsOf(status); got != 3 {
		t.Errorf("threads = %d, want 3", got)
	}
	if got := statusField([]byte("Name:\tx\n"), "Uid:", 1); got != unsetID {
		t.Errorf("uid without Uid: = %d", got)
	}
	if got := threadsOf(nil); got != 1 {
		t.Errorf("threads of nothing = %d, want 1", got)
	}
}

func TestThreadsOfStat(t *testing.T) {
	stat := []byte("4242 (a b) c) S 1 4242 4242 0 -1 4194560 120 0 0 0 1 2 0 0 20 0 3 0 555 1000 200")
	if _, fields := parseStat(stat); threadsOfStat(fields) != 3 {
		t.Errorf("threads of %q = %d, want 3", stat, threadsOfStat(fields))
	}
	if got := threadsOfStat(nil); got != 1 {
		t.Errorf("threads of nothing = %d, want 1", got)
	}
}

// The pidfd tells the effective uid /proc/PID/status does, while its
// process is there, and that it was reaped once it is.
func TestPidfdUID(t *testing.T) {
	cmd := exec.Command("sleep", "60")
	must(t, cmd.Start())
	pidfd, err := unix.PidfdOpen(cmd.Process.Pid, 0)
	must(t, err)
	defer unix.Close(pidfd)
	ruid, uid, gone, ok := pidfdUIDs(int32(pidfd))
	if !ok && !gone {
		cmd.Process.Kill()
		cmd.Wait()
		t.Skip("before Linux 6.13, a pidfd does not tell its process's uid")
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
	must(t, err)
	if want, wantReal := statusField(status, "Uid:", 1), statusField(status, "Uid:", 0); !ok || gone || uid != want || ruid != wantReal {
		t.Errorf("pidfdUIDs = %d, %d, gone %v, ok %v; want %d, %d, alive", ruid, uid, gone, ok, wantReal, want)
	}
	cmd.Process.Kill()
	cmd.Wait()
	if _, _, gone, ok := pidfdUIDs(int32(pidfd)); !gone || ok {
		t.Errorf("pidfdUIDs of a reaped process: gone %v, ok %v; want gone", gone, ok)
	}
}

// A command line of control characters, or a long one, is cut once
// quoted, so that a By: line stays readable: under 1,000 characters.
func TestAppendByCutsCommandLine(t *testing.T) {
	for _, tt := range []struct {
		name string
		args []string
		cut  bool
	}{
		{"control characters", []string{"sh", strings.Repeat("\x01", 4090)}, true},
		{"long and plain", []string{"cp", strings.Repeat("a", 3000)}, false},
		{"multi-byte", []string{"echo", strings.Repeat("é", 1500)}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := process{pid: 1, known: true, comm: "sh", exe: "/bin/sh", cmdline: tt.args, cut: tt.cut, auid: unsetID, ses: unsetID}
			by := string(appendBy(nil, p))
			if len(by) > 1000 {
				t.Errorf("a By: line of %d characters, want under 1,000", len(by))
			}
			q, ok := strings.CutPrefix(by[strings.Index(by, " cmdline=")+1:], "cmdline=")
			line, err := strconv.Unquote(q)
			if !ok || err != nil || !strings.HasSuffix(line, " ...") {
				t.Errorf("cmdline=%s: want a quoted, cut command line ending in \" ...\" (%v)", q, err)
			}
			if utf8.ValidString(shellJoin(tt.args)) && !utf8.ValidString(line) {
				t.Errorf("cmdline=%s: cut in the middle of a character", q)
			}
			if len(q) > maxQuotedCmdline {
				t.Errorf("cmdline of %d characters quoted, want at most %d", len(q), maxQuotedCmdline)
			}
		})
	}
	short := process{pid: 1, known: true, comm: "ls", exe: "/bin/ls", cmdline: []string{"ls", "-l"}, auid: unsetID, ses: unsetID}
	if by := string(appendBy(nil, short)); !strings.HasSuffix(by, ` cmdline="ls -l"`) {
		t.Errorf("a short command line: %s", by)
	}
}

func TestShellJoin(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"cp", "/tmp/x", "/bin/ls"}, "cp /tmp/x /bin/ls"},
		{[]string{"sh", "-c", "echo x >> /etc/passwd"}, `sh -c 'echo x >> /etc/passwd'`},
		{[]string{"echo", "it's"}, `echo 'it'\''s'`},
		{[]string{"touch", ""}, "touch ''"},
		{[]string{"a\nb"}, "'a\nb'"},
	} {
		if got := shellJoin(tt.args); got != tt.want {
			t.Errorf("shellJoin(%q) = %q, want %q", tt.args, got, tt.want)
		}
	}
}

// A process chooses its name, its executable's path and its arguments:
// none of them may forge a field or a line.
func TestAppendBy(t *testing.T) {
	full := process{
		pid: 4242, known: true, comm: "cp", exe: "/usr/bin/cp",
		uid: 0, user: "root", auid: 1000, auser: "alice", ses: 3, tty: "pts/0",
		parents: []ancestor{{"bash", 4200}, {"sshd", 4100}, {"sshd", 812}},
		cmdline: []string{"cp", "/tmp/x", "/bin/ls"},
	}
	for _, tt := range []struct {
		name string
		p    process
		want string
	}{
		{"full", full, `pid=4242 comm=cp exe=/usr/bin/cp uid=0(root) auid=1000(alice) ses=3 tty=pts/0 parents=bash(4200)<sshd(4100)<sshd(812) cmdline="cp /tmp/x /bin/ls"`},
		{"exited, nothing known", process{pid: 7, exited: true}, "pid=7 (exited)"},
		{"exited, known", process{pid: 7, exited: true, known: true, comm: "rm", uid: 65534, ruid: 65534, auid: unsetID, ses: unsetID}, "pid=7 (exited) comm=rm exe=- uid=65534 auid=- ses=- tty=-"},
		{"outside the namespace", process{pid: 0}, "pid=0 (outside famids's pid namespace)"},
		{"a setuid program run by another", process{
			pid: 12, known: true, comm: "passwd", exe: "/usr/bin/passwd", uid: 0, user: "root", ruid: 65534, ruser: "nobody",
			auid: unsetID, ses: unsetID,
		}, "pid=12 comm=passwd exe=/usr/bin/passwd uid=0(root) ruid=65534(nobody) auid=- ses=- tty=-"},
		{"threads and another mount namespace", process{
			pid: 11, known: true, comm: "apt-check", exe: "/usr/bin/cp", mntns: "4026532451",
			uid: 1000, user: "alice", ruid: 1000, auid: unsetID, ses: unsetID,
			threadUIDs: []uidName{{1000, "alice"}, {0, "root"}},
		}, "pid=11 comm=apt-check exe=/usr/bin/cp mntns=4026532451 uid=1000(alice) thread_uids=1000(alice),0(root) auid=- ses=- tty=-"},
		{"hostile", process{
			pid: 9, known: true, comm: "x\nBy: pid=1", exe: "/tmp/a b", uid: 1000, user: "1000", ruid: 1000,
			auid: unsetID, ses: unsetID,
			parents: []ancestor{{"a(1)<b", 8}},
			cmdline: []string{"sh", "-c", "echo \"x\"\n"}, cut: true,
		}, `pid=9 comm="x\nBy: pid=1" exe="/tmp/a b" uid=1000 auid=- ses=- tty=- parents="\"a(1)<b\"(8)" cmdline="sh -c 'echo \"x\"\n' ..."`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := string(appendBy(nil, tt.p))
			if got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
			if strings.ContainsAny(got, "\n\r") {
				t.Errorf("a By: line holds a line break: %q", got)
			}
		})
	}
}

func TestBylineAndEnvironment(t *testing.T) {
	p := process{pid: 4242, known: true, comm: "vi m", uid: 0, auid: 1000, ses: 3}
	if got, want := byline([]process{p}), `by "vi m"[4242] auid=1000`; got != want {
		t.Errorf("byline = %q, want %q", got, want)
	}
	if got, want := byline([]process{{pid: 8, known: true, comm: "vi[1]", auid: unsetID}}), `by "vi[1]"[8] auid=-`; got != want {
		t.Errorf("byline of a name with brackets = %q, want %q", got, want)
	}
	if got, want := byline([]process{{pid: 7, exited: true}}), "by ?[7] auid=-"; got != want {
		t.Errorf("byline of an exited process = %q, want %q", got, want)
	}
	if got := byline(nil); got != "" {
		t.Errorf("byline of nobody = %q", got)
	}
	if got, want := strings.Join(byEnv([]process{p}), " "), "FAMIDS_BY_PID=4242 FAMIDS_BY_UID=0 FAMIDS_BY_AUID=1000"; got != want {
		t.Errorf("byEnv = %q, want %q", got, want)
	}
	if got, want := strings.Join(byEnv([]process{{pid: 7, exited: true}}), " "), "FAMIDS_BY_PID=7"; got != want {
		t.Errorf("byEnv of an exited process = %q, want %q", got, want)
	}
}

func TestReportBodyBy(t *testing.T) {
	when := time.Date(2026, 11, 25, 19, 15, 25, 0, time.UTC)
	r := report{
		Path: "/bin/ls", Events: []string{"change"}, Host: "web1", Time: when,
		Before: lsBefore, After: lsAfter,
		By: []process{
			{pid: 4242, known: true, comm: "cp", exe: "/usr/bin/cp", uid: 0, user: "root", auid: 1000, auser: "alice", ses: 3, tty: "pts/0",
				parents: []ancestor{{"sudo", 4241}, {"bash", 4200}, {"sshd", 4100}}, cmdline: []string{"cp", "/tmp/x", "/bin/ls"}},
			{pid: 4250, exited: true},
		},
		ByMore: 2,
	}
	goldenFile(t, "report-by.golden", r.body())
	want := "/bin/ls: change; differs: mode size mtime ctime sha256 flags caps xattrs; by cp[4242] auid=1000"
	if got := r.summary(); got != want {
		t.Errorf("summary (syslog and digest line):\n got %s\nwant %s", got, want)
	}
}

// A lookup must never give a pid's new process for the one an event
// named: the pidfd taken with the event says whether it is still that.
func TestInquireReusedPid(t *testing.T) {
	cmd := exec.Command("true")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pidfd, err := unix.PidfdOpen(cmd.Process.Pid, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(pidfd)
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	// Our own pid stands for the reused one: it names a live process,
	// which is not the one the pidfd is of.
	a := lookupAttributor(t)
	l := a.inquire(fanEvent{pid: int32(os.Getpid()), pidfd: int32(pidfd)}, procID{pid: int32(os.Getpid())})
	if p := l.snapshot(); !p.exited || p.known {
		t.Errorf("a reaped process read through a reused pid: %+v; want exited and nothing known", p)
	}
}

func TestReadProcessLive(t *testing.T) {
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()
	pidfd, err := unix.PidfdOpen(cmd.Process.Pid, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(pidfd)
	names := newIDNames()
	fs, err := openProcfs()
	must(t, err)
	defer unix.Close(fs.root)
	p, ppid, threads := glance(fs, int32(cmd.Process.Pid), int32(pidfd), make([]byte, procBufSize), names)
	l := &inquiry{pid: int32(cmd.Process.Pid), pidfd: int32(pidfd), p: p}
	readMore(fs, l, ppid, threads, names, "")
	p = l.snapshot()
	if !p.known || p.exited || p.comm != "sleep" || !strings.HasSuffix(p.exe, "/sleep") || p.uid != uint32(os.Geteuid()) {
		t.Fatalf("read %+v", p)
	}
	if got := strings.Join(p.cmdline, " "); got != "sleep 60" {
		t.Errorf("cmdline = %q", got)
	}
	if len(p.parents) == 0 || p.parents[0].pid != os.Getpid() {
		t.Errorf("parents = %v, want this test (%d) first", p.parents, os.Getpid())
	}
}

// fanEventBytes lays out one event as the kernel does (linux/fanotify.h):
// the metadata, a pidfd record, and one record per handle.
func fanEventBytes(mask uint64, pid, pidfd int32, records ...[]byte) []byte {
	b := make([]byte, fanMetaSize)
	b[fanMetaVersion] = unix.FANOTIFY_METADATA_VERSION
	binary.NativeEndian.PutUint16(b[fanMetaLenAt:], fanMetaSize)
	binary.NativeEndian.PutUint64(b[fanMaskAt:], mask)
	binary.NativeEndian.PutUint32(b[16:], uint32(0xffffffff)) // fd: FAN_NOFD
	binary.NativeEndian.PutUint32(b[fanPidAt:], uint32(pid))
	rec := make([]byte, 8)
	rec[0] = unix.FAN_EVENT_INFO_TYPE_PIDFD
	binary.NativeEndian.PutUint16(rec[2:], 8)
	binary.NativeEndian.PutUint32(rec[4:], uint32(pidfd))
	b = append(b, rec...)
	for _, r := range records {
		b = append(b, r...)
	}
	binary.NativeEndian.PutUint32(b, uint32(len(b)))
	return b
}

// fidRecord lays out a struct fanotify_event_info_fid: header, fsid,
// struct file_handle, and, for DFID_NAME, the name, NUL-padded to 4 bytes.
func fidRecord(typ uint8, fsid uint64, handle []byte, name string) []byte {
	b := make([]byte, 4, 64)
	b[0] = typ
	b = binary.NativeEndian.AppendUint64(b, fsid)
	b = binary.NativeEndian.AppendUint32(b, uint32(len(handle)))
	b = binary.NativeEndian.AppendUint32(b, 1) // handle_type
	b = append(b, handle...)
	if typ == unix.FAN_EVENT_INFO_TYPE_DFID_NAME {
		b = append(b, name...)
		b = append(b, 0)
	}
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	binary.NativeEndian.PutUint16(b[2:], uint16(len(b)))
	return b
}

func TestParseFanEvents(t *testing.T) {
	seed := maphash.MakeSeed()
	dir, file := []byte{1, 2, 3, 4, 5, 6, 7, 8}, []byte{9, 10, 11, 12, 13, 14, 15, 16}
	buf := fanEventBytes(unix.FAN_CREATE, 4242, 17,
		fidRecord(unix.FAN_EVENT_INFO_TYPE_DFID_NAME, 99, dir, "new\nname"),
		fidRecord(unix.FAN_EVENT_INFO_TYPE_FID, 99, file, ""))
	buf = append(buf, fanEventBytes(unix.FAN_ATTRIB|unix.FAN_ONDIR, 4243, -1,
		fidRecord(unix.FAN_EVENT_INFO_TYPE_DFID_NAME, 99, dir, "."))...)
	buf = append(buf, 1, 2, 3) // a partial event is not one
	evs := parseFanEvents(buf, nil, seed)
	if len(evs) != 2 {
		t.Fatalf("%d events, want 2: %+v", len(evs), evs)
	}
	key := func(handle []byte) uint64 {
		return maphash.Bytes(seed, fidRecord(unix.FAN_EVENT_INFO_TYPE_FID, 99, handle, "")[4:])
	}
	e := evs[0]
	if e.mask != unix.FAN_CREATE || e.pid != 4242 || e.pidfd != 17 || e.nrefs != 2 {
		t.Errorf("first event %+v", e)
	}
	if e.refs[0] != (fanRef{key(dir), "new\nname"}) || e.refs[1] != (fanRef{key(file), ""}) {
		t.Errorf("first event's inodes %+v", e.refs)
	}
	e = evs[1]
	if e.pid != 4243 || e.pidfd != -1 || e.nrefs != 1 || e.refs[0] != (fanRef{key(dir), ""}) {
		t.Errorf("second event (on the directory itself, named \".\") %+v", e)
	}
	// The key of a handle is the one keyOf computes of the inode itself.
	if got := parseFanEvents(buf[:fanMetaSize-1], nil, seed); len(got) != 0 {
		t.Errorf("a short buffer decoded as %+v", got)
	}
}

// keyOf must compute, from an inode famids opens, the key parseFanEvents
// computes from the handle fanotify reports of it: or no event is routed.
func TestFanKeyMatchesEvents(t *testing.T) {
	g, err := openFanGroup()
	if err != nil {
		t.Fatal(err) // the tests run as root (README)
	}
	defer unix.Close(g.fd)
	dir := t.TempDir()
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	m := g.mark(fd, fdPath(fd), unix.IN_CREATE)
	if m.err != nil {
		t.Fatal(m.err)
	}
	if err := os.WriteFile(dir+"/f", nil, 0o600); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	var evs []fanEvent
	for deadline := time.Now().Add(5 * time.Second); len(evs) == 0 && time.Now().Before(deadline); {
		n, err := unix.Read(g.fd, buf)
		if errors.Is(err, unix.EAGAIN) {
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		evs = parseFanEvents(buf[:n], nil, g.seed)
	}
	if len(evs) == 0 {
		t.Fatal("no fanotify event within 5s")
	}
	unix.Close(int(evs[0].pidfd))
	if evs[0].pid != int32(os.Getpid()) || evs[0].nrefs == 0 || evs[0].refs[0] != (fanRef{m.key, "f"}) {
		t.Errorf("event %+v; want pid %d and the directory's key %x with name f", evs[0], os.Getpid(), m.key)
	}
}

func FuzzParseFanEvents(f *testing.F) {
	f.Add(fanEventBytes(unix.FAN_MODIFY, 1, 3, fidRecord(unix.FAN_EVENT_INFO_TYPE_DFID_NAME, 1, []byte{1, 2, 3, 4}, "x")))
	f.Add([]byte{})
	seed := maphash.MakeSeed()
	f.Fuzz(func(t *testing.T, buf []byte) {
		for _, e := range parseFanEvents(buf, nil, seed) {
			if e.nrefs > len(e.refs) {
				t.Fatalf("nrefs %d", e.nrefs)
			}
		}
	})
}

// Paths fanotify would not mark are told once, their reports say why, and
// no more than maxUnmarked are kept.
func TestTakeUnmarked(t *testing.T) {
	w := &watcher{fan: &fanGroup{byKey: map[uint64]int32{}, unmarked: map[string]refusal{}}}
	why := errors.New("its file system cannot tell fanotify which file changed")
	w.noteMark(&watch{path: "/mnt/b\nc"}, mark{err: why})
	w.noteMark(&watch{path: "/mnt/a"}, mark{err: why})
	got := w.takeUnmarked()
	want := []string{`"/mnt/b\nc": ` + why.Error(), "/mnt/a: " + why.Error()}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("takeUnmarked = %q, want %q", got, want)
	}
	w.noteMark(&watch{path: "/mnt/a"}, mark{err: why}) // refused again, the same way
	if got := w.takeUnmarked(); got != nil {
		t.Errorf("told twice: %q", got)
	}
	if got := w.unmarkedWhy("/mnt/a"); got != why.Error() {
		t.Errorf("unmarkedWhy(/mnt/a) = %q, want %q", got, why.Error())
	}
	for i := range maxUnmarked + 10 {
		w.noteMark(&watch{path: fmt.Sprint("/mnt/", i)}, mark{err: why})
	}
	if got := w.takeUnmarked(); len(got) != maxUnmarked-2 {
		t.Errorf("%d kept, want %d", len(got), maxUnmarked-2)
	}
}

// inquiryOf returns an inquiry of process pid whose pidfd has inode ino.
func inquiryOf(pid int32, ino uint64) *inquiry {
	return &inquiry{id: procID{pid, ino}, pid: pid}
}

// A burst names five processes, and counts the others once each however
// often they write.
func TestAttributionCountsEachProcessOnce(t *testing.T) {
	var a, b attribution
	for range 3 {
		for pid := range int32(8) {
			a.add(inquiryOf(100+pid, 0))
		}
	}
	b.add(inquiryOf(100, 0)) // named in a already
	b.add(inquiryOf(200, 0))
	// A process past the five seen once with its pidfd, then once after
	// it exited (no pidfd, no inode): one process.
	a.add(inquiryOf(300, 9001))
	a.add(inquiryOf(300, 0))
	a.merge(b)
	if len(a.by) != maxBy || a.more() != 5 {
		t.Errorf("%d named and %d more, want %d and 5", len(a.by), a.more(), maxBy)
	}
}

// Two processes that had one pid, one after the other, are two: pidfs
// gives their pidfds different inodes.
func TestAttributionTellsReusedPids(t *testing.T) {
	var a attribution
	a.add(inquiryOf(4242, 7001))
	a.add(inquiryOf(4242, 7001))
	a.add(inquiryOf(4242, 7002))
	if len(a.by) != 2 {
		t.Errorf("%d named, want the two processes of pid 4242", len(a.by))
	}
	// Read gone first, then alive: the living one came after, with the pid.
	var b attribution
	b.add(inquiryOf(5000, 0))
	b.add(inquiryOf(5000, 7003))
	if len(b.by) != 2 {
		t.Errorf("%d named, want the gone process of pid 5000 and the one that took its pid", len(b.by))
	}
	if !a.names(procID{4242, 0}) || a.names(procID{4243, 7001}) {
		t.Error("names: a pid without inode is any process of that pid; another pid is another process")
	}
}

func TestPidfdID(t *testing.T) {
	if !havePidfs() {
		t.Skip("pidfds without inodes of their own (before Linux 6.9): nothing to tell apart")
	}
	a := exec.Command("true")
	must(t, a.Start())
	fa, err := unix.PidfdOpen(a.Process.Pid, 0)
	must(t, err)
	defer unix.Close(fa)
	fself, err := unix.PidfdOpen(os.Getpid(), 0)
	must(t, err)
	defer unix.Close(fself)
	a.Wait()
	ida, idself := pidfdID(int32(a.Process.Pid), int32(fa), true), pidfdID(int32(os.Getpid()), int32(fself), true)
	if ida.ino == 0 || idself.ino == 0 || ida.ino == idself.ino {
		t.Errorf("pidfd inodes %d and %d: want two, both set", ida.ino, idself.ino)
	}
	// The same pid with another process's inode is another process.
	if (procID{ida.pid, idself.ino}).same(ida) {
		t.Error("a pid reused by another process passes for the first")
	}
}

// A storm on names famids does not report reads no /proc: only the
// important write that ends it is looked up.
func TestStormLooksNoProcessUp(t *testing.T) {
	dir := t.TempDir()
	d := benchDaemon(t, dir+", , passwd\n")
	if d.w.fan == nil {
		t.Fatalf("no fanotify group: %s", d.by.why)
	}
	r := &eventReader{src: d.w, retry: time.Second, buf: make([]byte, 64<<10)}
	storm(t, dir, 2000)
	passwd := dir + "/passwd"
	writeFile(t, passwd, "root:x:0:0")
	for deadline := time.Now().Add(10 * time.Second); d.bursts.gathering(passwd) == nil; {
		if time.Now().After(deadline) {
			t.Fatal("no burst on passwd within 10s")
		}
		must(t, pump(d, r, 100*time.Millisecond))
	}
	// fanotify's events of the write, which may come after inotify's.
	for {
		_, fanReadable, _ := d.poll.wait(d.w.fd, d.by.fd(), 0, false)
		if !fanReadable {
			break
		}
		must(t, d.take(r, false, true))
	}
	if d.by.lookups != 1 {
		t.Errorf("%d processes looked up in /proc, want 1: the writer of passwd, none for 8,000 events on other names", d.by.lookups)
	}
	if !d.bursts.gathering(passwd).by.names(procID{pid: int32(os.Getpid())}) {
		t.Errorf("the burst on passwd does not name this test (pid %d)", os.Getpid())
	}
}

// When every lookup is busy (command lines that do not come back), a new
// process is still named with what the glance saw, not by a bare pid.
func TestInquireWhenLookupsAreBusy(t *testing.T) {
	a := lookupAttributor(t)
	for i := range int32(maxInquiries) {
		a.inquiries[1_000_000+i] = &inquiry{pid: 1_000_000 + i}
	}
	pidfd, err := unix.PidfdOpen(os.Getpid(), 0)
	must(t, err)
	l := a.inquire(fanEvent{pid: int32(os.Getpid()), pidfd: int32(pidfd)}, procID{pid: int32(os.Getpid())})
	if !l.done {
		t.Fatal("a lookup started although all are busy")
	}
	p := l.snapshot()
	if !p.known || p.exited || p.comm == "" || p.uid != uint32(os.Geteuid()) || p.exe == "" {
		t.Errorf("named as %q; want what the glance saw: comm, exe, uid", appendBy(nil, p))
	}
	if err := unix.Close(pidfd); err == nil {
		t.Error("inquire left the event's pidfd open")
	}
}

// A report from events that no fanotify event named a process for says
// so, in the mail and in the syslog line.
func TestReportByUnknown(t *testing.T) {
	r := report{Path: "/etc/cron.d/x", Events: []string{"create"}, Host: "h", Time: time.Unix(0, 0), After: lsBefore, ByUnknown: true}
	if body := r.body(); !strings.Contains(body, "\nTime: 1970-01-01T00:00:00Z\nBy: unknown\nBefore: ") {
		t.Errorf("body:\n%s\nwant a line \"By: unknown\" after Time:", body)
	}
	if s := r.summary(); !strings.HasSuffix(s, "; by unknown") {
		t.Errorf("summary %q, want it to end with \"; by unknown\"", s)
	}
}

// lookupAttributor returns an attributor that can look processes up, with
// nothing else.
func lookupAttributor(t *testing.T) *attributor {
	fs, err := openProcfs()
	must(t, err)
	t.Cleanup(func() { unix.Close(fs.root) })
	w := &watcher{fan: &fanGroup{proc: fs}}
	a := newAttributor(w, "", func() {}, newIDNames(), &tracer{})
	t.Cleanup(a.stop)
	return a
}
