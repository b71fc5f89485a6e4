package main

import (
	"context"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A verification's job runs at the lowest CPU priority, on a thread of its
// own; the jobs after it, a report's record say, at the usual one.
func TestIdleJobsRunAtTheLowestPriority(t *testing.T) {
	done := make(chan struct{}, 8)
	p := newPoolOf(func() { done <- struct{}{} }, 2, 2, false)
	defer p.cancel()
	niceOf := func() int {
		prio, err := unix.Getpriority(unix.PRIO_PROCESS, unix.Gettid())
		must(t, err)
		return 20 - prio // the kernel's getpriority returns 20 - nice
	}
	run := func(idle bool) int {
		got := make(chan int, 1)
		p.submit(&job{path: "/x", idle: idle, work: func(context.Context, *job) { got <- niceOf() }, done: func() {}})
		select {
		case n := <-got:
			return n
		case <-time.After(10 * time.Second):
			t.Fatal("the job did not run")
		}
		return 0
	}
	base := niceOf()
	for range 3 {
		if n := run(true); n != 19 {
			t.Errorf("a verification's job runs at nice %d, want 19", n)
		}
		if n := run(false); n != base {
			t.Errorf("a job after it runs at nice %d, want %d, famids's own", n, base)
		}
	}
}
