//go:build !mutate

// The engine area of `make mutate` builds without this file (tag mutate):
// its tests use Redis or PostgreSQL and would slow every engine mutant's
// run. The buses area runs them.

package subscriptions

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

func newRedisTestBus(t *testing.T, url string, opts RedisOptions) *redisBus {
	t.Helper()
	opts.URL = url
	if opts.ConsumerGroup == "" {
		opts.ConsumerGroup = "test"
	}
	if opts.DialTimeout == 0 {
		opts.DialTimeout = time.Second
	}
	b, err := NewRedisBus(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	return b.(*redisBus)
}

func startRedisTestBus(t *testing.T, url string, opts RedisOptions) (*redisBus, *collector) {
	t.Helper()
	b := newRedisTestBus(t, url, opts)
	c := &collector{settle: func(t *testing.T) { waitAcked(t, b) }}
	if err := b.Start(context.Background(), c.deliver); err != nil {
		t.Fatal(err)
	}
	return b, c
}

func rawClient(t *testing.T, mr *miniredis.Miniredis) *redis.Client {
	t.Helper()
	cl := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { _ = cl.Close() })
	return cl
}

func groupNames(t *testing.T, cl *redis.Client, stream string) []string {
	t.Helper()
	groups, err := cl.XInfoGroups(context.Background(), stream).Result()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, g := range groups {
		names = append(names, g.Name)
	}
	return names
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func publishNums(t *testing.T, b Bus, nums ...int) {
	t.Helper()
	for _, n := range nums {
		if err := b.Publish(context.Background(), numEvent(n)); err != nil {
			t.Fatalf("publish %d: %v", n, err)
		}
	}
}

func TestRedisBusTwoBusesSeeEverythingOnceInOrder(t *testing.T) {
	mr := miniredis.RunT(t)
	b1, c1 := startRedisTestBus(t, redisURL(mr), RedisOptions{})
	b2, c2 := startRedisTestBus(t, redisURL(mr), RedisOptions{})
	if b1.group == b2.group {
		t.Fatalf("both buses use group %q", b1.group)
	}
	var nums []int
	for i := range 20 {
		bus := Bus(b1)
		if i%2 == 1 {
			bus = b2
		}
		publishNums(t, bus, i)
		nums = append(nums, i)
	}
	wantNums(t, c1.wait(t, 20), nums...)
	wantNums(t, c2.wait(t, 20), nums...)
	ev := c1.events()[0]
	if ev.Type != "created" || ev.Channel != "items" {
		t.Fatalf("event %+v", ev)
	}
	for _, b := range []*redisBus{b1, b2} {
		s := b.Stats()
		if s.Published != 10 || s.Received != 20 || s.Reconnects != 0 || s.LagMillis < 0 {
			t.Fatalf("stats %+v", s)
		}
	}
	// Every entry was acknowledged.
	cl := rawClient(t, mr)
	for _, g := range []string{b1.group, b2.group} {
		p, err := cl.XPending(context.Background(), defaultRedisStream, g).Result()
		if err != nil || p.Count != 0 {
			t.Fatalf("pending of %s: %+v %v", g, p, err)
		}
	}
}

func TestRedisBusDefaultsAndMaxLen(t *testing.T) {
	mr := miniredis.RunT(t)
	b := newRedisTestBus(t, redisURL(mr), RedisOptions{Stream: "s1", MaxLen: 5})
	if b.opts.GroupIdleTimeout != time.Hour || len(b.consumer) != 16 || !b.randomID {
		t.Fatalf("defaults: %+v consumer %q", b.opts, b.consumer)
	}
	// miniredis trims exactly; Redis trims "~" at its own granularity.
	publishNums(t, b, 1, 2, 3, 4, 5, 6, 7, 8)
	cl := rawClient(t, mr)
	if n, _ := cl.XLen(context.Background(), "s1").Result(); n > 5 {
		t.Fatalf("stream not trimmed: %d entries", n)
	}
	entries, _ := cl.XRange(context.Background(), "s1", "-", "+").Result()
	last := entries[len(entries)-1].Values
	if last["t"] != "created" || last["c"] != "items" || last["d"] != `{"n":8}` {
		t.Fatalf("entry fields %v", last)
	}
	if _, err := strconv.ParseInt(last["ts"].(string), 10, 64); err != nil {
		t.Fatalf("ts field %v", last["ts"])
	}
}

// An executor that crashed after receiving entries but before acknowledging
// them gets them again when it restarts with the same InstanceID; the
// acknowledged ones are not delivered again.
func TestRedisBusPendingRedeliveredAfterRestart(t *testing.T) {
	mr := miniredis.RunT(t)
	opts := RedisOptions{InstanceID: "exec-1"}
	b, c := startRedisTestBus(t, redisURL(mr), opts)
	publishNums(t, b, 1, 2)
	wantNums(t, c.wait(t, 2), 1, 2)
	if err := b.Close(context.Background()); err != nil {
		t.Fatal(err)
	}

	// Simulate the crash: entries 3 and 4 are read by exec-1 but not acked.
	ctx := context.Background()
	pub := newRedisTestBus(t, redisURL(mr), RedisOptions{})
	publishNums(t, pub, 3, 4)
	cl := rawClient(t, mr)
	res, err := cl.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "test:exec-1", Consumer: "exec-1", Streams: []string{defaultRedisStream, ">"}, Block: -1}).Result()
	if err != nil || len(res[0].Messages) != 2 {
		t.Fatalf("manual read: %v %v", res, err)
	}
	publishNums(t, pub, 5)

	b2, c2 := startRedisTestBus(t, redisURL(mr), opts)
	wantNums(t, c2.wait(t, 3), 3, 4, 5)
	if s := b2.Stats(); s.Received != 3 {
		t.Fatalf("stats %+v", s)
	}
	p, err := cl.XPending(ctx, defaultRedisStream, "test:exec-1").Result()
	if err != nil || p.Count != 0 {
		t.Fatalf("still pending: %+v %v", p, err)
	}
}

