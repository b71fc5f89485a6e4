package main

import (
	"bytes"
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
	got.alive = time.Time{}
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

// TestStartMarksStateUnclean checks that a famids marks the state as
// written by a run still going before it arms or hashes anything, so that a
// kill during a long start-up is seen as one, and that the previous run's
// record is kept meanwhile.
func TestStartMarksStateUnclean(t *testing.T) {
	file := filepath.Join(t.TempDir(), "state.json")
	prev := &state{Version: stateVersion, PID: 1, Clean: true, Watched: entryNames{"/etc/passwd": nil},
		Records: map[string]attrs{"/etc/passwd": {Exists: true, Type: "file", Size: 10}}}
	must(t, saveState(file, prev))
	var out bytes.Buffer
	m := newMailer(nil, "root", &out, &out)
	cfg, _ := parseConfig("famids.conf", "/etc/passwd\n")
	d, err := newDaemon(cfg, m)
	must(t, err)
	defer d.w.Close()
	d.state.file = file
	defer d.state.unlock()
	if got := d.loadState(); got == nil || got.PID != 1 {
		t.Fatalf("loadState = %+v, want the previous run's state", got)
	}
	now, err := loadState(file)
	must(t, err)
	if now.Clean || now.PID != os.Getpid() || now.Records["/etc/passwd"].Size != 10 || !now.watched("/etc/passwd") {
		t.Errorf("state right after loading it: %+v; want this run's, unclean, with the previous record", now)
	}
	m.close()
	if out.Len() != 0 {
		t.Errorf("a clean previous stop made famids say:\n%s", out.String())
	}
}
