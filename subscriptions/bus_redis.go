package subscriptions

import "context"

// NewRedisBus is implemented in a later change.
func NewRedisBus(ctx context.Context, opts RedisOptions) (Bus, error) {
	return nil, valueErrorf("the Redis bus is not available yet")
}
