package main

// Where the baseline keeps its records: packed in memory, for a watched
// directory may hold a hundred and fifty thousand entries, and a user
// who can write in it may make that many (see the README, "Performance").

import (
	"encoding/hex"
	"iter"
	"maps"
	"slices"
	"strings"
	"time"
)

// A records is where the baseline keeps one record per path. The rest of
// famids sees records only through the baseline, and the baseline only
// through this interface: a store on disk can take the map's place.
type records interface {
	get(path string) (attrs, bool)
	has(path string) bool
	put(path string, a attrs)
	remove(path string)
	len() int
	// all yields every record in the byte order of its path; under,
	// those of the paths below directory dir, at any depth. Records may
	// not be put or removed while either runs.
	all() iter.Seq2[string, attrs]
	under(dir string) iter.Seq2[string, attrs]
	// in returns the paths with a record directly in directory dir, in
	// byte order.
	in(dir string) []string
	// paths returns the path of every record, in byte order.
	paths() []string
}

// A recordMap keeps records as they are: a state file's, as read.
type recordMap map[string]attrs

func (m recordMap) get(path string) (attrs, bool) { a, ok := m[path]; return a, ok }
func (m recordMap) has(path string) bool          { _, ok := m[path]; return ok }
func (m recordMap) put(path string, a attrs)      { m[path] = a }
func (m recordMap) remove(path string)            { delete(m, path) }
func (m recordMap) len() int                      { return len(m) }

func (m recordMap) all() iter.Seq2[string, attrs] { return sortedRecords(m, m.get) }
func (m recordMap) paths() []string               { return slices.Sorted(maps.Keys(m)) }

func (m recordMap) under(dir string) iter.Seq2[string, attrs] { return recordsUnder(m.all(), dir) }

func (m recordMap) in(dir string) []string {
	var ps []string
	for p := range m {
		if parentOf(p) == dir && p != dir {
			ps = append(ps, p)
		}
	}
	slices.Sort(ps)
	return ps
}

// parentOf returns the directory path is in, as filepath.Dir does for a
// clean absolute path, without allocating.
func parentOf(path string) string {
	i := strings.LastIndexByte(path, '/')
	if i <= 0 {
		return "/"
	}
	return path[:i]
}

// sortedRecords yields the records of the keys of m, by get, in the
// byte order of their paths.
func sortedRecords[V any](m map[string]V, get func(string) (attrs, bool)) iter.Seq2[string, attrs] {
	return func(yield func(string, attrs) bool) {
		for _, p := range slices.Sorted(maps.Keys(m)) {
			a, _ := get(p)
			if !yield(p, a) {
				return
			}
		}
	}
}

// recordsUnder yields those of recs whose paths are below dir.
func recordsUnder(recs iter.Seq2[string, attrs], dir string) iter.Seq2[string, attrs] {
	prefix := dirPrefix(dir)
	return func(yield func(string, attrs) bool) {
		for p, a := range recs {
			if strings.HasPrefix(p, prefix) && !yield(p, a) {
				return
			}
		}
	}
}

// packedRecords keeps records packed: a hash as its 32 bytes, a time as
// its seconds and nanoseconds, a type as a number; 128 bytes a record
// where an attrs takes 168 and a hash's text 64 more, besides its path.
// They lie in chunks, found through an index of slots, for a map grows
// by doubling: 150,000 records of 128 bytes in a map would take 38 MB,
// here 25. What a packed record cannot hold (a type or a hash famids
// never writes, from a damaged state file) is kept aside, as it was.
type packedRecords struct {
	index  map[string]int32 // the slot of each path's record
	chunks [][]packed       // the slots, packedChunk a chunk
	slots  int32            // slots in use or free
	free   []int32          // slots whose record was removed
	odd    map[string]oddRecord
	// kids are the paths with a record, by the directory they are in: a
	// tree's directory is compared with its records at each change of
	// what it holds, and a directory moved away takes its paths with it.
	kids map[string]map[string]struct{}
}

// packedChunk is how many records a chunk holds.
const packedChunk = 1024

// A packed record is an attrs packed (see pack).
type packed struct {
	ext                     *extended
	size                    int64
	mtime, ctime            int64 // seconds since the epoch
	inode, links, dev, rdev uint64
	mode, uid, gid, flags   uint32
	mtimeNs, ctimeNs        uint32
	sha                     [32]byte
	kind                    uint8 // an index in kinds
	bits                    uint8 // packed* below
}

