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
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/google/shlex"
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
	maxMails      = flag.Int("max-mails", 60, "reports mailed one by one per minute for each line of the configuration, and notices; past that, that line's reports are folded into one digest a minute")
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
	if err := checkFlags(); err != nil {
		fmt.Fprintf(os.Stderr, "famids: %v\n", err)
		return 2
	}
	cfg, problems, err := readConfig(*configFile)
	if err != nil {
		fmt.Fprintf(os.Stderr, "famids: cannot read the configuration: %s\n", quoteIfNeeded(err.Error()))
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
		fmt.Fprintf(os.Stderr, "famids: ERROR: %s\n", quoteIfNeeded(err.Error()))
		return 1
	}
	defer d.close()
	// Signals are caught before famids says it is ready, so that one sent
	// the moment it is cannot kill it with reports still pending.
	sigs := make(chan os.Signal, 64) // os/signal drops what does not fit

	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGUSR2)
	defer signal.Stop(sigs)
	// A reader of -stdout (or standard error) that goes away must not end
	// famids: writing to it then fails with EPIPE, and what was written is
	// tried again, then given up, as for mail. Caught, not ignored: the
	// actions and the mail program it runs get SIGPIPE as usual.
	pipes := make(chan os.Signal, 1)
	signal.Notify(pipes, syscall.SIGPIPE)
	defer signal.Stop(pipes)
	limitMemory()
	d.start(problems)
	return d.loop(sigs)
}

// checkFlags returns what is wrong with the flags' values, naming the
// flag.
func checkFlags() error {
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
			return fmt.Errorf("-%s %v: %s", bad.flag, bad.v, bad.want)
		}
	}
	if *maxMails < 1 {
		return fmt.Errorf("-max-mails %d: must be at least 1", *maxMails)
	}
	if strings.HasPrefix(*notify, "-") || *notify == "" {
		// The mail program would take it for an option of its own.
		return fmt.Errorf("-notify %q: not an address (it must not begin with -)", *notify)
	}
	return nil
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
	if why := cfg.Untrusted; why != "" {
		fmt.Fprintf(os.Stderr, "famids: warning: actions will not run: %s\n", why)
	}
	return status
}

// entryWarnings says what is odd about an entry whose path exists, or is
// a directory, as given.
func entryWarnings(cfg *config, e *entry, exists, dir bool) []string {
	switch {
	case !exists:
		return []string{fmt.Sprintf("%s:%d: warning: %s does not exist (yet); its creation will be reported", quoteIfNeeded(cfg.File), e.Line, quoteIfNeeded(e.Path))}
	case !dir && e.Tree:
		return []string{fmt.Sprintf("%s:%d: warning: %s is not a directory: it is watched as a file, not as a tree", quoteIfNeeded(cfg.File), e.Line, quoteIfNeeded(e.Path))}
	case !dir && len(e.Names) > 0:
		return []string{fmt.Sprintf("%s:%d: warning: %s is not a directory: its important names are ignored", quoteIfNeeded(cfg.File), e.Line, quoteIfNeeded(e.Path))}
	}
	return nil
}

// A daemon is a running famids: the configuration, its watches, the
// bursts of events waiting to settle, what it last recorded of each path
// it reports on, and the jobs out in the pool. Only the event loop's
// goroutine touches it.
type daemon struct {
	cfg       *config
	w         *watcher
	poll      *poller
	jobs      *jobs
	out       *publisher
	rec       *recorder
	host      string
	actionsOK bool

	base    *baseline
	bursts  *bursts
	route   *router
	held    *writers
	arms    *armer
	scans   *scanner
	trouble *troubles

	leaseWait time.Duration // how long a file another process holds a lease on may stay unreadable

	ready  bool // famids said it is ready: the first comparison is done
	mounts mountTable

	stopping bool   // the loop is stopping: no retries, no waiting
	fatal    string // why famids stops on its own, for the next run

	susp suspension

	by    *attributor // who made a change, with a fanotify group
	trace *tracer     // the stages of each report, in BenchmarkReportLatency

	mem memoryFit
}

func newDaemon(cfg *config, m *mailer) (*daemon, error) {
	w, err := newWatcher()
	if err != nil {
		return nil, err
	}
	w.fitLimit(watchLimit())
	noBy := ""
	if w.fan, err = openFanGroup(); err != nil {
		noBy = err.Error()
	}
	p, err := newPoller()
	if err != nil {
		w.Close()
		return nil, err
	}
	host, _ := os.Hostname()
	acts := newActions(*actionTimeout, m.send)
	acts.indent = *toStdout // no output line can start a message of its own
	out := &publisher{mail: m, flood: newFlood(*maxMails), acts: acts}
	d := &daemon{
		cfg:       cfg,
		w:         w,
		poll:      p,
		jobs:      newJobs(p.poke),
		out:       out,
		trouble:   newTroubles(out),
		rec:       newRecorder(),
		host:      host,
		base:      newBaseline(*stateFile),
		susp:      suspension{limit: *maxSuspend},
		bursts:    newBursts(*settle),
		leaseWait: leaseBreakTime() + 2*time.Second,
		trace:     &tracer{},
	}
	d.route = &router{w: w, config: func() *config { return d.cfg }, arm: d.arm, grow: d.grow, prune: d.prune, derived: make(map[string]*entry)}
	d.by = newAttributor(w, noBy, p.poke, d.rec.names, d.trace)
	d.by.bursts, d.by.entryFor, d.by.ready, d.by.hand = d.bursts, d.route.entryFor, d.reportInOrder, d.hand
	d.by.out, d.by.trouble, d.by.opened = d.out, d.trouble, d.opened
	d.held = &writers{files: make(map[string]*held)}
	d.arms = &armer{w: w, hand: d.hand, arming: make(map[string]*arming), armed: d.armed}
	d.scans = &scanner{scans: make(map[string]*scan), verifyEvery: *verifyEvery, base: d.base, bursts: d.bursts, w: w, hand: d.hand,
		config: func() *config { return d.cfg }, dirs: d.route.treeDirs, current: func(e *entry) bool { return d.route.entryFor(e.Path) == e },
		inTree: d.route.inTree, dirFound: d.treeDirFound,
		lookAt: d.route.lookAt, take: d.look, found: d.scanned}
	return d, nil
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
	d.base.close()
	d.poll.close()
	d.out.close()
}

