package subscriptions

import (
	"math"
	"sort"
	"strconv"
	"sync/atomic"
	"unicode/utf8"
	"unsafe"

	json "github.com/goccy/go-json"
	"github.com/valyala/fastjson"
)

// selSet is a compiled selection set: its fields after fragments were
// flattened and fields with the same response key and type conditions
// were merged.
type selSet struct {
	entries      []entry
	errs         []execError // field errors collecting this set may raise, in order
	needTypename bool        // some entry reads the object's __typename
	careful      bool        // this set or one below has errs or selections to merge: see merge.go
}

type entry struct {
	key      string
	keyJSON  []byte // `"key":`, precomputed
	name     string
	typename bool         // the field is __typename
	conds    []string     // type conditions that must all hold
	dups     []int        // earlier entries with the same key: the first applicable one wins
	child    *selSet      // nil when the field has no selection set
	at       atomic.Int32 // where name was last found at the top level (see getAt)
}

// applies reports whether every type condition names the event type or
// the object's own __typename.
func (e *entry) applies(evType, typename string) bool {
	for _, c := range e.conds {
		if c != evType && c != typename {
			return false
		}
	}
	return true
}

// AppendPayload appends {"data":{"<ResponseKey>":<projected data>}}.
func (p *Plan) AppendPayload(dst []byte, ev *decodedEvent) []byte {
	if p.typed != nil {
		return p.appendTypedPayload(dst, ev)
	}
	dst = append(dst, p.prefix...)
	switch {
	case ev == nil:
		dst = append(dst, "null"...)
	case p.raw:
		var ok bool
		if dst, ok = appendCompact(dst, ev.Data); !ok {
			dst = appendEventValue(dst, ev.root)
		}
	case p.sel.careful:
		return appendMergedPayload(dst, ev, p)
	default:
		dst = appendSelection(dst, ev, ev.obj, p.sel, ev.Type)
	}
	return append(dst, "}}"...)
}

func appendSelection(dst []byte, ev *decodedEvent, obj *fastjson.Object, s *selSet, evType string) []byte {
	var tn string
	if s.needTypename {
		v, _ := ev.lookup(obj, "__typename")
		tn, _ = strOf(v)
	}
	dst = append(dst, '{')
	first := true
	for i := range s.entries {
		e := &s.entries[i]
		if !e.applies(evType, tn) || s.shadowed(e, evType, tn) {
			continue
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = append(dst, e.keyJSON...)
		switch {
		case !e.typename:
			var v jv
			if obj == ev.obj {
				v = ev.getAt(e.name, &e.at)
			} else {
				v, _ = field(obj, e.name)
			}
			dst = appendProjected(dst, ev, v, e.child, evType)
		case tn != "":
			dst = appendString(dst, tn)
		default:
			dst = appendString(dst, evType)
		}
	}
	return append(dst, '}')
}

func (s *selSet) shadowed(e *entry, evType, tn string) bool {
	for _, j := range e.dups {
		if s.entries[j].applies(evType, tn) {
			return true
		}
	}
	return false
}

func appendProjected(dst []byte, ev *decodedEvent, v jv, child *selSet, evType string) []byte {
	if child == nil || v == nil {
		return appendEventValue(dst, v)
	}
	if o := objectOf(v); o != nil {
		return appendSelection(dst, ev, o, child, evType)
	}
	if a, ok := arrayOf(v); ok {
		dst = append(dst, '[')
		for i, e := range a {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendProjected(dst, ev, norm(e), child, evType)
		}
		return append(dst, ']')
	}
	return appendEventValue(dst, v)
}

// appendEventValue encodes a value of the event data (nil for null) as
// appendValue encodes decoded values: objects with sorted keys, of
// duplicate keys the last, strings re-escaped.
func appendEventValue(dst []byte, v jv) []byte {
	if v == nil {
		return append(dst, "null"...)
	}
	switch v.Type() {
	case fastjson.TypeTrue:
		return append(dst, "true"...)
	case fastjson.TypeFalse:
		return append(dst, "false"...)
	case fastjson.TypeString:
		s, _ := strOf(v)
		return appendString(dst, s)
	case fastjson.TypeNumber:
		n := len(dst)
		dst = v.MarshalTo(dst)
		if num := dst[n:]; !isJSONNumber(unsafe.String(unsafe.SliceData(num), len(num))) {
			// Only validated data reaches here; this keeps the output JSON
			// whatever the parser let through.
			f, err := strconv.ParseFloat(string(num), 64)
			dst = dst[:n]
			if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
				return append(dst, "null"...)
			}
			return strconv.AppendFloat(dst, f, 'g', -1, 64)
		}
		return dst
	case fastjson.TypeArray:
		a, _ := arrayOf(v)
		dst = append(dst, '[')
		for i, e := range a {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendEventValue(dst, norm(e))
		}
		return append(dst, ']')
	case fastjson.TypeObject:
		keys, vals := uniqueFields(objectOf(v))
		idx := make([]int, len(keys))
		for i := range idx {
			idx[i] = i
		}
		sort.Slice(idx, func(i, j int) bool { return keys[idx[i]] < keys[idx[j]] })
		dst = append(dst, '{')
		for i, k := range idx {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendString(dst, keys[k])
			dst = append(dst, ':')
			dst = appendEventValue(dst, vals[k])
		}
		return append(dst, '}')
	}
	return append(dst, "null"...)
}

