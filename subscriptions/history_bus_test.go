//go:build !mutate

package subscriptions

import (
	"fmt"
	"testing"
	"time"
)

// checkCatchUpBurst publishes a burst of 10,000 events in one batch through another
// executor on bus, lets e's bus receive all of it while subscription "a" (a queue of 8
// under OverflowCatchUp) is not read, then checks that "a" gets every event in order
// from the history and a live one after.
func checkCatchUpBurst(t *testing.T, e *Executor, bus BusConfig, within time.Duration) {
	t.Helper()
	const n = 10000
	evs := make([]Event, n)
	for i := range evs {
		evs[i] = Event{Type: "c", Channel: "users", Data: []byte(fmt.Sprintf(`{"n":%d,"tenant_id":"t"}`, i+1))}
	}
	publishBatchOn(t, bus, evs)
	// The client stalls until the whole burst was received from the bus.
	deadline := time.Now().Add(within)
	for e.bus.Stats().Received < n && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if st, _ := e.Stats("a"); st.Queued > 8 {
		t.Fatalf("queued %d", st.Queued)
	}
	waitUsersInOrder(t, e, "a", n)
	publishN(t, e, n+1, n+1)
	if f := waitFrames(t, e, "a", 1)[0]; f != frame("a", fmt.Sprintf(`{"users":{"n":%d}}`, n+1)) {
		t.Fatalf("live frame %s", f)
	}
	if m := e.Metrics(); m.CatchUps == 0 || m.EventsDropped != 0 {
		t.Fatalf("metrics %+v", m)
	}
}
