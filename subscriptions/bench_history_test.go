//go:build !mutate

package subscriptions

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/fraiseql/fraiseql-subscriptions/internal/pgtest"
	"github.com/fraiseql/fraiseql-subscriptions/internal/redistest"
)

// BenchmarkReplay measures a resume's replay from the bus's history into
// one subscription: b.N events are on the bus (and were received by the
// executor's reader), a subscription resumes
// after the first position and is drained, 1,000 frames per drain, until
// it has them all (one op is one event; read events/s). Events are about
// 40 bytes; the queue is the default 1,000.
//
//	go test -run '^$' -bench Replay -benchtime 100000x ./subscriptions
func BenchmarkReplay(b *testing.B) {
	b.Run("memory", func(b *testing.B) {
		benchReplay(b, BusConfig{}, func(e *Executor, evs []Event) {
			for _, ev := range evs {
				if err := e.Publish(context.Background(), ev); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
	b.Run("redis", func(b *testing.B) {
		cfg := BusConfig{Kind: BusRedis, Redis: RedisOptions{URL: redistest.Start(b).URL(), ConsumerGroup: "g", MaxLen: 1 << 30}}
		benchReplay(b, cfg, func(_ *Executor, evs []Event) { publishThrough(b, cfg, evs) })
	})
	b.Run("postgresql", func(b *testing.B) {
		cfg := BusConfig{Kind: BusPostgres, Postgres: PostgresOptions{ConnString: pgtest.Start(b).ConnString(), PollInterval: 50 * time.Millisecond}}
		benchReplay(b, cfg, func(_ *Executor, evs []Event) { publishThrough(b, cfg, evs) })
	})
}

func benchReplay(b *testing.B, cfg BusConfig, publish func(*Executor, []Event)) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e, err := NewExecutor(ctx, Options{Bus: cfg, HistorySize: b.N + 1})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close(context.Background())
	q := `subscription { users { n s } }`
	if err := e.Register(Registration{ConnectionID: "first", SubscriptionID: "first", Query: q, Positions: true}); err != nil {
		b.Fatal(err)
	}
	evs := make([]Event, b.N+1)
	for i := range evs {
		evs[i] = Event{Type: "c", Channel: "users", Data: fmt.Appendf(nil, `{"n":%d,"s":"abcdefghijklmnop"}`, i)}
	}
	publish(e, evs[:1])
	wctx, wcancel := context.WithTimeout(context.Background(), 30*time.Second)
	first, err := e.NextWait(wctx, "first")
	wcancel()
	if err != nil {
		b.Fatal(err)
	}
	e.Complete("first")
	publish(e, evs[1:])
	// The history is complete and the live reader idle: the replay alone is timed.
	for e.bus.Stats().Received < uint64(len(evs)) {
		time.Sleep(time.Millisecond)
	}
	b.ResetTimer()
	start := time.Now()
	if err := e.Register(Registration{ConnectionID: "c", SubscriptionID: "r", Query: q, After: positionOf(b, first)}); err != nil {
		b.Fatal(err)
	}
	got := 0
	deadline := time.Now().Add(5 * time.Minute)
	for got < b.N && time.Now().Before(deadline) {
		_, n, err := e.DrainConnection("c", 1000)
		if err != nil {
			b.Fatal(err)
		}
		if n == 0 {
			time.Sleep(50 * time.Microsecond)
		}
		got += n
	}
	elapsed := time.Since(start)
	b.StopTimer()
	if got != b.N {
		b.Fatalf("replayed %d of %d", got, b.N)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
}

// positionOf is framePosition for benchmarks.
func positionOf(b *testing.B, frame string) string {
	const key = `"position":"`
	i := len(frame) - 1
	for ; i >= 0 && frame[i:min(i+len(key), len(frame))] != key; i-- {
	}
	if i < 0 {
		b.Fatalf("no position in %s", frame)
	}
	rest := frame[i+len(key):]
	for j := 0; j < len(rest); j++ {
		if rest[j] == '"' {
			return rest[:j]
		}
	}
	b.Fatalf("no position in %s", frame)
	return ""
}

// publishThrough publishes evs in batches through a bus that is not started.
func publishThrough(tb testing.TB, cfg BusConfig, evs []Event) {
	tb.Helper()
	bus, err := NewBus(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	defer bus.Close(context.Background())
	for start := 0; start < len(evs); start += 1000 {
		if err := bus.PublishBatch(context.Background(), evs[start:min(start+1000, len(evs))]); err != nil {
			tb.Fatal(err)
		}
	}
}
