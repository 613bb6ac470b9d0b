package subscriptions

import "sync"

// subscription is one registered operation.
type subscription struct {
	id       string
	conn     *connection
	group    *planGroup
	groupIdx int // position in group.members, for O(1) removal
	userID   string
	tenantID string
	// pos is the position state of a subscription that tracks positions
	// (shows them, resumed, or catches up); nil for the others. Beside the
	// fields dispatch reads before it, in the same cache line.
	pos    *subPos
	prefix string // start of every "next" frame of this subscription

	// Guarded by conn.mu.
	queue     ring
	enqueued  uint64
	dropped   uint64
	read      uint64
	completed bool
	waiters   uint16 // readers blocked in NextWait (fits the padding after completed)
	connIdx   int32  // position in conn.subs (fits the padding after completed)
	// wake, when not nil, is signalled when the queue stops being empty.
	wake chan struct{}
}

// connection groups the subscriptions of one client connection. Its mutex
// guards their queues, so a whole connection drains under one lock.
type connection struct {
	id string
	mu sync.Mutex
	// window, when not nil, holds copies of the first queued messages of
	// its owner, one of subs (see Window).
	window *Window
	subs   []*subscription // in registration order
	// queuedBits has bit i set when subs[i] may have queued messages: set
	// by each enqueue, cleared by a drain that empties the queue or finds
	// it empty. A drain visits those subscriptions only (in W2, 11 of a
	// connection's 100).
	queuedBits []uint64
	// scratch is reused by drains of this connection, under mu.
	scratch []drainItem
}

// planGroup is the set of subscriptions that share one compiled plan (same
// document, operation and variables): an event is matched and encoded
// once per group.
type planGroup struct {
	plan    *Plan
	members []*subscription
}

// registry indexes subscriptions. Guarded by Executor.mu.
type registry struct {
	subs    map[string]*subscription
	conns   map[string]*connection
	groups  map[string]*planGroup   // by Plan.Key
	byField map[string][]*planGroup // by Plan.RootField
}

func newRegistry() registry {
	return registry{
		subs:    map[string]*subscription{},
		conns:   map[string]*connection{},
		groups:  map[string]*planGroup{},
		byField: map[string][]*planGroup{},
	}
}

// add links s into its connection and its plan's group.
func (r *registry) add(s *subscription, connID string, plan *Plan) {
	c := r.conns[connID]
	if c == nil {
		c = &connection{id: connID}
		r.conns[connID] = c
	}
	g := r.groups[plan.Key]
	if g == nil {
		g = &planGroup{plan: plan}
		r.groups[plan.Key] = g
		r.byField[plan.RootField] = append(r.byField[plan.RootField], g)
	}
	s.conn, s.group = c, g
	c.append(s)
	s.groupIdx = len(g.members)
	g.members = append(g.members, s)
	r.subs[s.id] = s
}

// remove unlinks s everywhere, dropping empty groups and connections.
func (r *registry) remove(s *subscription) {
	delete(r.subs, s.id)
	g := s.group
	// Swap-remove: the order inside a group does not matter, and dispatch
	// never runs while the registry changes (Executor.mu).
	last := g.members[len(g.members)-1]
	g.members[s.groupIdx] = last
	last.groupIdx = s.groupIdx
	g.members[len(g.members)-1] = nil
	g.members = g.members[:len(g.members)-1]
	if len(g.members) == 0 {
		delete(r.groups, g.plan.Key)
		field := g.plan.RootField
		if gs := withoutGroup(r.byField[field], g); len(gs) > 0 {
			r.byField[field] = gs
		} else {
			delete(r.byField, field)
		}
	}
	if c := s.conn; c.drop(s) {
		delete(r.conns, c.id)
	}
}

// without returns list minus s, keeping order and not aliasing list, so a
// slice handed out earlier stays valid.
func without(list []*subscription, s *subscription) []*subscription {
	out := make([]*subscription, 0, len(list))
	for _, x := range list {
		if x != s {
			out = append(out, x)
		}
	}
	return out
}

