package main

// The text forms of the attributes that the kernel gives in binary: inode
// flags as lsattr(1) writes them, file capabilities as getcap(8) does, and
// POSIX ACLs in the short text form of acl(5).

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os/user"
	"strconv"
	"strings"
	"sync"

	"kernel.org/pub/linux/libs/security/libcap/cap"
)

// inodeFlags are the inode flags (linux/fs.h, FS_*_FL) with the letters
// lsattr(1) gives them, in the order it prints them (e2fsprogs,
// lib/e2p/pf.c).
var inodeFlags = []struct {
	bit    uint32
	letter byte
}{
	{0x00000001, 's'}, // FS_SECRM_FL: secure deletion
	{0x00000002, 'u'}, // FS_UNRM_FL: undelete
	{0x00000008, 'S'}, // FS_SYNC_FL: synchronous updates
	{0x00010000, 'D'}, // FS_DIRSYNC_FL: synchronous directory updates
	{0x00000010, 'i'}, // FS_IMMUTABLE_FL: immutable
	{0x00000020, 'a'}, // FS_APPEND_FL: append only
	{0x00000040, 'd'}, // FS_NODUMP_FL: no dump
	{0x00000080, 'A'}, // FS_NOATIME_FL: no atime updates
	{0x00000004, 'c'}, // FS_COMPR_FL: compressed
	{0x00000800, 'E'}, // FS_ENCRYPT_FL: encrypted
	{0x00004000, 'j'}, // FS_JOURNAL_DATA_FL: data journalling
	{0x00001000, 'I'}, // FS_INDEX_FL: hash-indexed directory
	{0x00008000, 't'}, // FS_NOTAIL_FL: no tail merging
	{0x00020000, 'T'}, // FS_TOPDIR_FL: top of directory hierarchies
	{0x00080000, 'e'}, // FS_EXTENT_FL: extents
	{0x00800000, 'C'}, // FS_NOCOW_FL: no copy on write
	{0x02000000, 'x'}, // FS_DAX_FL: direct access
	{0x40000000, 'F'}, // FS_CASEFOLD_FL: case-insensitive directory
	{0x10000000, 'N'}, // FS_INLINE_DATA_FL: inline data
	{0x20000000, 'P'}, // FS_PROJINHERIT_FL: project hierarchy
	{0x00100000, 'V'}, // FS_VERITY_FL: verity
	{0x00000400, 'm'}, // FS_NOCOMP_FL: do not compress
}

// flagLetters returns the letters of the flags set, in lsattr's order,
// and any bit lsattr has no letter for as a hexadecimal number after
// them: "ie", "i+0x200000".
func flagLetters(flags uint32) string {
	var b []byte
	for _, f := range inodeFlags {
		if flags&f.bit != 0 {
			b = append(b, f.letter)
			flags &^= f.bit
		}
	}
	if flags != 0 {
		b = append(b, "+0x"...)
		b = strconv.AppendUint(b, uint64(flags), 16)
	}
	return string(b)
}

// The layout of security.capability (linux/capability.h, struct
// vfs_ns_cap_data): a little-endian magic and revision, then a permitted
// and an inheritable word for each 32 capabilities, then, from revision 3,
// the root user id of the user namespace it applies in.
const (
	vfsCapRevisionMask  = 0xFF000000
	vfsCapFlagEffective = 0x000001
	vfsCapRevision1     = 0x01000000 // 32 capabilities
	vfsCapRevision2     = 0x02000000 // 64 capabilities
	vfsCapRevision3     = 0x03000000 // 64, and a namespace's root id
)

var errBadCaps = errors.New("not a security.capability value")

// capsText returns file capabilities, the raw value of
// security.capability, as getcap(8) prints them: "cap_net_raw=ep", and
// " [rootid=N]" after them for capabilities that apply only in a user
// namespace. libcap's own text form is used: the order and grouping of
// its names are libcap's.
func capsText(raw []byte) (string, error) {
	if len(raw) < 4 {
		return "", errBadCaps
	}
	le := binary.LittleEndian
	magic := le.Uint32(raw)
	words, size := 0, 0
	switch magic & vfsCapRevisionMask {
	case vfsCapRevision1:
		words, size = 1, 4+8
	case vfsCapRevision2:
		words, size = 2, 4+16
	case vfsCapRevision3:
		words, size = 2, 4+16+4
	default:
		return "", errBadCaps
	}
	if len(raw) != size {
		return "", errBadCaps
	}
	c := cap.NewSet()
	for w := range words {
		permitted := le.Uint32(raw[4+8*w:])
		inheritable := le.Uint32(raw[8+8*w:])
		for bit := range 32 {
			v := cap.Value(32*w + bit)
			p, i := permitted&(1<<bit) != 0, inheritable&(1<<bit) != 0
			if !p && !i {
				continue
			}
			// The effective bit of a file makes every permitted and
			// inheritable capability effective at exec.
			e := magic&vfsCapFlagEffective != 0
			for _, f := range []struct {
				flag cap.Flag
				on   bool
			}{{cap.Permitted, p}, {cap.Inheritable, i}, {cap.Effective, e}} {
				if err := c.SetFlag(f.flag, f.on, v); err != nil {
					return "", fmt.Errorf("capability %d: %w", v, err)
				}
			}
		}
	}
	text := c.String()
	if text == "=" {
		text = "" // a value that grants nothing
	}
	if magic&vfsCapRevisionMask == vfsCapRevision3 {
		if root := le.Uint32(raw[20:]); root != 0 {
			text += " [rootid=" + strconv.FormatUint(uint64(root), 10) + "]"
		}
	}
	return strings.TrimSpace(text), nil
}

