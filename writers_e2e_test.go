package main

// End-to-end tests of writes that send no event: famids finds them while
// the writer holds the file open for writing.

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A write with Linux AIO sends no event: it is reported while its writer
// still holds the file open, not at the close, nor at verification.
func TestAIOWriteSeenWhileHeld(t *testing.T) {
	bin := buildC(t, "aio")
	r, f := startOnFile(t, "-settle", "200ms")
	heldProgram(t, bin, f, "TROJAN") // lives until the test ends
	m := r.waitMail("the report of the AIO write, while held open", func(m mail) bool {
		return m.Subject == subjectReport && strings.HasPrefix(m.Body, reportHead(f, "change")) && field(m.Body, "Found") == foundWhileHeld
	})
	wantDiffers(t, m, "sha256")
	neverNothing(t, r)
}

// A root intruder's AIO writer disguised as famids, its program
// bind-mounted over famids's own path in a mount namespace of its own (so
// that /proc/PID/exe reads as famids's program), is no peer: its write is
// reported while it holds the file open.
func TestAIOWriterDisguisedAsFamids(t *testing.T) {
	needTool(t, "unshare")
	bin := buildC(t, "aio")
	r, f := startOnFile(t, "-settle", "200ms")
	heldProgram(t, "unshare", "-m", "--propagation", "private", "sh", "-c",
		`mount --bind "$0" "$1" && exec "$1" "$2" TROJAN`, bin, famidsBin, f)
	m := r.waitMail("the report of the disguised AIO write, while held open", func(m mail) bool {
		return m.Subject == subjectReport && strings.HasPrefix(m.Body, reportHead(f, "change")) && field(m.Body, "Found") == foundWhileHeld
	})
	wantDiffers(t, m, "sha256")
}

// A loop device set up on a watched file writes to it with no event: it
// is reported while the device stays attached.
func TestLoopDeviceWriteSeenWhileAttached(t *testing.T) {
	needTool(t, "losetup")
	img := filepath.Join(t.TempDir(), "disk.img")
	must(t, os.WriteFile(img, make([]byte, 1<<20), 0o600))
	r := startFamids(t, img+"\n", "-settle", "200ms")
	dev := strings.TrimSpace(runTool(t, "losetup", "-f", "--show", img))
	t.Cleanup(func() { runTool(t, "losetup", "-d", dev) })
	f, err := os.OpenFile(dev, os.O_WRONLY, 0)
	must(t, err)
	_, err = f.Write([]byte("EVIL"))
	must(t, err)
	must(t, f.Sync())
	must(t, f.Close())
	m := r.waitMail("the report of the loop device's write, while attached", func(m mail) bool {
		return m.Subject == subjectReport && strings.HasPrefix(m.Body, reportHead(img, "change")) && field(m.Body, "Found") == foundWhileHeld
	})
	wantDiffers(t, m, "sha256")
	n := r.waitNotice("a loop device is set up on a watched file")
	if !strings.HasPrefix(n.Body, "Notice: a loop device is set up on a watched file: "+dev+" on "+img+"\n") {
		t.Errorf("the notice does not name the device and the file:\n%s", n.Body)
	}
}

// A writer that holds the file open and writes with write(2) sends events:
// each of its writes is reported as the event it is, never as a write that
// sent none, and never with nothing differing, however its writes fall
// against the comparisons made while it holds the file.
func TestHeldWriterWithEvents(t *testing.T) {
	r, f := startOnFile(t, "-settle", "100ms")
	w, err := os.OpenFile(f, os.O_WRONLY|os.O_APPEND, 0)
	must(t, err)
	defer w.Close()
	for i := range 12 {
		_, err := w.WriteString(strings.Repeat("x", i+1) + "\n")
		must(t, err)
		time.Sleep(250 * time.Millisecond)
	}
	r.waitReports(1)
	time.Sleep(500 * time.Millisecond) // the last write's report
	for _, m := range r.reports() {
		if found := field(m.Body, "Found"); found != "" {
			t.Errorf("a write(2) reported as found %q:\n%s", found, m.Body)
		}
	}
	neverNothing(t, r)
}
