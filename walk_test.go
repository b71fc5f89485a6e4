package main

// Unit tests of walking a path as the kernel resolves it.

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// tempDir returns a new temporary directory by its real path, with no
// symbolic link in it.
func tempDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// lookupsFrom returns the lookups made from dir on: those leading to dir
// itself are the same for every test.
func lookupsFrom(t *testing.T, lookups []lookup, dir string) []lookup {
	t.Helper()
	for i, l := range lookups {
		if l.dir == dir {
			return lookups[i:]
		}
	}
	t.Fatalf("no lookup in %s: %+v", dir, lookups)
	return nil
}

func TestResolve(t *testing.T) {
	dir := tempDir(t)
	mkdir := func(p string) {
		if err := os.MkdirAll(filepath.Join(dir, p), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	symlink := func(target, p string) {
		if err := os.Symlink(target, filepath.Join(dir, p)); err != nil {
			t.Fatal(err)
		}
	}
	mkdir("usr/bin")
	if err := os.WriteFile(filepath.Join(dir, "usr/bin/ls"), []byte("ls"), 0o755); err != nil {
		t.Fatal(err)
	}
	symlink("usr/bin", "bin")                 // merged /usr, relative
	symlink(filepath.Join(dir, "usr"), "abs") // absolute
	symlink("../usr/bin/ls", "usr/lslink")    // with ..
	symlink("loop2", "loop1")                 // a loop
	symlink("loop1", "loop2")                 //
	symlink("nowhere", "dangling")            // dangling
	symlink("usr/bin/ls", "filelink")         // the leaf is a link
	in := func(p string) string { return filepath.Join(dir, p) }

	// The lookups from "/" down to dir.
	top, real := resolve(dir, nil)
	if real != dir || len(top) == 0 || top[0].dir != "/" || !top[len(top)-1].leaf {
		t.Fatalf("resolve(%s) = %+v, %q", dir, top, real)
	}
	for i, l := range top {
		next := dir
		if i < len(top)-1 {
			next = top[i+1].dir
		}
		if filepath.Join(l.dir, l.name) != next {
			t.Errorf("lookup %d %+v does not lead to %s", i, l, next)
		}
		if l.leaf != (i == len(top)-1) {
			t.Errorf("lookup %d %+v: leaf is %v", i, l, l.leaf)
		}
	}

	tests := []struct {
		name    string
		path    string
		lookups []lookup // from dir on
		real    string
	}{
		{"plain path", in("usr/bin/ls"), []lookup{
			{dir, "usr", false}, {in("usr"), "bin", false}, {in("usr/bin"), "ls", true},
		}, in("usr/bin/ls")},
		{"relative symlinked directory", in("bin/ls"), []lookup{
			{dir, "bin", false}, {dir, "usr", false}, {in("usr"), "bin", false}, {in("usr/bin"), "ls", true},
		}, in("usr/bin/ls")},
		{"absolute symlink", in("abs/bin/ls"), nil, in("usr/bin/ls")},
		{"symlink with ..", in("usr/lslink"), []lookup{
			{dir, "usr", false}, {in("usr"), "lslink", true}, {dir, "usr", false}, {in("usr"), "bin", false}, {in("usr/bin"), "ls", false},
		}, in("usr/bin/ls")},
		{"the leaf is a symlink", in("filelink"), []lookup{
			{dir, "filelink", true}, {dir, "usr", false}, {in("usr"), "bin", false}, {in("usr/bin"), "ls", false},
		}, in("usr/bin/ls")},
		{"a directory", in("usr/bin"), []lookup{
			{dir, "usr", false}, {in("usr"), "bin", true},
		}, in("usr/bin")},
		{"dot and double slash", in("usr/./bin//ls"), []lookup{
			{dir, "usr", false}, {in("usr"), "bin", false}, {in("usr/bin"), "ls", true},
		}, in("usr/bin/ls")},
		{"missing leaf", in("usr/bin/sl"), []lookup{
			{dir, "usr", false}, {in("usr"), "bin", false}, {in("usr/bin"), "sl", true},
		}, ""},
		{"missing component", in("usr/sbin/ls"), []lookup{
			{dir, "usr", false}, {in("usr"), "sbin", false},
		}, ""},
		{"missing component behind a symlink", in("bin/nope/ls"), []lookup{
			{dir, "bin", false}, {dir, "usr", false}, {in("usr"), "bin", false}, {in("usr/bin"), "nope", false},
		}, ""},
		{"a file where a directory should be", in("usr/bin/ls/x"), []lookup{
			{dir, "usr", false}, {in("usr"), "bin", false}, {in("usr/bin"), "ls", false},
		}, ""},
		{"dangling symlink", in("dangling"), []lookup{
			{dir, "dangling", true}, {dir, "nowhere", false},
		}, ""},
		{"symlink loop", in("loop1"), nil, ""},
		{"symlink loop on the way", in("loop1/x"), nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lookups, real := resolveWithin(t, tt.path, 5*time.Second)
			if real != tt.real {
				t.Errorf("resolve(%s) real = %q, want %q", tt.path, real, tt.real)
			}
			if tt.lookups == nil {
				if tt.real == "" && len(lookups) > 2*maxSymlinks+len(top)+10 {
					t.Errorf("resolve(%s, nil) made %d lookups", tt.path, len(lookups))
				}
				return
			}
			got := lookupsFrom(t, lookups, dir)
			if !slices.Equal(got, tt.lookups) {
				t.Errorf("resolve(%s, nil) lookups from %s:\n got %+v\nwant %+v", tt.path, dir, got, tt.lookups)
			}
			// Those leading to dir are the same as for dir itself, none a leaf.
			n := len(lookups) - len(got)
			if n != len(top) {
				t.Errorf("resolve(%s, nil) made %d lookups before reaching %s, want %d", tt.path, n, dir, len(top))
			}
			for i := range min(n, len(top)) {
				if lookups[i] != (lookup{top[i].dir, top[i].name, false}) {
					t.Errorf("resolve(%s, nil) lookup %d = %+v, want %+v", tt.path, i, lookups[i], top[i])
				}
			}
		})
	}
	// Following an absolute link starts again at "/".
	lookups, _ := resolve(in("abs/bin/ls"), nil)
	var roots int
	for _, l := range lookups {
		if l.dir == "/" {
			roots++
		}
	}
	if roots != 2 {
		t.Errorf("resolve through an absolute link looked up %d names in /, want 2: %+v", roots, lookups)
	}
}

// resolveWithin is resolve, failing the test if it does not return in
// time (a symbolic link loop followed forever).
func resolveWithin(t *testing.T, path string, d time.Duration) ([]lookup, string) {
	t.Helper()
	type result struct {
		lookups []lookup
		real    string
	}
	done := make(chan result, 1)
	go func() {
		l, r := resolve(path, nil)
		done <- result{l, r}
	}()
	select {
	case r := <-done:
		return r.lookups, r.real
	case <-time.After(d):
		t.Fatalf("resolve(%s, nil) did not return within %v", path, d)
		return nil, ""
	}
}
