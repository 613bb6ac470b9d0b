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
	waitEntered(t, bus) // the lone publisher is on the bus at once, alone
	var rest []chan error
	for i := 1; i <= 5; i++ {
		rest = append(rest, publishAsync(g, numEvent(i)))
		waitQueued(t, g, i)
	}
	bus.gate <- struct{}{}
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	waitEntered(t, bus)
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
	waitEntered(t, bus)
	var batch []chan error
	for i := 1; i <= 3; i++ {
		batch = append(batch, publishAsync(g, numEvent(i)))
		waitQueued(t, g, i)
	}
	bus.gate <- struct{}{}
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	waitEntered(t, bus)
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
	waitEntered(t, bus)
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
	waitEntered(t, bus)
	b := publishAsync(g, numEvent(1))
	waitEntered(t, bus) // a second round trip starts while the first is in flight
	c := publishAsync(g, numEvent(2))
	d := publishAsync(g, numEvent(3))
	waitQueued(t, g, 2)
	bus.gate <- struct{}{}
	waitEntered(t, bus) // the first to finish takes both waiters
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
	waitEntered(t, bus)
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
	waitEntered(t, bus)
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

// waitEntered waits until a call reaches bus, failing the test rather than
// hanging when a regroup keeps the flush from starting.
func waitEntered(t *testing.T, bus *gateBus) {
	t.Helper()
	select {
	case <-bus.entered:
	case <-time.After(20 * time.Second): // a hang fails the test, well inside the driver's limit
		t.Fatal("no call reached the bus")
	}
}

// waitResults waits for the results of publishers that all succeed.
func waitResults(t *testing.T, results ...chan error) {
	t.Helper()
	for i, c := range results {
		if err := <-c; err != nil {
			t.Fatalf("publisher %d: %v", i, err)
		}
	}
}

// patientGroupCommit is a group commit whose regroups end only when the
// publishers they wait for arrive (or when durations, taken in turn for
// each flush of several events, says that flush lasted no time).
func patientGroupCommit(bus Bus, durations ...time.Duration) *groupCommit {
	g := newGroupCommit(bus)
	g.maxRegroup = time.Hour
	var mu sync.Mutex
	g.roundTrip = func(time.Time) time.Duration {
		mu.Lock()
		defer mu.Unlock()
		if len(durations) == 0 {
			return time.Hour
		}
		d := durations[0]
		durations = durations[1:]
		return d
	}
	return g
}

// startBatch publishes events from..to while a lone publisher's round trip
// is held, so that they go next as one batch, which it leaves in flight.
// It returns the batch's result channels.
func startBatch(t *testing.T, g *groupCommit, bus *gateBus, from, to int) []chan error {
	t.Helper()
	first := publishAsync(g, numEvent(from))
	waitEntered(t, bus)
	var batch []chan error
	for i := from + 1; i <= to; i++ {
		batch = append(batch, publishAsync(g, numEvent(i)))
		waitQueued(t, g, i-from)
	}
	bus.gate <- struct{}{}
	waitResults(t, first)
	waitEntered(t, bus)
	return batch
}

// A flush of a single event has no publishers to wait for: the drain ends
// at once, and the next publisher goes alone again.
func TestGroupCommitDrainOfOneEventEndsWithoutRegrouping(t *testing.T) {
	bus := newGateBus()
	g := patientGroupCommit(bus)
	batch := startBatch(t, g, bus, 0, 1)
	bus.gate <- struct{}{}
	waitResults(t, batch...)
	waitIdle(t, g)
	last := publishAsync(g, numEvent(2))
	waitEntered(t, bus)
	bus.gate <- struct{}{}
	waitResults(t, last)
	calls, accepted := bus.snapshot()
	if strings.Join(calls, " ") != "publish publish publish" {
		t.Fatalf("calls %v", calls)
	}
	wantNums(t, accepted, 0, 1, 2)
	waitIdle(t, g)
}

// A publisher wakes a regroup only when one waits for it: a wake-up left
// behind meanwhile would cut a later regroup short, were it left after that
// regroup's first look at the channel.
func TestGroupCommitQueueingWakesNoRegroupThatIsNotWaiting(t *testing.T) {
	bus := newGateBus()
	g := patientGroupCommit(bus)
	first := publishAsync(g, numEvent(0))
	waitEntered(t, bus)
	second := publishAsync(g, numEvent(1))
	waitQueued(t, g, 1)
	if n := len(g.arrived); n != 0 {
		t.Fatalf("%d wake-ups for no regroup", n)
	}
	bus.gate <- struct{}{}
	bus.gate <- struct{}{}
	waitResults(t, first, second)
	waitIdle(t, g)
}

