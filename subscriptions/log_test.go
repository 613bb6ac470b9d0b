package subscriptions

import (
	"context"
	"testing"
	"testing/synctest"
)

// Wait on an empty sink blocks until a record arrives, then returns it;
// one that nothing reaches returns nothing when its context ends.
func TestLogSinkWaitBlocksUntilARecord(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := NewLogSink(4)
		got := make(chan []LogRecord, 1)
		go func() {
			recs, _ := s.Wait(context.Background())
			got <- recs
		}()
		synctest.Wait() // the reader is blocked in Wait
		select {
		case recs := <-got:
			t.Fatalf("Wait on an empty sink returned %+v", recs)
		default:
		}
		s.Log(LogWarning, "bus", "lost the connection")
		if recs := <-got; len(recs) != 1 || recs[0].Msg != "lost the connection" || recs[0].Level != LogWarning || recs[0].Name != "bus" {
			t.Fatalf("Wait returned %+v", recs)
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if recs, dropped := s.Wait(ctx); recs != nil || dropped != 0 {
			t.Fatalf("Wait after the context ended: %+v, %d dropped", recs, dropped)
		}
	})
}
