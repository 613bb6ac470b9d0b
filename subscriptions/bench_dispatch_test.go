package subscriptions

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	json "github.com/goccy/go-json"
	"github.com/valyala/fastjson"
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

// BenchmarkEventParsers: the candidates for decoding event data, on the
// same ~2 KB event: goccy/go-json into map[string]any (numbers as
// json.Number, the engine's former form) against fastjson's parse (the
// engine's form), each alone and as decodeEvent uses it.
func BenchmarkEventParsers(b *testing.B) {
	raw := benchEvent(b).Data
	lim := Limits{}.withDefaults()
	b.Run("goccy-map", func(b *testing.B) {
		b.SetBytes(int64(len(raw)))
		b.ReportAllocs()
		for b.Loop() {
			dec := json.NewDecoder(bytes.NewReader(raw))
			dec.UseNumber()
			var v any
			if err := dec.Decode(&v); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("fastjson", func(b *testing.B) {
		b.SetBytes(int64(len(raw)))
		b.ReportAllocs()
		var p fastjson.Parser
		for b.Loop() {
			if _, err := p.ParseBytes(raw); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decodeEvent-trusted", func(b *testing.B) {
		b.SetBytes(int64(len(raw)))
		b.ReportAllocs()
		for b.Loop() {
			d, err := decodeEventFrom(Event{Type: "orderCreated", Channel: "orders", Data: raw}, lim, true)
			if err != nil {
				b.Fatal(err)
			}
			d.release()
		}
	})
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

const w2Query = `subscription ($region: String, $min: Int) { orders(where: {region: {eq: $region}, total: {gte: $min}}) { id region total status customer } }`

// w2Executor is the W2 workload in Go: 1,000 subscriptions over 10
// connections and 50 distinct where filters (5 regions x 10 thresholds,
// with variables), projections of 5 fields of ~2 KB events.
func w2Executor(b *testing.B) (*Executor, []Event) { return w2ExecutorWith(b, "") }

// w2ExecutorWith is w2Executor with a schema (SDL, or "" for none).
func w2ExecutorWith(b *testing.B, schema string) (*Executor, []Event) {
	e, err := NewExecutor(context.Background(), Options{QueueSize: 64, Schema: schema})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { e.Close(context.Background()) })
	regions := []string{"eu-west", "eu-north", "us-east", "us-west", "ap-south"}
	for i := range 1000 {
		f := i % 50
		vars := map[string]any{"region": regions[f%5], "min": json.Number(fmt.Sprint((f / 5) * 100))}
		if err := e.Register(Registration{ConnectionID: fmt.Sprintf("c%d", i/100), SubscriptionID: fmt.Sprintf("s%d", i),
			Query: w2Query, Variables: vars, UserID: "u1", TenantID: "t1"}); err != nil {
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
	return e, events
}

// BenchmarkPublishFiltered: W2's publishes alone (one op publishes one
// event; the queues are not read).
func BenchmarkPublishFiltered(b *testing.B) {
	e, events := w2Executor(b)
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

// BenchmarkW2: what bench/run.py's W2 asks of Go per event: a publish of
// data Python encoded (PublishValid), then a drain of each connection.
func BenchmarkW2(b *testing.B) {
	e, events := w2Executor(b)
	benchW2(b, e, events)
}

func benchW2(b *testing.B, e *Executor, events []Event) {
	ctx := context.Background()
	conns := make([]string, 10)
	for j := range conns {
		conns[j] = fmt.Sprintf("c%d", j)
	}
	buf := make([]byte, 1<<16)
	b.ReportAllocs()
	i, deliveries := 0, 0
	for b.Loop() {
		if err := e.PublishValid(ctx, events[i%len(events)]); err != nil {
			b.Fatal(err)
		}
		for _, c := range conns {
			_, n, _, err := e.DrainInto(c, 0, buf)
			if err != nil {
				b.Fatal(err)
			}
			deliveries += n
		}
		i++
	}
	if deliveries == 0 {
		b.Fatal("nothing delivered")
	}
}

// BenchmarkDispatchRead: dispatch to 10,000 subscriptions of one group
// whose queues are being read (each is emptied between events, outside
// the timing), the steady state of readers that keep up. Allocations per
// op are per event (the one encoding), not per recipient.
func BenchmarkDispatchRead(b *testing.B) {
	for _, n := range []int{100, 10000} {
		b.Run(fmt.Sprintf("subs=%d", n), func(b *testing.B) {
			e := benchExecutor(b, n, 100, false)
			d := mustEvent(b, "userUpdated", "users", benchUserEvent)
			var subs []*subscription
			for _, s := range e.reg.subs {
				subs = append(subs, s)
			}
			read := func() {
				for _, s := range subs {
					s.queue.pop()
				}
			}
			e.dispatch(d)
			read()
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				e.dispatch(d)
				b.StopTimer()
				read()
				b.StartTimer()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/delivery")
		})
	}
}

// BenchmarkPublishValid2K: the Go part of publish_event from Python for a
// ~2 KB event and one subscription projecting 5 of its 20 fields.
func BenchmarkPublishValid2K(b *testing.B) {
	e, err := NewExecutor(context.Background(), Options{QueueSize: 16})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close(context.Background())
	if err := e.Register(Registration{ConnectionID: "c", SubscriptionID: "s",
		Query: `subscription { orders { id region total status customer } }`, UserID: "u1", TenantID: "t1"}); err != nil {
		b.Fatal(err)
	}
	var sb strings.Builder
	sb.WriteString(`{"id":7,"region":"eu-west","total":420,"status":"paid","customer":"customer-7","tenant_id":"t1"`)
	for k := range 14 {
		fmt.Fprintf(&sb, `,"field_%02d":"filler text %d for order 7: %s"`, k, k, strings.Repeat("x", 100))
	}
	sb.WriteString("}")
	ev := Event{Type: "orderUpdated", Channel: "orders", Data: []byte(sb.String())}
	ctx := context.Background()
	b.SetBytes(int64(len(ev.Data)))
	b.ReportAllocs()
	for b.Loop() {
		if err := e.PublishValid(ctx, ev); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRefusedOnDecoding: the scan a distributed bus's PublishValid
// makes instead of a decoding (compare BenchmarkDecodeEvent, same event).
func BenchmarkRefusedOnDecoding(b *testing.B) {
	raw := benchEvent(b).Data
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		if refusedOnDecoding(raw) {
			b.Fatal("refused")
		}
	}
}
