package subscriptions

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	json "github.com/goccy/go-json"
)

// framePosition returns the position a "next" frame carries, "" if none.
func framePosition(t *testing.T, frame string) string {
	t.Helper()
	var f struct {
		Payload struct {
			Extensions struct {
				Position string `json:"position"`
			} `json:"extensions"`
		} `json:"payload"`
	}
	if err := json.Unmarshal([]byte(frame), &f); err != nil {
		t.Fatalf("frame %q: %v", frame, err)
	}
	return f.Payload.Extensions.Position
}

// sameFrames checks that got are want with the subscription id swapped.
func sameFrames(t *testing.T, got []string, gotID string, want []string, wantID string) {
	t.Helper()
	swapped := make([]string, len(want))
	for i, f := range want {
		swapped[i] = strings.Replace(f, `"id":"`+wantID+`"`, `"id":"`+gotID+`"`, 1)
	}
	if strings.Join(got, "\n") != strings.Join(swapped, "\n") {
		t.Fatalf("frames differ:\n got %d %.400q\nwant %d %.400q", len(got), got, len(swapped), swapped)
	}
}

func registerWith(t *testing.T, e *Executor, r Registration) {
	t.Helper()
	if r.ConnectionID == "" {
		r.ConnectionID = "c"
	}
	if r.Query == "" {
		r.Query = `subscription { users(where: {n: {gt: 1}}) { n } }`
	}
	if r.TenantID == "" {
		r.TenantID = "t"
	}
	if err := e.Register(r); err != nil {
		t.Fatalf("register %s: %v", r.SubscriptionID, err)
	}
}

func publishN(t *testing.T, e *Executor, from, to int) {
	t.Helper()
	for i := from; i <= to; i++ {
		publish(t, e, "users", fmt.Sprintf(`{"n":%d,"tenant_id":"t"}`, i))
	}
}

// waitFrames reads frames of id until it has n of them.
func waitFrames(t *testing.T, e *Executor, id string, n int) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30e9)
	defer cancel()
	var out []string
	for len(out) < n {
		f, err := e.NextWait(ctx, id)
		if err != nil {
			t.Fatalf("after %d of %d frames: %v", len(out), n, err)
		}
		out = append(out, f)
	}
	return out
}

func TestPositionsOnlyWhenAsked(t *testing.T) {
	e := newTestExecutor(t, Options{})
	registerWith(t, e, Registration{SubscriptionID: "plain", TenantID: "t"})
	registerWith(t, e, Registration{SubscriptionID: "pos", TenantID: "t", Positions: true})
	publishN(t, e, 1, 3)
	plain := nextAll(t, e, "plain")
	wantFrames(t, plain, frame("plain", `{"users":{"n":2}}`), frame("plain", `{"users":{"n":3}}`))
	pos := nextAll(t, e, "pos")
	if len(pos) != 2 {
		t.Fatalf("got %v", pos)
	}
	for i, f := range pos {
		p := framePosition(t, f)
		want := fmt.Sprintf(`{"type":"next","id":"pos","payload":{"data":{"users":{"n":%d}},"extensions":{"position":"%s"}}}`, i+2, p)
		if f != want || !strings.HasPrefix(p, "m") {
			t.Fatalf("frame %s, want %s", f, want)
		}
	}
}

func TestResumeReplaysWhatLiveWouldHaveSentThenLive(t *testing.T) {
	e := newTestExecutor(t, Options{})
	registerWith(t, e, Registration{SubscriptionID: "twin", TenantID: "t", Positions: true})
	registerWith(t, e, Registration{SubscriptionID: "a", TenantID: "t", Positions: true})
	// Another tenant's events and those the filter refuses must not come back.
	publishN(t, e, 1, 5)
	publish(t, e, "users", `{"n":50,"tenant_id":"other"}`)
	publishN(t, e, 6, 8)
	got := nextAll(t, e, "a")[:3] // n = 2, 3, 4 read; the connection is cut
	e.Complete("a")
	publishN(t, e, 9, 10)
	registerWith(t, e, Registration{SubscriptionID: "b", TenantID: "t", After: framePosition(t, got[2])})
	publishN(t, e, 11, 12)
	twin := nextAll(t, e, "twin")
	resumed := waitFrames(t, e, "b", len(twin)-3)
	sameFrames(t, resumed, "b", twin[3:], "twin")
	m := e.Metrics()
	if m.Resumes != 1 || m.EventsReplayed == 0 {
		t.Fatalf("metrics %+v", m)
	}
}

