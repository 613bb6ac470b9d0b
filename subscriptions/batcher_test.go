package subscriptions

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	json "github.com/goccy/go-json"
)

// gateBus is a Bus whose publishes wait until the test opens the gate; it
// records the size of every call, in order, and the events it accepted.
type gateBus struct {
	mu       sync.Mutex
	calls    []string // "publish" or "batch:N"
	accepted []Event
	gate     chan struct{} // receives one token per call
	entered  chan struct{} // signalled when a call starts
	result   func(evs []Event) error
}

func newGateBus() *gateBus {
	return &gateBus{gate: make(chan struct{}, 100), entered: make(chan struct{}, 100)}
}

func (b *gateBus) Start(context.Context, func(Event)) error { return nil }
func (b *gateBus) Stats() BusStats                          { return BusStats{} }
func (b *gateBus) Close(context.Context) error              { return nil }

func (b *gateBus) Publish(ctx context.Context, ev Event) error {
	return b.call("publish", []Event{ev}, false)
}

func (b *gateBus) PublishBatch(ctx context.Context, evs []Event) error {
	return b.call(fmt.Sprintf("batch:%d", len(evs)), evs, true)
}

func (b *gateBus) call(name string, evs []Event, batch bool) error {
	b.entered <- struct{}{}
	<-b.gate
	var err error
	if b.result != nil {
		err = b.result(evs)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls = append(b.calls, name)
	for i, ev := range evs {
		if err == nil || (batch && batchResults(err, len(evs))[i] == nil) {
			b.accepted = append(b.accepted, ev)
		}
	}
	return err
}

func (b *gateBus) snapshot() ([]string, []Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.calls...), append([]Event(nil), b.accepted...)
}

// publishAsync publishes ev through g in a goroutine and returns its result channel.
func publishAsync(g *groupCommit, ev Event) chan error {
	out := make(chan error, 1)
	go func() { out <- g.publish(context.Background(), g.bus, ev) }()
	return out
}

