package main

import (
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

var parseLineTests = []struct {
	line   string
	fields []string // nil: the line is invalid
}{
	{`/bin/ls, rpm -V coreutils`, []string{"/bin/ls", "rpm -V coreutils"}},
	{`/root, , .bash_history`, []string{"/root", "", ".bash_history"}},
	{`/root,,.bash_history`, []string{"/root", "", ".bash_history"}},
	{`,a,b`, []string{"", "a", "b"}},
	{`a,b,`, []string{"a", "b", ""}},
	{`a , b`, []string{"a", "b"}},
	{"a\t,\tb", []string{"a", "b"}},
	{`  /x ,  y  `, []string{"  /x", "y  "}},
	{`"/tmp/odd, name", echo`, []string{"/tmp/odd, name", "echo"}},
	{`'/tmp/odd, name', echo`, []string{"/tmp/odd, name", "echo"}},
	{`"b\" c"`, []string{`b" c`}},
	{`"a\\b"`, []string{`a\b`}},
	{`'b\' c'`, []string{`b\' c`}},
	{`'a\\b'`, []string{`a\\b`}},
	{`a\,b`, []string{"a,b"}},
	{`a\\b`, []string{`a\b`}},
	{`a\ b`, []string{`a b`}},
	{`foo"bar baz"qux`, []string{"foobar bazqux"}},
	{`"a"'b'c`, []string{"abc"}},
	{`"a" , b`, []string{"a", "b"}},
	{`"", x`, []string{"", "x"}},
	{`"a"`, []string{"a"}},
	{`/x, "echo a, b", n1 | n2`, []string{"/x", "echo a, b", "n1 | n2"}},
	{`a, "unbalanced, c`, nil},
	{`a, 'unbalanced`, nil},
	{`a"b`, nil},
	{`x\`, nil},
	{``, nil},
}

func TestParseLine(t *testing.T) {
	for _, tt := range parseLineTests {
		fields, ok := parseLine(tt.line)
		if tt.fields == nil {
			if ok && len(fields) > 0 {
				t.Errorf("parseLine(%q) = %q, want the line invalid", tt.line, fields)
			}
			continue
		}
		if !ok || !reflect.DeepEqual(fields, tt.fields) {
			t.Errorf("parseLine(%q) = %q, %v; want %q", tt.line, fields, ok, tt.fields)
		}
	}
}

// TestParseLineMatchesPerl compares parseLine with Perl's own
// Text::ParseWords (in Debian's essential perl-base) on the table above and
// on random lines made of the characters that matter.
func TestParseLineMatchesPerl(t *testing.T) {
	perl, err := exec.LookPath("perl")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("perl is missing; Debian's perl-base should provide it")
		}
		t.Skip("no perl on this machine")
	}
	lines := []string{}
	for _, tt := range parseLineTests {
		lines = append(lines, tt.line)
	}
	r := rand.New(rand.NewSource(1))
	const alphabet = `ab ,,"'\` + "\t|/"
	for range 3000 {
		var b strings.Builder
		for range r.Intn(12) {
			b.WriteByte(alphabet[r.Intn(len(alphabet))])
		}
		lines = append(lines, b.String())
	}
	// Perl prints, for each line, the number of fields, then each field
	// ("U" for undef), NUL-separated.
	script := `use Text::ParseWords; $/ = "\0";
while (my $l = <STDIN>) { chomp $l; my @f = parse_line('\s*,\s*', 0, $l);
  print scalar(@f), "\0"; print defined($_) ? "D$_\0" : "U\0" for @f; }`
	cmd := exec.Command(perl, "-e", script)
	cmd.Stdin = strings.NewReader(strings.Join(lines, "\x00") + "\x00")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("perl: %v", err)
	}
	words := strings.Split(string(out), "\x00")
	for _, line := range lines {
		n, err := strconv.Atoi(words[0])
		if err != nil {
			t.Fatalf("bad perl output %q", words[0])
		}
		var want []string
		for _, w := range words[1 : 1+n] {
			want = append(want, strings.TrimPrefix(strings.TrimPrefix(w, "D"), "U"))
		}
		words = words[1+n:]
		got, ok := parseLine(line)
		if !ok {
			got = nil
		}
		if len(got) == 0 && len(want) == 0 {
			continue
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("parseLine(%q) = %q; Perl gives %q", line, got, want)
		}
	}
}

func FuzzParseLine(f *testing.F) {
	for _, tt := range parseLineTests {
		f.Add(tt.line)
	}
	f.Fuzz(func(t *testing.T, line string) {
		fields, ok := parseLine(line)
		if !ok && fields != nil {
			t.Fatalf("parseLine(%q) returned fields %q with ok false", line, fields)
		}
		// A field never holds more than the line did.
		for _, field := range fields {
			if len(field) > len(line) {
				t.Fatalf("parseLine(%q): field %q longer than the line", line, field)
			}
		}
		parseEntry(line) // must not panic either
	})
}

func TestParseConfig(t *testing.T) {
	text := strings.Join([]string{
		"# Famids configuration file.",
		"   # an indented comment",
		"",
		"  \t",
		"/bin/login, rpm -V util-linux\r",
		"/root, , .bash_history",
		`"/tmp/odd, name" , echo odd`,
		"/root, echo root, .rhosts | .*history | .bash_history",
		"relative/path, echo no",
		", echo nothing",
		`/x, "unbalanced`,
		"/etc/passwd, echo first",
		"/etc/passwd",
		"/y, a, b, c",
		"/z, , bad/name",
		"/w, , [unclosed",
		"/etc//shadow/",
	}, "\n")
	cfg, problems := parseConfig("famids.conf", text)
	want := []*entry{
		{Path: "/bin/login", Action: "rpm -V util-linux", Line: 5},
		{Path: "/root", Action: "echo root", Names: []string{".bash_history", ".rhosts", ".*history"}, Line: 8},
		{Path: "/tmp/odd, name", Action: "echo odd", Line: 7},
		{Path: "/etc/passwd", Action: "", Line: 13}, // the last action wins, even an empty one
		{Path: "/y", Action: "a", Names: []string{"b"}, Line: 14},
		{Path: "/etc/shadow", Line: 17},
	}
	for _, e := range cfg.Entries {
		if (e.set != nil) != (len(e.Names) > 0) {
			t.Errorf("%s: names %q sealed as %v", e.Path, e.Names, e.set)
		}
		e.set = nil // what it matches is TestEntryMatches's
	}
	if !reflect.DeepEqual(cfg.Entries, want) {
		for _, e := range cfg.Entries {
			t.Logf("got %+v", *e)
		}
		t.Fatalf("entries differ from what was expected")
	}
	wantProblems := []string{
		`famids.conf:9: path relative/path is not absolute`,
		`famids.conf:10: no path before the first comma`,
		`famids.conf:11: unbalanced quote or trailing backslash: "/x, \"unbalanced"`,
		`famids.conf:14: warning: 1 field(s) after the important names ignored (quote an action that holds a comma)`,
		`famids.conf:15: important name bad/name holds a slash: names are entries of the directory`,
		`famids.conf:16: important name [unclosed is not a valid glob`,
	}
	var got []string
	for _, p := range problems {
		got = append(got, p.String())
	}
	if !reflect.DeepEqual(got, wantProblems) {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(wantProblems, "\n"))
	}
}