// The bits of a packed record, and what its sha holds.
const (
	packedExists = 1 << iota
	packedPartial
	packedBusy
	packedCut
	packedOdd               // its type or its hash is in odd
	packedShaShift = 5      // the two bits above: one of sha* below
	packedCompared = 1 << 7 // attrs.compared
)

const (
	shaNone = iota
	shaKnown
	shaPending
	shaUnreadable
)

// kinds are the types famids records, by their index in a packed record.
var kinds = [...]string{"", "file", "dir", "symlink", "fifo", "socket", "chardev", "blockdev"}

// An oddRecord is what a packed record cannot hold of an attrs.
type oddRecord struct{ typ, sha string }

func newPackedRecords() *packedRecords {
	return &packedRecords{index: make(map[string]int32), odd: make(map[string]oddRecord), kids: make(map[string]map[string]struct{})}
}

// slot returns the record in slot i.
func (r *packedRecords) slot(i int32) *packed { return &r.chunks[i/packedChunk][i%packedChunk] }

func (r *packedRecords) get(path string) (attrs, bool) {
	i, ok := r.index[path]
	if !ok {
		return attrs{}, false
	}
	p := r.slot(i)
	a := p.unpack()
	if p.bits&packedOdd != 0 {
		o := r.odd[path]
		a.Type, a.SHA256 = o.typ, o.sha
	}
	return a, true
}

func (r *packedRecords) put(path string, a attrs) {
	p, odd := pack(a)
	i, ok := r.index[path]
	switch {
	case ok && r.slot(i).bits&packedOdd != 0 && !odd:
		delete(r.odd, path)
	case !ok:
		i = r.alloc()
		r.index[path] = i
		if path != "/" {
			dir := parentOf(path)
			k := r.kids[dir]
			if k == nil {
				k = make(map[string]struct{})
				r.kids[dir] = k
			}
			k[path] = struct{}{}
		}
	}
	if odd {
		r.odd[path] = oddRecord{a.Type, a.SHA256}
	}
	*r.slot(i) = p
}

// alloc returns a free slot.
func (r *packedRecords) alloc() int32 {
	if n := len(r.free); n > 0 {
		i := r.free[n-1]
		r.free = r.free[:n-1]
		return i
	}
	if r.slots%packedChunk == 0 {
		r.chunks = append(r.chunks, make([]packed, packedChunk))
	}
	r.slots++
	return r.slots - 1
}

func (r *packedRecords) remove(path string) {
	i, ok := r.index[path]
	if !ok {
		return
	}
	if r.slot(i).bits&packedOdd != 0 {
		delete(r.odd, path)
	}
	*r.slot(i) = packed{}
	delete(r.index, path)
	if dir := parentOf(path); path != "/" {
		if k := r.kids[dir]; k != nil {
			delete(k, path)
			if len(k) == 0 {
				delete(r.kids, dir)
			}
		}
	}
	r.free = append(r.free, i)
	if len(r.free) > packedChunk && len(r.free) > len(r.index) {
		r.repack()
	}
}

// repack moves the records into as few chunks as they need, once most
// slots are free: a flood of files made and removed leaves nothing held.
func (r *packedRecords) repack() {
	old := r.chunks
	index := make(map[string]int32, len(r.index))
	r.chunks, r.slots, r.free = nil, 0, nil
	for path, i := range r.index {
		j := r.alloc()
		*r.slot(j) = old[i/packedChunk][i%packedChunk]
		index[path] = j
	}
	r.index = index
}

// keepOnly removes the records of the paths keep refuses.
func (r *packedRecords) keepOnly(keep func(path string) bool) {
	for p := range r.index {
		if !keep(p) {
			r.remove(p)
		}
	}
}

func (r *packedRecords) has(path string) bool { _, ok := r.index[path]; return ok }
func (r *packedRecords) len() int             { return len(r.index) }
func (r *packedRecords) paths() []string      { return slices.Sorted(maps.Keys(r.index)) }

func (r *packedRecords) all() iter.Seq2[string, attrs] { return sortedRecords(r.index, r.get) }

