// famids watches the files an intruder would trojan or edit and mails root
// the moment one of them changes. It is a port of the Perl famids script,
// reading the same /etc/famids.conf and sending the same reports, built on
// inotify.
//
// Usage:
//
//	famids [flags]
//
// See README.md for the configuration format, the reports, the signals and
// how to run famids from /etc/inittab or systemd.
package main

import (
	"flag"
	"fmt"
	"log/syslog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/shlex"
	"golang.org/x/sys/unix"
)

const version = "1.0.0"

var (
	configFile    = flag.String("config", "/etc/famids.conf", "configuration `file`")
	notify        = flag.String("notify", "root", "recipient of every report")
	mailCommand   = flag.String("mail", "/bin/mail", "mail `command`, run as COMMAND -s SUBJECT ADDR with the report on standard input (split like a shell would, never run by one)")
	toStdout      = flag.Bool("stdout", false, "print reports on standard output instead of mailing them")
	checkOnly     = flag.Bool("check", false, "validate the configuration, print one line per entry, and exit (0 valid, 1 not)")
	settle        = flag.Duration("settle", 500*time.Millisecond, "quiet `time` that closes a burst of events on one path (0: one report per event)")
	actionTimeout = flag.Duration("action-timeout", 5*time.Minute, "kill an action still running after this `duration`")
	stateFile     = flag.String("state", "/var/lib/famids/state.json", "`file` keeping the baseline between runs (\"\": none)")
	useSyslog     = flag.Bool("syslog", false, "also log each report and notice to syslog (authpriv, warning, tag famids)")
	maxSuspend    = flag.Duration("max-suspend", time.Hour, "a suspension (SIGUSR1) ends by itself after this `duration`")
	verifyEvery   = flag.Duration("verify", time.Hour, "compare every watched path with its record this often, to find what no event tells (0: never)")
	showVersion   = flag.Bool("version", false, "print the version and exit")
)

// readRetry is how long famids waits after reading events fails before it
// tries once more, as the Perl script gave its FAM server another chance.
const readRetry = 15 * time.Second

func usage() {
	fmt.Fprintf(os.Stderr, "usage: famids [flags]\n\nfamids watches the paths listed in its configuration file and mails a report\nwhen one of them changes. It runs in the foreground.\n\nFlags:\n")
	flag.PrintDefaults()
}

func main() {
	os.Exit(run())
}

// run is famids; it returns the exit status, so that deferred clean-up
// always runs.
func run() int {
	flag.Usage = usage
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "famids: unexpected argument %q\n", flag.Arg(0))
		flag.Usage()
		return 2
	}
	if *showVersion {
		fmt.Println("famids", version)
		return 0
	}
	for _, bad := range []struct {
		ok   bool
		flag string
		v    time.Duration
		want string
	}{
		{*settle >= 0, "settle", *settle, "must not be negative"},
		{*actionTimeout > 0, "action-timeout", *actionTimeout, "must be positive"},
		{*maxSuspend > 0, "max-suspend", *maxSuspend, "must be positive"},
		{*verifyEvery >= 0, "verify", *verifyEvery, "must not be negative"},
	} {
		if !bad.ok {
			fmt.Fprintf(os.Stderr, "famids: -%s %v: %s\n", bad.flag, bad.v, bad.want)
			return 2
		}
	}
	cfg, problems, err := readConfig(*configFile)
	if err != nil {
		fmt.Fprintf(os.Stderr, "famids: cannot read the configuration: %v\n", err)
		return 2
	}
	if *checkOnly {
		return check(cfg, problems)
	}
	var argv []string
	if !*toStdout {
		argv, err = shlex.Split(*mailCommand)
		if err == nil && len(argv) == 0 {
			err = fmt.Errorf("empty command")
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "famids: -mail %q: %v\n", *mailCommand, err)
			return 2
		}
	}
	m := newMailer(argv, *notify, os.Stdout, os.Stderr)
	defer func() { m.close(time.Now().Add(8 * time.Second)) }()
	d, err := newDaemon(cfg, m)
	if err != nil {
		fmt.Fprintf(os.Stderr, "famids: ERROR: %v\n", err)
		return 1
	}
	defer d.close()
	// Signals are caught before famids says it is ready, so that one sent
	// the moment it is cannot kill it with reports still pending.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGUSR2)
	defer signal.Stop(sigs)
	limitMemory()
	d.start(problems)
	fitMemoryLimit()
	sdNotify("READY=1")
	return d.loop(sigs)
}

