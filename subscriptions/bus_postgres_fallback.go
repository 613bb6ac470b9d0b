package subscriptions

import "context"

// PublishBatch implements Bus with one Publish per event, until the
// PostgreSQL bus has a one-transaction batch of its own.
func (b *PostgresBus) PublishBatch(ctx context.Context, evs []Event) error {
	return publishEach(ctx, b, evs)
}

// publishesOneByOne marks PublishBatch as a loop of Publish: group commit
// would only serialize the publishers that the pool runs in parallel.
func (b *PostgresBus) publishesOneByOne() {}
