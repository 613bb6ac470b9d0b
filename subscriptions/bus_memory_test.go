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
