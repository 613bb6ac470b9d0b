package subscriptions

import (
	"context"
	"fmt"
	"strings"
	"testing"

	json "github.com/goccy/go-json"
)

const benchUserEvent = `{"id":"42","name":"user 42","email":"u42@example.com","tenant_id":"t1"}`

// benchExecutor registers n subscriptions over connections of perConn
// subscriptions each. distinct gives every subscription its own plan.
func benchExecutor(b *testing.B, n, perConn int, distinct bool) *Executor {
	b.Helper()
	e, err := NewExecutor(context.Background(), Options{QueueSize: 64})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = e.Close(context.Background()) })
	for i := range n {
		q := `subscription { users { id name } }`
		if distinct {
			// Same shape, a different alias: a different plan and encoding.
			q = fmt.Sprintf(`subscription { users { id n%d: name } }`, i)
		}
		err := e.Register(Registration{ConnectionID: fmt.Sprintf("c%d", i/perConn), SubscriptionID: fmt.Sprintf("s%d", i),
			Query: q, UserID: "u1", TenantID: "t1"})
		if err != nil {
			b.Fatal(err)
		}
	}
	return e
}

// benchDispatch measures dispatching one decoded event to n subscriptions.
// The queues (64 messages) are filled first and nobody reads them, so each
// delivery also drops the oldest message: the steady state of a slow
// reader, and a pessimistic one for caches (10,000 full rings are 20 MB).
func benchDispatch(b *testing.B, n int, distinct bool) {
	e := benchExecutor(b, n, 100, distinct)
	d := mustEvent(b, "userUpdated", "users", benchUserEvent)
	for range 64 { // fill the queues: measure the steady state, not their growth
		e.dispatch(d)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		e.dispatch(d)
	}
	perOp := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	b.ReportMetric(perOp/float64(n), "ns/delivery")
}

func BenchmarkDispatch(b *testing.B) {
	for _, n := range []int{1, 100, 10000} {
		b.Run(fmt.Sprintf("identical/subs=%d", n), func(b *testing.B) { benchDispatch(b, n, false) })
	}
	for _, n := range []int{1, 100, 10000} {
		b.Run(fmt.Sprintf("distinct/subs=%d", n), func(b *testing.B) { benchDispatch(b, n, true) })
	}
}

