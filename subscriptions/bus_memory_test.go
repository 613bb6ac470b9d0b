package subscriptions

import (
	"context"
	"errors"
	"testing"
)

// A closed memory bus refuses publishes with ErrClosed, one event or a
// batch, and counts none of them.
func TestMemoryBusClosedRefusesPublishes(t *testing.T) {
	b := NewMemoryBus()
	var got []Event
	if err := b.Start(context.Background(), func(ev Event) { got = append(got, ev) }); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(context.Background(), numEvent(1)); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(context.Background(), numEvent(2)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Publish after Close: %v", err)
	}
	if err := b.PublishBatch(context.Background(), []Event{numEvent(3)}); !errors.Is(err, ErrClosed) {
		t.Fatalf("PublishBatch after Close: %v", err)
	}
	if s := b.Stats(); len(got) != 1 || s.Published != 1 || s.Received != 1 {
		t.Fatalf("delivered %d, stats %+v", len(got), s)
	}
}

// An event that repeats the idempotency key of an event in the history is
// accepted and not delivered again, alone or in a batch; once the keyed
// event has left the history, its key is forgotten.
func TestMemoryBusIdempotencyKeys(t *testing.T) {
	ctx := context.Background()
	b := NewMemoryBus()
	b.setHistorySize(3)
	var got []Event
	if err := b.Start(ctx, func(ev Event) { got = append(got, ev) }); err != nil {
		t.Fatal(err)
	}
	keyed := func(n int, key string) Event {
		ev := numEvent(n)
		ev.IdempotencyKey = key
		return ev
	}
	publish := func(evs ...Event) {
		t.Helper()
		if err := b.PublishBatch(ctx, evs); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Publish(ctx, keyed(1, "a")); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(ctx, keyed(1, "a")); err != nil { // the retry
		t.Fatal(err)
	}
	publish(keyed(2, "b"), keyed(1, "a"), keyed(2, "b"), keyed(3, ""), keyed(3, ""))
	wantNums(t, got, 1, 2, 3, 3)
	// "a" (event 1) has left the history of 3; "b" (event 2) is the oldest kept.
	publish(keyed(2, "b"), keyed(4, "a"))
	wantNums(t, got, 1, 2, 3, 3, 4)
	if s := b.Stats(); s.Published != 9 || s.Received != 5 {
		t.Fatalf("stats %+v, want 9 published (repeats accepted), 5 received", s)
	}
}
