package subscriptions

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// maxGroupCommit bounds the events one group commit sends together.
const maxGroupCommit = 1000

// maxFlushes bounds the round trips of one executor's publishers in flight
// at once. More than one keeps the server busy while the publishers of a
// finished batch queue again, but costs more round trips per event; with
// Python, Go and the server sharing a few cores, one was the fastest
// (see BENCHMARKS.md).
const maxFlushes = 1

// After a flush of several events, the next waits for as many publishers
// to queue, for at most regroupRoundTrips times the flush's duration and
// never more than maxRegroupWait (see groupCommit.regroup).
const (
	regroupRoundTrips = 3
	maxRegroupWait    = 2 * time.Millisecond
)

// groupCommit lets concurrent publishers share the bus's round trips. A
// distributed bus costs one network round trip (or one transaction) per
// Publish, so publishers that each wait for their own are bound by latency,
// not by the server. Here one flush at a time talks to the bus; the events
// that arrive meanwhile queue, and when the flush ends they all go in the
// next one, as one PublishBatch. There is no linger delay: a lone publisher
// flushes its own event at once, in its own goroutine, as Publish did. The
// flushes that follow run in a goroutine of their own (waking the goroutine
// of a waiting publisher instead would put an OS thread wake-up between
// two flushes). Only under contention does a flush wait: after a flush of
// several events, the next one waits a little for that many publishers to
// queue again (regroup), since they come back one by one. Each publisher
// returns only once its own event was accepted or refused, so the order of
// one thread's events is kept: its next event is published after the
// previous one was accepted.
type groupCommit struct {
	bus      Bus
	maxFlush int // flushes in flight at most

	mu      sync.Mutex
	queue   []*commitWaiter
	flushes int           // flushes under way or about to start
	want    int           // regroup's target: arrived fires when the queue reaches it
	arrived chan struct{} // capacity 1

	maxRegroup time.Duration // regroup's longest wait
	// roundTrip measures a flush for regroup: time.Since, or a test's
	// fixed duration (a slow round trip without sleeping through one).
	roundTrip func(start time.Time) time.Duration

	stats commitStats
}

// commitSizeBuckets are the upper bounds of GroupCommitStats.Sizes' buckets
// (events per round trip); the last bucket takes every larger flush.
var commitSizeBuckets = [...]int{1, 2, 4, 8, 16, 64, 256, maxGroupCommit}

// commitStats counts the round trips of a groupCommit and their sizes.
type commitStats struct {
	flushes atomic.Uint64
	events  atomic.Uint64
	sizes   [len(commitSizeBuckets)]atomic.Uint64
}

func (s *commitStats) add(n int) {
	s.flushes.Add(1)
	s.events.Add(uint64(n))
	for i, bound := range commitSizeBuckets {
		if n <= bound || i == len(commitSizeBuckets)-1 {
			s.sizes[i].Add(1)
			return
		}
	}
}

// GroupCommitStats tells how well concurrent publishers (Publish, and the
// gathered calls of PublishGathered) shared round trips:
// Events / Flushes is the mean number of events per round trip. Sizes[i]
// counts the flushes of at most SizeBounds[i] events (and more than
// SizeBounds[i-1]). All zero when the bus has no group commit (memory bus,
// or a bus whose PublishBatch is a loop).
type GroupCommitStats struct {
	Flushes    uint64
	Events     uint64
	SizeBounds []int
	Sizes      []uint64
}

// GroupCommitStats returns the counts of the executor's group commit.
func (e *Executor) GroupCommitStats() GroupCommitStats {
	out := GroupCommitStats{SizeBounds: commitSizeBuckets[:], Sizes: make([]uint64, len(commitSizeBuckets))}
	if g := e.commit; g != nil {
		out.Flushes, out.Events = g.stats.flushes.Load(), g.stats.events.Load()
		for i := range out.Sizes {
			out.Sizes[i] = g.stats.sizes[i].Load()
		}
	}
	return out
}

// commitWaiter is one publisher waiting in a groupCommit.
type commitWaiter struct {
	ev   Event
	err  error
	done chan struct{} // receives the result's arrival
}

var waiterPool = sync.Pool{New: func() any { return &commitWaiter{done: make(chan struct{}, 1)} }}

// oneByOne is implemented by a bus whose PublishBatch is a loop of Publish.
type oneByOne interface{ publishesOneByOne() }

