package subscriptions

import (
	"bytes"
	"cmp"
	"context"
	"math/bits"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
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
	// Paused starts the executor with delivery held until Resume: the bus
	// is connected and publishing works, but nothing is dispatched, so the
	// subscriptions registered before Resume receive the events the bus
	// holds (with a stable instance id, those committed while the executor
	// was down). Needs a Redis or PostgreSQL bus. Default false.
	Paused bool
	// RowFilterField is the top-level key of an event's data that, when
	// present, must equal a subscriber's UserID for the event to reach it
	// (the row filter). Default "user_id" (DefaultRowFilterField).
	RowFilterField string
	// NoRowFilter turns the row filter off: an event reaches the
	// subscribers of its tenant whatever its data holds. Default false.
	NoRowFilter bool
	// Schema is GraphQL SDL (Strawberry's str(schema), an SDL file) that
	// documents are validated against and results shaped by, as
	// graphql-core does. Default "": no schema, documents are taken as
	// they come (see the README's subscription language).
	Schema string
	// HistorySize is the number of events the memory bus keeps for
	// subscriptions that resume after a position or catch up. Default
	// DefaultHistorySize (10,000). Redis keeps its stream (MaxLen).
	HistorySize int
	// OnOverflow is the policy of a subscription whose queue is full,
	// unless its registration names one: OverflowDrop (the default) or
	// OverflowCatchUp.
	OnOverflow string
}

// DefaultQueueSize is the default bound of a subscription's queue.
const DefaultQueueSize = 1000

// DefaultRowFilterField is the default Options.RowFilterField.
const DefaultRowFilterField = "user_id"

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
	// Positions: every "next" frame carries its event's position in the
	// payload's "extensions" ({"position":"..."}).
	Positions bool
	// After resumes after a position a frame carried: the subscription
	// first receives every event after it that it would have received
	// live, then the live stream, without gap or duplicate. It implies
	// Positions. A position the bus does not know is refused with a
	// *PositionError.
	After string
	// OnOverflow overrides the executor's Options.OnOverflow.
	OnOverflow string
}

// Executor holds subscriptions, receives events from its bus and queues
// one pre-serialized graphql-transport-ws message per delivery.
//
// Locks: mu guards the registry and is read-held by every dispatch; a
// connection's mutex guards its subscriptions' queues and is taken under
// mu or alone, never the other way round. Every lock is released by a
// defer, so a recovered panic (deliver recovers) cannot leave one held.
type Executor struct {
	opts Options // Limits unused: see limits
	bus  Bus
	// commit shares the bus's round trips among concurrent publishers.
	commit *groupCommit
	mu     sync.RWMutex // guards reg; closed is only set under it
	reg    registry
	// closed is atomic so that publishing checks it without taking mu;
	// it is set under mu, so holders of mu see it stable.
	closed atomic.Bool
	// limits is read on every publish and bus delivery; an atomic pointer
	// keeps that read off mu. limitsMu serializes its writers.
	limits   atomic.Pointer[Limits]
	limitsMu sync.Mutex
	seq      atomic.Uint64
	m        counters
	ready    *readySignal
	started  time.Time
	// panicInDispatch makes the next dispatch panic once (InjectFault).
	panicInDispatch atomic.Bool
	// hold is the gate of a paused executor's bus reader, nil otherwise.
	hold *gate
	// schema is Options.Schema compiled, nil without one.
	schema *Schema
	// hist is the bus's history, nil when it keeps none (PostgreSQL).
	hist historyBus
	// orderMu is held while an event with a position is dispatched, so
	// that a catch-up can join the live stream between two events;
	// lastPos is the position of the last one.
	orderMu sync.Mutex
	lastPos position
	// beforeGoLive, set by tests, runs before a catch-up tries to join
	// the live stream.
	beforeGoLive func()
}

