package main

// Floods: a hundred thousand files created in a watched directory must
// not become a hundred thousand mails, nor as many runs of an action.
// Messages are mailed one by one up to -max-mails a minute; past that,
// the reports of the rest of the minute fold into one digest, and famids's
// notices into one digest of notices, each sent when the minute ends.
// Nothing is dropped: every report is in a mail, alone or in a digest.

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// A folded report is what a digest keeps of it: its line, not its
// records, for a flood may fold a hundred thousand.
type folded struct {
	path   string
	events []string
	line   string // PATH: EVENTS; differs: ...
}

// A flood counts the messages of the current minute and holds those
// folded into its digests.
type flood struct {
	limit   int       // -max-mails
	start   time.Time // when the minute began; zero before the first message
	sent    int       // messages sent one by one in it
	reports []folded  // folded
	actions map[string]*trigger
	order   []string // of actions, as first folded
	notices []string // the notices folded, whole
}

func newFlood(limit int) *flood {
	return &flood{limit: limit, actions: make(map[string]*trigger)}
}

// allow reports whether a message may go out on its own now, counting
// it; false means it is to be folded.
func (f *flood) allow(now time.Time) bool {
	if f.start.IsZero() || now.Sub(f.start) >= time.Minute && !f.holding() {
		f.start, f.sent = now, 0
	}
	if f.sent < f.limit && !f.holding() {
		f.sent++
		return true
	}
	return false
}

// holding reports whether messages are folded, waiting for the minute's
// end.
func (f *flood) holding() bool { return len(f.reports) > 0 || len(f.notices) > 0 }

// due returns when the digests go out, or zero when nothing is folded.
func (f *flood) due() time.Time {
	if !f.holding() {
		return time.Time{}
	}
	return f.start.Add(time.Minute)
}

// foldReport folds r, and the actions its entries run, into the digest.
func (f *flood) foldReport(r *report, actions []string) {
	f.reports = append(f.reports, folded{r.Path, r.Events, r.summary()})
	for _, a := range actions {
		t := f.actions[a]
		if t == nil {
			t = &trigger{action: a}
			f.actions[a] = t
			f.order = append(f.order, a)
		}
		t.paths = appendNew(t.paths, r.Path)
		t.events = appendNew(t.events, r.Events...)
		if t.by == nil {
			t.by = byEnv(r.By)
		}
	}
}

// foldNotice folds a notice, its body, into the digest of notices.
func (f *flood) foldNotice(body string) {
	f.notices = append(f.notices, body)
}

// digest returns the digest of the reports folded, with their paths and
// actions, and the digest of the notices folded, each "" or nil when there
// is none, and starts a new minute.
func (f *flood) digest(now time.Time) (reports string, paths []string, actions []trigger, notices string) {
	if len(f.reports) > 0 {
		reports = reportDigest(f.reports)
		for _, r := range f.reports {
			paths = append(paths, r.path)
		}
		for _, a := range f.order {
			actions = append(actions, *f.actions[a])
		}
	}
	if len(f.notices) > 0 {
		notices = noticeDigest(f.notices)
	}
	f.reports, f.notices, f.order = nil, nil, nil
	clear(f.actions)
	f.start, f.sent = now, 0
	return reports, paths, actions, notices
}

// reportDigest is the body of a digest of reports: the first three lines
// of a report on the first path folded, so that whoever reads only those
// is told, then how many were folded, then one line for each.
func reportDigest(rs []folded) string {
	var b strings.Builder
	b.WriteString("Possible intrusion:\n")
	b.WriteString("Pathname: " + quoteIfNeeded(rs[0].path) + "\n")
	b.WriteString("Event: " + strings.Join(rs[0].events, ", ") + "\n")
	b.WriteString("Folded: " + strconv.Itoa(len(rs)) + " reports (more than -max-mails a minute)\n")
	for _, r := range rs {
		b.WriteString(r.line)
		b.WriteByte('\n')
	}
	return b.String()
}

// noticeDigest is the body of a digest of notices: a summary, then each
// notice folded, whole.
func noticeDigest(bodies []string) string {
	first, _, _ := strings.Cut(strings.TrimPrefix(bodies[0], "Notice: "), "\n")
	details := []string{fmt.Sprintf("Folded: %d notices (more than -max-mails a minute)", len(bodies))}
	for _, b := range bodies {
		details = append(details, "", b)
	}
	return noticeBody(fmt.Sprintf("%d notices folded, the first: %s", len(bodies), first), details...)
}