// newGroupCommit returns the group commit of bus, or nil when there is no
// round trip to share: the memory bus dispatches synchronously, and a bus
// without a batch operation would only be serialized.
func newGroupCommit(bus Bus) *groupCommit {
	if _, local := bus.(*MemoryBus); local {
		return nil
	}
	if _, loop := bus.(oneByOne); loop {
		return nil
	}
	return &groupCommit{bus: bus, maxFlush: maxFlushes, arrived: make(chan struct{}, 1), maxRegroup: maxRegroupWait,
		roundTrip: time.Since}
}

// publish puts ev on the bus, sharing the round trip with the publishers
// that wait at the same time, and returns ev's own result. Flushes do not
// end with ctx: the other events of a batch are not ctx's.
func (g *groupCommit) publish(ctx context.Context, bus Bus, ev Event) error {
	if g == nil {
		return bus.Publish(ctx, ev)
	}
	g.mu.Lock()
	if g.flushes < g.maxFlush && len(g.queue) == 0 {
		// Room for another round trip: publish at once, alone.
		g.flushes++
		g.mu.Unlock()
		g.stats.add(1)
		err := g.publishOne(context.WithoutCancel(ctx), ev)
		g.afterFlush()
		return err
	}
	w := waiterPool.Get().(*commitWaiter)
	w.ev, w.err = ev, nil
	g.queue = append(g.queue, w)
	if g.want > 0 && len(g.queue) >= g.want {
		g.want = 0
		select {
		case g.arrived <- struct{}{}:
		default:
		}
	}
	g.mu.Unlock()
	<-w.done
	err := w.err
	w.ev, w.err = Event{}, nil
	waiterPool.Put(w)
	return err
}

// afterFlush ends a flush: the events that queued meanwhile go next, from a
// goroutine that flushes until the queue is empty.
func (g *groupCommit) afterFlush() {
	g.mu.Lock()
	if len(g.queue) == 0 {
		g.flushes--
		g.mu.Unlock()
		return
	}
	g.mu.Unlock()
	go g.drain()
}

// drain flushes the queue until it is empty. flush recovers the bus's
// panics; this recover is for the queue's own code, lest a panic kill the
// process from a goroutine.
func (g *groupCommit) drain() {
	defer func() {
		if r := recover(); r != nil {
			g.failQueued(fmt.Errorf("internal error while publishing (please report): %v", r))
		}
	}()
	target := 0
	for {
		batch := g.next()
		if batch == nil {
			return
		}
		start := time.Now()
		g.flush(context.Background(), batch)
		if len(batch) > 1 {
			// Wait for as many publishers as the largest recent batch
			// had (one fewer per flush, as publishers leave), for at most
			// a few round trips.
			target = max(len(batch), target-1)
			g.regroup(target, regroupRoundTrips*g.roundTrip(start))
		}
	}
}

// regroup waits until n publishers queue again, for at most d or
// g.maxRegroup. The publishers that a flush wakes come back one by one:
// each thread wakes up, retakes the GIL and prepares its next event, so a
// flush that starts at once takes the first one or two of them and the
// rest wait a whole round trip for the next (BENCHMARKS.md). It only
// follows a flush of several events: a lone publisher never waits for it.
func (g *groupCommit) regroup(n int, d time.Duration) {
	select {
	case <-g.arrived:
	default:
	}
	g.mu.Lock()
	if len(g.queue) >= n {
		g.mu.Unlock()
		return
	}
	g.want = n
	g.mu.Unlock()
	t := time.NewTimer(min(d, g.maxRegroup))
	select {
	case <-g.arrived:
	case <-t.C:
	}
	t.Stop()
	g.mu.Lock()
	g.want = 0
	g.mu.Unlock()
}

// next takes the next batch off the queue, or ends the flush (nil) when
// the queue is empty.
func (g *groupCommit) next() []*commitWaiter {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.queue) == 0 {
		g.flushes--
		return nil
	}
	return g.take()
}

// failQueued ends a drain that panicked: every waiter gets err.
func (g *groupCommit) failQueued(err error) {
	g.mu.Lock()
	queued := g.queue
	g.queue = nil
	g.flushes--
	g.mu.Unlock()
	for _, w := range queued {
		w.err = err
		w.done <- struct{}{}
	}
}

// publishOne is Publish with a panic in the bus turned into an error.
func (g *groupCommit) publishOne(ctx context.Context, ev Event) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("internal error while publishing (please report): %v", r)
		}
	}()
	return g.bus.Publish(ctx, ev)
}

