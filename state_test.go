package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestStateRoundTrip(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "state.json")
	f := filepath.Join(dir, "passwd")
	writeFile(t, f, "root:x:0:0\n")
	s := &state{
		Version: stateVersion,
		PID:     42,
		Started: time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC),
		Watched: entryNames{f: nil, "/etc/missing": nil, "/dir": {"passwd", "*.conf"}},
		Records: recordMap{
			f:              statPath(f),
			"/etc/missing": {},
			"/dir":         {Exists: true, Type: "dir", Mode: 0o755, Mtime: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC), Inode: 7, Links: 2},
		},
	}
	writeState(t, file, s, s.Records)
	got, err := loadState(file)
	must(t, err)
	g, w := *got, *s
	g.Records, w.Records, g.size = nil, nil, 0
	if !reflect.DeepEqual(g, w) || !sameRecords(got.Records, s.Records) {
		t.Errorf("state after a round trip:\n%+v %v\nwant:\n%+v %v", g, recordsMap(got.Records), w, recordsMap(s.Records))
	}
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("state file mode: %v, %v; want 0600", fi.Mode(), err)
	}
	if differs(got.recordOf(f), statPath(f)) != nil {
		t.Errorf("a recorded file differs from itself after a round trip: %v", differs(got.recordOf(f), statPath(f)))
	}
}

func TestStateMissingDamagedForeign(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "state.json")
	if s, err := loadState(file); s != nil || err != nil {
		t.Errorf("missing file: %v, %v; want nil, nil", s, err)
	}
	writeFile(t, file, `{"version":1,"records":{"/x":`)
	if _, err := loadState(file); err == nil || !strings.Contains(err.Error(), "damaged") || !strings.Contains(err.Error(), file) {
		t.Errorf("truncated file: err = %v", err)
	}
	writeFile(t, file, `{"version":99,"records":{}}`)
	if _, err := loadState(file); err == nil || !strings.Contains(err.Error(), "version 99") {
		t.Errorf("foreign version: err = %v", err)
	}
}

// TestStateCrashLeavesOldFile simulates a crash in the middle of a save:
// the temporary file is left half-written beside the state file. The old
// state must still load, and the next save must replace the leftover.
func TestStateCrashLeavesOldFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "state.json")
	old := &state{Version: stateVersion, PID: 1, Clean: true, Records: recordMap{"/etc/passwd": {Exists: true, Type: "file", Size: 10}}}
	writeState(t, file, old, old.Records)
	writeFile(t, file+".tmp", `{"version":1,"pid":2,"rec`) // the crash
	got, err := loadState(file)
	must(t, err)
	if got.PID != 1 || got.recordOf("/etc/passwd").Size != 10 {
		t.Errorf("after a crash mid-save, loaded %+v; want the old state", got)
	}
	newer := &state{Version: stateVersion, PID: 3, Records: recordMap{}}
	writeState(t, file, newer, newer.Records)
	got, err = loadState(file)
	must(t, err)
	if got.PID != 3 {
		t.Errorf("after the next save, loaded pid %d; want 3", got.PID)
	}
	if _, err := os.Stat(file + ".tmp"); !os.IsNotExist(err) {
		t.Errorf("the leftover temporary file is still there: %v", err)
	}
}

