package main

// famids's memory: it runs for months beside the services it guards, and
// a user who floods a watched directory with files must not leave it
// holding what the flood made it take.

import (
	"math"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// memoryLimit is the soft limit famids keeps its memory to, unless
// $GOMEMLIMIT sets one: without a limit the garbage collector lets the
// heap grow to twice what famids holds. 10,000 watched files take about
// 12 MiB.
const memoryLimit = 20 << 20

func limitMemory() {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(memoryLimit)
	}
}

// A memoryFit fits the soft memory limit to what famids holds: a quarter
// and 4 MiB above it, never under memoryLimit. Raised, it keeps a flood
// of files from making famids collect garbage all the time; lowered once
// the flood is over, it makes Go give the memory back to the system.
type memoryFit struct {
	ready  bool      // the start-up is over: until then, more room (see fit)
	lifted bool      // the collector's percent is lowered while the limit is lifted (lift)
	next   time.Time // when it is fitted next: at most once a memoryFitEvery
	freed  time.Time // when memory was last given back at once
	soon   time.Time // when it is fitted, and memory given back, after a flood's digest; zero for none
}

// memoryFitEvery is how often the limit follows what famids holds, at
// most; memoryFreeEvery, how often famids gives back at once what it no
// longer holds, when it holds much more than the limit; memoryFreeAfter,
// how long after a flood's digest goes out (to the mailer, which writes
// it meanwhile).
const (
	memoryFitEvery  = time.Second
	memoryFreeEvery = time.Minute
	memoryFreeAfter = 5 * time.Second
)

// after says that famids let go of much at now (a flood's digest): the
// limit is fitted, and memory given back, memoryFreeAfter later.
func (m *memoryFit) after(now time.Time) { m.soon = now.Add(memoryFreeAfter) }

// lift lifts the limit while famids reads its state: decoding a baseline
// of 50,000 records under a limit of 20 MiB collected garbage for most of
// the two seconds it took. fit sets it again. Meanwhile the collector runs
// once the heap has grown by half, not doubled: as what famids holds grows
// all along, that costs a few more collections, and keeps the peak of
// reading 150,000 records some 20 MB lower.
func (m *memoryFit) lift() {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(math.MaxInt64)
	}
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(50)
		m.lifted = true
	}
}

// due returns when the limit is fitted after a flood, or zero.
func (m *memoryFit) due() time.Time { return m.soon }

// fit fits the limit, when it is due or force is true.
func (m *memoryFit) fit(now time.Time, force bool) {
	if !m.soon.IsZero() && !now.Before(m.soon) {
		// What the digest held is garbage: collected now, what famids
		// holds is known, and the rest goes back at once.
		m.soon, m.freed, force = time.Time{}, now, true
		debug.FreeOSMemory()
	}
	if m.lifted {
		debug.SetGCPercent(100)
		m.lifted = false
	}
	if os.Getenv("GOMEMLIMIT") != "" || !force && now.Before(m.next) {
		return
	}
	m.next = now.Add(memoryFitEvery)
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"}}
	metrics.Read(s)
	held := int64(s[0].Value.Uint64())
	limit := max(memoryLimit, held+held/4+4<<20)
	if !m.ready {
		// The start-up records every path: with a third of what it
		// holds to spare, the collector runs less often (with half,
		// the start-up on /usr and /etc peaked over 96 MiB).
		limit = max(memoryLimit, held+held/3+4<<20)
	}
	debug.SetMemoryLimit(limit)
	// Go gives memory back a little at a time; after a flood, what it
	// kept would stay for minutes.
	if kept := int64(s[1].Value.Uint64() - s[2].Value.Uint64()); kept > limit+limit/2 && now.Sub(m.freed) >= memoryFreeEvery {
		m.freed = now
		debug.FreeOSMemory()
	}
}
