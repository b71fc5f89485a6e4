package main

// Unit tests of decoding and reading inotify events.

import (
	"bytes"
	"encoding/binary"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// rawEvent encodes one inotify event as the kernel does, its name (if any)
// padded with NULs to padTo bytes.
func rawEvent(wd int32, mask, cookie uint32, name string, padTo int) []byte {
	nameLen := 0
	if name != "" {
		nameLen = max(len(name)+1, padTo)
	}
	b := make([]byte, unix.SizeofInotifyEvent+nameLen)
	binary.NativeEndian.PutUint32(b[0:], uint32(wd))
	binary.NativeEndian.PutUint32(b[4:], mask)
	binary.NativeEndian.PutUint32(b[8:], cookie)
	binary.NativeEndian.PutUint32(b[12:], uint32(nameLen))
	copy(b[unix.SizeofInotifyEvent:], name)
	return b
}

func TestParseEvents(t *testing.T) {
	// Two events as the kernel lays them out: names padded to 16 bytes,
	// so that each event starts aligned.
	buf := append(rawEvent(3, unix.IN_MODIFY, 0, "", 0), rawEvent(7, unix.IN_MOVED_FROM, 42, "passwd", 16)...)
	buf = append(buf, rawEvent(-1, unix.IN_Q_OVERFLOW, 0, "", 0)...)
	// Copy into an aligned buffer, as the kernel's reads are.
	aligned := make([]byte, len(buf), 4096)
	copy(aligned, buf)
	evs, err := parseEvents(aligned, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []event{
		{wd: 3, mask: unix.IN_MODIFY},
		{wd: 7, mask: unix.IN_MOVED_FROM, cookie: 42, name: "passwd"},
		{wd: -1, mask: unix.IN_Q_OVERFLOW},
	}
	if !slices.Equal(evs, want) {
		t.Errorf("parseEvents = %+v, want %+v", evs, want)
	}
	if evs, err := parseEvents(nil, nil); err != nil || len(evs) != 0 {
		t.Errorf("parseEvents(nil, nil) = %v, %v; want nothing", evs, err)
	}
}

func TestParseEventsTruncated(t *testing.T) {
	full := make([]byte, 0, 4096)
	full = append(full, rawEvent(3, unix.IN_MODIFY, 0, "", 0)...)
	full = append(full, rawEvent(7, unix.IN_CREATE, 0, "shadow", 16)...)
	first := []event{{wd: 3, mask: unix.IN_MODIFY}}
	for _, n := range []int{
		unix.SizeofInotifyEvent + 5,        // the second header cut short
		unix.SizeofInotifyEvent*2 + 4,      // the second name cut short
		unix.SizeofInotifyEvent*2 + 16 - 1, // one byte short
	} {
		evs, err := parseEvents(full[:n], nil)
		if err == nil {
			t.Errorf("parseEvents of %d of %d bytes: no error", n, len(full))
		}
		if !slices.Equal(evs, first) {
			t.Errorf("parseEvents of %d of %d bytes = %+v, want the whole first event %+v", n, len(full), evs, first)
		}
	}
	if _, err := parseEvents(full[:3], nil); err == nil {
		t.Error("parseEvents of 3 bytes: no error")
	}
}

// A fakeReader returns its results in turn, then nothing.
type fakeReader struct {
	results []fakeRead
	reads   int
}

type fakeRead struct {
	data []byte
	err  error
}

func (f *fakeReader) Read(p []byte) (int, error) {
	f.reads++
	if len(f.results) == 0 {
		return 0, nil
	}
	r := f.results[0]
	f.results = f.results[1:]
	return copy(p, r.data), r.err
}

func TestEventReaderRetry(t *testing.T) {
	batch := rawEvent(5, unix.IN_ATTRIB, 0, "hosts", 16)
	eio := &os.PathError{Op: "read", Path: "inotify", Err: syscall.EIO}
	tests := []struct {
		name    string
		reads   []fakeRead
		batches int
		wantErr string // "" for none
	}{
		{"nothing", nil, 0, ""},
		{"one failure, then data", []fakeRead{{err: eio}, {data: batch}}, 1, ""},
		{"failures apart", []fakeRead{{err: eio}, {data: batch}, {err: eio}, {data: batch}}, 2, ""},
		{"two failures in a row", []fakeRead{{err: eio}, {err: eio}, {data: batch}}, 0, "input/output error"},
		{"data, then two failures in a row", []fakeRead{{data: batch}, {err: eio}, {err: eio}}, 1, "input/output error"},
		{"garbage twice", []fakeRead{{data: []byte{1, 2, 3}}, {data: []byte{1, 2, 3}}}, 0, "short inotify event"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := &fakeReader{results: slices.Clone(tt.reads)}
			r := &eventReader{src: src, retry: 15 * time.Second, buf: make([]byte, 4096)}
			now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
			var batches int
			var err error
			var last time.Time // of the last read
			for range len(tt.reads) + 1 {
				if !r.waiting(now) {
					if r.retrying(now) {
						t.Errorf("a retry is due at once after a failure")
					}
					if at := r.resumeAt(now); !at.Equal(last.Add(r.retry)) {
						t.Errorf("after a failure, the reader wants to be asked at %v, want %v", at, last.Add(r.retry))
					}
					now = r.resumeAt(now) // the loop waits until then
					if !r.retrying(now) {
						t.Fatalf("no retry at %v", now)
					}
				}
				var evs []event
				evs, err = r.read(now)
				last = now
				if err != nil {
					break
				}
				if len(evs) > 0 {
					batches++
					if want := []event{{wd: 5, mask: unix.IN_ATTRIB, name: "hosts"}}; !slices.Equal(evs, want) {
						t.Errorf("batch %+v, want %+v", evs, want)
					}
				}
				now = now.Add(time.Second) // apart: no storm
			}
			if tt.wantErr == "" && err != nil {
				t.Errorf("read = %v, want nil", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "inotify")) {
				t.Errorf("read = %v, want an error that says what failed and %q", err, tt.wantErr)
			}
			if tt.name == "two failures in a row" && src.reads != 2 {
				t.Errorf("%d reads, want 2: it stops at the second failure", src.reads)
			}
			if batches != tt.batches {
				t.Errorf("%d batches, want %d", batches, tt.batches)
			}
		})
	}
}

func TestEventReaderStorm(t *testing.T) {
	one := rawEvent(5, unix.IN_CREATE, 0, "junk", 16)
	many := bytes.Repeat(one, 300)
	var results []fakeRead
	for range stormMinEvents {
		results = append(results, fakeRead{data: one})
	}
	src := &fakeReader{results: append(results, fakeRead{data: many}, fakeRead{data: one})}
	r := &eventReader{src: src, retry: time.Second, buf: make([]byte, 64<<10)}
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	r.read(now)
	if !r.waiting(now) {
		t.Fatal("a lone event makes the reader pause")
	}
	// One change (IN_MODIFY, IN_ATTRIB, IN_CLOSE_WRITE), or an editor's
	// save (a dozen events), each read at once: no storm.
	for range 12 {
		now = now.Add(50 * time.Microsecond)
		r.read(now)
		if !r.waiting(now) {
			t.Fatal("the events of one save make the reader pause")
		}
	}
	for range stormMinEvents - 13 {
		now = now.Add(50 * time.Microsecond)
		r.read(now)
	}
	if r.waiting(now) || r.pause <= 0 || r.pause > maxPause {
		t.Fatalf("in a storm (%d events read at once one by one), pause %v, want a pause up to %v", stormMinEvents, r.pause, maxPause)
	}
	now = r.resumeAt(now)
	r.read(now) // 300 events piled up: still a storm
	if r.pause <= 0 {
		t.Fatalf("after 300 events at once, no pause")
	}
	now = r.resumeAt(now).Add(time.Minute)
	r.read(now) // one, much later: over
	if r.pause != 0 || !r.waiting(now) {
		t.Errorf("after the storm, pause %v, want none", r.pause)
	}
}