// take removes up to maxGroupCommit waiters from the front of the queue.
func (g *groupCommit) take() []*commitWaiter {
	n := min(len(g.queue), maxGroupCommit)
	batch := make([]*commitWaiter, n)
	copy(batch, g.queue)
	rest := copy(g.queue, g.queue[n:])
	clear(g.queue[rest:])
	g.queue = g.queue[:rest]
	return batch
}

// flush publishes batch and wakes its waiters with their results. A panic
// in the bus becomes every waiter's error, lest they wait for ever.
func (g *groupCommit) flush(ctx context.Context, batch []*commitWaiter) {
	defer func() {
		for _, w := range batch {
			w.done <- struct{}{}
		}
	}()
	defer func() {
		if r := recover(); r != nil {
			err := fmt.Errorf("internal error while publishing (please report): %v", r)
			for _, w := range batch {
				w.err = err
			}
		}
	}()
	g.stats.add(len(batch))
	if len(batch) == 1 {
		batch[0].err = g.bus.Publish(ctx, batch[0].ev)
		return
	}
	evs := make([]Event, len(batch))
	for i, w := range batch {
		evs[i] = w.ev
	}
	err := g.bus.PublishBatch(ctx, evs)
	if refusedWhole(err) {
		// The server refused the shared transaction for one event's sake,
		// and nothing of it was published: each event goes again alone,
		// and gets its own outcome.
		for _, w := range batch {
			w.err = g.bus.Publish(ctx, w.ev)
		}
		return
	}
	for i, err := range batchResults(err, len(batch)) {
		batch[i].err = err
	}
}

// refusedWhole tells whether err is PostgreSQL refusing a statement, which
// rolled its transaction back: a connection lost instead leaves the
// outcome unknown, and a retry could publish twice.
func refusedWhole(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr)
}

// PublishBatch validates every event, then puts them on the bus in order
// with one round trip (Redis) or one transaction (PostgreSQL). An invalid
// event fails the whole call before anything is published, with an error
// naming its index. Otherwise the result is the bus's: nil when all were
// accepted; a *BatchError when only some were (Errs[i] is event i's
// error); any other error when none was.
func (e *Executor) PublishBatch(ctx context.Context, evs []Event) error {
	return e.publishBatch(ctx, evs, false)
}

// PublishBatchValid is PublishBatch for data known to be well-formed JSON;
// see PublishValid.
func (e *Executor) PublishBatchValid(ctx context.Context, evs []Event) error {
	return e.publishBatch(ctx, evs, true)
}

func (e *Executor) publishBatch(ctx context.Context, evs []Event, wellFormed bool) error {
	ready := make([]Event, len(evs))
	for i, ev := range evs {
		var err error
		if ready[i], err = e.prepare(ev, wellFormed); err != nil {
			return indexedError(i, err)
		}
	}
	if len(ready) == 0 {
		return nil
	}
	err := e.bus.PublishBatch(ctx, ready)
	accepted := 0
	for _, err := range batchResults(err, len(ready)) {
		if err == nil {
			accepted++
		}
	}
	e.m.published.Add(uint64(accepted))
	return err
}

// indexedError prefixes a validation error with the index of its event,
// keeping its kind.
func indexedError(i int, err error) error {
	var ue *Error
	if errors.As(err, &ue) {
		return &Error{Kind: ue.Kind, Message: fmt.Sprintf("event %d: %s", i, ue.Message)}
	}
	return err
}

// PublishGathered publishes, with one PublishBatch, events of independent
// publishers gathered into one call (the asyncio layer's awaiting
// publishes), and returns each event's own result: an invalid event fails
// alone, with the error Publish would give it, and the others go on. The
// order of the valid events is kept. Data must be well-formed JSON, as for
// PublishValid.
func (e *Executor) PublishGathered(ctx context.Context, evs []Event) []error {
	errs := make([]error, len(evs))
	ready := make([]Event, 0, len(evs))
	index := make([]int, 0, len(evs)) // index in evs of each event of ready
	for i, ev := range evs {
		ev, err := e.prepare(ev, true)
		if err != nil {
			errs[i] = err
			continue
		}
		ready = append(ready, ev)
		index = append(index, i)
	}
	if len(ready) == 0 {
		return errs
	}
	if e.commit != nil {
		e.commit.stats.add(len(ready)) // a round trip shared as a group commit's
	}
	accepted := 0
	for j, err := range batchResults(e.bus.PublishBatch(ctx, ready), len(ready)) {
		if err == nil {
			accepted++
		}
		errs[index[j]] = err
	}
	e.m.published.Add(uint64(accepted))
	return errs
}