// A replay applies the executor's row filter option as live dispatch does.
func TestResumeAppliesTheRowFilterOption(t *testing.T) {
	for _, opts := range []Options{{RowFilterField: "owner_id"}, {NoRowFilter: true}} {
		e := newTestExecutor(t, opts)
		registerWith(t, e, Registration{SubscriptionID: "twin", TenantID: "t", UserID: "u", Positions: true})
		registerWith(t, e, Registration{SubscriptionID: "a", TenantID: "t", UserID: "u", Positions: true})
		publish(t, e, "users", `{"n":2,"tenant_id":"t"}`)
		first := nextAll(t, e, "a")
		e.Complete("a")
		publish(t, e, "users", `{"n":3,"tenant_id":"t","owner_id":"someone else","user_id":"u"}`)
		publish(t, e, "users", `{"n":4,"tenant_id":"t","owner_id":"u","user_id":"someone else"}`)
		registerWith(t, e, Registration{SubscriptionID: "b", TenantID: "t", UserID: "u", After: framePosition(t, first[0])})
		twin := nextAll(t, e, "twin")
		if want := map[bool]int{true: 3, false: 2}[opts.NoRowFilter]; len(twin) != want {
			t.Fatalf("%+v: live got %d frames, want %d: %q", opts, len(twin), want, twin)
		}
		sameFrames(t, waitFrames(t, e, "b", len(twin)-1), "b", twin[1:], "twin")
	}
}

func TestResumeRefusesForeignAndExpiredPositions(t *testing.T) {
	e := newTestExecutor(t, Options{HistorySize: 4})
	other := newTestExecutor(t, Options{})
	registerWith(t, other, Registration{SubscriptionID: "o", TenantID: "t", Positions: true})
	registerWith(t, e, Registration{SubscriptionID: "a", TenantID: "t", Positions: true})
	publishN(t, other, 2, 2)
	publishN(t, e, 2, 10)
	foreign := framePosition(t, nextAll(t, other, "o")[0])
	frames := nextAll(t, e, "a")
	for _, c := range []struct {
		after string
		want  error
	}{
		{foreign, ErrPositionInvalid},
		{"garbage", ErrPositionInvalid},
		{strings.SplitN(framePosition(t, frames[0]), ":", 2)[0] + ":999", ErrPositionInvalid},
		{framePosition(t, frames[0]), ErrPositionExpired},
	} {
		err := e.Register(Registration{ConnectionID: "c", SubscriptionID: "r", Query: `subscription { users { n } }`, TenantID: "t", After: c.after})
		var pe *PositionError
		if !errors.Is(err, c.want) || !errors.As(err, &pe) || pe.Code != c.want.Error() {
			t.Fatalf("after %q: got %v, want %v", c.after, err, c.want)
		}
	}
	// The newest positions still resume, the last event's too (":999" is
	// refused as after it): nothing to replay, and the next event comes live.
	registerWith(t, e, Registration{SubscriptionID: "r", TenantID: "t", After: framePosition(t, frames[len(frames)-2])})
	sameFrames(t, waitFrames(t, e, "r", 1), "r", frames[len(frames)-1:], "a")
	registerWith(t, e, Registration{SubscriptionID: "l", TenantID: "t", After: framePosition(t, frames[len(frames)-1])})
	publishN(t, e, 11, 11)
	sameFrames(t, waitFrames(t, e, "l", 1), "l", nextAll(t, e, "a"), "a")
	if m := e.Metrics(); m.PositionsExpired != 1 || m.PositionsInvalid != 3 {
		t.Fatalf("metrics %+v", m)
	}
}