// A regroup that finds as many publishers queued as it wants, queued while
// the batch was in flight, does not wait: the next batch goes at once.
func TestGroupCommitRegroupWithItsPublishersQueuedGoesAtOnce(t *testing.T) {
	bus := newGateBus()
	g := patientGroupCommit(bus)
	batch := startBatch(t, g, bus, 0, 2)
	next := []chan error{publishAsync(g, numEvent(3))}
	waitQueued(t, g, 1)
	next = append(next, publishAsync(g, numEvent(4)))
	waitQueued(t, g, 2)
	bus.gate <- struct{}{}
	waitResults(t, batch...)
	waitEntered(t, bus) // the regroup wants two, and two are there
	bus.gate <- struct{}{}
	waitResults(t, next...)
	calls, accepted := bus.snapshot()
	if strings.Join(calls, " ") != "publish batch:2 batch:2" {
		t.Fatalf("calls %v", calls)
	}
	wantNums(t, accepted, 0, 1, 2, 3, 4)
}

// The regroup's target is the size of the last batch, or one fewer than
// the previous target when that is more: after a batch of four, a batch of
// two (its regroup lasted no time) is followed by a wait for three.
func TestGroupCommitRegroupTargetDecreasesByOnePerFlush(t *testing.T) {
	bus := newGateBus()
	// The batch of four lasts no time: its regroup ends at once with
	// two queued. Every later flush lasts an hour.
	g := patientGroupCommit(bus, 0)
	four := startBatch(t, g, bus, 0, 4)
	two := []chan error{publishAsync(g, numEvent(5))}
	waitQueued(t, g, 1)
	two = append(two, publishAsync(g, numEvent(6)))
	waitQueued(t, g, 2)
	bus.gate <- struct{}{}
	waitResults(t, four...)
	waitEntered(t, bus)
	bus.gate <- struct{}{}
	waitResults(t, two...)
	// The regroup now waits for three (max(2, 4-1)): the first two queue.
	var three []chan error
	for i := 7; i <= 9; i++ {
		three = append(three, publishAsync(g, numEvent(i)))
		if i < 9 {
			waitQueued(t, g, i-6)
		}
	}
	waitEntered(t, bus)
	bus.gate <- struct{}{}
	waitResults(t, three...)
	calls, accepted := bus.snapshot()
	if strings.Join(calls, " ") != "publish batch:4 batch:2 batch:3" {
		t.Fatalf("calls %v", calls)
	}
	wantNums(t, accepted, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9)
}

// A panic in the queue's own code (here its round-trip measure) fails the
// publishers still queued and ends the drain: the next publisher goes
// alone, and the group commit is idle again.
func TestGroupCommitPanicWhileDrainingFailsTheQueuedAndEndsTheDrain(t *testing.T) {
	bus := newGateBus()
	g := newGroupCommit(bus)
	g.roundTrip = func(time.Time) time.Duration { panic("measure bug") }
	batch := startBatch(t, g, bus, 0, 2)
	queued := publishAsync(g, numEvent(3))
	waitQueued(t, g, 1)
	bus.gate <- struct{}{}
	waitResults(t, batch...)
	if err := <-queued; err == nil || !strings.Contains(err.Error(), "internal error while publishing (please report): measure bug") {
		t.Fatalf("queued publisher got %v", err)
	}
	waitIdle(t, g)
	last := publishAsync(g, numEvent(4))
	waitEntered(t, bus)
	bus.gate <- struct{}{}
	waitResults(t, last)
	calls, accepted := bus.snapshot()
	if strings.Join(calls, " ") != "publish batch:2 publish" {
		t.Fatalf("calls %v", calls)
	}
	wantNums(t, accepted, 0, 1, 2, 4)
	waitIdle(t, g)
}

// loneSurrogateEvent carries a lone surrogate escape, as Python's json
// encoder writes one: PublishBatch's strict decoding turns it into U+FFFD,
// while the calls for data from Python refuse it rather than change it.
func loneSurrogateEvent() Event {
	return Event{Type: "created", Channel: "items", Data: json.RawMessage(`{"n":"\ud800"}`)}
}

func TestPublishBatchDecodesStrictlyAndPublishBatchValidAsDataFromPython(t *testing.T) {
	e := newTestExecutor(t, Options{})
	register(t, e, sub{id: "s", query: "subscription { items { n } }"})
	if err := e.PublishBatch(context.Background(), []Event{loneSurrogateEvent()}); err != nil {
		t.Fatalf("PublishBatch: %v", err)
	}
	wantFrames(t, nextAll(t, e, "s"), frame("s", "{\"items\":{\"n\":\"\ufffd\"}}"))
	err := e.PublishBatchValid(context.Background(), []Event{numEvent(1), loneSurrogateEvent()})
	if err == nil || err.Error() != "event 1: "+loneSurrogateRefusal+` '\ud800'` || KindOf(err) != KindValue {
		t.Fatalf("PublishBatchValid: %v", err)
	}
	if err := e.PublishBatchValid(context.Background(), []Event{numEvent(2), numEvent(3)}); err != nil {
		t.Fatalf("PublishBatchValid: %v", err)
	}
	wantFrames(t, nextAll(t, e, "s"), frame("s", `{"items":{"n":2}}`), frame("s", `{"items":{"n":3}}`))
	if m := e.Metrics(); m.EventsPublished != 3 {
		t.Fatalf("published %d, want 3", m.EventsPublished)
	}
}

