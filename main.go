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
	"maps"
	"net"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"slices"
	"strings"
	"sync"
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
	maxMails      = flag.Int("max-mails", 60, "reports and notices mailed one by one per minute; past that, they are folded into one digest a minute")
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
	if *maxMails < 1 {
		fmt.Fprintf(os.Stderr, "famids: -max-mails %d: must be at least 1\n", *maxMails)
		return 2
	}
	if strings.HasPrefix(*notify, "-") || *notify == "" {
		// The mail program would take it for an option of its own.
		fmt.Fprintf(os.Stderr, "famids: -notify %q: not an address (it must not begin with -)\n", *notify)
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
	pool      *pool
	slow      *pool // hashes of files over bigFile, one at a time, at the lowest priority
	procs     *pool // processes looked up (by.go): a command line that never comes back holds no file's record
	mail      *mailer
	flood     *flood
	acts      *actions
	rec       *recorder
	log       *logger // with -syslog
	host      string
	actionsOK bool

	record  map[string]attrs  // by reported path; a missing key is "absent"
	before  map[string]attrs  // the record of each path before its last report, until every report is delivered
	pending map[string]*burst // by reported path
	busy    map[string]bool   // paths a job is out recording
	hashing map[string]bool   // paths a hash is out for in the slow lane
	inOrder []*ordered        // bursts whose records are out, in the order they settled
	derived map[string]*entry // symbolic links in watched directories, watched as paths of their own
	arming  map[string]*arming
	scans   map[string]*scan // running, by kind
	hits    []hit            // reused by handle, which routes thousands of events a second in a storm
	ends    []int            // where the hits of each event of the batch end
	handed  int              // jobs handed out since the loop last waited for one
	warned  map[string]bool  // watch and state errors already reported

	watchErrs   []string            // watches that could not be set, not yet in a notice
	watchErrsAt time.Time           // when they are told in a notice
	stuck       []string            // jobs that do not return, not yet in a notice
	unwatched   map[string][]string // entries with a watch that could not be set, with the errors
	leaseWait   time.Duration       // how long a file another process holds a lease on may stay unreadable

	ready                      bool               // famids said it is ready: the first comparison is done
	verifyAt                   time.Time          // when the next verification is due; zero without -verify
	hashedAll                  time.Time          // when every file was last hashed, whatever its stat said
	mountAt                    time.Time          // when a change of the mount table is acted on; zero when none is
	mounts                     map[int]mountPoint // the mount table as last read, by mount id
	readingMounts, mountsAgain bool
	poolAt                     time.Time // when the pool's jobs are looked at again; zero while there are none

	state    stateKeeper
	started  time.Time
	stopping bool   // the loop is stopping: no retries, no waiting
	fatal    string // why famids stops on its own, for the next run

	holding   bool      // events are counted, not reported: suspended, or catching up
	suspended time.Time // when SIGUSR1 suspended reporting; zero when reporting
	held      int       // events seen while suspended
	overflows int       // queue overflows while suspended
	strayUSR2 time.Time // when a SIGUSR2 came while reporting was on

	// Who made a change (by.go), with a fanotify group.
	noBy          string // why famids cannot tell, without one
	fanBuf        []byte
	fanEvs        []fanEvent
	inquiries     map[int32]*inquiry // processes being read, by pid
	lookups       int                // processes looked up in /proc since the start
	looking       int                // lookups handed out since the loop last waited for one
	procBuf       []byte             // what the loop reads of a process in /proc
	recent        map[string]*recent // processes of events read before their path's burst began
	fanOverflowed bool               // the notice of it is sent
	quieted       []unmark           // directories unmarked for a storm
	unquietAt     time.Time          // when they are marked again, the storm being over; zero while it goes on

	// traced, nil in production, is handed the stages of each report
	// (latency.go); turn holds those of the loop's turn meanwhile.
	traced func(*stages)
	turn   stages
}

