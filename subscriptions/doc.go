// Package subscriptions is a GraphQL subscription engine: it compiles
// subscription documents, takes published events and hands back each
// subscriber's graphql-transport-ws "next" frames, already serialized.
//
// An Executor holds the subscriptions. Register compiles a document into
// a Plan, shared by every subscription with the same document, operation
// and variables. Publish validates an event and puts it on the executor's
// Bus; the bus hands every event back to every executor sharing it, in
// one order, and the executor dispatches it: the plans listening to the
// event's channel or type run their filter once, encode the payload once,
// and queue it for each subscriber that passes the tenant and user checks.
// Next, NextWait and DrainConnection take the frames out; ReadyFD and
// TakeReady tell an event loop which subscriptions have some.
//
// Buses: MemoryBus (one process, dispatch inside Publish), Redis Streams
// and a PostgreSQL table with LISTEN/NOTIFY (processes sharing events,
// each read by a goroutine of the bus).
//
// Positions (position.go, history*.go): every bus numbers its events in
// its delivery order under an epoch and keeps a history of them (the
// memory bus's last Options.HistorySize events, the Redis stream, the
// PostgreSQL table). A registration can have its frames carry the
// positions, resume after one (Registration.After: the history through
// the subscription's own checks, then the live stream, joined between two
// dispatches), and catch up from the history instead of dropping when its
// queue is full (OverflowCatchUp). Positions of another bus or epoch, or
// whose events left the history, are refused with a *PositionError.
//
// Failure rules. Errors caused by the caller are *Error values whose Kind
// says ValueError or TypeError; ErrSubscriptionNotFound, ErrClosed and
// ErrInstanceInUse are matched with errors.Is; a distributed bus's
// failures are *BusError, with no secret in their message, and a publish
// whose answer was lost matches ErrOutcomeUnknown (it may have been
// published: Event.IdempotencyKey makes the retry safe). A panic during dispatch, in the caller's
// goroutine or a bus reader's, is recovered and counted in
// Metrics.DispatchErrors, and the executor keeps working: every lock is
// released by a defer. Close ends every waiter, and calls made after it
// fail with ErrClosed.
//
// The engine is plain Go; package pyapi exposes it to CPython.
package subscriptions
