//go:build !mutate

package subscriptions

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/fraiseql/fraiseql-subscriptions/internal/redistest"
)

// waitNum waits until c has received the event numEvent(n) and returns
// the events received up to then: a marker published last tells that
// everything before it has been delivered.
func waitNum(t *testing.T, c *collector, n int) []Event {
	t.Helper()
	want := fmt.Sprintf(`{"n":%d}`, n)
	deadline := time.Now().Add(10 * time.Second)
	for {
		evs := c.events()
		for _, ev := range evs {
			if string(ev.Data) == want {
				return evs
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("event %s not received; got %v", want, dataOf(evs))
		}
		time.Sleep(5 * time.Millisecond) // poll interval
	}
}

// nums is 1, 2, ..., n.
func nums(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i + 1
	}
	return out
}

// commandLog, a go-redis hook, records the name and subcommand of every
// command sent, the ones that set up a new connection included (when it
// is added before the client's first connection).
type commandLog struct {
	mu   sync.Mutex
	sent []string
}

func (h *commandLog) record(cmds ...redis.Cmder) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, cmd := range cmds {
		args := cmd.Args()
		name := fmt.Sprint(args[0])
		if len(args) > 1 {
			name += " " + fmt.Sprint(args[1])
		}
		h.sent = append(h.sent, strings.ToLower(name))
	}
}

func (h *commandLog) commands() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.sent...)
}

func (h *commandLog) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *commandLog) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.record(cmd)
		return next(ctx, cmd)
	}
}

func (h *commandLog) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.record(cmds...)
		return next(ctx, cmds)
	}
}

// The bus's connections do not identify the client library (CLIENT
// SETINFO, which go-redis sends on every new connection unless told not
// to): a server before Redis 7.2, and miniredis, answers it with an error
// that it counts in its error statistics, and on a later one a user whose
// ACL leaves out CLIENT gets a denial in the ACL log, for every connection.
func TestRedisBusConnectionsSendNoClientSetinfo(t *testing.T) {
	mr := miniredis.RunT(t)
	b := newRedisTestBus(t, redisURL(mr), RedisOptions{})
	sent := &commandLog{}
	b.client.AddHook(sent) // before the first connection: its setup is recorded too
	c := &collector{settle: func(t *testing.T) { waitAcked(t, b) }}
	if err := b.Start(context.Background(), c.deliver); err != nil {
		t.Fatal(err)
	}
	publishNums(t, b, 1)
	wantNums(t, c.wait(t, 1), 1)
	cmds := sent.commands()
	if !contains(cmds, "hello 3") {
		t.Fatalf("the setup of the connections was not recorded: %v", cmds)
	}
	for _, cmd := range cmds {
		if strings.HasPrefix(cmd, "client") {
			t.Fatalf("the bus sent %q; all it sent: %v", cmd, cmds)
		}
	}
}

// While another executor holds a reader's InstanceID, it reads as the same
// consumer; entries it read and did not acknowledge (it stopped) stay
// pending on that consumer. Once the reader has the lease back, it re-reads
// them before the new entries.
func TestRedisBusReaderRereadsWhatAnotherLeftPendingUnderItsLease(t *testing.T) {
	mr := miniredis.RunT(t)
	logs := &logCollector{}
	b := newRedisTestBus(t, redisURL(mr), RedisOptions{InstanceID: "x", Logger: logs})
	b.lease.ttl = 300 * time.Millisecond // renewed every 100 ms
	c := &collector{settle: func(t *testing.T) { waitAcked(t, b) }}
	if err := b.Start(context.Background(), c.deliver); err != nil {
		t.Fatal(err)
	}
	publishNums(t, b, 1)
	wantNums(t, c.wait(t, 1), 1) // the reader has read what was pending, and reads new entries
	ctx := context.Background()
	raw := rawClient(t, mr)
	if err := raw.Set(ctx, b.lease.key, "another executor's token", 0).Err(); err != nil {
		t.Fatal(err)
	}
	logs.waitFor(t, LogWarning, "Redis bus reader paused: ")
	publishNums(t, b, 2, 3)
	res, err := raw.XReadGroup(ctx, &redis.XReadGroupArgs{Group: b.group, Consumer: b.consumer,
		Streams: []string{defaultRedisStream, ">"}, Block: -1}).Result()
	if err != nil || len(res) != 1 || len(res[0].Messages) != 2 {
		t.Fatalf("the other executor's read: %v %v", res, err)
	}
	publishNums(t, b, 4)
	if err := raw.Del(ctx, b.lease.key).Err(); err != nil {
		t.Fatal(err)
	}
	wantNums(t, waitNum(t, c, 4), 1, 2, 3, 4)
	wantNums(t, c.wait(t, 4), 1, 2, 3, 4)
}

