package main

// End-to-end tests of mail programs that misbehave.

import (
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestMailProgramLeavingAChildBehind(t *testing.T) {
	f := filepath.Join(t.TempDir(), "f")
	writeFile(t, f, "x")
	r := newRun(t, f+"\n")
	children := filepath.Join(r.dir, "children")
	// It leaves a child holding its output pipe, then hands the message to
	// the recording mail program.
	forking := r.writeScript("forkmail", fmt.Sprintf(`#!/bin/sh
sleep 100000 &
echo $! >> %s
exec %s "$@"
`, children, filepath.Join(r.dir, "mail")))
	r.start("-mail", forking)
	appendFile(t, f, "!")
	r.waitReport(f, "change")
	if code := r.stop(syscall.SIGTERM); code != 0 {
		t.Errorf("exit status after SIGTERM = %d, want 0; stderr:\n%s", code, r.stderr.String())
	}
	if strings.Contains(r.stderr.String(), "could not mail") {
		t.Errorf("a mail program that exited 0 counted as failed:\n%s", r.stderr.String())
	}
	left := readPids(t, children)
	if len(left) == 0 {
		t.Fatal("the mail program recorded no child")
	}
	checkGone(t, "a child of the mail program", left)
}
