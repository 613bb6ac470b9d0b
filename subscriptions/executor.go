package subscriptions

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unique"
	"unsafe"
)

// Options configure an Executor. Zero fields take the documented defaults.
type Options struct {
	// Bus selects how events travel. Default: the in-process memory bus.
	Bus BusConfig
	// QueueSize bounds each subscription's queue; when it is full the
	// oldest message is dropped and counted. Default 1000.
	QueueSize int
	// Limits bound documents and events. See Limits for the defaults.
	Limits Limits
}

// DefaultQueueSize is the default bound of a subscription's queue.
const DefaultQueueSize = 1000

// MaxIDBytes bounds connection and subscription ids.
const MaxIDBytes = 1024

// Registration describes one subscription to register.
type Registration struct {
	ConnectionID   string
	SubscriptionID string
	Query          string
	OperationName  string
	// Variables are decoded JSON values (numbers as json.Number), or nil.
	Variables map[string]any
	// UserID and TenantID are the subscriber's security context: events
	// whose data names another tenant or user never reach it.
	UserID   string
	TenantID string
}

// Executor holds subscriptions, receives events from its bus and queues
// one pre-serialized graphql-transport-ws message per delivery.
type Executor struct {
	opts    Options
	bus     Bus
	commit  *groupCommit // shares the bus's round trips among publishers
	mu      sync.RWMutex // guards reg and closed
	reg     registry
	closed  bool
	seq     atomic.Uint64
	m       counters
	ready   *readySignal
	started time.Time
}

// NewExecutor builds an executor and starts its bus. The context bounds
// connecting to a distributed bus.
func NewExecutor(ctx context.Context, opts Options) (*Executor, error) {
	if opts.QueueSize <= 0 {
		opts.QueueSize = DefaultQueueSize
	}
	opts.Limits = opts.Limits.withDefaults()
	bus, err := NewBus(ctx, opts.Bus)
	if err != nil {
		return nil, err
	}
	e := &Executor{opts: opts, bus: bus, commit: newGroupCommit(bus), reg: newRegistry(), started: time.Now()}
	if err := bus.Start(ctx, e.deliver); err != nil {
		_ = bus.Close()
		return nil, err
	}
	return e, nil
}

// Limits returns the limits in force.
func (e *Executor) Limits() Limits { return e.opts.Limits }

// SetLimits changes the limits for documents registered and events
// published from now on; zero fields keep their defaults.
func (e *Executor) SetLimits(l Limits) {
	e.mu.Lock()
	e.opts.Limits = l.withDefaults()
	e.mu.Unlock()
}

// Register compiles r.Query and adds the subscription. Nothing is kept
// when it fails.
func (e *Executor) Register(r Registration) error {
	err := e.register(r)
	if err != nil {
		e.m.errored.Add(1)
	}
	e.m.total.Add(1)
	return err
}

func (e *Executor) register(r Registration) error {
	switch {
	case r.ConnectionID == "":
		return valueErrorf("connection_id must not be empty")
	case r.SubscriptionID == "":
		return valueErrorf("subscription_id must not be empty")
	case len(r.ConnectionID) > MaxIDBytes:
		return valueErrorf("connection_id is %d bytes, over the limit of %d", len(r.ConnectionID), MaxIDBytes)
	case len(r.SubscriptionID) > MaxIDBytes:
		return valueErrorf("subscription_id is %d bytes, over the limit of %d", len(r.SubscriptionID), MaxIDBytes)
	case len(r.UserID) > MaxIDBytes || len(r.TenantID) > MaxIDBytes:
		return valueErrorf("user_id and tenant_id must be at most %d bytes", MaxIDBytes)
	}
	e.mu.RLock()
	lim, closed := e.opts.Limits, e.closed
	_, exists := e.reg.subs[r.SubscriptionID]
	e.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	if exists {
		return valueErrorf("Subscription %s already exists", r.SubscriptionID)
	}
	// Compile outside the lock: it is the expensive part.
	plan, err := Compile(r.Query, r.OperationName, r.Variables, lim)
	if err != nil {
		return err
	}
	s := &subscription{
		id:       r.SubscriptionID,
		userID:   unique.Make(r.UserID).Value(), // shared: dispatch compares it hot in cache
		tenantID: unique.Make(r.TenantID).Value(),
		prefix:   nextPrefix(r.SubscriptionID),
		queue:    newRing(e.opts.QueueSize),
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return ErrClosed
	}
	if _, exists := e.reg.subs[r.SubscriptionID]; exists {
		return valueErrorf("Subscription %s already exists", r.SubscriptionID)
	}
	if g := e.reg.groups[plan.Key]; g != nil {
		plan = g.plan // share the compiled form
	}
	e.reg.add(s, r.ConnectionID, plan)
	e.m.active.Add(1)
	return nil
}

