package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A journal cut at any byte, as by a crash in the middle of a batch,
// gives back every batch written whole before the cut, and nothing of
// the batch cut short.
func TestJournalCutAnywhere(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "state.json.journal")
	rec := func(size int64) attrs {
		return attrs{Exists: true, Type: "file", Mode: 0o644, Size: size, Mtime: time.Unix(1700000000, 5).UTC(), Ctime: time.Unix(1700000000, 5).UTC(), SHA256: strings.Repeat("ab", 32)}
	}
	j := journal{file: file, of: "snap1"}
	batches := [][]string{{"/etc/a", "/etc/b"}, {"/etc/a"}, {"/etc/b", "/etc/c\nodd"}}
	values := []map[string]attrs{
		{"/etc/a": rec(1), "/etc/b": rec(2)},
		{"/etc/a": rec(3)},
		{"/etc/c\nodd": rec(4)}, // b removed
	}
	var ends []int64
	for i, paths := range batches {
		get := func(p string) (attrs, bool) { a, ok := values[i][p]; return a, ok }
		must(t, j.appendBatch(paths, get, time.Unix(1700000100+int64(i), 0)))
		ends = append(ends, j.size)
	}
	j.close()
	whole, err := os.ReadFile(file)
	must(t, err)
	want := []map[string]attrs{
		{"/etc/x": rec(9)},
		{"/etc/x": rec(9), "/etc/a": rec(1), "/etc/b": rec(2)},
		{"/etc/x": rec(9), "/etc/a": rec(3), "/etc/b": rec(2)},
		{"/etc/x": rec(9), "/etc/a": rec(3), "/etc/c\nodd": rec(4)},
	}
	for cut := 0; cut <= len(whole); cut++ {
		must(t, os.WriteFile(file, whole[:cut], 0o600))
		s := &state{ID: "snap1", Records: recordMap{"/etc/x": rec(9)}}
		n, err := replayJournal(s, file)
		if err != nil {
			t.Fatalf("cut at %d: %v", cut, err)
		}
		whole := 0
		for _, end := range ends {
			if int64(cut) >= end {
				whole++
			}
		}
		if n != whole {
			t.Fatalf("cut at %d: %d batches applied, want %d", cut, n, whole)
		}
		if fmt.Sprint(recordsMap(s.Records)) != fmt.Sprint(want[whole]) {
			t.Fatalf("cut at %d: records %v, want %v", cut, recordsMap(s.Records), want[whole])
		}
	}
	// The journal of another snapshot is not read; a line famids does not
	// write stops the reading, the batches before it kept.
	must(t, os.WriteFile(file, whole, 0o600))
	s := &state{ID: "snap2", Records: recordMap{}}
	if n, err := replayJournal(s, file); n != 0 || err != nil || s.Records.len() != 0 {
		t.Errorf("another snapshot's journal: %d batches, %v, records %v", n, err, recordsMap(s.Records))
	}
	damaged := append(whole[:ends[0]:ends[0]], []byte("{\"path\":3}\n")...)
	must(t, os.WriteFile(file, damaged, 0o600))
	s = &state{ID: "snap1", Records: recordMap{}}
	if n, err := replayJournal(s, file); n != 1 || err == nil || s.Records.len() != 2 {
		t.Errorf("a damaged journal: %d batches, %v, records %v", n, err, recordsMap(s.Records))
	}
}

// A journal's record of a path famids never writes (not absolute, or not
// clean) stops the reading, as any damage does: it names no entry, and it
// would be reported at every start. So does a state file's.
func TestJournalRefusesPathsFamidsNeverWrites(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "state.json.journal")
	rec := `{"exists":true,"type":"file","mode":420,"size":1,"mtime":"2026-11-25T08:00:00Z","ctime":"2026-11-25T08:00:00Z","inode":5,"links":1,"dev":2}`
	for _, p := range []string{"/d/./g", "/d//a", "/d/a/", "d/a", "/d/../etc/shadow", "", "/d/f\x00x"} {
		body := `{"journal":1,"of":"snap1"}` + "\n" + `{"path":"/d/ok","record":` + rec + "}\n" + `{"saved":"2026-11-25T09:00:00Z"}` + "\n" +
			`{"path":` + fmt.Sprintf("%q", p) + `,"record":` + rec + "}\n" + `{"saved":"2026-11-25T09:00:01Z"}` + "\n"
		must(t, os.WriteFile(file, []byte(body), 0o600))
		s := &state{ID: "snap1", Records: recordMap{}}
		n, err := replayJournal(s, file)
		if n != 1 || err == nil || s.Records.len() != 1 || s.Records.has(p) {
			t.Errorf("a journal's record of %q: %d batches, %v, records %v", p, n, err, recordsMap(s.Records))
		}
		state := filepath.Join(dir, "state.json")
		writeFile(t, state, `{"version":2,"pid":3,"watched":{"/d/**":null},"records":{`+fmt.Sprintf("%q", p)+`:`+rec+`}}`)
		if _, err := loadState(state); err == nil {
			t.Errorf("a state file's record of %q is read", p)
		}
	}
}

