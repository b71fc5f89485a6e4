package main

// Reading inotify events (inotify(7)): decoding a read of struct
// inotify_event records, and pausing between reads in a storm.

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// An event is one inotify event.
type event struct {
	wd     int
	mask   uint32
	cookie uint32
	name   string
}

// parseEvents decodes the inotify events in buf.
func parseEvents(buf []byte, evs []event) ([]event, error) {
	evs = evs[:0]
	all := string(buf) // one allocation for every name of the batch
	for off := 0; off < len(buf); {
		if len(buf)-off < unix.SizeofInotifyEvent {
			return evs, fmt.Errorf("short inotify event: %d bytes", len(buf)-off)
		}
		raw := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
		end := off + unix.SizeofInotifyEvent + int(raw.Len)
		if end > len(buf) {
			return evs, fmt.Errorf("inotify event name runs past the buffer")
		}
		name := all[off+unix.SizeofInotifyEvent : end]
		if i := strings.IndexByte(name, 0); i >= 0 {
			name = name[:i]
		}
		evs = append(evs, event{wd: int(raw.Wd), mask: raw.Mask, cookie: raw.Cookie, name: name})
		off = end
	}
	return evs, nil
}

// A storm is events arriving faster than famids reads them one at a time:
// stormReads reads in a row, each closer than stormGap to the one before,
// that bring stormMinEvents events or more. One change sends up to three
// events (IN_MODIFY, IN_ATTRIB, IN_CLOSE_WRITE), which reads made at once
// take one at a time, and an editor saving a file a dozen (its swap file
// made, written and removed): that is no storm, and famids reads on at
// once, while the process that made the change can still be looked up
// (see by.go). In a storm, famids pauses between reads to let about
// stormBatch events pile up in the kernel's queue (a sixteenth of its
// default size), for a read costs far more than an event does; the pause
// is never longer than maxPause. A lone change is read at once.
const (
	stormGap       = time.Millisecond
	stormReads     = 4
	stormMinEvents = 64
	stormBatch     = 1000
	maxPause       = 20 * time.Millisecond
)

// stormPause returns how long to wait before the next read when n events
// came in the time since the previous read, or 0 outside a storm; quick
// says the reads before came in quick succession.
func stormPause(n int, since time.Duration, storm, quick bool) time.Duration {
	if !(since < stormGap && quick || storm && n > 1) {
		return 0
	}
	pause := since * stormBatch / time.Duration(max(n, 1))
	return min(pause, maxPause)
}

// An eventReader reads events for the loop: it pauses between reads in a
// storm, and gives a read that failed one more chance, retry later, as the
// Perl script gave its FAM server.
type eventReader struct {
	src   io.Reader // reads what is queued, without waiting
	retry time.Duration
	buf   []byte
	evs   []event // what read returns, reused: the loop is done with it by the next read

	last   time.Time     // when the last read returned
	lastN  int           // the events it returned
	quick  int           // reads in a row closer than stormGap to the one before
	quickN int           // the events those reads brought
	pause  time.Duration // the storm's pause after it; 0 outside a storm
	failed time.Time     // when the last read failed; zero when it did not
}

// waiting reports whether the loop should wait for events to read: not
// during a storm's pause, nor after a failure.
func (r *eventReader) waiting(now time.Time) bool {
	return r.failed.IsZero() && !now.Before(r.last.Add(r.pause))
}

// pauseLeft returns how much of a storm's pause is left.
func (r *eventReader) pauseLeft(now time.Time) time.Duration {
	if !r.failed.IsZero() {
		return 0
	}
	return max(r.last.Add(r.pause).Sub(now), 0)
}

// resumeAt returns when the reader wants to be asked again: the end of a
// storm's pause or the time to retry a failed read; or the zero time when
// it waits for events.
func (r *eventReader) resumeAt(now time.Time) time.Time {
	switch {
	case !r.failed.IsZero():
		return r.failed.Add(r.retry)
	case r.pauseLeft(now) > 0:
		return r.last.Add(r.pause)
	}
	return time.Time{}
}

// calm reports whether the last read was no part of a storm.
func (r *eventReader) calm() bool {
	return r.pause == 0 && r.lastN < quietAfter
}

// retrying reports whether it is time to try a failed read again.
func (r *eventReader) retrying(now time.Time) bool {
	return !r.failed.IsZero() && !now.Before(r.failed.Add(r.retry))
}

// read reads the events queued. A failure is reported on standard error
// and tried again after r.retry; a second one in a row is the error.
func (r *eventReader) read(now time.Time) ([]event, error) {
	n, err := r.src.Read(r.buf)
	var evs []event
	if err == nil {
		evs, err = parseEvents(r.buf[:n], r.evs)
		r.evs = evs
	}
	if err != nil {
		if !r.failed.IsZero() {
			return nil, fmt.Errorf("reading inotify events: %w", err)
		}
		r.failed = now
		fmt.Fprintf(os.Stderr, "famids: reading inotify events: %v; trying again in %v\n", err, r.retry)
		return evs, nil
	}
	r.failed = time.Time{}
	r.lastN = len(evs)
	if n > 0 {
		since := now.Sub(r.last)
		if since < stormGap {
			r.quick++
			r.quickN += len(evs)
		} else {
			r.quick, r.quickN = 0, len(evs)
		}
		r.pause = stormPause(len(evs), since, r.pause > 0, r.quick >= stormReads-1 && r.quickN >= stormMinEvents)
		if n > len(r.buf)/2 {
			r.pause = 0 // more is waiting
		}
		r.last = now
	}
	return evs, nil
}

// queued returns the events waiting in the queue, without waiting for
// more.
func (w *watcher) queued() ([]event, error) {
	var all []event
	buf := make([]byte, 64*1024)
	for {
		n, err := w.Read(buf)
		if n == 0 || err != nil {
			return all, err
		}
		evs, err := parseEvents(buf[:n], nil)
		all = append(all, evs...)
		if err != nil {
			return all, err
		}
	}
}
