package main

// The state's journal: after a report, only the records that changed are
// written, appended to FILE.journal, rather than the whole state file
// again (some 50 MB for 150,000 records). The state file is a snapshot;
// the journal names the snapshot it follows, and holds batches of
// records, each closed by a line of its own: a batch cut short by a crash
// is not read. Once the journal grows past half the snapshot, or famids
// stops, or the entries change, a new snapshot is written and the journal
// begun again.
//
// Each line is one JSON object:
//
//	{"journal":1,"of":"ID"}                 the first: the snapshot's id
//	{"path":"P","record":{...}}             P's record, as the state file writes it
//	{"path":"P"}                            P has no record any more
//	{"running":PID}                         the run PID writes this journal: it has not stopped cleanly
//	{"saved":"2026-12-03T12:00:00Z"}        the end of a batch, and when it was written

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"golang.org/x/sys/unix"
)

// journalVersion is the format of the journal's lines.
const journalVersion = 1

// maxJournalLine bounds a line famids reads back: a record holds at most
// a path and extended attributes, far less than this.
const maxJournalLine = 16 << 20

// maxJournalRead returns how much of a journal famids reads beside a
// state file of snap bytes: famids writes a new snapshot once its
// journal passes half the snapshot (or minJournalRewrite), so with the
// batch that passes it, twice the snapshot and 64 MiB are more than it
// ever writes. Past that, the file is not famids's doing, and reading it
// all could take gigabytes.
func maxJournalRead(snap int64) int64 { return max(64<<20, 2*snap) }

// minJournalRewrite is the size under which a journal never makes famids
// write a new snapshot.
const minJournalRewrite = 4 << 20

// A journal is the file the records changed since the last snapshot are
// appended to.
type journal struct {
	file string   // FILE.journal
	of   string   // the id of the snapshot it follows; "" until one is written
	f    *os.File // open for appending, once begun
	size int64    // bytes in it
	snap int64    // bytes in the snapshot it follows
	told bool     // this run's running line is in it
}

// newSnapshotID returns a new id for a snapshot.
func newSnapshotID() string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// full reports whether the journal has grown enough that a new snapshot
// costs less than reading it back.
// With n more records in a batch (some 256 bytes each), it would be.
func (j *journal) full(n int) bool {
	return j.size+int64(n)*256 > max(minJournalRewrite, j.snap/2)
}

// restart drops the journal once a snapshot of size bytes, id, holds
// everything it held.
func (j *journal) restart(id string, size int64) {
	if j.f != nil {
		j.f.Close()
		j.f = nil
	}
	os.Remove(j.file)
	j.of, j.size, j.snap = id, 0, size
}

// close closes the journal's file.
func (j *journal) close() {
	if j.f != nil {
		j.f.Close()
		j.f = nil
	}
}

// appendBatch appends the records of paths, as get gives them (a false
// ok: no record), as one batch, and syncs it.
func (j *journal) appendBatch(paths []string, get func(path string) (attrs, bool), now time.Time) error {
	if j.of == "" {
		return errors.New("no snapshot to follow")
	}
	var b []byte
	if j.f == nil {
		f, _, err := openOwn(j.file, os.O_WRONLY|os.O_APPEND)
		if err != nil {
			return err
		}
		if err := f.Truncate(0); err != nil {
			f.Close()
			return err
		}
		j.f, j.size = f, 0
		b = fmt.Appendf(b, `{"journal":%d,"of":`, journalVersion)
		b = appendJSONString(b, j.of)
		b = append(b, "}\n"...)
	}
	if !j.told {
		b = fmt.Appendf(b, "{\"running\":%d}\n", os.Getpid())
	}
	for _, p := range paths {
		b = append(b, `{"path":`...)
		b = appendJSONString(b, encodeExact(p))
		if a, ok := get(p); ok {
			b = append(b, `,"record":`...)
			b = a.appendJSON(b)
		}
		b = append(b, "}\n"...)
	}
	b = append(b, `{"saved":`...)
	b = appendJSONString(b, now.UTC().Format(time.RFC3339Nano))
	b = append(b, "}\n"...)
	if _, err := j.f.Write(b); err != nil {
		return fmt.Errorf("%s: %w", quoteIfNeeded(j.file), err)
	}
	j.size += int64(len(b))
	if err := unix.Fdatasync(int(j.f.Fd())); err != nil {
		return fmt.Errorf("%s: %w", quoteIfNeeded(j.file), err)
	}
	j.told = true
	return nil
}

