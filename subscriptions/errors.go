package subscriptions

import (
	"errors"
	"fmt"
)

// ErrorKind classifies an error for callers that map errors onto another
// language's exception types (the Python binding maps KindValue to
// ValueError and KindType to TypeError).
type ErrorKind int

const (
	// KindInternal is a failure of the engine or of a server it talks to.
	KindInternal ErrorKind = iota
	// KindValue is a bad value supplied by the caller.
	KindValue
	// KindType is a value of the wrong type supplied by the caller.
	KindType
)

// Error is an error caused by caller input. Message is meant for end users.
type Error struct {
	Kind    ErrorKind
	Message string
}

func (e *Error) Error() string { return e.Message }

// valueErrorf builds a KindValue error.
func valueErrorf(format string, args ...any) error {
	return &Error{Kind: KindValue, Message: fmt.Sprintf(format, args...)}
}

// typeErrorf builds a KindType error.
func typeErrorf(format string, args ...any) error {
	return &Error{Kind: KindType, Message: fmt.Sprintf(format, args...)}
}

// KindOf reports the kind of err; errors that are not *Error are KindInternal.
func KindOf(err error) ErrorKind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return KindInternal
}

// ErrClosed is returned by calls on a closed executor.
var ErrClosed = errors.New("executor is closed")

// ValueError builds a KindValue error, for packages that wrap this one.
func ValueError(format string, args ...any) error { return valueErrorf(format, args...) }

// TypeError builds a KindType error, for packages that wrap this one.
func TypeError(format string, args ...any) error { return typeErrorf(format, args...) }