func TestCatchUpDeliversABurstThroughASmallQueue(t *testing.T) {
	const n = 10000
	e := newTestExecutor(t, Options{QueueSize: 8, OnOverflow: OverflowCatchUp})
	registerWith(t, e, Registration{SubscriptionID: "a", Query: `subscription { users { n } }`})
	publishN(t, e, 1, n) // the client reads nothing meanwhile
	if st, _ := e.Stats("a"); st.Queued > 8 {
		t.Fatalf("queued %d", st.Queued)
	}
	waitUsersInOrder(t, e, "a", n)
	publishN(t, e, n+1, n+1) // live again
	if f := waitFrames(t, e, "a", 1)[0]; f != frame("a", fmt.Sprintf(`{"users":{"n":%d}}`, n+1)) {
		t.Fatalf("live frame %s", f)
	}
	if m := e.Metrics(); m.CatchUps == 0 || m.EventsDropped != 0 || m.EventsReplayed == 0 {
		t.Fatalf("metrics %+v", m)
	}
}

func TestCatchUpExpiresWhenHistoryMovesOn(t *testing.T) {
	e := newTestExecutor(t, Options{QueueSize: 2, HistorySize: 4, OnOverflow: OverflowCatchUp})
	registerWith(t, e, Registration{SubscriptionID: "a", Query: `subscription { users { n } }`})
	publishN(t, e, 1, 20)
	got := waitFrames(t, e, "a", 3)
	if !strings.Contains(got[2], `"code":"POSITION_EXPIRED"`) || !strings.HasPrefix(got[2], `{"type":"next","id":"a","payload":{"errors":[`) {
		t.Fatalf("frames %v", got)
	}
}

func TestDropWithPositionsEndsWithTheLastPosition(t *testing.T) {
	e := newTestExecutor(t, Options{QueueSize: 2})
	registerWith(t, e, Registration{SubscriptionID: "a", Query: `subscription { users { n } }`, Positions: true})
	publishN(t, e, 1, 5)
	got := nextAll(t, e, "a")
	if len(got) != 3 || !strings.Contains(got[2], `"code":"EVENTS_LOST","position":"`+framePosition(t, got[1])+`"`) {
		t.Fatalf("frames %v", got)
	}
	// Resuming after it gives the rest.
	registerWith(t, e, Registration{SubscriptionID: "b", Query: `subscription { users { n } }`, After: framePosition(t, got[1])})
	if rest := waitFrames(t, e, "b", 3); !strings.Contains(rest[2], `{"users":{"n":5}}`) {
		t.Fatalf("rest %v", rest)
	}
}

// checkAccounting checks the metrics' identity: every delivered message is
// read, dropped, discarded or still queued.
func checkAccounting(t *testing.T, m Metrics) {
	t.Helper()
	if m.EventsDelivered != m.MessagesRead+m.EventsDropped+m.MessagesDiscarded+m.Queued {
		t.Fatalf("delivered %d, read %d + dropped %d + discarded %d + queued %d: %+v",
			m.EventsDelivered, m.MessagesRead, m.EventsDropped, m.MessagesDiscarded, m.Queued, m)
	}
}

// A subscription with positions counts its messages as any other, the
// final EVENTS_LOST frame of its overflow included, and drops nothing.
func TestPositionsOverflowCountsItsFinalFrameAsDelivered(t *testing.T) {
	e := newTestExecutor(t, Options{QueueSize: 2})
	registerWith(t, e, Registration{SubscriptionID: "a", Query: `subscription { users { n } }`, Positions: true})
	publishN(t, e, 1, 5)
	got := nextAll(t, e, "a")
	if len(got) != 3 || !strings.Contains(got[2], `"code":"EVENTS_LOST"`) {
		t.Fatalf("frames %v", got)
	}
	m := e.Metrics()
	if m.EventsDelivered != 3 || m.MessagesRead != 3 || m.EventsDropped != 0 {
		t.Fatalf("metrics %+v", m)
	}
	checkAccounting(t, m)
	if st, err := e.Stats("a"); err != nil || st.Enqueued != 3 || st.Read != 3 {
		t.Fatalf("stats %+v, %v", st, err)
	}
}

