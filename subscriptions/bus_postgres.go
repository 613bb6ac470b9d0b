package subscriptions

import "context"

// NewPostgresBus is implemented in a later change.
func NewPostgresBus(ctx context.Context, opts PostgresOptions) (Bus, error) {
	return nil, valueErrorf("the PostgreSQL bus is not available yet")
}
