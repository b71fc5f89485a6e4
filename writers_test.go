package main

// Unit tests of the writers: when a file another process opened is asked
// again, and compared.

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestWritersSchedule(t *testing.T) {
	ws := &writers{files: make(map[string]*held)}
	now := time.Now()
	if !ws.opened("/etc/passwd", now) {
		t.Fatal("a first open is not probed")
	}
	if ws.opened("/etc/passwd", now) {
		t.Error("a second open is probed while the first probe is out")
	}
	ws.probed("/etc/passwd", false, now)
	// Opened again while the probe was out: probed once more, after the gap.
	if c, p := ws.due(now); len(c) != 0 || len(p) != 0 {
		t.Errorf("before the gap: compare %q, probe %q; want nothing", c, p)
	}
	if c, p := ws.due(now.Add(probeGap)); len(c) != 0 || !slices.Equal(p, []string{"/etc/passwd"}) {
		t.Errorf("after the gap: compare %q, probe %q; want a probe", c, p)
	}
	ws.probed("/etc/passwd", true, now.Add(probeGap))
	// Held open for writing: compared and probed each heldEvery.
	at := now.Add(probeGap + heldEvery)
	if got := ws.next(); !got.Equal(at) {
		t.Errorf("next = %v, want %v", got, at)
	}
	if c, p := ws.due(at); !slices.Equal(c, []string{"/etc/passwd"}) || !slices.Equal(p, []string{"/etc/passwd"}) {
		t.Errorf("held: compare %q, probe %q; want both", c, p)
	}
	ws.probed("/etc/passwd", false, at)
	if len(ws.files) != 0 {
		t.Errorf("a file no longer held is still followed: %v", ws.files)
	}
}

func TestHeldForWriting(t *testing.T) {
	f := filepath.Join(t.TempDir(), "f")
	writeFile(t, f, "x")
	if writer, err := heldForWriting(f); writer || err != nil {
		t.Errorf("a file nobody holds: writer %v, %v; want false, no error", writer, err)
	}
	w, err := os.OpenFile(f, os.O_WRONLY, 0)
	must(t, err)
	if writer, err := heldForWriting(f); !writer || err != nil {
		t.Errorf("a file held open for writing: writer %v, %v; want true, no error", writer, err)
	}
	must(t, w.Close())
	if writer, err := heldForWriting(filepath.Dir(f)); writer || err != nil {
		t.Errorf("a directory: writer %v, %v; want no writer to follow, no error", writer, err)
	}
}