// BenchmarkDispatchGroupGrowth: one plan group growing from 10 to 10,000
// members; with one encoding per group, ns per delivery stays flat.
func BenchmarkDispatchGroupGrowth(b *testing.B) {
	for _, n := range []int{10, 100, 1000, 10000} {
		b.Run(fmt.Sprintf("group=%d", n), func(b *testing.B) {
			e := benchExecutor(b, n, 100, false)
			d := mustEvent(b, "userUpdated", "users", benchUserEvent)
			for range 64 {
				e.dispatch(d)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				e.dispatch(d)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/delivery")
		})
	}
}

// BenchmarkPublishAndDrain: the whole path of the W1 workload in Go: publish
// raw JSON (decode, dispatch) to 1,000 subscriptions on 10 connections, then
// drain every connection.
func BenchmarkPublishAndDrain(b *testing.B) {
	e := benchExecutor(b, 1000, 100, false)
	ctx := context.Background()
	ev := Event{Type: "userUpdated", Channel: "users", Data: []byte(benchUserEvent)}
	b.ReportAllocs()
	for b.Loop() {
		if err := e.Publish(ctx, ev); err != nil {
			b.Fatal(err)
		}
		for c := range 10 {
			if _, n, _ := e.DrainConnection(fmt.Sprintf("c%d", c), 0); n != 100 {
				b.Fatalf("drained %d", n)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1000, "ns/delivery")
}

// BenchmarkNext: one Next call on a queue that always has a message.
func BenchmarkNext(b *testing.B) {
	e := benchExecutor(b, 1, 1, false)
	d := mustEvent(b, "userUpdated", "users", benchUserEvent)
	b.ReportAllocs()
	for b.Loop() {
		e.dispatch(d)
		if f, err := e.Next("s0"); err != nil || f == "" {
			b.Fatal("no frame", err)
		}
	}
}

// BenchmarkDecodeEvent: decoding a ~2 KB event once per publish.
func BenchmarkDecodeEvent(b *testing.B) {
	raw := benchEvent(b).Data
	lim := Limits{}.withDefaults()
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodeEvent(Event{Type: "orderCreated", Channel: "orders", Data: raw}, lim); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFilter: matching one event against where filters.
func BenchmarkFilter(b *testing.B) {
	ev := benchEvent(b)
	cases := []struct{ name, q string }{
		{"eq+gte", `subscription { orders(where: {status: {eq: "active"}, total: {gte: 100}}) { id } }`},
		{"in", `subscription { orders(where: {currency: {in: ["USD", "GBP", "EUR"]}}) { id } }`},
		{"or-not-startswith", `subscription { orders(where: {OR: [{status: {eq: "x"}}, {NOT: {created_at: {startswith: "2023"}}}]}) { id } }`},
		{"nested-contains", `subscription { orders(where: {extra_03: {contains: "field"}, id: {lt: 999999}}) { id } }`},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			p := mustCompile(b, c.q, nil)
			b.ReportAllocs()
			for b.Loop() {
				if !p.Match(ev) {
					b.Fatal("no match")
				}
			}
		})
	}
}

// BenchmarkRegister: registering a subscription whose plan already exists
// (compile, then join the group).
func BenchmarkRegister(b *testing.B) {
	e, err := NewExecutor(context.Background(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close(context.Background())
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		err := e.Register(Registration{ConnectionID: fmt.Sprintf("c%d", i/10), SubscriptionID: fmt.Sprintf("s%d", i),
			Query: `subscription { users { id name } }`, UserID: "u1", TenantID: "t1"})
		if err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkPublishFiltered: the W2 workload in Go. 1,000 subscriptions over
// 50 distinct where filters (5 regions x 10 thresholds, with variables),
// projections of 5 fields of a ~2 KB event; one op publishes one event.
func BenchmarkPublishFiltered(b *testing.B) {
	e, err := NewExecutor(context.Background(), Options{QueueSize: 64})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close(context.Background())
	regions := []string{"eu-west", "eu-north", "us-east", "us-west", "ap-south"}
	q := `subscription ($region: String, $min: Int) { orders(where: {region: {eq: $region}, total: {gte: $min}}) { id region total status customer } }`
	for i := range 1000 {
		f := i % 50
		vars := map[string]any{"region": regions[f%5], "min": json.Number(fmt.Sprint((f / 5) * 100))}
		if err := e.Register(Registration{ConnectionID: fmt.Sprintf("c%d", i/100), SubscriptionID: fmt.Sprintf("s%d", i),
			Query: q, Variables: vars, UserID: "u1", TenantID: "t1"}); err != nil {
			b.Fatal(err)
		}
	}
	events := make([]Event, 16)
	for i := range events {
		var sb strings.Builder
		fmt.Fprintf(&sb, `{"id":%d,"region":%q,"total":%d,"status":"paid","customer":"customer-%d","tenant_id":"t1"`,
			i, regions[i%5], (i*137)%1000, i)
		for k := range 14 {
			fmt.Fprintf(&sb, `,"field_%02d":"filler text %d for order %d: %s"`, k, k, i, strings.Repeat("x", 100))
		}
		sb.WriteString("}")
		events[i] = Event{Type: "orderUpdated", Channel: "orders", Data: []byte(sb.String())}
	}
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if err := e.Publish(ctx, events[i%len(events)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// The fast paths behind the benchmarks behave as the plain ones.
func TestPublishValidMatchesPublish(t *testing.T) {
	ctx := context.Background()
	mk := func() *Executor {
		e, err := NewExecutor(ctx, Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = e.Close(context.Background()) })
		if err := e.Register(Registration{ConnectionID: "c", SubscriptionID: "s", Query: `subscription { users { id name n } }`,
			UserID: "u1", TenantID: "t1"}); err != nil {
			t.Fatal(err)
		}
		return e
	}
	a, b := mk(), mk()
	for _, data := range []string{
		benchUserEvent,
		`{"id":1,"name":"caf\u00e9 \ud83d\ude00","n":1.50e3,"tenant_id":"t1"}`,
		`{"id":2,"name":"x","tenant_id":"t2"}`,
		`{"id":3} trailing`, `[1,2]`, `{"id":4,}`, "{\"id\":\"\xff\xfe\",\"tenant_id\":\"t1\"}",
	} {
		ev := Event{Type: "userUpdated", Channel: "users", Data: []byte(data)}
		errA, errB := a.Publish(ctx, ev), b.PublishValid(ctx, ev)
		if fmt.Sprint(errA) != fmt.Sprint(errB) {
			t.Fatalf("%s: Publish %v, PublishValid %v", data, errA, errB)
		}
		fa, _ := a.Next("s")
		fb, _ := b.Next("s")
		if fa != fb {
			t.Fatalf("%s: frames differ:\n%s\n%s", data, fa, fb)
		}
	}
}

func TestDrainConnectionMergesOutOfOrderQueues(t *testing.T) {
	e, err := NewExecutor(context.Background(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(context.Background())
	for _, id := range []string{"a", "b"} {
		if err := e.Register(Registration{ConnectionID: "c", SubscriptionID: id, Query: `subscription { users { id } }`,
			UserID: "u1", TenantID: "t1"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.Register(Registration{ConnectionID: "c", SubscriptionID: "o", Query: `subscription { orders { id } }`,
		UserID: "u1", TenantID: "t1"}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i, ch := range []string{"orders", "users", "orders", "users"} {
		if err := e.Publish(ctx, Event{Type: "x", Channel: ch, Data: []byte(fmt.Sprintf(`{"id":%d}`, i))}); err != nil {
			t.Fatal(err)
		}
	}
	frames, n, err := e.DrainConnection("c", 0)
	if err != nil || n != 6 {
		t.Fatalf("n=%d err=%v", n, err)
	}
	var ids []string
	for _, f := range strings.Split(frames, "\n") {
		ids = append(ids, f[strings.Index(f, `"id":`)+5:][:3]+f[strings.LastIndex(f, `"id":`)+5:][:1])
	}
	want := `["o"0 "a"1 "b"1 "o"2 "a"3 "b"3]`
	if got := fmt.Sprint(ids); got != want {
		t.Fatalf("order %s, want %s", got, want)
	}
	if _, n, _ := e.DrainConnection("c", 0); n != 0 {
		t.Fatalf("left %d", n)
	}
}
