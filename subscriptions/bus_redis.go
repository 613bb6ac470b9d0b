package subscriptions

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	json "github.com/goccy/go-json"
	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// Defaults of RedisOptions.
const (
	defaultRedisStream      = "fraiseql:events"
	defaultRedisMaxLen      = 100000
	defaultGroupIdleTimeout = time.Hour
	defaultRedisDialTimeout = 5 * time.Second
)

// Tuning of the Redis reader.
const (
	redisReadBlock = time.Second // XREADGROUP BLOCK: bounds how long Close waits
	// Entries per XREADGROUP: large enough that one read and one XACK
	// carry a whole burst of group-committed publishes.
	redisReadCount = 1000
	// At most this many XADDs go in one pipeline; a longer batch is sent
	// as several pipelines, one after the other.
	redisMaxPipeline = 1000
	// redisAckEvery: the reader acknowledges every this many dispatched
	// entries, which bounds what a crash can deliver again.
	redisAckEvery   = 100
	redisBackoffMin = 50 * time.Millisecond
	redisBackoffMax = time.Second // also bounds how late "restored" is logged

	redisMaxCleanupEvery = time.Minute
	redisMinCleanupEvery = time.Second
)

// redisBus is the Redis Streams bus. All channels share one stream; every
// executor reads the whole stream through a consumer group of its own
// (ConsumerGroup + ":" + InstanceID) with itself as the only consumer, so
// every executor sees every event, in stream order. A group remembers what
// its executor has read and acknowledged, so an executor restarted with
// the same InstanceID resumes where it stopped.
type redisBus struct {
	opts     RedisOptions // with defaults applied
	log      Logger
	client   *redis.Client
	group    string      // this executor's consumer group
	consumer string      // this executor's consumer name: its instance id
	randomID bool        // the instance id was generated: destroy the group on Close
	lease    *redisLease // the claim on a given instance id; nil for a random one

	mu      sync.Mutex // serializes Start and Close
	started bool
	made    bool // Start created or found the group
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	closed  atomic.Bool

	// hold, when set, keeps the reader from reading until it is closed
	// (an executor started paused; see pause.go).
	hold <-chan struct{}

	gate deliveryGate // Close stops delivery before the executor closes

	// Owned by the reader goroutine once started.
	deliver func(Event)
	last    streamID // last dispatched entry: nothing <= it is dispatched again
	// floor is the group's position when Start created or found it. It is
	// where the group is recreated if it disappears before anything was
	// dispatched.
	floor streamID
	// ep is the epoch of the stream's positions (history_redis.go).
	ep atomic.Pointer[string]

	busCounters
}

// NewRedisBus returns a Redis Streams bus. It does not connect: Start
// does, and reports what could not be reached.
func NewRedisBus(opts RedisOptions) (Bus, error) {
	ropts, err := redis.ParseURL(opts.URL)
	if err != nil {
		return nil, valueErrorf("invalid Redis URL %s: %s", RedactURL(opts.URL), redactSecrets(err.Error(), opts.URL))
	}
	if strings.TrimSpace(opts.ConsumerGroup) == "" {
		return nil, valueErrorf("consumer_group must not be empty")
	}
	if opts.Stream == "" {
		opts.Stream = defaultRedisStream
	}
	if opts.MaxLen <= 0 {
		opts.MaxLen = defaultRedisMaxLen
	}
	if opts.GroupIdleTimeout <= 0 {
		opts.GroupIdleTimeout = defaultGroupIdleTimeout
	}
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = defaultRedisDialTimeout
	}
	b := &redisBus{opts: opts, log: orNop(opts.Logger)}
	if opts.InstanceID == "" {
		var raw [8]byte
		_, _ = rand.Read(raw[:]) // never fails (crypto/rand panics instead)
		b.consumer = hex.EncodeToString(raw[:])
		b.randomID = true
	} else {
		b.consumer = opts.InstanceID
	}
	b.group = opts.ConsumerGroup + ":" + b.consumer
	if !b.randomID {
		b.lease = newRedisLease(opts.Stream, b.group)
	}

	// Fail fast rather than hide outages: no command retries (a retried
	// XADD whose first attempt reached the server would publish the event
	// twice), one dial attempt per command, and short timeouts. The reader
	// does its own reconnecting with backoff.
	ropts.MaxRetries = -1
	ropts.DialerRetries = 1
	ropts.DialTimeout = opts.DialTimeout
	if ropts.ReadTimeout == 0 {
		ropts.ReadTimeout = 3 * time.Second
	}
	if ropts.WriteTimeout == 0 {
		ropts.WriteTimeout = 3 * time.Second
	}
	ropts.PoolTimeout = opts.DialTimeout
	ropts.ContextTimeoutEnabled = true
	ropts.DisableIdentity = true
	ropts.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	b.client = redis.NewClient(ropts)
	return b, nil
}