func TestRedisBusStableIDResumesFromPosition(t *testing.T) {
	mr := miniredis.RunT(t)
	opts := RedisOptions{InstanceID: "exec-2"}
	b, c := startRedisTestBus(t, redisURL(mr), opts)
	publishNums(t, b, 1)
	wantNums(t, c.wait(t, 1), 1)
	if err := b.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	pub := newRedisTestBus(t, redisURL(mr), RedisOptions{})
	publishNums(t, pub, 2, 3)
	_, c2 := startRedisTestBus(t, redisURL(mr), opts)
	publishNums(t, pub, 4)
	wantNums(t, c2.wait(t, 3), 2, 3, 4)
}

// restartMiniredis restarts a closed miniredis on the same address.
// miniredis (v2.35) cancels its context on Close and Restart does not
// renew it, so blocking commands (XREADGROUP BLOCK) would then return no
// reply at all; renew the context first.
func restartMiniredis(t *testing.T, mr *miniredis.Miniredis) {
	t.Helper()
	mr.Lock()
	mr.Ctx, mr.CtxCancel = context.WithCancel(context.Background())
	mr.Unlock()
	if err := mr.Restart(); err != nil {
		t.Fatal(err)
	}
}

// waitRedisUp waits until the server answers on a fresh connection.
func waitRedisUp(t *testing.T, b *redisBus) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for b.client.Ping(context.Background()).Err() != nil {
		if time.Now().After(deadline) {
			t.Fatal("Redis did not come back")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestRedisBusReconnectsAfterServerRestart(t *testing.T) {
	mr := miniredis.RunT(t)
	b, c := startRedisTestBus(t, redisURL(mr), RedisOptions{})
	publishNums(t, b, 1, 2, 3)
	wantNums(t, c.wait(t, 3), 1, 2, 3)

	mr.Close()
	// An entry that reached the stream but was not read before the cut
	// (miniredis keeps its data across Restart).
	if _, err := mr.XAdd(defaultRedisStream, "*", []string{"t", "created", "c", "items", "d", `{"n":4}`, "ts", strconv.FormatInt(time.Now().UnixMilli(), 10)}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // the reader notices and backs off
	restartMiniredis(t, mr)
	waitRedisUp(t, b)
	publishNums(t, b, 5, 6)
	wantNums(t, c.wait(t, 6), 1, 2, 3, 4, 5, 6)
	if s := b.Stats(); s.Reconnects < 1 || s.Received != 6 || s.Published != 5 {
		t.Fatalf("stats %+v", s)
	}
}

// The group disappears (Redis restarted without persistence, or another
// executor destroyed it as idle): it is recreated at the last dispatched
// entry, so nothing is lost or repeated.
func TestRedisBusRecreatesLostGroup(t *testing.T) {
	mr := miniredis.RunT(t)
	b, c := startRedisTestBus(t, redisURL(mr), RedisOptions{InstanceID: "exec-3"})
	publishNums(t, b, 1, 2)
	wantNums(t, c.wait(t, 2), 1, 2)
	cl := rawClient(t, mr)
	if err := cl.XGroupDestroy(context.Background(), defaultRedisStream, b.group).Err(); err != nil {
		t.Fatal(err)
	}
	publishNums(t, b, 3, 4)
	wantNums(t, c.wait(t, 4), 1, 2, 3, 4)
	if s := b.Stats(); s.Reconnects < 1 {
		t.Fatalf("stats %+v", s)
	}
	if !contains(groupNames(t, cl, defaultRedisStream), b.group) {
		t.Fatal("group not recreated")
	}
}

// waitAcked waits until b's consumer group has been handed every entry of
// the stream and acknowledged them all: b dispatches before it acks, so
// everything it will deliver has been delivered.
func waitAcked(t *testing.T, b *redisBus) {
	t.Helper()
	ctx := context.Background()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		last, err := b.client.XRevRangeN(ctx, b.opts.Stream, "+", "-", 1).Result()
		groups, gerr := b.client.XInfoGroups(ctx, b.opts.Stream).Result()
		if err == nil && gerr == nil {
			for _, g := range groups {
				if g.Name == b.group && g.Pending == 0 && (len(last) == 0 || g.LastDeliveredID == last[0].ID) {
					return
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("group %s not caught up: %v %v %+v %+v", b.group, err, gerr, last, groups)
		}
	}
}

// Entries re-read after a lost XACK are acknowledged, not dispatched again.
func TestRedisBusNeverDispatchesAnIDTwice(t *testing.T) {
	mr := miniredis.RunT(t)
	b := newRedisTestBus(t, redisURL(mr), RedisOptions{})
	c := &collector{}
	b.deliver = c.deliver
	msg := func(id string, n int) redis.XMessage {
		return redis.XMessage{ID: id, Values: map[string]any{"t": "x", "c": "y", "d": fmt.Sprintf(`{"n":%d}`, n)}}
	}
	ctx := context.Background()
	if err := b.dispatch(ctx, []redis.XMessage{msg("5-1", 1), msg("10-2", 2)}); err != nil {
		t.Fatal(err)
	}
	if err := b.dispatch(ctx, []redis.XMessage{msg("5-1", 1), msg("10-2", 2), msg("9-9", 9), msg("10-10", 3), {ID: "11-0"}, msg("100-0", 4)}); err != nil {
		t.Fatal(err)
	}
	wantNums(t, c.events(), 1, 2, 3, 4)
}

func TestRedisStreamIDOrder(t *testing.T) {
	ids := []string{"0-0", "1-0", "1-1", "1-10", "2-0", "10-0", "10-2", "1700000000000-0"}
	for i := range ids {
		for j := range ids {
			a, _ := parseStreamID(ids[i])
			b, _ := parseStreamID(ids[j])
			if a.less(b) != (i < j) {
				t.Fatalf("%s < %s = %v", ids[i], ids[j], a.less(b))
			}
		}
	}
	if id, ok := parseStreamID("12"); !ok || id.String() != "12-0" {
		t.Fatal(id, ok)
	}
	if _, ok := parseStreamID("x-1"); ok {
		t.Fatal("parsed a bad id")
	}
}

func TestRedisBackoffBounds(t *testing.T) {
	bo := backoff{min: 50 * time.Millisecond, max: 2 * time.Second}
	wantMax := 50 * time.Millisecond
	for range 20 {
		d := bo.next()
		if d < wantMax/2 || d > wantMax {
			t.Fatalf("delay %v not in [%v, %v]", d, wantMax/2, wantMax)
		}
		wantMax = min(2*wantMax, 2*time.Second)
	}
	bo.reset()
	if d := bo.next(); d > 50*time.Millisecond {
		t.Fatalf("after reset: %v", d)
	}
}

func TestRedisBusPublishWhileDownFailsFast(t *testing.T) {
	mr := miniredis.RunT(t)
	b, _ := startRedisTestBus(t, "redis://:pub-secret-77@"+mr.Addr(), RedisOptions{})
	mr.RequireAuth("pub-secret-77")
	mr.Close()
	start := time.Now()
	err := b.Publish(context.Background(), numEvent(1))
	if err == nil {
		t.Fatal("publish succeeded while Redis is down")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("publish took %v", d)
	}
	if !strings.HasPrefix(err.Error(), "publishing to Redis failed: ") || strings.Contains(err.Error(), "pub-secret-77") {
		t.Fatalf("error %q", err)
	}
	if s := b.Stats(); s.Published != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestRedisBusStartUnreachable(t *testing.T) {
	// A port nobody listens on: refused at once.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	b := newRedisTestBus(t, "redis://:top-secret-1@"+addr, RedisOptions{DialTimeout: 500 * time.Millisecond})
	start := time.Now()
	err = b.Start(context.Background(), func(Event) {})
	if err == nil {
		t.Fatal("Start succeeded")
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Start took %v", d)
	}
	msg := err.Error()
	if !strings.Contains(msg, "connecting to Redis at redis://:***@"+addr) || strings.Contains(msg, "top-secret-1") {
		t.Fatalf("error %q", msg)
	}

	// A server that accepts and never answers: bounded by DialTimeout.
	l, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			defer conn.Close()
		}
	}()
	b = newRedisTestBus(t, "redis://:top-secret-2@"+l.Addr().String(), RedisOptions{DialTimeout: 300 * time.Millisecond})
	start = time.Now()
	err = b.Start(context.Background(), func(Event) {})
	if err == nil {
		t.Fatal("Start succeeded")
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Start took %v", d)
	}
	if msg := err.Error(); !strings.Contains(msg, "no answer within 300ms") || strings.Contains(msg, "top-secret-2") {
		t.Fatalf("error %q", msg)
	}
}

func TestRedisBusWrongPassword(t *testing.T) {
	mr := miniredis.RunT(t)
	mr.RequireAuth("right-password-9")
	b := newRedisTestBus(t, "redis://:wrong-password-9@"+mr.Addr(), RedisOptions{})
	err := b.Start(context.Background(), func(Event) {})
	if err == nil {
		t.Fatal("Start succeeded with a wrong password")
	}
	msg := err.Error()
	if strings.Contains(msg, "wrong-password-9") || strings.Contains(msg, "right-password-9") || !strings.Contains(msg, "redis://:***@") {
		t.Fatalf("error %q", msg)
	}
	if !strings.Contains(strings.ToUpper(msg), "WRONGPASS") && !strings.Contains(strings.ToLower(msg), "password") {
		t.Fatalf("error does not say what is wrong: %q", msg)
	}
	// The right password works.
	startRedisTestBus(t, "redis://:right-password-9@"+mr.Addr(), RedisOptions{})
}

func TestRedisBusInvalidOptions(t *testing.T) {
	_, err := NewRedisBus(RedisOptions{URL: "http://:pw-secret@x", ConsumerGroup: "g"})
	if err == nil || KindOf(err) != KindValue || strings.Contains(err.Error(), "pw-secret") {
		t.Fatalf("error %v", err)
	}
	_, err = NewRedisBus(RedisOptions{URL: "redis://localhost:6379", ConsumerGroup: " "})
	if err == nil || KindOf(err) != KindValue {
		t.Fatalf("error %v", err)
	}
}

func TestRedisBusCloseDestroysOnlyRandomGroups(t *testing.T) {
	mr := miniredis.RunT(t)
	random, _ := startRedisTestBus(t, redisURL(mr), RedisOptions{})
	stable, _ := startRedisTestBus(t, redisURL(mr), RedisOptions{InstanceID: "keep-me"})
	cl := rawClient(t, mr)
	names := groupNames(t, cl, defaultRedisStream)
	if !contains(names, random.group) || !contains(names, "test:keep-me") {
		t.Fatalf("groups %v", names)
	}
	for _, b := range []*redisBus{random, stable} {
		if err := b.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := b.Close(context.Background()); err != nil { // idempotent
			t.Fatal(err)
		}
	}
	names = groupNames(t, cl, defaultRedisStream)
	if contains(names, random.group) || !contains(names, "test:keep-me") {
		t.Fatalf("groups after Close %v", names)
	}
	if err := random.Publish(context.Background(), numEvent(1)); err != ErrClosed {
		t.Fatalf("publish after Close: %v", err)
	}
	if err := random.Start(context.Background(), func(Event) {}); err != ErrClosed {
		t.Fatalf("Start after Close: %v", err)
	}
}

func TestRedisBusLargePayload(t *testing.T) {
	mr := miniredis.RunT(t)
	b, c := startRedisTestBus(t, redisURL(mr), RedisOptions{})
	data := []byte(`{"blob":"` + strings.Repeat("abcdefgh", 200*1024/8) + `"}`)
	if err := b.Publish(context.Background(), Event{Type: "big", Channel: "blobs", Data: data}); err != nil {
		t.Fatal(err)
	}
	evs := c.wait(t, 1)
	if len(evs) != 1 || !bytes.Equal(evs[0].Data, data) || evs[0].Type != "big" || evs[0].Channel != "blobs" {
		t.Fatalf("got %d events, data %d bytes", len(evs), len(evs[0].Data))
	}
}

func TestRedisBusCleansIdleGroups(t *testing.T) {
	mr := miniredis.RunT(t)
	cl := rawClient(t, mr)
	ctx := context.Background()
	if err := cl.XGroupCreateMkStream(ctx, defaultRedisStream, "init", "$").Err(); err != nil {
		t.Fatal(err)
	}
	// miniredis records a consumer's idle time on XCLAIM only.
	seen := func(group, consumer string, at time.Time) {
		t.Helper()
		mr.SetTime(at)
		defer mr.SetTime(time.Time{})
		if err := cl.XGroupCreate(ctx, defaultRedisStream, group, "$").Err(); err != nil && !isBusyGroup(err) {
			t.Fatal(err)
		}
		if err := cl.XClaim(ctx, &redis.XClaimArgs{Stream: defaultRedisStream, Group: group, Consumer: consumer, MinIdle: 0, Messages: []string{"0-1"}}).Err(); err != nil && err != redis.Nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-2 * time.Hour)
	seen("test:dead", "dead", old)
	seen("test:half", "dead", old)
	seen("test:half", "alive", time.Now())
	seen("test:alive", "alive", time.Now())
	seen("other:dead", "dead", old)
	if err := cl.XGroupCreate(ctx, defaultRedisStream, "test:empty", "$").Err(); err != nil {
		t.Fatal(err)
	}
	consumers, err := cl.XInfoConsumers(ctx, defaultRedisStream, "test:dead").Result()
	if err != nil || len(consumers) != 1 || consumers[0].Idle < time.Hour {
		t.Fatalf("setup: %+v %v", consumers, err)
	}

	logs := &logCollector{}
	b, _ := startRedisTestBus(t, redisURL(mr), RedisOptions{Logger: logs})
	deadline := time.Now().Add(5 * time.Second)
	for contains(groupNames(t, cl, defaultRedisStream), "test:dead") {
		if time.Now().After(deadline) {
			t.Fatal("idle group not destroyed at Start")
		}
		time.Sleep(10 * time.Millisecond)
	}
	logs.waitFor(t, LogInfo, `destroyed the Redis consumer group "test:dead": its consumers were idle for over 1h0m0s (a crashed executor)`)
	names := groupNames(t, cl, defaultRedisStream)
	for _, keep := range []string{"test:half", "test:alive", "other:dead", "test:empty", "init", b.group} {
		if !contains(names, keep) {
			t.Fatalf("group %s destroyed; groups %v", keep, names)
		}
	}
}

// Another executor takes the lease of a running reader's InstanceID (its
// own lapsed meanwhile): the reader pauses, says so once, and reads on
// once the lease is free again, with what was published meanwhile, once.
func TestRedisBusReaderWaitsWhileAnotherHoldsItsLease(t *testing.T) {
	mr := miniredis.RunT(t)
	logs := &logCollector{}
	b := newRedisTestBus(t, redisURL(mr), RedisOptions{InstanceID: "x", Logger: logs})
	b.lease.ttl = 300 * time.Millisecond // renewed every 100 ms
	c := &collector{settle: func(t *testing.T) { waitAcked(t, b) }}
	if err := b.Start(context.Background(), c.deliver); err != nil {
		t.Fatal(err)
	}
	publishNums(t, b, 1)
	wantNums(t, c.wait(t, 1), 1)
	raw := rawClient(t, mr)
	if err := raw.Set(context.Background(), b.lease.key, "another executor's token", 0).Err(); err != nil {
		t.Fatal(err)
	}
	logs.waitFor(t, LogWarning, "Redis bus reader paused: ")
	publishNums(t, b, 2, 3)
	if err := raw.Del(context.Background(), b.lease.key).Err(); err != nil {
		t.Fatal(err)
	}
	wantNums(t, c.wait(t, 3), 1, 2, 3)
	if v := raw.Get(context.Background(), b.lease.key).Val(); v != b.lease.token {
		t.Fatalf("the lease holds %q, not the reader's token", v)
	}
}

// The reader's lease lapses while it waits in XREADGROUP, which then
// returns a new entry: the reader leaves it pending, renews the lease and
// re-reads what is pending, so the entry is delivered, once.
func TestRedisBusLeaseLapsedDuringAReadDeliversWhatItReadOnceRenewed(t *testing.T) {
	mr := miniredis.RunT(t)
	b := newRedisTestBus(t, redisURL(mr), RedisOptions{InstanceID: "x"})
	b.lease.ttl = time.Hour // no renewal by the lease loop during the test: only the reader renews it
	lapse := &lapseInRead{lease: b.lease, lapsed: make(chan struct{})}
	b.client.AddHook(lapse)
	c := &collector{settle: func(t *testing.T) { waitAcked(t, b) }}
	if err := b.Start(context.Background(), c.deliver); err != nil {
		t.Fatal(err)
	}
	publishNums(t, b, 1)
	wantNums(t, c.wait(t, 1), 1)
	lapse.armed.Store(true)
	publishNums(t, b, 2)
	select {
	case <-lapse.lapsed:
	case <-time.After(10 * time.Second):
		t.Fatal("the reader read no new entry")
	}
	wantNums(t, c.wait(t, 2), 1, 2)
	if !b.lease.held() {
		t.Fatal("the reader delivered without renewing its lease")
	}
	publishNums(t, b, 3)
	wantNums(t, c.wait(t, 3), 1, 2, 3)
}

// lapseInRead, a go-redis hook, ends the lease once armed, when a read of new
// entries (XREADGROUP ... >) returns some: as if the lease had expired while
// the read was blocked.
type lapseInRead struct {
	lease  *redisLease
	armed  atomic.Bool
	lapsed chan struct{}
}

func (h *lapseInRead) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *lapseInRead) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

func (h *lapseInRead) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		args := cmd.Args()
		if read, ok := cmd.(*redis.XStreamSliceCmd); ok && cmd.Name() == "xreadgroup" && args[len(args)-1] == ">" &&
			err == nil && len(read.Val()) > 0 && h.armed.CompareAndSwap(true, false) {
			h.lease.until.Store(0)
			close(h.lapsed)
		}
		return err
	}
}

