package main

import (
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// compareTree has famids take the first baseline of a tree of 50,000
// files of 4 KiB in 2,000 directories, beside aide --init on the same
// tree with the same attributes; then start again with its saved
// baseline, beside the time inotifywait -r takes to set its watches.
func compareTree(t *testing.T) {
	const dirs, perDir = 2_000, 25
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	content := make([]byte, 4<<10)
	for i := range dirs {
		d := filepath.Join(tree, fmt.Sprintf("d%02d", i/100), fmt.Sprintf("e%04d", i))
		must(t, os.MkdirAll(d, 0o755))
		for j := range perDir {
			rand.Read(content)
			must(t, os.WriteFile(filepath.Join(d, fmt.Sprintf("f%02d", j)), content, 0o644))
		}
	}
	confFile := filepath.Join(dir, "famids.conf")
	must(t, os.WriteFile(confFile, []byte(tree+"/**\n"), 0o600))
	state := filepath.Join(dir, "state", "state.json")

	famids, first := spawnFamids(t, nil, "-config", confFile, "-stdout", "-state", state)
	rss := famids.peakRSS()
	famids.stop()
	famids, again := spawnFamids(t, nil, "-config", confFile, "-stdout", "-state", state)
	rssAgain := famids.peakRSS()
	famids.stop()

	start := time.Now()
	iw := spawnInotifywait(t, nil, []string{"modify"}, "-r", tree)
	inotifywait := time.Since(start)
	iw.stop()

	aideConf := filepath.Join(dir, "aide.conf")
	must(t, os.WriteFile(aideConf, []byte(fmt.Sprintf("database_out=file:%s\ngzip_dbout=no\nFAMIDS = ftype+p+u+g+s+m+c+i+n+sha256+xattrs+acl+caps+e2fsattrs\n%s FAMIDS\n",
		filepath.Join(dir, "aide.db"), tree)), 0o600))
	start = time.Now()
	if out, err := exec.Command("aide", "--init", "-c", aideConf).CombinedOutput(); err != nil {
		t.Fatalf("aide --init: %v\n%s", err, out)
	}
	aide := time.Since(start)

	t.Logf("tree: %d files of 4 KiB in %d directories: famids's first baseline %v, aide --init %v: ratio %.2f (goal at most 0.5)",
		dirs*perDir, dirs, first.Round(time.Millisecond), aide.Round(time.Millisecond), float64(first)/float64(aide))
	t.Logf("tree: famids's restart with its baseline %v, inotifywait -r setting its watches %v: ratio %.2f (goal at most 2)",
		again.Round(time.Millisecond), inotifywait.Round(time.Millisecond), float64(again)/float64(inotifywait))
	t.Logf("tree: peak RSS %.1f MiB (first), %.1f MiB (restart) (goal at most 64)", float64(rss)/(1<<20), float64(rssAgain)/(1<<20))
}