// Start implements Bus. It checks the connection (PING), creates this
// executor's group if missing, and starts the reader, which first
// re-delivers the entries that a previous run of this instance received
// but did not acknowledge, then new entries.
func (b *redisBus) Start(ctx context.Context, deliver func(Event)) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed.Load() {
		return ErrClosed
	}
	if b.started {
		return errors.New("the Redis bus is already started")
	}
	if deliver == nil {
		return valueErrorf("deliver must not be nil")
	}
	cctx, cancel := context.WithTimeout(ctx, b.opts.DialTimeout)
	defer cancel()
	if err := b.client.Ping(cctx).Err(); err != nil {
		return b.startError("connecting to Redis at %s failed", err)
	}
	if b.lease != nil {
		if err := b.lease.hold(cctx, b.client, b.consumer); err != nil {
			if errors.Is(err, ErrInstanceInUse) {
				return err
			}
			return b.startError("taking the lease of this executor's instance id on Redis at %s failed", err)
		}
	}
	if err := b.renewEpochIfNew(cctx); err != nil {
		return b.startError("setting the stream's epoch on Redis at %s failed", err)
	}
	floor, err := b.createGroup(cctx, "$")
	if err != nil {
		return b.startError("creating the consumer group of this executor on Redis at %s failed", err)
	}
	if err := b.loadEpoch(cctx); err != nil {
		return b.startError("reading the stream's epoch on Redis at %s failed", err)
	}
	b.floor = floor
	b.deliver = deliver
	b.started = true
	rctx, rcancel := context.WithCancel(context.Background())
	b.cancel = rcancel
	b.wg.Add(2)
	go b.read(rctx)
	go b.cleanLoop(rctx)
	if b.lease != nil {
		b.wg.Add(1)
		go b.leaseLoop(rctx)
	}
	return nil
}

// startError describes a failure of Start without secrets.
func (b *redisBus) startError(format string, err error) error {
	msg := fmt.Sprintf(format, RedactURL(b.opts.URL)) + ": " + Redacted(err, b.opts.URL)
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		msg += fmt.Sprintf(" (no answer within %s)", b.opts.DialTimeout)
	}
	return busError(msg, err)
}

// createGroup creates this executor's group at id unless it exists, and
// returns the group's position.
func (b *redisBus) createGroup(ctx context.Context, id string) (streamID, error) {
	err := b.client.XGroupCreateMkStream(ctx, b.opts.Stream, b.group, id).Err()
	if err != nil && !isBusyGroup(err) {
		return streamID{}, err
	}
	b.made = true
	groups, err := b.client.XInfoGroups(ctx, b.opts.Stream).Result()
	if err != nil {
		return streamID{}, err
	}
	for _, g := range groups {
		if g.Name == b.group {
			pos, _ := parseStreamID(g.LastDeliveredID)
			return pos, nil
		}
	}
	return streamID{}, fmt.Errorf("consumer group %q disappeared right after its creation", b.group)
}

// Publish implements Bus: one XADD (a script that adds it unless its
// idempotency key was seen, for an event with one), without retries.
func (b *redisBus) Publish(ctx context.Context, ev Event) error {
	if b.closed.Load() {
		return ErrClosed
	}
	ts := strconv.FormatInt(time.Now().UnixMilli(), 10)
	var err error
	if ev.IdempotencyKey == "" {
		err = b.client.XAdd(ctx, b.xaddArgs(ev, ts)).Err()
	} else {
		err = b.keyedAdd(ctx, b.client, ev, ts).Err()
	}
	if err != nil && !errors.Is(err, redis.Nil) { // Nil: a repeat, accepted
		return b.publishError(err)
	}
	b.published.Add(1)
	return nil
}

// redisIdempotencyTTL is how long Redis remembers an idempotency key.
const redisIdempotencyTTL = 24 * time.Hour

// redisKeyedAdd adds the entry ARGV[3..] to stream KEYS[1] unless the key
// KEYS[2] exists, which it sets for ARGV[2] ms; nil for a repeat.
var redisKeyedAdd = redis.NewScript(`
if not redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[2]) then return false end
return redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', unpack(ARGV, 3))`)