// NewExecutor builds an executor and starts its bus. The context bounds
// connecting to a distributed bus.
func NewExecutor(ctx context.Context, opts Options) (*Executor, error) {
	if opts.QueueSize <= 0 {
		opts.QueueSize = DefaultQueueSize
	}
	opts.Limits = opts.Limits.withDefaults()
	if opts.RowFilterField == "" {
		opts.RowFilterField = DefaultRowFilterField
	}
	if len(opts.RowFilterField) > MaxIDBytes {
		return nil, valueErrorf("the row filter field must be at most %d bytes", MaxIDBytes)
	}
	var schema *Schema
	if opts.Schema != "" {
		var err error
		if schema, err = ParseSchema(opts.Schema); err != nil {
			return nil, err
		}
	}
	if opts.HistorySize <= 0 {
		opts.HistorySize = DefaultHistorySize
	}
	switch opts.OnOverflow {
	case "":
		opts.OnOverflow = OverflowDrop
	case OverflowDrop, OverflowCatchUp:
	default:
		return nil, valueErrorf("on_overflow must be %q or %q, not %q", OverflowDrop, OverflowCatchUp, opts.OnOverflow)
	}
	bus, err := NewBus(opts.Bus)
	if err != nil {
		return nil, err
	}
	e := &Executor{opts: opts, bus: bus, commit: newGroupCommit(bus), reg: newRegistry(), started: time.Now(), schema: schema}
	if mb, ok := bus.(*MemoryBus); ok {
		mb.setHistorySize(opts.HistorySize)
	}
	e.hist, _ = bus.(historyBus)
	lim := opts.Limits
	e.limits.Store(&lim)
	if opts.Paused {
		h, ok := bus.(holdable)
		if !ok {
			// The memory bus dispatches inside Publish: there is nothing
			// to hold the events in.
			_ = bus.Close(ctx)
			return nil, valueErrorf("paused needs a Redis or PostgreSQL bus")
		}
		e.hold = newGate()
		h.holdReader(e.hold.ch)
	}
	if err := bus.Start(ctx, e.deliver); err != nil {
		_ = bus.Close(ctx)
		return nil, err
	}
	return e, nil
}

// Limits returns the limits in force.
func (e *Executor) Limits() Limits { return *e.limits.Load() }

// SetLimits replaces the limits for documents registered and events
// published from now on; zero fields take the defaults.
func (e *Executor) SetLimits(l Limits) {
	l = l.withDefaults()
	e.limitsMu.Lock()
	defer e.limitsMu.Unlock()
	e.limits.Store(&l)
}

