package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// heartbeatEvery is how often famids touches FILE.lock, whose mtime then
// tells, after a crash, when famids was last known alive.
const heartbeatEvery = time.Minute

// A stateKeeper keeps the state file of one famids: it holds a lock on it,
// so that a second famids started by hand cannot take it over, and knows
// whether the record changed since it was last saved.
type stateKeeper struct {
	file  string   // "" when no state is kept
	lock  *os.File // FILE.lock, flock'ed while famids runs
	dir   unix.Stat_t
	dirty bool

	// What FILE.lock told of the previous run: that there was one,
	// what it wrote there while it ran (cleared at a clean stop), and
	// when it last touched it.
	used  bool
	mark  string
	alive time.Time
}

// ownSuffixes make the names of the state keeper's files from FILE's.
var ownSuffixes = []string{"", ".tmp", ".lock", ".journal"}

// journalFile returns the name of the journal of the state file file.
func journalFile(file string) string { return file + ".journal" }

// owns reports whether path is one of the state keeper's own files, whose
// changes are famids's own doing and are never reported, whatever name the
// directory is reached by.
func (k *stateKeeper) owns(path string) bool {
	if k.file == "" {
		return false
	}
	base := filepath.Base(path)
	for _, suffix := range ownSuffixes {
		if base == filepath.Base(k.file)+suffix {
			var st unix.Stat_t
			return unix.Stat(filepath.Dir(path), &st) == nil && st.Dev == k.dir.Dev && st.Ino == k.dir.Ino
		}
	}
	return false
}

// errUntrustedDir is wrapped by open's error when the state directory is
// one famids must not write into; errNoStateDir when it cannot be made
// (famids run by a user, with the default -state).
var (
	errUntrustedDir = errors.New("the state directory cannot be trusted")
	errNoStateDir   = errors.New("the state directory cannot be made")
)

// open creates the state directory and locks the state file. On failure
// famids runs on without state. famids writes there as root: a directory
// that someone else owns or may write into (or one above it) is not used,
// for they could put a link or a file of their own in the place of the
// files famids writes.
func (k *stateKeeper) open() error {
	dir := filepath.Dir(k.file)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("%w: %w", errNoStateDir, err)
	}
	if err := unix.Stat(dir, &k.dir); err != nil {
		return fmt.Errorf("stat %s: %w", quoteIfNeeded(dir), err)
	}
	if why := untrustedStateDir(dir, &k.dir); why != "" {
		return fmt.Errorf("%w: %s", errUntrustedDir, why)
	}
	f, created, err := openOwn(k.file+".lock", unix.O_RDWR)
	if err != nil {
		return err
	}
	k.used = !created
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return fmt.Errorf("%s is in use by another famids", quoteIfNeeded(k.file))
		}
		return fmt.Errorf("lock %s.lock: %w", quoteIfNeeded(k.file), err)
	}
	k.lock = f
	if fi, err := f.Stat(); err == nil {
		k.alive = fi.ModTime()
	}
	if mark, err := io.ReadAll(io.LimitReader(f, 4096)); err == nil {
		k.mark = strings.TrimSpace(string(mark))
	}
	// Mark the state as a running famids's, before anything else: a kill
	// even during start-up is then seen by the next run.
	return k.setMark(fmt.Sprintf("pid %d running since %s", os.Getpid(), time.Now().UTC().Format(time.RFC3339)))
}

// untrustedStateDir returns why famids must not write into the state
// directory dir, which st describes, or "": it, and every directory above
// it by its name and by its real path, must be root's (or famids's user's)
// and, but for a sticky directory above it, not writable by group or
// others.
func untrustedStateDir(dir string, st *unix.Stat_t) string {
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return fmt.Sprintf("%s is not a directory", quoteIfNeeded(dir))
	}
	if !ownedByUs(st.Uid) || st.Mode&0o022 != 0 {
		return fmt.Sprintf("directory %s is owned by uid %d with mode %04o: it must be root's (or famids's user's) and not writable by group or others", quoteIfNeeded(dir), st.Uid, st.Mode&0o7777)
	}
	if why := untrustedDirs(dir); why != "" {
		return why
	}
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return fmt.Sprintf("cannot tell where %s leads: %s", quoteIfNeeded(dir), quoteIfNeeded(err.Error()))
	}
	return untrustedDirs(real)
}

