package subscriptions

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// One running executor owns an InstanceID on a Redis bus. Its group and
// consumer are named after the id, so two executors sharing it would each
// get part of the stream (XREADGROUP hands every entry to one consumer).
// The owner holds a lease: a key with an expiry, set to a random token,
// that it renews every third of redisLeaseTTL. Start fails with
// ErrInstanceInUse while another token holds it; the lease of an executor
// that crashed expires after redisLeaseTTL. The reader reads only while
// its lease is known to be held: it counts the expiry from before the
// renewal was sent, so it stops before the server lets the key go.

// redisLeaseTTL is the lifetime of a lease that is not renewed.
const redisLeaseTTL = 10 * time.Second

var (
	// redisLeaseHold renews the lease of token ARGV[1], or takes it if it
	// is free: 1, or 0 when another token holds it.
	redisLeaseHold = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
if v then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1`)
	// redisLeaseRelease deletes the lease if token ARGV[1] holds it.
	redisLeaseRelease = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`)
)

// errLeaseLapsed: the reader took entries while its lease was not known
// to be held; they stay pending, read again once it is.
var errLeaseLapsed = errors.New("the lease of the instance id lapsed")

// redisLease is an executor's claim on its InstanceID.
type redisLease struct {
	key   string
	token string
	ttl   time.Duration // redisLeaseTTL outside tests
	until atomic.Int64  // unix nanoseconds up to which it is held; 0: not held
	// warned: the loss of the lease was logged (once per loss).
	warned atomic.Bool
}

func newRedisLease(stream, group string) *redisLease {
	var raw [16]byte
	_, _ = rand.Read(raw[:])
	return &redisLease{key: stream + ":owner:" + group, token: hex.EncodeToString(raw[:]), ttl: redisLeaseTTL}
}

// hold renews or takes the lease.
func (l *redisLease) hold(ctx context.Context, c *redis.Client, id string) error {
	sent := time.Now()
	n, err := redisLeaseHold.Run(ctx, c, []string{l.key}, l.token, l.ttl.Milliseconds()).Int()
	if err != nil {
		return err
	}
	if n == 0 {
		l.until.Store(0)
		return instanceInUse(id, "Redis", "its lease key "+l.key+" is held; the lease of an executor that crashed expires within "+l.ttl.String())
	}
	l.until.Store(sent.Add(l.ttl).UnixNano())
	l.warned.Store(false)
	return nil
}

// held reports whether the lease is known to be held now.
func (l *redisLease) held() bool { return time.Now().UnixNano() < l.until.Load() }

// release gives the lease up, if this executor holds it.
func (l *redisLease) release(ctx context.Context, c *redis.Client) {
	l.until.Store(0)
	_ = redisLeaseRelease.Run(ctx, c, []string{l.key}, l.token).Err()
}

// ensureLease makes sure the lease is held before the reader reads; an
// error other than ErrInstanceInUse is a connection failure.
func (b *redisBus) ensureLease(ctx context.Context) error {
	if b.lease == nil || b.lease.held() {
		return nil
	}
	cctx, cancel := context.WithTimeout(ctx, b.opts.DialTimeout)
	defer cancel()
	err := b.lease.hold(cctx, b.client, b.consumer)
	if errors.Is(err, ErrInstanceInUse) && !b.lease.warned.Swap(true) {
		b.log.Log(LogWarning, "bus", "Redis bus reader paused: "+err.Error())
	}
	return err
}

// leaseLoop renews the lease every third of its lifetime.
func (b *redisBus) leaseLoop(ctx context.Context) {
	defer b.wg.Done()
	t := time.NewTicker(b.lease.ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cctx, cancel := context.WithTimeout(ctx, b.opts.DialTimeout)
		_ = b.lease.hold(cctx, b.client, b.consumer) // the reader sees a lapse through held
		cancel()
	}
}
