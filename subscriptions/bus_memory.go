package subscriptions

import (
	"context"
	"sync"
	"sync/atomic"
)

// MemoryBus delivers events inside one executor, synchronously: when
// Publish returns, the event has been dispatched. It numbers the events
// and keeps the last of them (see history_memory.go); its epoch is
// random, so a restarted bus refuses the positions of an earlier one. An
// event whose IdempotencyKey is that of an event in the history is
// accepted and not delivered again.
type MemoryBus struct {
	mu        sync.RWMutex
	deliver   func(Event)
	closed    bool
	published atomic.Uint64
	received  atomic.Uint64 // published less the repeats of a key
	// order is held from numbering an event to the end of its dispatch:
	// every subscription receives events in position order.
	order sync.Mutex
	hist  memoryHistory
}

// NewMemoryBus returns a bus local to one executor.
func NewMemoryBus() *MemoryBus {
	return &MemoryBus{hist: memoryHistory{epoch: newEpoch('m'), size: DefaultHistorySize}}
}

// deliverOne numbers ev, keeps it and dispatches it, unless it repeats
// the idempotency key of an event in the history. Under b.mu (read).
func (b *MemoryBus) deliverOne(ev Event) {
	b.order.Lock()
	defer b.order.Unlock()
	if ev.IdempotencyKey != "" && b.hist.seen(ev.IdempotencyKey) {
		if ev.decoded != nil {
			ev.decoded.release() // prepared for a dispatch that does not happen
		}
		return
	}
	b.received.Add(1)
	ev.pos = b.hist.append(ev)
	if b.deliver != nil {
		b.deliver(ev)
	}
}

// Start implements Bus.
func (b *MemoryBus) Start(_ context.Context, deliver func(Event)) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.deliver = deliver
	return nil
}

// Publish implements Bus.
func (b *MemoryBus) Publish(_ context.Context, ev Event) error {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return ErrClosed
	}
	b.published.Add(1)
	b.deliverOne(ev)
	return nil
}

// PublishBatch implements Bus: the events are dispatched in order, all of
// them before it returns.
func (b *MemoryBus) PublishBatch(_ context.Context, evs []Event) error {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return ErrClosed
	}
	for _, ev := range evs {
		b.published.Add(1)
		b.deliverOne(ev)
	}
	return nil
}

// Stats implements Bus.
func (b *MemoryBus) Stats() BusStats {
	return BusStats{Published: b.published.Load(), Received: b.received.Load()}
}

// Close implements Bus.
func (b *MemoryBus) Close(context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	b.deliver = nil
	return nil
}
