package pyapi

import (
	"errors"
	"fmt"
	"runtime/debug"

	json "github.com/goccy/go-json"

	"github.com/fraiseql/fraiseql-subscriptions/subscriptions"
)

// Prefixes the Python layer maps onto exception types; any other error
// stays a RuntimeError.
const (
	valuePrefix    = "ValueError: "
	typePrefix     = "TypeError: "
	notFoundPrefix = "SubscriptionNotFound: " // a ValueError subclass in Python
	// A ValueError subclass with errors: the JSON list on the first line,
	// the message after it.
	documentPrefix = "GraphQLDocumentError: "
	// positionPrefix is followed by {"code":..., "position":..., "message":...}:
	// PositionError in Python, a ValueError subclass.
	positionPrefix = "PositionError: "
	// outcomePrefix: PublishOutcomeUnknown in Python, a RuntimeError
	// subclass (errors.Is(err, subscriptions.ErrOutcomeUnknown)).
	outcomePrefix = "PublishOutcomeUnknown: "
)

// done gives the results of a method gopy wraps. gopy's wrapper of a
// method that returns only an error leaks a C string per call, so each
// returns (bool, error) instead (surface_test.go checks it); the bool only
// mirrors the error, and the shim never reads it.
func done(err error) (bool, error) {
	return err == nil, err
}

// pyError prefixes err's message with the Python exception it stands for.
func pyError(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, subscriptions.ErrSubscriptionNotFound) {
		return fmt.Errorf("%s%w", notFoundPrefix, err)
	}
	if errors.Is(err, subscriptions.ErrOutcomeUnknown) {
		return fmt.Errorf("%s%w", outcomePrefix, err)
	}
	var pe *subscriptions.PositionError
	if errors.As(err, &pe) {
		b, _ := json.Marshal(map[string]string{"code": pe.Code, "position": pe.Position, "message": pe.Error()})
		return errors.New(positionPrefix + string(b))
	}
	var doc *subscriptions.DocumentError
	if errors.As(err, &doc) {
		if list, jerr := json.Marshal(doc.Errors); jerr == nil {
			return fmt.Errorf("%s%s\n%w", documentPrefix, list, err)
		}
	}
	switch subscriptions.KindOf(err) {
	case subscriptions.KindValue:
		return fmt.Errorf("%s%w", valuePrefix, err)
	case subscriptions.KindType:
		return fmt.Errorf("%s%w", typePrefix, err)
	default:
		return err
	}
}

// recoverTo turns a panic into an error in *errp. Every exported method
// defers it.
func recoverTo(errp *error) {
	if r := recover(); r != nil {
		*errp = fmt.Errorf("internal error (please report): %v\n%s", r, debug.Stack())
	}
}
