package subscriptions

import (
	"errors"
	"testing"
)

// A publish error whose answer was lost matches ErrOutcomeUnknown, and
// nothing else of the package's sentinels; any other bus error matches
// none, ErrOutcomeUnknown included. Both unwrap to the driver's error.
func TestBusErrorMatchesErrOutcomeUnknownOnlyWhenTheOutcomeIsUnknown(t *testing.T) {
	cause := errors.New("connection reset")
	lost := outcomeUnknown("Redis", "connection reset", cause)
	if !errors.Is(lost, ErrOutcomeUnknown) {
		t.Errorf("%v does not match ErrOutcomeUnknown", lost)
	}
	refused := busError("publishing to Redis failed: refused", cause)
	if errors.Is(refused, ErrOutcomeUnknown) {
		t.Errorf("%v matches ErrOutcomeUnknown", refused)
	}
	for _, err := range []error{lost, refused} {
		for _, other := range []error{ErrClosed, ErrSchemaMissing, errors.New("connection reset")} {
			if errors.Is(err, other) {
				t.Errorf("%v matches %v", err, other)
			}
		}
		if !errors.Is(err, cause) || errors.Unwrap(err) != cause {
			t.Errorf("%v does not unwrap to its cause", err)
		}
	}
}
