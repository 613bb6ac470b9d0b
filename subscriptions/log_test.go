package subscriptions

import (
	"context"
	"strconv"
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

// A sink keeps exactly its size: the record past it drops the oldest and
// counts it. A size of 0 or below means DefaultLogSinkSize, and 1 is a size.
func TestLogSinkKeepsItsSizeAndDropsTheOldest(t *testing.T) {
	logN := func(s *LogSink, n int) {
		for i := range n {
			s.Log(LogInfo, "t", strconv.Itoa(i))
		}
	}
	for _, tt := range []struct {
		size, keep, logged int
		first              string
		dropped            uint64
	}{
		{1, 1, 1, "0", 0},
		{1, 1, 2, "1", 1},
		{2, 2, 2, "0", 0},
		{2, 2, 3, "1", 1},
		{2, 2, 5, "3", 3},
		{0, DefaultLogSinkSize, DefaultLogSinkSize, "0", 0},
		{0, DefaultLogSinkSize, DefaultLogSinkSize + 1, "1", 1},
		{-1, DefaultLogSinkSize, DefaultLogSinkSize + 1, "1", 1},
	} {
		s := NewLogSink(tt.size)
		logN(s, tt.logged)
		recs, dropped := s.Wait(context.Background())
		if len(recs) != tt.keep || dropped != tt.dropped || recs[0].Msg != tt.first ||
			recs[len(recs)-1].Msg != strconv.Itoa(tt.logged-1) {
			t.Errorf("size %d, %d logged: %d kept (first %q), %d dropped; want %d (first %q), %d",
				tt.size, tt.logged, len(recs), recs[0].Msg, dropped, tt.keep, tt.first, tt.dropped)
		}
	}
}
