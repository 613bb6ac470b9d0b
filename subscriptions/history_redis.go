package subscriptions

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// The Redis bus's positions are stream entry ids under an epoch kept in
// the key Stream + ":epoch". The epoch is replaced whenever an executor
// finds the stream missing (first start, a Redis restarted without
// persistence, a flushed database), so the ids of an earlier stream are
// never read as ids of the new one. Its history is the stream itself, up
// to MaxLen entries: XINFO STREAM (Redis 7) tells whether entries after a position were trimmed (see expiredAfter).

// redisEpochScript sets the epoch key to ARGV[1] when the stream does not
// exist or the key is missing, and returns the key's value.
var redisEpochScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('EXISTS', KEYS[2]) == 0 then
	redis.call('SET', KEYS[2], ARGV[1])
end
return redis.call('GET', KEYS[2])`)

// epochKey is the key of the stream's epoch.
func (b *redisBus) epochKey() string { return b.opts.Stream + ":epoch" }

// renewEpochIfNew replaces the epoch when the stream is missing: call it
// before anything creates the stream, then loadEpoch once it exists.
func (b *redisBus) renewEpochIfNew(ctx context.Context) error {
	return redisEpochScript.Run(ctx, b.client, []string{b.opts.Stream, b.epochKey()}, newEpoch('r')).Err()
}

// loadEpoch reads the epoch in force (several executors may have raced
// to set it; they all read the last one).
func (b *redisBus) loadEpoch(ctx context.Context) error {
	ep, err := b.client.Get(ctx, b.epochKey()).Result()
	if err != nil {
		return err
	}
	if ep == "" || ep[0] != 'r' {
		return fmt.Errorf("the key %q does not hold a stream epoch", b.epochKey())
	}
	b.ep.Store(&ep)
	return nil
}

func (b *redisBus) epoch() string {
	if ep := b.ep.Load(); ep != nil {
		return *ep
	}
	return ""
}

// entryPosition is the position of a stream entry.
func (b *redisBus) entryPosition(id streamID) position {
	return position{epoch: b.epoch(), hi: id.ms, lo: id.seq}
}

// expiredAfter tells whether entries after p may have left the stream.
// Trimming moves the first entry's id (recorded-first-entry-id) forward,
// XDEL the highest deleted id (max-deleted-entry-id); an empty stream that
// had entries after p lost them. Redis does not say whether an entry
// existed between p and the first one kept, so only a first entry that
// directly follows p proves nothing was lost: a position whose own entry
// was just trimmed may be refused although nothing after it was.
func expiredAfter(p position, info *redis.XInfoStream) bool {
	at := streamID{ms: p.hi, seq: p.lo}
	last, _ := parseStreamID(info.LastGeneratedID)
	if info.Length == 0 {
		return at.less(last)
	}
	if deleted, ok := parseStreamID(info.MaxDeletedEntryID); ok && at.less(deleted) {
		return true
	}
	first, ok := parseStreamID(info.RecordedFirstEntryID)
	if !ok {
		first, ok = parseStreamID(info.FirstEntry.ID)
	}
	next := streamID{ms: at.ms, seq: at.seq + 1}
	return ok && next.less(first)
}

func (b *redisBus) expiredError(p position) error {
	return positionError(ErrPositionExpired, p.String(),
		"the events after position %s are no longer in the Redis stream %q (trimmed to about %d entries)", p, b.opts.Stream, b.opts.MaxLen)
}

func (b *redisBus) checkPosition(ctx context.Context, p position) error {
	info, err := b.client.XInfoStream(ctx, b.opts.Stream).Result()
	if err != nil {
		return busError("reading the Redis stream's history failed: "+Redacted(err, b.opts.URL), err)
	}
	if last, _ := parseStreamID(info.LastGeneratedID); last.less(streamID{ms: p.hi, seq: p.lo}) {
		return positionError(ErrPositionInvalid, p.String(), "the position %s is after the last event of this bus", p)
	}
	if expiredAfter(p, info) {
		return b.expiredError(p)
	}
	return nil
}

// history reads the entries after p, then the stream's first and
// deleted ids, in one round trip: those only move forward, so when they
// show nothing after p lost, nothing was when the entries were read.
func (b *redisBus) history(ctx context.Context, p position, n int, _ position) ([]Event, error) {
	pipe := b.client.Pipeline()
	rng := pipe.XRangeN(ctx, b.opts.Stream, "("+streamID{ms: p.hi, seq: p.lo}.String(), "+", int64(n))
	info := pipe.XInfoStream(ctx, b.opts.Stream)
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, busError("reading the Redis stream's history failed: "+Redacted(err, b.opts.URL), err)
	}
	if expiredAfter(p, info.Val()) {
		return nil, b.expiredError(p)
	}
	msgs := rng.Val()
	out := make([]Event, 0, len(msgs))
	for _, m := range msgs {
		id, ok := parseStreamID(m.ID)
		if !ok {
			continue
		}
		ev, _ := entryEvent(m.Values)
		ev.pos = b.entryPosition(id)
		out = append(out, ev)
	}
	return out, nil
}