func newDaemon(cfg *config, m *mailer) (*daemon, error) {
	w, err := newWatcher()
	if err != nil {
		return nil, err
	}
	w.aliasBudget = aliasBudgetOf()
	noBy := ""
	var fanBuf []byte
	if w.fan, err = openFanGroup(); err != nil {
		noBy = err.Error()
	} else {
		fanBuf = make([]byte, 64<<10)
	}
	p, err := newPoller()
	if err != nil {
		w.Close()
		return nil, err
	}
	host, _ := os.Hostname()
	acts := newActions(*actionTimeout, m.send)
	acts.indent = *toStdout // no output line can start a message of its own
	return &daemon{
		cfg:       cfg,
		w:         w,
		poll:      p,
		pool:      newPool(p.poke),
		slow:      newPoolOf(p.poke, 1, 1, true),
		procs:     newPoolOf(p.poke, maxInquiries, maxInquiries, false),
		mail:      m,
		flood:     newFlood(*maxMails),
		acts:      acts,
		rec:       newRecorder(),
		host:      host,
		record:    make(map[string]attrs),
		before:    make(map[string]attrs),
		pending:   make(map[string]*burst),
		busy:      make(map[string]bool),
		hashing:   make(map[string]bool),
		derived:   make(map[string]*entry),
		arming:    make(map[string]*arming),
		scans:     make(map[string]*scan),
		warned:    make(map[string]bool),
		unwatched: make(map[string][]string),
		leaseWait: leaseBreakTime() + 2*time.Second,
		state:     stateKeeper{file: *stateFile},
		started:   time.Now(),
		noBy:      noBy,
		fanBuf:    fanBuf,
		inquiries: make(map[int32]*inquiry),
		procBuf:   make([]byte, procBufSize),
		recent:    make(map[string]*recent),
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
	d.poll.close()
	if d.log != nil {
		d.log.close()
	}
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
		if d.log, err = newLogger(); err != nil {
			msg := fmt.Sprintf("-syslog: the system logger cannot be reached: %s; famids tries again, and mails as ever", quoteIfNeeded(err.Error()))
			fmt.Fprintf(os.Stderr, "famids: %s\n", msg)
			d.notice(msg)
		}
	}
	if len(invalid) > 0 {
		d.notice(fmt.Sprintf("%d invalid line(s) in %s skipped; the rest is watched", len(invalid), quoteIfNeeded(d.cfg.File)), invalid...)
	}
	if err := d.mail.check(); err != nil {
		// Said now, not at the first report: it is what reports go through.
		msg := fmt.Sprintf("-mail %s: %s; reports are written to standard error until it can be run", quoteIfNeeded(*mailCommand), quoteIfNeeded(err.Error()))
		fmt.Fprintf(os.Stderr, "famids: %s\n", msg)
		d.syslog("notice: " + msg)
	}
	d.checkConfigSecurity()
	if d.noBy != "" {
		msg := "reports will not say who made a change: " + d.noBy
		fmt.Fprintf(os.Stderr, "famids: %s\n", msg)
		d.syslog("notice: " + msg)
	}
	prev := d.loadState()
	fresh := func(string) bool { return true } // a first start: everything is recorded
	if prev != nil {
		d.adopt(prev)
		fresh = func(p string) bool { return !prev.watched(p) || prev.mangled(p) }
	}
	d.readMountTable()
	d.armEntries(d.cfg.Entries, true, func() {
		if d.w.count() == 0 {
			d.notice("nothing is watched", fmt.Sprintf("%s has no entry that could be watched.", quoteIfNeeded(d.cfg.File)))
		}
		d.startScan(&scan{kind: "start", found: foundAtStart, trust: true, fresh: fresh, then: d.startedUp})
	})
}

// take reads and handles what the two event queues hold: inotify's
// first, and the records of bursts that settle are handed out, then
// fanotify's, whose processes are looked up while those records are
// made; a burst begun before its process is known takes it when it is
// (attach). The error is inotify's: famids cannot go on without it.
func (d *daemon) take(r *eventReader, readable, fanReadable bool) error {
	now := time.Now()
	if readable || r.retrying(now) {
		evs, err := r.read(now)
		if err != nil {
			return err
		}
		if d.traced != nil {
			d.turn.read = time.Now()
		}
		d.handle(evs)
		fanReadable = fanReadable || len(evs) > 0
		switch {
		case len(d.quieted) == 0:
		case !r.calm():
			d.unquietAt = time.Time{}
		case d.unquietAt.IsZero():
			d.unquietAt = time.Now().Add(quietFor)
		}
	}
	handed := d.handed
	d.flush(time.Now())
	if d.handed > handed {
		// The worker woken for a record waits for this thread to yield:
		// the other CPU's scheduler steals it only after a sleep of tens
		// of microseconds. Yielding, the loop goes on there instead, and
		// the record is made beside what follows: who made the change.
		runtime.Gosched()
	}
	if fanReadable {
		if d.traced != nil {
			d.turn.fanRead = time.Now()
		}
		d.attribute()
	}
	if !d.unquietAt.IsZero() && !time.Now().Before(d.unquietAt) {
		d.unquiet() // the storm is over
	}
	return nil
}

