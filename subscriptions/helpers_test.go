package subscriptions

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	json "github.com/goccy/go-json"
)

// Helpers shared by the bus and batching tests, kept out of the bus test
// files, which the mutate build omits.

// collector records the events a bus delivers.
type collector struct {
	mu  sync.Mutex
	evs []Event
	// settle returns once the bus delivering to the collector has
	// delivered all it had (set by the helpers that start one): wait and
	// waitFor catch duplicates with it instead of waiting a while.
	settle func(t *testing.T)
}

func (c *collector) deliver(ev Event) {
	c.mu.Lock()
	c.evs = append(c.evs, ev)
	c.mu.Unlock()
}

func (c *collector) events() []Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Event(nil), c.evs...)
}

// reset forgets the events received so far.
func (c *collector) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.evs = nil
}

// wait waits until at least n events arrived, then until the bus has
// settled, to catch duplicates, and returns all of them.
func (c *collector) wait(t *testing.T, n int) []Event {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(c.events()) < n {
		if time.Now().After(deadline) {
			t.Fatalf("got %d events, want %d: %v", len(c.events()), n, dataOf(c.events()))
		}
		time.Sleep(5 * time.Millisecond) // poll interval
	}
	c.settled(t)
	return c.events()
}

// waitFor waits until n events have arrived, then until the bus has
// settled, to catch duplicates, and returns them.
func (c *collector) waitFor(t *testing.T, n int, timeout time.Duration) []Event {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if len(c.events()) >= n {
			break
		}
		time.Sleep(5 * time.Millisecond) // poll interval
	}
	c.settled(t)
	got := c.events()
	if len(got) != n {
		t.Fatalf("got %d events, want %d", len(got), n)
	}
	return got
}

func (c *collector) settled(t *testing.T) {
	t.Helper()
	if c.settle == nil {
		t.Fatal("collector without a bus that tells when it has delivered everything (set settle)")
	}
	c.settle(t)
}

func dataOf(evs []Event) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = string(ev.Data)
	}
	return out
}

func numEvent(n int) Event {
	return Event{Type: "created", Channel: "items", Data: json.RawMessage(fmt.Sprintf(`{"n":%d}`, n))}
}

func wantNums(t *testing.T, evs []Event, nums ...int) {
	t.Helper()
	want := make([]string, len(nums))
	for i, n := range nums {
		want[i] = fmt.Sprintf(`{"n":%d}`, n)
	}
	if got := dataOf(evs); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("events:\n got %v\nwant %v", got, want)
	}
}

// redisURL is the URL of a miniredis server.
func redisURL(mr *miniredis.Miniredis) string { return "redis://" + mr.Addr() }