// UpdateLimits changes the limits whose field in patch is positive and
// keeps the others, as one step: concurrent updates of different fields
// all take effect. A negative field is refused and nothing changes. It
// returns the limits now in force.
func (e *Executor) UpdateLimits(patch Limits) (Limits, error) {
	for _, f := range []struct {
		name string
		v    int
	}{{"max_query_bytes", patch.MaxQueryBytes}, {"max_fields", patch.MaxFields},
		{"max_depth", patch.MaxDepth}, {"max_payload_bytes", patch.MaxPayloadBytes}} {
		if f.v < 0 {
			return e.Limits(), valueErrorf("%s must be positive, not %d", f.name, f.v)
		}
	}
	e.limitsMu.Lock()
	defer e.limitsMu.Unlock()
	l := *e.limits.Load()
	if patch.MaxQueryBytes > 0 {
		l.MaxQueryBytes = patch.MaxQueryBytes
	}
	if patch.MaxFields > 0 {
		l.MaxFields = patch.MaxFields
	}
	if patch.MaxDepth > 0 {
		l.MaxDepth = patch.MaxDepth
	}
	if patch.MaxPayloadBytes > 0 {
		l.MaxPayloadBytes = patch.MaxPayloadBytes
	}
	e.limits.Store(&l)
	return l, nil
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

func (e *Executor) register(r Registration) (err error) {
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
	if e.closed.Load() {
		return ErrClosed
	}
	if e.has(r.SubscriptionID) {
		return valueErrorf("Subscription %s already exists", r.SubscriptionID)
	}
	pos, err := e.positionsOf(r)
	if err != nil {
		return err
	}
	lim := e.Limits()
	// Compile outside the lock: it is the expensive part.
	plan, err := CompileWithSchema(r.Query, r.OperationName, r.Variables, lim, e.schema)
	if err != nil {
		return err
	}
	s := &subscription{
		id:       r.SubscriptionID,
		userID:   unique.Make(r.UserID).Value(), // shared: dispatch compares it hot in cache
		tenantID: unique.Make(r.TenantID).Value(),
		prefix:   nextPrefix(r.SubscriptionID),
		queue:    newRing(e.opts.QueueSize),
		pos:      pos,
	}
	if pos != nil && pos.catching {
		// A resume: no live event reaches it before its catch-up joins
		// the live stream, and its cursor is the client's position.
		defer func() {
			if err == nil {
				e.m.resumes.Add(1)
				go e.catchUp(s)
			}
		}()
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed.Load() {
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

// positionsOf returns the position state r asks for, nil when it tracks
// no positions.
func (e *Executor) positionsOf(r Registration) (*subPos, error) {
	policy := r.OnOverflow
	switch policy {
	case "":
		policy = e.opts.OnOverflow
	case OverflowDrop, OverflowCatchUp:
	default:
		return nil, valueErrorf("on_overflow must be %q or %q, not %q", OverflowDrop, OverflowCatchUp, policy)
	}
	catchUp := policy == OverflowCatchUp
	if !r.Positions && r.After == "" && !catchUp {
		return nil, nil
	}
	if e.hist == nil {
		return nil, valueErrorf("positions and catch-up need a bus that keeps a history")
	}
	p := &subPos{show: r.Positions || r.After != "", catchUp: catchUp, room: make(chan struct{}, 1)}
	if r.After != "" {
		at, err := e.resumeFrom(r.After)
		if err != nil {
			return nil, err
		}
		p.cursor, p.catching = at, true
	}
	return p, nil
}

// Publish validates ev and puts it on the bus. With the memory bus the
// event has been dispatched to every matching subscription on return,
// and ev.Data is kept in the bus's history: do not modify it afterwards.
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
	// What PostgreSQL's text refuses is refused here, on every bus, as the
	// Python layer does: in a shared transaction it would fail the others.
	if err := checkText(ev.Channel, "channel"); err != nil {
		return ev, err
	}
	if err := checkText(ev.Type, "event_type"); err != nil {
		return ev, err
	}
	if len(ev.IdempotencyKey) > MaxIDBytes {
		return ev, valueErrorf("idempotency_key is %d bytes, over the limit of %d", len(ev.IdempotencyKey), MaxIDBytes)
	}
	if err := checkText(ev.IdempotencyKey, "idempotency_key"); err != nil {
		return ev, err
	}
	if e.closed.Load() {
		return ev, ErrClosed
	}
	lim := e.Limits()
	_, local := e.bus.(*MemoryBus)
	if !local && wellFormed && len(ev.Data) <= lim.MaxPayloadBytes && isJSONObject(ev.Data) && !refusedOnDecoding(ev.Data) {
		// Every executor decodes what its bus delivers, so a distributed
		// bus has no use for a decoding here: well-formed data that opens
		// an object, with nothing a decoding refuses, is all it checks.
		return ev, nil
	}
	d, err := decodeEventFrom(ev, lim, wellFormed)
	if err != nil {
		return ev, err
	}
	if local {
		ev.decoded = d // spare the dispatcher a second decoding; deliver releases it
	} else {
		d.release() // decoded to check only: the receiving side decodes again
	}
	return ev, nil
}

// checkText refuses NUL characters and invalid UTF-8 in a name.
func checkText(s, name string) error {
	if strings.IndexByte(s, 0) >= 0 {
		return valueErrorf("%s must not contain NUL characters", name)
	}
	if !utf8.ValidString(s) {
		return valueErrorf("%s must be valid UTF-8", name)
	}
	return nil
}

// isJSONObject tells whether well-formed JSON is an object.
func isJSONObject(b []byte) bool {
	for _, c := range b {
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		}
		return c == '{'
	}
	return false
}

// deliver is the bus's callback: it dispatches one event.
func (e *Executor) deliver(ev Event) {
	defer func() {
		if recover() != nil {
			e.m.dispatchErrors.Add(1)
		}
	}()
	if !ev.pos.isZero() {
		// Positions: a catch-up joins the live stream between two events.
		e.orderMu.Lock()
		defer e.orderMu.Unlock()
		e.lastPos = ev.pos
	}
	d := ev.decoded
	if d == nil {
		var err error
		if d, err = decodeEvent(ev, e.Limits()); err != nil {
			e.m.dispatchErrors.Add(1)
			return
		}
	}
	e.applyRowFilter(d)
	d.pos = ev.pos
	e.dispatch(d)
	d.release()
}

// applyRowFilter sets d's user from the row filter field of the options:
// decoding reads the default field; another one, or none, is read here.
func (e *Executor) applyRowFilter(d *decodedEvent) {
	if e.opts.NoRowFilter {
		d.userID, d.hasUser = "", false
	} else if e.opts.RowFilterField != DefaultRowFilterField {
		d.userID, d.hasUser = d.idString(e.opts.RowFilterField)
	}
}

// dispatch matches d against every group listening to its channel or
// type, encodes it once per group that has a recipient, and queues it.
// What was counted before a panic is still added.
func (e *Executor) dispatch(d *decodedEvent) {
	seq := e.seq.Add(1)
	var t tally
	defer e.m.add(&t)
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.closed.Load() {
		return
	}
	e.dispatchGroups(d, seq, e.reg.byField[d.Channel], &t)
	if d.Type != d.Channel {
		e.dispatchGroups(d, seq, e.reg.byField[d.Type], &t)
	}
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
		var payload, positioned []byte // encoded on the first recipient
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
				// Encoded in scratch, kept at its exact size: a projection
				// is often a small part of the event, and queues hold it.
				d.enc = g.plan.AppendPayload(d.enc[:0], d)
				payload = bytes.Clone(d.enc)
				t.encodings++
			}
			if s.pos != nil {
				pl := payload
				if s.pos.show {
					if positioned == nil {
						positioned = withPosition(payload, d.pos)
					}
					pl = positioned
				}
				if b.enqueueAt(s, message{seq: seq, payload: pl}, d.pos) {
					t.delivered++
				}
				continue
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
	if b.e.panicInDispatch.Load() && b.e.panicInDispatch.CompareAndSwap(true, false) {
		// Armed by InjectFault: a panic with both the executor's and a
		// connection's lock held, which dispatchGroups' deferred release
		// and dispatch's deferred unlock must undo.
		panic("test panic in dispatch")
	}
	if s.completed {
		return false
	}
	if s.conn.window != nil && s.queue.len() == s.queue.limit {
		s.makeRoom()
	}
	dropped = s.queue.push(m)
	b.held.markQueued(s)
	s.enqueued++
	if dropped {
		s.dropped++
	}
	if s.wake != nil {
		b.wakes = append(b.wakes, s.wake)
		s.wake = nil
	}
	// With frames lent, the queue may look non-empty to a reader that has
	// taken them all: signal too.
	if b.e.ready != nil && (s.queue.len() == 1 || s.conn.window != nil && s.lendingTo() != nil) {
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

// has reports whether subscription id is registered.
func (e *Executor) has(id string) bool {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.reg.subs[id] != nil
}

// lookup returns the live subscription id.
func (e *Executor) lookup(id string) (*subscription, error) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.closed.Load() {
		return nil, ErrClosed
	}
	s := e.reg.subs[id]
	if s == nil {
		return nil, notFound(id)
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
	m, ok := s.pop()
	if !ok {
		return "", nil
	}
	e.m.read.Add(1)
	b := appendFrame(make([]byte, 0, len(s.prefix)+len(m.payload)+1), s, m)
	return unsafe.String(unsafe.SliceData(b), len(b)), nil
}

// NextInto is Next writing the frame into dst, for callers that own the
// result's memory (the CPython entry points): n bytes were written, 0 when
// nothing is pending. When the frame does not fit, nothing is removed and
// need is the size dst must have.
func (e *Executor) NextInto(id string, dst []byte) (n, need int, err error) {
	s, err := e.lookup(id)
	if err != nil {
		return 0, 0, err
	}
	m, size, ok := s.popIfFits(len(dst))
	if !ok {
		return 0, size, nil
	}
	if size == 0 {
		return 0, 0, nil
	}
	e.m.read.Add(1)
	// The payload is never modified once queued: copy it unlocked.
	n = copy(dst, s.prefix)
	n += copy(dst[n:], m.payload)
	n += copy(dst[n:], nextSuffix)
	return n, 0, nil
}

// popIfFits removes s's oldest message when its frame takes at most
// room bytes; size is the frame's size, 0 when the queue is empty.
func (s *subscription) popIfFits(room int) (m message, size int, ok bool) {
	s.conn.mu.Lock()
	defer s.conn.mu.Unlock()
	s.takeBack()
	if s.queue.len() == 0 {
		return message{}, 0, true
	}
	m = s.queue.at(0)
	size = len(s.prefix) + len(m.payload) + len(nextSuffix)
	if size > room {
		return message{}, size, false
	}
	s.queue.pop()
	s.read++
	s.noteRead()
	return m, size, true
}

// NextWait is Next that waits for a message until ctx ends; then it
// returns ctx's error. Closing the executor or completing the
// subscription ends the wait with ErrClosed or ErrSubscriptionNotFound.
func (e *Executor) NextWait(ctx context.Context, id string) (string, error) {
	for {
		frame, err := e.Next(id)
		if err != nil || frame != "" {
			return frame, err
		}
		s, err := e.lookup(id)
		if err != nil {
			return "", err
		}
		wake, state := s.waiter()
		switch state {
		case waitReady:
			continue
		case waitCompleted:
			if e.closed.Load() {
				return "", ErrClosed
			}
			return "", notFound(id)
		}
		select {
		case <-wake:
			s.doneWaiting()
		case <-ctx.Done():
			s.doneWaiting()
			// A message may have come with the deadline.
			if frame, err := e.Next(id); err != nil || frame != "" {
				return frame, err
			}
			return "", ctx.Err()
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
	c, err := e.conn(connID)
	if c == nil {
		return "", 0, err
	}
	buf, n := c.drain(max)
	e.m.read.Add(uint64(n))
	return unsafe.String(unsafe.SliceData(buf), len(buf)), n, nil
}

// conn returns the connection connID, nil when it has no subscriptions.
func (e *Executor) conn(connID string) (*connection, error) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.closed.Load() {
		return nil, ErrClosed
	}
	return e.reg.conns[connID], nil
}

// DrainInto is DrainConnection writing the frames into dst, for callers
// that own the result's memory (the CPython entry points). When they do
// not fit, nothing is removed and need is the size dst must have.
func (e *Executor) DrainInto(connID string, max int, dst []byte) (size, n, need int, err error) {
	c, err := e.conn(connID)
	if c == nil {
		return 0, 0, 0, err
	}
	buf, n, need := c.drainInto(max, dst)
	if need > 0 {
		return 0, 0, need, nil
	}
	e.m.read.Add(uint64(n))
	return len(buf), n, 0, nil
}

// drainInto is drain into dst; see drainLocked.
func (c *connection) drainInto(max int, dst []byte) ([]byte, int, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return drainLocked(c, max, dst)
}

// drainLocked merges the queues of c's subscriptions by event order. The
// frames go into one buffer of the exact size (growing it by append was
// most of a drain's time): a new one when dst is nil, else dst, unless
// they need more than len(dst) bytes, which is then returned as need with
// nothing removed. The merge sorts only when the queues' messages are not
// already in order (one event reaching several of the connection's
// subscriptions, the common case, is in order as gathered).
func drainLocked(c *connection, max int, dst []byte) (buf []byte, n, need int) {
	if len(c.subs) == 1 {
		return drainOne(c.subs[0], max, dst)
	}
	if w := c.window; w != nil {
		w.owner.takeBack()
	}
	// One pass over the subscriptions marked queued, in registration
	// order, collects every queued message.
	items := c.scratch[:0]
	sorted := true
	for wi, word := range c.queuedBits {
		for ; word != 0; word &= word - 1 {
			bit := bits.TrailingZeros64(word)
			s := c.subs[wi*64+bit]
			if s.queue.len() == 0 {
				c.queuedBits[wi] &^= 1 << bit
				continue
			}
			for i := 0; i < s.queue.len(); i++ {
				m := s.queue.at(i)
				if n := len(items); n > 0 && items[n-1].seq > m.seq {
					sorted = false
				}
				items = append(items, drainItem{m.seq, s, len(m.payload)})
			}
		}
	}
	defer func() {
		clear(items)
		if cap(items) <= 1024 { // keep a small scratch for the next drain
			c.scratch = items[:0]
		} else {
			c.scratch = nil
		}
	}()
	if max <= 0 || max > len(items) {
		max = len(items)
	}
	if max == 0 {
		return nil, 0, 0
	}
	if !sorted {
		slices.SortStableFunc(items, func(a, b drainItem) int { return cmp.Compare(a.seq, b.seq) })
	}
	taken := items[:max]
	size := max - 1 // separators
	for _, it := range taken {
		size += len(it.s.prefix) + it.size + len(nextSuffix)
	}
	if buf = drainBuffer(dst, size); buf == nil {
		return nil, 0, size
	}
	for i, it := range taken {
		s := it.s
		m, _ := s.queue.pop()
		s.read++
		s.noteRead()
		buf = appendSep(buf, i)
		buf = appendFrame(buf, s, m)
	}
	return buf, max, 0
}

// drainOne is drainLocked for a connection of one subscription: no merge.
func drainOne(s *subscription, max int, dst []byte) (buf []byte, n, need int) {
	s.takeBack()
	if max <= 0 || max > s.queue.len() {
		max = s.queue.len()
	}
	if max == 0 {
		return nil, 0, 0
	}
	size := max - 1 // separators
	for i := 0; i < max; i++ {
		size += len(s.prefix) + len(s.queue.at(i).payload) + len(nextSuffix)
	}
	if buf = drainBuffer(dst, size); buf == nil {
		return nil, 0, size
	}
	for i := 0; i < max; i++ {
		m, _ := s.queue.pop()
		buf = appendSep(buf, i)
		buf = appendFrame(buf, s, m)
	}
	s.read += uint64(max)
	s.noteRead()
	return buf, max, 0
}

// drainItem is one queued message in a drain's merge.
type drainItem struct {
	seq  uint64
	s    *subscription
	size int // of the payload
}

// drainBuffer returns an empty buffer with room for size bytes: dst when
// it is big enough, a new one when dst is nil, else nil.
func drainBuffer(dst []byte, size int) []byte {
	if dst == nil {
		return make([]byte, 0, size)
	}
	if len(dst) < size {
		return nil
	}
	return dst[:0:len(dst)]
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
	s := e.unregister(id)
	if s == nil {
		return false
	}
	e.finish(s)
	return true
}

// unregister removes subscription id from the registry and returns it.
func (e *Executor) unregister(id string) *subscription {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.reg.subs[id]
	if s != nil {
		e.reg.remove(s)
	}
	return s
}

// CompleteConnection removes every subscription of a connection and
// returns how many there were.
func (e *Executor) CompleteConnection(connID string) int {
	subs := e.unregisterConn(connID)
	for _, s := range subs {
		e.finish(s)
	}
	return len(subs)
}

// unregisterConn removes the subscriptions of connection connID from
// the registry and returns them.
func (e *Executor) unregisterConn(connID string) []*subscription {
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.reg.conns[connID]
	if c == nil {
		return nil
	}
	subs := c.snapshot()
	for _, s := range subs {
		e.reg.remove(s)
	}
	return subs
}

// finish drops what s still holds and wakes its waiters.
func (e *Executor) finish(s *subscription) {
	discarded, wake := s.complete()
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
	// Waiting is the number of readers blocked in NextWait on it now.
	Waiting int `json:"waiting"`
}

// Stats returns the counters of subscription id.
func (e *Executor) Stats(id string) (SubscriptionStats, error) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	s := e.reg.subs[id]
	if s == nil {
		return SubscriptionStats{}, notFound(id)
	}
	return s.stats(), nil
}

// Close completes every subscription, which wakes every NextWait with
// ErrClosed, closes the readiness pipe and stops the bus; ctx bounds the
// wait for the bus (see Bus.Close). Later calls fail with ErrClosed;
// closing twice is harmless.
func (e *Executor) Close(ctx context.Context) error {
	// The bus reader stops first: what it delivers before is dispatched,
	// what it read after is left unacknowledged, for the next run.
	if s, ok := e.bus.(deliveryStopper); ok && !e.closed.Load() {
		s.stopDelivery()
	}
	subs := e.markClosed()
	if subs == nil {
		return nil
	}
	for _, s := range subs {
		e.finish(s)
	}
	if e.ready != nil {
		e.ready.close()
	}
	return e.bus.Close(ctx)
}

// markClosed marks e closed and empties the registry. It returns the
// subscriptions that were registered, nil when e was already closed.
func (e *Executor) markClosed() []*subscription {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed.Load() {
		return nil
	}
	e.closed.Store(true)
	subs := make([]*subscription, 0, len(e.reg.subs))
	for _, s := range e.reg.subs {
		subs = append(subs, s)
	}
	e.reg = newRegistry()
	return subs
}

// Fault is a failure InjectFault can provoke.
type Fault int

const (
	// FaultDispatchPanic makes the next dispatch panic while it holds the
	// executor's and a connection's locks.
	FaultDispatchPanic Fault = iota + 1
	// FaultBusReaderPanic makes the Redis or PostgreSQL bus reader
	// goroutine panic before it dispatches its next event.
	FaultBusReaderPanic
)

// InjectFault arms f once, to test that the executor survives it. It is
// for tests (the Python binding exposes it only on executors made with
// debug hooks).
func (e *Executor) InjectFault(f Fault) error {
	switch f {
	case FaultDispatchPanic:
		e.panicInDispatch.Store(true)
		return nil
	case FaultBusReaderPanic:
		if r, ok := e.bus.(interface{ armReaderPanic() }); ok {
			r.armReaderPanic()
			return nil
		}
		return valueErrorf("the %T bus has no reader goroutine", e.bus)
	default:
		return valueErrorf("unknown fault %d", f)
	}
}
