package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseMounts(t *testing.T) {
	text := "22 1 0:21 / /proc rw,nosuid - proc proc rw\n" +
		"36 35 98:0 /mnt1 /mnt\\040with\\040space rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n" +
		"40 22 0:5 /x /odd\\012name rw shared:2 unbindable - tmpfs src\\134back rw\n" +
		"garbage\n41 22 0:5 /x /short rw -\n"
	got := parseMounts(text)
	if len(got) != 3 {
		t.Fatalf("parsed %d mounts, want 3: %+v", len(got), got)
	}
	if m := got[36]; m.path != "/mnt with space" || m.root != "/mnt1" || m.fstype != "ext3" || m.source != "/dev/root" {
		t.Errorf("mount 36 = %+v", m)
	}
	if m := got[40]; m.path != "/odd\nname" || m.source != `src\back` || m.fstype != "tmpfs" {
		t.Errorf("mount 40 = %+v", m)
	}
	if s := got[40].String(); strings.Contains(s, "\n") {
		t.Errorf("a mount point with a newline is not quoted: %q", s)
	}
}

// A bind mount over a watched file, used and undone in a few
// milliseconds, leaves nothing for a comparison to find: it is told as it
// happens.
func TestTransientBindMountIsTold(t *testing.T) {
	needTool(t, "mount")
	f, trojan := sshdAndTrojan(t)
	r := startFamids(t, f+"\n")
	if out, err := exec.Command("sh", "-c", "mount --bind "+trojan+" "+f+" && cat "+f+" >/dev/null && umount "+f).CombinedOutput(); err != nil {
		t.Fatalf("the bind mount: %v\n%s", err, out)
	}
	m := r.waitNotice("a mount on a watched path")
	if !strings.Contains(m.Body, "mounted: "+f) {
		t.Errorf("notice:\n%s", m.Body)
	}
}

// A mount over a directory on the way to a watched path that does not
// exist yet is told too.
func TestMountOnTheWayToAMissingPath(t *testing.T) {
	needTool(t, "mount")
	dir := t.TempDir()
	m := filepath.Join(dir, "m")
	must(t, os.Mkdir(m, 0o755))
	src := filepath.Join(dir, "src")
	must(t, os.Mkdir(src, 0o755))
	writeFile(t, filepath.Join(src, "g"), "evil")
	g := filepath.Join(m, "g")
	r := startFamids(t, g+"\n")
	if out, err := exec.Command("sh", "-c", "mount --bind "+src+" "+m+" && cat "+g+" >/dev/null && umount "+m).CombinedOutput(); err != nil {
		t.Fatalf("the bind mount: %v\n%s", err, out)
	}
	n := r.waitNotice("a mount on a watched path")
	if !strings.Contains(n.Body, "mounted: "+m) {
		t.Errorf("notice:\n%s", n.Body)
	}
}