// A journal far larger than famids writes beside its state file is read
// only so far: a file of gigabytes must not take gigabytes of memory.
func TestJournalReadIsBounded(t *testing.T) {
	file := filepath.Join(t.TempDir(), "state.json.journal")
	f, err := os.Create(file)
	must(t, err)
	w := bufio.NewWriter(f)
	fmt.Fprintf(w, "{\"journal\":1,\"of\":\"snap1\"}\n{\"path\":\"/d/first\"}\n{\"saved\":\"2026-11-25T09:00:00Z\"}\n")
	pad := strings.Repeat("x", 4000) // fewer lines to read
	for i := range int(maxJournalRead(0)/4000 + 10) {
		fmt.Fprintf(w, "{\"path\":\"/d/%s%08d\"}\n", pad, i)
	}
	fmt.Fprintf(w, "{\"saved\":\"2026-11-25T09:00:01Z\"}\n")
	must(t, w.Flush())
	must(t, f.Close())
	s := &state{ID: "snap1", size: 1000, Records: recordMap{"/d/first": {Exists: true, Type: "file"}, "/d/00000001": {Exists: true, Type: "file"}}}
	n, err := replayJournal(s, file)
	if n != 1 || err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("a journal of %d MiB beside a state file of 1000 bytes: %d batches, %v", maxJournalRead(0)>>20, n, err)
	}
	if s.Records.has("/d/first") || !s.Records.has("/d/00000001") {
		t.Errorf("records after the journal: %v; want the first batch applied, not the one past the bound", recordsMap(s.Records))
	}
}

