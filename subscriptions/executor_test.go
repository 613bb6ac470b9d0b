package subscriptions

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
)

// The executor's contract, through its public API and the exact bytes of
// the frames it hands out.

func newTestExecutor(t *testing.T, opts Options) *Executor {
	t.Helper()
	e, err := NewExecutor(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close(context.Background()) })
	return e
}

// sub is a registration with the test's defaults.
type sub struct {
	conn, id, query, user, tenant string
}

func register(t *testing.T, e *Executor, subs ...sub) {
	t.Helper()
	for _, s := range subs {
		if s.conn == "" {
			s.conn = "c"
		}
		if s.query == "" {
			s.query = `subscription { users { id } }`
		}
		err := e.Register(Registration{ConnectionID: s.conn, SubscriptionID: s.id, Query: s.query, UserID: s.user, TenantID: s.tenant})
		if err != nil {
			t.Fatalf("register %s: %v", s.id, err)
		}
	}
}

func publish(t *testing.T, e *Executor, channel string, data ...string) {
	t.Helper()
	for _, d := range data {
		if err := e.Publish(context.Background(), Event{Type: "changed", Channel: channel, Data: []byte(d)}); err != nil {
			t.Fatalf("publish %s: %v", d, err)
		}
	}
}

// frame is the "next" frame of subscription id carrying data.
func frame(id, data string) string {
	return `{"type":"next","id":"` + id + `","payload":{"data":` + data + `}}`
}

// nextAll pops every pending frame of id.
func nextAll(t *testing.T, e *Executor, id string) []string {
	t.Helper()
	var out []string
	for {
		f, err := e.Next(id)
		if err != nil {
			t.Fatalf("Next(%s): %v", id, err)
		}
		if f == "" {
			return out
		}
		out = append(out, f)
	}
}

func wantFrames(t *testing.T, got []string, want ...string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("frames:\n got %q\nwant %q", got, want)
	}
}

func TestExecutorDeliversProjectedFrame(t *testing.T) {
	e := newTestExecutor(t, Options{})
	register(t, e, sub{id: "s1", query: `subscription { users { id name } }`, user: "u1", tenant: "t1"})
	publish(t, e, "users", `{"id":1,"name":"Ann","email":"a@x","tenant_id":"t1"}`)
	wantFrames(t, nextAll(t, e, "s1"), frame("s1", `{"users":{"id":1,"name":"Ann"}}`))
	// Matched on the event type as well as the channel.
	if err := e.Publish(context.Background(), Event{Type: "users", Channel: "other", Data: []byte(`{"id":2}`)}); err != nil {
		t.Fatal(err)
	}
	wantFrames(t, nextAll(t, e, "s1"), frame("s1", `{"users":{"id":2,"name":null}}`))
}

func TestExecutorTenantIsolation(t *testing.T) {
	e := newTestExecutor(t, Options{})
	register(t, e,
		sub{id: "a", user: "u1", tenant: "t1"},
		sub{id: "b", conn: "c2", user: "u1", tenant: "t2"},
		sub{id: "n", conn: "c3", user: "u1", tenant: "7"})
	publish(t, e, "users",
		`{"id":1,"tenant_id":"t1"}`, // a only
		`{"id":2,"tenant_id":"t2"}`, // b only
		`{"id":3}`,                  // no tenant: everyone
		`{"id":4,"tenant_id":7}`,    // a number names tenant "7"
		`{"id":5,"tenant_id":"T1"}`, // case matters: nobody
	)
	wantFrames(t, nextAll(t, e, "a"), frame("a", `{"users":{"id":1}}`), frame("a", `{"users":{"id":3}}`))
	wantFrames(t, nextAll(t, e, "b"), frame("b", `{"users":{"id":2}}`), frame("b", `{"users":{"id":3}}`))
	wantFrames(t, nextAll(t, e, "n"), frame("n", `{"users":{"id":3}}`), frame("n", `{"users":{"id":4}}`))
	m := e.Metrics()
	if m.ViolationsTenantIsolation != 9 || m.ValidationsPassed != 6 || m.ViolationsRowFilter != 0 ||
		m.ValidationsRejected != 9 || m.ValidationsTotal != 15 || m.RejectionRate != 60 {
		t.Fatalf("metrics %+v", m)
	}
}

// Ids compare as strings: a boolean tenant_id names the tenant "true" or
// "false"; an object or a list names no tenant, and reaches no one. (A
// tenant_id treated as absent would reach every tenant.)
func TestExecutorTenantIdOfOtherJSONTypes(t *testing.T) {
	e := newTestExecutor(t, Options{})
	register(t, e,
		sub{id: "a", user: "u1", tenant: "t1"},
		sub{id: "yes", conn: "c2", user: "u1", tenant: "true"},
		sub{id: "no", conn: "c3", user: "u1", tenant: "false"})
	publish(t, e, "users",
		`{"id":1,"tenant_id":true}`,        // yes only
		`{"id":2,"tenant_id":false}`,       // no only
		`{"id":3,"tenant_id":["t1"]}`,      // nobody
		`{"id":4,"tenant_id":{"id":"t1"}}`, // nobody
	)
	wantFrames(t, nextAll(t, e, "a"))
	wantFrames(t, nextAll(t, e, "yes"), frame("yes", `{"users":{"id":1}}`))
	wantFrames(t, nextAll(t, e, "no"), frame("no", `{"users":{"id":2}}`))
	if m := e.Metrics(); m.ViolationsTenantIsolation != 10 || m.ValidationsPassed != 2 {
		t.Fatalf("metrics %+v", m)
	}
}

// An empty tenant is a tenant like any other: its subscriber sees events
// whose tenant_id is "" or absent, never another tenant's; an event with an
// empty tenant_id reaches no one else. (A check that skips an empty
// subscriber tenant, or treats an empty event tenant as absent, leaks.)
func TestExecutorEmptyTenantIsIsolated(t *testing.T) {
	e := newTestExecutor(t, Options{})
	register(t, e,
		sub{id: "e", user: "u1", tenant: ""},
		sub{id: "a", conn: "c2", user: "u1", tenant: "t1"})
	publish(t, e, "users",
		`{"id":1,"tenant_id":"t1"}`, // a only
		`{"id":2,"tenant_id":""}`,   // e only
		`{"id":3}`,                  // absent: everyone
		`{"id":4,"tenant_id":null}`, // null: nobody
		`{"id":5,"tenant_id":" "}`,  // not empty: nobody
	)
	wantFrames(t, nextAll(t, e, "e"), frame("e", `{"users":{"id":2}}`), frame("e", `{"users":{"id":3}}`))
	wantFrames(t, nextAll(t, e, "a"), frame("a", `{"users":{"id":1}}`), frame("a", `{"users":{"id":3}}`))
	if m := e.Metrics(); m.ViolationsTenantIsolation != 6 || m.ValidationsPassed != 4 {
		t.Fatalf("metrics %+v", m)
	}
}

func TestExecutorUserIsolation(t *testing.T) {
	e := newTestExecutor(t, Options{})
	register(t, e,
		sub{id: "a", user: "u1", tenant: "t1"},
		sub{id: "b", user: "u2", tenant: "t1"})
	publish(t, e, "users",
		`{"id":1,"user_id":"u1","tenant_id":"t1"}`,
		`{"id":2,"user_id":"u2"}`,
		`{"id":3,"tenant_id":"t1"}`,
		`{"id":4,"user_id":"u1","tenant_id":"t2"}`, // right user, wrong tenant
	)
	wantFrames(t, nextAll(t, e, "a"), frame("a", `{"users":{"id":1}}`), frame("a", `{"users":{"id":3}}`))
	wantFrames(t, nextAll(t, e, "b"), frame("b", `{"users":{"id":2}}`), frame("b", `{"users":{"id":3}}`))
	m := e.Metrics()
	if m.ViolationsRowFilter != 2 || m.ViolationsTenantIsolation != 2 || m.ValidationsPassed != 4 || m.RejectionRate != 50 {
		t.Fatalf("metrics %+v", m)
	}
}

