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
	prefix   string // start of every "next" frame of this subscription

	// Guarded by conn.mu.
	queue     ring
	enqueued  uint64
	dropped   uint64
	read      uint64
	completed bool
	// wake, when not nil, is signalled when the queue stops being empty.
	wake chan struct{}
}

// connection groups the subscriptions of one client connection. Its mutex
// guards their queues, so a whole connection drains under one lock.
type connection struct {
	id   string
	mu   sync.Mutex
	subs []*subscription // in registration order
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
	c.mu.Lock()
	c.subs = append(c.subs, s)
	c.mu.Unlock()
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
	c := s.conn
	c.mu.Lock()
	c.subs = without(c.subs, s)
	empty := len(c.subs) == 0
	c.mu.Unlock()
	if empty {
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