// Publish validates ev and puts it on the bus. With the memory bus the
// event has been dispatched to every matching subscription on return.
func (e *Executor) Publish(ctx context.Context, ev Event) error {
	return e.publish(ctx, ev, false)
}

// PublishValid is Publish for data known to be well-formed JSON, such as
// the output of Python's json.dumps: it skips the strict validation pass
// that guards Publish against malformed input (about a fifth of the
// decoding time of a 2 KB event). Limits and type checks are the same.
func (e *Executor) PublishValid(ctx context.Context, ev Event) error {
	return e.publish(ctx, ev, true)
}

func (e *Executor) publish(ctx context.Context, ev Event, wellFormed bool) error {
	ev, err := e.prepare(ev, wellFormed)
	if err != nil {
		return err
	}
	if err := e.commit.publish(ctx, e.bus, ev); err != nil {
		return err
	}
	e.m.published.Add(1)
	return nil
}

// prepare validates ev for publishing and returns it as the bus takes it.
func (e *Executor) prepare(ev Event, wellFormed bool) (Event, error) {
	switch {
	case ev.Channel == "":
		return ev, valueErrorf("channel must not be empty")
	case len(ev.Channel) > MaxIDBytes:
		return ev, valueErrorf("channel is %d bytes, over the limit of %d", len(ev.Channel), MaxIDBytes)
	case len(ev.Type) > MaxIDBytes:
		return ev, valueErrorf("event_type is %d bytes, over the limit of %d", len(ev.Type), MaxIDBytes)
	}
	e.mu.RLock()
	lim, closed := e.opts.Limits, e.closed
	e.mu.RUnlock()
	if closed {
		return ev, ErrClosed
	}
	d, err := decodeEventFrom(ev, lim, wellFormed)
	if err != nil {
		return ev, err
	}
	if _, local := e.bus.(*MemoryBus); local {
		ev.decoded = d // spare the dispatcher a second decoding
	}
	return ev, nil
}

// deliver is the bus's callback: it dispatches one event.
func (e *Executor) deliver(ev Event) {
	defer func() {
		if recover() != nil {
			e.m.dispatchErrors.Add(1)
		}
	}()
	d := ev.decoded
	if d == nil {
		var err error
		if d, err = decodeEvent(ev, e.Limits()); err != nil {
			e.m.dispatchErrors.Add(1)
			return
		}
	}
	e.dispatch(d)
}

// dispatch matches d against every group listening to its channel or
// type, encodes it once per group that has a recipient, and queues it.
func (e *Executor) dispatch(d *decodedEvent) {
	seq := e.seq.Add(1)
	var t tally
	e.mu.RLock()
	if !e.closed {
		e.dispatchGroups(d, seq, e.reg.byField[d.Channel], &t)
		if d.Type != d.Channel {
			e.dispatchGroups(d, seq, e.reg.byField[d.Type], &t)
		}
	}
	e.mu.RUnlock()
	e.m.add(&t)
}

// tally counts one dispatch, added to the shared counters once.
type tally struct {
	delivered, dropped, filtered, encodings uint64
	passed, tenantViolations, rowViolations uint64
}

func (e *Executor) dispatchGroups(d *decodedEvent, seq uint64, groups []*planGroup, t *tally) {
	b := connBatch{e: e}
	defer b.release()
	for _, g := range groups {
		if !g.plan.Match(d) {
			t.filtered += uint64(len(g.members))
			continue
		}
		var payload []byte // encoded on the first recipient
		for _, s := range g.members {
			if d.hasTenant && d.tenantID != s.tenantID {
				t.tenantViolations++
				continue
			}
			if d.hasUser && d.userID != s.userID {
				t.rowViolations++
				continue
			}
			t.passed++
			if payload == nil {
				payload = g.plan.AppendPayload(make([]byte, 0, len(d.Data)+32), d)
				t.encodings++
			}
			if b.enqueue(s, message{seq: seq, payload: payload}) {
				t.dropped++
			}
			t.delivered++
		}
	}
}

// connBatch queues messages for dispatchGroups. It keeps a connection's
// mutex across consecutive recipients on that connection (a group's
// members are mostly in registration order, so a connection's
// subscriptions are neighbours) instead of locking once per delivery,
// which profiled as about half of a delivery's cost at 10,000
// subscriptions. Wake-ups and readiness signals wait until the unlock.
type connBatch struct {
	e     *Executor
	held  *connection
	wakes []chan struct{}
	ready []string
}