// keyedAdd runs redisKeyedAdd for ev on c (the client, or a pipeline).
func (b *redisBus) keyedAdd(ctx context.Context, c redis.Scripter, ev Event, ts string) *redis.Cmd {
	return redisKeyedAdd.Eval(ctx, c, []string{b.opts.Stream, b.opts.Stream + ":idem:" + ev.IdempotencyKey},
		b.opts.MaxLen, redisIdempotencyTTL.Milliseconds(), "t", ev.Type, "c", ev.Channel, "d", []byte(ev.Data), "ts", ts)
}

func (b *redisBus) xaddArgs(ev Event, ts string) *redis.XAddArgs {
	return &redis.XAddArgs{
		Stream: b.opts.Stream,
		MaxLen: b.opts.MaxLen,
		Approx: true,
		Values: []any{"t", ev.Type, "c", ev.Channel, "d", []byte(ev.Data), "ts", ts},
	}
}

func (b *redisBus) publishError(err error) error {
	if b.closed.Load() {
		return ErrClosed
	}
	if redisOutcomeUnknown(err) {
		return outcomeUnknown("Redis", Redacted(err, b.opts.URL), err)
	}
	return busError("publishing to Redis failed: "+Redacted(err, b.opts.URL), err)
}

// redisOutcomeUnknown tells whether a command may have run although it
// failed: the connection broke or timed out after it was sent. A reply
// from Redis, a failed dial and a full pool mean it did not.
func redisOutcomeUnknown(err error) bool {
	var reply redis.Error
	var opErr *net.OpError
	switch {
	case errors.As(err, &reply), errors.Is(err, redis.ErrPoolTimeout), errors.Is(err, redis.ErrClosed):
		return false
	case errors.As(err, &opErr) && opErr.Op == "dial":
		return false
	}
	return true
}

// PublishBatch implements Bus: the XADDs go in one pipeline (MULTI is not
// used, so each entry succeeds or fails on its own). Redis executes them in
// order and every reply tells whether its entry was added, so the result is
// exact per event, except after a lost connection: the entries whose reply
// never came are reported failed, though Redis may have added some of them
// before the connection broke (as for a single Publish).
func (b *redisBus) PublishBatch(ctx context.Context, evs []Event) error {
	if b.closed.Load() {
		return ErrClosed
	}
	if len(evs) == 0 {
		return nil
	}
	ts := strconv.FormatInt(time.Now().UnixMilli(), 10)
	cmds := make([]redis.Cmder, len(evs))
	var errs []error
	for start := 0; start < len(evs); start += redisMaxPipeline {
		end := min(start+redisMaxPipeline, len(evs))
		pipe := b.client.Pipeline()
		for i := start; i < end; i++ {
			if evs[i].IdempotencyKey == "" {
				cmds[i] = pipe.XAdd(ctx, b.xaddArgs(evs[i], ts))
			} else {
				cmds[i] = b.keyedAdd(ctx, pipe, evs[i], ts)
			}
		}
		_, execErr := pipe.Exec(ctx)
		if execErr == nil {
			b.published.Add(uint64(end - start))
			continue
		}
		if errs == nil {
			errs = make([]error, len(evs))
		}
		for i := start; i < end; i++ {
			// An entry was added when its reply is an id. A failure to get
			// a connection leaves the replies empty without an error.
			switch err := cmds[i].Err(); {
			case errors.Is(err, redis.Nil): // a repeat of a key: accepted
				b.published.Add(1)
			case err != nil:
				errs[i] = b.publishError(err)
			case !replied(cmds[i]):
				errs[i] = b.publishError(execErr)
			default:
				b.published.Add(1)
			}
		}
		var reply redis.Error
		if !errors.As(execErr, &reply) {
			// Not a refusal by Redis but a failed connection: later
			// pipelines would add entries after a gap in the batch.
			for i := end; i < len(evs); i++ {
				errs[i] = b.publishError(execErr)
			}
			break
		}
	}
	for _, err := range errs {
		if err != nil {
			return &BatchError{Errs: errs}
		}
	}
	return nil // errs is nil, or every failure was a repeat of a key
}

// replied tells whether a pipelined command got its reply.
func replied(c redis.Cmder) bool {
	switch c := c.(type) {
	case *redis.StringCmd:
		return c.Val() != ""
	case *redis.Cmd:
		return c.Val() != nil
	}
	return false
}

