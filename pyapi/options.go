package pyapi

import (
	"math"
	"strconv"
	"time"

	json "github.com/goccy/go-json"

	"github.com/fraiseql/fraiseql-subscriptions/subscriptions"
)

// The value rules of every option Python passes, in one place. Python checks
// only what cannot cross into Go (types, NUL, surrogates, bool vs int, NaN);
// ranges are checked here.
//
// Sizes and limits: 0 means the default, as in the Go options structs;
// negative values and values above the maximum are refused. Durations are
// seconds, positive and at most 1e9 (there is no "0 means default" for a
// duration: Python omits the option instead).

// maxSeconds bounds durations so that they fit a time.Duration.
const maxSeconds = 1e9

// intOption converts a size or limit given as a JSON number.
func intOption(name string, n json.Number, max int64) (int64, error) {
	if n == "" {
		return 0, nil
	}
	v, err := n.Int64()
	if err != nil || v < 0 || v > max {
		return 0, subscriptions.ValueError("%s must be an int from 0 (the default) to %d, not %s", name, max, n)
	}
	return v, nil
}

// secondsOption converts a duration given in seconds.
func secondsOption(name string, seconds float64) (time.Duration, error) {
	if !(seconds > 0 && seconds <= maxSeconds) {
		return 0, subscriptions.ValueError("%s must be a positive number of seconds, at most 1e9", name)
	}
	return time.Duration(seconds * float64(time.Second)), nil
}

// limitsJSON are the executor's limits as Python names them; "" (absent)
// and 0 both mean the default.
type limitsJSON struct {
	MaxQueryBytes   json.Number `json:"max_query_bytes,omitempty"`
	MaxFields       json.Number `json:"max_fields,omitempty"`
	MaxDepth        json.Number `json:"max_depth,omitempty"`
	MaxPayloadBytes json.Number `json:"max_payload_bytes,omitempty"`
}

func limitsToJSON(l subscriptions.Limits) limitsJSON {
	n := func(v int) json.Number { return json.Number(strconv.Itoa(v)) }
	return limitsJSON{n(l.MaxQueryBytes), n(l.MaxFields), n(l.MaxDepth), n(l.MaxPayloadBytes)}
}

// limits checks every limit and converts them.
func (l limitsJSON) limits() (subscriptions.Limits, error) {
	var out subscriptions.Limits
	for _, f := range []struct {
		name string
		n    json.Number
		dst  *int
	}{
		{"max_query_bytes", l.MaxQueryBytes, &out.MaxQueryBytes},
		{"max_fields", l.MaxFields, &out.MaxFields},
		{"max_depth", l.MaxDepth, &out.MaxDepth},
		{"max_payload_bytes", l.MaxPayloadBytes, &out.MaxPayloadBytes},
	} {
		v, err := intOption(f.name, f.n, math.MaxInt32)
		if err != nil {
			return out, err
		}
		*f.dst = int(v)
	}
	return out, nil
}

// patch checks the limits given and converts them for UpdateLimits, which
// keeps a limit given as 0: here 0 means the default, so it becomes the
// default's value.
func (l limitsJSON) patch() (subscriptions.Limits, error) {
	given, err := l.limits()
	if err != nil {
		return given, err
	}
	for _, f := range []struct {
		n   json.Number
		dst *int
		def int
	}{
		{l.MaxQueryBytes, &given.MaxQueryBytes, subscriptions.DefaultMaxQueryBytes},
		{l.MaxFields, &given.MaxFields, subscriptions.DefaultMaxFields},
		{l.MaxDepth, &given.MaxDepth, subscriptions.DefaultMaxDepth},
		{l.MaxPayloadBytes, &given.MaxPayloadBytes, subscriptions.DefaultMaxPayloadBytes},
	} {
		if f.n != "" && *f.dst == 0 {
			*f.dst = f.def
		}
	}
	return given, nil
}