// openOwn opens name, one of famids's own files, creating it when it is
// missing; it never follows a symbolic link (O_NOFOLLOW), and refuses a
// file that is not a plain file of its own: another name of a file (a
// hard link to /etc/shadow) or one someone else made. created says it
// was made now.
func openOwn(name string, flags int) (f *os.File, created bool, err error) {
	f, err = os.OpenFile(name, flags|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o600)
	if err == nil {
		return f, true, nil
	}
	if !errors.Is(err, os.ErrExist) {
		return nil, false, err
	}
	f, err = os.OpenFile(name, flags|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, false, fmt.Errorf("%s: %w", quoteIfNeeded(name), err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		f.Close()
		return nil, false, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Nlink != 1 || !ownedByUs(st.Uid) {
		f.Close()
		return nil, false, fmt.Errorf("%s is not a file of famids's own (a link, or another's): not used", quoteIfNeeded(name))
	}
	return f, false, nil
}

// markPID returns the pid in the previous run's mark, or 0.
func (k *stateKeeper) markPID() int {
	var pid int
	fmt.Sscanf(k.mark, "pid %d", &pid)
	return pid
}

// setMark writes what FILE.lock says while famids runs; "" at a clean stop.
func (k *stateKeeper) setMark(mark string) error {
	if err := k.lock.Truncate(0); err != nil {
		return err
	}
	if mark != "" {
		if _, err := k.lock.WriteAt([]byte(mark+"\n"), 0); err != nil {
			return err
		}
	}
	return k.lock.Sync()
}

func (k *stateKeeper) unlock() {
	if k.lock != nil {
		k.lock.Close()
		k.lock = nil
	}
}

// touch sets FILE.lock's mtime to now: famids is alive. It sets the
// times of the file it has open, whatever its name leads to now.
func (k *stateKeeper) touch() {
	if k.lock != nil {
		unix.UtimesNanoAt(unix.AT_FDCWD, fdPath(int(k.lock.Fd())), nil, 0)
	}
}

// stateVersion is the version of the state file's format. Version 1
// kept names as JSON strings, which cannot hold invalid UTF-8, and did not
// record flags and extended attributes: its records are read and compared
// for what they hold. A file of another version is rebuilt.
const stateVersion = 2

// A state is what famids keeps between runs: the attributes it last
// recorded of each watched path, and whether the run that wrote it stopped
// cleanly.
type state struct {
	Version int        `json:"version"`
	ID      string     `json:"id,omitempty"` // the snapshot's, which its journal names (journal.go)
	PID     int        `json:"pid"`
	Started time.Time  `json:"started"`
	Saved   time.Time  `json:"saved"`
	Clean   bool       `json:"clean"`           // written by a run that stopped cleanly
	Error   exact      `json:"error,omitempty"` // why that run stopped on its own
	Watched entryNames `json:"watched"`         // the entries
	Records records    `json:"-"`               // read last, one by one, and packed: there may be many

	legacy bool  // read from a file of version 1
	size   int64 // bytes of the state file it was read from
}

// entryNames are the entries of a configuration, by path, with their
// important names.
type entryNames map[string][]string

func namesOf(entries []*entry) entryNames {
	en := make(entryNames, len(entries))
	for _, e := range entries {
		en[e.line()] = e.Names
	}
	return en
}

// MarshalJSON writes every path and name byte for byte (see exact).
func (en entryNames) MarshalJSON() ([]byte, error) {
	m := make(map[string][]exact, len(en))
	for p, names := range en {
		var ns []exact
		for _, n := range names {
			ns = append(ns, exact(n))
		}
		m[encodeExact(p)] = ns
	}
	return json.Marshal(m)
}

func (en *entryNames) UnmarshalJSON(b []byte) error {
	var m map[string][]exact
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	*en = make(entryNames, len(m))
	for k, ns := range m {
		p, err := decodeExact(k)
		if err != nil {
			return err
		}
		names := make([]string, 0, len(ns))
		for _, n := range ns {
			names = append(names, string(n))
		}
		if len(names) == 0 {
			names = nil
		}
		(*en)[p] = names
	}
	return nil
}

// watched reports whether the run that wrote s watched path: as an entry,
// as an important name in an entry that is a directory, or in a tree
// (written DIR/**) that holds it.
func (s *state) watched(path string) bool {
	if _, ok := s.Watched[path]; ok {
		return true
	}
	name := filepath.Base(path)
	if names, ok := s.Watched[filepath.Dir(path)]; ok && (&entry{Names: names}).matches(name) {
		return true
	}
	if _, ok := s.Watched[treePath(path)]; ok {
		return true // a tree's root
	}
	for d := filepath.Dir(path); ; d = filepath.Dir(d) {
		if names, ok := s.Watched[treePath(d)]; ok && (&entry{Names: names}).matches(name) {
			return true
		}
		if d == "/" || d == "." {
			return false
		}
	}
}

// validType reports whether t is a type fileType gives.
func validType(t string) bool {
	switch t {
	case "file", "dir", "symlink", "fifo", "socket", "chardev", "blockdev", "unknown":
		return true
	}
	return false
}

// validDigest reports whether sha is what a record's SHA256 may hold: a
// hex SHA-256, or a word for none.
func validDigest(sha string) bool {
	switch sha {
	case "", digestUnreadable, digestPending:
		return true
	}
	if len(sha) != 2*sha256.Size {
		return false
	}
	for i := 0; i < len(sha); i++ {
		if !('0' <= sha[i] && sha[i] <= '9' || 'a' <= sha[i] && sha[i] <= 'f') {
			return false
		}
	}
	return true
}

// An exact is a string kept byte for byte in the state file. JSON strings
// hold only UTF-8, and a file name may be any bytes but NUL and '/': a
// string that is not valid UTF-8 is written as a NUL, which no name holds,
// followed by its bytes in base64.
type exact string

func (e exact) MarshalJSON() ([]byte, error) { return json.Marshal(encodeExact(string(e))) }

func (e *exact) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	d, err := decodeExact(s)
	*e = exact(d)
	return err
}

func encodeExact(s string) string {
	if utf8.ValidString(s) && !strings.HasPrefix(s, "\x00") {
		return s
	}
	return "\x00" + base64.StdEncoding.EncodeToString([]byte(s))
}

func decodeExact(s string) (string, error) {
	enc, ok := strings.CutPrefix(s, "\x00")
	if !ok {
		return s, nil
	}
	b, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		return "", fmt.Errorf("a name in base64: %w", err)
	}
	return string(b), nil
}