// enqueue appends m to s's queue and reports whether a message was dropped.
func (b *connBatch) enqueue(s *subscription, m message) (dropped bool) {
	if s.conn != b.held {
		b.release()
		b.held = s.conn
		b.held.mu.Lock()
	}
	if s.completed {
		return false
	}
	dropped = s.queue.push(m)
	s.enqueued++
	if dropped {
		s.dropped++
	}
	if s.wake != nil {
		b.wakes = append(b.wakes, s.wake)
		s.wake = nil
	}
	if s.queue.len() == 1 && b.e.ready != nil {
		b.ready = append(b.ready, s.id)
	}
	return dropped
}

// release unlocks the held connection, then wakes its waiters.
func (b *connBatch) release() {
	if b.held == nil {
		return
	}
	b.held.mu.Unlock()
	b.held = nil
	for i, w := range b.wakes {
		close(w)
		b.wakes[i] = nil
	}
	b.wakes = b.wakes[:0]
	for _, id := range b.ready {
		b.e.ready.signal(id)
	}
	b.ready = b.ready[:0]
}

// lookup returns the live subscription id.
func (e *Executor) lookup(id string) (*subscription, error) {
	e.mu.RLock()
	s, closed := e.reg.subs[id], e.closed
	e.mu.RUnlock()
	if closed {
		return nil, ErrClosed
	}
	if s == nil {
		return nil, valueErrorf("Subscription not found: %s", shortID(id))
	}
	return s, nil
}

// Next returns the next pending message of subscription id as a complete
// graphql-transport-ws frame, or "" when nothing is pending.
func (e *Executor) Next(id string) (string, error) {
	s, err := e.lookup(id)
	if err != nil {
		return "", err
	}
	c := s.conn
	c.mu.Lock()
	m, ok := s.queue.pop()
	if ok {
		s.read++
	}
	c.mu.Unlock()
	if !ok {
		return "", nil
	}
	e.m.read.Add(1)
	b := appendFrame(make([]byte, 0, len(s.prefix)+len(m.payload)+1), s, m)
	return unsafe.String(unsafe.SliceData(b), len(b)), nil
}

// NextWait is Next that waits up to timeout for a message.
func (e *Executor) NextWait(id string, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	for {
		frame, err := e.Next(id)
		if err != nil || frame != "" {
			return frame, err
		}
		s, err := e.lookup(id)
		if err != nil {
			return "", err
		}
		c := s.conn
		c.mu.Lock()
		if s.queue.len() > 0 {
			c.mu.Unlock()
			continue
		}
		if s.completed {
			c.mu.Unlock()
			return "", valueErrorf("Subscription not found: %s", shortID(id))
		}
		if s.wake == nil {
			s.wake = make(chan struct{})
		}
		wake := s.wake
		c.mu.Unlock()
		left := time.Until(deadline)
		if left <= 0 {
			return "", nil
		}
		timer := time.NewTimer(left)
		select {
		case <-wake:
			timer.Stop()
		case <-timer.C:
			return e.Next(id)
		}
	}
}

// appendFrame appends the "next" frame of m for s.
func appendFrame(dst []byte, s *subscription, m message) []byte {
	dst = append(dst, s.prefix...)
	dst = append(dst, m.payload...)
	return append(dst, nextSuffix...)
}

// DrainConnection removes up to max pending messages (all when max <= 0)
// of every subscription of a connection, in the order the events were
// dispatched, and returns their frames separated by '\n' (a compact JSON
// frame never contains a raw newline) with their count. An unknown
// connection has nothing pending.
func (e *Executor) DrainConnection(connID string, max int) (string, int, error) {
	e.mu.RLock()
	c, closed := e.reg.conns[connID], e.closed
	e.mu.RUnlock()
	if closed {
		return "", 0, ErrClosed
	}
	if c == nil {
		return "", 0, nil
	}
	c.mu.Lock()
	buf, n := drainLocked(c, max)
	c.mu.Unlock()
	e.m.read.Add(uint64(n))
	return unsafe.String(unsafe.SliceData(buf), len(buf)), n, nil
}

