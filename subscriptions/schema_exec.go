package subscriptions

import (
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unsafe"

	"github.com/valyala/fastjson"
	"github.com/vektah/gqlparser/v2/ast"
)

// Executing a schema-shaped plan on an event: graphql-core's
// complete_value with the event data as the root field's value. A field
// error nulls its field, or, for a non-null field, its nearest nullable
// ancestor; siblings after a failed non-null field are not executed, as
// in graphql-core, so the errors are the same. Everything the schema
// decides is resolved at registration (see schema_plan.go): an event
// costs lookups in the event only, and a value that already has its
// type's form (a JSON string for a String, an integer in range for an
// Int) is copied without conversion.

// shaper completes one event's value.
type shaper struct {
	ev     *decodedEvent
	schema *ast.Schema
	errs   []fieldErr
}

func (p *Plan) appendTypedPayload(dst []byte, ev *decodedEvent) []byte {
	s := shaper{ev: ev, schema: p.schema.s}
	mark := len(dst)
	dst = append(dst, p.prefix...)
	var root jv
	if ev != nil {
		root = ev.root
	}
	out, ok := s.complete(dst, p.typed, p.typed.typ, root)
	s.under(0, pathElem{key: p.ResponseKey})
	if ok {
		dst = append(out, '}')
	} else {
		dst = append(dst[:mark], `{"data":null`...)
	}
	if len(s.errs) > 0 {
		for _, e := range s.errs {
			slices.Reverse(e.path)
		}
		dst = appendErrors(dst, s.errs)
	}
	return append(dst, '}')
}

// under puts the errors from errs on below response path element at: an
// error's path is written on the way back up, leaf first, so that
// completing a value without an error keeps no path.
func (s *shaper) under(errs int, at pathElem) {
	for i := errs; i < len(s.errs); i++ {
		s.errs[i].path = append(s.errs[i].path, at)
	}
}

// complete writes the value v of field f, of type t (f's type or, in a
// list, its element type); ok is false when the value is null where t is
// non-null (the error is recorded): the caller then nulls its own value
// in turn.
func (s *shaper) complete(dst []byte, f *tField, t *ast.Type, v jv) ([]byte, bool) {
	if t == nil { // __typename is handled by the object; unknown fields are null
		return append(dst, "null"...), true
	}
	if v == nil || v.Type() == fastjson.TypeNull {
		if t.NonNull {
			s.fieldError(f, "Cannot return null for non-nullable field "+f.parent+"."+f.name+".")
			return dst, false
		}
		return append(dst, "null"...), true
	}
	if !t.NonNull {
		return s.completeValue(dst, f, t, v), true
	}
	mark, errs := len(dst), len(s.errs)
	out := s.completeValue(dst, f, t, v)
	if len(out)-mark != 4 || string(out[mark:]) != "null" {
		return out, true
	}
	// A null from an error below propagates that error, as graphql-core
	// re-raises it, without one of its own.
	if len(s.errs) == errs {
		s.fieldError(f, "Cannot return null for non-nullable field "+f.parent+"."+f.name+".")
	}
	return dst[:mark], false
}

// completeValue writes the non-null value v of field f as type t (its
// non-null wrapper aside), or null after recording a field error.
func (s *shaper) completeValue(dst []byte, f *tField, t *ast.Type, v jv) []byte {
	if t.Elem != nil {
		a, isList := arrayOf(v)
		if !isList {
			s.fieldError(f, "Expected Iterable, but did not find one for field '"+f.parent+"."+f.name+"'.")
			return append(dst, "null"...)
		}
		mark := len(dst)
		dst = append(dst, '[')
		scalars := f.leaf >= leafString && t.Elem.Elem == nil
		for i, e := range a {
			if i > 0 {
				dst = append(dst, ',')
			}
			if scalars && e.Type() != fastjson.TypeNull {
				var fits bool
				if dst, fits = appendFittingScalar(dst, f.leaf, e); fits {
					continue
				}
			}
			errs := len(s.errs)
			var ok bool
			dst, ok = s.complete(dst, f, t.Elem, norm(e))
			if len(s.errs) > errs {
				s.under(errs, pathElem{index: i})
			}
			if !ok {
				return append(dst[:mark], "null"...)
			}
		}
		return append(dst, ']')
	}
	switch f.leaf {
	case leafComposite:
		return s.completeObject(dst, f, v)
	case leafCustom:
		// graphql-core's default serializes a custom scalar as it is.
		return appendLoadedValue(dst, v)
	case leafEnum:
		if str, ok := strOf(v); ok && f.enum.has(str) {
			return appendString(dst, str)
		}
		s.fieldError(f, "Enum '"+f.named.Name+"' cannot represent value: "+inspect(fromJV(v)))
		return append(dst, "null"...)
	}
	if out, ok := appendFittingScalar(dst, f.leaf, v); ok {
		return out
	}
	out, msg := serializeScalar(dst, f.named.Name, v)
	if msg != "" {
		s.fieldError(f, msg)
		return append(dst, "null"...)
	}
	return out
}

