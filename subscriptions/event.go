package subscriptions

import (
	"bytes"
	stdjson "encoding/json"
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"
	"unsafe"

	json "github.com/goccy/go-json"
	"github.com/valyala/fastjson"
)

// Event is one published event as it travels on a bus.
type Event struct {
	// Type is the event type, for example "userCreated".
	Type string `json:"t"`
	// Channel is the channel it was published on, for example "users".
	Channel string `json:"c"`
	// Data is the event's JSON object.
	Data json.RawMessage `json:"d"`
	// IdempotencyKey, when set, makes a retry safe: an event published
	// again with a key the bus has already accepted within its history
	// (PostgreSQL: Retention; Redis: 24 hours; memory: the events its
	// history keeps) is accepted and not delivered again. Not delivered
	// to subscribers.
	IdempotencyKey string `json:"-"`
	// decoded is set when the event never left this process (memory bus).
	decoded *decodedEvent
	// pos is the event's position, given by a bus that keeps a history
	// (memory, Redis) as it delivers the event; zero otherwise.
	pos position
}

// decodedEvent is an Event decoded once, before it is matched against
// every subscription of an executor.
type decodedEvent struct {
	Event
	// root is the data object parsed by fastjson, over the parser's own
	// copy of the data: numbers keep their published text.
	root jv
	obj  *fastjson.Object
	// tenantID and userID are the string forms of the data's top-level
	// "tenant_id" and "user_id"; has* tells whether the key was present.
	tenantID, userID   string
	hasTenant, hasUser bool
	// fields are the data's top-level keys, sorted, each with its last
	// value: filters and projections look most keys up here, by binary
	// search, instead of scanning the object.
	fields []rootField
	// num is scratch space for the text of numbers while filters run
	// (one event is dispatched by one goroutine).
	num []byte
	// nums are the numbers filters have read, parsed, and numText holds
	// their texts (see number).
	nums    []eventNumber
	numText []byte
	// enc is scratch space for encoding payloads.
	enc []byte
	// state owns d and root's memory; release returns it to the pool.
	state *eventState
}

// eventState is a decoded event with the parser its values point into.
// They are pooled: once warm, decoding an event allocates nothing.
type eventState struct {
	d      decodedEvent
	parser fastjson.Parser
}

var eventStates = sync.Pool{New: func() any { return new(eventState) }}

// release gives d's memory back once nobody reads d any more (the
// dispatch is done); d must not be used afterwards. Events nobody
// releases are simply collected.
func (d *decodedEvent) release() {
	if d == nil || d.state == nil {
		return
	}
	st := d.state
	clear(d.fields)
	clear(d.nums)
	*d = d.scratchOnly()
	eventStates.Put(st)
}

// scratchOnly is an empty decodedEvent that keeps d's scratch buffers.
func (d *decodedEvent) scratchOnly() decodedEvent {
	return decodedEvent{fields: d.fields[:0], num: d.num[:0], enc: d.enc[:0], nums: d.nums[:0], numText: d.numText[:0]}
}

type rootField struct {
	key string
	v   jv // nil for null
}

// getAt is get's value (nil for null or missing: its callers need not
// tell them apart) that first tries the index where key was last found, in
// *hint: events of one kind have the same keys, so a filter's field is
// almost always where it was in the previous event. The hint is shared by
// the goroutines dispatching events, hence atomic; any value is safe.
func (d *decodedEvent) getAt(key string, hint *atomic.Int32) jv {
	if i := int(hint.Load()); i < len(d.fields) && d.fields[i].key == key {
		return d.fields[i].v
	}
	i := d.search(key)
	if i < len(d.fields) && d.fields[i].key == key {
		hint.Store(int32(i))
		return d.fields[i].v
	}
	return nil
}

// get returns the top-level value of key (nil when null) and whether the
// key is present.
func (d *decodedEvent) get(key string) (jv, bool) {
	if i := d.search(key); i < len(d.fields) && d.fields[i].key == key {
		return d.fields[i].v, true
	}
	return nil, false
}