// PublishGathered gives each event its own result: the invalid ones fail
// alone, with Publish's error for them (PublishValid's, for a lone
// surrogate), and the others are published in order and counted.
func TestPublishGatheredGivesEachEventItsOwnResult(t *testing.T) {
	e := newTestExecutor(t, Options{})
	register(t, e, sub{id: "s", query: "subscription { items { n } }"})
	noChannel := numEvent(2)
	noChannel.Channel = ""
	errs := e.PublishGathered(context.Background(), []Event{numEvent(1), noChannel, loneSurrogateEvent(), numEvent(4)})
	if len(errs) != 4 || errs[0] != nil || errs[3] != nil {
		t.Fatalf("results %v", errs)
	}
	if errs[1] == nil || errs[1].Error() != "channel must not be empty" || KindOf(errs[1]) != KindValue {
		t.Fatalf("event without a channel: %v", errs[1])
	}
	if errs[2] == nil || errs[2].Error() != loneSurrogateRefusal+` '\ud800'` {
		t.Fatalf("lone surrogate: %v", errs[2])
	}
	wantFrames(t, nextAll(t, e, "s"), frame("s", `{"items":{"n":1}}`), frame("s", `{"items":{"n":4}}`))
	if m := e.Metrics(); m.EventsPublished != 2 {
		t.Fatalf("published %d, want 2", m.EventsPublished)
	}
	// Nothing valid: nothing is published, each event has its error.
	errs = e.PublishGathered(context.Background(), []Event{noChannel})
	if len(errs) != 1 || errs[0] == nil || errs[0].Error() != "channel must not be empty" {
		t.Fatalf("results %v", errs)
	}
	if m := e.Metrics(); m.EventsPublished != 2 {
		t.Fatalf("published %d, want 2", m.EventsPublished)
	}
}

// fakeBusExecutor is an executor on bus, with the group commit a
// distributed bus gets.
func fakeBusExecutor(bus Bus) *Executor {
	e := &Executor{bus: bus, commit: newGroupCommit(bus), reg: newRegistry()}
	lim := Limits{}.withDefaults()
	e.limits.Store(&lim)
	return e
}

// On a bus with a group commit, PublishGathered's round trip is counted
// as a group commit's flush, a batch over maxGroupCommit in the last
// size bucket, and the bus's per-event results go to their own events.
func TestPublishGatheredOnADistributedBus(t *testing.T) {
	bus := newGateBus()
	refused := errors.New("refused by the server")
	bus.result = func(evs []Event) error {
		errs := make([]error, len(evs))
		for i, ev := range evs {
			if string(ev.Data) == `{"n":2}` {
				errs[i] = refused
			}
		}
		return &BatchError{Errs: errs}
	}
	e := fakeBusExecutor(bus)
	if e.commit == nil {
		t.Fatal("no group commit")
	}
	noChannel := numEvent(1)
	noChannel.Channel = ""
	bus.gate <- struct{}{}
	errs := e.PublishGathered(context.Background(), []Event{numEvent(0), noChannel, numEvent(2), numEvent(3)})
	if len(errs) != 4 || errs[0] != nil || errs[1] == nil || errs[1].Error() != "channel must not be empty" ||
		!errors.Is(errs[2], refused) || errs[3] != nil {
		t.Fatalf("results %v", errs)
	}
	calls, accepted := bus.snapshot()
	if strings.Join(calls, " ") != "batch:3" {
		t.Fatalf("calls %v", calls)
	}
	wantNums(t, accepted, 0, 3)
	if m := e.Metrics(); m.EventsPublished != 2 {
		t.Fatalf("published %d, want 2", m.EventsPublished)
	}
	many := make([]Event, maxGroupCommit+1)
	for i := range many {
		many[i] = numEvent(10 + i)
	}
	bus.gate <- struct{}{}
	for i, err := range e.PublishGathered(context.Background(), many) {
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
	}
	s := e.GroupCommitStats()
	if s.Flushes != 2 || s.Events != 3+maxGroupCommit+1 || !slices.Equal(s.Sizes, []uint64{0, 0, 1, 0, 0, 0, 0, 1}) {
		t.Fatalf("stats %+v", s)
	}
	if m := e.Metrics(); m.EventsPublished != 2+maxGroupCommit+1 {
		t.Fatalf("published %d", m.EventsPublished)
	}
}
