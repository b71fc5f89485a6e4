package main

// Writes that send no event: the kernel tells inotify and fanotify of a
// write(2), but not of a write through Linux AIO (io_submit) nor of one
// through a loop device set up on the file. Whoever makes such a write
// holds the file open for writing meanwhile. With a fanotify group, each
// open of a watched regular file by another process is told; famids then
// asks the kernel whether anyone holds the file open for writing (a read
// lease is refused while someone does, fcntl(2)) and, while someone does,
// compares the file with its record every heldEvery.

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// heldEvery is how often a file held open for writing is compared with
// its record, and asked again whether it still is; probeGap, how often
// at most a file is asked, however often it is opened.
const (
	heldEvery = time.Second
	probeGap  = 500 * time.Millisecond
)

// maxHeld bounds the files followed at once: opens by the thousand must
// not make famids hold more.
const maxHeld = 4096

// loopsOn returns the loop devices whose backing file is path
// (/sys/block/loopN/loop/backing_file, the path the file had when the
// device was set up), as /dev/loopN. A loop device holds its file open for
// writing, and writes to it send no event.
func loopsOn(path string) []string {
	files, _ := filepath.Glob("/sys/block/loop*/loop/backing_file")
	var devs []string
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err == nil && strings.TrimSuffix(string(data), "\n") == path {
			devs = append(devs, "/dev/"+filepath.Base(filepath.Dir(filepath.Dir(f))))
		}
	}
	return devs
}

// A held is what famids knows of whether a file is held open for writing.
type held struct {
	probing bool      // a probe is out
	writer  bool      // the last probe found a writer
	again   bool      // opened again since the last probe began
	next    time.Time // when to probe again (writer, or again), or compare
}

// writers follow the watched regular files that may be held open for
// writing. Only the event loop's goroutine touches them.
type writers struct {
	files map[string]*held // by path
	loops map[string]bool  // the loop devices told of, each with its file: "DEV PATH"
}

// opened says path was opened by another process at now; it reports
// whether to probe it now.
func (ws *writers) opened(path string, now time.Time) bool {
	h := ws.files[path]
	if h == nil {
		if len(ws.files) >= maxHeld {
			return false
		}
		h = &held{}
		ws.files[path] = h
	}
	if h.probing || h.writer || now.Before(h.next) {
		h.again = true // probed once the one out, or the gap, is over
		return false
	}
	h.probing = true
	return true
}

// probed takes in a probe of path that ended at now: writer says someone
// holds it open for writing.
func (ws *writers) probed(path string, writer bool, now time.Time) {
	h := ws.files[path]
	if h == nil {
		return
	}
	h.probing, h.writer = false, writer
	switch {
	case writer:
		h.next = now.Add(heldEvery)
	case h.again:
		h.next = now.Add(probeGap)
	default:
		delete(ws.files, path)
	}
}

// due returns the paths to compare (held open for writing when last
// asked) and to probe by now, and takes them out of the schedule.
func (ws *writers) due(now time.Time) (compare, probe []string) {
	for p, h := range ws.files {
		if h.probing || now.Before(h.next) {
			continue
		}
		if h.writer {
			compare = append(compare, p)
		}
		if h.writer || h.again {
			h.again, h.probing = false, true
			probe = append(probe, p)
		}
	}
	return compare, probe
}

// next returns when a file is next compared or probed, or zero.
func (ws *writers) next() time.Time {
	var next time.Time
	for _, h := range ws.files {
		if !h.probing && (h.writer || h.again) {
			next = earliest(next, h.next)
		}
	}
	return next
}

// newLoop reports whether the loop device dev on path is news: told of
// once a run.
func (ws *writers) newLoop(dev, path string) bool {
	k := dev + " " + path
	if ws.loops[k] {
		return false
	}
	if ws.loops == nil {
		ws.loops = make(map[string]bool)
	}
	ws.loops[k] = true
	return true
}

// forget stops following path: it is no longer watched.
func (ws *writers) forget(path string) { delete(ws.files, path) }

// heldForWriting reports whether some process holds the regular file path
// open for writing: the kernel refuses a read lease while one does
// (fcntl(2), F_SETLEASE). The lease, when granted, is let go at once. It
// runs in a job: opening the file may wait. A file that cannot be opened
// any more (gone, replaced by another kind) has no writer to follow; err
// says the kernel cannot tell (no leases on its file system).
func heldForWriting(path string) (writer bool, err error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOFOLLOW|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return false, nil
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		return false, nil
	}
	_, err = unix.FcntlInt(uintptr(fd), unix.F_SETLEASE, unix.F_RDLCK)
	switch {
	case err == nil:
		unix.FcntlInt(uintptr(fd), unix.F_SETLEASE, unix.F_UNLCK)
		return false, nil
	case errors.Is(err, unix.EAGAIN), errors.Is(err, unix.EBUSY):
		return true, nil
	}
	return false, fmt.Errorf("%s: cannot tell whether it is held open for writing (a write that sends no event is found only at verification): fcntl F_SETLEASE: %w", quoteIfNeeded(path), err)
}