// appendFittingScalar writes v when it already has the JSON form that
// serializing it as a built-in scalar of kind k gives (ok), as the
// common case; any other value goes through serializeScalar.
func appendFittingScalar(dst []byte, k leafKind, v jv) ([]byte, bool) {
	switch v.Type() {
	case fastjson.TypeString:
		if k == leafString || k == leafID {
			str, _ := strOf(v)
			return appendString(dst, str), true
		}
	case fastjson.TypeTrue, fastjson.TypeFalse:
		if k == leafBoolean {
			return strconv.AppendBool(dst, v.Type() == fastjson.TypeTrue), true
		}
	case fastjson.TypeNumber:
		n := len(dst)
		if k == leafID {
			dst = append(dst, '"')
		}
		dst = v.MarshalTo(dst)
		tok := dst[n:]
		switch k {
		case leafInt:
			if x, ok := smallInt(tok); ok && x >= math.MinInt32 && x <= math.MaxInt32 {
				return dst, true
			}
		case leafID:
			if isPlainInt(tok[1:]) {
				return append(dst, '"'), true
			}
		case leafFloat:
			// Without an exponent a JSON number this short is finite.
			if ok, _ := plainNumber(tok); ok && len(tok) < 300 {
				return dst, true
			}
		}
		return dst[:n], false
	}
	return dst, false
}

// appendLoadedValue writes v as the value json.loads gives for it:
// objects keep the order of their keys' first appearance, with the last
// value of a duplicate key (appendEventValue, the form without a schema,
// sorts keys).
func appendLoadedValue(dst []byte, v jv) []byte {
	if a, ok := arrayOf(v); ok {
		dst = append(dst, '[')
		for i, e := range a {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendLoadedValue(dst, norm(e))
		}
		return append(dst, ']')
	}
	o := objectOf(v)
	if o == nil {
		return appendEventValue(dst, v)
	}
	keys, vals := uniqueFields(o)
	dst = append(dst, '{')
	for i, k := range keys {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(appendString(dst, k), ':')
		dst = appendLoadedValue(dst, vals[i])
	}
	return append(dst, '}')
}

// plainNumber reports whether tok is a JSON number without an exponent,
// -?(0|[1-9][0-9]*)(\.[0-9]+)?, and whether it has a fraction.
func plainNumber(tok []byte) (ok, fraction bool) {
	i := 0
	if i < len(tok) && tok[i] == '-' {
		i++
	}
	start := i
	for i < len(tok) && tok[i] >= '0' && tok[i] <= '9' {
		i++
	}
	if i == start || tok[start] == '0' && i-start > 1 {
		return false, false
	}
	if i < len(tok) && tok[i] == '.' {
		i++
		frac := i
		for i < len(tok) && tok[i] >= '0' && tok[i] <= '9' {
			i++
		}
		return i > frac && i == len(tok), true
	}
	return i == len(tok), false
}

// isPlainInt reports whether tok is a JSON integer whose Python str() is
// itself (not -0).
func isPlainInt(tok []byte) bool {
	ok, frac := plainNumber(tok)
	return ok && !frac && string(tok) != "-0"
}

// smallInt is the value of tok when it is a plain integer (isPlainInt)
// of at most ten digits.
func smallInt(tok []byte) (int64, bool) {
	if len(tok) > 11 || !isPlainInt(tok) {
		return 0, false
	}
	d, neg := tok, false
	if d[0] == '-' {
		d, neg = d[1:], true
	}
	if len(d) > 10 {
		return 0, false
	}
	var x int64
	for _, c := range d {
		x = x*10 + int64(c-'0')
	}
	if neg {
		x = -x
	}
	return x, true
}

