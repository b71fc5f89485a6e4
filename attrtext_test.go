package main

// Unit tests of the text forms of inode flags, capabilities and ACLs,
// from the kernel's binary forms.

import (
	"encoding/binary"
	"testing"
)

func TestFlagLetters(t *testing.T) {
	tests := []struct {
		flags uint32
		want  string
	}{
		{0, ""},
		{0x00080000, "e"},               // extents: every ext4 file
		{0x00000010 | 0x00080000, "ie"}, // immutable, in lsattr's order
		{0x00000020, "a"},
		{0x00000001 | 0x00000002 | 0x00000008 | 0x00010000 | 0x00000010 | 0x00000020 | 0x00000040 | 0x00000080, "suSDiadA"},
		{0x00001000, "I"},
		{0x00200000, "+0x200000"}, // FS_EA_INODE_FL: no letter
		{0x00000010 | 0x80000000, "i+0x80000000"},
	}
	for _, tt := range tests {
		if got := flagLetters(tt.flags); got != tt.want {
			t.Errorf("flagLetters(%#x) = %q, want %q", tt.flags, got, tt.want)
		}
	}
}

// vfsCaps encodes a security.capability value.
func vfsCaps(magic uint32, words []uint32, rootID ...uint32) []byte {
	b := binary.LittleEndian.AppendUint32(nil, magic)
	for _, w := range words {
		b = binary.LittleEndian.AppendUint32(b, w)
	}
	for _, r := range rootID {
		b = binary.LittleEndian.AppendUint32(b, r)
	}
	return b
}

func TestCapsText(t *testing.T) {
	const (
		setuid = 1 << 7
		netRaw = 1 << 13
		chown  = 1 << 0
	)
	tests := []struct {
		name string
		raw  []byte
		want string
	}{
		{"v2 effective", vfsCaps(vfsCapRevision2|vfsCapFlagEffective, []uint32{setuid | netRaw, 0, 0, 0}), "cap_setuid,cap_net_raw=ep"},
		{"v2 permitted only", vfsCaps(vfsCapRevision2, []uint32{netRaw, 0, 0, 0}), "cap_net_raw=p"},
		{"v2 inheritable and permitted", vfsCaps(vfsCapRevision2|vfsCapFlagEffective, []uint32{chown, netRaw, 0, 0}), "cap_net_raw=ei cap_chown+ep"},
		{"v1", vfsCaps(vfsCapRevision1|vfsCapFlagEffective, []uint32{setuid, 0}), "cap_setuid=ep"},
		{"v3 in a namespace", vfsCaps(vfsCapRevision3|vfsCapFlagEffective, []uint32{netRaw, 0, 0, 0}, 100000), "cap_net_raw=ep [rootid=100000]"},
		{"v3 of the initial namespace", vfsCaps(vfsCapRevision3|vfsCapFlagEffective, []uint32{netRaw, 0, 0, 0}, 0), "cap_net_raw=ep"},
		{"grants nothing", vfsCaps(vfsCapRevision2, []uint32{0, 0, 0, 0}), ""},
	}
	for _, tt := range tests {
		got, err := capsText(tt.raw)
		if err != nil || got != tt.want {
			t.Errorf("%s: capsText = %q, %v; want %q", tt.name, got, err, tt.want)
		}
	}
	for _, bad := range [][]byte{nil, {1, 2}, vfsCaps(0x05000000, []uint32{1, 0}), vfsCaps(vfsCapRevision2, []uint32{1, 0})} {
		if got, err := capsText(bad); err == nil {
			t.Errorf("capsText(%x) = %q, want an error", bad, got)
		}
	}
	// An undecodable value still shows, and changes with its bytes.
	text1, err1 := capsText([]byte{1})
	text2, err2 := capsText([]byte{2})
	a, b := orRaw(text1, []byte{1}, err1), orRaw(text2, []byte{2}, err2)
	if a == "" || a == b {
		t.Errorf("undecodable values shown as %q and %q, want two different texts", a, b)
	}
}

// posixACL encodes a POSIX ACL extended attribute from tag, perm, id
// triples.
func posixACL(entries ...uint32) []byte {
	b := binary.LittleEndian.AppendUint32(nil, aclVersion)
	for i := 0; i+2 < len(entries); i += 3 {
		b = binary.LittleEndian.AppendUint16(b, uint16(entries[i]))
		b = binary.LittleEndian.AppendUint16(b, uint16(entries[i+1]))
		b = binary.LittleEndian.AppendUint32(b, entries[i+2])
	}
	return b
}

func TestACLText(t *testing.T) {
	names := newIDNames()
	names.users[65534] = "nobody"
	names.groups[4] = "adm"
	const none = 0xFFFFFFFF
	tests := []struct {
		name      string
		raw       []byte
		isDefault bool
		want      string
	}{
		{"named user, as setfacl -m u:nobody:r makes it", posixACL(
			aclUserObj, 6, none, aclUser, 4, 65534, aclGroupObj, 4, none, aclMask, 4, none, aclOther, 4, none),
			false, "user:nobody:r--,mask::r--"},
		{"owning group hidden by the mask", posixACL(
			aclUserObj, 6, none, aclGroupObj, 7, none, aclGroup, 5, 4, aclMask, 5, none, aclOther, 0, none),
			false, "group::rwx,group:adm:r-x,mask::r-x"},
		{"an id without a name", posixACL(
			aclUserObj, 6, none, aclUser, 7, 4242, aclGroupObj, 0, none, aclMask, 7, none, aclOther, 0, none),
			false, "user:4242:rwx,group::---,mask::rwx"},
		{"default ACL, whole", posixACL(
			aclUserObj, 7, none, aclUser, 5, 65534, aclGroupObj, 5, none, aclMask, 5, none, aclOther, 5, none),
			true, "user::rwx,user:nobody:r-x,group::r-x,mask::r-x,other::r-x"},
		{"only the base entries", posixACL(aclUserObj, 6, none, aclGroupObj, 4, none, aclOther, 4, none), false, ""},
	}
	for _, tt := range tests {
		got, err := aclText(tt.raw, tt.isDefault, names)
		if err != nil || got != tt.want {
			t.Errorf("%s: aclText = %q, %v; want %q", tt.name, got, err, tt.want)
		}
	}
	for _, bad := range [][]byte{nil, {2, 0, 0, 0, 1}, posixACL(0x40, 7, 0), binary.LittleEndian.AppendUint32(nil, 1)} {
		if got, err := aclText(bad, false, names); err == nil {
			t.Errorf("aclText(%x) = %q, want an error", bad, got)
		}
	}
}

func FuzzACLText(f *testing.F) {
	f.Add(posixACL(aclUserObj, 6, 0, aclUser, 4, 65534, aclMask, 4, 0, aclOther, 4, 0))
	names := newIDNames()
	f.Fuzz(func(t *testing.T, raw []byte) {
		aclText(raw, false, names) // must not panic
		capsText(raw)
	})
}
