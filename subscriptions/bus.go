package subscriptions

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// Bus carries events between the executors that share it. Every executor
// receives every event through its bus, its own included, so that all of
// them see the same order.
type Bus interface {
	// Start begins handing every event published on the bus from now on to
	// deliver, one at a time, in bus order. It returns once the bus is
	// ready to deliver (for a distributed bus: connected and subscribed),
	// or with an error that says what could not be reached.
	Start(ctx context.Context, deliver func(Event)) error
	// Publish sends ev to every executor on the bus. When it returns nil
	// the bus has accepted the event; an error means it was not published,
	// unless it matches ErrOutcomeUnknown (the answer was lost).
	Publish(ctx context.Context, ev Event) error
	// PublishBatch puts evs on the bus in order with one round trip / one
	// transaction. nil: all accepted. A *BatchError reports per-event
	// results (Errs[i] nil = accepted); any other error: none accepted.
	PublishBatch(ctx context.Context, evs []Event) error
	// Stats reports the bus's counters.
	Stats() BusStats
	// Close stops delivery, releases connections and removes what the bus
	// created for this executor alone on the server. ctx bounds the wait
	// for the reader to stop and for the server's answers; when it ends,
	// connections are closed without further waiting.
	Close(ctx context.Context) error
}

// BusStats are a bus's counters since Start.
type BusStats struct {
	Published  uint64 // events this executor put on the bus
	Received   uint64 // events this executor took off the bus
	Reconnects uint64 // connections re-established after a failure
	// Panics counts panics recovered in the bus's own goroutines (outside
	// deliver, which recovers its own); the reader starts over after one.
	Panics uint64
	// PrunedUnread counts the events that the PostgreSQL bus pruned while
	// this InstanceID was stopped, before it read them (reported when it
	// starts again, and logged).
	PrunedUnread uint64
	// LagMillis is the delay between the publication and the reception of
	// the last received event, in milliseconds (0 for the memory bus).
	LagMillis float64
}

// deliveryGate stands between a bus reader and its deliver callback, so
// that Close can stop the reader between two events: once stop returns,
// deliver is never called again, and the reader neither acknowledges nor
// counts in its position what it took off the bus and did not deliver.
type deliveryGate struct {
	mu      sync.Mutex
	stopped bool
}

// deliver calls f(ev) unless the gate is stopped, and reports whether it did.
func (g *deliveryGate) deliver(f func(Event), ev Event) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.stopped {
		return false
	}
	f(ev)
	return true
}

// stop returns once no deliver is under way, and prevents any other.
func (g *deliveryGate) stop() {
	g.mu.Lock()
	g.stopped = true
	g.mu.Unlock()
}

// errDeliveryStopped ends a read when Close stopped delivery.
var errDeliveryStopped = errors.New("delivery stopped by Close")

// deliveryStopper is a bus with a reader that Executor.Close stops before
// it marks the executor closed, lest the reader hand it events that it
// would drop after the bus counted them as delivered.
type deliveryStopper interface {
	stopDelivery()
}

// busCounters are the counters of a distributed bus, behind Stats, and
// its readers' test hook.
type busCounters struct {
	published    atomic.Uint64
	received     atomic.Uint64
	reconnects   atomic.Uint64
	panics       atomic.Uint64 // recovered in the bus's own goroutines
	prunedUnread atomic.Uint64
	lagBits      atomic.Uint64 // math.Float64bits of LagMillis
	// reads counts the reader's completed reads of the bus (PostgreSQL):
	// a test of "nothing more arrives" waits for reads, not for time.
	reads atomic.Uint64
	// panicNext makes the reader panic before its next event (tests).
	panicNext atomic.Bool
}

// Stats implements Bus.
func (c *busCounters) Stats() BusStats {
	return BusStats{
		Published:    c.published.Load(),
		Received:     c.received.Load(),
		Reconnects:   c.reconnects.Load(),
		Panics:       c.panics.Load(),
		PrunedUnread: c.prunedUnread.Load(),
		LagMillis:    math.Float64frombits(c.lagBits.Load()),
	}
}

// receivedAt counts an event received now that was published at
// published (another host's clock, maybe: a negative lag reads 0).
func (c *busCounters) receivedAt(published time.Time) {
	c.received.Add(1)
	lag := float64(time.Since(published).Microseconds()) / 1000
	c.lagBits.Store(math.Float64bits(max(lag, 0)))
}

// armReaderPanic makes the reader panic before it dispatches its next
// event (a test hook, see Executor.InjectFault).
func (c *busCounters) armReaderPanic() { c.panicNext.Store(true) }

// NewBus builds the bus that cfg describes. It does not connect (Start
// does), so it takes no context.
func NewBus(cfg BusConfig) (Bus, error) {
	switch cfg.Kind {
	case "", BusMemory:
		return NewMemoryBus(), nil
	case BusRedis:
		if cfg.Redis.Logger == nil {
			cfg.Redis.Logger = cfg.Logger
		}
		return NewRedisBus(cfg.Redis)
	case BusPostgres:
		if cfg.Postgres.Logger == nil {
			cfg.Postgres.Logger = cfg.Logger
		}
		return NewPostgresBus(cfg.Postgres)
	default:
		return nil, valueErrorf("unknown bus type %q", cfg.Kind)
	}
}

// BatchError is PublishBatch's report when some events of a batch were not
// accepted: Errs[i] is the error of evs[i], nil when it was accepted.
type BatchError struct {
	Errs []error
}

// Error names how many events failed and the first failure.
func (e *BatchError) Error() string {
	failed, first := 0, -1
	for i, err := range e.Errs {
		if err != nil {
			failed++
			if first < 0 {
				first = i
			}
		}
	}
	if first < 0 {
		return fmt.Sprintf("all %d events of the batch were published", len(e.Errs))
	}
	return fmt.Sprintf("%d of %d events were not published; event %d: %v", failed, len(e.Errs), first, e.Errs[first])
}

// Unwrap returns the distinct failures, for errors.Is and errors.As.
func (e *BatchError) Unwrap() []error {
	var out []error
	seen := map[string]bool{}
	for _, err := range e.Errs {
		if err != nil && !seen[err.Error()] {
			seen[err.Error()] = true
			out = append(out, err)
		}
	}
	return out
}

// batchResults spreads the outcome of PublishBatch over its n events.
func batchResults(err error, n int) []error {
	out := make([]error, n)
	var be *BatchError
	if errors.As(err, &be) && len(be.Errs) == n {
		copy(out, be.Errs)
		return out
	}
	if err != nil {
		for i := range out {
			out[i] = err
		}
	}
	return out
}
