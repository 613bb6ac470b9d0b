package pyapi

import (
	"context"
	"errors"
	"math"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"time"

	json "github.com/goccy/go-json"

	"github.com/fraiseql/fraiseql-subscriptions/subscriptions"
)

// SubscriptionExecutor mirrors PySubscriptionExecutor.
type SubscriptionExecutor struct {
	e          *subscriptions.Executor
	debugHooks bool
	panicFast  atomic.Bool                  // debug hook: the next fast entry point panics
	window     atomic.Pointer[pinnedWindow] // next_event's read-ahead, while C holds it
	fastID     atomic.Int64                 // id in the fast-id table, 0 when not in it
}

// executorOptions are the executor's settings, as JSON from Python.
type executorOptions struct {
	QueueSize      json.Number `json:"queue_size"`
	ConnectTimeout *float64    `json:"connect_timeout"`
	DebugHooks     bool        `json:"debug_hooks"`
	Paused         bool        `json:"paused"`
	RowFilter      string      `json:"row_filter"`
	NoRowFilter    bool        `json:"no_row_filter"`
	Schema         string      `json:"schema"`
	HistorySize    json.Number `json:"history_size"`
	OnOverflow     string      `json:"on_overflow"`
	limitsJSON
}

// NewSubscriptionExecutor starts an executor on the bus of cfg (the memory
// bus when cfg is nil) with the settings of optionsJSON ("" for defaults).
func NewSubscriptionExecutor(cfg *EventBusConfig, optionsJSON string) (x *SubscriptionExecutor, err error) {
	defer recoverTo(&err)
	var o executorOptions
	if optionsJSON != "" {
		if err := decodeStrict(optionsJSON, &o); err != nil {
			return nil, pyError(subscriptions.ValueError("invalid executor option: %v", err))
		}
	}
	queueSize, err := intOption("queue_size", o.QueueSize, math.MaxInt32)
	if err != nil {
		return nil, pyError(err)
	}
	limits, err := o.limits()
	if err != nil {
		return nil, pyError(err)
	}
	historySize, err := intOption("history_size", o.HistorySize, math.MaxInt32)
	if err != nil {
		return nil, pyError(err)
	}
	bus := subscriptions.MemoryBusConfig()
	if cfg != nil {
		bus = cfg.cfg
	}
	timeout := 10 * time.Second
	if o.ConnectTimeout != nil {
		if timeout, err = secondsOption("connect_timeout", *o.ConnectTimeout); err != nil {
			return nil, pyError(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	e, err := subscriptions.NewExecutor(ctx, subscriptions.Options{Bus: bus, QueueSize: int(queueSize), Limits: limits, Paused: o.Paused,
		RowFilterField: o.RowFilter, NoRowFilter: o.NoRowFilter, Schema: o.Schema,
		HistorySize: int(historySize), OnOverflow: o.OnOverflow})
	if err != nil {
		return nil, pyError(err)
	}
	return &SubscriptionExecutor{e: e, debugHooks: o.DebugHooks}, nil
}

// Register adds a subscription; variablesJSON is a JSON object or "".
func (x *SubscriptionExecutor) Register(connectionID, subscriptionID, query, operationName, variablesJSON, userID, tenantID string) (ok bool, err error) {
	defer recoverTo(&err)
	return x.register(connectionID, subscriptionID, query, operationName, variablesJSON, userID, tenantID, registerOptions{})
}

// registerOptions are the position options of RegisterWith, as JSON.
type registerOptions struct {
	Positions  bool   `json:"positions"`
	After      string `json:"after"`
	OnOverflow string `json:"on_overflow"`
}

// RegisterWith is Register with the options of optionsJSON: positions
// (frames carry them), after (resume after a position) and on_overflow.
func (x *SubscriptionExecutor) RegisterWith(connectionID, subscriptionID, query, operationName, variablesJSON, userID, tenantID, optionsJSON string) (ok bool, err error) {
	defer recoverTo(&err)
	var o registerOptions
	if err := decodeStrict(optionsJSON, &o); err != nil {
		return done(pyError(subscriptions.ValueError("invalid subscription option: %v", err)))
	}
	return x.register(connectionID, subscriptionID, query, operationName, variablesJSON, userID, tenantID, o)
}

// register is Register once the options are read.
func (x *SubscriptionExecutor) register(connectionID, subscriptionID, query, operationName, variablesJSON, userID, tenantID string, o registerOptions) (bool, error) {
	vars, err := decodeVariables(variablesJSON)
	if err != nil {
		return done(err)
	}
	return done(pyError(x.e.Register(subscriptions.Registration{
		ConnectionID: connectionID, SubscriptionID: subscriptionID,
		Query: query, OperationName: operationName, Variables: vars,
		UserID: userID, TenantID: tenantID,
		Positions: o.Positions, After: o.After, OnOverflow: o.OnOverflow,
	})))
}

// decodeVariables decodes the variables of a registration ("" for none).
func decodeVariables(variablesJSON string) (map[string]any, error) {
	if variablesJSON == "" {
		return nil, nil
	}
	v, err := subscriptions.DecodeJSON([]byte(variablesJSON))
	if err != nil {
		return nil, pyError(subscriptions.ValueError("variables are not valid JSON: %v", err))
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, pyError(subscriptions.TypeError("variables must be a dict"))
	}
	return obj, nil
}

// NextWait returns the next frame of a subscription, waiting up to
// timeoutSeconds for one; "" when none came. Closing the executor ends
// the wait with "executor is closed".
func (x *SubscriptionExecutor) NextWait(subscriptionID string, timeoutSeconds float64) (frame string, err error) {
	defer recoverTo(&err)
	if !(timeoutSeconds >= 0 && timeoutSeconds <= maxSeconds) {
		return "", pyError(subscriptions.ValueError("timeout must be a number of seconds from 0 to 1e9"))
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(timeoutSeconds*float64(time.Second)))
	defer cancel()
	frame, err = x.e.NextWait(ctx, subscriptionID)
	if errors.Is(err, context.DeadlineExceeded) {
		return "", nil
	}
	return frame, pyError(err)
}

// Complete removes a subscription; it reports whether it existed.
func (x *SubscriptionExecutor) Complete(subscriptionID string) (existed bool, err error) {
	defer recoverTo(&err)
	return x.e.Complete(subscriptionID), nil
}

// CompleteConnection removes every subscription of a connection.
func (x *SubscriptionExecutor) CompleteConnection(connectionID string) (n int, err error) {
	defer recoverTo(&err)
	return x.e.CompleteConnection(connectionID), nil
}

// Metrics returns the counters as a JSON object.
func (x *SubscriptionExecutor) Metrics() (metrics string, err error) {
	defer recoverTo(&err)
	return marshal(x.e.Metrics())
}

// SubscriptionStats returns one subscription's counters as a JSON object.
func (x *SubscriptionExecutor) SubscriptionStats(subscriptionID string) (stats string, err error) {
	defer recoverTo(&err)
	st, err := x.e.Stats(subscriptionID)
	if err != nil {
		return "", pyError(err)
	}
	return marshal(st)
}

// Limits returns the limits in force as a JSON object.
func (x *SubscriptionExecutor) Limits() (limits string, err error) {
	defer recoverTo(&err)
	return marshal(limitsToJSON(x.e.Limits()))
}

// SetLimits changes the limits named in a JSON object and keeps the
// others, in one step (concurrent calls lose no update).
func (x *SubscriptionExecutor) SetLimits(limitsJSONText string) (ok bool, err error) {
	defer recoverTo(&err)
	var l limitsJSON
	if err := decodeStrict(limitsJSONText, &l); err != nil {
		return done(pyError(subscriptions.ValueError("invalid limit: %v", err)))
	}
	patch, err := l.patch()
	if err != nil {
		return done(pyError(err))
	}
	_, err = x.e.UpdateLimits(patch)
	return done(pyError(err))
}

// ReadyFD returns the file descriptor that becomes readable when a
// subscription has messages; see TakeReady.
func (x *SubscriptionExecutor) ReadyFD() (fd int, err error) {
	defer recoverTo(&err)
	fd, err = x.e.ReadyFD()
	return fd, pyError(err)
}

// TakeReady returns the ids of subscriptions that became ready as a JSON
// array ("" when none did): an id may hold any character, '\n' included.
func (x *SubscriptionExecutor) TakeReady() (ids string, err error) {
	defer recoverTo(&err)
	list, err := x.e.TakeReady()
	if err != nil || len(list) == 0 {
		return "", pyError(err)
	}
	text, err := json.Marshal(list)
	return string(text), pyError(err)
}

// Resume starts the delivery of an executor made with "paused"; resuming
// one that is not paused, or twice, does nothing.
func (x *SubscriptionExecutor) Resume() (ok bool, err error) {
	defer recoverTo(&err)
	return done(pyError(x.e.Resume()))
}

// closeTimeout bounds Close: a bus whose server stopped answering must
// not hold the calling thread longer.
const closeTimeout = 10 * time.Second

// Close stops the executor; every waiting NextWait returns "executor is
// closed".
func (x *SubscriptionExecutor) Close() (ok bool, err error) {
	defer recoverTo(&err)
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	return done(pyError(x.e.Close(ctx)))
}

// Debug runs a test hook. Hooks only run on executors made with
// debug_hooks:
//   - "panic" panics inside Go, to prove that panics become exceptions;
//   - "panic_in_dispatch" makes the next dispatch panic once (counted in
//     dispatch_errors; the executor keeps working);
//   - "panic_in_bus_reader" makes the Redis or PostgreSQL reader goroutine
//     panic once before its next event;
//   - "free_os_memory" returns the Go heap's garbage to the OS;
//   - "claim_hook" does nothing: the shim asks it before it sets a hook
//     in next_event's C entry point (pyapi/fastcall.c, _fq_claim_hook),
//     so that the hook too needs debug_hooks.
func (x *SubscriptionExecutor) Debug(hook string) (ok bool, err error) {
	defer recoverTo(&err)
	if !x.debugHooks {
		return done(pyError(subscriptions.ValueError("debug hooks are disabled on this executor")))
	}
	switch hook {
	case "panic":
		panic("test panic from the debug hook")
	case "panic_fast":
		// The next next_event, drain_connection or publish_event panics
		// inside its hand-written entry point.
		x.panicFast.Store(true)
		return done(nil)
	case "panic_in_dispatch":
		return done(pyError(x.e.InjectFault(subscriptions.FaultDispatchPanic)))
	case "panic_in_bus_reader":
		return done(pyError(x.e.InjectFault(subscriptions.FaultBusReaderPanic)))
	case "claim_hook":
		return done(nil)
	case "free_os_memory":
		// Memory tests measure RSS: without this, garbage the Go heap has
		// not yet collected looks like a leak.
		debug.FreeOSMemory()
		return done(nil)
	default:
		return done(pyError(subscriptions.ValueError("unknown debug hook %q", hook)))
	}
}

func marshal(v any) (string, error) {
	b, err := json.Marshal(v)
	return string(b), err
}

func decodeStrict(s string, v any) error {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}