// A resume's replay counts what live dispatch counts: its messages as
// delivered and read, the events its filter refuses as filtered, those of
// another tenant or another user as violations.
func TestResumeCountsReplayedMessagesAndViolations(t *testing.T) {
	e := newTestExecutor(t, Options{})
	r := Registration{SubscriptionID: "a", Query: `subscription { users(where: {n: {gt: 0}}) { n } }`, TenantID: "t", UserID: "u", Positions: true}
	registerWith(t, e, r)
	publish(t, e, "users", `{"n":1,"tenant_id":"t"}`, `{"n":0,"tenant_id":"t"}`, `{"n":2,"tenant_id":"other"}`,
		`{"n":3,"tenant_id":"t","user_id":"other"}`, `{"n":4,"tenant_id":"t","user_id":"u"}`)
	live := nextAll(t, e, "a") // n = 1 and 4; n = 0 filtered out, n = 2 and 3 counted as violations
	replayed := make(chan struct{})
	var once sync.Once
	e.beforeGoLive = func() { once.Do(func() { close(replayed) }) } // the replay's counts are added
	r.SubscriptionID, r.Positions, r.After = "b", false, framePosition(t, live[0])
	registerWith(t, e, r)
	sameFrames(t, waitFrames(t, e, "b", 1), "b", live[1:], "a")
	<-replayed
	m := e.Metrics()
	if m.EventsReplayed != 1 || m.EventsDelivered != 3 || m.MessagesRead != 3 ||
		m.ViolationsTenantIsolation != 2 || m.ViolationsRowFilter != 2 || m.ValidationsPassed != 3 || m.EventsFiltered != 2 ||
		m.Encodings != 3 {
		t.Fatalf("metrics %+v", m)
	}
	checkAccounting(t, m)
}

// gatedHistory holds a catch-up's history read until released, then
// answers that the position expired.
type gatedHistory struct {
	historyBus
	entered, release chan struct{}
}

func (g *gatedHistory) history(ctx context.Context, p position, n int, upto position) ([]Event, error) {
	close(g.entered)
	<-g.release
	return nil, positionError(ErrPositionExpired, p.String(), "expired")
}

// A subscription completed while its catch-up reads the history gets no
// final frame when the read finds its position expired: the catch-up ends
// quietly, no failed dispatch counted.
func TestCatchUpOfACompletedSubscriptionEndsQuietly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newTestExecutor(t, Options{QueueSize: 2, OnOverflow: OverflowCatchUp})
		gate := &gatedHistory{historyBus: e.hist, entered: make(chan struct{}), release: make(chan struct{})}
		e.hist = gate
		registerWith(t, e, Registration{SubscriptionID: "a", Query: `subscription { users { n } }`})
		publishN(t, e, 1, 3) // the third overflows into a catch-up
		nextAll(t, e, "a")   // room: the catch-up reads the history
		<-gate.entered
		e.Complete("a")
		close(gate.release)
		synctest.Wait() // the catch-up has ended
		if m := e.Metrics(); m.PositionsExpired != 1 || m.DispatchErrors != 0 || m.Active != 0 {
			t.Fatalf("metrics %+v", m)
		}
	})
}

func TestResumeConcurrentWithPublishes(t *testing.T) {
	const perWriter, writers, resumers = 1000, 3, 5
	e := newTestExecutor(t, Options{QueueSize: 8, OnOverflow: OverflowCatchUp})
	registerWith(t, e, Registration{SubscriptionID: "first", Query: `subscription { users { n } }`, Positions: true})
	publishN(t, e, 1, 10)
	start := framePosition(t, waitFrames(t, e, "first", 5)[4])
	e.Complete("first")
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < perWriter; i++ {
				data := fmt.Sprintf(`{"n":%d,"tenant_id":"t"}`, 100000*(w+1)+i)
				if err := e.Publish(context.Background(), Event{Type: "c", Channel: "users", Data: []byte(data)}); err != nil {
					t.Error(err)
					return
				}
			}
		}(w)
	}
	// Resumes while the writers publish, each read as it comes.
	results := make([][]string, resumers)
	var readers sync.WaitGroup
	for r := 0; r < resumers; r++ {
		registerWith(t, e, Registration{ConnectionID: fmt.Sprint("c", r), SubscriptionID: fmt.Sprint("r", r),
			Query: `subscription { users { n } }`, After: start})
		readers.Add(1)
		go func(r int) {
			defer readers.Done()
			results[r] = waitFrames(t, e, fmt.Sprint("r", r), 5+writers*perWriter)
		}(r)
	}
	wg.Wait()
	readers.Wait()
	// After the publishes, a reference resume: every resume got the same.
	registerWith(t, e, Registration{SubscriptionID: "ref", Query: `subscription { users { n } }`, After: start})
	want := waitFrames(t, e, "ref", 5+writers*perWriter)
	for r, got := range results {
		sameFrames(t, got, fmt.Sprint("r", r), want, "ref")
	}
	// Each writer's events in its order, once.
	next := map[int]int{}
	for _, f := range want[5:] {
		var n int
		if _, err := fmt.Sscanf(f[strings.Index(f, `"n":`)+4:], "%d", &n); err != nil {
			t.Fatal(err)
		}
		w, i := n/100000, n%100000
		if next[w] != i {
			t.Fatalf("writer %d: event %d after %d", w, i, next[w])
		}
		next[w]++
	}
}