// memoryLimit is the soft limit famids keeps its memory to, unless
// $GOMEMLIMIT sets one: it runs for months beside the services it guards,
// and without a limit the garbage collector lets the heap grow to twice what
// famids holds. 10,000 watched files take about 12 MiB.
const memoryLimit = 20 << 20

func limitMemory() {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(memoryLimit)
	}
}

// fitMemoryLimit raises the limit, once everything is watched, when
// famids holds so much that keeping to it would mean collecting garbage
// all the time.
func fitMemoryLimit() {
	if os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	live := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(live)
	if held := int64(live[0].Value.Uint64()); 3*held > 2*memoryLimit {
		debug.SetMemoryLimit(2 * held)
	}
}

// check is -check: one line per entry on standard output, problems on
// standard error.
func check(cfg *config, problems []problem) int {
	status := 0
	for _, p := range problems {
		fmt.Fprintf(os.Stderr, "famids: %s\n", p)
		if !p.Warning {
			status = 1
		}
	}
	for _, e := range cfg.Entries {
		fmt.Println(checkLine(e))
		fi, err := os.Stat(e.Path)
		for _, w := range entryWarnings(cfg, e, err == nil, err == nil && fi.IsDir()) {
			fmt.Fprintf(os.Stderr, "famids: %s\n", w)
		}
	}
	if why := insecureConfig(cfg.File); why != "" {
		fmt.Fprintf(os.Stderr, "famids: warning: actions will not run: %s\n", why)
	}
	return status
}

// entryWarnings says what is odd about an entry whose path exists, or is
// a directory, as given.
func entryWarnings(cfg *config, e *entry, exists, dir bool) []string {
	switch {
	case !exists:
		return []string{fmt.Sprintf("%s:%d: warning: %s does not exist (yet); its creation will be reported", cfg.File, e.Line, quoteIfNeeded(e.Path))}
	case !dir && len(e.Names) > 0:
		return []string{fmt.Sprintf("%s:%d: warning: %s is not a directory: its important names are ignored", cfg.File, e.Line, quoteIfNeeded(e.Path))}
	}
	return nil
}

// insecureConfig returns why the configuration file must not be trusted to
// name commands to run, or "".
func insecureConfig(file string) string {
	var st unix.Stat_t
	if err := unix.Stat(file, &st); err != nil {
		return fmt.Sprintf("cannot stat %s: %v", file, err)
	}
	if st.Mode&0o022 != 0 {
		return fmt.Sprintf("%s is writable by group or others (mode %04o)", file, st.Mode&0o7777)
	}
	if st.Uid != 0 && int(st.Uid) != os.Getuid() {
		return fmt.Sprintf("%s is owned by uid %d, neither root nor the user famids runs as (uid %d)", file, st.Uid, os.Getuid())
	}
	return ""
}

// A daemon is a running famids: the configuration, its watches, the
// bursts of events waiting to settle, and what it last recorded of each
// path it reports on.
type daemon struct {
	cfg       *config
	w         *watcher
	mail      *mailer
	acts      *actions
	rec       *recorder
	log       *syslog.Writer // with -syslog, once connected
	host      string
	actionsOK bool

	record  map[string]attrs  // by reported path; a missing key is "absent"
	pending map[string]*burst // by reported path
	hits    []hit             // reused by handle, which routes thousands of events a second in a storm
	warned  map[string]bool   // watch and state errors already reported

	watchErrs []string            // watches that could not be set, not yet in a notice
	unwatched map[string][]string // entries with a watch that could not be set, with the errors
	leaseWait time.Duration       // how long a file another process holds a lease on may stay unreadable

	verifyAt  time.Time // when the next verification is due; zero without -verify
	hashedAll time.Time // when every file was last hashed, whatever its stat said
	mountAt   time.Time // when a change of the mount table is acted on; zero when none is

	state   stateKeeper
	started time.Time

	fatal string // why famids stops on its own, for the next run

	holding   bool      // events are counted, not reported: suspended, or catching up
	suspended time.Time // when SIGUSR1 suspended reporting; zero when reporting
	held      int       // events seen while suspended
	overflows int       // queue overflows while suspended
}

