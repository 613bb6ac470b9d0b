package pyapi

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/fraiseql/fraiseql-subscriptions/subscriptions"
)

// The per-message calls as package-level functions taking a small integer
// id. gopy wraps a method by looking its receiver up in a handle table
// under a global RWMutex and unwrapping it with reflection (gopyh.Embed);
// a package-level function skips both, which is measurable when the call
// itself is a microsecond (see BENCHMARKS.md). The Python shim uses these
// for next_event, drain_connection and publish_event.

var (
	fastMu    sync.Mutex
	fastTable atomic.Pointer[[]*SubscriptionExecutor] // index id-1; copy on write
	fastIDs   = map[*SubscriptionExecutor]int{}       // guarded by fastMu
)

// FastID returns the id under which the package-level fast functions
// find x, registering it on the first call.
func (x *SubscriptionExecutor) FastID() (id int, err error) {
	defer recoverTo(&err)
	fastMu.Lock()
	defer fastMu.Unlock()
	if id := fastIDs[x]; id != 0 {
		return id, nil
	}
	var cur []*SubscriptionExecutor
	if p := fastTable.Load(); p != nil {
		cur = *p
	}
	next := make([]*SubscriptionExecutor, len(cur)+1)
	copy(next, cur)
	next[len(cur)] = x
	fastTable.Store(&next)
	fastIDs[x] = len(next)
	return len(next), nil
}

// ReleaseFastID forgets the executor of id, once Python has dropped it.
// Unknown ids are ignored.
func ReleaseFastID(id int) {
	fastMu.Lock()
	defer fastMu.Unlock()
	p := fastTable.Load()
	if p == nil || id < 1 || id > len(*p) {
		return
	}
	next := make([]*SubscriptionExecutor, len(*p))
	copy(next, *p)
	delete(fastIDs, next[id-1])
	next[id-1] = nil
	fastTable.Store(&next)
}

func fastExecutor(id int) (*subscriptions.Executor, error) {
	if p := fastTable.Load(); p != nil && id >= 1 && id <= len(*p) {
		if x := (*p)[id-1]; x != nil {
			return x.e, nil
		}
	}
	return nil, subscriptions.ErrClosed
}

// FastNext is SubscriptionExecutor.Next for the executor of id.
func FastNext(id int, subscriptionID string) (frame string, err error) {
	defer recoverTo(&err)
	e, err := fastExecutor(id)
	if err != nil {
		return "", pyError(err)
	}
	frame, err = e.Next(subscriptionID)
	return frame, pyError(err)
}

// FastDrain is SubscriptionExecutor.DrainConnection for the executor of id.
func FastDrain(id int, connectionID string, maxMessages int) (frames string, err error) {
	defer recoverTo(&err)
	e, err := fastExecutor(id)
	if err != nil {
		return "", pyError(err)
	}
	frames, _, err = e.DrainConnection(connectionID, maxMessages)
	return frames, pyError(err)
}

// FastPublish is SubscriptionExecutor.Publish for the executor of id, for
// data produced by Python's json.dumps (always well-formed JSON), so the
// strict validation pass is skipped. It returns (true, nil) on success: an
// error-only function leaks a C string per call in gopy's wrapper.
func FastPublish(id int, eventType, channel, dataJSON string) (ok bool, err error) {
	defer recoverTo(&err)
	e, err := fastExecutor(id)
	if err != nil {
		return false, pyError(err)
	}
	ev := subscriptions.Event{Type: eventType, Channel: channel, Data: []byte(dataJSON)}
	return true, pyError(e.PublishValid(context.Background(), ev))
}
