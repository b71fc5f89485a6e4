package main

import (
	"bytes"
	"cmp"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// An entry is one watched path of famids.conf: PATH [, ACTION [, NAME | ...]].
type entry struct {
	Path   string   // absolute and cleaned, as reports name it; a tree's without "/**"
	Action string   // command run after each report; "" for none
	Names  []string // important entry names (globs) when Path is a directory
	Line   int      // line that last set Action
	Tree   bool     // PATH/**: the directory and every entry below it, on its file system

	// owner, for a path watched beside the configuration's (a symbolic
	// link in a watched directory, a directory of a tree), is the entry
	// of the configuration whose action runs for it; "" for an entry of
	// the configuration.
	owner string
	// in, for a directory of a tree, is the tree's entry; nil otherwise.
	in *entry
	// trees, for a directory of a tree, are the trees that hold it in
	// the configuration treesOf (route.go): a storm in a tree routes each
	// event without looking up every directory above.
	trees   []*entry
	treesOf *config
	// over, for a directory of a tree, says it is past the tree's
	// budget of watches: not watched, its entries compared at each
	// verification (tree.go).
	over bool

	set *nameSet // Names, sorted for matching by config.seal
}

// link reports whether e is a symbolic link in a watched directory,
// watched as a path of its own: whatever it points to, its entries are
// none of famids's business.
func (e *entry) link() bool { return e.owner != "" && e.in == nil }

// lists reports whether e is a directory whose entries famids reports on,
// when its path is one: an entry of the configuration or a directory of a
// tree, never a symbolic link that points to a directory.
func (e *entry) lists() bool { return !e.link() }

// line returns e's PATH as the configuration writes it.
func (e *entry) line() string {
	if e.Tree {
		return treePath(e.Path)
	}
	return e.Path
}

// treePath returns the PATH of the tree at dir: dir and "/**".
func treePath(dir string) string { return strings.TrimSuffix(dir, "/") + "/**" }

// reporter returns the path of the configuration entry that reports on
// e's path: its own, or its owner's.
func (e *entry) reporter() string {
	if e.owner != "" {
		return e.owner
	}
	return e.Path
}

// matches reports whether name, an entry of the directory e.Path, is of
// interest: every name is when no important names were given. It is asked
// for every event in a watched directory, so the names are sorted once
// into plain names and patterns.
func (e *entry) matches(name string) bool {
	if e.in != nil {
		return e.in.matches(name)
	}
	if len(e.Names) == 0 {
		return true
	}
	if e.set == nil {
		return newNameSet(e.Names).matches(name) // an entry not of a configuration
	}
	return e.set.matches(name)
}

// A nameSet matches names against important names and globs.
type nameSet struct {
	plain    map[string]bool
	prefixes []string // of globs NAME*
	suffixes []string // of globs *NAME
	globs    []string // any other
}

func newNameSet(names []string) *nameSet {
	ns := &nameSet{plain: make(map[string]bool)}
	for _, n := range names {
		switch {
		case !strings.ContainsAny(n, `*?[\`):
			ns.plain[n] = true
		case strings.HasPrefix(n, "*") && !strings.ContainsAny(n[1:], `*?[\`):
			ns.suffixes = append(ns.suffixes, n[1:])
		case strings.HasSuffix(n, "*") && !strings.ContainsAny(n[:len(n)-1], `*?[\`):
			ns.prefixes = append(ns.prefixes, n[:len(n)-1])
		default:
			ns.globs = append(ns.globs, n)
		}
	}
	return ns
}

func (ns *nameSet) matches(name string) bool {
	if ns.plain[name] {
		return true
	}
	for _, p := range ns.prefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	for _, s := range ns.suffixes {
		if strings.HasSuffix(name, s) {
			return true
		}
	}
	for _, g := range ns.globs {
		if ok, _ := filepath.Match(g, name); ok {
			return true
		}
	}
	return false
}

// A config is a parsed configuration file.
type config struct {
	File      string
	Entries   []*entry // in the order their paths first appear
	Untrusted string   // why the file read cannot be trusted to name commands; "" when it can
	byPath    map[string]*entry
	trees     map[string]*entry // the entries that are trees, by path
	treeList  []*entry          // the same, the deepest root first
}

// lookup returns the entry for path, or nil.
func (c *config) lookup(path string) *entry {
	return c.byPath[path]
}

// A problem is something wrong with one line of the configuration.
type problem struct {
	File    string
	Line    int
	Msg     string
	Warning bool // the line is still used
}

func (p problem) String() string {
	if p.Warning {
		return fmt.Sprintf("%s:%d: warning: %s", quoteIfNeeded(p.File), p.Line, p.Msg)
	}
	return fmt.Sprintf("%s:%d: %s", quoteIfNeeded(p.File), p.Line, p.Msg)
}

// maxConfigSize bounds what famids reads of a configuration file.
const maxConfigSize = 16 << 20

// readConfig reads and parses the configuration file. An error means the
// file could not be read at all; invalid lines are skipped and returned as
// problems, so that the rest is still watched. Whether the file can be
// trusted to name commands is told of the file read, not of whatever the
// name leads to by the time famids looks again (see untrustedOpen).
func readConfig(file string) (*config, []problem, error) {
	// O_NONBLOCK: a FIFO put in its place must not hold famids up.
	f, err := os.OpenFile(file, os.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	switch {
	case err != nil:
		return nil, nil, err
	case !fi.Mode().IsRegular():
		return nil, nil, fmt.Errorf("%s: not a regular file", quoteIfNeeded(file))
	case fi.Size() > maxConfigSize:
		return nil, nil, fmt.Errorf("%s: larger than %d MiB, not a famids configuration", quoteIfNeeded(file), maxConfigSize>>20)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxConfigSize+1))
	if err != nil {
		return nil, nil, err
	}
	if bytes.IndexByte(data, 0) >= 0 {
		return nil, nil, fmt.Errorf("%s: binary data (NUL byte), not a famids configuration", quoteIfNeeded(file))
	}
	cfg, problems := parseConfig(file, string(data))
	cfg.Untrusted = untrustedOpen(int(f.Fd()), file)
	return cfg, problems, nil
}

// parseConfig parses the text of a configuration file named file.
func parseConfig(file, text string) (*config, []problem) {
	cfg := &config{File: file, byPath: make(map[string]*entry), trees: make(map[string]*entry)}
	var problems []problem
	for i, line := range strings.Split(text, "\n") {
		n := i + 1
		line = strings.TrimSuffix(line, "\r")
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		e, warnings, err := parseEntry(line)
		for _, w := range warnings {
			problems = append(problems, problem{File: file, Line: n, Msg: w, Warning: true})
		}
		if err != nil {
			problems = append(problems, problem{File: file, Line: n, Msg: err.Error()})
			continue
		}
		e.Line = n
		if old := cfg.byPath[e.Path]; old != nil {
			// As in the Perl script: the last action wins, even an
			// empty one, and important names add up. A line with none
			// takes every entry: another line's names add nothing to
			// it, and never narrow it.
			old.Action = e.Action
			old.Line = n
			if len(old.Names) == 0 || len(e.Names) == 0 {
				old.Names = nil
			} else {
				old.Names = appendNew(old.Names, e.Names...)
			}
			if e.Tree && !old.Tree {
				// DIR and DIR/**: the tree holds the directory.
				old.Tree = true
				cfg.trees[old.Path] = old
			}
			continue
		}
		cfg.byPath[e.Path] = e
		cfg.Entries = append(cfg.Entries, e)
		if e.Tree {
			cfg.trees[e.Path] = e
		}
	}
	cfg.seal()
	return cfg, problems
}

// seal lists the trees, the deepest root first, and sorts each entry's
// important names for matching. A configuration is read-only from then
// on: jobs beside the loop match names against it while the loop reads
// another one.
func (c *config) seal() {
	c.treeList = slices.SortedFunc(maps.Values(c.trees), func(a, b *entry) int { return cmp.Compare(len(b.Path), len(a.Path)) })
	for _, e := range c.Entries {
		if len(e.Names) > 0 {
			e.set = newNameSet(e.Names)
		}
	}
}

// appendNew appends to list the names it does not hold yet.
func appendNew(list []string, names ...string) []string {
	for _, n := range names {
		if !contains(list, n) {
			list = append(list, n)
		}
	}
	return list
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// parseEntry turns one non-comment line into an entry.
func parseEntry(line string) (e *entry, warnings []string, err error) {
	fields, ok := parseLine(line)
	if !ok || len(fields) == 0 {
		return nil, nil, fmt.Errorf("unbalanced quote or trailing backslash: %s", quoteIfNeeded(line))
	}
	for i := range fields {
		fields[i] = strings.TrimSpace(fields[i])
	}
	path := fields[0]
	switch {
	case path == "":
		return nil, nil, fmt.Errorf("no path before the first comma")
	case !filepath.IsAbs(path):
		return nil, nil, fmt.Errorf("path %s is not absolute", quoteIfNeeded(path))
	}
	e = &entry{Path: filepath.Clean(path)}
	if rest, ok := strings.CutSuffix(path, "/**"); ok {
		e.Path, e.Tree = filepath.Clean(rest+"/"), true
	}
	if len(fields) > 1 {
		e.Action = fields[1]
	}
	if len(fields) > 2 {
		e.Names, err = parseNames(fields[2])
		if err != nil {
			return nil, nil, err
		}
	}
	if len(fields) > 3 {
		warnings = append(warnings, fmt.Sprintf("%d field(s) after the important names ignored (quote an action that holds a comma)", len(fields)-3))
	}
	return e, warnings, nil
}

// parseNames splits the third field on "|" and checks each glob.
func parseNames(field string) ([]string, error) {
	var names []string
	for _, n := range strings.Split(field, "|") {
		n = strings.TrimSpace(n)
		if n == "" {
			continue
		}
		if strings.Contains(n, "/") {
			return nil, fmt.Errorf("important name %s holds a slash: names are entries of the directory", quoteIfNeeded(n))
		}
		if _, err := filepath.Match(n, ""); err != nil {
			return nil, fmt.Errorf("important name %s is not a valid glob", quoteIfNeeded(n))
		}
		names = appendNew(names, n)
	}
	return names, nil
}

// parseLine splits line into fields exactly as Perl's
// Text::ParseWords::parse_line('\s*,\s*', 0, line) does, but for returning
// "" where Perl returns undef. ok is false where Perl returns no fields at
// all: an unbalanced quote or a trailing lone backslash.
func parseLine(line string) (fields []string, ok bool) {
	var word strings.Builder
	for len(line) > 0 {
		if q := line[0]; q == '"' || q == '\'' {
			if end := closingQuote(line); end > 0 {
				inner := line[1:end]
				if q == '"' {
					inner = unescape(inner)
				}
				word.WriteString(inner)
				line = line[end+1:]
				if line == "" {
					fields = append(fields, word.String())
				}
				continue
			}
		}
		// An unquoted piece: the shortest run of escaped characters and
		// non-quotes followed by the end, a delimiter or a quote.
		i, delim := 0, 0
		for {
			if i == len(line) {
				break
			}
			if delim = delimiterAt(line, i); delim > 0 {
				break
			}
			c := line[i]
			if c == '"' || c == '\'' {
				if i == 0 {
					return nil, false // a quote that never closes
				}
				break
			}
			if c == '\\' {
				if i+1 == len(line) {
					return nil, false // nothing left to escape
				}
				i++
			}
			i++
		}
		word.WriteString(unescape(line[:i]))
		line = line[i+delim:]
		if delim > 0 {
			fields = append(fields, word.String())
			word.Reset()
		}
		if line == "" {
			fields = append(fields, word.String())
		}
	}
	return fields, true
}

// closingQuote returns the index of the quote that closes the one at
// line[0], skipping backslash-escaped characters, or -1.
func closingQuote(line string) int {
	q := line[0]
	for i := 1; i < len(line); i++ {
		switch line[i] {
		case '\\':
			i++
		case q:
			return i
		}
	}
	return -1
}

// delimiterAt returns the length of the delimiter /\s*,\s*/ at line[i:],
// or 0.
func delimiterAt(line string, i int) int {
	j := skipSpace(line, i)
	if j == len(line) || line[j] != ',' {
		return 0
	}
	return skipSpace(line, j+1) - i
}

func skipSpace(s string, i int) int {
	for i < len(s) && strings.IndexByte(" \t\n\r\f\v", s[i]) >= 0 {
		i++
	}
	return i
}

// unescape replaces each backslash and the character after it by that
// character.
func unescape(s string) string {
	if strings.IndexByte(s, '\\') < 0 {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// checkLine describes an entry for -check: its path, what it is now, its
// action and its important names.
func checkLine(e *entry) string {
	kind := "missing"
	if fi, err := os.Stat(e.Path); err == nil {
		kind = "file"
		if fi.IsDir() {
			kind = "directory"
			if e.Tree {
				kind = "tree"
			}
		}
	}
	return fmt.Sprintf("%s %s action=%q important=%q", quoteIfNeeded(e.line()), kind, e.Action, strings.Join(e.Names, " | "))
}

// invalidOf returns the problems that are not warnings, as text.
func invalidOf(problems []problem) []string {
	var invalid []string
	for _, p := range problems {
		if !p.Warning {
			invalid = append(invalid, p.String())
		}
	}
	return invalid
}

// invalidLines returns an error when problems hold an invalid line: a
// configuration with one is not used.
func invalidLines(problems []problem) error {
	if n := len(invalidOf(problems)); n > 0 {
		return fmt.Errorf("%d invalid line(s)", n)
	}
	return nil
}

// A configChange is what a reload changes: the entries added, the paths
// of those removed, and the entries whose action or important names
// changed, described.
type configChange struct {
	added            []*entry
	removed, changed []string
}

// compareConfigs returns what changes from configuration old to cfg.
func compareConfigs(old, cfg *config) configChange {
	var ch configChange
	for _, e := range cfg.Entries {
		was := old.lookup(e.Path)
		switch {
		case was == nil:
			ch.added = append(ch.added, e)
		case was.Tree != e.Tree:
			ch.added = append(ch.added, e) // armed again, as a tree or as a directory
			ch.changed = append(ch.changed, fmt.Sprintf("%s: now %s", quoteIfNeeded(e.Path), quoteIfNeeded(e.line())))
		case was.Action != e.Action || !slices.Equal(was.Names, e.Names):
			ch.changed = append(ch.changed, fmt.Sprintf("%s: action %q, important names %q", quoteIfNeeded(e.Path), e.Action, strings.Join(e.Names, " | ")))
		}
	}
	for _, e := range old.Entries {
		if cfg.lookup(e.Path) == nil {
			ch.removed = append(ch.removed, e.Path)
		}
	}
	return ch
}

// counts says how many entries were added, removed and changed.
func (ch configChange) counts() string {
	return fmt.Sprintf("%d added, %d removed, %d changed", len(ch.added), len(ch.removed), len(ch.changed))
}

// notice is the notice of a reload to cfg.
func (ch configChange) notice(cfg *config) notice {
	details := []string{fmt.Sprintf("%d entries are watched.", len(cfg.Entries))}
	for _, e := range ch.added {
		details = append(details, "Added: "+quoteIfNeeded(e.Path))
	}
	for _, p := range ch.removed {
		details = append(details, "Removed: "+quoteIfNeeded(p))
	}
	for _, c := range ch.changed {
		details = append(details, "Changed: "+c)
	}
	return notice{Summary: fmt.Sprintf("configuration reloaded from %s: %s", quoteIfNeeded(cfg.File), ch.counts()), Details: details}
}

// owners returns the entries that report on path: the entry of that path,
// and those that report on it as an entry of its directory.
func (c *config) owners(path string) []*entry {
	var es []*entry
	if e := c.lookup(path); e != nil {
		es = append(es, e)
	}
	if dir := filepath.Dir(path); dir != path {
		for _, e := range c.childOwners(dir, filepath.Base(path)) {
			if !slices.Contains(es, e) {
				es = append(es, e)
			}
		}
	}
	return es
}

// childOwners returns the entries that report on name as an entry of the
// directory dir: dir's own entry when name is important to it, and each
// tree that holds dir (as its root or below it) to which name is
// important. It tells what the configuration says; whether dir is in a
// tree on the file system (not across a mount, not through a symbolic
// link) is the walk's to tell (tree.go), and only directories it found
// are watched.
func (c *config) childOwners(dir, name string) []*entry {
	var es []*entry
	if e := c.lookup(dir); e != nil && !e.Tree && e.matches(name) {
		es = append(es, e)
	}
	for _, t := range c.treeList {
		if under(dir, t.Path) && t.matches(name) {
			es = append(es, t)
		}
	}
	return es
}

// treesAlone reports whether every line that reports on the entry name
// of the directory dir is a tree's.
func (c *config) treesAlone(dir, name string) bool {
	owners := c.childOwners(dir, name)
	for _, o := range owners {
		if !o.Tree {
			return false
		}
	}
	return len(owners) > 0
}

// treesAt returns the trees that hold the directory dir, as their root or
// below it.
func (c *config) treesAt(dir string) []*entry {
	// The trees are few, and a directory may be thousands deep: each is
	// looked at, not each directory above dir.
	var ts []*entry
	for _, t := range c.treeList {
		if under(dir, t.Path) {
			ts = append(ts, t)
		}
	}
	return ts
}

// entryPaths returns the paths of entries.
func entryPaths(entries []*entry) []string {
	paths := make([]string, len(entries))
	for i, e := range entries {
		paths[i] = e.Path
	}
	return paths
}