// A burst is the events seen on one path until it settles.
type burst struct {
	path     string
	told     bool     // an event said the path changed; else it is compared, and reported only if it differs
	events   []string // FAM event names, each once, in the order seen
	entries  []string // the configuration entries whose actions run
	found    string   // how a difference was found when not from an event
	first    time.Time
	deadline time.Time
}

// An observation is one event on one path, on behalf of an entry. A weak
// one (a file opened for writing was closed, an inode's metadata changed)
// may change nothing the path's record holds: its path is compared, and
// reported only when it differs.
type observation struct {
	path  string
	event string
	entry string
	weak  bool
}

func newDaemon(cfg *config, m *mailer) (*daemon, error) {
	w, err := newWatcher()
	if err != nil {
		return nil, err
	}
	host, _ := os.Hostname()
	return &daemon{
		cfg:       cfg,
		w:         w,
		mail:      m,
		acts:      newActions(*actionTimeout, m.send),
		rec:       newRecorder(),
		host:      host,
		record:    make(map[string]attrs),
		pending:   make(map[string]*burst),
		warned:    make(map[string]bool),
		unwatched: make(map[string][]string),
		leaseWait: leaseBreakTime() + 2*time.Second,
		state:     stateKeeper{file: *stateFile},
		started:   time.Now(),
	}, nil
}

// leaseBreakTime returns how long the kernel lets a process that holds a
// lease on a file keep it once another opens the file
// (/proc/sys/fs/lease-break-time, fcntl(2)).
func leaseBreakTime() time.Duration {
	data, err := os.ReadFile("/proc/sys/fs/lease-break-time")
	if err != nil {
		return 45 * time.Second // the kernel's default
	}
	var s int
	if _, err := fmt.Sscan(string(data), &s); err != nil || s < 0 {
		return 45 * time.Second
	}
	return time.Duration(s) * time.Second
}

// close releases what the daemon holds once it has stopped.
func (d *daemon) close() {
	d.state.unlock()
	if d.log != nil {
		d.log.Close()
	}
}

// start reports the configuration's problems, sets every watch, records
// the baseline and reports what changed since the previous run.
func (d *daemon) start(problems []problem) {
	var invalid []string
	for _, p := range problems {
		fmt.Fprintf(os.Stderr, "famids: %s\n", p)
		if !p.Warning {
			invalid = append(invalid, p.String())
		}
	}
	if len(invalid) > 0 {
		d.notice(fmt.Sprintf("%d invalid line(s) in %s skipped; the rest is watched", len(invalid), d.cfg.File), invalid...)
	}
	d.checkConfigSecurity()
	prev := d.loadState()
	c := newWalkCache()
	for _, e := range d.cfg.Entries {
		d.armNew(e, c)
	}
	if d.w.count() == 0 {
		d.notice("nothing is watched", fmt.Sprintf("%s has no entry that could be watched.", d.cfg.File))
	}
	d.baseline(prev)
	d.noticeWatchErrors()
	d.hashedAll = time.Now()
	if *verifyEvery > 0 {
		d.verifyAt = d.hashedAll.Add(*verifyEvery)
	}
	if d.mail.idle() {
		d.save(false)
	} // else the loop saves once what was found is delivered
}

// checkConfigSecurity lets actions run only when the configuration file
// can be trusted to name commands, and says so when it cannot.
func (d *daemon) checkConfigSecurity() {
	why := insecureConfig(d.cfg.File)
	d.actionsOK = why == ""
	if why != "" {
		fmt.Fprintf(os.Stderr, "famids: actions will not run: %s\n", why)
		d.notice("actions will not run: "+why, "Anyone who can edit the configuration could run commands as the user famids runs as.",
			"Reports are still sent. Make it owned by root and not writable by group or others, then restart famids or send it SIGHUP.")
	}
}

