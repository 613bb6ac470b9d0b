package subscriptions

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	json "github.com/goccy/go-json"
)

// What a schema costs: each benchmark runs the same work without and with
// one (sub-benchmarks "without schema" and "with schema", adjacent in
// every -count round, so that their ratio is measured back to back).

// withAndWithout runs bench once without a schema and once with sdl.
func withAndWithout(b *testing.B, sdl string, bench func(b *testing.B, sdl string)) {
	b.Run("without schema", func(b *testing.B) { bench(b, "") })
	b.Run("with schema", func(b *testing.B) { bench(b, sdl) })
}

// cpuPerOp reports cpu-ns/op, the process's CPU time (user and system,
// every thread) per op from this call to the returned function's. On a
// shared machine wall time also counts the time other processes held the
// cores; CPU time does not.
func cpuPerOp(b *testing.B) (stop func()) {
	start := processCPU(b)
	return func() {
		b.ReportMetric(float64((processCPU(b)-start).Nanoseconds())/float64(b.N), "cpu-ns/op")
	}
}

func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

const usersSDL = `
type Query { ok: Boolean }
type User { id: ID! name: String email: String tenant_id: String }
type Subscription { users: User }
`

// BenchmarkW1Schema is BenchmarkPublishAndDrain (W1 in Go: a publish to
// 1,000 subscriptions on 10 connections, then a drain of each) without
// and with a schema.
func BenchmarkW1Schema(b *testing.B) {
	withAndWithout(b, usersSDL, func(b *testing.B, sdl string) {
		e, err := NewExecutor(context.Background(), Options{QueueSize: 64, Schema: sdl})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = e.Close(context.Background()) })
		for i := range 1000 {
			err := e.Register(Registration{ConnectionID: fmt.Sprintf("c%d", i/100), SubscriptionID: fmt.Sprintf("s%d", i),
				Query: `subscription { users { id name } }`, UserID: "u1", TenantID: "t1"})
			if err != nil {
				b.Fatal(err)
			}
		}
		ctx := context.Background()
		ev := Event{Type: "userUpdated", Channel: "users", Data: []byte(benchUserEvent)}
		conns := make([]string, 10)
		for c := range conns {
			conns[c] = fmt.Sprintf("c%d", c)
		}
		b.ReportAllocs()
		defer cpuPerOp(b)()
		for b.Loop() {
			if err := e.Publish(ctx, ev); err != nil {
				b.Fatal(err)
			}
			for _, c := range conns {
				if _, n, _ := e.DrainConnection(c, 0); n != 100 {
					b.Fatalf("drained %d", n)
				}
			}
		}
	})
}

const w2SDL = `
type Query { ok: Boolean }
input StringFilter { eq: String }
input IntFilter { gte: Int }
input OrderWhere { region: StringFilter total: IntFilter }
type Order { id: ID! region: String total: Int status: String customer: String }
type Subscription { orders(where: OrderWhere): Order }
`

// BenchmarkW2Schema is BenchmarkW2 without and with a schema.
func BenchmarkW2Schema(b *testing.B) {
	withAndWithout(b, w2SDL, func(b *testing.B, sdl string) {
		e, events := w2ExecutorWith(b, sdl)
		defer cpuPerOp(b)()
		benchW2(b, e, events)
	})
}

// BenchmarkRegisterSchema: registering W1's and W2's subscriptions (their
// plan's group exists: compile, validate with a schema, then join), as
// BenchmarkRegister, without and with a schema.
func BenchmarkRegisterSchema(b *testing.B) {
	for _, w := range []struct {
		name, sdl, query string
		vars             map[string]any
	}{
		{"W1", usersSDL, `subscription { users { id name } }`, nil},
		{"W2", w2SDL, w2Query, map[string]any{"region": "eu-west", "min": json.Number("100")}},
	} {
		b.Run(w.name, func(b *testing.B) {
			withAndWithout(b, w.sdl, func(b *testing.B, sdl string) {
				e, err := NewExecutor(context.Background(), Options{Schema: sdl})
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { _ = e.Close(context.Background()) })
				b.ReportAllocs()
				defer cpuPerOp(b)()
				i := 0
				for b.Loop() {
					err := e.Register(Registration{ConnectionID: fmt.Sprintf("c%d", i/10), SubscriptionID: fmt.Sprintf("s%d", i),
						Query: w.query, Variables: w.vars, UserID: "u1", TenantID: "t1"})
					if err != nil {
						b.Fatal(err)
					}
					i++
				}
			})
		})
	}
}

// BenchmarkCompileSchema: compiling a document with nested selections and
// a where filter, without and with a schema.
func BenchmarkCompileSchema(b *testing.B) {
	s := mustSchema(b, ordersSDL)
	withAndWithout(b, ordersSDL, func(b *testing.B, sdl string) {
		var schema *Schema
		if sdl != "" {
			schema = s
		}
		b.ReportAllocs()
		defer cpuPerOp(b)()
		for b.Loop() {
			if _, err := CompileWithSchema(ordersQuery, "", nil, Limits{}.withDefaults(), schema); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkAppendPayloadSchema: one payload of a ~2 KB event with nested
// objects and a list, without and with a schema.
func BenchmarkAppendPayloadSchema(b *testing.B) {
	ev := benchEvent(b)
	s := mustSchema(b, ordersSDL)
	withAndWithout(b, ordersSDL, func(b *testing.B, sdl string) {
		var schema *Schema
		if sdl != "" {
			schema = s
		}
		p, err := CompileWithSchema(ordersQuery, "", nil, Limits{}.withDefaults(), schema)
		if err != nil {
			b.Fatal(err)
		}
		b.SetBytes(int64(len(ev.Data)))
		b.ReportAllocs()
		buf := p.AppendPayload(nil, ev)
		defer cpuPerOp(b)()
		for b.Loop() {
			buf = p.AppendPayload(buf[:0], ev)
		}
	})
}