// TestStartMarksStateUnclean checks that a famids marks its state as a
// running famids's before it arms or hashes anything, so that a kill even
// during a long start-up is seen as one, and that the mark goes at a clean
// stop.
func TestStartMarksStateUnclean(t *testing.T) {
	file := filepath.Join(t.TempDir(), "state.json")
	prev := &state{Version: stateVersion, PID: 1, Clean: true, Watched: entryNames{"/etc/passwd": nil},
		Records: recordMap{"/etc/passwd": {Exists: true, Type: "file", Size: 10}}}
	writeState(t, file, prev, prev.Records)
	// said stops the daemon's mailer and returns what it printed.
	newDaemonAt := func() (*daemon, func() string) {
		var out bytes.Buffer
		m := newMailer(nil, "root", &out, &out)
		cfg, _ := parseConfig("famids.conf", "/etc/passwd\n")
		d, err := newDaemon(cfg, m)
		must(t, err)
		t.Cleanup(func() {
			d.w.Close()
			d.poll.close()
		})
		d.base.keeper.file = file
		return d, func() string {
			m.close(time.Now().Add(waitFor))
			return out.String()
		}
	}
	d, said := newDaemonAt()
	if got := d.base.load(d.notice); got == nil || got.PID != 1 {
		t.Fatalf("loadState = %+v, want the previous run's state", got)
	}
	if out := said(); out != "" {
		t.Errorf("a clean previous stop made famids say:\n%s", out)
	}
	mark, err := os.ReadFile(file + ".lock")
	must(t, err)
	if want := fmt.Sprintf("pid %d running since ", os.Getpid()); !strings.HasPrefix(string(mark), want) {
		t.Errorf("the lock file says %q, want %q...", mark, want)
	}
	d.base.close() // killed: the mark stays

	d, said = newDaemonAt()
	d.base.load(d.notice)
	if out, want := said(), fmt.Sprintf("Notice: the previous famids (pid %d) did not stop cleanly", os.Getpid()); !strings.Contains(out, want) {
		t.Errorf("after a kill during start-up, famids says:\n%s\nwant %q", out, want)
	}
	d.save(true)
	d.base.close()
	if mark, _ := os.ReadFile(file + ".lock"); len(mark) != 0 {
		t.Errorf("the lock file says %q after a clean stop, want nothing", mark)
	}
}

func TestStateTrailingData(t *testing.T) {
	file := filepath.Join(t.TempDir(), "state.json")
	writeFile(t, file, `{"version":1,"records":{}} garbage`)
	if _, err := loadState(file); err == nil {
		t.Error("a state file with data after it loads without an error")
	}
}

// allBytesName is a file name of every byte a name may hold, 1 to 255
// but '/': 254 bytes, none of them valid UTF-8 after 127.
func allBytesName() string {
	var b []byte
	for c := 1; c <= 255; c++ {
		if c != '/' {
			b = append(b, byte(c))
		}
	}
	return string(b)
}

// Names, link targets and texts are kept byte for byte, whatever they are.
func TestStateKeepsNamesByteForByte(t *testing.T) {
	file := filepath.Join(t.TempDir(), "state.json")
	names := []string{
		"/d/V\xedctor", "/d/" + allBytesName(), "/d/line\nbreak", "/d/\u2028sep", "/d/\ufffd", "/d/plain",
		"/d/\xff", "/d/é", `/d/quote"back\slash`,
	}
	s := &state{Version: stateVersion, PID: 7, Error: "read: \xff\nNotice: forged",
		Watched: entryNames{"/d": {"V\xedctor", "*.conf"}, "/e\xfe": nil}, Records: recordMap{}}
	for i, n := range names {
		s.Records.put(n, attrs{Exists: true, Type: "symlink", Inode: uint64(i + 1),
			Ext: &extended{Link: n + "\xc3", SELinux: "u:r:\xfft", Xattrs: `"user.\xff":00000000`}})
	}
	writeState(t, file, s, s.Records)
	got, err := loadState(file)
	must(t, err)
	if got.Error != s.Error || !reflect.DeepEqual(got.Watched, s.Watched) || got.Records.len() != s.Records.len() {
		t.Fatalf("after a round trip: error %q, watched %q, %d records; want %q, %q, %d",
			got.Error, got.Watched, got.Records.len(), s.Error, s.Watched, s.Records.len())
	}
	for n, a := range s.Records.all() {
		if g, ok := got.Records.get(n); !ok || !g.same(a) {
			t.Errorf("record %q after a round trip: %v (found %v), want %v", n, g, ok, a)
		}
	}
}