// Close implements Bus. It stops the reader (within about redisReadBlock,
// or when ctx ends), destroys the group when the instance id was random,
// and closes the connections. Destroying the group is best effort: if
// Redis cannot be reached, the group is left for the idle-group cleanup
// of the other executors.
func (b *redisBus) Close(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed.Swap(true) {
		return nil
	}
	if b.cancel != nil {
		b.cancel()
	}
	stopped := make(chan struct{})
	go func() { b.wg.Wait(); close(stopped) }()
	select {
	case <-stopped:
	case <-ctx.Done():
		// The reader stops on its own once its blocking read returns;
		// closing the client below makes that immediate.
	}
	if b.made && b.randomID && ctx.Err() == nil {
		dctx, cancel := context.WithTimeout(ctx, b.opts.DialTimeout)
		_ = b.client.XGroupDestroy(dctx, b.opts.Stream, b.group).Err()
		cancel()
	}
	if b.started && b.lease != nil && ctx.Err() == nil {
		// Once the reader has stopped: a successor may start at once.
		dctx, cancel := context.WithTimeout(ctx, b.opts.DialTimeout)
		b.lease.release(dctx, b.client)
		cancel()
	}
	if err := b.client.Close(); err != nil && !errors.Is(err, redis.ErrClosed) {
		return busError("closing the Redis connections failed: "+Redacted(err, b.opts.URL), err)
	}
	return nil
}

// read is the reader goroutine: it dispatches entries in stream order and
// reconnects with backoff after failures. A panic (deliver recovers its
// own, so one here is a bug of the reader) is counted and the loop starts
// over from the pending entries, so the executor keeps receiving events.
func (b *redisBus) read(ctx context.Context) {
	defer b.wg.Done()
	if !waitOpen(ctx, b.hold) {
		return
	}
	for !b.readUntilDone(ctx) {
		if !sleepCtx(ctx, redisBackoffMin) {
			return
		}
	}
}

// readUntilDone runs the read loop until ctx ends (true) or it panics (false).
func (b *redisBus) readUntilDone(ctx context.Context) (done bool) {
	defer func() {
		if recover() != nil {
			b.panics.Add(1)
			done = false
		}
	}()
	b.readLoop(ctx)
	return true
}

func (b *redisBus) readLoop(ctx context.Context) {
	bo := backoff{min: redisBackoffMin, max: redisBackoffMax}
	pending := true // re-read this consumer's pending entries first
	broken := false
	var lostAt time.Time
	for ctx.Err() == nil {
		if broken {
			if !sleepCtx(ctx, bo.next()) {
				return
			}
			if err := b.recoverGroup(ctx); err != nil {
				continue
			}
			broken = false
			pending = true
			b.reconnects.Add(1)
			b.log.Log(LogInfo, "bus", fmt.Sprintf("Redis bus connection restored to %s after %.1f s; resuming from the last dispatched entry",
				RedactURL(b.opts.URL), time.Since(lostAt).Seconds()))
		}
		err := b.ensureLease(ctx)
		if errors.Is(err, ErrInstanceInUse) {
			// Another executor holds the id: it reads, this one waits,
			// and re-reads what is pending once it has the lease again.
			pending = true
			if !sleepCtx(ctx, bo.next()) {
				return
			}
			continue
		}
		switch {
		case err != nil:
		case pending:
			if err = b.readPending(ctx); err == nil {
				pending = false
			}
		default:
			err = b.readNew(ctx)
		}
		if errors.Is(err, errLeaseLapsed) {
			pending = true
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			broken = true
			lostAt = time.Now()
			b.log.Log(LogWarning, "bus", fmt.Sprintf("Redis bus connection lost to %s: %s; reconnecting",
				RedactURL(b.opts.URL), Redacted(err, b.opts.URL)))
			continue
		}
		bo.reset()
	}
}

// recoverGroup checks the connection and recreates the group if it
// disappeared (NOGROUP: Redis restarted without persistence, or the group
// was destroyed as idle). The group is recreated at the last dispatched
// entry, so that no entry after it is lost ("$" would lose the entries
// published meanwhile, "0" would replay the whole stream).
func (b *redisBus) recoverGroup(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, b.opts.DialTimeout)
	defer cancel()
	if err := b.client.Ping(cctx).Err(); err != nil {
		return err
	}
	pos := b.last
	if pos.less(b.floor) {
		pos = b.floor
	}
	// A stream lost with Redis's data gets a new epoch.
	if err := b.renewEpochIfNew(cctx); err != nil {
		return err
	}
	err := b.client.XGroupCreateMkStream(cctx, b.opts.Stream, b.group, pos.String()).Err()
	if err != nil && !isBusyGroup(err) {
		return err
	}
	return b.loadEpoch(cctx)
}

