//go:build !mutate

// Positions, resume and catch-up on the Redis bus, against redis-server.

package subscriptions

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/fraiseql/fraiseql-subscriptions/internal/redistest"
	"github.com/redis/go-redis/v9"
)

func historyRedisExecutor(t *testing.T, url string, opts Options, stream string, maxLen int64) *Executor {
	t.Helper()
	opts.Bus = BusConfig{Kind: BusRedis, Redis: RedisOptions{URL: url, ConsumerGroup: "g", Stream: stream, MaxLen: maxLen, DialTimeout: 2 * time.Second}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e, err := NewExecutor(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close(context.Background()) })
	return e
}

func TestRedisResumeOnAnotherExecutor(t *testing.T) {
	url := redistest.Start(t).URL()
	a := historyRedisExecutor(t, url, Options{}, "s", 0)
	b := historyRedisExecutor(t, url, Options{}, "s", 0)
	registerWith(t, a, Registration{SubscriptionID: "twin", Positions: true})
	registerWith(t, a, Registration{SubscriptionID: "cut", Positions: true})
	publishN(t, a, 1, 20)
	read := waitFrames(t, a, "cut", 7) // n = 2..8; then the connection is cut
	a.Complete("cut")
	publishN(t, b, 21, 30) // events keep coming, from either executor
	registerWith(t, b, Registration{SubscriptionID: "resumed", After: framePosition(t, read[6])})
	publishN(t, a, 31, 40)
	twin := waitFrames(t, a, "twin", 39)
	sameFrames(t, waitFrames(t, b, "resumed", 39-7), "resumed", twin[7:], "twin")
	if !strings.HasPrefix(framePosition(t, twin[0]), "r") {
		t.Fatalf("position %s", framePosition(t, twin[0]))
	}
}

func TestRedisPositionsOfAnotherStreamOrEpochRefused(t *testing.T) {
	srv := redistest.Start(t)
	url := srv.URL()
	a := historyRedisExecutor(t, url, Options{}, "s1", 0)
	other := historyRedisExecutor(t, url, Options{}, "s2", 0)
	registerWith(t, other, Registration{SubscriptionID: "o", Positions: true})
	publishN(t, other, 2, 2)
	foreign := framePosition(t, waitFrames(t, other, "o", 1)[0])
	registerWith(t, a, Registration{SubscriptionID: "x", Positions: true})
	publishN(t, a, 2, 2)
	own := framePosition(t, waitFrames(t, a, "x", 1)[0])
	// The same id under another stream's epoch is still refused.
	forged := strings.SplitN(foreign, ":", 2)[0] + ":" + strings.SplitN(own, ":", 2)[1]
	for _, p := range []string{foreign, forged, "m0123:1"} {
		err := a.Register(Registration{ConnectionID: "c", SubscriptionID: "r", Query: `subscription { users { n } }`, TenantID: "t", After: p})
		if !errors.Is(err, ErrPositionInvalid) {
			t.Fatalf("after %s: %v", p, err)
		}
	}
	// A stream deleted and created again: a new epoch.
	cl := rawClientURL(t, url)
	if err := cl.Del(context.Background(), "s1").Err(); err != nil {
		t.Fatal(err)
	}
	c := historyRedisExecutor(t, url, Options{}, "s1", 0)
	err := c.Register(Registration{ConnectionID: "c", SubscriptionID: "r", Query: `subscription { users { n } }`, TenantID: "t", After: own})
	if !errors.Is(err, ErrPositionInvalid) {
		t.Fatalf("after a recreated stream: %v", err)
	}
}

func TestRedisTrimmedPositionExpires(t *testing.T) {
	url := redistest.Start(t).URL()
	e := historyRedisExecutor(t, url, Options{}, "s", 10) // MAXLEN ~ 10: whole nodes of 100 entries go
	registerWith(t, e, Registration{SubscriptionID: "a", Positions: true, Query: `subscription { users { n } }`})
	var frames []string
	for from := 1; from <= 1000; from += 50 {
		// The reader keeps up: MAXLEN trims whole nodes, and a reader more than a
		// node behind would lose what was trimmed before it read it.
		publishN(t, e, from, from+49)
		frames = append(frames, waitFrames(t, e, "a", 50)...)
	}
	err := e.Register(Registration{ConnectionID: "c", SubscriptionID: "r", Query: `subscription { users { n } }`, TenantID: "t", After: framePosition(t, frames[0])})
	var pe *PositionError
	if !errors.Is(err, ErrPositionExpired) || !errors.As(err, &pe) || pe.Code != "POSITION_EXPIRED" {
		t.Fatalf("got %v", err)
	}
	registerWith(t, e, Registration{SubscriptionID: "r", Query: `subscription { users { n } }`, After: framePosition(t, frames[998])})
	sameFrames(t, waitFrames(t, e, "r", 1), "r", frames[999:], "a")
}

func TestRedisCatchUpBurstThroughQueueOfEight(t *testing.T) {
	url := redistest.Start(t).URL()
	e := historyRedisExecutor(t, url, Options{QueueSize: 8, OnOverflow: OverflowCatchUp}, "s", 0)
	registerWith(t, e, Registration{SubscriptionID: "a", Query: `subscription { users { n } }`})
	checkCatchUpBurst(t, e, BusConfig{Kind: BusRedis, Redis: RedisOptions{URL: url, ConsumerGroup: "p", Stream: "s"}}, 30*time.Second)
}

func rawClientURL(t *testing.T, url string) *redis.Client {
	t.Helper()
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	cl := redis.NewClient(opts)
	t.Cleanup(func() { _ = cl.Close() })
	return cl
}

func TestRedisResumeSkipsLiveEventsItReplayed(t *testing.T) {
	url := redistest.Start(t).URL()
	other := historyRedisExecutor(t, url, Options{}, "s", 0)
	// Its reader is held: the stream runs ahead of what it dispatched.
	paused := historyRedisExecutor(t, url, Options{Paused: true}, "s", 0)
	registerWith(t, other, Registration{SubscriptionID: "twin", Positions: true, Query: `subscription { users { n } }`})
	publishN(t, other, 1, 10)
	twin := waitFrames(t, other, "twin", 10)
	registerWith(t, paused, Registration{SubscriptionID: "r", Query: `subscription { users { n } }`, After: framePosition(t, twin[4])})
	got := waitFrames(t, paused, "r", 5) // 6..10 from the stream, then it joins the live stream
	if err := paused.Resume(); err != nil {
		t.Fatal(err)
	}
	publishN(t, other, 11, 11) // the reader now dispatches 1..11: only 11 is new to it
	twin = append(twin, waitFrames(t, other, "twin", 1)...)
	got = append(got, waitFrames(t, paused, "r", 1)...)
	sameFrames(t, got, "r", twin[5:], "twin")
	if f, _ := paused.Next("r"); f != "" {
		t.Fatalf("one more frame: %s", f)
	}
}