// loop is the event loop. One poll(2) waits for inotify events, signals
// and the next deadline; the loop then folds events into bursts, reports
// each burst once it settles, saves the state, and so on, until a signal
// stops famids. One goroutine does it all: a report starts on the thread
// that woke up for its event.
func (d *daemon) loop(sigs <-chan os.Signal) int {
	signals := d.forwardSignals(sigs)
	r := &eventReader{src: d.w, retry: readRetry, buf: make([]byte, 64<<10)}
	var saveAt time.Time // the state is saved at most once a second
	var beatAt time.Time // the state file says famids is alive
	if d.state.file != "" {
		beatAt = time.Now().Add(heartbeatEvery)
	}
	for {
		now := time.Now()
		next := earliest(d.nextDeadline(), saveAt, beatAt, d.suspensionEnd(), r.resumeAt(now), d.verifyAt, d.mountAt)
		timeout := time.Duration(-1)
		if !next.IsZero() {
			timeout = max(next.Sub(now), 0)
		}
		var readable, mounted bool
		if left := r.pauseLeft(now); left > 0 {
			// A storm's pause: sleeping lets Go's scheduler rest, where
			// waiting in a system call would keep it busy. A signal
			// waits for the pause to end.
			time.Sleep(min(left, timeout))
			readable = true // what piled up meanwhile
		} else {
			readable, mounted = d.w.wait(timeout, r.waiting(now))
		}
		if mounted && d.mountAt.IsZero() {
			d.mountAt = time.Now().Add(mountSettle)
		}

		now = time.Now()
		for len(signals) > 0 {
			if code, stop := d.signal(<-signals); stop {
				return code
			}
		}
		if readable || r.retrying(now) {
			evs, err := r.read(now)
			if err != nil {
				fmt.Fprintf(os.Stderr, "famids: ERROR: %v\nPossibly the inotify instance is broken; exiting so that init restarts famids.\n", err)
				d.fatal = err.Error()
				d.stop()
				return 1
			}
			d.handle(evs)
		}
		now = time.Now()
		d.flush(now)
		switch {
		case !d.state.dirty:
			saveAt = time.Time{}
		case saveAt.IsZero():
			saveAt = now.Add(time.Second)
		case !now.Before(saveAt) && d.mail.idle():
			d.save(false)
			saveAt = time.Time{}
		case !now.Before(saveAt):
			saveAt = now.Add(time.Second) // once what was reported is delivered
		}
		if !beatAt.IsZero() && !now.Before(beatAt) {
			d.state.touch()
			beatAt = now.Add(heartbeatEvery)
		}
		if end := d.suspensionEnd(); !end.IsZero() && !now.Before(end) {
			d.resume(fmt.Sprintf("by itself after %v", *maxSuspend))
		}
		if !d.mountAt.IsZero() && !now.Before(d.mountAt) {
			d.mountAt = time.Time{}
			d.remount()
		}
		if !d.verifyAt.IsZero() && !now.Before(d.verifyAt) {
			d.verify()
			d.verifyAt = time.Now().Add(*verifyEvery)
		}
		d.noticeWatchErrors()
	}
}

// mountSettle is how long famids waits after a change of the mount table
// before it acts on it: a mount seldom comes alone.
const mountSettle = 100 * time.Millisecond

// earliest returns the earliest of times that is not zero, or zero.
func earliest(times ...time.Time) time.Time {
	var first time.Time
	for _, t := range times {
		if !t.IsZero() && (first.IsZero() || t.Before(first)) {
			first = t
		}
	}
	return first
}

// suspensionEnd returns when a suspension ends by itself, or zero.
func (d *daemon) suspensionEnd() time.Time {
	if d.suspended.IsZero() {
		return time.Time{}
	}
	return d.suspended.Add(*maxSuspend)
}

// forwardSignals passes the signals caught on to the loop, waking it.
func (d *daemon) forwardSignals(sigs <-chan os.Signal) <-chan os.Signal {
	out := make(chan os.Signal, 8)
	go func() {
		for sig := range sigs {
			out <- sig
			d.w.poke()
		}
	}()
	return out
}

