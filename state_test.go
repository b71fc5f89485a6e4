package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
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
		Records: map[string]attrs{
			f:              statPath(f),
			"/etc/missing": {},
			"/dir":         {Exists: true, Type: "dir", Mode: 0o755, Mtime: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC), Inode: 7, Links: 2},
		},
	}
	must(t, saveState(file, s))
	got, err := loadState(file)
	must(t, err)
	if !reflect.DeepEqual(got, s) {
		t.Errorf("state after a round trip:\n%+v\nwant:\n%+v", got, s)
	}
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("state file mode: %v, %v; want 0600", fi.Mode(), err)
	}
	if differs(got.Records[f], statPath(f)) != nil {
		t.Errorf("a recorded file differs from itself after a round trip: %v", differs(got.Records[f], statPath(f)))
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
	old := &state{Version: stateVersion, PID: 1, Clean: true, Records: map[string]attrs{"/etc/passwd": {Exists: true, Type: "file", Size: 10}}}
	must(t, saveState(file, old))
	writeFile(t, file+".tmp", `{"version":1,"pid":2,"rec`) // the crash
	got, err := loadState(file)
	must(t, err)
	if got.PID != 1 || got.Records["/etc/passwd"].Size != 10 {
		t.Errorf("after a crash mid-save, loaded %+v; want the old state", got)
	}
	newer := &state{Version: stateVersion, PID: 3, Records: map[string]attrs{}}
	must(t, saveState(file, newer))
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
		Records: map[string]attrs{"/etc/passwd": {Exists: true, Type: "file", Size: 10}}}
	must(t, saveState(file, prev))
	newDaemonAt := func() (*daemon, *bytes.Buffer) {
		var out bytes.Buffer
		cfg, _ := parseConfig("famids.conf", "/etc/passwd\n")
		d, err := newDaemon(cfg, newMailer(nil, "root", &out, &out))
		must(t, err)
		t.Cleanup(func() { d.w.Close() })
		d.state.file = file
		return d, &out
	}
	d, out := newDaemonAt()
	if got := d.loadState(); got == nil || got.PID != 1 {
		t.Fatalf("loadState = %+v, want the previous run's state", got)
	}
	if out.Len() != 0 {
		t.Errorf("a clean previous stop made famids say:\n%s", out.String())
	}
	mark, err := os.ReadFile(file + ".lock")
	must(t, err)
	if want := fmt.Sprintf("pid %d running since ", os.Getpid()); !strings.HasPrefix(string(mark), want) {
		t.Errorf("the lock file says %q, want %q...", mark, want)
	}
	d.state.unlock() // killed: the mark stays

	d, out = newDaemonAt()
	d.loadState()
	if want := fmt.Sprintf("Notice: the previous famids (pid %d) did not stop cleanly", os.Getpid()); !strings.Contains(out.String(), want) {
		t.Errorf("after a kill during start-up, famids says:\n%s\nwant %q", out.String(), want)
	}
	d.save(true)
	d.state.unlock()
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