func (s *shaper) completeObject(dst []byte, f *tField, v jv) []byte {
	obj := objectOf(v)
	var sel *tSel
	var typeName string
	if f.objSel != nil {
		typeName, sel = f.named.Name, f.objSel
	} else {
		var tn jv
		if obj != nil {
			tn, _ = field(obj, "__typename")
		}
		name, isStr := strOf(tn)
		sel = f.subs[name]
		switch {
		case tn == nil || !isStr:
			s.fieldError(f, "Abstract type '"+f.named.Name+"' must resolve to an Object type at runtime for field '"+
				f.parent+"."+f.name+"'. Either the '"+f.named.Name+"' type should provide a 'resolve_type' function"+
				" or each possible type should provide an 'is_type_of' function.")
			return append(dst, "null"...)
		case sel == nil && s.schema.Types[name] == nil:
			s.fieldError(f, "Abstract type '"+f.named.Name+"' was resolved to a type '"+name+"' that does not exist inside the schema.")
			return append(dst, "null"...)
		case sel == nil && s.schema.Types[name].Kind != ast.Object:
			s.fieldError(f, "Abstract type '"+f.named.Name+"' was resolved to a non-object type '"+name+"'.")
			return append(dst, "null"...)
		case sel == nil:
			s.fieldError(f, "Runtime Object type '"+name+"' is not a possible type for '"+f.named.Name+"'.")
			return append(dst, "null"...)
		}
		typeName = name
	}
	if sel.err != nil {
		s.errs = append(s.errs, fieldErr{msg: sel.err.msg, locs: sel.err.locs()})
		return append(dst, "null"...)
	}
	mark := len(dst)
	dst = append(dst, '{')
	for i, c := range sel.fields {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, c.keyJSON...)
		if c.typename {
			dst = appendString(dst, typeName)
			continue
		}
		if c.argErr != nil {
			s.errs = append(s.errs, fieldErr{msg: c.argErr.msg, locs: c.argErr.locs(), path: []pathElem{{key: c.key}}})
			if c.typ.NonNull {
				return append(dst[:mark], "null"...)
			}
			dst = append(dst, "null"...)
			continue
		}
		var cv jv
		switch {
		case obj != nil && obj == s.ev.obj:
			cv = s.ev.getAt(c.name, &c.at)
		case obj != nil:
			cv, _ = field(obj, c.name)
		}
		if c.scalar && cv != nil {
			var fits bool
			if dst, fits = appendFittingScalar(dst, c.leaf, cv); fits {
				continue
			}
		}
		errs := len(s.errs)
		var ok bool
		dst, ok = s.complete(dst, c, c.typ, cv)
		if len(s.errs) > errs {
			s.under(errs, pathElem{key: c.key})
		}
		if !ok {
			return append(dst[:mark], "null"...)
		}
	}
	return append(dst, '}')
}

// fieldError records msg with f's locations (its path is added on the
// way up: see under).
func (s *shaper) fieldError(f *tField, msg string) {
	s.errs = append(s.errs, fieldErr{msg: msg, locs: f.locs})
}