// The layout of a POSIX ACL extended attribute
// (linux/posix_acl_xattr.h): a little-endian version, then entries of a
// tag, permissions and an id.
const (
	aclVersion  = 2
	aclUserObj  = 0x01
	aclUser     = 0x02
	aclGroupObj = 0x04
	aclGroup    = 0x08
	aclMask     = 0x10
	aclOther    = 0x20
)

var errBadACL = errors.New("not a POSIX ACL value")

// aclText returns an ACL, the raw value of system.posix_acl_access or
// system.posix_acl_default, in the short text form of acl(5):
// "user:nobody:r--,mask::r--". Of an access ACL, the entries that the
// mode shows are left out: the owner's and the others', and the owning
// group's unless a mask hides it (then the mode's group bits are the
// mask's). A default ACL is given whole.
func aclText(raw []byte, isDefault bool, names *idNames) (string, error) {
	le := binary.LittleEndian
	if len(raw) < 4 || (len(raw)-4)%8 != 0 || le.Uint32(raw) != aclVersion {
		return "", errBadACL
	}
	type aclEntry struct {
		tag  uint16
		perm uint16
		id   uint32
	}
	var entries []aclEntry
	var mask, groupObj uint16
	hasMask := false
	for off := 4; off < len(raw); off += 8 {
		e := aclEntry{le.Uint16(raw[off:]), le.Uint16(raw[off+2:]), le.Uint32(raw[off+4:])}
		switch e.tag {
		case aclMask:
			mask, hasMask = e.perm, true
		case aclGroupObj:
			groupObj = e.perm
		case aclUserObj, aclUser, aclGroup, aclOther:
		default:
			return "", errBadACL
		}
		entries = append(entries, e)
	}
	var parts []string
	for _, e := range entries {
		var s string
		switch e.tag {
		case aclUserObj:
			s = "user::"
		case aclUser:
			s = "user:" + names.user(e.id) + ":"
		case aclGroupObj:
			s = "group::"
		case aclGroup:
			s = "group:" + names.group(e.id) + ":"
		case aclMask:
			s = "mask::"
		case aclOther:
			s = "other::"
		}
		if !isDefault {
			switch {
			case e.tag == aclUserObj || e.tag == aclOther:
				continue
			case e.tag == aclGroupObj && (!hasMask || groupObj == mask):
				continue
			}
		}
		parts = append(parts, s+permText(e.perm))
	}
	return strings.Join(parts, ","), nil
}

// permText returns ACL permissions as rwx, with a dash for each missing.
func permText(perm uint16) string {
	b := []byte("---")
	for i, c := range "rwx" {
		if perm&(4>>i) != 0 {
			b[i] = byte(c)
		}
	}
	if perm&^7 != 0 {
		return string(b) + "+" + strconv.FormatUint(uint64(perm&^7), 8)
	}
	return string(b)
}

// idNames names user and group ids as getfacl(1) does, from the system's
// user and group database, remembering each: ACL entries are few, and a
// name read once a run is enough. An id without a name is given as a
// number. It is safe for concurrent use.
type idNames struct {
	mu     sync.Mutex
	users  map[uint32]string
	groups map[uint32]string
}

func newIDNames() *idNames {
	return &idNames{users: make(map[uint32]string), groups: make(map[uint32]string)}
}

func (n *idNames) user(id uint32) string {
	return n.lookup(n.users, id, func(s string) (string, error) {
		u, err := user.LookupId(s)
		if err != nil {
			return "", err
		}
		return u.Username, nil
	})
}

// cachedUser returns the name of user id when it is known already,
// without waiting: the loop never reads the user database.
func (n *idNames) cachedUser(id uint32) (string, bool) {
	if !n.mu.TryLock() {
		return "", false
	}
	defer n.mu.Unlock()
	name, ok := n.users[id]
	return name, ok
}

func (n *idNames) group(id uint32) string {
	return n.lookup(n.groups, id, func(s string) (string, error) {
		g, err := user.LookupGroupId(s)
		if err != nil {
			return "", err
		}
		return g.Name, nil
	})
}

func (n *idNames) lookup(cache map[uint32]string, id uint32, find func(string) (string, error)) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if name, ok := cache[id]; ok {
		return name
	}
	num := strconv.FormatUint(uint64(id), 10)
	name, err := find(num)
	if err != nil || !plainXattrName(name) {
		name = num // no name, or one that could not be told from text around it
	}
	cache[id] = name
	return name
}
