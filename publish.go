package main

// Where reports and notices go: mail (or standard output), syslog, the
// minute's digests past -max-mails, and the actions of the entries a
// report concerns. A report and a notice are each one value, and every
// output renders it: the body for mail, the summary for syslog and the
// digest's line.

import "time"

// A publisher sends each report and notice to every output famids has.
// None of them waits: the mailer, the logger and the actions each run
// beside the loop.
type publisher struct {
	mail  *mailer
	flood *flood
	log   *logger // with -syslog; nil without, or until it is opened
	acts  *actions
}

// report sends r, which came through the configuration's lines, and runs
// actions for it; past -max-mails a minute on each of its lines, the
// report and its actions are folded into the minute's digest of the
// first.
func (p *publisher) report(r *report, lines, actions []string) {
	if p.log != nil {
		p.log.log("report: " + r.summary())
	}
	if len(lines) == 0 {
		lines = []string{r.Path} // no longer configured: a line of its own
	}
	if !p.flood.allow(lines, time.Now()) {
		p.flood.foldReport(r, lines, actions)
		return
	}
	p.mail.sendMessage(message{Subject: subjectReport, Body: r.body(), Paths: []string{r.Path}})
	for _, a := range actions {
		p.acts.run(trigger{action: a, paths: []string{r.Path}, events: r.Events, by: byEnv(r.By)})
	}
}

// notice sends famids's own news; past -max-mails a minute, it is folded
// into the minute's digest of notices.
func (p *publisher) notice(n notice) {
	p.syslog("notice: " + n.Summary)
	if !p.flood.allow([]string{noticeLine}, time.Now()) {
		p.flood.foldNotice(n.body())
		return
	}
	p.mail.send(subjectNotice, n.body())
}

// syslog logs one line with -syslog; it never waits for the system
// logger.
func (p *publisher) syslog(line string) {
	if p.log != nil {
		p.log.log(line)
	}
}

// digestsDue returns when the first minute's digest goes out, or zero
// when nothing is folded.
func (p *publisher) digestsDue() time.Time { return p.flood.due() }

// sendDigests sends what the minutes ended by now folded, or, with all,
// every minute: for each line, one digest of reports, with each of their
// actions run once for all of them, and one of notices. It returns how
// many reports the digests folded.
func (p *publisher) sendDigests(all bool) (folded int) {
	for _, d := range p.flood.digests(time.Now(), all) {
		folded += len(d.paths)
		if d.reports != "" {
			p.mail.sendMessage(message{Subject: subjectReport, Body: d.reports, Paths: d.paths})
		}
		for _, t := range d.actions {
			p.acts.run(t)
		}
		if d.notices != "" {
			p.mail.send(subjectNotice, d.notices)
		}
	}
	return folded
}

// bigDigest is how many reports a digest folds for famids to give back
// the memory they took once it is sent.
const bigDigest = 10000

// idle reports whether every message sent so far is delivered.
func (p *publisher) idle() bool { return p.mail.idle() }

// stop stops the actions, each of which reports how it ended, then
// delivers what it can by deadline, and returns the messages that could
// not be.
func (p *publisher) stop(deadline time.Time) []message {
	p.acts.stop()
	return p.mail.close(deadline)
}

// close closes the connection to the system logger, once famids has
// stopped.
func (p *publisher) close() {
	if p.log != nil {
		p.log.close()
	}
}
