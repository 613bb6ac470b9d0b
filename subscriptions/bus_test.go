package subscriptions

import (
	"errors"
	"slices"
	"testing"
	"time"
)

// A delivery gate delivers until it is stopped, then never again, and
// tells its reader which events it delivered.
func TestDeliveryGateDeliversUntilStopped(t *testing.T) {
	var g deliveryGate
	var got []Event
	deliver := func(ev Event) { got = append(got, ev) }
	if !g.deliver(deliver, numEvent(1)) {
		t.Fatal("an open gate did not deliver")
	}
	g.stop()
	if g.deliver(deliver, numEvent(2)) {
		t.Fatal("a stopped gate reported a delivery")
	}
	wantNums(t, got, 1)
}

// receivedAt counts the event and its lag in milliseconds; a publication
// stamped later than now (another host's clock) reads as no lag.
func TestBusCountersLag(t *testing.T) {
	var c busCounters
	c.receivedAt(time.Now().Add(-time.Hour))
	s := c.Stats()
	if hour := float64(time.Hour / time.Millisecond); s.Received != 1 || s.LagMillis < hour || s.LagMillis >= 2*hour {
		t.Fatalf("an event an hour old: %+v", s)
	}
	c.receivedAt(time.Now().Add(time.Hour))
	if s := c.Stats(); s.Received != 2 || s.LagMillis != 0 {
		t.Fatalf("an event from the future: %+v", s)
	}
}

// armReaderPanic arms the panic the reader takes before its next event.
func TestBusCountersArmReaderPanic(t *testing.T) {
	var c busCounters
	if c.panicNext.Load() {
		t.Fatal("armed from the start")
	}
	c.armReaderPanic()
	if !c.panicNext.CompareAndSwap(true, false) {
		t.Fatal("armReaderPanic did not arm the reader's panic")
	}
}

// BatchError.Unwrap gives each distinct failure once.
func TestBatchErrorUnwrapsEachFailureOnce(t *testing.T) {
	down, refused := errors.New("down"), errors.New("refused")
	be := &BatchError{Errs: []error{down, nil, refused, down, errors.New("refused")}}
	if got := be.Unwrap(); !slices.Equal(got, []error{down, refused}) {
		t.Fatalf("unwrapped %v", got)
	}
	if got := (&BatchError{Errs: []error{nil}}).Unwrap(); len(got) != 0 {
		t.Fatalf("unwrapped %v", got)
	}
}