func TestResumeSeamWithLiveEventsBetweenReadAndJoin(t *testing.T) {
	e := newTestExecutor(t, Options{})
	registerWith(t, e, Registration{SubscriptionID: "twin", Query: `subscription { users { n } }`, Positions: true})
	publishN(t, e, 1, 5)
	start := framePosition(t, waitFrames(t, e, "twin", 5)[1])
	var once sync.Once
	e.beforeGoLive = func() { once.Do(func() { publishN(t, e, 6, 8) }) }
	registerWith(t, e, Registration{SubscriptionID: "r", Query: `subscription { users { n } }`, After: start})
	got := waitFrames(t, e, "r", 6)
	publishN(t, e, 9, 9)
	got = append(got, waitFrames(t, e, "r", 1)...)
	for i, f := range got {
		if !strings.Contains(f, fmt.Sprintf(`{"users":{"n":%d}}`, i+3)) {
			t.Fatalf("frame %d: %s", i, f)
		}
	}
}

// waitUsersInOrder waits for n frames of sid and checks they are users
// n=1 to n=n, in order.
func waitUsersInOrder(t *testing.T, e *Executor, sid string, n int) {
	t.Helper()
	for i, f := range waitFrames(t, e, sid, n) {
		if want := frame(sid, fmt.Sprintf(`{"users":{"n":%d}}`, i+1)); f != want {
			t.Fatalf("frame %d: %s, want %s", i, f, want)
		}
	}
}

// readSizes records how many events each history read of a catch-up asks for.
type readSizes struct {
	historyBus
	mu    sync.Mutex
	sizes []int
}

func (r *readSizes) history(ctx context.Context, p position, n int, upto position) ([]Event, error) {
	r.mu.Lock()
	r.sizes = append(r.sizes, n)
	r.mu.Unlock()
	return r.historyBus.history(ctx, p, n, upto)
}

func (r *readSizes) taken() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.sizes)
}

// A catch-up refills the queue as soon as half of it is free, with one
// history read for all that room: not a read for each message the client
// takes (a round trip each), nor a wait until the client has read more
// than half the queue.
func TestCatchUpRefillsWhenHalfTheQueueIsFree(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newTestExecutor(t, Options{QueueSize: 4, OnOverflow: OverflowCatchUp})
		reads := &readSizes{historyBus: e.hist}
		e.hist = reads
		registerWith(t, e, Registration{SubscriptionID: "a", Query: `subscription { users { n } }`})
		publishN(t, e, 1, 12) // 1 to 4 queued, the rest left to the catch-up
		readOne := func(n int) {
			t.Helper()
			if f, err := e.Next("a"); err != nil || f != frame("a", fmt.Sprintf(`{"users":{"n":%d}}`, n)) {
				t.Fatalf("frame %q, %v; want n = %d", f, err, n)
			}
			synctest.Wait() // the catch-up has read the history, or waits for room
		}
		readOne(1)
		if got := reads.taken(); len(got) != 0 {
			t.Fatalf("a quarter of the queue free: history reads of %v events", got)
		}
		readOne(2)
		if got := reads.taken(); !slices.Equal(got, []int{2}) {
			t.Fatalf("half the queue free: history reads of %v events, want [2]", got)
		}
		for i, f := range waitFrames(t, e, "a", 10) {
			if want := frame("a", fmt.Sprintf(`{"users":{"n":%d}}`, i+3)); f != want {
				t.Fatalf("frame %s, want %s", f, want)
			}
		}
	})
}

