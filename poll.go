package main

import (
	"encoding/binary"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// A poller is what the event loop waits in: one poll(2) on the inotify
// instance, an eventfd that anything else pokes to wake the loop (a
// signal caught, a job done), and /proc/self/mountinfo, whose poll tells
// of a change of the mount table (proc(5)). It waits in poll(2) rather
// than in Go's network poller, which the kernel would wake for every
// event, even while famids is not reading.
type poller struct {
	mu     sync.Mutex     // poke against close
	wake   int            // the eventfd; -1 once closed
	mounts int            // /proc/self/mountinfo; -1 without
	fds    [4]unix.PollFd // not allocated at each wait: it runs for every event
}

func newPoller() (*poller, error) {
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	mounts, err := unix.Open("/proc/self/mountinfo", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		mounts = -1 // no /proc: mount changes are found at verification
	}
	return &poller{wake: wake, mounts: mounts}, nil
}

// wait waits until timeout has passed (forever when it is negative), poke
// is called, the mount table changes, fanotify events are queued on fan
// (when it is not negative), or, with events, inotify events are queued
// on fd. It reports whether inotify events are queued, whether fanotify
// events are, and whether the mount table changed.
func (p *poller) wait(fd, fan int, timeout time.Duration, events bool) (readable, fanReadable, mounted bool) {
	if !events {
		fd = -1 // poll(2) passes over a negative descriptor
	}
	p.fds = [4]unix.PollFd{{Fd: int32(p.wake), Events: unix.POLLIN}, {Fd: int32(p.mounts), Events: unix.POLLPRI}, {Fd: int32(fd), Events: unix.POLLIN}, {Fd: int32(fan), Events: unix.POLLIN}}
	fds := p.fds[:]
	if fan < 0 {
		fds = fds[:3]
	}
	ms := -1
	if timeout >= 0 {
		ms = int((timeout + time.Millisecond - 1) / time.Millisecond)
	}
	if _, err := unix.Poll(fds, ms); err != nil {
		return false, false, false // EINTR: the loop looks again
	}
	if fds[0].Revents != 0 {
		var count [8]byte
		unix.Read(p.wake, count[:])
	}
	mounted = fds[1].Revents&(unix.POLLPRI|unix.POLLERR) != 0
	return events && fds[2].Revents != 0, fan >= 0 && fds[3].Revents != 0, mounted
}

// poke makes wait return. Once the poller is closed it does nothing: the
// descriptor's number may name another file by then.
func (p *poller) poke() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.wake < 0 {
		return
	}
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	unix.Write(p.wake, one[:])
}

func (p *poller) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.wake >= 0 {
		unix.Close(p.wake)
		p.wake = -1
	}
	if p.mounts >= 0 {
		unix.Close(p.mounts)
		p.mounts = -1
	}
}