// signal acts on a signal; it returns the exit status when famids stops.
func (d *daemon) signal(sig os.Signal) (code int, stop bool) {
	switch sig {
	case syscall.SIGHUP:
		d.reload()
	case syscall.SIGUSR1:
		d.suspend()
	case syscall.SIGUSR2:
		d.resume("on SIGUSR2")
	default:
		sdNotify("STOPPING=1")
		d.drain()
		d.stop()
		return 0, true
	}
	return 0, false
}

// nextDeadline returns the earliest burst deadline, or the zero time.
func (d *daemon) nextDeadline() time.Time {
	var next time.Time
	for _, b := range d.pending {
		next = earliest(next, b.deadline)
	}
	return next
}

// drain handles the events already queued, so that a change made just
// before famids was told to stop is still reported.
func (d *daemon) drain() {
	evs, err := d.w.queued()
	d.handle(evs)
	if err != nil {
		fmt.Fprintf(os.Stderr, "famids: %v\n", err) // the loop, if it goes on, meets it again
	}
}

// catchUp takes in every event queued until now without reporting it, so
// that a comparison that follows finds what they would tell, once.
func (d *daemon) catchUp() {
	held := d.holding
	d.holding = true
	defer func() { d.holding = held }()
	d.drain()
}

// stop reports every pending burst, stops the actions, each of which
// reports how it ended, delivers every message, and only then saves the
// state: a change whose report was not delivered is found again at the
// next start.
func (d *daemon) stop() {
	if !d.suspended.IsZero() {
		d.resume("as famids stops")
	}
	d.w.Close()
	d.flush(time.Time{})
	d.acts.stop()
	d.mail.close(time.Now().Add(8 * time.Second))
	d.save(true)
}

// arm sets the watches of an entry and returns what its path became since
// it was last armed, as observations.
func (d *daemon) arm(e *entry) []observation {
	return d.armWith(e, nil)
}

// armNew arms an entry new to famids and warns of what is odd about it,
// as the watches just found the file system.
func (d *daemon) armNew(e *entry, c *walkCache) {
	d.armWith(e, c)
	exists, dir := d.w.kind(e.Path)
	for _, w := range entryWarnings(d.cfg, e, exists, dir) {
		fmt.Fprintf(os.Stderr, "famids: %s\n", w)
	}
}

// armWith is arm, with what c remembers of the file system in a batch.
func (d *daemon) armWith(e *entry, c *walkCache) []observation {
	became, errs := d.w.armWith(e.Path, c)
	d.watchFailed(e.Path, errs...)
	if became == "" {
		return nil
	}
	return []observation{{path: e.Path, event: became, entry: e.Path}}
}

// watchFailed notes the watches of entry that could not be set, or, with
// no errors, that they all are: those that failed are tried again at each
// verification and each reload, and told in one notice (see
// noticeWatchErrors), each once.
func (d *daemon) watchFailed(entry string, errs ...error) {
	if len(errs) == 0 {
		for _, msg := range d.unwatched[entry] {
			delete(d.warned, msg) // told again should it fail again
		}
		delete(d.unwatched, entry)
		return
	}
	for _, err := range errs {
		msg := err.Error()
		if !contains(d.unwatched[entry], msg) {
			d.unwatched[entry] = append(d.unwatched[entry], msg)
		}
		if !d.warned[msg] {
			d.warned[msg] = true
			d.watchErrs = append(d.watchErrs, msg)
		}
	}
}

// noticeWatchErrors tells, in one notice, of every watch that could not
// be set since it was last called: a hundred failures are one mail.
func (d *daemon) noticeWatchErrors() {
	errs := d.watchErrs
	if len(errs) == 0 {
		return
	}
	d.watchErrs = nil
	const shown = 20 // on standard error; the notice lists them all
	for i, msg := range errs {
		if i == shown {
			fmt.Fprintf(os.Stderr, "famids: ... and %d more watches could not be set (the notice lists them)\n", len(errs)-shown)
			break
		}
		fmt.Fprintf(os.Stderr, "famids: %s\n", quoteIfNeeded(msg))
	}
	summary := "a watch could not be set: " + quoteIfNeeded(errs[0])
	if len(errs) > 1 {
		summary = fmt.Sprintf("%d watches could not be set", len(errs))
	}
	details := []string{"What these paths lead to is not fully watched; the rest is. famids tries again at each verification (-verify) and each reload (SIGHUP)."}
	for _, msg := range errs {
		details = append(details, "- "+quoteIfNeeded(msg))
		if strings.Contains(msg, errNoWatches.Error()) && !contains(details, noWatchesAdvice) {
			details = append([]string{noWatchesAdvice}, details...)
		}
	}
	d.notice(summary, details...)
}