// The messages a resume replays signal the ready descriptor as live ones
// do: an event loop waiting on it learns that the subscription has
// something to read, be it one message or more.
func TestResumeSignalsReadyForReplayedMessages(t *testing.T) {
	for _, replayed := range []int{1, 2} {
		t.Run(fmt.Sprint(replayed), func(t *testing.T) { resumeSignalsReady(t, replayed) })
	}
}

func resumeSignalsReady(t *testing.T, replayed int) {
	e := newTestExecutor(t, Options{})
	registerWith(t, e, Registration{SubscriptionID: "a", Query: `subscription { users { n } }`, Positions: true})
	publishN(t, e, 1, 3)
	frames := nextAll(t, e, "a")
	fd, err := e.ReadyFD()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var once sync.Once
	e.beforeGoLive = func() { once.Do(func() { close(done) }) } // the replay's signals are sent
	registerWith(t, e, Registration{SubscriptionID: "b", Query: `subscription { users { n } }`, After: framePosition(t, frames[2-replayed])})
	<-done
	if !readable(t, fd) {
		t.Fatal("the ready descriptor is not readable after a replay")
	}
	if ids, err := e.TakeReady(); !slices.Equal(ids, []string{"b"}) || err != nil {
		t.Fatalf("TakeReady = %q, %v", ids, err)
	}
	sameFrames(t, waitFrames(t, e, "b", replayed), "b", frames[3-replayed:], "a")
}

// A subscription that tracks positions signals the ready descriptor when
// its queue stops being empty, as one without positions does: once, not
// again while it holds messages, and again once read empty and refilled.
func TestPositionsSignalReadyWhenTheQueueStopsBeingEmpty(t *testing.T) {
	e := newTestExecutor(t, Options{})
	registerWith(t, e, Registration{SubscriptionID: "a", Query: `subscription { users { n } }`, Positions: true})
	if _, err := e.ReadyFD(); err != nil {
		t.Fatal(err)
	}
	take := func(want ...string) {
		t.Helper()
		if ids, err := e.TakeReady(); !slices.Equal(ids, want) || err != nil {
			t.Fatalf("TakeReady = %q, %v; want %q", ids, err, want)
		}
	}
	publishN(t, e, 1, 1)
	take("a")
	publishN(t, e, 2, 3)
	take()
	if got := nextAll(t, e, "a"); len(got) != 3 {
		t.Fatalf("read %d frames, want 3", len(got))
	}
	publishN(t, e, 4, 4)
	take("a")
}

// withPosition writes the position whatever its epoch's length: a Redis
// epoch is whatever its key holds after the 'r'.
func TestWithPositionAnyEpochLength(t *testing.T) {
	for _, n := range []int{0, 1, 17, 60, 61, 62, 200} {
		at := position{epoch: "r" + strings.Repeat("e", n), hi: 7, lo: 9}
		got := string(withPosition([]byte(`{"data":1}`), at))
		if want := `{"data":1,"extensions":{"position":"` + at.String() + `"}}`; got != want {
			t.Fatalf("epoch of %d: %s, want %s", n+1, got, want)
		}
	}
}

// The memory bus resumes from the position just before its oldest event
// kept (all that follows is there), and refuses the one before it, even
// once its ring has wrapped.
func TestResumeAtTheMemoryHistoryBound(t *testing.T) {
	e := newTestExecutor(t, Options{HistorySize: 4})
	registerWith(t, e, Registration{SubscriptionID: "a", Query: `subscription { users { n } }`, Positions: true})
	publishN(t, e, 1, 6) // 3 to 6 kept
	frames := nextAll(t, e, "a")
	err := e.Register(Registration{ConnectionID: "c", SubscriptionID: "r", Query: `subscription { users { n } }`, TenantID: "t", After: framePosition(t, frames[0])})
	if !errors.Is(err, ErrPositionExpired) {
		t.Fatalf("after event 1 of 6, 4 kept: %v, want %v", err, ErrPositionExpired)
	}
	registerWith(t, e, Registration{SubscriptionID: "r", Query: `subscription { users { n } }`, After: framePosition(t, frames[1])})
	sameFrames(t, waitFrames(t, e, "r", 4), "r", frames[2:], "a")
}

