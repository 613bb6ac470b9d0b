package subscriptions

import (
	"context"
	"errors"
	"time"
)

// historyBus is a bus that gives each event a position and keeps a
// bounded history of them, from which a subscription that resumes after a
// position, or catches up after its queue filled, is refilled.
type historyBus interface {
	// epoch returns the epoch of the positions the bus gives now.
	epoch() string
	// checkPosition refuses with a *PositionError a position whose
	// following events are no longer all in the history, or that is past
	// the bus's last event.
	checkPosition(ctx context.Context, p position) error
	// history returns up to n events after p, in bus order, each with its
	// position; a *PositionError (ErrPositionExpired) when events after p
	// have left the history. Events after upto, the last position this
	// executor dispatched, may be left out (the PostgreSQL bus reads only
	// what its listener has settled).
	history(ctx context.Context, p position, n int, upto position) ([]Event, error)
}

// Overflow policies: what a subscription does when its queue is full.
const (
	// OverflowDrop drops the oldest message (the default). A subscription
	// that asked for positions ends instead, with an EVENTS_LOST error
	// naming the last position it was sent, so its client can resume.
	OverflowDrop = "drop"
	// OverflowCatchUp stops queueing, remembers the last position queued,
	// and refills the queue from the bus's history as the client reads,
	// then rejoins the live stream at the seam.
	OverflowCatchUp = "catch_up"
)

// Codes of the errors that end a subscription with positions.
const (
	// CodeEventsLost ends a subscription with positions whose queue
	// overflowed under OverflowDrop: resume after the position it names.
	CodeEventsLost = "EVENTS_LOST"
)

// DefaultHistorySize is the number of events the memory bus keeps for
// resumes and catch-ups.
const DefaultHistorySize = 10000

// subPos is the position state of a subscription that tracks positions
// (one that shows them, resumed, or catches up). Guarded by conn.mu.
type subPos struct {
	show    bool // frames carry the event's position
	catchUp bool // a full queue catches up from history
	// cursor: every event up to it was examined for this subscription
	// (queued, or refused by its filter or security checks).
	cursor position
	// catching: the queue is refilled from history; live dispatch skips
	// the subscription (what it skips, history brings).
	catching bool
	// ended: a final error frame was queued; nothing follows it.
	ended bool
	// room wakes the catch-up goroutine when the client read messages or
	// the subscription completed. Buffered, one slot.
	room chan struct{}
	// The catch-up goroutine's signals, sent once it unlocks.
	pendingWake  chan struct{}
	pendingReady bool
}

// noteRead wakes a catching subscription's refill. Under conn.mu.
func (s *subscription) noteRead() {
	if p := s.pos; p != nil && p.catching {
		select {
		case p.room <- struct{}{}:
		default:
		}
	}
}

// withPosition returns payload ({"data":...}) with the event's position
// in its "extensions".
func withPosition(payload []byte, at position) []byte {
	out := make([]byte, 0, len(payload)+len(at.epoch)+48)
	out = append(out, payload[:len(payload)-1]...)
	out = append(out, `,"extensions":{"position":"`...)
	out = at.appendTo(out)
	return append(out, `"}}`...)
}

// errorPayload is the payload of the frame that ends a subscription with
// a position error: {"errors":[{"message":...,"extensions":{"code":...,"position":...}}]}.
func errorPayload(code, msg, pos string) []byte {
	out := []byte(`{"errors":[{"message":`)
	out = append(out, quoteJSON(msg)...)
	out = append(out, `,"extensions":{"code":"`...)
	out = append(out, code...)
	out = append(out, '"')
	if pos != "" {
		out = append(out, `,"position":`...)
		out = append(out, quoteJSON(pos)...)
	}
	return append(out, "}}]}"...)
}

// endWith queues the final error frame of s, even on a full queue (one
// message over its bound), and ends it. Under conn.mu.
func (s *subscription) endWith(payload []byte, seq uint64) {
	s.pos.ended, s.pos.catching = true, false
	s.queue.limit++
	s.queue.push(message{seq: seq, payload: payload})
	s.queue.limit--
	s.conn.markQueued(s)
	s.enqueued++
}

// enqueueAt is enqueue for a subscription that tracks positions: the
// event at at is queued unless the subscription already has it (the seam
// of a resume), is catching up (history brings it), or ended. A full
// queue switches to catch-up, or ends the subscription with EVENTS_LOST:
// it never drops a message.
func (b *connBatch) enqueueAt(s *subscription, m message, at position) (queued bool) {
	if s.conn != b.held {
		b.release()
		b.held = s.conn
		b.held.mu.Lock()
	}
	p := s.pos
	if s.completed || p.ended || p.catching || !at.after(p.cursor) {
		return false
	}
	if s.queue.len() >= s.queue.limit {
		if p.catchUp {
			p.catching = true
			b.e.m.catchUps.Add(1)
			go b.e.catchUp(s)
			return false
		}
		// Ended, told in-band: the final frame counts as delivered.
		msg := "the subscription's queue overflowed: messages after this position were lost; resume after it"
		s.endWith(errorPayload(CodeEventsLost, msg, p.cursor.String()), m.seq)
		b.signal(s)
		return true
	}
	s.queue.push(m)
	p.cursor = at
	b.held.markQueued(s)
	s.enqueued++
	b.signal(s)
	return true
}

// signal arranges the wake-up of s's waiters and its readiness signal
// for when the connection is unlocked. Under conn.mu.
func (b *connBatch) signal(s *subscription) {
	if s.wake != nil {
		b.wakes = append(b.wakes, s.wake)
		s.wake = nil
	}
	if b.e.ready != nil && s.queue.len() == 1 {
		b.ready = append(b.ready, s.id)
	}
}