// startedUp is the end of start-up: the first comparison is done.
func (d *daemon) startedUp(*scan) {
	d.noticeWatchErrors()
	d.sayUnmarked()
	// The start trusts what stat says of a file since the last run; the
	// first verification hashes every file (see fullHashEvery).
	d.hashedAll = time.Time{}
	if *verifyEvery > 0 {
		d.verifyAt = time.Now().Add(*verifyEvery)
	}
	if d.mail.idle() {
		d.save(false)
	} // else the loop saves once what was found is delivered
	fitMemoryLimit()
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

// loop is the event loop. One poll(2) waits for inotify events, signals,
// jobs done and the next deadline; the loop then folds events into
// bursts, hands out the record of each burst that settled, reports what
// the jobs found, saves the state, and so on, until a signal stops
// famids. Nothing it does waits for the file system, the mail program or
// an action: that is the pool's, the mailer's and the actions' work.
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
		next := earliest(d.nextDeadline(), saveAt, beatAt, d.suspensionEnd(), r.resumeAt(now), d.verifyAt, d.mountAt, d.poolAt, d.flood.due(), d.watchErrsAt, d.orderAt(), d.unquietAt)
		timeout := time.Duration(-1)
		if !next.IsZero() {
			timeout = max(next.Sub(now), 0)
		}
		var readable, fanReadable, mounted bool
		if left := r.pauseLeft(now); left > 0 {
			// A storm's pause: sleeping lets Go's scheduler rest, where
			// waiting in a system call would keep it busy. A signal
			// waits for the pause to end.
			time.Sleep(min(left, timeout))
			readable, fanReadable = true, true // what piled up meanwhile
		} else {
			if !d.mail.idle() {
				// Let the mailer's goroutine take what was just sent on
				// this thread, before it sleeps in poll: a report printed
				// with -stdout then goes out at once.
				runtime.Gosched()
			}
			readable, fanReadable, mounted = d.poll.wait(d.w.fd, d.fanFd(), timeout, r.waiting(now))
		}
		if d.traced != nil {
			d.turn = stages{woke: time.Now()}
		}
		if mounted {
			d.readMountTable() // at once: the mount may be gone by mountAt
			if d.mountAt.IsZero() {
				d.mountAt = time.Now().Add(mountSettle)
			}
		}

		for _, sig := range signals.take() {
			if code, stop := d.signal(sig); stop {
				return code
			}
		}
		if err := d.take(r, readable, fanReadable); err != nil {
			fmt.Fprintf(os.Stderr, "famids: ERROR: %v\nPossibly the inotify instance is broken; exiting so that init restarts famids.\n", err)
			d.fatal = err.Error()
			d.stop()
			return 1
		}
		d.finishJobs()
		d.unmark()
		if len(d.inOrder) > 0 {
			d.reportInOrder() // those a slow record held up
		}

		now = time.Now()
		if len(d.before) > 0 && d.mail.idle() {
			d.before = make(map[string]attrs) // every report is delivered
		}
		switch {
		case !d.state.dirty || !d.ready:
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
			d.verifyAt = now.Add(*verifyEvery)
		}
		if len(d.arming) == 0 && d.ready && !now.Before(d.watchErrsAt) {
			d.noticeWatchErrors() // once the arms of a moment are all done
		}
		if due := d.flood.due(); !due.IsZero() && !now.Before(due) {
			d.sendDigests()
		}
	}
}

// mountSettle is how long famids waits after a change of the mount table
// before it acts on it: a mount seldom comes alone.
const mountSettle = 100 * time.Millisecond

// quickWait is how long the loop waits for the jobs it has just handed
// out before it goes on: a plain file's record takes tens of microseconds,
// and its report then goes out as fast as if the loop had made it itself;
// a record that takes longer does not hold the loop.
const quickWait = 5 * time.Millisecond

// poolEvery is how often the loop looks at the jobs that run long, while
// any runs.
const poolEvery = 250 * time.Millisecond

// finishJobs runs the done of every job that has returned, after waiting
// a little for those just handed out, and looks at the jobs that run
// long: a new worker for each, and a notice for each that does not
// return.
func (d *daemon) finishJobs() {
	if d.handed > 0 {
		d.handed = 0
		d.pool.await(quickWait)
	}
	if d.looking > 0 {
		// A report may wait for a process just looked up, as for a
		// record just handed out.
		d.looking = 0
		d.procs.await(quickWait)
	}
	for _, j := range d.slow.take() {
		j.done()
	}
	for _, j := range d.procs.take() {
		j.done()
	}
	for {
		done := d.pool.take()
		if len(done) == 0 {
			break
		}
		for _, j := range done {
			j.done()
		}
		d.flush(time.Now()) // bursts that waited for a job
		if d.handed > 0 {
			d.handed = 0
			d.pool.await(quickWait)
		}
	}
	now := time.Now()
	if !d.pool.busy() {
		d.poolAt = time.Time{}
		return
	}
	if d.poolAt.IsZero() {
		d.poolAt = now.Add(poolEvery)
	}
	if now.Before(d.poolAt) {
		return
	}
	d.poolAt = now.Add(poolEvery)
	for _, j := range d.pool.watch(now) {
		d.stuck = append(d.stuck, j.path)
	}
	d.noticeStuck()
}

