//go:build !mutate

// The engine area of `make mutate` builds without this file (tag mutate):
// its tests use Redis or PostgreSQL and would slow every engine mutant's
// run. The buses area runs them.

package subscriptions

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
)

func TestRedisBusPublishBatchInOrderAcrossPipelines(t *testing.T) {
	mr := miniredis.RunT(t)
	b, c := startRedisTestBus(t, redisURL(mr), RedisOptions{})
	n := redisMaxPipeline + 7 // two pipelines
	evs := make([]Event, n)
	nums := make([]int, n)
	for i := range evs {
		evs[i], nums[i] = numEvent(i), i
	}
	if err := b.PublishBatch(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
	wantNums(t, c.wait(t, n), nums...)
	if s := b.Stats(); s.Published != uint64(n) || s.Received != uint64(n) {
		t.Fatalf("stats %+v", s)
	}
	if err := b.PublishBatch(context.Background(), nil); err != nil {
		t.Fatalf("empty batch: %v", err)
	}
}

func TestRedisBusPublishBatchWhileDownFailsEveryEvent(t *testing.T) {
	mr := miniredis.RunT(t)
	b, _ := startRedisTestBus(t, redisURL(mr), RedisOptions{})
	mr.Close()
	err := b.PublishBatch(context.Background(), []Event{numEvent(1), numEvent(2), numEvent(3)})
	var be *BatchError
	if !errors.As(err, &be) || len(be.Errs) != 3 {
		t.Fatalf("got %v", err)
	}
	for i, e := range be.Errs {
		if e == nil || !strings.HasPrefix(e.Error(), "publishing to Redis failed: ") {
			t.Fatalf("event %d: %v", i, e)
		}
	}
	if s := b.Stats(); s.Published != 0 {
		t.Fatalf("published %d", s.Published)
	}
	_ = b.Close(context.Background())
	if err := b.PublishBatch(context.Background(), []Event{numEvent(1)}); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
}

func TestRedisExecutorGroupCommitDeliversEveryEventOnceInOrder(t *testing.T) {
	mr := miniredis.RunT(t)
	e, err := NewExecutor(context.Background(), Options{
		QueueSize: 100000,
		Bus:       BusConfig{Kind: BusRedis, Redis: RedisOptions{URL: redisURL(mr), ConsumerGroup: "gc"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(context.Background())
	if err := e.Register(Registration{ConnectionID: "c", SubscriptionID: "s", Query: "subscription { items { n } }"}); err != nil {
		t.Fatal(err)
	}
	const threads, per = 8, 300
	var wg sync.WaitGroup
	for th := range threads {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range per {
				if err := e.Publish(context.Background(), numEvent(th*per+i)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	got := make([]int, 0, threads*per)
	deadline := time.Now().Add(10 * time.Second)
	for len(got) < threads*per && time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		frame, err := e.NextWait(ctx, "s")
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if frame == "" {
			continue
		}
		var n int
		if _, err := fmtSscanN(frame, &n); err != nil {
			t.Fatalf("frame %s: %v", frame, err)
		}
		got = append(got, n)
	}
	if len(got) != threads*per {
		t.Fatalf("got %d events, want %d", len(got), threads*per)
	}
	last := make([]int, threads)
	for i := range last {
		last[i] = -1
	}
	for _, n := range got {
		th, i := n/per, n%per
		if i != last[th]+1 {
			t.Fatalf("thread %d: event %d after %d", th, i, last[th])
		}
		last[th] = i
	}
	if m := e.Metrics(); m.EventsPublished != threads*per || m.BusPublished != threads*per {
		t.Fatalf("metrics %+v", m)
	}
}

// fmtSscanN reads n from a frame {"...":{"items":{"n":N}}}.
func fmtSscanN(frame string, n *int) (int, error) {
	i := strings.LastIndex(frame, `"n":`)
	if i < 0 {
		return 0, errors.New("no n")
	}
	rest := frame[i+4:]
	j := strings.IndexAny(rest, "}")
	v := 0
	for _, r := range rest[:j] {
		v = v*10 + int(r-'0')
	}
	*n = v
	return 1, nil
}

// logCollector is a Logger that keeps what it is told.
type logCollector struct {
	mu   sync.Mutex
	recs []LogRecord
}

func (l *logCollector) Log(level LogLevel, name, msg string) {
	l.mu.Lock()
	l.recs = append(l.recs, LogRecord{Level: level, Name: name, Msg: msg})
	l.mu.Unlock()
}

func (l *logCollector) waitFor(t *testing.T, level LogLevel, substr string) LogRecord {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		l.mu.Lock()
		for _, r := range l.recs {
			if r.Level == level && strings.Contains(r.Msg, substr) {
				l.mu.Unlock()
				return r
			}
		}
		l.mu.Unlock()
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no level %d record with %q in %+v", level, substr, l.recs)
	return LogRecord{}
}

func TestRedisBusLogsLostAndRestoredWithoutSecrets(t *testing.T) {
	mr := miniredis.RunT(t)
	mr.RequireAuth("s3cret-pw")
	addr := mr.Addr()
	url := "redis://:s3cret-pw@" + addr
	logs := &logCollector{}
	b, c := startRedisTestBus(t, url, RedisOptions{Logger: logs})
	mr.Close()
	lost := logs.waitFor(t, LogWarning, "Redis bus connection lost to redis://:***@"+addr)
	restartMiniredis(t, mr)
	restored := logs.waitFor(t, LogInfo, "Redis bus connection restored to redis://:***@"+addr)
	for _, r := range []LogRecord{lost, restored} {
		if r.Name != "bus" || strings.Contains(r.Msg, "s3cret-pw") {
			t.Fatalf("record %+v", r)
		}
	}
	publishNums(t, b, 1)
	wantNums(t, c.wait(t, 1), 1)
}

func TestLogSinkKeepsTheNewestAndCountsDrops(t *testing.T) {
	s := NewLogSink(2)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	recs, dropped := s.Wait(ctx)
	cancel()
	if recs != nil || dropped != 0 {
		t.Fatalf("empty sink returned %v %d", recs, dropped)
	}
	s.Log(LogInfo, "bus", "one")
	s.Log(LogWarning, "bus", "two")
	s.Log(LogError, "bus", "three")
	recs, dropped = s.Wait(context.Background())
	if dropped != 1 || len(recs) != 2 || recs[0].Msg != "two" || recs[1].Msg != "three" || recs[1].Level != LogError {
		t.Fatalf("got %+v, %d dropped", recs, dropped)
	}
	got := make(chan []LogRecord)
	go func() {
		r, _ := s.Wait(context.Background())
		got <- r
	}()
	time.Sleep(10 * time.Millisecond)
	s.Log(LogInfo, "bus", "four")
	if r := <-got; len(r) != 1 || r[0].Msg != "four" {
		t.Fatalf("waiter got %+v", r)
	}
}
