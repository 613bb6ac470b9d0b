package subscriptions

import "context"

// memoryHistory is the memory bus's bounded history: the last size events,
// numbered from 1 in publish order. Guarded by MemoryBus.order.
type memoryHistory struct {
	epoch string
	buf   []Event // a ring; buf[(n-1)%len(buf)] is event n
	last  uint64  // number of the last event, 0 before the first
	size  int
	// keys maps the IdempotencyKey of each event kept to its number: a
	// key is remembered as long as its event is in the history.
	keys map[string]uint64
}

// seen tells whether an event with idempotency key key is in the history.
func (h *memoryHistory) seen(key string) bool {
	_, ok := h.keys[key]
	return ok
}

// append numbers ev, keeps it and returns its position. The oldest event
// leaves when the history is full, and its idempotency key with it.
func (h *memoryHistory) append(ev Event) position {
	h.last++
	ev.pos = position{epoch: h.epoch, lo: h.last}
	if h.size > 0 {
		if len(h.buf) < h.size {
			h.buf = append(h.buf, Event{})
		}
		slot := &h.buf[(h.last-1)%uint64(h.size)]
		if k := slot.IdempotencyKey; k != "" && h.keys[k] == slot.pos.lo {
			delete(h.keys, k)
		}
		kept := ev
		kept.decoded = nil // pooled: released once dispatched
		*slot = kept
		if ev.IdempotencyKey != "" {
			if h.keys == nil {
				h.keys = make(map[string]uint64)
			}
			h.keys[ev.IdempotencyKey] = h.last
		}
	}
	return ev.pos
}

// oldest returns the number of the oldest event kept.
func (h *memoryHistory) oldest() uint64 {
	return h.last - uint64(len(h.buf)) + 1
}

// check refuses a position whose following events are not all kept, or
// past the last event.
func (h *memoryHistory) check(p position) error {
	switch {
	case p.lo > h.last:
		return positionError(ErrPositionInvalid, p.String(), "the position %s is after the last event of this bus", p)
	case p.lo+1 < h.oldest():
		return positionError(ErrPositionExpired, p.String(),
			"the events after position %s are no longer in the history (it keeps the last %d events)", p, h.size)
	}
	return nil
}

// after returns up to n events after p.
func (h *memoryHistory) after(p position, n int) ([]Event, error) {
	if err := h.check(p); err != nil {
		return nil, err
	}
	count := min(uint64(n), h.last-p.lo)
	out := make([]Event, 0, count)
	for i := p.lo + 1; i <= p.lo+count; i++ {
		out = append(out, h.buf[(i-1)%uint64(h.size)])
	}
	return out, nil
}

// setHistorySize sets how many events the bus keeps, before it starts.
func (b *MemoryBus) setHistorySize(n int) {
	b.order.Lock()
	defer b.order.Unlock()
	b.hist.size = n
}

func (b *MemoryBus) epoch() string { return b.hist.epoch }

func (b *MemoryBus) checkPosition(_ context.Context, p position) error {
	b.order.Lock()
	defer b.order.Unlock()
	return b.hist.check(p)
}

func (b *MemoryBus) history(_ context.Context, p position, n int, _ position) ([]Event, error) {
	b.order.Lock()
	defer b.order.Unlock()
	return b.hist.after(p, n)
}
