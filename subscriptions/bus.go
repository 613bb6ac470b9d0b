package subscriptions

import (
	"context"
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
	// the bus has accepted the event; an error means it was not published.
	Publish(ctx context.Context, ev Event) error
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
	// LagMillis is the delay between the publication and the reception of
	// the last received event, in milliseconds (0 for the memory bus).
	LagMillis float64
}

// NewBus builds the bus that cfg describes.
func NewBus(ctx context.Context, cfg BusConfig) (Bus, error) {
	switch cfg.Kind {
	case "", BusMemory:
		return NewMemoryBus(), nil
	case BusRedis:
		return NewRedisBus(ctx, cfg.Redis)
	case BusPostgres:
		return NewPostgresBus(ctx, cfg.Postgres)
	default:
		return nil, valueErrorf("unknown bus type %q", cfg.Kind)
	}
}
