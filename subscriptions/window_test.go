package subscriptions

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
)

// windowReader reads as the CPython entry point of next_event does: from
// the window while it lends frames of the same subscription, through
// NextAhead otherwise.
type windowReader struct {
	e    *Executor
	w    *Window
	dst  []byte
	took int // frames taken from the window
}

func newWindowReader(e *Executor) *windowReader {
	return &windowReader{e: e, w: e.NewWindow(), dst: make([]byte, 1<<16)}
}

// take takes the window's next frame the way C does: read, then claim by
// compare-and-swap.
func (r *windowReader) take() (string, bool) {
	sh := r.w.Shared()
	for {
		k := sh.Next.Load()
		if k >= sh.Count {
			return "", false
		}
		frame := string(sh.Buf[sh.Off[k] : sh.Off[k]+sh.Len[k]])
		if sh.Next.CompareAndSwap(k, k+1) {
			return frame, true
		}
	}
}

func (r *windowReader) next(id string) (string, error) {
	if sh := r.w.Shared(); string(sh.ID[:sh.IDLen]) == id {
		if f, ok := r.take(); ok {
			r.took++
			return f, nil
		}
	}
	n, need, _, err := r.e.NextAhead(id, r.dst, r.w)
	if err != nil || need > 0 {
		return "", fmt.Errorf("NextAhead(%s): need %d, %w", id, need, err)
	}
	return string(r.dst[:n]), nil
}

func (r *windowReader) all(t *testing.T, id string) []string {
	t.Helper()
	var out []string
	for {
		f, err := r.next(id)
		if err != nil {
			t.Fatal(err)
		}
		if f == "" {
			return out
		}
		out = append(out, f)
	}
}

func usersFrames(id string, from, to int) []string {
	var out []string
	for i := from; i <= to; i++ {
		out = append(out, frame(id, fmt.Sprintf(`{"users":{"id":%d}}`, i)))
	}
	return out
}

func publishUsers(t *testing.T, e *Executor, from, to int) {
	t.Helper()
	for i := from; i <= to; i++ {
		publish(t, e, "users", fmt.Sprintf(`{"id":%d}`, i))
	}
}