// decodePath decodes a record's path as decodeExact does, and refuses one
// famids never writes: a path that is not absolute and clean (T/./g,
// T//a, T/a/, or one with a NUL byte, which no path holds) names no entry, and a record of it would be reported at
// every start, never updated.
func decodePath(s string) (string, error) {
	p, err := decodeExact(s)
	if err != nil {
		return "", err
	}
	if !filepath.IsAbs(p) || filepath.Clean(p) != p || strings.IndexByte(p, 0) >= 0 {
		return "", fmt.Errorf("a record of the path %s, which famids never writes", quoteIfNeeded(p))
	}
	return p, nil
}

// recordJSON is attrs as the state file keeps them.
type recordJSON struct {
	Exists     bool      `json:"exists"`
	Type       string    `json:"type,omitempty"`
	Mode       uint32    `json:"mode,omitempty"`
	UID        uint32    `json:"uid,omitempty"`
	GID        uint32    `json:"gid,omitempty"`
	Size       int64     `json:"size,omitempty"`
	Mtime      time.Time `json:"mtime,omitzero"`
	Ctime      time.Time `json:"ctime,omitzero"`
	Inode      uint64    `json:"inode,omitempty"`
	Links      uint64    `json:"links,omitempty"`
	Dev        uint64    `json:"dev,omitempty"`
	SHA256     string    `json:"sha256,omitempty"`
	Flags      uint32    `json:"flags,omitempty"`
	Rdev       uint64    `json:"rdev,omitempty"`
	Partial    bool      `json:"partial,omitempty"`
	Link       exact     `json:"link,omitempty"`
	LinkOwner  exact     `json:"link_owner,omitempty"`
	LinkXattrs exact     `json:"link_xattrs,omitempty"`
	Real       exact     `json:"real,omitempty"`
	Caps       exact     `json:"caps,omitempty"`
	ACL        exact     `json:"acl,omitempty"`
	DefaultACL exact     `json:"default_acl,omitempty"`
	SELinux    exact     `json:"selinux,omitempty"`
	Xattrs     exact     `json:"xattrs,omitempty"`
	XattrsSum  exact     `json:"xattrs_sum,omitempty"`
}

func (a *attrs) UnmarshalJSON(b []byte) error {
	var r recordJSON
	if err := json.Unmarshal(b, &r); err != nil {
		return err
	}
	return r.attrs(a)
}