// search returns the index of the first field whose key is not below key.
func (d *decodedEvent) search(key string) int {
	f := d.fields
	i, j := 0, len(f)
	for i < j {
		h := int(uint(i+j) >> 1)
		if f[h].key < key {
			i = h + 1
		} else {
			j = h
		}
	}
	return i
}

// lookup is field for any object of the data: the sorted index for the
// top level.
func (d *decodedEvent) lookup(o *fastjson.Object, key string) (jv, bool) {
	if o == d.obj {
		return d.get(key)
	}
	return field(o, key)
}

// index fills d.fields.
func (d *decodedEvent) index() {
	d.fields = d.fields[:0]
	d.obj.Visit(func(k []byte, v *fastjson.Value) {
		d.fields = append(d.fields, rootField{unsafe.String(unsafe.SliceData(k), len(k)), norm(v)})
	})
	// Insertion sort, stable (of equal keys the last stays last and wins
	// below): objects are small, and this neither allocates nor reflects.
	f := d.fields
	for i := 1; i < len(f); i++ {
		for j := i; j > 0 && f[j].key < f[j-1].key; j-- {
			f[j], f[j-1] = f[j-1], f[j]
		}
	}
	out := d.fields[:0]
	for i, f := range d.fields {
		if i+1 < len(d.fields) && d.fields[i+1].key == f.key {
			continue
		}
		out = append(out, f)
	}
	d.fields = out
}

// decodeEvent checks ev against lim and decodes its data, which must be a
// JSON object.
func decodeEvent(ev Event, lim Limits) (*decodedEvent, error) {
	return decodeEventFrom(ev, lim, false)
}

// decodeEventFrom is decodeEvent; wellFormed data (Python's json encoder
// output) skips the strict validation pass, and a lone surrogate in it is
// refused instead of becoming U+FFFD.
//
// Parsing: fastjson, which builds no maps and keeps numbers' text (see
// BENCHMARKS.md for the comparison with goccy/go-json). It validates
// structure as it parses but is lenient about a few forms JSON forbids
// (NaN, 01, bad escapes), so untrusted data passes encoding/json's strict
// validator first, and its messages are the ones users see. Invalid UTF-8
// becomes U+FFFD and so does a lone surrogate escape, as encoding/json
// decodes them.
func decodeEventFrom(ev Event, lim Limits, wellFormed bool) (*decodedEvent, error) {
	if len(ev.Data) > lim.MaxPayloadBytes {
		return nil, valueErrorf("event payload is %d bytes, over the max_payload_bytes limit of %d", len(ev.Data), lim.MaxPayloadBytes)
	}
	b := ev.Data
	if wellFormed {
		// Python's json encoder writes a lone surrogate of a str as a
		// \uXXXX escape that every decoder turns into U+FFFD: refuse it
		// rather than change the user's data silently.
		if r, ok := loneSurrogate(b); ok {
			if !stdjson.Valid(b) {
				return decodeEventFrom(ev, lim, false) // the strict path words the error
			}
			return nil, valueErrorf("data is not valid Unicode: it contains the lone surrogate '\\u%04x'", r)
		}
	} else if !stdjson.Valid(b) {
		var v any
		err := stdjson.Unmarshal(b, &v)
		if err == nil {
			err = errors.New("invalid JSON")
		}
		return nil, valueErrorf("event data is not valid JSON: %v", err)
	}
	if !utf8.Valid(b) {
		b = replaceInvalidUTF8(b)
	}
	if !wellFormed {
		b = replaceLoneSurrogates(b)
	}
	st := eventStates.Get().(*eventState)
	root, err := st.parser.ParseBytes(b)
	if err != nil {
		eventStates.Put(st)
		if wellFormed {
			return decodeEventFrom(ev, lim, false) // the strict path words the error
		}
		return nil, valueErrorf("event data is not valid JSON: nested deeper than %d levels", fastjson.MaxDepth)
	}
	if root.Type() != fastjson.TypeObject {
		eventStates.Put(st)
		return nil, typeErrorf("event data must be a JSON object, got %s", kindOfValue(root))
	}
	d := &st.d
	*d = d.scratchOnly()
	d.Event, d.root, d.obj, d.state = ev, root, objectOf(root), st
	if err := d.checkNumbers(root); err != nil {
		d.release()
		if wellFormed {
			// The strict path words the error, as Publish would: data that
			// is not JSON after all gets encoding/json's message, whatever
			// number the parse met first.
			return decodeEventFrom(ev, lim, false)
		}
		return nil, valueErrorf("event data is not valid JSON: %v", err)
	}
	d.index()
	d.tenantID, d.hasTenant = d.idString("tenant_id")
	d.userID, d.hasUser = d.idString("user_id")
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
// replaceInvalidUTF8 is b with each byte that is not part of valid UTF-8
// made U+FFFD: one per byte, as encoding/json decodes them
// (bytes.ToValidUTF8 would make a run of them one).
func replaceInvalidUTF8(b []byte) []byte {
	out := make([]byte, 0, len(b)+16)
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		if r == utf8.RuneError && size == 1 {
			out = append(out, "\uFFFD"...)
		} else {
			out = append(out, b[:size]...)
		}
		b = b[size:]
	}
	return out
}

