package subscriptions

import (
	"math"
	"strconv"
	"strings"
	"sync"
	"unicode"
	"unsafe"

	"github.com/valyala/fastjson"
	"github.com/vektah/gqlparser/v2/ast"
)

// Executing a schema-shaped plan on an event: graphql-core's
// complete_value with the event data as the root field's value. A field
// error nulls its field, or, for a non-null field, its nearest nullable
// ancestor; siblings after a failed non-null field are not executed, as
// in graphql-core, so the errors are the same.

// pathPool holds response paths: one per payload being written.
var pathPool = sync.Pool{New: func() any { p := make([]pathElem, 0, 16); return &p }}

func (p *Plan) appendTypedPayload(dst []byte, ev *decodedEvent) []byte {
	pb := pathPool.Get().(*[]pathElem)
	defer pathPool.Put(pb)
	m := merger{ev: ev, path: append((*pb)[:0], pathElem{key: p.ResponseKey}), schema: p.schema.s}
	defer func() { *pb = m.path[:0] }() // keep what it grew to
	mark := len(dst)
	dst = append(dst, p.prefix...)
	var root jv
	if ev != nil {
		root = ev.root
	}
	out, ok := m.complete(dst, p.typed, p.typed.typ, root)
	m.path = m.path[:0]
	if ok {
		dst = append(out, '}')
	} else {
		dst = append(dst[:mark], `{"data":null`...)
	}
	if len(m.errs) > 0 {
		dst = m.appendErrors(dst)
	}
	return append(dst, '}')
}

// complete writes the value of field f of type t; ok is false when the
// value is null where t is non-null (the error is recorded): the caller
// then nulls its own value in turn. nullable means t's own non-null
// wrapper was already handled.
func (m *merger) complete(dst []byte, f *tField, t *ast.Type, v jv) ([]byte, bool) {
	return m.completeType(dst, f, t, false, v)
}

func (m *merger) completeType(dst []byte, f *tField, t *ast.Type, nullable bool, v jv) ([]byte, bool) {
	if t == nil { // __typename is handled by the object; unknown fields are null
		return append(dst, "null"...), true
	}
	if t.NonNull && !nullable {
		mark, errs := len(dst), len(m.errs)
		out, ok := m.completeType(dst, f, t, true, v)
		switch {
		case !ok:
			return dst[:mark], false
		case string(out[mark:]) != "null":
			return out, true
		case len(m.errs) == errs:
			m.fieldError(f, "Cannot return null for non-nullable field "+f.parent+"."+f.name+".")
		}
		// A null from an error below propagates that error, as graphql-core
		// re-raises it, without one of its own.
		return dst[:mark], false
	}
	if v == nil || v.Type() == fastjson.TypeNull {
		return append(dst, "null"...), true
	}
	if t.Elem != nil {
		a, isList := arrayOf(v)
		if !isList {
			m.fieldError(f, "Expected Iterable, but did not find one for field '"+f.parent+"."+f.name+"'.")
			return append(dst, "null"...), true
		}
		mark := len(dst)
		dst = append(dst, '[')
		for i, e := range a {
			if i > 0 {
				dst = append(dst, ',')
			}
			m.path = append(m.path, pathElem{index: i})
			var ok bool
			dst, ok = m.completeType(dst, f, t.Elem, false, norm(e))
			m.path = m.path[:len(m.path)-1]
			if !ok {
				return append(dst[:mark], "null"...), true
			}
		}
		return append(dst, ']'), true
	}
	if f.named == nil {
		return appendEventValue(dst, v), true
	}
	switch f.named.Kind {
	case ast.Object, ast.Interface, ast.Union:
		return m.completeObject(dst, f, v)
	case ast.Enum:
		if s, ok := strOf(v); ok && f.named.EnumValues.ForName(s) != nil {
			return appendString(dst, s), true
		}
		m.fieldError(f, "Enum '"+f.named.Name+"' cannot represent value: "+inspect(fromJV(v)))
		return append(dst, "null"...), true
	}
	out, msg := serializeScalar(dst, f.named.Name, v)
	if msg != "" {
		m.fieldError(f, msg)
		return append(dst, "null"...), true
	}
	return out, true
}

func (m *merger) completeObject(dst []byte, f *tField, v jv) ([]byte, bool) {
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
			m.fieldError(f, "Abstract type '"+f.named.Name+"' must resolve to an Object type at runtime for field '"+
				f.parent+"."+f.name+"'. Either the '"+f.named.Name+"' type should provide a 'resolve_type' function"+
				" or each possible type should provide an 'is_type_of' function.")
			return append(dst, "null"...), true
		case sel == nil && m.schemaType(name) == nil:
			m.fieldError(f, "Abstract type '"+f.named.Name+"' was resolved to a type '"+name+"' that does not exist inside the schema.")
			return append(dst, "null"...), true
		case sel == nil && m.schemaType(name).Kind != ast.Object:
			m.fieldError(f, "Abstract type '"+f.named.Name+"' was resolved to a non-object type '"+name+"'.")
			return append(dst, "null"...), true
		case sel == nil:
			m.fieldError(f, "Runtime Object type '"+name+"' is not a possible type for '"+f.named.Name+"'.")
			return append(dst, "null"...), true
		}
		typeName = name
	}
	if sel.err != nil {
		m.addError(sel.err)
		return append(dst, "null"...), true
	}
	mark := len(dst)
	dst = append(dst, '{')
	for i, c := range sel.fields {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, c.keyJSON...)
		if c.name == "__typename" {
			dst = appendString(dst, typeName)
			continue
		}
		var cv jv
		switch {
		case obj != nil && obj == m.ev.obj:
			cv, _ = m.ev.getAt(c.name, &c.at)
		case obj != nil:
			cv, _ = field(obj, c.name)
		}
		m.path = append(m.path, pathElem{key: c.key})
		var ok bool
		dst, ok = m.complete(dst, c, c.typ, cv)
		m.path = m.path[:len(m.path)-1]
		if !ok {
			return append(dst[:mark], "null"...), true
		}
	}
	return append(dst, '}'), true
}

func (m *merger) schemaType(name string) *ast.Definition { return m.schema.Types[name] }

// fieldError records msg at the current path with f's locations.
func (m *merger) fieldError(f *tField, msg string) {
	x := execError{msg: msg}
	m.addErrorAt(&x, f.locs)
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