// attrs sets *a to the record r, as read, once it is checked.
func (r *recordJSON) attrs(a *attrs) error {
	// Only what famids writes: a record is shown in reports as it is.
	if r.Exists && !validType(r.Type) {
		return fmt.Errorf("a record of type %s", quoteIfNeeded(r.Type))
	}
	if !validDigest(r.SHA256) {
		return fmt.Errorf("a record of sha256 %s", quoteIfNeeded(r.SHA256))
	}
	*a = attrs{
		Exists: r.Exists, Type: r.Type, Mode: r.Mode, UID: r.UID, GID: r.GID, Size: r.Size,
		Mtime: r.Mtime.UTC(), Ctime: r.Ctime.UTC(), Inode: r.Inode, Links: r.Links, Dev: r.Dev, SHA256: r.SHA256, Flags: r.Flags,
		Rdev: r.Rdev, Partial: r.Partial,
	}
	x := extended{Link: string(r.Link), LinkOwner: string(r.LinkOwner), LinkXattrs: string(r.LinkXattrs), Real: string(r.Real),
		Caps: string(r.Caps), ACL: string(r.ACL), DefaultACL: string(r.DefaultACL),
		SELinux: string(r.SELinux), Xattrs: string(r.Xattrs), XattrsSum: string(r.XattrsSum)}
	if x != (extended{}) {
		a.Ext = &x
	}
	return nil
}

// loadState reads a state file. A missing file is not an error: it returns
// nil, nil. An unreadable, damaged or foreign file is an error.
func loadState(file string) (*state, error) {
	f, err := os.OpenFile(file, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", quoteIfNeeded(file))
	}
	s, err := decodeState(json.NewDecoder(bufio.NewReader(f)))
	if err != nil {
		return nil, fmt.Errorf("%s: damaged: %w", file, err)
	}
	s.size = fi.Size()
	switch s.Version {
	case stateVersion:
	case 1:
		s.fromVersion1()
	default:
		return nil, fmt.Errorf("%s: format version %d, this famids writes version %d", file, s.Version, stateVersion)
	}
	return s, nil
}

// fromVersion1 makes a state of version 1 one of this version: its
// records lack flags and extended attributes, and names that were not
// valid UTF-8 were written with U+FFFD in place of their bytes: those
// records name no path and are dropped, and the paths they stood for are
// recorded anew (see mangled).
func (s *state) fromVersion1() {
	for _, p := range s.Records.paths() {
		if strings.ContainsRune(p, utf8.RuneError) {
			s.Records.remove(p)
			continue
		}
		a, _ := s.Records.get(p)
		a.Partial = true
		s.Records.put(p, a)
	}
	s.Version = stateVersion
	s.legacy = true
}

// mangled reports whether path could not be kept by the state file s was
// read from: a version 1 file lost names that were not valid UTF-8.
func (s *state) mangled(path string) bool {
	return s.legacy && (!utf8.ValidString(path) || strings.ContainsRune(path, utf8.RuneError))
}

// decodeState reads a state as encodeState writes it, one record at a
// time, so that a large state is never held twice in memory.
func decodeState(dec *json.Decoder) (*state, error) {
	s := &state{Records: newPackedRecords()}
	if err := expectDelim(dec, '{'); err != nil {
		return nil, err
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		var field any
		switch tok {
		case "version":
			field = &s.Version
		case "id":
			field = &s.ID
		case "pid":
			field = &s.PID
		case "started":
			field = &s.Started
		case "saved":
			field = &s.Saved
		case "clean":
			field = &s.Clean
		case "error":
			field = &s.Error
		case "watched":
			field = &s.Watched
		case "records":
			if err := decodeRecords(dec, s.Records); err != nil {
				return nil, err
			}
			continue
		default:
			field = new(json.RawMessage) // from a later version
		}
		if err := dec.Decode(field); err != nil {
			return nil, err
		}
	}
	if err := expectDelim(dec, '}'); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("data after the state")
	}
	return s, nil
}

func decodeRecords(dec *json.Decoder, records records) error {
	if err := expectDelim(dec, '{'); err != nil {
		return err
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		// Into the record's own form at once: through attrs's
		// UnmarshalJSON, each record would be scanned twice.
		var r recordJSON
		var a attrs
		if err := dec.Decode(&r); err != nil {
			return err
		}
		if err := r.attrs(&a); err != nil {
			return err
		}
		p, err := decodePath(tok.(string)) // an object's keys are strings
		if err != nil {
			return err
		}
		records.put(p, a)
	}
	return expectDelim(dec, '}')
}