func TestExecutorRowFilterField(t *testing.T) {
	events := []string{
		`{"id":1,"user_id":"u2","author_id":"u1"}`,
		`{"id":2,"user_id":"u1","author_id":"u2"}`,
		`{"id":3,"author_id":1}`,
	}
	for _, tc := range []struct {
		name       string
		opts       Options
		a, b       []string
		violations uint64
	}{
		{"default user_id", Options{}, []string{`{"id":2}`, `{"id":3}`}, []string{`{"id":1}`, `{"id":3}`}, 2},
		{"author_id", Options{RowFilterField: "author_id"}, []string{`{"id":1}`}, []string{`{"id":2}`}, 4},
		{"off", Options{NoRowFilter: true, RowFilterField: "author_id"},
			[]string{`{"id":1}`, `{"id":2}`, `{"id":3}`}, []string{`{"id":1}`, `{"id":2}`, `{"id":3}`}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestExecutor(t, tc.opts)
			register(t, e, sub{id: "a", user: "u1", tenant: "t"}, sub{id: "b", user: "u2", tenant: "t"})
			publish(t, e, "users", events...)
			for id, want := range map[string][]string{"a": tc.a, "b": tc.b} {
				var frames []string
				for _, data := range want {
					frames = append(frames, frame(id, `{"users":`+data+`}`))
				}
				wantFrames(t, nextAll(t, e, id), frames...)
			}
			if m := e.Metrics(); m.ViolationsRowFilter != tc.violations {
				t.Fatalf("row filter violations %d, want %d", m.ViolationsRowFilter, tc.violations)
			}
		})
	}
	if _, err := NewExecutor(context.Background(), Options{RowFilterField: strings.Repeat("f", 1025)}); KindOf(err) != KindValue {
		t.Fatalf("a 1025-byte field: %v", err)
	}
	newTestExecutor(t, Options{RowFilterField: strings.Repeat("f", 1024)})
}

// The schema option shapes payloads and checks queries against the schema;
// a schema that does not parse is refused, naming what is wrong.
func TestExecutorSchemaOption(t *testing.T) {
	e := newTestExecutor(t, Options{Schema: ordersSDL})
	register(t, e, sub{id: "s", query: `subscription { orders { id } }`})
	publish(t, e, "orders", `{"id":7}`)
	wantFrames(t, nextAll(t, e, "s"), frame("s", `{"orders":{"id":"7"}}`))
	err := e.Register(Registration{ConnectionID: "c", SubscriptionID: "t", Query: `subscription { orders { nmae } }`})
	if err == nil || !strings.Contains(err.Error(), `Cannot query field "nmae" on type "Order".`) {
		t.Fatalf("a field the schema lacks: %v", err)
	}
	_, err = NewExecutor(context.Background(), Options{Schema: "type Subscription { a: Nope }"})
	if KindOf(err) != KindValue || !strings.Contains(err.Error(), "Undefined type Nope") {
		t.Fatalf("a schema with an undefined type: %v", err)
	}
}

// The memory bus dispatches inside Publish and cannot hold events back:
// paused is refused with it.
func TestExecutorPausedNeedsADistributedBus(t *testing.T) {
	_, err := NewExecutor(context.Background(), Options{Paused: true})
	if KindOf(err) != KindValue || !strings.Contains(err.Error(), "paused needs a Redis or PostgreSQL bus") {
		t.Fatalf("paused with the memory bus: %v", err)
	}
}

func TestExecutorFullQueueDropsOldest(t *testing.T) {
	e := newTestExecutor(t, Options{QueueSize: 3})
	register(t, e, sub{id: "s"})
	for i := 1; i <= 5; i++ {
		publish(t, e, "users", fmt.Sprintf(`{"id":%d}`, i))
	}
	st, err := e.Stats("s")
	if err != nil {
		t.Fatal(err)
	}
	if st != (SubscriptionStats{Queued: 3, Enqueued: 5, Dropped: 2, Read: 0, GroupSize: 1}) {
		t.Fatalf("stats %+v", st)
	}
	wantFrames(t, nextAll(t, e, "s"),
		frame("s", `{"users":{"id":3}}`), frame("s", `{"users":{"id":4}}`), frame("s", `{"users":{"id":5}}`))
	m := e.Metrics()
	if m.EventsDropped != 2 || m.EventsDelivered != 5 || m.MessagesRead != 3 || m.Queued != 0 {
		t.Fatalf("metrics %+v", m)
	}
	// The ring keeps working after wrapping: still the newest three.
	for i := 6; i <= 10; i++ {
		publish(t, e, "users", fmt.Sprintf(`{"id":%d}`, i))
	}
	wantFrames(t, nextAll(t, e, "s"),
		frame("s", `{"users":{"id":8}}`), frame("s", `{"users":{"id":9}}`), frame("s", `{"users":{"id":10}}`))
	if st, _ := e.Stats("s"); st != (SubscriptionStats{Queued: 0, Enqueued: 10, Dropped: 4, Read: 6, GroupSize: 1}) {
		t.Fatalf("stats %+v", st)
	}
}

func TestExecutorDefaultQueueSize(t *testing.T) {
	e := newTestExecutor(t, Options{})
	register(t, e, sub{id: "s"})
	for i := 0; i < DefaultQueueSize+1; i++ {
		publish(t, e, "users", fmt.Sprintf(`{"id":%d}`, i))
	}
	st, _ := e.Stats("s")
	if st.Queued != DefaultQueueSize || st.Dropped != 1 {
		t.Fatalf("stats %+v", st)
	}
	if f, _ := e.Next("s"); f != frame("s", `{"users":{"id":1}}`) {
		t.Fatalf("oldest kept %s", f)
	}
	frames, n, _ := e.DrainConnection("c", 0)
	last := frames[strings.LastIndexByte(frames, '\n')+1:]
	if n != DefaultQueueSize-1 || last != frame("s", `{"users":{"id":1000}}`) {
		t.Fatalf("drained %d, last %s", n, last)
	}
}

func TestExecutorMetricsStartAtZero(t *testing.T) {
	e := newTestExecutor(t, Options{})
	register(t, e, sub{id: "s"})
	e.Complete("s")
	// No validation yet: the rejection rate is 0, not 0/0.
	if m := e.Metrics(); m != (Metrics{Total: 1, Completed: 1}) {
		t.Fatalf("metrics %+v", m)
	}
}

// Every counter of Metrics, each with its own expected value.
func TestExecutorMetricsCounters(t *testing.T) {
	e := newTestExecutor(t, Options{QueueSize: 2})
	register(t, e,
		sub{id: "a", conn: "c1", query: `subscription { users(where: {n: {gt: 1}}) { id } }`, user: "u", tenant: "t"},
		sub{id: "b", conn: "c1", query: `subscription { users(where: {n: {gt: 1}}) { id } }`, user: "u", tenant: "t"},
		sub{id: "c", conn: "c2", query: `subscription { users { n } }`, user: "v", tenant: "t"},
	)
	if err := e.Register(Registration{ConnectionID: "c", SubscriptionID: "bad", Query: `query { x }`}); err == nil {
		t.Fatal("a query was registered")
	}
	publish(t, e, "users",
		`{"id":1,"n":1}`,                 // a, b filtered; c gets it
		`{"id":2,"n":2}`,                 // a, b, c
		`{"id":3,"n":3,"user_id":"u"}`,   // a, b; c rejected (user)
		`{"id":4,"n":4,"tenant_id":"x"}`, // all rejected (tenant)
	)
	if _, err := e.Next("a"); err != nil { // reads id 2
		t.Fatal(err)
	}
	if !e.Complete("b") { // discards id 2 and 3
		t.Fatal("b was not registered")
	}
	m := e.Metrics()
	want := Metrics{
		Total: 4, Active: 2, Completed: 1, Errored: 1,
		EventsPublished: 4, EventsDelivered: 6, EventsDropped: 0, EventsFiltered: 2,
		MessagesRead: 1, MessagesDiscarded: 2, Queued: 3,
		// (group, event) pairs with a recipient: ab×{2,3} + c×{1,2}
		Encodings: 4, DispatchErrors: 0,
		ValidationsTotal: 10, ValidationsPassed: 6, ValidationsRejected: 4,
		ViolationsRowFilter: 1, ViolationsTenantIsolation: 3, RejectionRate: 40,
		Groups: 2, Connections: 2,
		BusPublished: 4, BusReceived: 4,
	}
	if m != want {
		t.Fatalf("metrics\n got %+v\nwant %+v", m, want)
	}
	// Dropping is counted once per lost message.
	publish(t, e, "users", `{"id":5,"n":5}`, `{"id":6,"n":6}`)
	m = e.Metrics()
	if m.EventsDropped != 3 || m.EventsDelivered != 10 || m.Queued != 4 {
		t.Fatalf("after overflow: dropped %d delivered %d queued %d", m.EventsDropped, m.EventsDelivered, m.Queued)
	}
	if n := e.CompleteConnection("c2"); n != 1 {
		t.Fatalf("CompleteConnection = %d", n)
	}
	m = e.Metrics()
	if m.Active != 1 || m.Completed != 2 || m.MessagesDiscarded != 4 || m.Connections != 1 || m.Groups != 1 {
		t.Fatalf("after completing c2: %+v", m)
	}
	// Active + Completed + Errored = Total; Delivered = Read + Dropped + Discarded + Queued.
	if m.Active+m.Completed+m.Errored != m.Total || m.EventsDelivered != m.MessagesRead+m.EventsDropped+m.MessagesDiscarded+m.Queued {
		t.Fatalf("accounting %+v", m)
	}
}