// catchUpRetry spaces the history reads of a catch-up whose bus failed.
const catchUpRetry = 100 * time.Millisecond

// catchUp is the goroutine that refills a catching subscription's queue
// from the bus's history as its client reads, until it reaches the live
// stream, completes, or its position leaves the history (then it ends
// with POSITION_EXPIRED). Memory stays bounded by the queue's size.
func (e *Executor) catchUp(s *subscription) {
	defer func() {
		if recover() != nil {
			e.m.dispatchErrors.Add(1)
		}
	}()
	for {
		cursor, room, ok := s.waitRoom()
		if !ok {
			return
		}
		e.orderMu.Lock()
		upto := e.lastPos
		e.orderMu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		evs, err := e.hist.history(ctx, cursor, room, upto)
		cancel()
		var pe *PositionError
		if errors.As(err, &pe) {
			e.m.positionsExpired.Add(1)
			s.conn.mu.Lock()
			if !s.completed && !s.pos.ended {
				s.endWith(errorPayload(pe.Code, pe.Error(), pe.Position), e.seq.Load())
				s.signalNow(e)
			}
			s.conn.mu.Unlock()
			s.flushSignals(e)
			return
		}
		if err != nil {
			if e.closed.Load() || !sleepCtx(context.Background(), catchUpRetry) {
				return
			}
			continue
		}
		for _, ev := range evs {
			if !e.replay(s, ev) {
				return
			}
		}
		if len(evs) < room {
			if h := e.beforeGoLive; h != nil {
				h() // tests: events dispatched live between the read and the seam
			}
			if e.goLive(s) {
				return
			}
		}
	}
}

// waitRoom waits until s's queue has room for a refill: half of it, or
// all of it. It returns the cursor and the room, or false when s
// completed or ended.
func (s *subscription) waitRoom() (position, int, bool) {
	for {
		s.conn.mu.Lock()
		p := s.pos
		if s.completed || p.ended || !p.catching {
			s.conn.mu.Unlock()
			return position{}, 0, false
		}
		room := s.queue.limit - s.queue.len()
		if room > 0 && (room*2 >= s.queue.limit || s.queue.len() == 0) {
			cursor := p.cursor
			s.conn.mu.Unlock()
			return cursor, room, true
		}
		s.conn.mu.Unlock()
		<-p.room
	}
}

// replay examines one history event for s, as live dispatch would have
// (filter, tenant and user checks), queues it if it passes and moves the
// cursor past it. It returns false when s completed or ended.
func (e *Executor) replay(s *subscription, ev Event) bool {
	var t tally
	defer e.m.add(&t)
	var payload []byte
	d, err := decodeEvent(ev, e.Limits())
	if err == nil {
		e.applyRowFilter(d)
		d.pos = ev.pos
		plan := s.group.plan
		switch {
		case !plan.Match(d):
			t.filtered++
		case d.hasTenant && d.tenantID != s.tenantID:
			t.tenantViolations++
		case d.hasUser && d.userID != s.userID:
			t.rowViolations++
		default:
			t.passed++
			payload = plan.AppendPayload(nil, d)
			t.encodings++
		}
		d.release()
	} else {
		e.m.dispatchErrors.Add(1)
	}
	s.conn.mu.Lock()
	p := s.pos
	if s.completed || p.ended {
		s.conn.mu.Unlock()
		return false
	}
	if ev.pos.after(p.cursor) {
		p.cursor = ev.pos
		if payload != nil {
			if p.show {
				payload = withPosition(payload, ev.pos)
			}
			s.queue.push(message{seq: e.seq.Load(), payload: payload})
			s.conn.markQueued(s)
			s.enqueued++
			t.delivered++
			e.m.replayed.Add(1)
			s.signalNow(e)
		}
	}
	s.conn.mu.Unlock()
	s.flushSignals(e)
	return true
}

// signalNow records, under conn.mu, the wake-up and readiness signal that
// flushSignals sends once the connection is unlocked.
func (s *subscription) signalNow(e *Executor) {
	if s.wake != nil {
		s.pos.pendingWake = s.wake
		s.wake = nil
	}
	if e.ready != nil && s.queue.len() == 1 {
		s.pos.pendingReady = true
	}
}

// flushSignals sends what signalNow recorded. Called by the catch-up
// goroutine only, after unlocking.
func (s *subscription) flushSignals(e *Executor) {
	s.conn.mu.Lock()
	wake, ready := s.pos.pendingWake, s.pos.pendingReady
	s.pos.pendingWake, s.pos.pendingReady = nil, false
	s.conn.mu.Unlock()
	if wake != nil {
		close(wake)
	}
	if ready {
		e.ready.signal(s.id)
	}
}

// goLive ends s's catch-up if its cursor reached the last event
// dispatched live: with dispatch held off, live delivery resumes right
// after the cursor (a live event at or before it is skipped, see
// enqueueAt). It reports whether it did.
func (e *Executor) goLive(s *subscription) bool {
	e.orderMu.Lock()
	defer e.orderMu.Unlock()
	s.conn.mu.Lock()
	defer s.conn.mu.Unlock()
	if e.lastPos.after(s.pos.cursor) {
		return false
	}
	s.pos.catching = false
	return true
}

// resumeFrom checks a client's position for a registration and returns it.
func (e *Executor) resumeFrom(after string) (position, error) {
	if e.hist == nil {
		return position{}, valueErrorf("positions need a bus that keeps a history")
	}
	p, err := parsePosition(after, e.hist.epoch())
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err = e.hist.checkPosition(ctx, p)
		cancel()
	}
	var pe *PositionError
	if errors.As(err, &pe) {
		if pe.sentinel == ErrPositionExpired {
			e.m.positionsExpired.Add(1)
		} else {
			e.m.positionsInvalid.Add(1)
		}
	}
	return p, err
}