const noWatchesAdvice = "Raise /proc/sys/fs/inotify/max_user_watches (sysctl fs.inotify.max_user_watches), then send famids SIGHUP."

// retryWatches arms again every entry with a watch that could not be set,
// and sets the aliases that are missing.
func (d *daemon) retryWatches() {
	c := newWalkCache()
	for p := range d.unwatched {
		if e := d.cfg.lookup(p); e != nil {
			d.armWith(e, c)
		} else {
			d.watchFailed(p) // no longer an entry
		}
	}
	d.aliasAll(d.watchedPaths())
}

// aliasEntry watches path through its inode when it is an entry of a
// watched directory (see watcher.alias): called before path is recorded,
// so that any change after the record sends an event.
func (d *daemon) aliasEntry(path string) {
	dir, name := filepath.Dir(path), filepath.Base(path)
	e := d.cfg.lookup(dir)
	if e == nil || dir == path || !e.matches(name) {
		return
	}
	if _, isDir := d.w.kind(dir); !isDir {
		return
	}
	if err := d.w.alias(dir, name); err != nil {
		d.watchFailed(dir, err)
	}
}

// aliasAll sets the aliases of the paths that have none yet.
func (d *daemon) aliasAll(paths []string) {
	for _, p := range paths {
		if dir := filepath.Dir(p); d.cfg.lookup(dir) != nil && !d.w.aliased(dir, filepath.Base(p)) {
			d.aliasEntry(p)
		}
	}
}

// handle turns one batch of events into observations. The same observation
// twice in a batch (a write seen through a file and through its directory)
// counts once. After a queue overflow, every path is compared with its
// record: the events that would have told are lost.
func (d *daemon) handle(evs []event) {
	var obs []observation
	overflowed := false
	hits := d.hits[:0]
	for _, ev := range evs {
		if ev.mask&unix.IN_Q_OVERFLOW != 0 {
			overflowed = true
			continue
		}
		hits = d.w.route(ev, hits[:0])
		for _, h := range hits {
			if e := d.cfg.lookup(h.path); e != nil {
				obs = append(obs, d.interpret(e, h)...)
			}
		}
	}
	d.hits = hits
	var seen map[observation]bool
	if len(obs) > 1 {
		seen = make(map[observation]bool, len(obs))
	}
	for _, o := range obs {
		if !seen[o] && !d.state.owns(o.path) {
			if seen != nil {
				seen[o] = true
			}
			d.observe(o)
		}
	}
	if overflowed {
		d.overflow()
	}
	if *settle == 0 {
		d.flush(time.Time{})
	}
}

// Masks that tell how a directory entry changed.
const (
	nsMask   = unix.IN_CREATE | unix.IN_DELETE | unix.IN_MOVED_FROM | unix.IN_MOVED_TO
	goneMask = unix.IN_DELETE_SELF | unix.IN_MOVE_SELF | unix.IN_IGNORED | unix.IN_UNMOUNT
)

