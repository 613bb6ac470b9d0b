package subscriptions

import "sync/atomic"

// counters are the executor's running totals.
type counters struct {
	total, active, completed, errored      atomic.Uint64
	published, delivered, dropped          atomic.Uint64
	filtered, encodings, read, discarded   atomic.Uint64
	passed, tenantViolations, rowViolation atomic.Uint64
	dispatchErrors                         atomic.Uint64
	// Positions.
	resumes, replayed, catchUps        atomic.Uint64
	positionsExpired, positionsInvalid atomic.Uint64
}

func (c *counters) add(t *tally) {
	if t.delivered != 0 {
		c.delivered.Add(t.delivered)
	}
	if t.dropped != 0 {
		c.dropped.Add(t.dropped)
	}
	if t.filtered != 0 {
		c.filtered.Add(t.filtered)
	}
	if t.encodings != 0 {
		c.encodings.Add(t.encodings)
	}
	if t.passed != 0 {
		c.passed.Add(t.passed)
	}
	if t.tenantViolations != 0 {
		c.tenantViolations.Add(t.tenantViolations)
	}
	if t.rowViolations != 0 {
		c.rowViolation.Add(t.rowViolations)
	}
}

// Metrics is a snapshot of an executor's counters. The JSON names are the
// keys of the Python get_metrics() dict.
type Metrics struct {
	// Subscriptions: Total = Active + Completed + Errored, where Errored
	// counts registrations that were refused.
	Total     uint64 `json:"total"`
	Active    uint64 `json:"active"`
	Completed uint64 `json:"completed"`
	Errored   uint64 `json:"errored"`

	// Events and messages. Every delivered message is eventually read,
	// dropped (queue full), discarded (pending at completion) or still
	// queued: Delivered = Read + Dropped + Discarded + Queued.
	EventsPublished uint64 `json:"events_published"`
	EventsDelivered uint64 `json:"events_delivered"`
	EventsDropped   uint64 `json:"events_dropped"`
	// EventsFiltered counts (subscription, event) pairs that a filter of
	// the subscription's root field rejected.
	EventsFiltered    uint64 `json:"events_filtered"`
	MessagesRead      uint64 `json:"messages_read"`
	MessagesDiscarded uint64 `json:"messages_discarded"`
	Queued            uint64 `json:"queued"`
	// Encodings counts payload encodings: one per (group, event) pair
	// with at least one recipient, however large the group.
	Encodings uint64 `json:"encodings"`
	// DispatchErrors counts events whose dispatch failed: received from
	// the bus but undecodable, or a panic recovered in dispatch or in the
	// bus's reader goroutine (the executor keeps working after either).
	DispatchErrors uint64 `json:"dispatch_errors"`

	// Security checks, one per (subscription, event) pair that passed the
	// filters.
	ValidationsTotal          uint64  `json:"validations_total"`
	ValidationsPassed         uint64  `json:"validations_passed"`
	ValidationsRejected       uint64  `json:"validations_rejected"`
	ViolationsRowFilter       uint64  `json:"violations_row_filter"`
	ViolationsTenantIsolation uint64  `json:"violations_tenant_isolation"`
	ViolationsRBAC            uint64  `json:"violations_rbac"`
	ViolationsFederation      uint64  `json:"violations_federation"`
	RejectionRate             float64 `json:"rejection_rate"`

	// Registry sizes.
	Groups      int `json:"groups"`
	Connections int `json:"connections"`

	// Bus figures.
	BusPublished  uint64  `json:"bus_published"`
	BusReceived   uint64  `json:"bus_received"`
	BusReconnects uint64  `json:"bus_reconnects"`
	BusLagMillis  float64 `json:"bus_lag_ms"`

	// Positions: registrations that resumed after a position, messages
	// queued from the bus's history (resumes and catch-ups), queues that
	// overflowed into a catch-up, and positions refused: expired (their
	// events left the history, at registration or during a catch-up) or
	// invalid (not of this bus or epoch).
	Resumes          uint64 `json:"resumes"`
	EventsReplayed   uint64 `json:"events_replayed"`
	CatchUps         uint64 `json:"catch_ups"`
	PositionsExpired uint64 `json:"positions_expired"`
	PositionsInvalid uint64 `json:"positions_invalid"`
}

// Metrics returns a snapshot of the counters.
func (e *Executor) Metrics() Metrics {
	// First: it counts as read the frames a read-ahead window's reader took.
	groups, conns, queued := e.registrySizes()
	c := &e.m
	m := Metrics{
		Total:                     c.total.Load(),
		Active:                    c.active.Load(),
		Completed:                 c.completed.Load(),
		Errored:                   c.errored.Load(),
		EventsPublished:           c.published.Load(),
		EventsDelivered:           c.delivered.Load(),
		EventsDropped:             c.dropped.Load(),
		EventsFiltered:            c.filtered.Load(),
		MessagesRead:              c.read.Load(),
		MessagesDiscarded:         c.discarded.Load(),
		Encodings:                 c.encodings.Load(),
		DispatchErrors:            c.dispatchErrors.Load(),
		ValidationsPassed:         c.passed.Load(),
		ViolationsRowFilter:       c.rowViolation.Load(),
		ViolationsTenantIsolation: c.tenantViolations.Load(),
		Resumes:                   c.resumes.Load(),
		EventsReplayed:            c.replayed.Load(),
		CatchUps:                  c.catchUps.Load(),
		PositionsExpired:          c.positionsExpired.Load(),
		PositionsInvalid:          c.positionsInvalid.Load(),
	}
	m.ValidationsRejected = m.ViolationsRowFilter + m.ViolationsTenantIsolation + m.ViolationsRBAC + m.ViolationsFederation
	m.ValidationsTotal = m.ValidationsPassed + m.ValidationsRejected
	if m.ValidationsTotal > 0 {
		m.RejectionRate = 100 * float64(m.ValidationsRejected) / float64(m.ValidationsTotal)
	}
	m.Groups, m.Connections, m.Queued = groups, conns, queued
	bs := e.bus.Stats()
	m.BusPublished, m.BusReceived, m.BusReconnects, m.BusLagMillis = bs.Published, bs.Received, bs.Reconnects, bs.LagMillis
	// A panic in the bus reader outside deliver is a failed dispatch too.
	m.DispatchErrors += bs.Panics
	return m
}

// registrySizes returns the numbers of groups, connections and queued messages.
func (e *Executor) registrySizes() (groups, conns int, queued uint64) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	for _, c := range e.reg.conns {
		queued += uint64(c.queued())
	}
	return len(e.reg.groups), len(e.reg.conns), queued
}