func TestEntryMatches(t *testing.T) {
	e := &entry{Path: "/root", Names: []string{".bash_history", "*.so", ".*rc", "core.*", "id_[rd]sa*", ".ssh?"}}
	for name, want := range map[string]bool{
		".bash_history": true, "libx.so": true, ".bashrc": true, ".profile": false, "bash_history": false,
		"core.123": true, "core": false, "id_rsa.pub": true, "id_dsa": true, "id_ecdsa": false, ".ssh2": true, ".ssh": false,
		"x.so.1": false, ".rc": true, "*.so": true,
	} {
		if got := e.matches(name); got != want {
			t.Errorf("matches(%q) = %v, want %v", name, got, want)
		}
	}
	if !(&entry{Path: "/tmp"}).matches("anything") {
		t.Error("a directory without important names must match every entry")
	}
}

func TestReadConfigErrors(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := readConfig(filepath.Join(dir, "nope.conf")); err == nil || !strings.Contains(err.Error(), "nope.conf") {
		t.Errorf("missing file: err = %v, want one naming the file", err)
	}
	bin := filepath.Join(dir, "bin.conf")
	os.WriteFile(bin, []byte("/x\x00y\n"), 0o600)
	if _, _, err := readConfig(bin); err == nil || !strings.Contains(err.Error(), "bin.conf") {
		t.Errorf("binary file: err = %v, want one naming the file", err)
	}
}

// untrustedConfig reads file as famids does and returns why it cannot be
// trusted to name commands.
func untrustedConfig(t *testing.T, file string) string {
	t.Helper()
	cfg, _, err := readConfig(file)
	must(t, err)
	return cfg.Untrusted
}