// serializeScalar writes v as graphql-core serializes the JSON value
// json.loads gives for it; msg is the field error when it cannot.
func serializeScalar(dst []byte, scalar string, v jv) (out []byte, msg string) {
	kind := v.Type()
	var tok string
	var f float64
	isInt := false
	if kind == fastjson.TypeNumber {
		// The token is written where the value goes, then kept or replaced.
		n := len(dst)
		dst = v.MarshalTo(dst)
		raw := dst[n:]
		tok = unsafe.String(unsafe.SliceData(raw), len(raw))
		isInt = isPyInt(tok)
		f = math.NaN()
		if isInt && len(tok) < 18 {
			if i, err := strconv.ParseInt(tok, 10, 64); err == nil {
				f = float64(i)
			}
		}
		if math.IsNaN(f) {
			f, _ = strconv.ParseFloat(tok, 64) // ±Inf beyond float64, like json.loads
		}
		if scalar == "Float" && !math.IsInf(f, 0) && isJSONNumber(tok) {
			return dst, "" // json.loads's float, as JSON
		}
		if scalar == "Int" && isInt && f >= math.MinInt32 && f <= math.MaxInt32 && isJSONNumber(tok) && tok != "-0" {
			return dst, ""
		}
		tok = strings.Clone(tok)
		dst = dst[:n]
	}
	s, isStr := strOf(v)
	isBool := kind == fastjson.TypeTrue || kind == fastjson.TypeFalse
	truth := kind == fastjson.TypeTrue
	bad := func(prefix string) ([]byte, string) { return dst, prefix + inspect(fromJV(v)) }
	switch scalar {
	case "Int":
		switch {
		case isBool:
			return appendBit(dst, truth), ""
		case isInt:
			if f < math.MinInt32 || f > math.MaxInt32 {
				return bad("Int cannot represent non 32-bit signed integer value: ")
			}
			return append(dst, pyIntString(tok)...), ""
		case kind == fastjson.TypeNumber:
			if math.IsInf(f, 0) || f != math.Trunc(f) {
				return bad("Int cannot represent non-integer value: ")
			}
			if f < math.MinInt32 || f > math.MaxInt32 {
				return bad("Int cannot represent non 32-bit signed integer value: ")
			}
			return strconv.AppendInt(dst, int64(f), 10), ""
		case isStr:
			n, ok := pyInt(s)
			if !ok {
				return bad("Int cannot represent non-integer value: ")
			}
			if n < math.MinInt32 || n > math.MaxInt32 {
				return bad("Int cannot represent non 32-bit signed integer value: ")
			}
			return strconv.AppendInt(dst, n, 10), ""
		}
		return bad("Int cannot represent non-integer value: ")
	case "Float":
		switch {
		case isBool:
			return appendBit(dst, truth), ""
		case kind == fastjson.TypeNumber && !math.IsInf(f, 0):
			return append(dst, pyFloatRepr(f)...), ""
		case isStr && strings.TrimSpace(s) != "":
			x, err := strconv.ParseFloat(strings.TrimFunc(s, unicode.IsSpace), 64)
			if err == nil && !math.IsInf(x, 0) && !math.IsNaN(x) {
				return append(dst, pyFloatRepr(x)...), ""
			}
		}
		return bad("Float cannot represent non numeric value: ")
	case "String":
		switch {
		case isStr:
			return appendString(dst, s), ""
		case isBool:
			return appendString(dst, strconv.FormatBool(truth)), ""
		case isInt:
			return appendString(dst, pyIntString(tok)), ""
		case kind == fastjson.TypeNumber && !math.IsInf(f, 0):
			return appendString(dst, pyFloatRepr(f)), ""
		}
		return bad("String cannot represent value: ")
	case "Boolean":
		switch {
		case isBool:
			return strconv.AppendBool(dst, truth), ""
		case kind == fastjson.TypeNumber && !math.IsInf(f, 0):
			return strconv.AppendBool(dst, f != 0), ""
		}
		return bad("Boolean cannot represent a non boolean value: ")
	case "ID":
		switch {
		case isStr:
			return appendString(dst, s), ""
		case isInt:
			return appendString(dst, pyIntString(tok)), ""
		case kind == fastjson.TypeNumber && !math.IsInf(f, 0) && f == math.Trunc(f):
			return appendString(dst, strconv.FormatFloat(f, 'f', 0, 64)), ""
		}
		return bad("ID cannot represent value: ")
	}
	// A custom scalar: graphql-core's default serializes the value as is.
	return appendEventValue(dst, v), ""
}

func appendBit(dst []byte, b bool) []byte {
	if b {
		return append(dst, '1')
	}
	return append(dst, '0')
}

// pyInt is Python's int() of a str, for the values that fit an int64.
func pyInt(s string) (int64, bool) {
	s = strings.TrimFunc(s, unicode.IsSpace)
	digits := strings.TrimLeft(s, "+-")
	if len(s)-len(digits) > 1 || digits == "" || digits[0] == '_' || digits[len(digits)-1] == '_' || strings.Contains(digits, "__") {
		return 0, false
	}
	n, err := strconv.ParseInt(s[:len(s)-len(digits)]+strings.ReplaceAll(digits, "_", ""), 10, 64)
	if err != nil {
		// Out of int64 is out of Int's range too: report it as such.
		if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange {
			return math.MaxInt64, true
		}
		return 0, false
	}
	return n, true
}
