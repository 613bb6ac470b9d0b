//go:build !mutate

// These tests need Redis (miniredis) or a PostgreSQL cluster; the engine
// area of `make mutate` leaves them out to keep each mutant's run short,
// and the buses area runs them.

package subscriptions

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"

	"github.com/fraiseql/fraiseql-subscriptions/internal/pgtest"
)

func redisExecutor(t *testing.T, mr *miniredis.Miniredis) *Executor {
	t.Helper()
	e, err := NewExecutor(context.Background(), Options{Bus: BusConfig{Kind: BusRedis,
		Redis: RedisOptions{URL: redisURL(mr), ConsumerGroup: "exec", DialTimeout: time.Second}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close(context.Background()) })
	return e
}

func postgresExecutor(t *testing.T, srv *pgtest.Server) *Executor {
	t.Helper()
	e, err := NewExecutor(context.Background(), Options{Bus: BusConfig{Kind: BusPostgres,
		Postgres: PostgresOptions{ConnString: srv.ConnString(), PollInterval: 50 * time.Millisecond}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close(context.Background()) })
	return e
}

// waitMetric polls until get(e.Metrics()) reaches want; a bus delivers
// on its own goroutine.
func waitMetric(t *testing.T, e *Executor, name string, get func(Metrics) uint64, want uint64) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for get(e.Metrics()) != want {
		if time.Now().After(deadline) {
			t.Fatalf("%s = %d, want %d", name, get(e.Metrics()), want)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// nextWait waits for one frame of id.
func nextWait(t *testing.T, e *Executor, id string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	f, err := e.NextWait(ctx, id)
	if err != nil {
		t.Fatalf("NextWait(%s): %v", id, err)
	}
	return f
}

// checkReaderFaults runs both faults on an executor whose bus has a
// reader goroutine: a panic in dispatch (under the executor's locks, on
// the reader's goroutine) and a panic in the reader itself, outside
// deliver. Each is counted once in dispatch_errors, no event is lost or
// doubled, and the executor keeps working.
func checkReaderFaults(t *testing.T, e *Executor) {
	register(t, e, sub{id: "s"})
	dispatchErrors := func(m Metrics) uint64 { return m.DispatchErrors }

	if err := e.InjectFault(FaultDispatchPanic); err != nil {
		t.Fatal(err)
	}
	publish(t, e, "users", `{"id":1}`) // lost to the panic
	waitMetric(t, e, "dispatch_errors", dispatchErrors, 1)
	publish(t, e, "users", `{"id":2}`)
	if f := nextWait(t, e, "s"); f != frame("s", `{"users":{"id":2}}`) {
		t.Fatalf("after a panic in dispatch: %s", f)
	}

	if err := e.InjectFault(FaultBusReaderPanic); err != nil {
		t.Fatal(err)
	}
	publish(t, e, "users", `{"id":3}`) // read again after the reader restarts
	waitMetric(t, e, "dispatch_errors", dispatchErrors, 2)
	if f := nextWait(t, e, "s"); f != frame("s", `{"users":{"id":3}}`) {
		t.Fatalf("after a panic in the reader: %s", f)
	}
	publish(t, e, "users", `{"id":4}`)
	if f := nextWait(t, e, "s"); f != frame("s", `{"users":{"id":4}}`) {
		t.Fatalf("after a panic in the reader: %s", f)
	}
	// The reader can take a frame before the dispatching goroutine adds
	// its delivery to the counters: wait for them to settle.
	waitMetric(t, e, "events_delivered", func(m Metrics) uint64 { return m.EventsDelivered }, 3)
	m := e.Metrics()
	if m.EventsDelivered != 3 || m.BusReceived != 4 || m.EventsPublished != 4 {
		t.Fatalf("an event was lost or doubled: %+v", m)
	}
	checkExecutorWorks(t, e, "users", func() { publish(t, e, "users", `{"id":5}`) }, `{"users":{"id":5}}`)
}

func TestRedisReaderSurvivesPanics(t *testing.T) {
	mr := miniredis.RunT(t)
	checkReaderFaults(t, redisExecutor(t, mr))
}

func TestPostgresListenerSurvivesPanics(t *testing.T) {
	srv := pgtest.Start(t)
	checkReaderFaults(t, postgresExecutor(t, srv))
}

// A bus reader dispatches while limits change and subscriptions come and
// go; `go test -race` reports any unguarded access. The subscription that
// stays receives every event, in order.
func TestBusReaderRacesLimitsAndRegistry(t *testing.T) {
	mr := miniredis.RunT(t)
	e := redisExecutor(t, mr)
	register(t, e, sub{id: "stay", conn: "stay"})
	const events = 200
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Add(3)
	go func() {
		defer wg.Done()
		for i := 0; !stop.Load(); i++ {
			if i%2 == 0 {
				e.SetLimits(Limits{MaxDepth: 10 + i%5})
			} else if _, err := e.UpdateLimits(Limits{MaxFields: 100 + i%7}); err != nil {
				t.Error(err)
				return
			}
			_ = e.Limits()
		}
	}()
	go func() {
		defer wg.Done()
		for i := 0; !stop.Load(); i++ {
			id := fmt.Sprintf("tmp%d", i%10)
			e.Complete(id)
			if err := e.Register(Registration{ConnectionID: fmt.Sprintf("c%d", i%3), SubscriptionID: id,
				Query: "subscription { users { id } }"}); err != nil {
				t.Error(err)
				return
			}
			_, _, _ = e.DrainConnection(fmt.Sprintf("c%d", i%3), 0)
			_ = e.Metrics()
		}
	}()
	go func() {
		defer wg.Done()
		for i := 0; i < events; i++ {
			publish(t, e, "users", fmt.Sprintf(`{"id":%d}`, i))
		}
	}()
	for i := 0; i < events; i++ {
		if f, want := nextWait(t, e, "stay"), frame("stay", fmt.Sprintf(`{"users":{"id":%d}}`, i)); f != want {
			stop.Store(true)
			t.Fatalf("got %s, want %s", f, want)
		}
	}
	stop.Store(true)
	wg.Wait()
	if m := e.Metrics(); m.DispatchErrors != 0 || m.BusReceived != events {
		t.Fatalf("metrics %+v", m)
	}
}

// Close with an ended context does not wait for the server: the reader is
// stopped and the connections closed, and the group of a random instance
// id is left for the other executors' idle-group cleanup.
func TestCloseWithEndedContextSkipsServerWork(t *testing.T) {
	mr := miniredis.RunT(t)
	cl := rawClient(t, mr)
	for _, ended := range []bool{true, false} {
		e := redisExecutor(t, mr)
		before := len(groupNames(t, cl, defaultRedisStream))
		ctx, cancel := context.WithCancel(context.Background())
		if ended {
			cancel()
		}
		if err := e.Close(ctx); err != nil {
			t.Fatal(err)
		}
		cancel()
		want := before - 1 // the group is destroyed
		if ended {
			want = before
		}
		if after := len(groupNames(t, cl, defaultRedisStream)); after != want {
			t.Fatalf("ended=%v: %d groups, want %d", ended, after, want)
		}
		if err := e.Publish(context.Background(), Event{Channel: "users", Data: []byte(`{}`)}); err != ErrClosed {
			t.Fatalf("publish after close: %v", err)
		}
	}
}
