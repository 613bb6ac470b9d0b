//go:build !mutate

package subscriptions

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"

	"github.com/fraiseql/fraiseql-subscriptions/internal/pgtest"
)

// pausedBuses are the buses that can hold delivery: each test runs on both.
var pausedBuses = map[string]func(t *testing.T, instance string) BusConfig{
	"Postgres": func(t *testing.T, instance string) BusConfig {
		srv := pgtest.Start(t)
		return BusConfig{Kind: BusPostgres, Postgres: PostgresOptions{ConnString: srv.ConnString(), InstanceID: instance}}
	},
	"Redis": func(t *testing.T, instance string) BusConfig {
		mr := miniredis.RunT(t)
		return BusConfig{Kind: BusRedis, Redis: RedisOptions{URL: redisURL(mr), ConsumerGroup: "app", InstanceID: instance}}
	},
}

// withInstance returns cfg with another instance id ("" for a random one).
func withInstance(cfg BusConfig, instance string) BusConfig {
	cfg.Postgres.InstanceID = instance
	cfg.Redis.InstanceID = instance
	return cfg
}

// publishWhileDown starts instance "api-1" once (so that its position is
// stored), closes it, and publishes events from to to-1 from another
// executor meanwhile.
func publishWhileDown(t *testing.T, cfg BusConfig, from, to int) {
	t.Helper()
	first := newTestExecutor(t, Options{Bus: cfg})
	if err := first.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	publisher := newTestExecutor(t, Options{Bus: withInstance(cfg, "")})
	for n := from; n < to; n++ {
		if err := publisher.Publish(context.Background(), numEvent(n)); err != nil {
			t.Fatal(err)
		}
	}
	if err := publisher.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// frames reads n frames of subscription id, then checks that no other
// comes for a moment (a duplicate would).
func frames(t *testing.T, e *Executor, id string, n int) []string {
	t.Helper()
	var got []string
	deadline := time.Now().Add(10 * time.Second)
	for len(got) < n && time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		f, err := e.NextWait(ctx, id)
		cancel()
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			t.Fatal(err)
		}
		if f != "" {
			got = append(got, f)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if f, err := e.NextWait(ctx, id); f != "" || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("after %d frames: unexpected %q, %v", len(got), f, err)
	}
	return got
}

func itemFrames(id string, nums ...int) []string {
	out := make([]string, len(nums))
	for i, n := range nums {
		out[i] = fmt.Sprintf(`{"type":"next","id":%q,"payload":{"data":{"items":{"n":%d}}}}`, id, n)
	}
	return out
}

func seq(from, to int) []int {
	var out []int
	for n := from; n < to; n++ {
		out = append(out, n)
	}
	return out
}

func checkFrames(t *testing.T, got, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d frames, want %d:\n%q", len(got), len(want), got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("frame %d: got %s, want %s", i, got[i], want[i])
		}
	}
}

// The events committed while an instance was down reach the subscription
// registered before Resume, once and in order, followed by the ones
// published while paused and after.
func TestPausedResumeDeliversBacklogToSubscriptions(t *testing.T) {
	for name, bus := range pausedBuses {
		t.Run(name, func(t *testing.T) {
			cfg := bus(t, "api-1")
			publishWhileDown(t, cfg, 0, 10)

			e := newTestExecutor(t, Options{Bus: cfg, Paused: true})
			// Published while paused: accepted, not delivered.
			if err := e.Publish(context.Background(), numEvent(10)); err != nil {
				t.Fatal(err)
			}
			time.Sleep(200 * time.Millisecond)
			if st := e.bus.Stats(); st.Published != 1 || st.Received != 0 {
				t.Fatalf("while paused: %+v", st)
			}
			if err := e.Register(Registration{ConnectionID: "c", SubscriptionID: "s", Query: "subscription { items { n } }"}); err != nil {
				t.Fatal(err)
			}
			for range 2 { // idempotent
				if err := e.Resume(); err != nil {
					t.Fatal(err)
				}
			}
			if err := e.Publish(context.Background(), numEvent(11)); err != nil {
				t.Fatal(err)
			}
			checkFrames(t, frames(t, e, "s", 12), itemFrames("s", seq(0, 12)...))
			if got := e.bus.Stats().Received; got != 12 {
				t.Fatalf("bus received %d, want 12", got)
			}
			if err := e.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
			if err := e.Resume(); !errors.Is(err, ErrClosed) {
				t.Fatalf("Resume after Close: %v", err)
			}

			// Restarted again, paused, with nothing new: nothing twice.
			again := newTestExecutor(t, Options{Bus: cfg, Paused: true})
			if err := again.Register(Registration{ConnectionID: "c", SubscriptionID: "s", Query: "subscription { items { n } }"}); err != nil {
				t.Fatal(err)
			}
			if err := again.Resume(); err != nil {
				t.Fatal(err)
			}
			if err := again.Publish(context.Background(), numEvent(12)); err != nil {
				t.Fatal(err)
			}
			checkFrames(t, frames(t, again, "s", 1), itemFrames("s", 12))
		})
	}
}

// Close while paused returns without waiting for a resume, and takes
// nothing off the bus: a later start still delivers the whole backlog.
func TestPausedCloseReturnsPromptlyAndKeepsBacklog(t *testing.T) {
	for name, bus := range pausedBuses {
		t.Run(name, func(t *testing.T) {
			cfg := bus(t, "api-1")
			publishWhileDown(t, cfg, 0, 5)

			e := newTestExecutor(t, Options{Bus: cfg, Paused: true})
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := e.Close(ctx); err != nil {
				t.Fatal(err)
			}
			if ctx.Err() != nil {
				t.Fatal("Close while paused waited for its deadline")
			}
			if got := e.bus.Stats().Received; got != 0 {
				t.Fatalf("closed while paused, the bus received %d events", got)
			}

			next := newTestExecutor(t, Options{Bus: cfg, Paused: true})
			if err := next.Register(Registration{ConnectionID: "c", SubscriptionID: "s", Query: "subscription { items { n } }"}); err != nil {
				t.Fatal(err)
			}
			if err := next.Resume(); err != nil {
				t.Fatal(err)
			}
			checkFrames(t, frames(t, next, "s", 5), itemFrames("s", seq(0, 5)...))
		})
	}
}

// Without an instance id, a paused executor still holds what is published
// after its start.
func TestPausedWithoutInstanceHoldsEventsSinceStart(t *testing.T) {
	for name, bus := range pausedBuses {
		t.Run(name, func(t *testing.T) {
			e := newTestExecutor(t, Options{Bus: bus(t, ""), Paused: true})
			for n := range 3 {
				if err := e.Publish(context.Background(), numEvent(n)); err != nil {
					t.Fatal(err)
				}
			}
			if err := e.Register(Registration{ConnectionID: "c", SubscriptionID: "s", Query: "subscription { items { n } }"}); err != nil {
				t.Fatal(err)
			}
			if err := e.Resume(); err != nil {
				t.Fatal(err)
			}
			checkFrames(t, frames(t, e, "s", 3), itemFrames("s", 0, 1, 2))
		})
	}
}

func TestPausedNeedsDistributedBus(t *testing.T) {
	_, err := NewExecutor(context.Background(), Options{Paused: true})
	if err == nil || err.Error() != "paused needs a Redis or PostgreSQL bus" || KindOf(err) != KindValue {
		t.Fatalf("got %v", err)
	}
	// Resume on an executor that is not paused does nothing.
	e := newTestExecutor(t, Options{})
	if err := e.Resume(); err != nil {
		t.Fatal(err)
	}
}
