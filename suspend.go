package main

// Suspension: SIGUSR1 stops reports for a prelink run or a package
// update, until SIGUSR2 or -max-suspend; events are then counted, not
// reported, and the resume compares every path instead. Events are held
// the same way, for a moment, while a comparison catches up with the
// queue.

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// strayWindow is how long after a SIGUSR2 a SIGUSR1 is taken as sent
// before it. The kernel hands two signals sent
// back to back to two threads, and Go's runtime may pass the second on
// first: "kill -USR1; kill -USR2" must leave famids reporting. A SIGUSR2
// sent on purpose less than a second before a SIGUSR1 is not a thing
// anyone does; should it happen, famids is left reporting, the safe side.
const strayWindow = time.Second

// A suspension is whether famids reports events, and what it saw while
// it did not.
type suspension struct {
	limit     time.Duration // -max-suspend
	since     time.Time     // when SIGUSR1 suspended reporting; zero while reporting
	holding   bool          // events are counted, not reported: suspended, or catching up
	held      int           // events seen while suspended
	overflows int           // queue overflows while suspended
	strayUSR2 time.Time     // when the last SIGUSR2 came
}

// holds reports whether events are counted rather than reported.
func (s *suspension) holds() bool { return s.holding }

// suspended reports whether SIGUSR1 suspended reporting.
func (s *suspension) suspended() bool { return !s.since.IsZero() }

// end returns when the suspension ends by itself, or zero.
func (s *suspension) end() time.Time {
	if s.since.IsZero() {
		return time.Time{}
	}
	return s.since.Add(s.limit)
}

// count counts an event held; a weak one is not counted.
func (s *suspension) count(weak bool) {
	if !weak {
		s.held++
	}
}

// overflowed counts a queue overflow while suspended.
func (s *suspension) overflowed() { s.overflows++ }

// hold holds events until the function it returns is called, as they
// are held already or not.
func (s *suspension) hold() (release func()) {
	held := s.holding
	s.holding = true
	return func() { s.holding = held }
}

// stray reports whether a SIGUSR1 is to be taken as sent before the
// SIGUSR2 that came just before it, and forgets that SIGUSR2.
func (s *suspension) stray(now time.Time) bool {
	if s.strayUSR2.IsZero() || now.Sub(s.strayUSR2) >= strayWindow {
		return false
	}
	s.strayUSR2 = time.Time{}
	return true
}

// resumeAsked notes a SIGUSR2: a SIGUSR1 right after it may be its pair
// passed on first, whether it found reporting on or resumed it (pairs
// sent back to back: the last two may come in either order).
func (s *suspension) resumeAsked(now time.Time) { s.strayUSR2 = now }

// begin suspends reporting from now.
func (s *suspension) begin(now time.Time) {
	s.since = now
	s.holding = true
	s.held, s.overflows = 0, 0
}

// stillNotice is the notice of a SIGUSR1 while suspended already.
func (s *suspension) stillNotice() notice {
	return notice{Summary: fmt.Sprintf("still suspended (SIGUSR1 again); the suspension ends by itself at %s as before",
		s.end().UTC().Format(time.RFC3339)),
		Details: []string{fmt.Sprintf("Suspended since %s; %d event(s) seen so far.", s.since.UTC().Format(time.RFC3339), s.held)}}
}

// A suspended is what a suspension saw, once it ends.
type suspended struct {
	since           time.Time
	held, overflows int
}

// finish ends the suspension, and returns what it saw.
func (s *suspension) finish() suspended {
	was := suspended{s.since, s.held, s.overflows}
	s.since = time.Time{}
	s.holding = false
	return was
}

// notice is the notice of the resume, how it came, with what its
// comparison found; changed is the line of each difference, for syslog.
func (was suspended) notice(how string, diffs []difference) (n notice, changed []string) {
	details := []string{
		fmt.Sprintf("Suspended: %s, for %v.", was.since.UTC().Format(time.RFC3339), time.Since(was.since).Round(time.Second)),
		fmt.Sprintf("Events seen meanwhile: %d.", was.held),
	}
	if was.overflows > 0 {
		details = append(details, fmt.Sprintf("Queue overflows meanwhile: %d.", was.overflows))
	}
	if len(diffs) > 0 {
		details = append(details, "Changed while suspended:")
	}
	slices.SortFunc(diffs, func(a, b difference) int { return strings.Compare(a.path, b.path) })
	for _, df := range diffs {
		line := (&report{Path: df.path, Events: []string{df.event}, Before: df.before, After: df.after}).summary()
		details = append(details, line)
		changed = append(changed, line)
	}
	return notice{Summary: fmt.Sprintf("reporting resumed %s: %d watched path(s) changed while suspended", how, len(diffs)), Details: details}, changed
}