func decodeJSON(b []byte) (any, error) { return decodeJSONWith(b, goccyDecode) }

// goccyDecode decodes b into v with goccy's stream decoder, numbers as
// json.Number.
func goccyDecode(b []byte, v *any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	return dec.Decode(v)
}

// decodeJSONWith is decodeJSON with the fast decoder given, so that its
// fallback after a panic can be tested.
func decodeJSONWith(b []byte, decode func([]byte, *any) error) (v any, err error) {
	if !stdjson.Valid(b) {
		var v any
		err := stdjson.Unmarshal(b, &v)
		if err == nil {
			err = errors.New("invalid JSON")
		}
		return nil, err
	}
	if !utf8.Valid(b) {
		b = replaceInvalidUTF8(b)
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
	if err := decode(b, &v); err != nil {
		return nil, err
	}
	return v, nil
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

// idString returns the string form of the data's top-level key for
// security checks: ids compare as strings, so 1 and "1" are the same id. A
// null id counts as present and matches nobody.
func (d *decodedEvent) idString(key string) (string, bool) {
	v, ok := d.get(key)
	if !ok {
		return "", false
	}
	if s, ok := strOf(v); ok {
		return strings.Clone(s), true
	}
	if s, ok := numText(v, &d.num); ok {
		return strings.Clone(s), true
	}
	if v != nil {
		switch v.Type() {
		case fastjson.TypeTrue:
			return "true", true
		case fastjson.TypeFalse:
			return "false", true
		}
	}
	// null, objects and lists never equal a subscriber's id.
	return "\x00unmatchable", true
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

// replaceLoneSurrogates returns b with every lone surrogate escape
// rewritten as \ufffd (the same length), as encoding/json decodes them;
// b itself when it has none.
func replaceLoneSurrogates(b []byte) []byte {
	out := b
	for i := 0; ; {
		j := bytes.IndexByte(b[i:], '\\')
		if j < 0 {
			return out
		}
		i += j
		if i+1 >= len(b) {
			return out
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
		lone := false
		switch {
		case r >= 0xDC00 && r <= 0xDFFF:
			lone = true
		case r >= 0xD800 && r <= 0xDBFF:
			lone = true
			if i+7 < len(b) && b[i+6] == '\\' && b[i+7] == 'u' {
				if lo, ok := hex4(b, i+8); ok && lo >= 0xDC00 && lo <= 0xDFFF {
					i += 12
					continue
				}
			}
		}
		if lone {
			if &out[0] == &b[0] {
				out = append([]byte(nil), b...)
			}
			copy(out[i:], `\ufffd`)
		}
		i += 6
	}
}

// errNotJSONNumber: fastjson let through a number JSON forbids (NaN, 01).
var errNotJSONNumber = errors.New("invalid number")

// checkNumbers refuses what fastjson accepts as numbers but JSON does not,
// and numbers beyond float64's range, as the engine always has.
func (d *decodedEvent) checkNumbers(v jv) error {
	switch v.Type() {
	case fastjson.TypeNumber:
		t, _ := numText(v, &d.num)
		if !isJSONNumber(t) {
			return errNotJSONNumber
		}
		if !inFloatRange(t) {
			return outOfRangeError(t)
		}
	case fastjson.TypeArray:
		a, _ := arrayOf(v)
		for _, e := range a {
			if err := d.checkNumbers(e); err != nil {
				return err
			}
		}
	case fastjson.TypeObject:
		var err error
		objectOf(v).Visit(func(_ []byte, e *fastjson.Value) {
			if err == nil {
				err = d.checkNumbers(e)
			}
		})
		return err
	}
	return nil
}

// inFloatRange tells whether the JSON number t fits a float64. Only long
// numbers or those with an exponent can be out of range.
func inFloatRange(t string) bool {
	if len(t) <= 300 && !strings.ContainsAny(t, "eE") {
		return true
	}
	_, err := strconv.ParseFloat(t, 64)
	return err == nil
}

// outOfRangeError names the number, its middle cut when long: the whole of
// 10**4000 would make a message no one reads.
func outOfRangeError(t string) error {
	if len(t) > 40 {
		t = t[:20] + "..." + t[len(t)-10:] + " (" + strconv.Itoa(len(t)) + " characters)"
	}
	return errors.New("the number " + t + " is beyond the range of a float64")
}

// refusedOnDecoding tells whether well-formed JSON holds what decoding
// refuses although the JSON grammar allows it: a lone surrogate escape, a
// number beyond float64's range, or a value nested deeper than fastjson's
// MaxDepth. It reads the text once, without decoding: a distributed bus
// publishes without a decoding unless this finds something, and the
// decoding then words the error.
func refusedOnDecoding(b []byte) bool {
	if _, lone := loneSurrogate(b); lone {
		return true
	}
	open := 0 // arrays and objects the scan is inside
	for i := 0; i < len(b); {
		c := b[i]
		if open >= fastjson.MaxDepth && startsValue(c) {
			// The parser counts the value itself as a level.
			return true
		}
		switch {
		case c == '"':
			i = afterString(b, i+1)
		case c == '-' || c >= '0' && c <= '9':
			j := i + 1
			for j < len(b) && isNumberByte(b[j]) {
				j++
			}
			if !inFloatRange(unsafe.String(&b[i], j-i)) {
				return true
			}
			i = j
		default:
			switch c {
			case '{', '[':
				open++
			case '}', ']':
				open--
			}
			i++
		}
	}
	return false
}

// afterString returns the index after the closing quote of the string
// whose text starts at b[i]: the first quote not escaped by an odd run of
// backslashes.
func afterString(b []byte, i int) int {
	for {
		j := bytes.IndexByte(b[i:], '"')
		if j < 0 {
			return len(b)
		}
		i += j + 1
		n := 0
		for k := i - 2; b[k] == '\\'; k-- {
			n++
		}
		if n%2 == 0 {
			return i
		}
	}
}

// startsValue tells whether c, outside strings in well-formed JSON, starts
// a value (a key too, which a value follows at the same level).
func startsValue(c byte) bool {
	switch c {
	case '{', '[', '"', '-', 't', 'f', 'n':
		return true
	}
	return c >= '0' && c <= '9'
}

func isNumberByte(c byte) bool {
	return c >= '0' && c <= '9' || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-'
}