// PublishValid on a distributed bus skips the decoding for well-formed
// data, but not the refusals: what the memory bus refuses is refused here,
// with the same message, and nothing reaches the stream.
func TestRedisPublishValidRefusesWhatDecodingRefuses(t *testing.T) {
	mr := miniredis.RunT(t)
	e := newTestExecutor(t, Options{Bus: BusConfig{Kind: BusRedis, Redis: RedisOptions{URL: redisURL(mr), ConsumerGroup: "g"}}})
	mem := newTestExecutor(t, Options{})
	for _, data := range []string{`{"a":"x\ud800"}`, `{"a":[1,{"b":"\udc00"}]}`, `{"a":1e400}`,
		`{"a":-` + strings.Repeat("9", 400) + `}`, `{"s":"\"1e400","a":{"b":[0,1E999]}}`} {
		ev := Event{Type: "t", Channel: "c", Data: []byte(data)}
		want := mem.PublishValid(context.Background(), ev)
		if want == nil {
			t.Fatalf("the memory bus accepts %s", data)
		}
		if err := e.PublishValid(context.Background(), ev); err == nil || err.Error() != want.Error() {
			t.Errorf("%s: got %v, want %v", data, err, want)
		}
	}
	if n, err := rawClient(t, mr).XLen(context.Background(), defaultRedisStream).Result(); err != nil || n != 0 {
		t.Fatalf("the stream holds %d entries (%v): a refused event reached it", n, err)
	}
	for _, data := range []string{`{"a":"1e400 \"\\ud800"}`, `{"a":1e308,"b":"\ud83d\ude00","c":"\\"}`} {
		if err := e.PublishValid(context.Background(), Event{Type: "t", Channel: "c", Data: []byte(data)}); err != nil {
			t.Errorf("%s: %v", data, err)
		}
	}
}