// appendValue encodes a decoded JSON value. Objects come out with sorted
// keys, as their published order is gone once decoded.
func appendValue(dst []byte, v any) []byte {
	switch x := v.(type) {
	case nil:
		return append(dst, "null"...)
	case bool:
		return strconv.AppendBool(dst, x)
	case string:
		return appendString(dst, x)
	case json.Number:
		if isJSONNumber(string(x)) {
			return append(dst, x...)
		}
		// The event decoder tolerates forms like 01 or 1.; re-encode them.
		f, err := strconv.ParseFloat(string(x), 64)
		if err != nil || math.IsInf(f, 0) {
			return append(dst, "null"...)
		}
		return strconv.AppendFloat(dst, f, 'g', -1, 64)
	case []any:
		dst = append(dst, '[')
		for i, e := range x {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendValue(dst, e)
		}
		return append(dst, ']')
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		dst = append(dst, '{')
		for i, k := range keys {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendString(dst, k)
			dst = append(dst, ':')
			dst = appendValue(dst, x[k])
		}
		return append(dst, '}')
	}
	b, err := json.Marshal(v)
	if err != nil {
		return append(dst, "null"...)
	}
	return append(dst, b...)
}

// appendCanonical encodes v like appendValue; used for plan keys.
func appendCanonical(dst []byte, v any) []byte { return appendValue(dst, v) }

// appendKey writes a canonical description of s for Plan.Key.
func (s *selSet) appendKey(dst []byte) []byte {
	if s == nil {
		return append(dst, "raw"...)
	}
	dst = append(dst, '{')
	for i := range s.entries {
		e := &s.entries[i]
		dst = appendString(dst, e.key)
		dst = appendString(dst, e.name)
		dst = append(dst, '[')
		for _, c := range e.conds {
			dst = appendString(dst, c)
		}
		dst = append(dst, ']')
		if e.child != nil {
			dst = e.child.appendKey(dst)
		}
		dst = append(dst, ';')
	}
	for _, x := range s.errs {
		dst = x.appendKey(dst)
	}
	return append(dst, '}')
}

const hexDigits = "0123456789abcdef"

// appendString encodes s as a JSON string the way encoding/json does
// without HTML escaping: invalid UTF-8 becomes U+FFFD and U+2028/U+2029
// are escaped. Hand-written because it runs for every string of every
// payload and must not allocate.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '"', '\\':
				dst = append(dst, '\\', b)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// appendCompact appends the first JSON value in data without insignificant
// whitespace, keeping the published key order. Invalid UTF-8 in strings
// becomes U+FFFD and raw control characters are escaped, so that the
// payload is always valid UTF-8 JSON. ok is false (and dst unchanged) when
// data holds a token the event decoder tolerated but JSON forbids, such as
// the number 01.
func appendCompact(dst, data []byte) (out []byte, ok bool) {
	n := len(dst)
	depth := 0
	for i := 0; i < len(data); {
		c := data[i]
		switch {
		case isSpace(c):
			i++
			continue
		case c == '{' || c == '[':
			depth++
			dst = append(dst, c)
			i++
		case c == '}' || c == ']':
			depth--
			dst = append(dst, c)
			i++
		case c == ',' || c == ':':
			if depth > 0 { // the decoder skips stray separators around the value
				dst = append(dst, c)
			}
			i++
			continue
		case c == '"':
			var ok bool
			if dst, i, ok = appendRawString(dst, data, i+1); !ok {
				return dst[:n], false
			}
		default:
			j := i
			for j < len(data) && !isSpace(data[j]) && !isDelim(data[j]) {
				j++
			}
			tok := data[i:j]
			switch string(tok) {
			case "true", "false", "null":
			default:
				if !isJSONNumber(string(tok)) {
					return dst[:n], false
				}
			}
			dst = append(dst, tok...)
			i = j
		}
		if depth <= 0 {
			break // one value only: ignore trailing separators
		}
	}
	if depth != 0 || len(dst) == n {
		return dst[:n], false
	}
	return dst, true
}

// appendRawString copies the rest of a JSON string starting at data[i],
// just after its opening quote, and returns the index after its end; ok is
// false for an invalid escape sequence.
func appendRawString(dst, data []byte, i int) (out []byte, next int, ok bool) {
	dst = append(dst, '"')
	for i < len(data) {
		j := i
		for j < len(data) && data[j] != '"' && data[j] != '\\' && data[j] >= 0x20 && data[j] < utf8.RuneSelf {
			j++
		}
		dst = append(dst, data[i:j]...)
		i = j
		if i == len(data) {
			break
		}
		switch c := data[i]; {
		case c == '"':
			return append(dst, c), i + 1, true
		case c == '\\':
			size := escapeLen(data[i:])
			if size == 0 {
				return dst, i, false
			}
			dst = append(dst, data[i:i+size]...)
			i += size
		case c < utf8.RuneSelf: // control character
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			i++
		default:
			r, size := utf8.DecodeRune(data[i:])
			if r == utf8.RuneError && size == 1 {
				dst = append(dst, `\ufffd`...)
			} else {
				dst = append(dst, data[i:i+size]...)
			}
			i += size
		}
	}
	return dst, i, false // unterminated
}

// escapeLen returns the length of the valid JSON escape sequence that
// starts esc, or 0.
func escapeLen(esc []byte) int {
	if len(esc) < 2 {
		return 0
	}
	switch esc[1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		return 2
	case 'u':
		if len(esc) < 6 {
			return 0
		}
		for _, h := range esc[2:6] {
			if !('0' <= h && h <= '9' || 'a' <= h && h <= 'f' || 'A' <= h && h <= 'F') {
				return 0
			}
		}
		return 6
	}
	return 0
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func isDelim(c byte) bool {
	return c == '{' || c == '}' || c == '[' || c == ']' || c == ',' || c == ':' || c == '"'
}
