package subscriptions

import (
	"bytes"
	stdjson "encoding/json"
	"errors"
	"unicode/utf8"

	json "github.com/goccy/go-json"
)

// Event is one published event as it travels on a bus.
type Event struct {
	// Type is the event type, for example "userCreated".
	Type string `json:"t"`
	// Channel is the channel it was published on, for example "users".
	Channel string `json:"c"`
	// Data is the event's JSON object.
	Data json.RawMessage `json:"d"`
	// decoded is set when the event never left this process (memory bus).
	decoded *decodedEvent
}

// decodedEvent is an Event decoded once, before it is matched against
// every subscription of an executor.
type decodedEvent struct {
	Event
	// value is the top-level object; numbers are json.Number so that they
	// are re-encoded exactly as published.
	value map[string]any
	// typename is the data's "__typename" when it is a string.
	typename string
	// tenantID and userID are the string forms of the data's top-level
	// "tenant_id" and "user_id"; has* tells whether the key was present.
	tenantID, userID   string
	hasTenant, hasUser bool
}

// decodeEvent checks ev against lim and decodes its data, which must be a
// JSON object.
func decodeEvent(ev Event, lim Limits) (*decodedEvent, error) {
	return decodeEventFrom(ev, lim, false)
}

// decodeEventFrom is decodeEvent; wellFormed data (Python's json.dumps
// output) skips the strict validation pass, see decodeJSONFrom.
func decodeEventFrom(ev Event, lim Limits, wellFormed bool) (*decodedEvent, error) {
	if len(ev.Data) > lim.MaxPayloadBytes {
		return nil, valueErrorf("event payload is %d bytes, over the max_payload_bytes limit of %d", len(ev.Data), lim.MaxPayloadBytes)
	}
	if wellFormed {
		// Python's json encoder writes a lone surrogate of a str as a
		// \uXXXX escape that every decoder turns into U+FFFD: refuse it
		// rather than change the user's data silently.
		if r, ok := loneSurrogate(ev.Data); ok {
			return nil, valueErrorf("data is not valid Unicode: it contains the lone surrogate '\\u%04x'", r)
		}
	}
	v, err := decodeJSONFrom(ev.Data, wellFormed)
	if err != nil {
		return nil, valueErrorf("event data is not valid JSON: %v", err)
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, typeErrorf("event data must be a JSON object, got %s", jsonKind(v))
	}
	d := &decodedEvent{Event: ev, value: obj}
	if s, ok := obj["__typename"].(string); ok {
		d.typename = s
	}
	d.tenantID, d.hasTenant = idString(obj, "tenant_id")
	d.userID, d.hasUser = idString(obj, "user_id")
	return d, nil
}

// decodeJSON decodes exactly one JSON value, keeping numbers as json.Number.
// The standard library's strict validator runs first: goccy's decoder
// accepts some malformed input (stray commas, "01") and can panic on
// trailing garbage, while its decoding of valid JSON is the fast part.
//
// Invalid UTF-8 inside strings passes the validator; goccy's stream decoder
// indexes past its buffer when it rewrites a long run of it (found by
// FuzzDecodeEvent), so such bytes become U+FFFD first, as encoding/json
// would decode them. Any other panic of goccy falls back to encoding/json.
func decodeJSON(b []byte) (any, error) { return decodeJSONFrom(b, false) }

// decodeJSONFrom is decodeJSON; with wellFormed it first tries goccy alone
// (the validation pass is about a fifth of decoding a 2 KB event) and takes
// the strict path, with its error message, on any failure.
func decodeJSONFrom(b []byte, wellFormed bool) (v any, err error) {
	if wellFormed && utf8.Valid(b) {
		if v, ok := decodeTrusted(b); ok {
			return v, nil
		}
	}
	if !stdjson.Valid(b) {
		var v any
		err := stdjson.Unmarshal(b, &v)
		if err == nil {
			err = errors.New("invalid JSON")
		}
		return nil, err
	}
	if !utf8.Valid(b) {
		b = bytes.ToValidUTF8(b, []byte("\uFFFD"))
	}
	defer func() {
		if recover() != nil {
			v, err = nil, nil
			dec := stdjson.NewDecoder(bytes.NewReader(b))
			dec.UseNumber()
			if err = dec.Decode(&v); err != nil {
				v = nil
			}
			v = fromStdNumbers(v)
		}
	}()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

// decodeTrusted decodes b with goccy alone; ok is false on an error, a
// panic or trailing data.
func decodeTrusted(b []byte) (v any, ok bool) {
	defer func() {
		if recover() != nil {
			v, ok = nil, false
		}
	}()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil || dec.More() {
		return nil, false
	}
	return v, true
}

// fromStdNumbers converts encoding/json's json.Number values into goccy's
// json.Number, the type the rest of the engine expects.
func fromStdNumbers(v any) any {
	switch x := v.(type) {
	case stdjson.Number:
		return json.Number(x)
	case map[string]any:
		for k, e := range x {
			x[k] = fromStdNumbers(e)
		}
	case []any:
		for i, e := range x {
			x[i] = fromStdNumbers(e)
		}
	}
	return v
}

// idString returns the string form of obj[key] for security checks: ids
// compare as strings, so 1 and "1" are the same id. A null id counts as
// present and matches nobody.
func idString(obj map[string]any, key string) (string, bool) {
	v, ok := obj[key]
	if !ok {
		return "", false
	}
	switch x := v.(type) {
	case string:
		return x, true
	case json.Number:
		return x.String(), true
	case bool:
		if x {
			return "true", true
		}
		return "false", true
	default:
		// null, objects and lists never equal a subscriber's id.
		return "\x00unmatchable", true
	}
}

// jsonKind names the JSON type of a decoded value, for error messages.
func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case map[string]any:
		return "object"
	case []any:
		return "array"
	case string:
		return "string"
	case bool:
		return "boolean"
	case json.Number:
		return "number"
	default:
		return "unknown"
	}
}

// DecodeJSON decodes exactly one JSON value, keeping numbers exact, as
// the engine does for event data and variables.
func DecodeJSON(b []byte) (any, error) { return decodeJSON(b) }

// loneSurrogate finds a \uD800-\uDFFF escape in JSON text that is not
// half of a surrogate pair. Outside strings JSON has no backslash, so
// every backslash starts an escape.
func loneSurrogate(b []byte) (rune, bool) {
	for i := 0; ; {
		j := bytes.IndexByte(b[i:], '\\')
		if j < 0 {
			return 0, false
		}
		i += j
		if i+1 >= len(b) {
			return 0, false
		}
		if b[i+1] != 'u' {
			i += 2
			continue
		}
		r, ok := hex4(b, i+2)
		if !ok {
			i += 2
			continue
		}
		i += 6
		switch {
		case r >= 0xDC00 && r <= 0xDFFF:
			return r, true
		case r >= 0xD800 && r <= 0xDBFF:
			if i+1 < len(b) && b[i] == '\\' && b[i+1] == 'u' {
				if lo, ok := hex4(b, i+2); ok && lo >= 0xDC00 && lo <= 0xDFFF {
					i += 6
					continue
				}
			}
			return r, true
		}
	}
}

// hex4 reads the four hex digits at b[i:].
func hex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}