func withoutGroup(list []*planGroup, g *planGroup) []*planGroup {
	out := make([]*planGroup, 0, len(list))
	for _, x := range list {
		if x != g {
			out = append(out, x)
		}
	}
	return out
}

// The methods below take the connection's lock and release it by defer,
// so that a panic under it (recovered higher up) cannot leave it held.

func (c *connection) append(s *subscription) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s.connIdx = int32(len(c.subs))
	c.subs = append(c.subs, s)
	if len(c.queuedBits)*64 < len(c.subs) {
		c.queuedBits = append(c.queuedBits, 0)
	}
}

// drop removes s from c and reports whether c has no subscriptions left.
func (c *connection) drop(s *subscription) (empty bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.subs = without(c.subs, s)
	// Positions moved: number them again and mark the queued ones.
	clear(c.queuedBits)
	c.queuedBits = c.queuedBits[:(len(c.subs)+63)/64]
	for i, x := range c.subs {
		x.connIdx = int32(i)
		if x.queue.len() > 0 {
			c.markQueued(x)
		}
	}
	return len(c.subs) == 0
}

// markQueued records that s, one of c's subscriptions, has queued
// messages. Under c.mu.
func (c *connection) markQueued(s *subscription) {
	c.queuedBits[s.connIdx>>6] |= 1 << (s.connIdx & 63)
}

// snapshot returns c's subscriptions in registration order.
func (c *connection) snapshot() []*subscription {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*subscription(nil), c.subs...)
}

// queued returns how many messages c's subscriptions hold.
func (c *connection) queued() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, s := range c.subs {
		s.syncWindow()
		n += s.queue.len()
	}
	return n
}

// drain takes up to max (all when max <= 0) of c's messages; see
// Executor.DrainConnection.
func (c *connection) drain(max int) ([]byte, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	buf, n, _ := drainLocked(c, max, nil)
	return buf, n
}

// pop removes s's oldest message.
func (s *subscription) pop() (message, bool) {
	s.conn.mu.Lock()
	defer s.conn.mu.Unlock()
	s.takeBack()
	m, ok := s.queue.pop()
	if ok {
		s.read++
		s.noteRead()
	}
	return m, ok
}

// waitState is what waiter found.
type waitState int

const (
	waitEmpty     waitState = iota // nothing queued: wait on the channel
	waitReady                      // a message is queued
	waitCompleted                  // s was completed
)

// waiter returns the channel closed when s's queue stops being empty or
// s is completed, unless that already happened.
func (s *subscription) waiter() (chan struct{}, waitState) {
	s.conn.mu.Lock()
	defer s.conn.mu.Unlock()
	s.takeBack()
	switch {
	case s.queue.len() > 0:
		return nil, waitReady
	case s.completed:
		return nil, waitCompleted
	}
	if s.wake == nil {
		s.wake = make(chan struct{})
	}
	s.waiters++ // until doneWaiting
	return s.wake, waitEmpty
}

// doneWaiting ends a wait that waiter started.
func (s *subscription) doneWaiting() {
	s.conn.mu.Lock()
	s.waiters--
	s.conn.mu.Unlock()
}

// complete marks s completed, drops its queue and returns how many
// messages were dropped and the channel of its waiters, if any.
func (s *subscription) complete() (discarded int, wake chan struct{}) {
	s.conn.mu.Lock()
	defer s.conn.mu.Unlock()
	s.takeBack()
	s.completed = true
	if s.pos != nil {
		select { // end its catch-up
		case s.pos.room <- struct{}{}:
		default:
		}
	}
	discarded = s.queue.len()
	s.queue = ring{}
	wake, s.wake = s.wake, nil
	return discarded, wake
}

func (s *subscription) stats() SubscriptionStats {
	s.conn.mu.Lock()
	defer s.conn.mu.Unlock()
	s.syncWindow()
	return SubscriptionStats{Queued: s.queue.len(), Enqueued: s.enqueued, Dropped: s.dropped, Read: s.read, GroupSize: len(s.group.members),
		Waiting: int(s.waiters)}
}
