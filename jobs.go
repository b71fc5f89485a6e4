package main

// Every look at the file system that may not return at once (a stat, an
// open, a read, a hash, a watch added on a path, a directory listed) runs
// beside the event loop, in a pool of workers: a 15 TiB sparse file, a
// FUSE mount that never answers or an NFS server that is gone must not
// keep famids from reading events and signals. The loop hands out jobs
// and takes their results when they are done.

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// A job is one piece of work for the pool: work runs on a worker, done on
// the event loop once work has returned.
type job struct {
	path string // what it looks at, for a notice should it not return
	work func(ctx context.Context, j *job)
	done func()
	idle bool // run at the lowest CPU priority: a verification's, which may take its time

	started  atomic.Int64 // when a worker took it, in Unix nanoseconds; 0 before
	progress atomic.Int64 // grows while it makes progress (bytes hashed)
	told     bool         // the loop noticed it does not return
}

// advance records progress: a job that advances is slow, not stuck.
func (j *job) advance(n int64) { j.progress.Add(n) }

// Limits of the pool. A job that has run for longer than slowAfter gets
// a new worker beside it, so that one huge file or one file system that
// does not answer never holds up the rest; there are never more than
// maxWorkers. A job that has made no progress for stuckAfter is told in a
// notice.
const (
	slowAfter  = time.Second
	stuckAfter = 10 * time.Second
	maxWorkers = 64
)

// A pool runs jobs on workers. submit and finished are for the loop;
// nothing it does waits for a job.
type pool struct {
	ctx    context.Context // cancelled when famids stops: hashes end early
	cancel context.CancelFunc
	poke   func() // wakes the loop when a job is done
	base   int    // workers kept
	most   int    // workers at most, with those started beside slow jobs
	nice   bool   // workers run at the lowest CPU priority

	mu       sync.Mutex
	queue    []*job
	running  map[*job]bool
	finished []*job
	workers  int // started, each waiting or running a job
	waiting  int // workers waiting for a job
	wake     *sync.Cond
	ready    chan struct{} // has a value while finished is not empty
	awaiting atomic.Bool   // the loop waits on ready: no need to poke it
	timer    *time.Timer   // await's, kept: it runs for every report
}

func newPool(poke func()) *pool {
	return newPoolOf(poke, baseWorkers(), maxWorkers, false)
}

// newPoolOf returns a pool of base workers, up to most beside slow jobs;
// with nice, they run at the lowest CPU priority.
func newPoolOf(poke func(), base, most int, nice bool) *pool {
	ctx, cancel := context.WithCancel(context.Background())
	p := &pool{ctx: ctx, cancel: cancel, poke: poke, base: base, most: most, nice: nice,
		running: make(map[*job]bool), ready: make(chan struct{}, 1)}
	p.wake = sync.NewCond(&p.mu)
	return p
}

// baseWorkers is how many workers the pool keeps: one per CPU, for a
// baseline hashes thousands of files.
func baseWorkers() int { return max(2, runtime.NumCPU()) }

// submit queues j; a worker takes it at once unless all are busy.
func (p *pool) submit(j *job) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.queue = append(p.queue, j)
	if p.waiting > 0 {
		p.wake.Signal()
	} else if p.workers < p.base {
		p.startWorker()
	}
}

// startWorker starts one more worker. The caller holds mu.
func (p *pool) startWorker() {
	p.workers++
	go p.worker()
}

func (p *pool) worker() {
	if p.nice {
		// A thread of its own, the last to be given a CPU: what it
		// hashes must not slow the rest of the machine.
		runtime.LockOSThread()
		unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), 19)
	}
	p.mu.Lock()
	for {
		for len(p.queue) == 0 {
			if p.workers > p.base {
				// One started for a slow job: the rush is over.
				p.workers--
				p.mu.Unlock()
				return
			}
			p.waiting++
			p.wake.Wait()
			p.waiting--
		}
		j := p.queue[0]
		p.queue[0] = nil
		p.queue = p.queue[1:]
		p.running[j] = true
		p.mu.Unlock()

		if j.idle && !p.nice {
			// A thread of its own, the last to be given a CPU; the
			// worker ends with the job and the thread with it, for
			// famids without root may not raise a priority again.
			runtime.LockOSThread()
			unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), 19)
		}
		j.started.Store(time.Now().UnixNano())
		j.work(p.ctx, j)

		p.mu.Lock()
		delete(p.running, j)
		p.finished = append(p.finished, j)
		select {
		case p.ready <- struct{}{}:
		default:
		}
		if !p.awaiting.Load() {
			p.poke()
		}
		if j.idle && !p.nice {
			p.workers--
			if len(p.queue) > 0 && p.workers < p.base {
				p.startWorker() // in its place, at the usual priority
			}
			p.mu.Unlock()
			return // the niced thread ends here (runtime.LockOSThread)
		}
	}
}