// drainLocked merges the queues of c's subscriptions by event order. The
// frames go into one buffer of the exact size (growing it by append was
// most of a drain's time), and the merge sorts only when the queues'
// messages are not already in order (one event reaching several of the
// connection's subscriptions, the common case, is in order as gathered).
func drainLocked(c *connection, max int) ([]byte, int) {
	total := 0
	for _, s := range c.subs {
		total += s.queue.len()
	}
	if max <= 0 || max > total {
		max = total
	}
	if max == 0 {
		return nil, 0
	}
	if len(c.subs) == 1 {
		s := c.subs[0]
		size := max - 1 // separators
		for i := 0; i < max; i++ {
			size += len(s.prefix) + len(s.queue.at(i).payload) + len(nextSuffix)
		}
		buf := make([]byte, 0, size)
		for i := 0; i < max; i++ {
			m, _ := s.queue.pop()
			buf = appendSep(buf, i)
			buf = appendFrame(buf, s, m)
		}
		s.read += uint64(max)
		return buf, max
	}
	type item struct {
		seq uint64
		s   *subscription
	}
	items := make([]item, 0, total)
	sorted := true
	for _, s := range c.subs {
		for i := 0; i < s.queue.len(); i++ {
			seq := s.queue.at(i).seq
			if n := len(items); n > 0 && items[n-1].seq > seq {
				sorted = false
			}
			items = append(items, item{seq, s})
		}
	}
	if !sorted {
		slices.SortStableFunc(items, func(a, b item) int { return cmp.Compare(a.seq, b.seq) })
	}
	items = items[:max]
	size := max - 1
	for _, it := range items {
		size += len(it.s.prefix) + len(nextSuffix)
	}
	// Payloads of every message up to the last event taken: exact, or a
	// little over when that event reached subscriptions left for later.
	buf := make([]byte, 0, size+payloadBytes(c, items[len(items)-1].seq))
	for i, it := range items {
		s := it.s
		m, _ := s.queue.pop()
		s.read++
		buf = appendSep(buf, i)
		buf = appendFrame(buf, s, m)
	}
	return buf, max
}

// payloadBytes sums the payload sizes of c's queued messages up to event
// seq, to size a drain's buffer.
func payloadBytes(c *connection, upTo uint64) int {
	n := 0
	for _, s := range c.subs {
		for i := 0; i < s.queue.len(); i++ {
			m := s.queue.at(i)
			if m.seq > upTo {
				break
			}
			n += len(m.payload)
		}
	}
	return n
}

func appendSep(buf []byte, i int) []byte {
	if i > 0 {
		return append(buf, '\n')
	}
	return buf
}

// Complete removes subscription id and its queue. An unknown id is not an
// error: graphql-transport-ws asks servers to ignore it.
func (e *Executor) Complete(id string) bool {
	e.mu.Lock()
	s := e.reg.subs[id]
	if s != nil {
		e.reg.remove(s)
	}
	e.mu.Unlock()
	if s == nil {
		return false
	}
	e.finish(s)
	return true
}

// CompleteConnection removes every subscription of a connection and
// returns how many there were.
func (e *Executor) CompleteConnection(connID string) int {
	e.mu.Lock()
	var subs []*subscription
	if c := e.reg.conns[connID]; c != nil {
		c.mu.Lock()
		subs = append(subs, c.subs...)
		c.mu.Unlock()
		for _, s := range subs {
			e.reg.remove(s)
		}
	}
	e.mu.Unlock()
	for _, s := range subs {
		e.finish(s)
	}
	return len(subs)
}

// finish drops what s still holds and wakes its waiters.
func (e *Executor) finish(s *subscription) {
	c := s.conn
	c.mu.Lock()
	s.completed = true
	discarded := s.queue.len()
	s.queue = ring{}
	wake := s.wake
	s.wake = nil
	c.mu.Unlock()
	if wake != nil {
		close(wake)
	}
	e.m.discarded.Add(uint64(discarded))
	e.m.active.Add(^uint64(0))
	e.m.completed.Add(1)
}

// SubscriptionStats are the counters of one subscription.
type SubscriptionStats struct {
	Queued   int    `json:"queued"`
	Enqueued uint64 `json:"delivered"`
	Dropped  uint64 `json:"dropped"`
	Read     uint64 `json:"read"`
	// GroupSize is the number of subscriptions sharing its compiled plan.
	GroupSize int `json:"group_size"`
}

// Stats returns the counters of subscription id.
func (e *Executor) Stats(id string) (SubscriptionStats, error) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	s := e.reg.subs[id]
	if s == nil {
		return SubscriptionStats{}, valueErrorf("Subscription not found: %s", shortID(id))
	}
	c := s.conn
	c.mu.Lock()
	defer c.mu.Unlock()
	return SubscriptionStats{Queued: s.queue.len(), Enqueued: s.enqueued, Dropped: s.dropped, Read: s.read, GroupSize: len(s.group.members)}, nil
}

// Close stops the bus and completes every subscription. Later calls fail
// with ErrClosed; closing twice is harmless.
func (e *Executor) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	var subs []*subscription
	for _, s := range e.reg.subs {
		subs = append(subs, s)
	}
	e.reg = newRegistry()
	e.mu.Unlock()
	for _, s := range subs {
		e.finish(s)
	}
	if e.ready != nil {
		e.ready.close()
	}
	return e.bus.Close()
}

// shortID cuts an id for an error message, so that a huge unknown id does
// not make a huge message.
func shortID(id string) string {
	const max = 100
	if len(id) <= max {
		return id
	}
	return truncateIdent(id, max) + "..."
}