// A state file of version 1 is read: what it recorded is compared, and
// the names it could not keep are dropped.
func TestStateVersion1(t *testing.T) {
	file := filepath.Join(t.TempDir(), "state.json")
	writeFile(t, file, `{"version":1,"pid":3,"started":"2026-11-25T08:00:00Z","saved":"2026-11-25T09:00:00Z","clean":true,`+
		`"watched":{"/d":null},"records":{"/d/a":{"exists":true,"type":"file","mode":420,"size":1,"mtime":"2026-11-25T08:00:00Z",`+
		`"inode":5,"links":1,"sha256":"abababababababababababababababababababababababababababababababab","dev":2,"ctime":"2026-11-25T08:00:00Z"},"/d/V\ufffdctor":{"exists":true,"type":"file"}}}`)
	got, err := loadState(file)
	must(t, err)
	if got.Version != stateVersion || !got.Clean || got.PID != 3 {
		t.Errorf("version 1 state read as %+v", got)
	}
	a, ok := got.Records.get("/d/a")
	if !ok || !a.Partial || a.Mode != 0o644 || a.SHA256 != strings.Repeat("ab", 32) || a.Inode != 5 {
		t.Errorf("version 1 record = %v (partial %v), want mode 0644, inode 5, partial", a, a.Partial)
	}
	if got.Records.has("/d/V\ufffdctor") {
		t.Error("a version 1 record of a name it could not keep is still there")
	}
	if !got.mangled("/d/V\xedctor") || got.mangled("/d/a") {
		t.Error("mangled: want true for a name that is not UTF-8, false for a plain one")
	}
	// A flag that an older famids did not record is not a difference.
	now := a
	now.Partial, now.Flags = false, 0x80000
	if d := differs(a, now); len(d) != 0 {
		t.Errorf("a version 1 record differs from the same file with flags: %q", d)
	}
}

