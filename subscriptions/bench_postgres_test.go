//go:build !mutate

// The engine area of `make mutate` builds without this file (tag mutate):
// its tests use Redis or PostgreSQL and would slow every engine mutant's
// run. The buses area runs them.

package subscriptions

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fraiseql/fraiseql-subscriptions/internal/pgtest"
)

// BenchmarkPostgresBus measures the PostgreSQL bus end to end: from the
// first publish until the listener has delivered every event (one op is
// one event; events/s is the figure to read). Events are about 20 bytes.
//
//	go test -run '^$' -bench PostgresBus -benchtime 20000x ./subscriptions
func BenchmarkPostgresBus(b *testing.B) {
	srv := pgtest.Start(b)
	data := func(n int) []byte { return fmt.Appendf(nil, `{"n":%d,"s":"abcd"}`, n) }

	run := func(b *testing.B, publish func(bus *PostgresBus, n int)) {
		var got atomic.Int64
		bus, err := newPostgresBus(PostgresOptions{ConnString: srv.ConnString()})
		if err != nil {
			b.Fatal(err)
		}
		defer bus.Close(context.Background())
		if err := bus.Start(context.Background(), func(Event) { got.Add(1) }); err != nil {
			b.Fatal(err)
		}
		// Fill the pool and create the table before timing.
		if err := bus.PublishBatch(context.Background(), []Event{{Type: "warm", Channel: "ch", Data: data(0)}}); err != nil {
			b.Fatal(err)
		}
		for got.Load() < 1 {
			time.Sleep(time.Millisecond)
		}
		got.Store(0)
		reads := bus.reads.Load()
		b.ResetTimer()
		start := time.Now()
		publish(bus, b.N)
		published := time.Since(start)
		for deadline := time.Now().Add(5 * time.Minute); got.Load() < int64(b.N); time.Sleep(100 * time.Microsecond) {
			if time.Now().After(deadline) {
				b.Fatalf("delivered %d of %d", got.Load(), b.N)
			}
		}
		elapsed := time.Since(start)
		b.StopTimer()
		b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
		b.ReportMetric(float64(b.N)/published.Seconds(), "published/s")
		b.ReportMetric(float64(bus.reads.Load()-reads)/float64(b.N), "reads/event")
	}

	for _, threads := range []int{1, 8} {
		b.Run(fmt.Sprintf("Publish/threads=%d", threads), func(b *testing.B) {
			run(b, func(bus *PostgresBus, n int) {
				var wg sync.WaitGroup
				for t := 0; t < threads; t++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for i := t; i < n; i += threads {
							if err := bus.Publish(context.Background(), Event{Type: "t", Channel: "ch", Data: data(i)}); err != nil {
								b.Error(err)
								return
							}
						}
					}()
				}
				wg.Wait()
			})
		})
	}
	for _, size := range []int{100, 1000} {
		b.Run(fmt.Sprintf("PublishBatch/size=%d", size), func(b *testing.B) {
			run(b, func(bus *PostgresBus, n int) {
				evs := make([]Event, 0, size)
				for i := 0; i < n; i++ {
					evs = append(evs, Event{Type: "t", Channel: "ch", Data: data(i)})
					if len(evs) == size || i == n-1 {
						if err := bus.PublishBatch(context.Background(), evs); err != nil {
							b.Fatal(err)
						}
						evs = evs[:0]
					}
				}
			})
		})
	}
	// The ceiling: the same batches with no listener reading them.
	b.Run("PublishBatch/size=1000/no-listener", func(b *testing.B) {
		bus, err := newPostgresBus(PostgresOptions{ConnString: srv.ConnString()})
		if err != nil {
			b.Fatal(err)
		}
		defer bus.Close(context.Background())
		evs := make([]Event, 1000)
		for i := range evs {
			evs[i] = Event{Type: "t", Channel: "ch", Data: data(i)}
		}
		if err := bus.PublishBatch(context.Background(), evs[:1]); err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		for done := 0; done < b.N; done += len(evs) {
			if err := bus.PublishBatch(context.Background(), evs[:min(len(evs), b.N-done)]); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	})
	// One transaction of n events written by the SQL function: the
	// listener's read and dispatch rate once the rows are there.
	b.Run("SQLTransaction", func(b *testing.B) {
		run(b, func(bus *PostgresBus, n int) {
			srv.Exec(b, `SELECT count(fraiseql_publish('ch', 't', jsonb_build_object('n', i, 's', 'abcd')))
				FROM generate_series(1, $1) i`, n)
		})
	})
}