// under finds the paths below dir through kids, directory by directory,
// rather than looking through every record.
func (r *packedRecords) under(dir string) iter.Seq2[string, attrs] {
	return func(yield func(string, attrs) bool) {
		var paths []string
		next := []string{dir}
		for len(next) > 0 {
			d := next[len(next)-1]
			next = next[:len(next)-1]
			for p := range r.kids[d] {
				paths = append(paths, p)
				if r.kids[p] != nil {
					next = append(next, p)
				}
			}
		}
		slices.Sort(paths)
		for _, p := range paths {
			a, _ := r.get(p)
			if !yield(p, a) {
				return
			}
		}
	}
}

func (r *packedRecords) in(dir string) []string {
	ps := slices.Collect(maps.Keys(r.kids[dir]))
	slices.Sort(ps)
	return ps
}

// pack packs a; odd says its type or its hash is not one famids writes,
// and must be kept aside.
func pack(a attrs) (p packed, odd bool) {
	p = packed{ext: a.Ext, size: a.Size, mtime: a.Mtime.Unix(), ctime: a.Ctime.Unix(),
		inode: a.Inode, links: a.Links, dev: a.Dev, rdev: a.Rdev,
		mode: a.Mode, uid: a.UID, gid: a.GID, flags: a.Flags,
		mtimeNs: uint32(a.Mtime.Nanosecond()), ctimeNs: uint32(a.Ctime.Nanosecond())}
	for _, b := range []struct {
		set bool
		bit uint8
	}{{a.Exists, packedExists}, {a.Partial, packedPartial}, {a.busy, packedBusy}, {a.cut, packedCut}, {a.compared, packedCompared}} {
		if b.set {
			p.bits |= b.bit
		}
	}
	kind := slices.Index(kinds[:], a.Type)
	sha := shaNone
	switch a.SHA256 {
	case "":
	case digestPending:
		sha = shaPending
	case digestUnreadable:
		sha = shaUnreadable
	default:
		if lowerHex(a.SHA256, len(p.sha)) {
			hex.Decode(p.sha[:], []byte(a.SHA256))
			sha = shaKnown
		} else {
			sha = -1
		}
	}
	if kind < 0 || sha < 0 {
		p.bits |= packedOdd
		p.sha = [32]byte{}
		return p, true
	}
	p.kind = uint8(kind)
	p.bits |= uint8(sha) << packedShaShift
	return p, false
}

// lowerHex reports whether s is n bytes in lowercase hex, as famids
// writes a hash: what else a state file holds is kept as it is.
func lowerHex(s string, n int) bool {
	if len(s) != 2*n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// unpack returns the attrs p packs, but for what odd holds.
func (p packed) unpack() attrs {
	a := attrs{Exists: p.bits&packedExists != 0, Type: kinds[p.kind&7], Mode: p.mode, UID: p.uid, GID: p.gid, Size: p.size,
		Mtime: time.Unix(p.mtime, int64(p.mtimeNs)), Ctime: time.Unix(p.ctime, int64(p.ctimeNs)),
		Inode: p.inode, Links: p.links, Dev: p.dev, Flags: p.flags, Rdev: p.rdev, Ext: p.ext,
		Partial: p.bits&packedPartial != 0, busy: p.bits&packedBusy != 0, cut: p.bits&packedCut != 0, compared: p.bits&packedCompared != 0}
	switch p.bits >> packedShaShift & 3 {
	case shaKnown:
		a.SHA256 = hex.EncodeToString(p.sha[:])
	case shaPending:
		a.SHA256 = digestPending
	case shaUnreadable:
		a.SHA256 = digestUnreadable
	}
	return a
}

// keptRecords are records as the state file keeps them: one whose content
// is being hashed beside (sha256 pending) after a change is kept with the
// hash it had before and marked partial, so that a famids stopped before
// the hash is done (killed, say) reads the file again at its next start,
// and reports the change of content, rather than take the new stat with
// no hash to compare.
type keptRecords struct {
	records
	before func(path string) (sha string, ok bool) // the hash a path had before its content went pending
}

func (k keptRecords) all() iter.Seq2[string, attrs] {
	return func(yield func(string, attrs) bool) {
		for p, a := range k.records.all() {
			if !yield(p, k.kept(p, a)) {
				return
			}
		}
	}
}

func (k keptRecords) get(path string) (attrs, bool) {
	a, ok := k.records.get(path)
	return k.kept(path, a), ok
}

// kept returns a, path's record, as the state file keeps it.
func (k keptRecords) kept(path string, a attrs) attrs {
	if a.SHA256 == digestPending {
		if sha, ok := k.before(path); ok && knownDigest(sha) {
			a.SHA256, a.Partial = sha, true
		}
	}
	return a
}