// waitQueued waits until n publishers wait in g's queue.
func waitQueued(t *testing.T, g *groupCommit, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		g.mu.Lock()
		q := len(g.queue)
		g.mu.Unlock()
		if q == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d publishers queued, want %d", q, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// waitIdle waits until g has finished flushing.
func waitIdle(t *testing.T, g *groupCommit) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		g.mu.Lock()
		idle := g.flushes == 0 && len(g.queue) == 0
		g.mu.Unlock()
		if idle {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("group commit still flushing")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestGroupCommitLonePublisherGoesAloneThenWaitersShareOneBatch(t *testing.T) {
	bus := newGateBus()
	g := newGroupCommit(bus)
	g.maxFlush = 1
	first := publishAsync(g, numEvent(0))
	<-bus.entered // the lone publisher is on the bus at once, alone
	var rest []chan error
	for i := 1; i <= 5; i++ {
		rest = append(rest, publishAsync(g, numEvent(i)))
		waitQueued(t, g, i)
	}
	bus.gate <- struct{}{}
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	<-bus.entered
	bus.gate <- struct{}{}
	for _, c := range rest {
		if err := <-c; err != nil {
			t.Fatal(err)
		}
	}
	calls, accepted := bus.snapshot()
	if strings.Join(calls, " ") != "publish batch:5" {
		t.Fatalf("calls %v", calls)
	}
	wantNums(t, accepted, 0, 1, 2, 3, 4, 5)
	waitIdle(t, g)
}

func TestGroupCommitWaitsForThePublishersOfABatchToComeBack(t *testing.T) {
	bus := newGateBus()
	g := newGroupCommit(bus)
	g.maxRegroup = time.Minute // bounded by three round trips of the batch below
	// The batch of three took a slow round trip: the regroup after it may
	// last three of them, here the minute. Later ones are measured.
	var slow atomic.Bool
	slow.Store(true)
	g.roundTrip = func(start time.Time) time.Duration {
		if slow.CompareAndSwap(true, false) {
			return time.Hour
		}
		return time.Since(start)
	}
	first := publishAsync(g, numEvent(0))
	<-bus.entered
	var batch []chan error
	for i := 1; i <= 3; i++ {
		batch = append(batch, publishAsync(g, numEvent(i)))
		waitQueued(t, g, i)
	}
	bus.gate <- struct{}{}
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	<-bus.entered
	bus.gate <- struct{}{}
	for _, c := range batch {
		if err := <-c; err != nil {
			t.Fatal(err)
		}
	}
	// The three come back one by one: the first two wait for the third
	// instead of going alone.
	var next []chan error
	for i := 4; i <= 6; i++ {
		next = append(next, publishAsync(g, numEvent(i)))
		if i < 6 {
			waitQueued(t, g, i-3)
		}
	}
	<-bus.entered
	bus.gate <- struct{}{}
	for _, c := range next {
		if err := <-c; err != nil {
			t.Fatal(err)
		}
	}
	waitIdle(t, g)
	calls, accepted := bus.snapshot()
	if strings.Join(calls, " ") != "publish batch:3 batch:3" {
		t.Fatalf("calls %v", calls)
	}
	wantNums(t, accepted, 0, 1, 2, 3, 4, 5, 6)
	s := (&Executor{commit: g}).GroupCommitStats()
	if s.Flushes != 3 || s.Events != 7 || !slices.Equal(s.Sizes, []uint64{1, 0, 2, 0, 0, 0, 0, 0}) ||
		!slices.Equal(s.SizeBounds, []int{1, 2, 4, 8, 16, 64, 256, 1000}) {
		t.Fatalf("stats %+v", s)
	}
}

func TestGroupCommitRunsUpToMaxFlushesAtOnce(t *testing.T) {
	bus := newGateBus()
	g := newGroupCommit(bus)
	g.maxFlush = 2
	a := publishAsync(g, numEvent(0))
	<-bus.entered
	b := publishAsync(g, numEvent(1))
	<-bus.entered // a second round trip starts while the first is in flight
	c := publishAsync(g, numEvent(2))
	d := publishAsync(g, numEvent(3))
	waitQueued(t, g, 2)
	bus.gate <- struct{}{}
	<-bus.entered // the first to finish takes both waiters
	bus.gate <- struct{}{}
	bus.gate <- struct{}{}
	for _, ch := range []chan error{a, b, c, d} {
		if err := <-ch; err != nil {
			t.Fatal(err)
		}
	}
	calls, accepted := bus.snapshot()
	slices.Sort(calls)
	if strings.Join(calls, " ") != "batch:2 publish publish" || len(accepted) != 4 {
		t.Fatalf("calls %v, accepted %v", calls, dataOf(accepted))
	}
	waitIdle(t, g)
}

func TestGroupCommitReportsEachPublisherItsOwnResult(t *testing.T) {
	bus := newGateBus()
	refused := errors.New("refused by the server")
	bus.result = func(evs []Event) error {
		if len(evs) == 1 {
			return nil
		}
		errs := make([]error, len(evs))
		for i, ev := range evs {
			if string(ev.Data) == `{"n":2}` || string(ev.Data) == `{"n":4}` {
				errs[i] = refused
			}
		}
		return &BatchError{Errs: errs}
	}
	g := newGroupCommit(bus)
	g.maxFlush = 1
	first := publishAsync(g, numEvent(0))
	<-bus.entered
	results := map[int]chan error{}
	for i := 1; i <= 4; i++ {
		results[i] = publishAsync(g, numEvent(i))
		waitQueued(t, g, i)
	}
	bus.gate <- struct{}{}
	bus.gate <- struct{}{}
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 4; i++ {
		err := <-results[i]
		if (i == 2 || i == 4) != errors.Is(err, refused) {
			t.Fatalf("publisher %d got %v", i, err)
		}
	}
	_, accepted := bus.snapshot()
	wantNums(t, accepted, 0, 1, 3)
}

func TestGroupCommitFailedBatchFailsEveryPublisher(t *testing.T) {
	bus := newGateBus()
	down := errors.New("connection refused")
	bus.result = func(evs []Event) error {
		if len(evs) > 1 {
			return down
		}
		return nil
	}
	g := newGroupCommit(bus)
	g.maxFlush = 1
	first := publishAsync(g, numEvent(0))
	<-bus.entered
	var rest []chan error
	for i := 1; i <= 3; i++ {
		rest = append(rest, publishAsync(g, numEvent(i)))
		waitQueued(t, g, i)
	}
	bus.gate <- struct{}{}
	bus.gate <- struct{}{}
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	for i, c := range rest {
		if err := <-c; !errors.Is(err, down) {
			t.Fatalf("publisher %d got %v", i+1, err)
		}
	}
}

// panicBus panics in every publish.
type panicBus struct{ gateBus }

func (*panicBus) Publish(context.Context, Event) error        { panic("bus bug") }
func (*panicBus) PublishBatch(context.Context, []Event) error { panic("bus bug") }

func TestGroupCommitPanicInTheBusBecomesAnError(t *testing.T) {
	g := newGroupCommit(&panicBus{})
	err := g.publish(context.Background(), g.bus, numEvent(1))
	if err == nil || !strings.Contains(err.Error(), "bus bug") {
		t.Fatalf("got %v", err)
	}
	waitIdle(t, g)
}

// slowBus accepts everything after a short pause, like a round trip.
type slowBus struct {
	mu      sync.Mutex
	evs     []Event
	batches int
}

func (b *slowBus) Start(context.Context, func(Event)) error { return nil }
func (b *slowBus) Stats() BusStats                          { return BusStats{} }
func (b *slowBus) Close(context.Context) error              { return nil }
func (b *slowBus) Publish(ctx context.Context, ev Event) error {
	return b.PublishBatch(ctx, []Event{ev})
}

func (b *slowBus) PublishBatch(_ context.Context, evs []Event) error {
	time.Sleep(100 * time.Microsecond)
	b.mu.Lock()
	b.evs = append(b.evs, evs...)
	b.batches++
	b.mu.Unlock()
	return nil
}

func TestGroupCommitKeepsEachPublishersOrderExactlyOnce(t *testing.T) {
	bus := &slowBus{}
	g := newGroupCommit(bus)
	const threads, per = 8, 2000
	var wg sync.WaitGroup
	for th := range threads {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range per {
				ev := Event{Type: "t", Channel: "c", Data: json.RawMessage(fmt.Sprintf(`{"th":%d,"n":%d}`, th, i))}
				if err := g.publish(context.Background(), bus, ev); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	next := make([]int, threads)
	for _, ev := range bus.evs {
		var v struct{ Th, N int }
		if err := json.Unmarshal(ev.Data, &v); err != nil {
			t.Fatal(err)
		}
		if v.N != next[v.Th] {
			t.Fatalf("thread %d: event %d after %d", v.Th, v.N, next[v.Th]-1)
		}
		next[v.Th]++
	}
	for th, n := range next {
		if n != per {
			t.Fatalf("thread %d: %d events arrived, want %d", th, n, per)
		}
	}
	if bus.batches >= threads*per {
		t.Fatalf("no round trip was shared: %d calls for %d events", bus.batches, threads*per)
	}
}

func TestBatchResults(t *testing.T) {
	e := errors.New("x")
	if got := batchResults(nil, 2); got[0] != nil || got[1] != nil {
		t.Fatalf("nil: %v", got)
	}
	if got := batchResults(e, 2); got[0] != e || got[1] != e {
		t.Fatalf("whole: %v", got)
	}
	be := &BatchError{Errs: []error{nil, e}}
	if got := batchResults(be, 2); got[0] != nil || got[1] != e {
		t.Fatalf("per event: %v", got)
	}
	if be.Error() != "1 of 2 events were not published; event 1: x" || !errors.Is(be, e) {
		t.Fatalf("message %q", be.Error())
	}
}

func TestMemoryPublishBatchDispatchesInOrder(t *testing.T) {
	e, err := NewExecutor(context.Background(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(context.Background())
	if err := e.Register(Registration{ConnectionID: "c", SubscriptionID: "s", Query: "subscription { items { n } }"}); err != nil {
		t.Fatal(err)
	}
	if err := e.PublishBatch(context.Background(), []Event{numEvent(1), numEvent(2), numEvent(3)}); err != nil {
		t.Fatal(err)
	}
	frames, n, _ := e.DrainConnection("c", 0)
	want := `{"type":"next","id":"s","payload":{"data":{"items":{"n":1}}}}` + "\n" +
		`{"type":"next","id":"s","payload":{"data":{"items":{"n":2}}}}` + "\n" +
		`{"type":"next","id":"s","payload":{"data":{"items":{"n":3}}}}`
	if n != 3 || frames != want {
		t.Fatalf("got %d frames:\n%s", n, frames)
	}
	if m := e.Metrics(); m.EventsPublished != 3 {
		t.Fatalf("published %d", m.EventsPublished)
	}
}

func TestPublishBatchInvalidEventNamesItsIndexAndPublishesNothing(t *testing.T) {
	e, err := NewExecutor(context.Background(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(context.Background())
	_ = e.Register(Registration{ConnectionID: "c", SubscriptionID: "s", Query: "subscription { items { n } }"})
	bad := numEvent(2)
	bad.Channel = ""
	err = e.PublishBatch(context.Background(), []Event{numEvent(1), bad, numEvent(3)})
	if err == nil || err.Error() != "event 1: channel must not be empty" || KindOf(err) != KindValue {
		t.Fatalf("got %v", err)
	}
	notObject := Event{Type: "t", Channel: "items", Data: json.RawMessage(`[1]`)}
	err = e.PublishBatch(context.Background(), []Event{notObject})
	if err == nil || err.Error() != "event 0: event data must be a JSON object, got array" || KindOf(err) != KindType {
		t.Fatalf("got %v", err)
	}
	if _, n, _ := e.DrainConnection("c", 0); n != 0 {
		t.Fatalf("%d events were dispatched", n)
	}
}

// A BatchError names the first event that failed, however many follow it.
func TestBatchErrorNamesTheFirstFailure(t *testing.T) {
	first, later := errors.New("first"), errors.New("later")
	be := &BatchError{Errs: []error{first, nil, later}}
	if got, want := be.Error(), "2 of 3 events were not published; event 0: first"; got != want {
		t.Fatalf("message %q, want %q", got, want)
	}
	if got, want := (&BatchError{Errs: []error{nil, nil}}).Error(), "all 2 events of the batch were published"; got != want {
		t.Fatalf("message %q, want %q", got, want)
	}
}