// readPending dispatches the entries delivered to this consumer but not
// acknowledged (by a previous run, or before an XACK was lost).
func (b *redisBus) readPending(ctx context.Context) error {
	cursor := "0"
	for ctx.Err() == nil {
		streams, err := b.client.XReadGroup(ctx, &redis.XReadGroupArgs{
			Group:    b.group,
			Consumer: b.consumer,
			Streams:  []string{b.opts.Stream, cursor},
			Count:    redisReadCount,
			Block:    -1,
		}).Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return err
		}
		var msgs []redis.XMessage
		for _, s := range streams {
			msgs = append(msgs, s.Messages...)
		}
		if len(msgs) == 0 {
			return nil
		}
		cursor = msgs[len(msgs)-1].ID
		if err := b.dispatch(ctx, msgs); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// readNew waits up to redisReadBlock for new entries and dispatches them.
func (b *redisBus) readNew(ctx context.Context) error {
	streams, err := b.client.XReadGroup(ctx, &redis.XReadGroupArgs{
		Group:    b.group,
		Consumer: b.consumer,
		Streams:  []string{b.opts.Stream, ">"},
		Count:    redisReadCount,
		Block:    redisReadBlock,
	}).Result()
	if err != nil {
		if errors.Is(err, redis.Nil) {
			return nil
		}
		return err
	}
	for _, s := range streams {
		if err := b.dispatch(ctx, s.Messages); err != nil {
			return err
		}
	}
	return nil
}

// dispatch delivers the entries not dispatched yet, in order, and
// acknowledges them every redisAckEvery entries and at the end. Entries at or before the last dispatched one
// (re-read after a lost XACK) and entries trimmed from the stream are
// only acknowledged. When Close stopped delivery, the entries from the
// first one not delivered on stay pending, for the next run of this
// instance.
func (b *redisBus) dispatch(ctx context.Context, msgs []redis.XMessage) error {
	if b.lease != nil && !b.lease.held() {
		return errLeaseLapsed // the entries stay pending; the loop renews the lease first
	}
	ids := make([]string, 0, len(msgs))
	var stopped error
	for _, m := range msgs {
		id, ok := parseStreamID(m.ID)
		if ok && b.last.less(id) && m.Values != nil {
			if b.panicNext.CompareAndSwap(true, false) {
				panic("test panic in the Redis reader") // armed by tests only
			}
			ev, ts := entryEvent(m.Values)
			ev.pos = b.entryPosition(id)
			// Counted before delivery, so that Stats agrees with what
			// subscribers got once they got it; uncounted if refused.
			if ts > 0 {
				b.receivedAt(time.UnixMilli(ts))
			} else {
				b.received.Add(1)
			}
			if !b.gate.deliver(b.deliver, ev) {
				b.received.Add(^uint64(0))
				stopped = errDeliveryStopped
				break
			}
			b.last = id
		}
		ids = append(ids, m.ID)
		if len(ids) == redisAckEvery {
			if err := b.ack(ctx, ids); err != nil {
				return err
			}
			ids = ids[:0]
		}
	}
	if err := b.ack(ctx, ids); err != nil {
		return err
	}
	return stopped
}

// ack acknowledges ids. A lost XACK is harmless: the entries stay
// pending, are re-read after reconnecting, and are then skipped as
// already dispatched. The ack is sent even when Close is under way, lest
// a restart deliver them again.
func (b *redisBus) ack(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), b.opts.DialTimeout)
	defer cancel()
	return b.client.XAck(actx, b.opts.Stream, b.group, ids...).Err()
}

// stopDelivery implements deliveryStopper: the reader stops, and delivers
// nothing once it returns.
func (b *redisBus) stopDelivery() {
	b.mu.Lock()
	if b.cancel != nil {
		b.cancel()
	}
	b.mu.Unlock()
	b.gate.stop()
}

// entryEvent decodes the fields of a stream entry.
func entryEvent(v map[string]any) (Event, int64) {
	str := func(k string) string {
		s, _ := v[k].(string)
		return s
	}
	ev := Event{Type: str("t"), Channel: str("c")}
	if d, ok := v["d"].(string); ok {
		ev.Data = json.RawMessage(d)
	}
	ts, _ := strconv.ParseInt(str("ts"), 10, 64)
	return ev, ts
}

