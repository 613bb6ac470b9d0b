package pyapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"runtime/debug"

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
)

// pyError prefixes err's message with the Python exception it stands for.
func pyError(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, subscriptions.ErrSubscriptionNotFound) {
		return fmt.Errorf("%s%w", notFoundPrefix, err)
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