// readAllSettled reads sid's frames, letting the catch-up refill between
// reads, until none is left. In a synctest bubble.
func readAllSettled(t *testing.T, e *Executor, sid string) []string {
	t.Helper()
	var out []string
	for {
		synctest.Wait()
		got := nextAll(t, e, sid)
		if len(got) == 0 {
			return out
		}
		out = append(out, got...)
	}
}

// checkUsers checks that frames are users n = from, from+1, ... in order.
func checkUsers(t *testing.T, frames []string, sid string, from, to int) {
	t.Helper()
	if len(frames) != to-from+1 {
		t.Fatalf("%d frames, want n = %d to %d: %q", len(frames), from, to, frames)
	}
	for i, f := range frames {
		if want := frame(sid, fmt.Sprintf(`{"users":{"n":%d}}`, from+i)); f != want {
			t.Fatalf("frame %s, want %s", f, want)
		}
	}
}

// The event that overflows a queue into a catch-up is not counted as
// delivered then (the catch-up queues and counts it): every message is
// counted once, in the metrics and in the subscription's stats.
func TestCatchUpCountsEachMessageOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newTestExecutor(t, Options{QueueSize: 2, OnOverflow: OverflowCatchUp})
		registerWith(t, e, Registration{SubscriptionID: "a", Query: `subscription { users { n } }`})
		publishN(t, e, 1, 5)
		checkUsers(t, readAllSettled(t, e, "a"), "a", 1, 5)
		m := e.Metrics()
		if m.EventsDelivered != 5 || m.EventsReplayed != 3 || m.CatchUps != 1 {
			t.Fatalf("metrics %+v", m)
		}
		checkAccounting(t, m)
		if st, err := e.Stats("a"); err != nil || st.Enqueued != 5 || st.Read != 5 {
			t.Fatalf("stats %+v, %v", st, err)
		}
	})
}

// A catch-up whose read exactly fills the room it had reads once more
// before it joins the live stream: a live event that comes while the
// queue is still full waits in the history, and starts no second catch-up.
func TestCatchUpFillingItsRoomExactlyStaysCatchingUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newTestExecutor(t, Options{QueueSize: 4, OnOverflow: OverflowCatchUp})
		registerWith(t, e, Registration{SubscriptionID: "a", Query: `subscription { users { n } }`})
		publishN(t, e, 1, 6) // 1 to 4 queued, 5 and 6 left to the catch-up
		synctest.Wait()
		got := []string{}
		for range 2 {
			f, err := e.Next("a")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, f)
		}
		synctest.Wait() // the catch-up read 5 and 6: its room of 2, full again
		publishN(t, e, 7, 7)
		got = append(got, readAllSettled(t, e, "a")...)
		checkUsers(t, got, "a", 1, 7)
		if m := e.Metrics(); m.CatchUps != 1 || m.EventsReplayed != 3 {
			t.Fatalf("metrics %+v", m)
		}
	})
}

// failingHistory fails the history reads it is told to fail, and counts
// them all.
type failingHistory struct {
	historyBus
	mu    sync.Mutex
	fails int // reads left to fail
	reads int
}

func (f *failingHistory) history(ctx context.Context, p position, n int, upto position) ([]Event, error) {
	f.mu.Lock()
	f.reads++
	fail := f.fails > 0
	f.fails--
	f.mu.Unlock()
	if fail {
		return nil, errors.New("the bus is down")
	}
	return f.historyBus.history(ctx, p, n, upto)
}

func (f *failingHistory) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reads
}

// A catch-up whose history read failed tries again after catchUpRetry,
// not before, and then goes on.
func TestCatchUpRetriesAFailedReadAfterAPause(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newTestExecutor(t, Options{QueueSize: 2, OnOverflow: OverflowCatchUp})
		hist := &failingHistory{historyBus: e.hist, fails: 1}
		e.hist = hist
		registerWith(t, e, Registration{SubscriptionID: "a", Query: `subscription { users { n } }`})
		publishN(t, e, 1, 5)
		got := nextAll(t, e, "a") // room: the catch-up reads, and fails
		synctest.Wait()
		if n := hist.count(); n != 1 {
			t.Fatalf("%d history reads right after the failure, want 1", n)
		}
		time.Sleep(catchUpRetry - time.Nanosecond)
		synctest.Wait()
		if n := hist.count(); n != 1 {
			t.Fatalf("%d history reads just before the pause's end, want 1", n)
		}
		time.Sleep(time.Nanosecond) // synctest's clock: to the pause's end exactly
		synctest.Wait()
		if n := hist.count(); n != 2 {
			t.Fatalf("%d history reads after the pause, want 2", n)
		}
		checkUsers(t, append(got, readAllSettled(t, e, "a")...), "a", 1, 5)
	})
}

