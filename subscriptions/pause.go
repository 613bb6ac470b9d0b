package subscriptions

import (
	"context"
	"sync"
)

// Starting paused (Options.Paused) lets an application register its
// subscriptions before the bus delivers anything: with a stable instance
// id a distributed bus delivers the events committed while the executor
// was down as soon as its reader starts, and without a pause they would
// reach no subscription.
//
// The hold is in the bus reader, before its first read, not in the
// executor's deliver: a reader blocked inside deliver has already taken
// the event (and the rest of its page) off the bus, so closing while
// paused would move its stored position past events nobody received.
// Held before reading, the events stay in the bus (the PostgreSQL table
// after the stored position, the Redis stream after the group's
// position), and Close ends the wait.

// gate holds bus readers until it is opened, once.
type gate struct {
	ch   chan struct{}
	once sync.Once
}

func newGate() *gate { return &gate{ch: make(chan struct{})} }

// open lets the readers go; opening twice is harmless.
func (g *gate) open() { g.once.Do(func() { close(g.ch) }) }

// holdable is a bus whose reader can wait for a channel to close before
// its first read. holdReader is called before Start.
type holdable interface {
	holdReader(open <-chan struct{})
}

// waitOpen waits until open is closed (true; a nil open is open) or ctx
// ends (false).
func waitOpen(ctx context.Context, open <-chan struct{}) bool {
	if open == nil {
		return ctx.Err() == nil
	}
	select {
	case <-open:
		return ctx.Err() == nil
	case <-ctx.Done():
		return false
	}
}

// Resume starts the delivery of an executor created with Options.Paused:
// the events the bus held (for a stable instance id, those committed while
// the executor was down) and every later one are dispatched, in bus order,
// to the subscriptions registered by then. Resuming an executor that is
// not paused, or twice, does nothing. It fails with ErrClosed after Close.
func (e *Executor) Resume() error {
	if e.closed.Load() {
		return ErrClosed
	}
	if e.hold != nil {
		e.hold.open()
	}
	return nil
}

// holdReader implements holdable.
func (b *PostgresBus) holdReader(open <-chan struct{}) { b.hold = open }

// holdReader implements holdable.
func (b *redisBus) holdReader(open <-chan struct{}) { b.hold = open }

// waitResumed holds the listener until the executor resumes (true) or
// ctx ends (false). Meanwhile it reads and discards the notifications on
// its connection: a listening backend whose client does not read them
// stops advancing in the server's notification queue, which every NOTIFY
// of the database shares and which, full, makes them fail. The first
// read after resuming reads from the position whatever notified.
func (l *pgListener) waitResumed(ctx context.Context) bool {
	if l.bus.hold == nil {
		return ctx.Err() == nil
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-l.bus.hold:
			cancel()
		case <-wctx.Done():
		}
	}()
	for l.conn != nil && wctx.Err() == nil {
		if _, err := l.conn.WaitForNotification(wctx); err != nil && wctx.Err() == nil {
			// Broken: the loop reconnects once resumed.
			closeQuietly(l.conn)
			l.conn = nil
		}
	}
	<-wctx.Done()
	return waitOpen(ctx, l.bus.hold)
}
