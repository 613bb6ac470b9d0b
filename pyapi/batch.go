package pyapi

import (
	"context"
	"errors"
	"strconv"

	json "github.com/goccy/go-json"

	"github.com/fraiseql/fraiseql-subscriptions/subscriptions"
)

// FastPublishBatch publishes a list of events with one round trip (Redis)
// or one transaction (PostgreSQL). eventsJSON is a JSON array of
// [event_type, channel, data] items, or [event_type, channel, data,
// idempotency_key], as the shim encodes them with json.dumps (data is a
// JSON object, kept byte for byte).
//
// It returns "" when every event was accepted. When the bus accepted only
// some (Redis), it returns a JSON object mapping the index of each refused
// event to its error, prefixed as the Python layer translates them, and no
// error; any other failure (none accepted, or an invalid event, named by
// its index) is an error.
func FastPublishBatch(id int, eventsJSON string) (failed string, err error) {
	defer recoverTo(&err)
	e, evs, err := batchFor(id, eventsJSON)
	if err != nil {
		return "", err
	}
	err = e.PublishBatchValid(context.Background(), evs)
	var be *subscriptions.BatchError
	if !errors.As(err, &be) {
		return "", pyError(err)
	}
	return failedJSON(be.Errs, pyErrorText)
}

// pyErrorText is err's message prefixed as the Python layer translates it.
func pyErrorText(err error) string { return pyError(err).Error() }

// failedJSON maps the index of each non-nil error in errs to text(err), as
// a JSON object; "" when there is none.
func failedJSON(errs []error, text func(error) string) (string, error) {
	var out map[string]string
	for i, err := range errs {
		if err != nil {
			if out == nil {
				out = make(map[string]string)
			}
			out[strconv.Itoa(i)] = text(err)
		}
	}
	if out == nil {
		return "", nil
	}
	return marshal(out)
}

// decodeBatch decodes the [[event_type, channel, data(, idempotency_key)], ...]
// of FastPublishBatch.
func decodeBatch(eventsJSON string) ([]subscriptions.Event, error) {
	var items [][]json.RawMessage
	if err := json.Unmarshal([]byte(eventsJSON), &items); err != nil {
		return nil, subscriptions.ValueError("events are not a JSON array of [event_type, channel, data]: %v", err)
	}
	evs := make([]subscriptions.Event, len(items))
	for i, it := range items {
		if len(it) != 3 && len(it) != 4 {
			return nil, subscriptions.ValueError("event %d: expected [event_type, channel, data] and an optional idempotency key, got %d items", i, len(it))
		}
		if len(it) == 4 {
			if err := json.Unmarshal(it[3], &evs[i].IdempotencyKey); err != nil {
				return nil, subscriptions.TypeError("event %d: idempotency_key must be a string", i)
			}
		}
		if err := json.Unmarshal(it[0], &evs[i].Type); err != nil {
			return nil, subscriptions.TypeError("event %d: event_type must be a string", i)
		}
		if err := json.Unmarshal(it[1], &evs[i].Channel); err != nil {
			return nil, subscriptions.TypeError("event %d: channel must be a string", i)
		}
		evs[i].Data = it[2]
	}
	return evs, nil
}

// FastGroupCommitStats returns the executor's GroupCommitStats as JSON
// {"flushes": n, "events": n, "size_bounds": [...], "sizes": [...]}: how
// many events concurrent publishers sent per round trip.
func FastGroupCommitStats(id int) (stats string, err error) {
	defer recoverTo(&err)
	e, err := fastExecutor(id)
	if err != nil {
		return "", pyError(err)
	}
	s := e.GroupCommitStats()
	return marshal(map[string]any{"flushes": s.Flushes, "events": s.Events, "size_bounds": s.SizeBounds, "sizes": s.Sizes})
}

// FastPublishGathered publishes the events that independent publishers
// (the asyncio layer's awaiting publish_event_async calls) gathered into
// one call, with one round trip, each with its own result: eventsJSON is
// as for FastPublishBatch. It returns "" when every event was accepted,
// otherwise a JSON object mapping the index of each event that was not to
// its error, prefixed as the Python layer translates them. The error is
// for the whole call (no event published): the executor is closed, or
// eventsJSON is not a list of events.
func FastPublishGathered(id int, eventsJSON string) (failed string, err error) {
	defer recoverTo(&err)
	e, evs, err := batchFor(id, eventsJSON)
	if err != nil {
		return "", err
	}
	// Prefixed: the Python layer turns each into its own exception.
	return failedJSON(e.PublishGathered(context.Background(), evs), pyErrorText)
}

// batchFor is the executor of id and the events of eventsJSON, or the
// error as the Python layer raises it.
func batchFor(id int, eventsJSON string) (*subscriptions.Executor, []subscriptions.Event, error) {
	e, err := fastExecutor(id)
	if err != nil {
		return nil, nil, pyError(err)
	}
	evs, err := decodeBatch(eventsJSON)
	if err != nil {
		return nil, nil, pyError(err)
	}
	return e, evs, nil
}