// More entries are pending than one read returns (redisReadCount): a
// restarted executor re-reads them all, page after page, before the new
// entries. Against redis-server: miniredis ignores COUNT when it re-reads
// pending entries, and returns them all at once.
func TestRedisBusRereadsEveryPageOfPendingEntries(t *testing.T) {
	srv := redistest.Start(t)
	opts := RedisOptions{InstanceID: "many"}
	b, _ := startRedisTestBus(t, srv.URL(), opts)
	if err := b.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The previous run received redisReadCount+1 entries and acknowledged none.
	n := redisReadCount + 1
	pub := newRedisTestBus(t, srv.URL(), RedisOptions{})
	evs := make([]Event, n)
	for i := range evs {
		evs[i] = numEvent(i + 1)
	}
	if err := pub.PublishBatch(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
	res, err := pub.client.XReadGroup(context.Background(), &redis.XReadGroupArgs{Group: b.group, Consumer: b.consumer,
		Streams: []string{defaultRedisStream, ">"}, Block: -1}).Result()
	if err != nil || len(res) != 1 || len(res[0].Messages) != n {
		t.Fatalf("the previous run's read: %d streams, %v", len(res), err)
	}

	_, c := startRedisTestBus(t, srv.URL(), opts)
	publishNums(t, pub, n+1)
	if got := waitNum(t, c, n+1); len(got) != n+1 {
		t.Fatalf("%d events up to the new one, want %d", len(got), n+1)
	}
	wantNums(t, c.wait(t, n+1), nums(n+1)...)
}

// Redis loses its data (a restart without persistence, a flush) under a
// running reader: it recreates its group and the stream's new epoch, and
// the events after the loss carry that epoch, so that their positions are
// never taken for positions of the stream that was lost.
func TestRedisBusEventsAfterDataLossCarryTheNewEpoch(t *testing.T) {
	mr := miniredis.RunT(t)
	b, c := startRedisTestBus(t, redisURL(mr), RedisOptions{})
	publishNums(t, b, 1)
	before := c.wait(t, 1)[0].pos.epoch
	mr.FlushAll()
	publishNums(t, b, 2)
	evs := c.wait(t, 2)
	wantNums(t, evs, 1, 2)
	now, err := rawClient(t, mr).Get(context.Background(), b.epochKey()).Result()
	if err != nil {
		t.Fatal(err)
	}
	if now == before || evs[1].pos.epoch != now {
		t.Fatalf("epoch before the loss %q, in Redis now %q, of the event after the loss %q", before, now, evs[1].pos.epoch)
	}
	if s := b.Stats(); s.Reconnects < 1 {
		t.Fatalf("stats %+v", s)
	}
}

// Redis refuses to recreate a lost group (as a server over its maxmemory
// refuses XGROUP CREATE ... MKSTREAM): the reader does not report the
// connection restored, nor count a reconnect, until the group is back.
func TestRedisBusNotRestoredUntilItsGroupIsBack(t *testing.T) {
	mr := miniredis.RunT(t)
	logs := &logCollector{}
	b := newRedisTestBus(t, redisURL(mr), RedisOptions{Logger: logs})
	refuse := &refuseGroupCreate{refused: make(chan struct{})}
	b.client.AddHook(refuse)
	c := &collector{settle: func(t *testing.T) { waitAcked(t, b) }}
	if err := b.Start(context.Background(), c.deliver); err != nil {
		t.Fatal(err)
	}
	publishNums(t, b, 1)
	wantNums(t, c.wait(t, 1), 1)
	refuse.left.Store(2)
	if err := rawClient(t, mr).XGroupDestroy(context.Background(), defaultRedisStream, b.group).Err(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-refuse.refused:
	case <-time.After(10 * time.Second):
		t.Fatal("the reader did not try to recreate its group twice")
	}
	// The reader failed twice to recreate the group: it has reported nothing
	// restored (it would have before its second attempt).
	if s := b.Stats(); s.Reconnects != 0 {
		t.Fatalf("reconnects counted while the group could not be created: %+v", s)
	}
	logs.mu.Lock()
	for _, r := range logs.recs {
		if strings.Contains(r.Msg, "restored") {
			t.Errorf("logged while the group could not be created: %+v", r)
		}
	}
	logs.mu.Unlock()
	logs.waitFor(t, LogInfo, "Redis bus connection restored to ")
	publishNums(t, b, 2)
	wantNums(t, c.wait(t, 2), 1, 2)
	if s := b.Stats(); s.Reconnects != 1 {
		t.Fatalf("stats %+v", s)
	}
}

// refuseGroupCreate, a go-redis hook, refuses the next left XGROUP CREATE
// commands, with the error of a server over its maxmemory, and closes
// refused after the last.
type refuseGroupCreate struct {
	left    atomic.Int64
	refused chan struct{}
}

func (h *refuseGroupCreate) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *refuseGroupCreate) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

func (h *refuseGroupCreate) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		args := cmd.Args()
		if len(args) < 2 || !strings.EqualFold(fmt.Sprint(args[0]), "xgroup") || !strings.EqualFold(fmt.Sprint(args[1]), "create") {
			return next(ctx, cmd)
		}
		n := h.left.Add(-1)
		if n < 0 {
			return next(ctx, cmd)
		}
		if n == 0 {
			close(h.refused)
		}
		err := errors.New("OOM command not allowed when used memory > 'maxmemory'.")
		cmd.SetErr(err)
		return err
	}
}