// hand hands a job out to the pool.
func (d *daemon) hand(j *job) {
	d.handed++
	d.pool.submit(j)
}

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

// A signalQueue holds the signals caught, in the order Go's runtime passed
// them on, until the loop takes them. It never blocks whoever adds to it:
// os/signal drops a signal its channel has no room for.
type signalQueue struct {
	mu   sync.Mutex
	sigs []os.Signal
}

func (q *signalQueue) add(sig os.Signal) {
	q.mu.Lock()
	q.sigs = append(q.sigs, sig)
	q.mu.Unlock()
}

// take returns the signals queued, oldest first.
func (q *signalQueue) take() []os.Signal {
	q.mu.Lock()
	defer q.mu.Unlock()
	sigs := q.sigs
	q.sigs = nil
	return sigs
}

// forwardSignals passes the signals caught on to the loop, waking it.
func (d *daemon) forwardSignals(sigs <-chan os.Signal) *signalQueue {
	q := new(signalQueue)
	go func() {
		for sig := range sigs {
			q.add(sig)
			d.poll.poke()
		}
	}()
	return q
}

// strayWindow is how long after a SIGUSR2 that found reporting on a
// SIGUSR1 is taken as sent before it. The kernel hands two signals sent
// back to back to two threads, and Go's runtime may pass the second on
// first: "kill -USR1; kill -USR2" must leave famids reporting. A SIGUSR2
// sent on purpose less than a second before a SIGUSR1 is not a thing
// anyone does; should it happen, famids is left reporting, the safe side.
const strayWindow = time.Second

// signal acts on a signal; it returns the exit status when famids stops.
func (d *daemon) signal(sig os.Signal) (code int, stop bool) {
	switch sig {
	case syscall.SIGHUP:
		d.reload()
	case syscall.SIGUSR1:
		if !d.strayUSR2.IsZero() && time.Since(d.strayUSR2) < strayWindow {
			d.strayUSR2 = time.Time{}
			fmt.Fprintln(os.Stderr, "famids: SIGUSR1 right after a SIGUSR2 that found reporting on: taken as sent before it; reporting goes on")
			return 0, false
		}
		d.suspend()
	case syscall.SIGUSR2:
		if d.suspended.IsZero() {
			d.strayUSR2 = time.Now()
		}
		d.resume("on SIGUSR2")
	default:
		sdNotify("STOPPING=1")
		d.stop()
		return 0, true
	}
	return 0, false
}

// Stopping: jobs are given jobsAtStop to finish, and the mail, with the
// actions' reports, until stopWithin after the signal; famids then exits,
// whatever is still being hashed, mailed or run.
const (
	jobsAtStop = 3 * time.Second
	stopWithin = 7 * time.Second
)

// stop reports every pending burst, stops the actions, each of which
// reports how it ended, delivers every message it can, and only then
// saves the state: a change whose report was not delivered, or whose path
// could not be recorded in time, is found again at the next start.
func (d *daemon) stop() {
	begin := time.Now()
	d.stopping = true
	if !d.suspended.IsZero() {
		d.resume("as famids stops")
	}
	d.drain()
	d.flush(time.Time{})
	for (d.pool.busy() || len(d.pending) > 0) && time.Since(begin) < jobsAtStop {
		d.pool.await(50 * time.Millisecond)
		for _, j := range d.pool.take() {
			j.done()
		}
		d.flush(time.Time{})
	}
	d.pool.stop()
	d.slow.stop()
	d.procs.stop()
	d.w.Close()
	for _, o := range d.inOrder {
		if o.done { // held up by a record that did not end in time
			d.recordedBy(o.b.path, &o.l)
			d.recorded(o.b, o.l.after)
		}
	}
	for _, p := range slices.Sorted(maps.Keys(d.busy)) {
		fmt.Fprintf(os.Stderr, "famids: stopping before %s could be recorded (a file system that does not answer, or a file too large to hash in time); its record is kept, and it is compared with it at the next start\n", quoteIfNeeded(p))
	}
	d.sendDigests()
	d.acts.stop()
	for _, m := range d.mail.close(begin.Add(stopWithin)) {
		for _, p := range m.Paths {
			d.unreport(p) // found again at the next start
		}
	}
	d.save(true)
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