func TestWindowServesABacklogInOrderAndCountsEachRead(t *testing.T) {
	e := newTestExecutor(t, Options{QueueSize: 1000})
	register(t, e, sub{id: "s"})
	publishUsers(t, e, 1, 200)
	r := newWindowReader(e)
	wantFrames(t, r.all(t, "s"), usersFrames("s", 1, 200)...)
	// 200 frames: one NextAhead per window of 64 lent frames plus the one
	// it returns, and the last call that finds nothing.
	if r.took != 200-4 {
		t.Fatalf("took %d frames from the window, want 196", r.took)
	}
	m := e.Metrics()
	if m.MessagesRead != 200 || m.Queued != 0 || m.EventsDelivered != 200 {
		t.Fatalf("metrics %+v", m)
	}
	if st, _ := e.Stats("s"); st.Read != 200 || st.Queued != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestWindowCountsFramesTakenBeforeTheNextCall(t *testing.T) {
	e := newTestExecutor(t, Options{})
	register(t, e, sub{id: "s"})
	publishUsers(t, e, 1, 5)
	r := newWindowReader(e)
	for i := 1; i <= 3; i++ {
		if f, _ := r.next("s"); f != usersFrames("s", i, i)[0] {
			t.Fatalf("frame %d: %s", i, f)
		}
	}
	// Two frames taken from the window, one by NextAhead: three read, two
	// queued, whoever asks.
	m := e.Metrics()
	if m.MessagesRead != 3 || m.Queued != 2 {
		t.Fatalf("metrics %+v", m)
	}
	if st, _ := e.Stats("s"); st != (SubscriptionStats{Queued: 2, Enqueued: 5, Read: 3, GroupSize: 1}) {
		t.Fatalf("stats %+v", st)
	}
}

func TestWindowIsTakenBackByEveryOtherReader(t *testing.T) {
	readers := map[string]func(t *testing.T, e *Executor) []string{
		"Next": func(t *testing.T, e *Executor) []string { return nextAll(t, e, "s") },
		"NextInto": func(t *testing.T, e *Executor) []string {
			var out []string
			buf := make([]byte, 4096)
			for {
				n, _, err := e.NextInto("s", buf)
				if err != nil {
					t.Fatal(err)
				}
				if n == 0 {
					return out
				}
				out = append(out, string(buf[:n]))
			}
		},
		"DrainConnection": func(t *testing.T, e *Executor) []string {
			frames, _, err := e.DrainConnection("c", 0)
			if err != nil {
				t.Fatal(err)
			}
			return strings.Split(frames, "\n")
		},
		"DrainConnection of two": func(t *testing.T, e *Executor) []string {
			register(t, e, sub{id: "other", query: `subscription { orders { id } }`})
			frames, _, err := e.DrainConnection("c", 0)
			if err != nil {
				t.Fatal(err)
			}
			return strings.Split(frames, "\n")
		},
		"DrainInto": func(t *testing.T, e *Executor) []string {
			buf := make([]byte, 4096)
			size, _, _, err := e.DrainInto("c", 0, buf)
			if err != nil {
				t.Fatal(err)
			}
			return strings.Split(string(buf[:size]), "\n")
		},
		"NextWait": func(t *testing.T, e *Executor) []string {
			var out []string
			for range 3 {
				f, err := e.NextWait(context.Background(), "s")
				if err != nil {
					t.Fatal(err)
				}
				out = append(out, f)
			}
			return out
		},
	}
	for name, read := range readers {
		t.Run(name, func(t *testing.T) {
			e := newTestExecutor(t, Options{})
			register(t, e, sub{id: "s"})
			publishUsers(t, e, 1, 5)
			r := newWindowReader(e)
			got := []string{}
			for range 2 { // one through NextAhead, one from the window
				f, _ := r.next("s")
				got = append(got, f)
			}
			// The other reader gets the three frames still lent, once.
			got = append(got, read(t, e)...)
			wantFrames(t, got, usersFrames("s", 1, 5)...)
			if f, ok := r.take(); ok {
				t.Fatalf("the window still lends %s", f)
			}
			if m := e.Metrics(); m.MessagesRead != 5 || m.Queued != 0 {
				t.Fatalf("metrics %+v", m)
			}
		})
	}
}

func TestWindowMovesToTheSubscriptionRead(t *testing.T) {
	// Subscriptions of one connection, and of two: a frame taken from the
	// window before it moves is read once.
	for _, bConn := range []string{"c", "c2"} {
		e := newTestExecutor(t, Options{})
		register(t, e, sub{id: "a"}, sub{id: "b", conn: bConn})
		publishUsers(t, e, 1, 4)
		r := newWindowReader(e)
		a1, _ := r.next("a")
		a2, _ := r.next("a") // from the window
		b1, _ := r.next("b") // takes a's window back
		wantFrames(t, []string{a1, a2, b1}, frame("a", `{"users":{"id":1}}`), frame("a", `{"users":{"id":2}}`), frame("b", `{"users":{"id":1}}`))
		wantFrames(t, r.all(t, "a"), usersFrames("a", 3, 4)...)
		wantFrames(t, r.all(t, "b"), usersFrames("b", 2, 4)...)
		if m := e.Metrics(); m.MessagesRead != 8 || m.Queued != 0 {
			t.Fatalf("b on connection %s: metrics %+v", bConn, m)
		}
	}
}

func TestWindowFullQueueDropsOldestEvenWhenLent(t *testing.T) {
	e := newTestExecutor(t, Options{QueueSize: 3})
	register(t, e, sub{id: "s"})
	publishUsers(t, e, 1, 3)
	r := newWindowReader(e)
	first, _ := r.next("s") // lends 2 and 3
	second, _ := r.next("s")
	publishUsers(t, e, 4, 6) // the queue holds 3 (lent), 4, 5: 6 drops 3
	got := append([]string{first, second}, r.all(t, "s")...)
	wantFrames(t, got, append(usersFrames("s", 1, 2), usersFrames("s", 4, 6)...)...)
	m := e.Metrics()
	if m.EventsDelivered != 6 || m.EventsDropped != 1 || m.MessagesRead != 5 || m.Queued != 0 {
		t.Fatalf("metrics %+v", m)
	}
}

func TestWindowFramesAreDiscardedWithTheirSubscription(t *testing.T) {
	e := newTestExecutor(t, Options{})
	register(t, e, sub{id: "s"})
	publishUsers(t, e, 1, 4)
	r := newWindowReader(e)
	r.next("s")
	r.next("s")
	if !e.Complete("s") {
		t.Fatal("not completed")
	}
	if f, ok := r.take(); ok {
		t.Fatalf("a completed subscription's window lends %s", f)
	}
	if _, err := r.next("s"); !errors.Is(err, ErrSubscriptionNotFound) {
		t.Fatalf("next after complete: %v", err)
	}
	m := e.Metrics()
	if m.MessagesRead != 2 || m.MessagesDiscarded != 2 || m.Queued != 0 {
		t.Fatalf("metrics %+v", m)
	}
	// A new subscription under the same id starts empty.
	register(t, e, sub{id: "s"})
	publishUsers(t, e, 5, 5)
	wantFrames(t, r.all(t, "s"), usersFrames("s", 5, 5)...)
}

func TestWindowReadyFDSignalsWhileLent(t *testing.T) {
	e := newTestExecutor(t, Options{})
	register(t, e, sub{id: "s"})
	if _, err := e.ReadyFD(); err != nil {
		t.Fatal(err)
	}
	publishUsers(t, e, 1, 3)
	if ids, _ := e.TakeReady(); len(ids) != 1 || ids[0] != "s" {
		t.Fatalf("ready %q", ids)
	}
	r := newWindowReader(e)
	wantFrames(t, []string{must(r.next("s")), must(r.next("s")), must(r.next("s"))}, usersFrames("s", 1, 3)...)
	// The reader took everything (the last two from the window, which the
	// engine has not synced yet): a new message must signal.
	publishUsers(t, e, 4, 4)
	if ids, _ := e.TakeReady(); len(ids) != 1 || ids[0] != "s" {
		t.Fatalf("ready after the window was emptied: %q", ids)
	}
}

func TestWindowOfAnotherExecutorIsRefused(t *testing.T) {
	e, other := newTestExecutor(t, Options{}), newTestExecutor(t, Options{})
	register(t, e, sub{id: "s"})
	if _, _, _, err := e.NextAhead("s", make([]byte, 64), other.NewWindow()); err == nil {
		t.Fatal("no error")
	}
}

func TestWindowCloseTakesBack(t *testing.T) {
	e := newTestExecutor(t, Options{})
	register(t, e, sub{id: "s"})
	publishUsers(t, e, 1, 3)
	r := newWindowReader(e)
	r.next("s")
	r.w.Close()
	if f, ok := r.take(); ok {
		t.Fatalf("a closed window lends %s", f)
	}
	wantFrames(t, nextAll(t, e, "s"), usersFrames("s", 2, 3)...)
}

// Publishers, a window reader and a draining reader on one subscription
// at once (run under -race): every message is delivered exactly once and
// the counters add up.
func TestWindowConcurrentReadersDeliverEachMessageOnce(t *testing.T) {
	const publishers, each = 4, 2000
	e := newTestExecutor(t, Options{QueueSize: publishers * each})
	register(t, e, sub{id: "s"})
	var wg sync.WaitGroup
	for p := range publishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				publish(t, e, "users", fmt.Sprintf(`{"id":%d}`, p*each+i))
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	var mu sync.Mutex
	seen := map[string]int{}
	record := func(frames ...string) {
		mu.Lock()
		defer mu.Unlock()
		for _, f := range frames {
			if f != "" {
				seen[f]++
			}
		}
	}
	var readers sync.WaitGroup
	readers.Add(2)
	go func() { // the window reader
		defer readers.Done()
		r := newWindowReader(e)
		for finished := false; ; {
			select {
			case <-done:
				finished = true
			default:
			}
			f, err := r.next("s")
			if err != nil {
				t.Error(err)
				return
			}
			record(f)
			if f == "" && finished {
				return
			}
		}
	}()
	go func() { // a reader draining now and then
		defer readers.Done()
		for {
			select {
			case <-done:
				return
			default:
			}
			frames, n, err := e.DrainConnection("c", 7)
			if err != nil {
				t.Error(err)
				return
			}
			if n > 0 {
				record(strings.Split(frames, "\n")...)
			}
		}
	}()
	readers.Wait()
	frames, _, _ := e.DrainConnection("c", 0)
	record(strings.Split(frames, "\n")...)
	if len(seen) != publishers*each {
		t.Fatalf("%d distinct frames, want %d", len(seen), publishers*each)
	}
	for f, n := range seen {
		if n != 1 {
			t.Fatalf("%s delivered %d times", f, n)
		}
	}
	m := e.Metrics()
	if m.MessagesRead != publishers*each || m.Queued != 0 || m.EventsDropped != 0 {
		t.Fatalf("metrics %+v", m)
	}
}

func must(f string, err error) string {
	if err != nil {
		panic(err)
	}
	return f
}

func TestWindowLendsNothingForIdsLongerThanItHolds(t *testing.T) {
	for size, lends := range map[int]bool{WindowIDBytes: true, WindowIDBytes + 1: false} {
		e := newTestExecutor(t, Options{})
		id := strings.Repeat("x", size)
		register(t, e, sub{id: id})
		publishUsers(t, e, 1, 3)
		r := newWindowReader(e)
		want := map[bool]int{true: 2, false: 0}[lends]
		if _, _, lent, err := e.NextAhead(id, r.dst, r.w); err != nil || lent != want {
			t.Fatalf("id of %d bytes: lent %d, %v; want %d", size, lent, err, want)
		}
		wantFrames(t, r.all(t, id), usersFrames(id, 2, 3)...)
		if r.took != want {
			t.Fatalf("id of %d bytes: took %d frames from the window, want %d", size, r.took, want)
		}
	}
}

// A window lends every whole frame its buffer holds, to its last byte,
// and no part of one more.
func TestWindowLendsTheFramesThatFillItsBuffer(t *testing.T) {
	e := newTestExecutor(t, Options{QueueSize: 100})
	register(t, e, sub{id: "s", query: `subscription { users { pad } }`})
	padded := func(n int, pad string) string { return fmt.Sprintf(`{"pad":"%02d%s"}`, n, pad) }
	publish(t, e, "users", padded(0, ""))
	// Frames of 1024 bytes: WindowBytes holds 16 of them exactly.
	const frames = WindowBytes / 1024
	pad := strings.Repeat("x", 1024-len(nextAll(t, e, "s")[0]))
	var want []string
	for i := 1; i <= frames+2; i++ {
		data := padded(i, pad)
		publish(t, e, "users", data)
		want = append(want, frame("s", `{"users":`+data+`}`))
	}
	if len(want[0]) != 1024 {
		t.Fatalf("frame of %d bytes, want 1024", len(want[0]))
	}
	r := newWindowReader(e)
	n, _, lent, err := e.NextAhead("s", r.dst, r.w)
	if err != nil || lent != frames {
		t.Fatalf("lent %d frames, %v; want %d", lent, err, frames)
	}
	got := []string{string(r.dst[:n])}
	got = append(got, r.all(t, "s")...)
	wantFrames(t, got, want...)
	if r.took != frames {
		t.Fatalf("took %d frames from the window, want %d", r.took, frames)
	}
}

// A subscription with positions is read through the engine, never lent:
// a reader that keeps up with it gets every event, where frames taken
// from a window but not yet popped would fill its queue and end it.
func TestWindowPositionsSubscriptionLosesNothingWhileItsReaderKeepsUp(t *testing.T) {
	e := newTestExecutor(t, Options{QueueSize: 2})
	registerWith(t, e, Registration{SubscriptionID: "s", Query: `subscription { users { id } }`, Positions: true})
	r := newWindowReader(e)
	for i := 1; i <= 9; i += 2 {
		publishUsers(t, e, i, i+1)
		for _, id := range []int{i, i + 1} {
			f, err := r.next("s")
			if err != nil || !strings.HasPrefix(f, fmt.Sprintf(`{"type":"next","id":"s","payload":{"data":{"users":{"id":%d}},`, id)) {
				t.Fatalf("frame of user %d: %s, %v", id, f, err)
			}
		}
	}
	if r.took != 0 {
		t.Fatalf("took %d frames from the window", r.took)
	}
}

// The reader's claim against a take-back that lands between its load of
// Next and its compare-and-swap, for every way the engine takes a window
// back: the stale claim must fail, and each message is then delivered (or
// dropped) once, by the engine. The test is the reader, so the interleaving
// is exact, not left to a stress run.
func TestWindowClaimRacedByTakeBackFails(t *testing.T) {
	takeBacks := map[string]func(t *testing.T, e *Executor, r *windowReader) []string{
		"Next":  func(t *testing.T, e *Executor, r *windowReader) []string { return nextAll(t, e, "s") },
		"Drain": func(t *testing.T, e *Executor, r *windowReader) []string { return drainAll(t, e) },
		"Close": func(t *testing.T, e *Executor, r *windowReader) []string { r.w.Close(); return nil },
		"OtherWindow": func(t *testing.T, e *Executor, r *windowReader) []string {
			return newWindowReader(e).all(t, "s")
		},
		"FullQueueDrop": func(t *testing.T, e *Executor, r *windowReader) []string {
			publishUsers(t, e, 4, 5) // 2 and 3 lent, 4 queued: 5 drops 2
			return nil
		},
	}
	for name, takeBack := range takeBacks {
		t.Run(name, func(t *testing.T) {
			e := newTestExecutor(t, Options{QueueSize: 3})
			register(t, e, sub{id: "s"})
			publishUsers(t, e, 1, 3)
			r := newWindowReader(e)
			got := []string{must(r.next("s"))} // 1 read, 2 and 3 lent
			sh := r.w.Shared()
			k := sh.Next.Load()
			if k != 0 || sh.Count != 2 {
				t.Fatalf("window next %d count %d, want 0 and 2", k, sh.Count)
			}
			got = append(got, takeBack(t, e, r)...)
			if sh.Next.CompareAndSwap(k, k+1) {
				t.Fatalf("a claim loaded before the take-back succeeded after it (next %d)", sh.Next.Load())
			}
			got = append(got, nextAll(t, e, "s")...)
			m := e.Metrics()
			if int(m.MessagesRead) != len(got) || m.Queued != 0 ||
				m.MessagesRead+m.EventsDropped != m.EventsDelivered {
				t.Fatalf("got %d frames, metrics %+v", len(got), m)
			}
			seen := map[string]bool{}
			for _, f := range got {
				if seen[f] {
					t.Fatalf("%s delivered twice", f)
				}
				seen[f] = true
			}
		})
	}
}

func drainAll(t *testing.T, e *Executor) []string {
	t.Helper()
	frames, n, err := e.DrainConnection("c", 0)
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		return nil
	}
	return strings.Split(frames, "\n")
}

// A window lending one subscription's frames does not make its connection's
// other subscriptions ready again: one whose queue was already non-empty
// is not reported by TakeReady when it grows.
func TestWindowReadyFDLeavesOtherSubscriptionsOfTheConnection(t *testing.T) {
	e := newTestExecutor(t, Options{})
	register(t, e, sub{id: "a"}, sub{id: "b"})
	if _, err := e.ReadyFD(); err != nil {
		t.Fatal(err)
	}
	publishUsers(t, e, 1, 3)
	if ids, _ := e.TakeReady(); !slices.Equal(ids, []string{"a", "b"}) {
		t.Fatalf("ready %q", ids)
	}
	r := newWindowReader(e)
	wantFrames(t, []string{must(r.next("a"))}, usersFrames("a", 1, 1)...)
	if r.w.Shared().Count == 0 {
		t.Fatal("the window lends nothing of a")
	}
	publishUsers(t, e, 4, 4)
	if ids, _ := e.TakeReady(); !slices.Equal(ids, []string{"a"}) {
		t.Fatalf("ready while a's frames are lent: %q", ids)
	}
	wantFrames(t, nextAll(t, e, "b"), usersFrames("b", 1, 4)...)
}