// FuzzDecodeState feeds the state decoder whatever a damaged or forged
// state file could hold: it must return an error or a state that saves
// and loads back the same, never panic.
func FuzzDecodeState(f *testing.F) {
	var seed bytes.Buffer
	seedState := &state{Version: stateVersion, PID: 1, Error: "x\xff", Watched: entryNames{"/d\xfe": {"n"}},
		Records: recordMap{"/d/\xed": {Exists: true, Type: "file", SHA256: strings.Repeat("ab", 32), Ext: &extended{Link: "\xff"}}}}
	encodeState(&seed, seedState, seedState.Records)
	f.Add(seed.Bytes())
	f.Add([]byte(`{"version":1,"records":{"/x":{"exists":true}}}`))
	f.Add([]byte(`{"version":2,"records":{"\u0000!!":{}}}`))
	f.Add([]byte(`{"version":2,"watched":{"\u0000AA==":["\u0000/w=="]},"records":{}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := decodeState(json.NewDecoder(bytes.NewReader(data)))
		if err != nil {
			return
		}
		var out bytes.Buffer
		if err := encodeState(&out, s, s.Records); err != nil {
			t.Fatalf("a decoded state does not encode: %v", err)
		}
		again, err := decodeState(json.NewDecoder(bytes.NewReader(out.Bytes())))
		if err != nil {
			t.Fatalf("a state famids wrote does not decode: %v\n%s", err, out.Bytes())
		}
		if again.Error != s.Error || !maps.EqualFunc(again.Watched, s.Watched, slices.Equal) || again.Records.len() != s.Records.len() {
			t.Fatalf("round trip changed the state:\n%+v\n%+v", s, again)
		}
		for p, a := range s.Records.all() {
			if b, ok := again.Records.get(p); !ok || !b.same(a) {
				t.Fatalf("round trip changed the record of %q: %v, then %v", p, a, b)
			}
		}
	})
}

// Links planted where famids writes its own files never make it write
// elsewhere: the victim is left as it was.
func TestPlantedLinksAreNotFollowed(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "state.json")
	victim := filepath.Join(t.TempDir(), "shadow")
	writeFile(t, victim, "root:secret:0\n")

	// state.json.tmp as a symbolic link: removed, and a file made anew.
	must(t, os.Symlink(victim, file+".tmp"))
	writeState(t, file, &state{Version: stateVersion, PID: 1}, recordMap{})
	if s, err := loadState(file); err != nil || s.PID != 1 {
		t.Errorf("after a save over a planted .tmp link: %+v, %v", s, err)
	}

	// state.json.lock as a symbolic link, or as a hard link.
	for _, plant := range []func(string) error{
		func(p string) error { return os.Symlink(victim, p) },
		func(p string) error { return os.Link(victim, p) },
	} {
		os.Remove(file + ".lock")
		must(t, plant(file+".lock"))
		k := stateKeeper{file: file}
		if err := k.open(); err == nil {
			k.unlock()
			t.Errorf("a planted lock file was used")
		}
	}
	// state.json itself as a link: not read.
	os.Remove(file)
	must(t, os.Symlink(victim, file))
	if _, err := loadState(file); err == nil {
		t.Errorf("a state file that is a symbolic link was read")
	}
	if data, _ := os.ReadFile(victim); string(data) != "root:secret:0\n" {
		t.Errorf("the victim was written: %q", data)
	}
}

// A state directory that others may write into, or that another user
// owns, is not used.
func TestUntrustedStateDirectory(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setUp func(dir string) error
		want  string
	}{
		{"writable by others", func(dir string) error { return os.Chmod(dir, 0o777) }, "writable by group or others"},
		{"sticky and writable by others", func(dir string) error { return syscall.Chmod(dir, 0o1777) }, "not writable by group or others"},
		{"owned by another user", func(dir string) error { return os.Chown(dir, 65534, 65534) }, "owned by uid 65534"},
		{"below a directory others may write into", func(dir string) error { return os.Chmod(filepath.Dir(dir), 0o777) }, "writable by group or others"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parent := filepath.Join(t.TempDir(), "lib")
			dir := filepath.Join(parent, "famids")
			must(t, os.MkdirAll(dir, 0o700))
			must(t, tc.setUp(dir))
			k := stateKeeper{file: filepath.Join(dir, "state.json")}
			err := k.open()
			if err == nil {
				k.unlock()
				t.Fatalf("the state directory was used")
			}
			if !errors.Is(err, errUntrustedDir) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want %q in it", err, tc.want)
			}
			if _, err := os.Stat(k.file + ".lock"); err == nil {
				t.Errorf("famids wrote into the untrusted directory")
			}
		})
	}
}

// A symbolic link another user owns, on the way to the state directory,
// lets that user choose where famids writes, even in a sticky directory.
func TestStateDirectoryThroughAUsersLink(t *testing.T) {
	base := t.TempDir()
	sticky := filepath.Join(base, "sd")
	must(t, os.Mkdir(sticky, 0o755))
	must(t, syscall.Chmod(sticky, 0o1777))
	victim := filepath.Join(base, "victimdir")
	must(t, os.Mkdir(victim, 0o700))
	writeFile(t, filepath.Join(victim, "state.json"), `{"other program":"precious"}`)
	link := filepath.Join(sticky, "famids")
	must(t, os.Symlink(victim, link))
	must(t, os.Lchown(link, 65534, 65534))
	k := stateKeeper{file: filepath.Join(link, "state.json")}
	err := k.open()
	if err == nil {
		k.unlock()
		t.Fatal("the state directory reached through a user's link was used")
	}
	if !errors.Is(err, errUntrustedDir) || !strings.Contains(err.Error(), "symbolic link "+link+" is owned by uid 65534") {
		t.Errorf("error %q", err)
	}
	if data, _ := os.ReadFile(filepath.Join(victim, "state.json")); string(data) != `{"other program":"precious"}` {
		t.Errorf("the victim was written: %q", data)
	}
}

// A state file forged to hold text famids shows in reports as it is (a
// type, a digest) is damaged: it could forge a line.
func TestStateWithForgedFieldsIsDamaged(t *testing.T) {
	file := filepath.Join(t.TempDir(), "state.json")
	for _, rec := range []string{
		`{"exists":true,"type":"file","sha256":"abc\nSubject: famids report\nPathname: /etc/shadow\u001b[2J"}`,
		`{"exists":true,"type":"file\nPathname: /etc/shadow"}`,
	} {
		writeFile(t, file, `{"version":2,"records":{"/x":`+rec+`}}`)
		if _, err := loadState(file); err == nil || !strings.Contains(err.Error(), "damaged") {
			t.Errorf("a record %s: err = %v, want the file damaged", rec, err)
		}
	}
}

// writeState writes s, with recs as its records, to file, as famids
// writes a snapshot.
// recordOf returns s's record of path; the zero record when it has none.
func (s state) recordOf(path string) attrs {
	a, _ := s.Records.get(path)
	return a
}

// sameRecords reports whether a and b hold the same records.
func sameRecords(a, b records) bool {
	if a.len() != b.len() {
		return false
	}
	for p, x := range a.all() {
		if y, ok := b.get(p); !ok || !x.same(y) {
			return false
		}
	}
	return true
}

// recordsMap returns the records of recs in a map, for printing.
func recordsMap(recs records) map[string]attrs {
	m := make(map[string]attrs)
	for p, a := range recs.all() {
		m[p] = a
	}
	return m
}

func writeState(t testing.TB, file string, s *state, recs records) {
	t.Helper()
	_, err := saveState(file, s, recs)
	must(t, err)
}