// deadlineHistory answers as a bus on a network does: with its context's
// error once that is done.
type deadlineHistory struct{ historyBus }

func (d deadlineHistory) checkPosition(ctx context.Context, p position) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return d.historyBus.checkPosition(ctx, p)
}

func (d deadlineHistory) history(ctx context.Context, p position, n int, upto position) ([]Event, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return d.historyBus.history(ctx, p, n, upto)
}

// A resume's position check and a catch-up's reads give the bus time to
// answer: their contexts are not done when the bus gets them.
func TestResumeAndCatchUpGiveTheBusTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newTestExecutor(t, Options{QueueSize: 2, OnOverflow: OverflowCatchUp})
		e.hist = deadlineHistory{e.hist}
		registerWith(t, e, Registration{SubscriptionID: "a", Query: `subscription { users { n } }`, Positions: true})
		publishN(t, e, 1, 5)
		first := nextAll(t, e, "a")
		registerWith(t, e, Registration{SubscriptionID: "b", Query: `subscription { users { n } }`, After: framePosition(t, first[0])})
		if got := append(first, readAllSettled(t, e, "a")...); len(got) != 5 {
			t.Fatalf("catch-up: %q", got)
		}
		if got := readAllSettled(t, e, "b"); len(got) != 4 {
			t.Fatalf("resume: %q", got)
		}
	})
}

// A catch-up waiting for room ends when its subscription completes,
// without reading the history again.
func TestCatchUpWaitingForRoomEndsOnComplete(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newTestExecutor(t, Options{QueueSize: 2, OnOverflow: OverflowCatchUp})
		hist := &failingHistory{historyBus: e.hist, fails: 1 << 30}
		e.hist = hist
		registerWith(t, e, Registration{SubscriptionID: "a", Query: `subscription { users { n } }`})
		publishN(t, e, 1, 5) // the catch-up waits: the queue is full
		synctest.Wait()
		e.Complete("a")
		synctest.Wait()
		if n := hist.count(); n != 0 {
			t.Fatalf("%d history reads, want none", n)
		}
	})
}

// gatedRead holds a catch-up's first history read until released, then
// answers it from the history.
type gatedRead struct {
	historyBus
	once             sync.Once
	entered, release chan struct{}
}

func (g *gatedRead) history(ctx context.Context, p position, n int, upto position) ([]Event, error) {
	g.once.Do(func() {
		close(g.entered)
		<-g.release
	})
	return g.historyBus.history(ctx, p, n, upto)
}

// A subscription completed while its catch-up reads the history gets
// none of what the read brings: the replay stops at the first event.
func TestCatchUpReplayStopsOnComplete(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newTestExecutor(t, Options{QueueSize: 4, OnOverflow: OverflowCatchUp})
		gate := &gatedRead{historyBus: e.hist, entered: make(chan struct{}), release: make(chan struct{})}
		e.hist = gate
		registerWith(t, e, Registration{SubscriptionID: "a", Query: `subscription { users { n } }`})
		publishN(t, e, 1, 8)
		for range 2 { // then half the queue is free: the catch-up reads 5 and 6
			if _, err := e.Next("a"); err != nil {
				t.Fatal(err)
			}
			synctest.Wait()
		}
		<-gate.entered
		e.Complete("a")
		before := e.Metrics()
		close(gate.release)
		synctest.Wait()
		m := e.Metrics()
		// The first event is examined before the replay sees the completion.
		if m.ValidationsPassed-before.ValidationsPassed != 1 || m.EventsReplayed != before.EventsReplayed ||
			m.EventsDelivered != before.EventsDelivered || m.DispatchErrors != 0 {
			t.Fatalf("metrics before the read %+v, after %+v", before, m)
		}
	})
}
