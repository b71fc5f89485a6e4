package main

// Comparing two records of a path: what differs, by the names reports
// give the attributes.

// differs names the attributes in which before and after differ, or
// "existence". For a directory, what its entries change (its mtime, ctime,
// size and link count) is left out: the entries are reported on their
// own. Content that could not be read never equals anything: famids
// cannot tell it is unchanged.
func differs(before, after attrs) []string {
	if before.Exists != after.Exists {
		return []string{"existence"}
	}
	if !before.Exists {
		return nil
	}
	dir := before.Type == "dir" && after.Type == "dir"
	var d []string
	add := func(name string, differ bool) {
		if differ {
			d = append(d, name)
		}
	}
	add("type", before.Type != after.Type)
	add("mode", before.Mode != after.Mode)
	add("uid", before.UID != after.UID)
	add("gid", before.GID != after.GID)
	add("size", before.Size != after.Size && !dir)
	add("mtime", !before.Mtime.Equal(after.Mtime) && !dir)
	add("ctime", !before.Ctime.Equal(after.Ctime) && !dir)
	add("inode", before.Inode != after.Inode || before.Dev != after.Dev)
	add("links", before.Links != after.Links && !dir)
	add("rdev", before.Rdev != after.Rdev)
	// Content not hashed yet is compared once it is (see hashLater).
	pending := before.SHA256 == digestPending || after.SHA256 == digestPending
	add("sha256", !pending && (before.SHA256 != after.SHA256 || before.SHA256 == digestUnreadable || after.SHA256 == digestUnreadable))
	bx, ax := before.extended(), after.extended()
	add("link", bx.Link != ax.Link || bx.LinkOwner != ax.LinkOwner && !before.Partial && !after.Partial)
	add("realpath", bx.Real != ax.Real && !before.Partial && !after.Partial)
	if before.Partial || after.Partial {
		return d // flags and extended attributes not known on one side
	}
	add("flags", before.Flags&^kernelFlags != after.Flags&^kernelFlags)
	add("caps", bx.Caps != ax.Caps)
	add("acl", bx.ACL != ax.ACL)
	add("default_acl", bx.DefaultACL != ax.DefaultACL)
	add("selinux", bx.SELinux != ax.SELinux)
	add("xattrs", bx.Xattrs != ax.Xattrs || bx.XattrsSum != ax.XattrsSum || bx.LinkXattrs != ax.LinkXattrs)
	return d
}

// kernelFlags are the inode flags the file system sets by itself as a file
// or a directory grows (ext4's hash index, extents, inline data), which
// no chattr sets: a change of them is not a difference.
const kernelFlags = 0x00001000 | 0x00080000 | 0x10000000 // FS_INDEX_FL, FS_EXTENT_FL, FS_INLINE_DATA_FL

// eventDiffers is differs for a report made from events on the path. A
// directory's own times count there: an event on the directory itself
// (touch, chmod, setfattr) is not one of its entries, and a report must
// not say that nothing differs when its times moved.
func eventDiffers(before, after attrs) []string {
	d := differs(before, after)
	if len(d) == 0 && before.Exists && after.Exists {
		if !before.Mtime.Equal(after.Mtime) {
			d = append(d, "mtime")
		}
		if !before.Ctime.Equal(after.Ctime) {
			d = append(d, "ctime")
		}
	}
	return d
}

// stillUnreadable reports whether diff, what differs between before and
// after, is only their content, which famids could read neither time, of
// a file whose stat is the same: a comparison has nothing new to tell of
// it. (A lease taken and taken again keeps a file unreadable: each time
// would be a report.)
func stillUnreadable(before, after attrs, diff []string) bool {
	return len(diff) == 1 && diff[0] == "sha256" && before.SHA256 == digestUnreadable && after.SHA256 == digestUnreadable && sameStat(before, after)
}

// same reports whether a and b record the same: their times may differ in
// representation (read from the state file or from stat), not in value.
func (a attrs) same(b attrs) bool {
	return a.Exists == b.Exists && a.Partial == b.Partial && a.Mtime.Equal(b.Mtime) && a.Ctime.Equal(b.Ctime) &&
		a.Type == b.Type && a.Mode == b.Mode && a.UID == b.UID && a.GID == b.GID &&
		a.Size == b.Size && a.Inode == b.Inode && a.Links == b.Links && a.Dev == b.Dev && a.Rdev == b.Rdev &&
		a.SHA256 == b.SHA256 && a.Flags == b.Flags && a.extended() == b.extended()
}

// extended returns a's extended attributes, the zero value when it has
// none.
func (a attrs) extended() extended {
	if a.Ext == nil {
		return extended{}
	}
	return *a.Ext
}