// A journalLine is one line of a journal, as read back.
type journalLine struct {
	Journal int             `json:"journal"`
	Of      string          `json:"of"`
	Path    *string         `json:"path"`
	Record  json.RawMessage `json:"record"`
	Saved   time.Time       `json:"saved"`
	Running int             `json:"running"`
}

// replayJournal applies to s, read from its state file, the batches of
// the journal file that follows it: each whole batch, in order. A journal
// of another snapshot (left by a crash while a new one was written) is
// not read. It returns how many batches it applied, and an error for a
// line that is not as famids writes it: the batches before it are
// applied, and the rest is not read.
func replayJournal(s *state, file string) (batches int, err error) {
	f, err := os.OpenFile(file, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return 0, fmt.Errorf("%s: not a regular file", quoteIfNeeded(file))
	}
	limit := maxJournalRead(s.size)
	r := bufio.NewReaderSize(io.LimitReader(f, limit), 64<<10)
	type change struct {
		path string
		rec  *attrs
	}
	var batch []change
	running := 0 // the pid of a running line of the batch
	for n := 1; ; n++ {
		line, err := readLine(r)
		if err == io.EOF && fi.Size() > limit {
			return batches, fmt.Errorf("%s: larger than the %d bytes famids reads beside a state file of %d: what follows is not read", quoteIfNeeded(file), limit, s.size)
		}
		if err == io.EOF {
			return batches, nil // a batch cut short, or none: not read
		}
		if err != nil {
			return batches, fmt.Errorf("%s: line %d: %w", quoteIfNeeded(file), n, err)
		}
		var l journalLine
		if err := json.Unmarshal(line, &l); err != nil {
			return batches, fmt.Errorf("%s: line %d: %w", quoteIfNeeded(file), n, err)
		}
		switch {
		case n == 1:
			if l.Journal != journalVersion {
				return 0, fmt.Errorf("%s: not a journal of version %d", quoteIfNeeded(file), journalVersion)
			}
			if l.Of != s.ID || s.ID == "" {
				return 0, nil // another snapshot's
			}
		case l.Path != nil:
			p, err := decodePath(*l.Path)
			if err != nil {
				return batches, fmt.Errorf("%s: line %d: %w", quoteIfNeeded(file), n, err)
			}
			c := change{path: p}
			if l.Record != nil {
				c.rec = new(attrs)
				if err := json.Unmarshal(l.Record, c.rec); err != nil {
					return batches, fmt.Errorf("%s: line %d: %w", quoteIfNeeded(file), n, err)
				}
			}
			batch = append(batch, c)
		case l.Running > 0:
			running = l.Running
		case !l.Saved.IsZero():
			if running > 0 {
				// A run journalled after a clean stop's snapshot: until
				// it writes its own, it has not stopped cleanly, whatever
				// became of the lock's mark.
				s.Clean, s.PID, s.Error, running = false, running, "", 0
			}
			for _, c := range batch {
				if c.rec != nil {
					s.Records.put(c.path, *c.rec)
				} else {
					s.Records.remove(c.path)
				}
			}
			batch = batch[:0]
			s.Saved = l.Saved
			batches++
		default:
			return batches, fmt.Errorf("%s: line %d: not a line of a journal", quoteIfNeeded(file), n)
		}
	}
}

// readLine reads one line ended by a newline, without it; io.EOF for a
// last line without one (cut short).
func readLine(r *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		chunk, err := r.ReadSlice('\n')
		line = append(line, chunk...)
		switch {
		case err == nil:
			return line[:len(line)-1], nil
		case errors.Is(err, bufio.ErrBufferFull):
			if len(line) > maxJournalLine {
				return nil, fmt.Errorf("a line over %d MiB", maxJournalLine>>20)
			}
		default:
			return nil, err
		}
	}
}

// touchedPaths returns the paths of touched, in byte order.
func touchedPaths(touched map[string]struct{}) []string {
	ps := make([]string, 0, len(touched))
	for p := range touched {
		ps = append(ps, p)
	}
	slices.Sort(ps)
	return ps
}