// cleanLoop destroys the groups of crashed executors at Start and then
// every GroupIdleTimeout/2 (at most every minute).
func (b *redisBus) cleanLoop(ctx context.Context) {
	defer b.wg.Done()
	every := min(b.opts.GroupIdleTimeout/2, redisMaxCleanupEvery)
	every = max(every, redisMinCleanupEvery)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		b.cleanOnce(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// cleanOnce runs one cleanup; a panic is counted and the next tick retries.
func (b *redisBus) cleanOnce(ctx context.Context) {
	defer func() {
		if recover() != nil {
			b.panics.Add(1)
		}
	}()
	destroyed, _ := b.cleanIdleGroups(ctx)
	for _, g := range destroyed {
		b.log.Log(LogInfo, "bus", fmt.Sprintf("destroyed the Redis consumer group %q: its consumers were idle for over %s (a crashed executor)",
			g, b.opts.GroupIdleTimeout))
	}
}

// cleanIdleGroups destroys the groups of this ConsumerGroup whose every
// consumer has been idle for more than GroupIdleTimeout, never this
// executor's own group, and returns their names.
//
// A group without consumers is left alone: its executor created it but
// has not read yet (XREADGROUP creates the consumer), so idle time cannot
// be told; such groups are rare (an executor crashing between XGROUP
// CREATE and its first read) and hold no pending entries. A consumer with
// an unknown idle time (negative) counts as active.
//
// Note that the prefix ConsumerGroup+":" also matches the groups of a
// ConsumerGroup that extends this one with ":" (for example "app" and
// "app:x"); use prefixes that do not nest. An executor whose group was
// destroyed while it was merely stalled recreates it at its last
// dispatched entry and loses nothing.
func (b *redisBus) cleanIdleGroups(ctx context.Context) ([]string, error) {
	cctx, cancel := context.WithTimeout(ctx, b.opts.DialTimeout)
	defer cancel()
	groups, err := b.client.XInfoGroups(cctx, b.opts.Stream).Result()
	if err != nil {
		return nil, err
	}
	prefix := b.opts.ConsumerGroup + ":"
	var destroyed []string
	for _, g := range groups {
		if g.Name == b.group || !strings.HasPrefix(g.Name, prefix) || g.Consumers == 0 {
			continue
		}
		consumers, err := b.client.XInfoConsumers(cctx, b.opts.Stream, g.Name).Result()
		if err != nil || len(consumers) == 0 {
			continue
		}
		idle := true
		for _, c := range consumers {
			if c.Idle < 0 || c.Idle <= b.opts.GroupIdleTimeout {
				idle = false
				break
			}
		}
		if !idle {
			continue
		}
		if err := b.client.XGroupDestroy(cctx, b.opts.Stream, g.Name).Err(); err == nil {
			destroyed = append(destroyed, g.Name)
		}
	}
	return destroyed, nil
}

// sleepCtx waits d, or returns false when ctx ends first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// isBusyGroup tells whether err is Redis saying that the group already exists.
func isBusyGroup(err error) bool { return redis.HasErrorPrefix(err, "BUSYGROUP") }

// streamID is a Redis stream entry id, milliseconds-sequence.
type streamID struct{ ms, seq uint64 }

// parseStreamID parses "ms-seq" (or "ms").
func parseStreamID(s string) (streamID, bool) {
	msPart, seqPart, hasSeq := strings.Cut(s, "-")
	ms, err := strconv.ParseUint(msPart, 10, 64)
	if err != nil {
		return streamID{}, false
	}
	var seq uint64
	if hasSeq {
		if seq, err = strconv.ParseUint(seqPart, 10, 64); err != nil {
			return streamID{}, false
		}
	}
	return streamID{ms, seq}, true
}

func (a streamID) less(b streamID) bool {
	return a.ms < b.ms || (a.ms == b.ms && a.seq < b.seq)
}

func (a streamID) String() string { return fmt.Sprintf("%d-%d", a.ms, a.seq) }

// go-redis logs every failed dial to stderr; inside a Python process that
// floods the application's logs during an outage. The bus reports failures
// through errors and Stats instead.
func init() { redis.SetLogger(silentLogger{}) }

type silentLogger struct{}

func (silentLogger) Printf(context.Context, string, ...any) {}