// interpret maps an event, routed to entry e, to what it says happened to
// which path, and re-arms e when a name on its way changed.
func (d *daemon) interpret(e *entry, h hit) []observation {
	named := h.name != ""
	switch h.role {
	case roleLeaf:
		if named && h.mask&nsMask != 0 {
			d.arm(e)
			return []observation{{path: e.Path, event: famEvent(h.mask), entry: e.Path}}
		}
		if h.mask&goneMask != 0 {
			return d.arm(e)
		}
	case roleLookup:
		if (named && h.mask&nsMask != 0) || h.mask&goneMask != 0 {
			return d.arm(e)
		}
	case roleSelf:
		switch {
		case h.mask&unix.IN_MODIFY != 0:
			return []observation{{path: e.Path, event: "change", entry: e.Path}}
		case h.mask&(unix.IN_ATTRIB|unix.IN_CLOSE_WRITE) != 0:
			// Unlinking or renaming over a file changes its link count
			// before the directory says the name went: the path is
			// compared, not reported on the word of this event.
			return []observation{{path: e.Path, event: "change", entry: e.Path, weak: true}}
		case h.mask&goneMask != 0:
			return d.arm(e)
		}
	case roleAlias:
		if h.name == "" && e.matches(h.sub.name) && h.mask&contentMask != 0 {
			p := filepath.Join(e.Path, h.sub.name)
			return []observation{{path: p, event: "change", entry: e.Path, weak: h.mask&unix.IN_MODIFY == 0}}
		}
	case roleEntries:
		switch {
		case named:
			if !e.matches(h.name) {
				return nil
			}
			if h.mask&(unix.IN_DELETE|unix.IN_MOVED_FROM) != 0 {
				d.w.unalias(e.Path, h.name) // the file may live on under another name
			}
			p := filepath.Join(e.Path, h.name)
			return []observation{{path: p, event: famEvent(h.mask), entry: e.Path, weak: h.mask&contentMask == unix.IN_CLOSE_WRITE}}
		case h.mask&unix.IN_ATTRIB != 0:
			return []observation{{path: e.Path, event: "change", entry: e.Path}}
		case h.mask&unix.IN_CLOSE_WRITE != 0:
			return nil // a directory is never written
		case h.mask&goneMask != 0:
			return d.arm(e)
		}
	}
	return nil
}

// famEvent names an inotify event as FAM did.
func famEvent(mask uint32) string {
	switch {
	case mask&(unix.IN_CREATE|unix.IN_MOVED_TO) != 0:
		return "create"
	case mask&unix.IN_DELETE != 0:
		return "delete"
	case mask&unix.IN_MOVED_FROM != 0:
		return "move"
	}
	return "change"
}

// maxBurst bounds how long a path that never goes quiet waits for its
// report, in units of -settle.
const maxBurst = 20

// weakSettle is the least a burst of weak events waits before its path is
// compared: the close of a file seldom comes alone, and the write before
// it has been reported already.
const weakSettle = 100 * time.Millisecond

// observe adds an observation to its path's burst; while events are held,
// it only counts it.
func (d *daemon) observe(o observation) {
	if d.holding {
		if !o.weak {
			d.held++
		}
		return
	}
	now := time.Now()
	b := d.pending[o.path]
	if b == nil {
		b = &burst{path: o.path, first: now}
		d.pending[o.path] = b
	}
	if !o.weak {
		b.told = true
		b.events = appendNew(b.events, o.event)
	}
	b.entries = appendNew(b.entries, o.entry)
	wait := *settle
	if !b.told {
		wait = max(wait, weakSettle)
	}
	b.deadline = now.Add(wait)
	if limit := b.first.Add(maxBurst * wait); b.deadline.After(limit) {
		b.deadline = limit
	}
	if o.event == "create" {
		d.scanCreated(o)
	}
}

// scanCreated observes the important entries of a watched directory that
// has just appeared: they may have been made before its watch was set.
func (d *daemon) scanCreated(o observation) {
	e := d.cfg.lookup(o.path)
	if e == nil || o.path != o.entry {
		return
	}
	names, err := readDirNames(e.Path)
	if err != nil {
		return
	}
	for _, n := range names {
		p := filepath.Join(e.Path, n)
		if _, known := d.record[p]; !known && e.matches(n) && d.pending[p] == nil {
			d.observe(observation{path: p, event: "create", entry: e.Path})
		}
	}
}

// flush reports every burst whose deadline has passed by now; a zero now
// reports them all.
func (d *daemon) flush(now time.Time) {
	var due []*burst
	for p, b := range d.pending {
		if now.IsZero() || !b.deadline.After(now) {
			due = append(due, b)
			delete(d.pending, p)
		}
	}
	if len(due) > 1 {
		sortBursts(due)
	}
	for _, b := range due {
		d.aliasEntry(b.path)
		after := d.rec.record(b.path, nil)
		if after.busy && !now.IsZero() && now.Before(b.first.Add(d.leaseWait)) {
			// Another process holds a lease on the file, which the
			// kernel breaks within lease-break-time: read it again
			// then, rather than report its content as unknown.
			b.deadline = now.Add(leaseRetry)
			d.pending[b.path] = b
			continue
		}
		if !b.told {
			if len(eventDiffers(d.record[b.path], after)) == 0 {
				d.remember(b.path, after)
				continue
			}
			b.events = []string{"change"}
		}
		d.report(b, after)
	}
}

