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
	// sentinel, when set, is what errors.Is matches besides the error
	// itself (ErrSubscriptionNotFound), so callers never compare text.
	sentinel error
}

func (e *Error) Error() string { return e.Message }

// Unwrap returns the sentinel the error stands for, if any.
func (e *Error) Unwrap() error { return e.sentinel }

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

// ErrClosed is returned by calls on a closed executor or bus.
var ErrClosed = errors.New("executor is closed")

// ErrInstanceInUse is matched (errors.Is) by the error of a bus that
// cannot start because another running executor holds its InstanceID. The
// error is KindValue: the id is the caller's to change.
var ErrInstanceInUse = errors.New("instance id in use")

// instanceInUse builds the error of an InstanceID held by another executor.
func instanceInUse(id, bus, detail string) error {
	return &Error{Kind: KindValue, sentinel: ErrInstanceInUse, Message: fmt.Sprintf(
		"instance_id %q is in use by another running executor on this %s bus (%s); "+
			"give each running executor its own instance_id, or start this one after the other has closed", id, bus, detail)}
}

// ErrSubscriptionNotFound is matched (errors.Is) by the errors about an
// unknown or completed subscription. Those are KindValue errors whose
// message is "Subscription not found: <id>".
var ErrSubscriptionNotFound = errors.New("subscription not found")

// ErrSchemaMissing is matched (errors.Is) by the error of a PostgreSQL bus
// with VerifySchema whose objects are not all in place; its message names
// each missing one.
var ErrSchemaMissing = errors.New("PostgreSQL bus objects missing")

// notFound reports that subscription id is unknown.
func notFound(id string) error {
	return &Error{Kind: KindValue, Message: "Subscription not found: " + shortID(id), sentinel: ErrSubscriptionNotFound}
}

// shortID cuts an id for an error message, so that a huge unknown id does
// not make a huge message.
func shortID(id string) string {
	const max = 100
	if len(id) <= max {
		return id
	}
	return truncateIdent(id, max) + "..."
}

// BusError is a failure of a distributed bus (Redis or PostgreSQL). Its
// message says what failed with every secret of the connection string
// replaced by "***", so it can be logged and shown; the driver's error
// stays reachable with errors.Is and errors.As through Unwrap.
type BusError struct {
	msg   string
	cause error
	// unknown: the connection broke after the request was sent, so the
	// server may have published (errors.Is(err, ErrOutcomeUnknown)).
	unknown bool
}

// ErrOutcomeUnknown is matched (errors.Is) by a publish error after which
// the events may or may not have been published: the connection broke
// after the request (or the commit) was sent, before the answer came. A
// retry may publish them twice, unless they carry an IdempotencyKey. Any
// other publish error means that nothing was published.
var ErrOutcomeUnknown = errors.New("the outcome of the publish is unknown")

// busError builds a BusError from a message that is already free of secrets.
func busError(msg string, cause error) *BusError { return &BusError{msg: msg, cause: cause} }

// outcomeUnknown builds the BusError of a publish whose answer was lost.
func outcomeUnknown(bus, msg string, cause error) *BusError {
	return &BusError{msg: "publishing to " + bus + " failed: the outcome is unknown, the connection was lost after " +
		"the request was sent and the events may have been published (a retry can publish them twice unless " +
		"they carry an idempotency key): " + msg, cause: cause, unknown: true}
}

func (e *BusError) Error() string { return e.msg }

// Is matches ErrOutcomeUnknown when the outcome is unknown.
func (e *BusError) Is(target error) bool { return e.unknown && target == ErrOutcomeUnknown }

// Unwrap returns the driver's error.
func (e *BusError) Unwrap() error { return e.cause }

// ValueError builds a KindValue error, for packages that wrap this one.
func ValueError(format string, args ...any) error { return valueErrorf(format, args...) }

// TypeError builds a KindType error, for packages that wrap this one.
func TypeError(format string, args ...any) error { return typeErrorf(format, args...) }
