package main

// End-to-end tests of writes that send no event: famids finds them while
// the writer holds the file open for writing.

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
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
}