// start reports the configuration's problems, sets every watch and
// compares every watched path with the previous run's record; the loop
// then goes on with what the jobs find, and says famids is ready once the
// comparison is done.
func (d *daemon) start(problems []problem) {
	var invalid []string
	for _, p := range problems {
		fmt.Fprintf(os.Stderr, "famids: %s\n", p)
		if !p.Warning {
			invalid = append(invalid, p.String())
		}
	}
	if *useSyslog {
		var err error
		if d.out.log, err = newLogger(); err != nil {
			msg := fmt.Sprintf("-syslog: the system logger cannot be reached: %s; famids tries again, and mails as ever", quoteIfNeeded(err.Error()))
			fmt.Fprintf(os.Stderr, "famids: %s\n", msg)
			d.notice(msg)
		}
	}
	if len(invalid) > 0 {
		d.notice(fmt.Sprintf("%d invalid line(s) in %s skipped; the rest is watched", len(invalid), quoteIfNeeded(d.cfg.File)), invalid...)
	}
	if err := d.out.mail.check(); err != nil {
		// Said now, not at the first report: it is what reports go through.
		msg := fmt.Sprintf("-mail %s: %s; reports are written to standard error until it can be run", quoteIfNeeded(*mailCommand), quoteIfNeeded(err.Error()))
		fmt.Fprintf(os.Stderr, "famids: %s\n", msg)
		d.syslog("notice: " + msg)
	}
	d.checkConfigSecurity()
	if d.by.why != "" {
		msg := "reports will not say who made a change: " + d.by.why
		fmt.Fprintf(os.Stderr, "famids: %s\n", msg)
		d.syslog("notice: " + msg)
	}
	d.mem.lift()
	prev := d.base.load(d.notice)
	fresh := func(string) bool { return true } // a first start: everything is recorded
	if prev != nil {
		d.base.adopt(prev, func(p string) bool { return prev.watched(p) && len(d.cfg.owners(p)) > 0 })
		d.base.continueJournal(prev, namesOf(d.cfg.Entries))
		fresh = func(p string) bool { return !prev.watched(p) || prev.mangled(p) }
	}
	d.mem.fit(time.Now(), true)
	d.readMountTable()
	d.armEntries(d.cfg.Entries, true, func() {
		if d.w.count() == 0 {
			d.notice("nothing is watched", fmt.Sprintf("%s has no entry that could be watched.", quoteIfNeeded(d.cfg.File)))
		}
		d.scans.start(&scan{kind: "start", found: foundAtStart, trust: true, fresh: fresh, then: d.startedUp})
	})
}

// startedUp is the end of start-up: the first comparison is done.
func (d *daemon) startedUp(*scan) {
	d.trouble.noticeWatchErrors()
	d.by.sayUnmarked()
	d.scans.scheduleVerify(time.Now())
	if d.out.idle() {
		d.save(false)
	} // else the loop saves once what was found is delivered
	d.mem.ready = true
	d.mem.fit(time.Now(), true)
	d.ready = true
	sdNotify("READY=1")
}

// checkConfigSecurity lets actions run only when the configuration file
// read can be trusted to name commands, and says so when it cannot.
func (d *daemon) checkConfigSecurity() {
	why := d.cfg.Untrusted
	d.actionsOK = why == ""
	if why != "" {
		fmt.Fprintf(os.Stderr, "famids: actions will not run: %s\n", why)
		d.notice("actions will not run: "+why, "Anyone who can change the configuration, or put another in its place, could run commands as the user famids runs as.",
			"Reports are still sent. Make the file and every directory above it owned by root and not writable by group or others (a sticky directory such as /tmp excepted), then restart famids or send it SIGHUP.")
	}
}

// save writes the baseline to the state file; clean says famids is
// stopping because it was told to.
func (d *daemon) save(clean bool) {
	if err := d.base.save(clean, d.fatal, namesOf(d.cfg.Entries), d.bursts.pendingBefore); err != nil {
		d.trouble.warnOnce(fmt.Sprintf("cannot save the state: %s", quoteIfNeeded(err.Error())))
	}
}

// readDirNames returns the names in a directory, or an error when path is
// not one.
func readDirNames(path string) ([]string, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NONBLOCK, 0) // fails at once on a file
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Readdirnames(-1)
}

// readDirKinds returns the names in a directory, and those of its
// entries that are directories (not symbolic links to one); nothing when
// path is not a directory.
func readDirKinds(path string) (names, dirs []string) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil
	}
	defer f.Close()
	des, _ := f.ReadDir(-1)
	for _, de := range des {
		names = append(names, de.Name())
		if de.IsDir() {
			dirs = append(dirs, de.Name())
		}
	}
	return names, dirs
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
		fmt.Fprintf(os.Stderr, "famids: NOTIFY_SOCKET %s: %v\n", quoteIfNeeded(addr), err)
		return
	}
	defer conn.Close()
	conn.Write([]byte(state))
}