func TestExecutorEventsFilteredCountsPairs(t *testing.T) {
	e := newTestExecutor(t, Options{})
	q := `subscription { users(id: 1) { id } }`
	register(t, e, sub{id: "a", query: q}, sub{id: "b", query: q}, sub{id: "c", query: q, conn: "d"})
	publish(t, e, "users", `{"id":2}`, `{"id":1}`)
	m := e.Metrics()
	if m.EventsFiltered != 3 || m.EventsDelivered != 3 || m.Encodings != 1 {
		t.Fatalf("filtered %d delivered %d encodings %d", m.EventsFiltered, m.EventsDelivered, m.Encodings)
	}
}

func TestExecutorWhereOperators(t *testing.T) {
	const data = `{"id":1,"status":"active","total":150,"name":"Widget Pro","tags":["new","sale"],` +
		`"none":null,"customer":{"country":"FR"}}`
	tests := []struct {
		where string
		match bool
	}{
		{`{status: {eq: "active"}}`, true}, {`{status: {eq: "done"}}`, false},
		{`{status: {neq: "done"}}`, true}, {`{status: {neq: "active"}}`, false},
		{`{total: {gt: 149}}`, true}, {`{total: {gt: 150}}`, false},
		{`{total: {gte: 150}}`, true}, {`{total: {gte: 151}}`, false},
		{`{total: {lt: 151}}`, true}, {`{total: {lt: 150}}`, false},
		{`{total: {lte: 150}}`, true}, {`{total: {lte: 149}}`, false},
		{`{status: {in: ["done", "active"]}}`, true}, {`{status: {in: ["done", "new"]}}`, false},
		{`{status: {nin: ["done"]}}`, true}, {`{status: {nin: ["done", "active"]}}`, false},
		{`{name: {contains: "dget"}}`, true}, {`{name: {contains: "gadget"}}`, false},
		{`{tags: {contains: "sale"}}`, true}, {`{tags: {contains: "old"}}`, false},
		{`{name: {startswith: "Widg"}}`, true}, {`{name: {startswith: "Pro"}}`, false},
		{`{name: {startswith: "Widget Pro!"}}`, false},
		{`{none: {isnull: true}}`, true}, {`{status: {isnull: true}}`, false},
		{`{status: {isnull: false}}`, true}, {`{none: {isnull: false}}`, false},
		{`{customer: {country: {eq: "FR"}}}`, true}, {`{customer: {country: {eq: "DE"}}}`, false},
		{`{AND: [{status: {eq: "active"}}, {total: {gt: 100}}]}`, true},
		{`{AND: [{status: {eq: "active"}}, {total: {gt: 200}}]}`, false},
		{`{OR: [{status: {eq: "done"}}, {total: {gt: 100}}]}`, true},
		{`{OR: [{status: {eq: "done"}}, {total: {gt: 200}}]}`, false},
		{`{NOT: {status: {eq: "done"}}}`, true}, {`{NOT: {status: {eq: "active"}}}`, false},
	}
	e := newTestExecutor(t, Options{})
	for i, tt := range tests {
		register(t, e, sub{id: fmt.Sprint(i), query: `subscription { orders(where: ` + tt.where + `) { id } }`})
	}
	publish(t, e, "orders", data)
	filtered := 0
	for i, tt := range tests {
		id := fmt.Sprint(i)
		got := nextAll(t, e, id)
		if tt.match {
			wantFrames(t, got, frame(id, `{"orders":{"id":1}}`))
		} else {
			filtered++
			if len(got) != 0 {
				t.Errorf("%s matched: %q", tt.where, got)
			}
		}
	}
	if m := e.Metrics(); m.EventsFiltered != uint64(filtered) {
		t.Fatalf("events_filtered %d, want %d", m.EventsFiltered, filtered)
	}
}

func TestExecutorDrainConnectionBounds(t *testing.T) {
	e := newTestExecutor(t, Options{})
	register(t, e, sub{id: "a"}, sub{id: "b", query: `subscription { users { id n: id } }`}, sub{id: "z", conn: "other"})
	publish(t, e, "users", `{"id":1}`, `{"id":2}`, `{"id":3}`)
	fa := func(n int) string { return frame("a", fmt.Sprintf(`{"users":{"id":%d}}`, n)) }
	fb := func(n int) string { return frame("b", fmt.Sprintf(`{"users":{"id":%d,"n":%d}}`, n, n)) }
	for _, step := range []struct {
		max  int
		want []string
	}{
		{1, []string{fa(1)}},
		{2, []string{fb(1), fa(2)}},
		{3, []string{fb(2), fa(3), fb(3)}},
		{1, nil},
	} {
		frames, n, err := e.DrainConnection("c", step.max)
		if err != nil {
			t.Fatal(err)
		}
		if frames != strings.Join(step.want, "\n") || n != len(step.want) {
			t.Fatalf("DrainConnection(max=%d) = %d %q, want %q", step.max, n, frames, step.want)
		}
	}
	// Each subscription counts the messages drained from it as read.
	for id, want := range map[string]uint64{"a": 3, "b": 3, "z": 0} {
		if st, _ := e.Stats(id); st.Read != want {
			t.Fatalf("%s read %d, want %d", id, st.Read, want)
		}
	}
	// max <= 0 and max above what is pending take everything.
	publish(t, e, "users", `{"id":4}`)
	for _, max := range []int{0, -1, 5} {
		publish(t, e, "users", `{"id":5}`)
		frames, n, _ := e.DrainConnection("c", max)
		if n < 2 || n != strings.Count(frames, "\n")+1 {
			t.Fatalf("max=%d: n=%d frames %q", max, n, frames)
		}
		if st, _ := e.Stats("a"); st.Queued != 0 {
			t.Fatalf("max=%d left %d", max, st.Queued)
		}
	}
	frames, n, err := e.DrainConnection("nobody", 0)
	if frames != "" || n != 0 || err != nil {
		t.Fatalf("unknown connection: %q %d %v", frames, n, err)
	}
	// A single subscription: the bound too.
	frames, n, _ = e.DrainConnection("other", 2)
	if n != 2 || frames != frame("z", `{"users":{"id":1}}`)+"\n"+frame("z", `{"users":{"id":2}}`) {
		t.Fatalf("single subscription drain: %d %q", n, frames)
	}
	if st, _ := e.Stats("z"); st != (SubscriptionStats{Queued: 5, Enqueued: 7, Read: 2, GroupSize: 2}) {
		t.Fatalf("stats %+v", st)
	}
	if m := e.Metrics(); m.MessagesRead != 6+8+2 {
		t.Fatalf("messages_read %d", m.MessagesRead)
	}
}

func TestDrainConnectionMergesOutOfOrderQueues(t *testing.T) {
	e := newTestExecutor(t, Options{})
	register(t, e, sub{id: "a"}, sub{id: "b"}, sub{id: "o", query: `subscription { orders { id } }`})
	for i, ch := range []string{"orders", "users", "orders", "users"} {
		publish(t, e, ch, fmt.Sprintf(`{"id":%d}`, i))
	}
	frames, n, err := e.DrainConnection("c", 0)
	if err != nil || n != 6 {
		t.Fatalf("n=%d err=%v", n, err)
	}
	want := []string{
		frame("o", `{"orders":{"id":0}}`), frame("a", `{"users":{"id":1}}`), frame("b", `{"users":{"id":1}}`),
		frame("o", `{"orders":{"id":2}}`), frame("a", `{"users":{"id":3}}`), frame("b", `{"users":{"id":3}}`),
	}
	wantFrames(t, strings.Split(frames, "\n"), want...)
	if _, n, _ := e.DrainConnection("c", 0); n != 0 {
		t.Fatalf("left %d", n)
	}
}

// Frames of one event go in registration order, whichever subscription's
// queue filled first; a subscription emptied by Next or dropped by
// Complete is not visited.
func TestDrainConnectionSameEventInRegistrationOrder(t *testing.T) {
	e := newTestExecutor(t, Options{})
	register(t, e, sub{id: "a", query: `subscription { users(where: {id: {gte: 2}}) { id } }`}, sub{id: "b"}, sub{id: "x"})
	publish(t, e, "users", `{"id":1}`, `{"id":2}`)
	frames, n, err := e.DrainConnection("c", 0)
	if err != nil || n != 5 {
		t.Fatalf("n=%d err=%v", n, err)
	}
	wantFrames(t, strings.Split(frames, "\n"),
		frame("b", `{"users":{"id":1}}`), frame("x", `{"users":{"id":1}}`),
		frame("a", `{"users":{"id":2}}`), frame("b", `{"users":{"id":2}}`), frame("x", `{"users":{"id":2}}`))

	publish(t, e, "users", `{"id":1}`, `{"id":3}`)
	if _, err := e.Next("b"); err != nil {
		t.Fatal(err)
	}
	e.Complete("x")
	frames, n, err = e.DrainConnection("c", 0)
	if err != nil || n != 2 {
		t.Fatalf("n=%d err=%v", n, err)
	}
	wantFrames(t, strings.Split(frames, "\n"), frame("a", `{"users":{"id":3}}`), frame("b", `{"users":{"id":3}}`))
	if _, n, _ := e.DrainConnection("c", 0); n != 0 {
		t.Fatalf("left %d", n)
	}
}