func TestInsecureConfig(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "etc")
	must(t, os.Mkdir(dir, 0o755))
	file := filepath.Join(dir, "famids.conf")
	os.WriteFile(file, []byte("/etc/passwd\n"), 0o600)
	if why := untrustedConfig(t, file); why != "" {
		t.Errorf("mode 0600 owned by us: %s", why)
	}
	os.Chmod(file, 0o620)
	if why := untrustedConfig(t, file); !strings.Contains(why, "writable by group or others (mode 0620)") {
		t.Errorf("mode 0620: %q", why)
	}
	os.Chmod(file, 0o602)
	if why := untrustedConfig(t, file); !strings.Contains(why, "writable") {
		t.Errorf("mode 0602: %q", why)
	}
	os.Chmod(file, 0o600)
	if os.Getuid() == 0 {
		os.Chown(file, 12345, 0)
		if why := untrustedConfig(t, file); !strings.Contains(why, "owned by uid 12345") {
			t.Errorf("owned by uid 12345: %q", why)
		}
		os.Chown(file, 0, 0)
		// A directory above it that someone else owns, or may write.
		os.Chown(dir, 12345, 0)
		if why := untrustedConfig(t, file); !strings.Contains(why, "directory "+dir+" is owned by uid 12345") {
			t.Errorf("in a directory owned by uid 12345: %q", why)
		}
		os.Chown(dir, 0, 0)
	}
	os.Chmod(dir, 0o777)
	if why := untrustedConfig(t, file); !strings.Contains(why, "directory "+dir+" is writable by group or others") {
		t.Errorf("in a directory of mode 0777: %q", why)
	}
	syscall.Chmod(dir, 0o1777) // sticky, as /tmp: only the file's owner can replace it
	if why := untrustedConfig(t, file); why != "" {
		t.Errorf("in a sticky directory: %q", why)
	}
	os.Chmod(dir, 0o755)
	// Opened through a symbolic link: the directories of the file it
	// really is count too.
	other := filepath.Join(parent, "other")
	must(t, os.Mkdir(other, 0o755))
	must(t, os.Chmod(other, 0o777)) // past the umask
	real := filepath.Join(other, "real.conf")
	os.WriteFile(real, []byte("/etc/passwd\n"), 0o600)
	link := filepath.Join(dir, "link.conf")
	must(t, os.Symlink(real, link))
	if why := untrustedConfig(t, link); !strings.Contains(why, "directory "+other+" is writable") {
		t.Errorf("a link to a file in a directory of mode 0777: %q", why)
	}
}

// A configuration reached through a symbolic link another user owns, in
// a sticky directory: its owner can point it at another file.
func TestConfigThroughAUsersLink(t *testing.T) {
	base := t.TempDir()
	sticky := filepath.Join(base, "sd")
	must(t, os.Mkdir(sticky, 0o755))
	must(t, syscall.Chmod(sticky, 0o1777))
	conf := filepath.Join(base, "famids.conf")
	must(t, os.WriteFile(conf, []byte("/etc/passwd, true\n"), 0o600))
	link := filepath.Join(sticky, "conf")
	must(t, os.Symlink(conf, link))
	must(t, os.Lchown(link, 65534, 65534))
	if why := untrustedConfig(t, link); !strings.Contains(why, "symbolic link "+link+" is owned by uid 65534") {
		t.Errorf("a configuration through a user's link: %q", why)
	}
	must(t, os.Lchown(link, 0, 0))
	if why := untrustedConfig(t, link); why != "" {
		t.Errorf("a configuration through root's link in a sticky directory: %q", why)
	}
}

// A FIFO or a huge file in the configuration's place is refused at once.
func TestReadConfigRefusesOddFiles(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo.conf")
	must(t, syscall.Mkfifo(fifo, 0o600))
	done := make(chan error, 1)
	go func() { _, _, err := readConfig(fifo); done <- err }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("a FIFO: err = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("reading a FIFO as the configuration blocked")
	}
	big := filepath.Join(dir, "big.conf")
	f, err := os.Create(big)
	must(t, err)
	must(t, f.Truncate(maxConfigSize+1))
	f.Close()
	if _, _, err := readConfig(big); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("a huge file: err = %v", err)
	}
}

// The same directory on two lines: important names add up, but a line
// with none takes every entry, and another line's names never narrow it.
func TestSameDirectoryOnTwoLines(t *testing.T) {
	for _, tt := range []struct {
		conf string
		want []string
	}{
		{"/d\n/d, , imp*\n", nil},
		{"/d, , imp*\n/d\n", nil},
		{"/d, , junk*\n/d, , imp*\n", []string{"junk*", "imp*"}},
	} {
		cfg, problems := parseConfig("c", tt.conf)
		if len(problems) > 0 || len(cfg.Entries) != 1 {
			t.Fatalf("%q: %d entries, problems %v", tt.conf, len(cfg.Entries), problems)
		}
		if got := cfg.Entries[0].Names; !slices.Equal(got, tt.want) {
			t.Errorf("%q: important names %q, want %q (none: every entry)", tt.conf, got, tt.want)
		}
	}
}
