package subscriptions

import (
	"math/rand/v2"
	"time"
)

// backoff computes the delays between reconnection attempts: exponential
// from min to max, with jitter so that executors cut off together do not
// reconnect in lockstep. The zero value is not usable: set min and max.
// A backoff is not safe for concurrent use.
type backoff struct {
	min, max time.Duration
	n        int // attempts since the last reset
}

// next returns the delay before the next attempt: a random duration in
// [d/2, d], where d is min doubled once per previous attempt, capped at max.
func (b *backoff) next() time.Duration {
	d := b.min
	for i := 0; i < b.n && d > 0 && d < b.max; i++ {
		d *= 2
	}
	if d >= b.max {
		d = b.max
	} else if d > 0 {
		b.n++
	}
	if d <= 0 {
		return 0
	}
	half := d / 2
	return half + rand.N(d-half+1)
}

// reset starts over from min after a success.
func (b *backoff) reset() { b.n = 0 }