// After a report, only what changed is written, to the journal: the
// state file stays as it was. A famids killed then finds at its next
// start the record the journal holds, and what changed since.
func TestJournalSavesWhatChanged(t *testing.T) {
	tree := t.TempDir()
	for i := range 50 {
		d := filepath.Join(tree, fmt.Sprintf("d%02d", i))
		must(t, os.Mkdir(d, 0o755))
		for j := range 40 {
			writeFile(t, filepath.Join(d, fmt.Sprintf("f%02d", j)), strings.Repeat("x", j))
		}
	}
	r := startFamids(t, tree+"/**\n")
	snapshot := func() (int64, uint64) {
		var st syscall.Stat_t
		must(t, syscall.Stat(r.state, &st))
		return st.Size, st.Ino
	}
	size, ino := snapshot()
	f := filepath.Join(tree, "d07", "f03")
	writeFile(t, f, "changed")
	r.waitEvent(f, "change")
	jf := journalFile(r.state)
	deadline := time.Now().Add(waitFor)
	for {
		if data, err := os.ReadFile(jf); err == nil && strings.Contains(string(data), `"saved"`) {
			if len(data) > 4096 {
				t.Errorf("the journal holds %d bytes after one change, want about one record's", len(data))
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no batch in %s within %v", jf, waitFor)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if s, i := snapshot(); s != size || i != ino {
		t.Errorf("the state file (%d bytes) was written again after one change", size)
	}
	r.stop(syscall.SIGKILL)
	other := filepath.Join(tree, "d40", "f10")
	writeFile(t, other, "while stopped")
	n := r.restart()
	r.waitEvent(other, "change")
	last := filepath.Join(tree, "d49", "f39")
	writeFile(t, last, "after the restart")
	r.waitEvent(last, "change")
	for _, m := range r.mails()[n:] {
		if field(m.Body, "Pathname") == f {
			t.Errorf("the change recorded in the journal was reported again:\n%s", m)
		}
	}
	// Stopped cleanly, famids writes the whole state, and no journal.
	r.stop(syscall.SIGTERM)
	if _, err := os.Stat(jf); !os.IsNotExist(err) {
		t.Errorf("a journal is left after a clean stop: %v", err)
	}
	if rec := r.readStateFile().recordOf(other); rec.Size != int64(len("while stopped")) {
		t.Errorf("the state file's record of %s: %+v", other, rec)
	}
}

// A restart after a clean stop, with the same entries, journals after the
// snapshot it read instead of writing it again; a crash of that run is
// still told at the next start, and what the run recorded is kept.
func TestRestartJournalsAfterTheSnapshotRead(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "f")
	writeFile(t, f, "x")
	r := startFamids(t, dir+"\n")
	r.stop(syscall.SIGTERM)
	var before syscall.Stat_t
	must(t, syscall.Stat(r.state, &before))
	id := r.readStateFile().ID

	writeFile(t, f, "changed while stopped")
	n := r.restart()
	r.waitEvent(f, "change")
	for deadline := time.Now().Add(waitFor); ; time.Sleep(20 * time.Millisecond) {
		s := r.readStateFile()
		if s.ID != id {
			t.Fatalf("state after the restart: snapshot %q, want %q", s.ID, id)
		}
		if s.recordOf(f).Size == int64(len("changed while stopped")) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the record of f is not saved within %v: %+v", waitFor, s.recordOf(f))
		}
	}
	var after syscall.Stat_t
	must(t, syscall.Stat(r.state, &after))
	if after.Ino != before.Ino || after.Size != before.Size {
		t.Errorf("the state file was written again at a restart with the same entries")
	}
	// The lock's mark removed, as an intruder would, the kill is still
	// told: the journal says a run wrote it.
	must(t, os.Remove(r.state+".lock"))
	r.stop(syscall.SIGKILL)
	n = r.restart()
	r.waitMail("notice of the unclean stop", func(m mail) bool {
		return m.Subject == subjectNotice && strings.Contains(m.Body, "did not stop cleanly")
	})
	for _, m := range r.mails()[n:] {
		if field(m.Body, "Pathname") == f {
			t.Errorf("the change recorded in the journal was reported again:\n%s", m)
		}
	}
	// Another configuration: a snapshot of its own at once.
	r.stop(syscall.SIGTERM)
	g := filepath.Join(dir, "g")
	writeFile(t, r.conf, dir+"\n"+g+"\n")
	r.restart()
	if s := r.readStateFile(); s.ID == id || !s.watched(g) {
		t.Errorf("a restart with other entries kept the old snapshot: %q, watched %v", s.ID, s.Watched)
	}
}

// famids killed at any moment while it saves, after a report or at a
// start-up, starts again on a baseline it can use: never a damaged state,
// and every change made is reported, before the kill or at the restart.
func TestKillDuringSavesLosesNothing(t *testing.T) {
	tree := t.TempDir()
	for i := range 20 {
		d := filepath.Join(tree, fmt.Sprintf("d%02d", i))
		must(t, os.Mkdir(d, 0o755))
		for j := range 50 {
			writeFile(t, filepath.Join(d, fmt.Sprintf("f%02d", j)), "x")
		}
	}
	r := startFamids(t, tree+"/**\n", "-max-mails", "100000")
	for round := range 8 {
		f := filepath.Join(tree, fmt.Sprintf("d%02d", round), "f07")
		appendFile(t, f, fmt.Sprintf("round %d\n", round))
		// Kill it somewhere between the event and the end of its save.
		time.Sleep(time.Duration(round*7) * time.Millisecond)
		r.stop(syscall.SIGKILL)
		n := r.restart("-max-mails", "100000")
		r.waitMail(fmt.Sprintf("round %d: the report of %s, or its finding at the restart", round, f), func(m mail) bool {
			return m.Subject == subjectReport && field(m.Body, "Pathname") == f && strings.Contains(field(m.Body, "Differs"), "sha256")
		})
		for _, m := range r.mails()[n:] {
			if m.Subject == subjectNotice && (strings.Contains(m.Body, "damaged") || strings.Contains(m.Body, "cannot be used")) {
				t.Fatalf("round %d: %s", round, m.Body)
			}
		}
	}
}