// take returns the jobs done since it was last called, for the loop to
// run their done.
func (p *pool) take() []*job {
	p.mu.Lock()
	defer p.mu.Unlock()
	done := p.finished
	p.finished = nil
	select {
	case <-p.ready: // taken: await waits for the next
	default:
	}
	return done
}

// await waits until a job is done or d has passed. The loop waits so for
// the jobs it has just handed out, a few milliseconds at most: a report
// of a plain file then goes out as fast as if the loop had done the work
// itself, and one that takes longer does not hold the loop.
func (p *pool) await(d time.Duration) {
	// Most jobs are done by the time the loop's thread has run them: the
	// worker waiting for a job is woken on this thread, and runs as soon
	// as the loop yields. A few yields first, then a timer.
	for range 3 {
		runtime.Gosched()
		if len(p.ready) > 0 {
			return // take gets it
		}
	}
	if p.timer == nil {
		p.timer = time.NewTimer(d)
	} else {
		p.timer.Reset(d)
	}
	p.awaiting.Store(true)
	select {
	case <-p.ready:
		p.timer.Stop()
	case <-p.timer.C:
	}
	p.awaiting.Store(false)
}

// watch looks at the running jobs: for each that has run for slowAfter,
// a new worker is started while others wait (up to maxWorkers); each
// that has made no progress for stuckAfter is returned, once.
func (p *pool) watch(now time.Time) (stuck []*job) {
	p.mu.Lock()
	defer p.mu.Unlock()
	slow := 0
	for j := range p.running {
		began := time.Unix(0, j.started.Load())
		if now.Sub(began) < slowAfter {
			continue
		}
		slow++
		if !j.told && now.Sub(began) >= stuckAfter && j.progress.Load() == 0 {
			j.told = true
			stuck = append(stuck, j)
		}
	}
	for p.waiting == 0 && len(p.queue) > 0 && p.workers < min(p.most, p.base+slow) {
		p.startWorker()
	}
	return stuck
}

// busy reports whether a job is queued, running, or done but not taken.
func (p *pool) busy() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.queue) > 0 || len(p.running) > 0 || len(p.finished) > 0
}

// stop cancels the jobs: a hash in progress ends at its next read. Jobs
// blocked in a system call that does not return are left behind: famids
// stops without them.
func (p *pool) stop() { p.cancel() }

// quickWait is how long the loop waits for the jobs it has just handed
// out before it goes on: a plain file's record takes tens of microseconds,
// and its report then goes out as fast as if the loop had made it itself;
// a record that takes longer does not hold the loop.
const quickWait = 5 * time.Millisecond

// poolEvery is how often the loop looks at the jobs that run long, while
// any runs.
const poolEvery = 250 * time.Millisecond

// jobs are the two pools the loop hands its looks at the file system to:
// the pool, a worker per CPU, and the slow lane, which hashes files over
// bigFile one at a time at the lowest priority. Only the event loop's
// goroutine touches it.
type jobs struct {
	pool    *pool
	slow    *pool
	handed  int       // jobs handed out since the loop last waited for one
	checkAt time.Time // when the pool's running jobs are looked at again; zero while none runs
}

func newJobs(poke func()) *jobs {
	return &jobs{pool: newPool(poke), slow: newPoolOf(poke, 1, 1, true)}
}

// hand hands j out to the pool.
func (js *jobs) hand(j *job) {
	js.handed++
	js.pool.submit(j)
}

// handSlow hands j out to the slow lane.
func (js *jobs) handSlow(j *job) { js.slow.submit(j) }

// handedOut returns how many jobs were handed out since the loop last
// waited for one.
func (js *jobs) handedOut() int { return js.handed }

// awaitHanded waits a little for the jobs just handed out, if any.
func (js *jobs) awaitHanded() {
	if js.handed > 0 {
		js.handed = 0
		js.pool.await(quickWait)
	}
}

// takeDone returns the jobs of both pools done since it was last called,
// the slow lane's first.
func (js *jobs) takeDone() []*job {
	return append(js.slow.take(), js.pool.take()...)
}

// busy reports whether the pool has a job queued, running, or done but
// not taken.
func (js *jobs) busy() bool { return js.pool.busy() }

// next returns when the running jobs are looked at again, or zero.
func (js *jobs) next() time.Time { return js.checkAt }

// check looks at the jobs that run long, every poolEvery while any runs:
// a new worker for each, and it returns the path of each that does not
// return, once.
func (js *jobs) check(now time.Time) (stuck []string) {
	if !js.pool.busy() {
		js.checkAt = time.Time{}
		return nil
	}
	if js.checkAt.IsZero() {
		js.checkAt = now.Add(poolEvery)
	}
	if now.Before(js.checkAt) {
		return nil
	}
	js.checkAt = now.Add(poolEvery)
	for _, j := range js.pool.watch(now) {
		stuck = append(stuck, j.path)
	}
	return stuck
}

// stop cancels the jobs of both pools.
func (js *jobs) stop() {
	js.pool.stop()
	js.slow.stop()
}