func expectDelim(dec *json.Decoder, want json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if tok != want {
		return fmt.Errorf("found %v where %v was expected", tok, want)
	}
	return nil
}

// encodeState writes s as JSON, with recs as its records: the header,
// then the records one by one, in the order of their paths.
func encodeState(w io.Writer, s *state, recs records) error {
	head, err := json.Marshal(s) // without the records
	if err != nil {
		return err
	}
	bw := bufio.NewWriter(w)
	bw.Write(head[:len(head)-1]) // open, for the records
	bw.WriteString(`,"records":{`)
	var b []byte
	first := true
	for p, a := range recs.all() {
		b = b[:0]
		if !first {
			b = append(b, ',')
		}
		first = false
		b = appendJSONString(b, encodeExact(p))
		b = append(b, ':')
		b = a.appendJSON(b)
		bw.Write(b)
	}
	bw.WriteString("}}\n")
	return bw.Flush()
}

// appendJSON appends a as the state file keeps it: the fields of
// recordJSON, those empty left out. It is attrs.MarshalJSON without
// reflection: a save writes ten thousand of them.
func (a attrs) appendJSON(b []byte) []byte {
	b = append(b, `{"exists":`...)
	b = strconv.AppendBool(b, a.Exists)
	key := func(k string) { b = append(append(append(b, `,"`...), k...), `":`...) }
	str := func(k, v string) {
		if v != "" {
			key(k)
			b = appendJSONString(b, v)
		}
	}
	num := func(k string, v uint64) {
		if v != 0 {
			key(k)
			b = strconv.AppendUint(b, v, 10)
		}
	}
	tm := func(k string, t time.Time) {
		if !t.IsZero() {
			key(k)
			b = append(t.AppendFormat(append(b, '"'), time.RFC3339Nano), '"')
		}
	}
	x := a.extended()
	str("type", a.Type)
	num("mode", uint64(a.Mode))
	num("uid", uint64(a.UID))
	num("gid", uint64(a.GID))
	if a.Size != 0 {
		key("size")
		b = strconv.AppendInt(b, a.Size, 10)
	}
	tm("mtime", a.Mtime)
	tm("ctime", a.Ctime)
	num("inode", a.Inode)
	num("links", a.Links)
	num("dev", a.Dev)
	str("sha256", a.SHA256)
	num("flags", uint64(a.Flags))
	num("rdev", a.Rdev)
	if a.Partial {
		key("partial")
		b = append(b, "true"...)
	}
	str("link", encodeExact(x.Link))
	str("link_owner", encodeExact(x.LinkOwner))
	str("link_xattrs", encodeExact(x.LinkXattrs))
	str("real", encodeExact(x.Real))
	str("caps", encodeExact(x.Caps))
	str("acl", encodeExact(x.ACL))
	str("default_acl", encodeExact(x.DefaultACL))
	str("selinux", encodeExact(x.SELinux))
	str("xattrs", encodeExact(x.Xattrs))
	str("xattrs_sum", encodeExact(x.XattrsSum))
	return append(b, '}')
}

// appendJSONString appends s, which must be valid UTF-8 (encodeExact
// makes it so), as a JSON string.
func appendJSONString(b []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		start = i + 1
	}
	return append(append(b, s[start:]...), '"')
}

// saveState writes s, with recs as its records, to file atomically: to a temporary file in the same
// directory, synced, then renamed over file, and the directory synced, so
// that a crash at any moment leaves either the old file or the new one. A
// temporary file left by a crash is never read, and is replaced by the next
// save.
func saveState(file string, s *state, recs records) (size int64, err error) {
	dir := filepath.Dir(file)
	tmp := file + ".tmp"
	// A new file of its own, never one left there, nor what a link left
	// there leads to: removing a link removes the link.
	if err := os.Remove(tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return 0, err
	}
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return 0, err
	}
	if err := encodeState(f, s, recs); err != nil {
		f.Close()
		return 0, err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return 0, err
	}
	if fi, err := f.Stat(); err == nil {
		size = fi.Size()
	}
	if err := f.Close(); err != nil {
		return 0, err
	}
	if err := os.Rename(tmp, file); err != nil {
		return 0, err
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return size, nil
}