// leaseRetry is how often famids tries again to read a file another
// process holds a lease on.
const leaseRetry = time.Second

// report mails the report of a burst, records the path's attributes now,
// after, and starts the actions of the entries concerned.
func (d *daemon) report(b *burst, after attrs) {
	r := &report{Path: b.path, Events: b.events, Host: d.host, Time: b.first, Found: b.found, Before: d.record[b.path], After: after}
	d.mail.send(subjectReport, r.body())
	if *useSyslog {
		d.syslog("report: " + r.summary())
	}
	d.remember(b.path, after)
	if !d.actionsOK {
		return
	}
	var started []string
	for _, p := range b.entries {
		e := d.cfg.lookup(p)
		if e == nil || e.Action == "" || contains(started, e.Action) {
			continue
		}
		started = append(started, e.Action)
		d.acts.run(trigger{action: e.Action, path: b.path, events: b.events})
	}
}

// remember records what path is now.
func (d *daemon) remember(path string, a attrs) {
	if old, ok := d.record[path]; ok == a.Exists && old.same(a) {
		return
	}
	if a.Exists {
		d.record[path] = a
	} else {
		delete(d.record, path)
	}
	d.state.dirty = d.state.file != ""
}

// notice sends famids's own news.
func (d *daemon) notice(summary string, details ...string) {
	d.mail.send(subjectNotice, noticeBody(summary, details...))
	d.syslog("notice: " + summary)
}

// syslog logs one line with -syslog. A logger that is not there yet (at
// boot) is tried again with each line.
func (d *daemon) syslog(line string) {
	if !*useSyslog {
		return
	}
	var err error
	if d.log == nil {
		d.log, err = dialSyslog()
	}
	if err == nil {
		err = d.log.Warning(line)
	}
	if err != nil {
		d.warnOnce(fmt.Sprintf("-syslog: %v; reports are still mailed", err))
	}
}

// warnOnce writes msg on standard error unless it already did.
func (d *daemon) warnOnce(msg string) {
	if !d.warned[msg] {
		d.warned[msg] = true
		fmt.Fprintf(os.Stderr, "famids: %s\n", msg)
	}
}

// recordAll records each path, on every CPU. With prev, a file that stat
// says is unchanged since prev recorded it is not read again.
func (rc *recorder) recordAll(paths []string, prev map[string]attrs) []attrs {
	out := make([]attrs, len(paths))
	next := make(chan int)
	var wg sync.WaitGroup
	for range runtime.NumCPU() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				var p *attrs
				if a, ok := prev[paths[i]]; ok {
					p = &a
				}
				out[i] = rc.record(paths[i], p)
			}
		}()
	}
	for i := range paths {
		next <- i
	}
	close(next)
	wg.Wait()
	return out
}

// readDirNames returns the names in a directory, or an error when path is
// not one.
func readDirNames(path string) ([]string, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_DIRECTORY, 0) // fails at once on a file
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Readdirnames(-1)
}

// sortBursts orders bursts by their first event, then by path, so that
// reports go out in the order things happened.
func sortBursts(bs []*burst) {
	slices.SortFunc(bs, func(a, b *burst) int {
		if c := a.first.Compare(b.first); c != 0 {
			return c
		}
		return strings.Compare(a.path, b.path)
	})
}

// sdNotify tells systemd (a unit of Type=notify) how famids is doing: READY=1
// once every watch is set. Without $NOTIFY_SOCKET it does nothing.
func sdNotify(state string) {
	addr := os.Getenv("NOTIFY_SOCKET")
	if addr == "" {
		return
	}
	if addr[0] == '@' {
		addr = "\x00" + addr[1:] // an abstract socket
	}
	conn, err := net.Dial("unixgram", addr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "famids: NOTIFY_SOCKET %s: %v\n", addr, err)
		return
	}
	defer conn.Close()
	conn.Write([]byte(state))
}