// A drain visits the subscriptions marked as queued: the marks follow the
// positions when subscriptions leave a connection of more than 64 (two
// words of marks), including ones whose messages are still queued.
func TestDrainConnectionAfterRemovalsAcrossMarkWords(t *testing.T) {
	e := newTestExecutor(t, Options{})
	var want []string
	for i := range 130 {
		register(t, e, sub{id: fmt.Sprintf("s%03d", i), query: fmt.Sprintf(`subscription { users(where: {id: {eq: %d}}) { id } }`, i)})
	}
	for i := range 130 {
		publish(t, e, "users", fmt.Sprintf(`{"id":%d}`, i))
	}
	// Drain the first 70 messages, so the marks of the first subscriptions
	// are stale, then remove subscriptions around the word boundary.
	_, n, err := e.DrainConnection("c", 70)
	if err != nil || n != 70 {
		t.Fatalf("n=%d err=%v", n, err)
	}
	for _, i := range []int{0, 1, 63, 64, 65, 100, 129} {
		e.Complete(fmt.Sprintf("s%03d", i))
	}
	publish(t, e, "users", `{"id":2}`, `{"id":127}`)
	for i := 70; i < 130; i++ {
		if i != 100 && i != 129 {
			want = append(want, frame(fmt.Sprintf("s%03d", i), fmt.Sprintf(`{"users":{"id":%d}}`, i)))
		}
	}
	want = append(want, frame("s002", `{"users":{"id":2}}`), frame("s127", `{"users":{"id":127}}`))
	frames, n, err := e.DrainConnection("c", 0)
	if err != nil || n != len(want) {
		t.Fatalf("n=%d err=%v", n, err)
	}
	wantFrames(t, strings.Split(frames, "\n"), want...)
	if _, n, _ := e.DrainConnection("c", 0); n != 0 {
		t.Fatalf("left %d", n)
	}
}

// The fast path for data known to be well-formed behaves as Publish.
func TestPublishValidMatchesPublish(t *testing.T) {
	ctx := context.Background()
	a, b := newTestExecutor(t, Options{}), newTestExecutor(t, Options{})
	for _, e := range []*Executor{a, b} {
		register(t, e, sub{id: "s", query: `subscription { users { id name n } }`, user: "u1", tenant: "t1"})
	}
	for _, data := range []string{
		benchUserEvent,
		`{"id":1,"name":"caf\u00e9 \ud83d\ude00","n":1.50e3,"tenant_id":"t1"}`,
		`{"id":2,"name":"x","tenant_id":"t2"}`,
		`{"id":3} trailing`, `[1,2]`, `{"id":4,}`, "{\"id\":\"\xff\xfe\",\"tenant_id\":\"t1\"}",
		// Cut inside an escape: the lone-surrogate scan must stop at the end.
		`{"id":5,"name":"x\`, `{"id":6,"name":"\u12`, `{"id":7,"name":"\ud83d\`, `\`,
	} {
		// Capacity cut at the length: a scan past the end panics.
		raw := []byte(data)
		ev := Event{Type: "userUpdated", Channel: "users", Data: raw[:len(raw):len(raw)]}
		errA, errB := a.Publish(ctx, ev), b.PublishValid(ctx, ev)
		if fmt.Sprint(errA) != fmt.Sprint(errB) || KindOf(errA) != KindOf(errB) {
			t.Fatalf("%s: Publish %v, PublishValid %v", data, errA, errB)
		}
		fa, _ := a.Next("s")
		fb, _ := b.Next("s")
		if fa != fb {
			t.Fatalf("%s: frames differ:\n%s\n%s", data, fa, fb)
		}
	}
}

func TestExecutorPublishErrors(t *testing.T) {
	e := newTestExecutor(t, Options{Limits: Limits{MaxPayloadBytes: 20}})
	long := strings.Repeat("x", MaxIDBytes+1)
	for _, tt := range []struct {
		ev   Event
		kind ErrorKind
		msg  string
	}{
		{Event{Channel: "", Data: []byte(`{}`)}, KindValue, "channel must not be empty"},
		{Event{Channel: long, Data: []byte(`{}`)}, KindValue, "channel is 1025 bytes, over the limit of 1024"},
		{Event{Channel: "c", Type: long, Data: []byte(`{}`)}, KindValue, "event_type is 1025 bytes, over the limit of 1024"},
		{Event{Channel: "c", Data: []byte(`{"a":"123456789012345"}`)}, KindValue, "event payload is 23 bytes, over the max_payload_bytes limit of 20"},
		{Event{Channel: "c", Data: []byte(`[1]`)}, KindType, "event data must be a JSON object, got array"},
	} {
		for _, valid := range []bool{false, true} {
			var err error
			if valid {
				err = e.PublishValid(context.Background(), tt.ev)
			} else {
				err = e.Publish(context.Background(), tt.ev)
			}
			if err == nil || err.Error() != tt.msg || KindOf(err) != tt.kind {
				t.Errorf("valid=%v: got %v (kind %v), want %q", valid, err, KindOf(err), tt.msg)
			}
		}
	}
	if m := e.Metrics(); m.EventsPublished != 0 || m.BusPublished != 0 {
		t.Fatalf("refused events counted: %+v", m)
	}
}

// PublishValid refuses data that is not JSON after all with the error
// Publish gives, even where a number beyond a float64 comes first.
func TestExecutorPublishValidWordsMalformedDataAsPublish(t *testing.T) {
	e := newTestExecutor(t, Options{})
	for _, data := range []string{`{"a":1e400,"b":01}`, `{"a":01}`, `{"a":1e400}`} {
		ev := Event{Channel: "c", Data: []byte(data)}
		want := e.Publish(context.Background(), ev)
		if err := e.PublishValid(context.Background(), ev); want == nil || err == nil || err.Error() != want.Error() {
			t.Errorf("%s: PublishValid: %v; Publish: %v", data, err, want)
		}
	}
}

// The name limits are inclusive: a channel, event type or idempotency key
// of exactly MaxIDBytes is accepted (one byte more is refused above).
func TestExecutorPublishNamesAtTheLimit(t *testing.T) {
	e := newTestExecutor(t, Options{})
	at := strings.Repeat("x", MaxIDBytes)
	for _, ev := range []Event{
		{Channel: at, Data: []byte(`{}`)},
		{Channel: "c", Type: at, Data: []byte(`{}`)},
		{Channel: "c", IdempotencyKey: at, Data: []byte(`{}`)},
	} {
		if err := e.Publish(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
		if err := e.PublishValid(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
	}
	if m := e.Metrics(); m.EventsPublished != 6 {
		t.Fatalf("%d published, want 6", m.EventsPublished)
	}
}

// max_payload_bytes is inclusive too: data of exactly that size is
// published and delivered (one byte more is refused above).
func TestExecutorPublishPayloadAtTheLimit(t *testing.T) {
	e := newTestExecutor(t, Options{Limits: Limits{MaxPayloadBytes: 20}})
	register(t, e, sub{id: "s", query: `subscription { users { a } }`})
	data := []byte(`{"a":"123456789012"}`)
	if len(data) != 20 {
		t.Fatalf("data of %d bytes", len(data))
	}
	for _, publish := range []func(context.Context, Event) error{e.Publish, e.PublishValid} {
		if err := publish(context.Background(), Event{Channel: "users", Data: data}); err != nil {
			t.Fatal(err)
		}
	}
	want := frame("s", `{"users":{"a":"123456789012"}}`)
	wantFrames(t, nextAll(t, e, "s"), want, want)
}

// DrainInto and NextInto give as need the exact size of what they write:
// a buffer of that size takes it all, with nothing left unused.
func TestIntoNeedIsExact(t *testing.T) {
	for _, ids := range [][]string{{"s"}, {"s", "t"}} { // one queue, and a merge of two
		e := newTestExecutor(t, Options{})
		for _, id := range ids {
			register(t, e, sub{id: id})
		}
		publishUsers(t, e, 1, 3)
		_, _, need, err := e.DrainInto("c", 0, make([]byte, 1))
		if err != nil || need <= 1 {
			t.Fatalf("%v: need %d, %v", ids, need, err)
		}
		size, n, again, err := e.DrainInto("c", 0, make([]byte, need))
		if err != nil || again != 0 || size != need || n != 3*len(ids) {
			t.Fatalf("%v: into %d bytes: size %d, n %d, need %d, %v", ids, need, size, n, again, err)
		}
	}
	e := newTestExecutor(t, Options{})
	register(t, e, sub{id: "s"})
	publishUsers(t, e, 1, 1)
	_, need, err := e.NextInto("s", make([]byte, 1))
	if err != nil || need <= 1 {
		t.Fatalf("NextInto: need %d, %v", need, err)
	}
	if n, again, err := e.NextInto("s", make([]byte, need)); err != nil || again != 0 || n != need {
		t.Fatalf("NextInto %d bytes: n %d, need %d, %v", need, n, again, err)
	}
}

// On a distributed bus PublishValid checks well-formed data without
// decoding it (every executor decodes what its bus delivers), and still
// refuses what decoding would.
func TestRedisExecutorChecksWellFormedDataWithoutDecoding(t *testing.T) {
	mr := miniredis.RunT(t)
	e, err := NewExecutor(context.Background(), Options{
		Limits: Limits{MaxPayloadBytes: 20},
		Bus:    BusConfig{Kind: BusRedis, Redis: RedisOptions{URL: redisURL(mr), ConsumerGroup: "wf"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(context.Background())
	for _, c := range []struct{ data, want string }{
		{` [1]`, "event data must be a JSON object, got array"},
		{`{"pad":"0123456789abcdef"}`, "event payload is 26 bytes, over the max_payload_bytes limit of 20"},
		{` {"n":1}`, ""},
	} {
		err := e.PublishValid(context.Background(), Event{Type: "t", Channel: "items", Data: []byte(c.data)})
		if (err == nil) != (c.want == "") || (err != nil && err.Error() != c.want) {
			t.Fatalf("%s: got %v, want %q", c.data, err, c.want)
		}
	}
	if !isJSONObject([]byte("\t\r\n {}")) || isJSONObject([]byte("  ")) || isJSONObject([]byte(`"{"`)) {
		t.Fatal("isJSONObject")
	}
}

func TestExecutorRegisterErrors(t *testing.T) {
	e := newTestExecutor(t, Options{Limits: Limits{MaxDepth: 2}})
	register(t, e, sub{id: "s"})
	long := strings.Repeat("x", MaxIDBytes+1)
	for _, tt := range []struct {
		r   Registration
		msg string
	}{
		{Registration{SubscriptionID: "x", Query: "subscription { a }"}, "connection_id must not be empty"},
		{Registration{ConnectionID: "c", Query: "subscription { a }"}, "subscription_id must not be empty"},
		{Registration{ConnectionID: long, SubscriptionID: "x"}, "connection_id is 1025 bytes, over the limit of 1024"},
		{Registration{ConnectionID: "c", SubscriptionID: long}, "subscription_id is 1025 bytes, over the limit of 1024"},
		{Registration{ConnectionID: "c", SubscriptionID: "x", UserID: long}, "user_id and tenant_id must be at most 1024 bytes"},
		{Registration{ConnectionID: "c", SubscriptionID: "x", TenantID: long}, "user_id and tenant_id must be at most 1024 bytes"},
		{Registration{ConnectionID: "c", SubscriptionID: "s", Query: "subscription { a }"}, "Subscription s already exists"},
		{Registration{ConnectionID: "c", SubscriptionID: "x", Query: "subscription { a { b { c } } }"}, "query nests more than 2 levels deep, over the max_depth limit of 2"},
	} {
		err := e.Register(tt.r)
		if err == nil || KindOf(err) != KindValue || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("%+v: got %v, want %q", tt.r.SubscriptionID, err, tt.msg)
		}
	}
	// Ids of exactly the limit are fine.
	max := strings.Repeat("y", MaxIDBytes)
	register(t, e, sub{conn: max, id: max, user: max, tenant: max})
	m := e.Metrics()
	if m.Total != 10 || m.Errored != 8 || m.Active != 2 {
		t.Fatalf("metrics %+v", m)
	}
}

func TestExecutorSharesPlansBetweenEqualQueries(t *testing.T) {
	e := newTestExecutor(t, Options{})
	register(t, e, sub{id: "a"}, sub{id: "b", conn: "d"}, sub{id: "c", query: `subscription { users { id name } }`})
	st, _ := e.Stats("a")
	if st.GroupSize != 2 || e.Metrics().Groups != 2 {
		t.Fatalf("group size %d, groups %d", st.GroupSize, e.Metrics().Groups)
	}
	e.Complete("a")
	if st, _ := e.Stats("b"); st.GroupSize != 1 {
		t.Fatalf("group size after completing a: %d", st.GroupSize)
	}
	publish(t, e, "users", `{"id":1,"name":"n"}`)
	wantFrames(t, nextAll(t, e, "b"), frame("b", `{"users":{"id":1}}`))
	wantFrames(t, nextAll(t, e, "c"), frame("c", `{"users":{"id":1,"name":"n"}}`))
	e.Complete("b")
	e.Complete("c")
	if m := e.Metrics(); m.Groups != 0 || m.Connections != 0 || m.Active != 0 {
		t.Fatalf("registry not emptied: %+v", m)
	}
	// An id can be registered again once completed.
	register(t, e, sub{id: "a"})
	publish(t, e, "users", `{"id":2}`)
	wantFrames(t, nextAll(t, e, "a"), frame("a", `{"users":{"id":2}}`))
}

func TestExecutorCompleteIsIdempotent(t *testing.T) {
	e := newTestExecutor(t, Options{})
	register(t, e, sub{id: "a"}, sub{id: "b"}, sub{id: "x", conn: "d"})
	if e.Complete("nope") {
		t.Fatal("Complete of an unknown id reported true")
	}
	if !e.Complete("a") || e.Complete("a") {
		t.Fatal("Complete twice")
	}
	if n := e.CompleteConnection("c"); n != 1 {
		t.Fatalf("CompleteConnection = %d, want 1", n)
	}
	if n := e.CompleteConnection("c"); n != 0 {
		t.Fatalf("CompleteConnection again = %d", n)
	}
	publish(t, e, "users", `{"id":1}`)
	if m := e.Metrics(); m.EventsDelivered != 1 || m.Completed != 2 || m.Active != 1 {
		t.Fatalf("metrics %+v", m)
	}
}

func TestExecutorErrorsAreTyped(t *testing.T) {
	e := newTestExecutor(t, Options{})
	long := strings.Repeat("z", 300)
	for _, call := range []func() error{
		func() error { _, err := e.Next("nope"); return err },
		func() error { _, err := e.Stats("nope"); return err },
		func() error {
			ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
			defer cancel()
			_, err := e.NextWait(ctx, "nope")
			return err
		},
	} {
		err := call()
		if !errors.Is(err, ErrSubscriptionNotFound) || err.Error() != "Subscription not found: nope" || KindOf(err) != KindValue {
			t.Fatalf("got %v", err)
		}
	}
	_, err := e.Next(long)
	if want := "Subscription not found: " + long[:100] + "..."; err == nil || err.Error() != want {
		t.Fatalf("long id: %v", err)
	}
	if _, err := e.Next(long[:100]); err == nil || err.Error() != "Subscription not found: "+long[:100] {
		t.Fatalf("100-byte id: %v", err)
	}
	var be *BusError
	wrapped := busError("publishing failed", ErrClosed)
	if !errors.As(error(wrapped), &be) || !errors.Is(wrapped, ErrClosed) || wrapped.Error() != "publishing failed" {
		t.Fatalf("BusError does not wrap: %v", wrapped)
	}
}

func TestNextWait(t *testing.T) {
	e := newTestExecutor(t, Options{})
	register(t, e, sub{id: "s"})
	// A pending message returns at once, even with an ended context.
	publish(t, e, "users", `{"id":1}`)
	done, cancel := context.WithCancel(context.Background())
	cancel()
	if f, err := e.NextWait(done, "s"); f != frame("s", `{"users":{"id":1}}`) || err != nil {
		t.Fatalf("pending: %q %v", f, err)
	}
	if f, err := e.NextWait(done, "s"); f != "" || !errors.Is(err, context.Canceled) {
		t.Fatalf("nothing pending: %q %v", f, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
	defer cancel()
	if f, err := e.NextWait(ctx, "s"); f != "" || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("deadline: %q %v", f, err)
	}
	if st, _ := e.Stats("s"); st.Waiting != 0 {
		t.Fatalf("a wait that ended is still counted: %+v", st)
	}
	// A waiter is woken by a publish.
	got := make(chan string)
	go func() {
		f, _ := e.NextWait(context.Background(), "s")
		got <- f
	}()
	waitUntilWaiting(t, e, "s")
	publish(t, e, "users", `{"id":2}`)
	if f := <-got; f != frame("s", `{"users":{"id":2}}`) {
		t.Fatalf("woken with %q", f)
	}
	if st, _ := e.Stats("s"); st.Waiting != 0 {
		t.Fatalf("a woken wait is still counted: %+v", st)
	}
}

// waitUntilWaiting waits until a NextWait on id is parked on its channel
// (its Waiting count says so; polled, the count being the event).
func waitUntilWaiting(t *testing.T, e *Executor, id string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		st, err := e.Stats(id)
		if err != nil {
			t.Fatal(err)
		}
		if st.Waiting > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no NextWait on %s", id)
		}
	}
}

func TestCompleteWakesNextWait(t *testing.T) {
	e := newTestExecutor(t, Options{})
	register(t, e, sub{id: "s"})
	errc := make(chan error)
	go func() {
		_, err := e.NextWait(context.Background(), "s")
		errc <- err
	}()
	waitUntilWaiting(t, e, "s")
	e.Complete("s")
	if err := <-errc; !errors.Is(err, ErrSubscriptionNotFound) {
		t.Fatalf("got %v", err)
	}
}

func TestCloseWakesEveryWaiterAndRefusesCalls(t *testing.T) {
	e, err := NewExecutor(context.Background(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	ids := []string{"a", "b", "c"}
	for _, id := range ids {
		register(t, e, sub{id: id, conn: "c" + id})
	}
	publish(t, e, "users", `{"id":1}`) // discarded by Close
	nextAll(t, e, "c")
	errc := make(chan error, len(ids))
	for _, id := range ids[2:] {
		go func() {
			_, err := e.NextWait(context.Background(), id)
			errc <- err
		}()
		waitUntilWaiting(t, e, id)
	}
	// Waiters that have not parked yet end the same way.
	for _, id := range ids[:2] {
		go func() {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			for {
				f, err := e.NextWait(ctx, id)
				if err != nil {
					errc <- err
					return
				}
				if f == "" {
					errc <- errors.New("empty frame without error")
					return
				}
			}
		}()
	}
	if err := e.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	for range ids {
		if err := <-errc; !errors.Is(err, ErrClosed) {
			t.Fatalf("waiter ended with %v", err)
		}
	}
	m := e.Metrics()
	if m.Active != 0 || m.Completed != 3 || m.MessagesRead+m.MessagesDiscarded != 3 || m.Connections != 0 {
		t.Fatalf("metrics after close %+v", m)
	}
	ctx := context.Background()
	for name, err := range map[string]error{
		"Register":        e.Register(Registration{ConnectionID: "c", SubscriptionID: "n", Query: "subscription { a }"}),
		"Publish":         e.Publish(ctx, Event{Channel: "users", Data: []byte(`{}`)}),
		"PublishValid":    e.PublishValid(ctx, Event{Channel: "users", Data: []byte(`{}`)}),
		"Next":            func() error { _, err := e.Next("a"); return err }(),
		"NextWait":        func() error { _, err := e.NextWait(ctx, "a"); return err }(),
		"DrainConnection": func() error { _, _, err := e.DrainConnection("ca", 0); return err }(),
		"ReadyFD":         func() error { _, err := e.ReadyFD(); return err }(),
		"TakeReady":       func() error { _, err := e.TakeReady(); return err }(),
	} {
		if err != ErrClosed {
			t.Errorf("%s after Close: %v", name, err)
		}
	}
	if e.Complete("a") || e.CompleteConnection("ca") != 0 {
		t.Error("Complete after Close found something")
	}
	if err := e.Close(ctx); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if m := e.Metrics(); m.Errored != 1 || m.Total != 4 {
		t.Fatalf("refused registration not counted: %+v", m)
	}
}

func TestReadyFDSignalsEachSubscriptionOnce(t *testing.T) {
	e := newTestExecutor(t, Options{})
	register(t, e, sub{id: "a"}, sub{id: "b"}, sub{id: "o", query: `subscription { orders { id } }`})
	fd, err := e.ReadyFD()
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := e.ReadyFD(); again != fd {
		t.Fatalf("ReadyFD changed: %d then %d", fd, again)
	}
	if ids, err := e.TakeReady(); len(ids) != 0 || err != nil {
		t.Fatalf("nothing ready: %q %v", ids, err)
	}
	publish(t, e, "users", `{"id":1}`, `{"id":2}`)
	if !readable(t, fd) {
		t.Fatal("the ready descriptor is not readable after a delivery")
	}
	if ids, _ := e.TakeReady(); !slices.Equal(ids, []string{"a", "b"}) {
		t.Fatalf("TakeReady = %q", ids)
	}
	if readable(t, fd) {
		t.Fatal("TakeReady left the descriptor readable")
	}
	// Still queued: not signalled again until read empty and refilled.
	publish(t, e, "users", `{"id":3}`)
	if ids, _ := e.TakeReady(); len(ids) != 0 {
		t.Fatalf("non-empty queues signalled again: %q", ids)
	}
	nextAll(t, e, "a")
	publish(t, e, "users", `{"id":4}`)
	publish(t, e, "orders", `{"id":5}`)
	if ids, _ := e.TakeReady(); !slices.Equal(ids, []string{"a", "o"}) {
		t.Fatalf("TakeReady = %q", ids)
	}
}

func readable(t *testing.T, fd int) bool {
	t.Helper()
	var set syscall.FdSet
	set.Bits[fd/64] |= 1 << (uint(fd) % 64)
	tv := syscall.Timeval{}
	n, err := syscall.Select(fd+1, &set, nil, nil, &tv)
	if err != nil {
		t.Fatal(err)
	}
	return n == 1
}

// After Close the pipe's numbers may belong to other files: TakeReady must
// not read them.
func TestTakeReadyAfterCloseLeavesReusedDescriptorAlone(t *testing.T) {
	e, err := NewExecutor(context.Background(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	register(t, e, sub{id: "a"})
	fd, err := e.ReadyFD()
	if err != nil {
		t.Fatal(err)
	}
	publish(t, e, "users", `{"id":1}`)
	if err := e.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	var open []int
	defer func() {
		for _, f := range open {
			syscall.Close(f)
		}
	}()
	reused := -1
	for i := 0; i < 64 && reused < 0; i++ {
		var p [2]int
		if err := syscall.Pipe2(p[:], syscall.O_NONBLOCK|syscall.O_CLOEXEC); err != nil {
			t.Fatal(err)
		}
		open = append(open, p[0], p[1])
		if p[0] == fd {
			reused = p[1]
		}
	}
	if reused < 0 {
		t.Fatalf("descriptor %d was not reused", fd)
	}
	if _, err := syscall.Write(reused, []byte("other")); err != nil {
		t.Fatal(err)
	}
	if ids, err := e.TakeReady(); len(ids) != 0 || err != ErrClosed {
		t.Fatalf("TakeReady after Close: %q %v", ids, err)
	}
	buf := make([]byte, 16)
	n, err := syscall.Read(fd, buf)
	if err != nil || string(buf[:n]) != "other" {
		t.Fatalf("the other pipe holds %q (%v)", buf[:n], err)
	}
}

func TestSetAndUpdateLimits(t *testing.T) {
	e := newTestExecutor(t, Options{Limits: Limits{MaxDepth: 3}})
	want := Limits{MaxQueryBytes: DefaultMaxQueryBytes, MaxFields: DefaultMaxFields, MaxDepth: 3, MaxPayloadBytes: DefaultMaxPayloadBytes}
	if got := e.Limits(); got != want {
		t.Fatalf("Limits() = %+v", got)
	}
	got, err := e.UpdateLimits(Limits{MaxFields: 7})
	want.MaxFields = 7
	if err != nil || got != want || e.Limits() != want {
		t.Fatalf("UpdateLimits = %+v %v", got, err)
	}
	if _, err := e.UpdateLimits(Limits{MaxDepth: 9, MaxPayloadBytes: -1}); err == nil ||
		err.Error() != "max_payload_bytes must be positive, not -1" || e.Limits() != want {
		t.Fatalf("negative limit: %v, limits %+v", err, e.Limits())
	}
	for _, bad := range []Limits{{MaxQueryBytes: -1}, {MaxFields: -2}, {MaxDepth: -3}} {
		if _, err := e.UpdateLimits(bad); err == nil || KindOf(err) != KindValue {
			t.Fatalf("%+v accepted", bad)
		}
	}
	got, _ = e.UpdateLimits(Limits{MaxQueryBytes: 11, MaxDepth: 12, MaxPayloadBytes: 13})
	if want := (Limits{11, 7, 12, 13}); got != want {
		t.Fatalf("UpdateLimits = %+v", got)
	}
	// The limits apply to what comes next.
	if err := e.Publish(context.Background(), Event{Channel: "c", Data: []byte(`{"a":1234567890}`)}); err == nil {
		t.Fatal("payload over max_payload_bytes accepted")
	}
	if err := e.Register(Registration{ConnectionID: "c", SubscriptionID: "s", Query: "subscription { users { id } }"}); err == nil {
		t.Fatal("query over max_query_bytes accepted")
	}
	e.SetLimits(Limits{MaxDepth: 1})
	if got := e.Limits(); got != (Limits{DefaultMaxQueryBytes, DefaultMaxFields, 1, DefaultMaxPayloadBytes}) {
		t.Fatalf("SetLimits: %+v", got)
	}
}

func TestUpdateLimitsConcurrentLosesNoUpdate(t *testing.T) {
	e := newTestExecutor(t, Options{})
	var wg sync.WaitGroup
	for i := 1; i <= 50; i++ {
		wg.Add(4)
		go func() { defer wg.Done(); _, _ = e.UpdateLimits(Limits{MaxQueryBytes: 1000 + i}) }()
		go func() { defer wg.Done(); _, _ = e.UpdateLimits(Limits{MaxFields: 1000}) }()
		go func() { defer wg.Done(); _, _ = e.UpdateLimits(Limits{MaxDepth: 1000}) }()
		go func() { defer wg.Done(); _, _ = e.UpdateLimits(Limits{MaxPayloadBytes: 1000}) }()
	}
	wg.Wait()
	l := e.Limits()
	if l.MaxFields != 1000 || l.MaxDepth != 1000 || l.MaxPayloadBytes != 1000 || l.MaxQueryBytes <= 1000 {
		t.Fatalf("an update was lost: %+v", l)
	}
}

// After a panic inside dispatch (with the executor's and a connection's
// locks held) the same executor still does everything.
func TestPanicInDispatchIsCountedAndExecutorKeepsWorking(t *testing.T) {
	e, err := NewExecutor(context.Background(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	register(t, e, sub{id: "a"})
	if err := e.InjectFault(FaultDispatchPanic); err != nil {
		t.Fatal(err)
	}
	publish(t, e, "users", `{"id":1}`) // the memory bus dispatches in Publish
	if m := e.Metrics(); m.DispatchErrors != 1 || m.EventsDelivered != 0 || m.EventsPublished != 1 {
		t.Fatalf("after the panic: %+v", m)
	}
	checkExecutorWorks(t, e, "users", func() { publish(t, e, "users", `{"id":2}`) }, `{"users":{"id":2}}`)
	if m := e.Metrics(); m.DispatchErrors != 1 {
		t.Fatalf("the fault fired twice: %d", m.DispatchErrors)
	}
	if err := e.InjectFault(FaultBusReaderPanic); err == nil || err.Error() != "the *subscriptions.MemoryBus bus has no reader goroutine" {
		t.Fatalf("memory bus reader fault: %v", err)
	}
	if err := e.InjectFault(Fault(99)); err == nil || err.Error() != "unknown fault 99" {
		t.Fatalf("unknown fault: %v", err)
	}
}

// checkExecutorWorks registers, waits for a delivery caused by publish,
// completes and closes e, each step bounded so that a lock left held fails
// the test instead of hanging it.
func checkExecutorWorks(t *testing.T, e *Executor, channel string, publish func(), want string) {
	t.Helper()
	step := func(name string, f func() error) {
		t.Helper()
		errc := make(chan error, 1)
		go func() { errc <- f() }()
		select {
		case err := <-errc:
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("%s hangs: a lock was left held", name)
		}
	}
	step("Register", func() error {
		return e.Register(Registration{ConnectionID: "after", SubscriptionID: "after", Query: "subscription { " + channel + " { id } }"})
	})
	publish()
	step("NextWait", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		f, err := e.NextWait(ctx, "after")
		if err == nil && f != frame("after", want) {
			err = fmt.Errorf("frame %s", f)
		}
		return err
	})
	step("Complete", func() error {
		if !e.Complete("after") {
			return errors.New("not registered")
		}
		return nil
	})
	step("Close", func() error { return e.Close(context.Background()) })
}

// Ids are the client's: TakeReady returns them whole, whatever they hold.
func TestTakeReadyKeepsIDsWithControlCharacters(t *testing.T) {
	e := newTestExecutor(t, Options{})
	odd := []string{"a\nb", "\n", "tab\there", "\x01\x1f\x7f", "é\r\n"}
	for _, id := range odd {
		register(t, e, sub{id: id})
	}
	if _, err := e.ReadyFD(); err != nil {
		t.Fatal(err)
	}
	publish(t, e, "users", `{"id":1}`)
	ids, err := e.TakeReady()
	if err != nil || !slices.Equal(ids, odd) {
		t.Fatalf("TakeReady = %q, %v; want %q", ids, err, odd)
	}
}

// NextInto into too small a buffer keeps the message and says how many
// bytes its frame takes: exactly that many receive the whole frame, one
// fewer still do not.
func TestNextIntoNeedIsTheFrameSize(t *testing.T) {
	e := newTestExecutor(t, Options{})
	register(t, e, sub{id: "s"})
	publishUsers(t, e, 1, 1)
	want := frame("s", `{"users":{"id":1}}`)
	if n, need, err := e.NextInto("s", make([]byte, 8)); err != nil || n != 0 || need != len(want) {
		t.Fatalf("NextInto 8 bytes: n %d, need %d (frame %d), %v", n, need, len(want), err)
	}
	if n, need, err := e.NextInto("s", make([]byte, len(want)-1)); err != nil || n != 0 || need != len(want) {
		t.Fatalf("NextInto %d bytes: n %d, need %d, %v", len(want)-1, n, need, err)
	}
	dst := make([]byte, len(want))
	n, need, err := e.NextInto("s", dst)
	if err != nil || need != 0 || string(dst[:n]) != want {
		t.Fatalf("NextInto %d bytes: %q, need %d, %v", len(dst), dst[:n], need, err)
	}
}

// A NUL is refused wherever it is in a name, its first byte included.
func TestExecutorPublishRefusesLeadingNUL(t *testing.T) {
	e := newTestExecutor(t, Options{})
	for _, tt := range []struct {
		ev  Event
		msg string
	}{
		{Event{Channel: "\x00users", Data: []byte(`{}`)}, "channel must not contain NUL characters"},
		{Event{Channel: "users", Type: "\x00t", Data: []byte(`{}`)}, "event_type must not contain NUL characters"},
		{Event{Channel: "users", IdempotencyKey: "\x00", Data: []byte(`{}`)}, "idempotency_key must not contain NUL characters"},
	} {
		if err := e.Publish(context.Background(), tt.ev); err == nil || err.Error() != tt.msg || KindOf(err) != KindValue {
			t.Errorf("%q: got %v, want %q", tt.ev.Channel+"/"+tt.ev.Type+"/"+tt.ev.IdempotencyKey, err, tt.msg)
		}
	}
}

// PublishValid takes its data for Python's json encoder output, which
// writes a lone surrogate as an escape: it refuses one, where Publish's
// strict decoding turns it into U+FFFD as encoding/json does.
func TestPublishValidRefusesALoneSurrogate(t *testing.T) {
	e := newTestExecutor(t, Options{})
	register(t, e, sub{id: "s", query: `subscription { users { id name } }`})
	ev := Event{Type: "changed", Channel: "users", Data: []byte(`{"id":1,"name":"\udc00"}`)}
	err := e.PublishValid(context.Background(), ev)
	if want := `data is not valid Unicode: it contains the lone surrogate '\udc00'`; err == nil || err.Error() != want {
		t.Fatalf("PublishValid: %v, want %q", err, want)
	}
	if err := e.Publish(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	wantFrames(t, nextAll(t, e, "s"), frame("s", `{"users":{"id":1,"name":"`+"\ufffd"+`"}}`))
}

// On a distributed bus PublishValid checks well-formed data without
// decoding it, yet refuses what the receiving side's decoding would.
func TestPublishValidOnADistributedBusRefusesWhatDecodingRefuses(t *testing.T) {
	bus := newGateBus()
	e := fakeBusExecutor(bus)
	for _, c := range []struct{ data, want string }{
		{`{"n":1e400}`, "event data is not valid JSON: the number 1e400 is beyond the range of a float64"},
		{`{"s":"\ud800"}`, `data is not valid Unicode: it contains the lone surrogate '\ud800'`},
		{`{"a":` + strings.Repeat("[", 299) + "1" + strings.Repeat("]", 299) + `}`, "event data is not valid JSON: nested deeper than 300 levels"},
	} {
		bus.gate <- struct{}{} // taken only by an event that gets through, shown below
		err := e.PublishValid(context.Background(), Event{Type: "t", Channel: "items", Data: []byte(c.data)})
		if err == nil || err.Error() != c.want {
			t.Errorf("%.40s: got %v, want %q", c.data, err, c.want)
		}
	}
	bus.gate <- struct{}{}
	if err := e.PublishValid(context.Background(), numEvent(1)); err != nil {
		t.Fatal(err)
	}
	_, accepted := bus.snapshot()
	wantNums(t, accepted, 1)
}

// An event a bus delivers undecoded is decoded and dispatched; one that
// does not decode counts as a dispatch error and reaches nobody.
func TestDeliverDecodesWhatTheBusDelivers(t *testing.T) {
	e := newTestExecutor(t, Options{})
	register(t, e, sub{id: "s"})
	e.deliver(Event{Type: "changed", Channel: "users", Data: []byte(`{"id":1}`)})
	wantFrames(t, nextAll(t, e, "s"), frame("s", `{"users":{"id":1}}`))
	if m := e.Metrics(); m.DispatchErrors != 0 || m.EventsDelivered != 1 {
		t.Fatalf("metrics %+v", m)
	}
	e.deliver(Event{Type: "changed", Channel: "users", Data: []byte(`{"id":`)})
	wantFrames(t, nextAll(t, e, "s"))
	if m := e.Metrics(); m.DispatchErrors != 1 || m.EventsDelivered != 1 {
		t.Fatalf("metrics %+v", m)
	}
}

// stopperBus is a bus with a reader for Close to stop: it records whether
// the executor was already closed when its reader was stopped, and its
// Close.
type stopperBus struct {
	*gateBus
	e     *Executor
	calls []string
}

func (b *stopperBus) stopDelivery() {
	b.calls = append(b.calls, fmt.Sprintf("stopDelivery closed=%v", b.e.closed.Load()))
}

func (b *stopperBus) Close(context.Context) error {
	b.calls = append(b.calls, "Close")
	return nil
}

// Close stops the bus's reader once, before it marks the executor closed.
func TestCloseStopsDeliveryFirstAndOnce(t *testing.T) {
	bus := &stopperBus{gateBus: newGateBus()}
	e := fakeBusExecutor(bus)
	bus.e = e
	for range 2 {
		if err := e.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if got := strings.Join(bus.calls, ", "); got != "stopDelivery closed=false, Close" {
		t.Fatalf("calls: %s", got)
	}
}

// The zero Fault is no fault: the numbers the bindings pass start at 1.
func TestInjectFaultRefusesTheZeroFault(t *testing.T) {
	e := newTestExecutor(t, Options{})
	if err := e.InjectFault(Fault(0)); err == nil || err.Error() != "unknown fault 0" || KindOf(err) != KindValue {
		t.Fatalf("Fault(0): %v", err)
	}
	if FaultDispatchPanic != 1 || FaultBusReaderPanic != 2 {
		t.Fatalf("faults %d, %d", FaultDispatchPanic, FaultBusReaderPanic)
	}
}

// NextInto counts what it reads in the subscription's stats.
func TestNextIntoCountsTheRead(t *testing.T) {
	e := newTestExecutor(t, Options{})
	register(t, e, sub{id: "s"})
	publishUsers(t, e, 1, 2)
	dst := make([]byte, 256)
	if n, _, err := e.NextInto("s", dst); err != nil || string(dst[:n]) != frame("s", `{"users":{"id":1}}`) {
		t.Fatalf("NextInto: %q, %v", dst[:n], err)
	}
	st, err := e.Stats("s")
	if err != nil || st.Read != 1 || st.Queued != 1 || st.Enqueued != 2 {
		t.Fatalf("stats %+v, %v", st, err)
	}
	if m := e.Metrics(); m.MessagesRead != 1 {
		t.Fatalf("read %d", m.MessagesRead)
	}
}

// A drain orders frames by event even when the only pair it meets is out
// of order: the first subscription's one message came after the second's.
func TestDrainConnectionSortsASingleInvertedPair(t *testing.T) {
	e := newTestExecutor(t, Options{})
	register(t, e, sub{id: "a"}, sub{id: "o", query: `subscription { orders { id } }`})
	publish(t, e, "orders", `{"id":1}`)
	publish(t, e, "users", `{"id":2}`)
	frames, n, err := e.DrainConnection("c", 0)
	if err != nil || n != 2 {
		t.Fatalf("n=%d err=%v", n, err)
	}
	wantFrames(t, strings.Split(frames, "\n"), frame("o", `{"orders":{"id":1}}`), frame("a", `{"users":{"id":2}}`))
}

// hookCtx is a context that ends when NextWait first asks for its Done
// channel, after running hook: the event hook causes comes with the
// deadline.
type hookCtx struct {
	context.Context
	once sync.Once
	hook func()
	done chan struct{}
}

func newHookCtx(hook func()) *hookCtx {
	return &hookCtx{Context: context.Background(), hook: hook, done: make(chan struct{})}
}

func (c *hookCtx) Done() <-chan struct{} {
	c.once.Do(func() {
		c.hook()
		close(c.done)
	})
	return c.done
}

func (c *hookCtx) Err() error {
	select {
	case <-c.done:
		return context.Canceled
	default:
		return nil
	}
}

// A message or a completion that comes with the deadline wins over it.
// NextWait's select then has both its wake-up and the deadline ready and
// takes either: every round must give the message (or the completion).
func TestNextWaitPrefersWhatComesWithTheDeadline(t *testing.T) {
	e := newTestExecutor(t, Options{})
	register(t, e, sub{id: "s"})
	for i := range 64 {
		ctx := newHookCtx(func() { publishUsers(t, e, i, i) })
		f, err := e.NextWait(ctx, "s")
		if want := frame("s", fmt.Sprintf(`{"users":{"id":%d}}`, i)); err != nil || f != want {
			t.Fatalf("round %d: %q, %v; want %q", i, f, err, want)
		}
	}
	for i := range 64 {
		id := fmt.Sprintf("c%d", i)
		register(t, e, sub{id: id})
		ctx := newHookCtx(func() { e.Complete(id) })
		if f, err := e.NextWait(ctx, id); f != "" || !errors.Is(err, ErrSubscriptionNotFound) {
			t.Fatalf("round %d: %q, %v; want not found", i, f, err)
		}
	}
}

// On a distributed bus PublishValid only scans data up to and at the
// payload limit, which is inclusive: a leading zero, which a decoding
// refuses, passes at exactly the limit; one byte more is refused for its
// size.
func TestPublishValidOnADistributedBusScansUpToTheLimit(t *testing.T) {
	bus := newGateBus()
	e := fakeBusExecutor(bus)
	e.SetLimits(Limits{MaxPayloadBytes: 20})
	at := `{"a":01,"p":"xxxxx"}`
	if len(at) != 20 {
		t.Fatalf("%d bytes", len(at))
	}
	bus.gate <- struct{}{}
	if err := e.PublishValid(context.Background(), Event{Type: "t", Channel: "items", Data: []byte(at)}); err != nil {
		t.Fatalf("at the limit: %v", err)
	}
	over := `{"a":01,"p":"xxxxxx"}`
	err := e.PublishValid(context.Background(), Event{Type: "t", Channel: "items", Data: []byte(over)})
	if want := "event payload is 21 bytes, over the max_payload_bytes limit of 20"; err == nil || err.Error() != want {
		t.Fatalf("over the limit: %v, want %q", err, want)
	}
	_, accepted := bus.snapshot()
	if got := dataOf(accepted); len(got) != 1 || got[0] != at {
		t.Fatalf("accepted %q", got)
	}
}

// Next allocates a frame once, at its exact size.
func TestNextAllocatesTheFrameOnce(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates on its own")
	}
	e := newTestExecutor(t, Options{QueueSize: 200})
	register(t, e, sub{id: "s"})
	publishUsers(t, e, 1, 150)
	var f string
	n := testing.AllocsPerRun(100, func() {
		var err error
		if f, err = e.Next("s"); err != nil || f == "" {
			t.Fatalf("Next: %q, %v", f, err)
		}
	})
	if n != 1 {
		t.Fatalf("%v allocations per frame", n)
	}
	if want := frame("s", `{"users":{"id":101}}`); f != want {
		t.Fatalf("last frame %q, want %q", f, want)
	}
}

// enqueue queues nothing for a completed subscription and reports no
// drop. (Dispatch never meets one: finish completes a subscription after
// the registry let it go. The guard keeps a completed queue empty should
// that change.)
func TestEnqueueSkipsACompletedSubscription(t *testing.T) {
	e := newTestExecutor(t, Options{})
	register(t, e, sub{id: "s"})
	s := e.reg.subs["s"]
	s.complete()
	b := connBatch{e: e}
	dropped := b.enqueue(s, message{seq: 1, payload: []byte(`{}`)})
	b.release()
	if dropped || s.queue.len() != 0 || s.enqueued != 0 || s.dropped != 0 {
		t.Fatalf("dropped %v, queued %d, enqueued %d, dropped %d", dropped, s.queue.len(), s.enqueued, s.dropped)
	}
}

// strugglingBus reports panics recovered in its own goroutines.
type strugglingBus struct {
	*gateBus
	panics uint64
}

func (b *strugglingBus) Stats() BusStats { return BusStats{Panics: b.panics} }

// A panic in the bus's own goroutines counts as a failed dispatch.
func TestMetricsCountBusPanicsAsDispatchErrors(t *testing.T) {
	e := fakeBusExecutor(&strugglingBus{gateBus: newGateBus(), panics: 3})
	e.m.dispatchErrors.Add(2)
	if m := e.Metrics(); m.DispatchErrors != 5 {
		t.Fatalf("DispatchErrors = %d, want 2 + 3 bus panics", m.DispatchErrors)
	}
}
