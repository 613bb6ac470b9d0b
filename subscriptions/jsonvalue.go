package subscriptions

import (
	"unsafe"

	"github.com/valyala/fastjson"
)

// Event data is parsed once into fastjson's form (a tree of values over a
// copy of the input, no map[string]any); filters and projection read it
// directly. These helpers give that form the semantics the engine had with
// maps: a missing key and a JSON null are both nil, and of duplicate keys
// the last one wins.

// jv is one value of the parsed event data; nil stands for null.
type jv = *fastjson.Value

// norm maps JSON null to nil.
func norm(v jv) jv {
	if v == nil || v.Type() == fastjson.TypeNull {
		return nil
	}
	return v
}

// objectOf returns v's object, or nil when v is not an object.
func objectOf(v jv) *fastjson.Object {
	if v == nil || v.Type() != fastjson.TypeObject {
		return nil
	}
	o, _ := v.Object()
	return o
}

// field returns the value of key in o (the last one of duplicates), or nil
// when o is nil, has no such key or holds null there. present tells
// whether the key exists.
func field(o *fastjson.Object, key string) (v jv, present bool) {
	if o == nil {
		return nil, false
	}
	o.Visit(func(k []byte, x *fastjson.Value) {
		if string(k) == key {
			v, present = x, true
		}
	})
	return norm(v), present
}

// strOf returns v's unescaped string, without a copy: it lives as long as
// the parsed event. ok is false when v is not a string.
func strOf(v jv) (s string, ok bool) {
	if v == nil || v.Type() != fastjson.TypeString {
		return "", false
	}
	b, _ := v.StringBytes()
	return unsafe.String(unsafe.SliceData(b), len(b)), true
}

// numText returns v's number as written in the data, in scratch (so valid
// until the next use of scratch); ok is false when v is not a number.
func numText(v jv, scratch *[]byte) (string, bool) {
	if v == nil || v.Type() != fastjson.TypeNumber {
		return "", false
	}
	*scratch = v.MarshalTo((*scratch)[:0])
	return unsafe.String(unsafe.SliceData(*scratch), len(*scratch)), true
}

// arrayOf returns v's elements; ok is false when v is not an array.
func arrayOf(v jv) ([]*fastjson.Value, bool) {
	if v == nil || v.Type() != fastjson.TypeArray {
		return nil, false
	}
	a, _ := v.Array()
	return a, true
}

// uniqueFields returns o's keys without duplicates and the value each
// ends with, in first-appearance order.
func uniqueFields(o *fastjson.Object) (keys []string, vals []jv) {
	o.Visit(func(k []byte, x *fastjson.Value) {
		for i := range keys {
			if keys[i] == string(k) {
				vals[i] = norm(x)
				return
			}
		}
		keys = append(keys, string(k))
		vals = append(vals, norm(x))
	})
	return keys, vals
}

// kindOfValue names v's JSON type for error messages, as jsonKind does
// for decoded values.
func kindOfValue(v jv) string {
	if v == nil {
		return "null"
	}
	switch v.Type() {
	case fastjson.TypeObject:
		return "object"
	case fastjson.TypeArray:
		return "array"
	case fastjson.TypeString:
		return "string"
	case fastjson.TypeNumber:
		return "number"
	case fastjson.TypeTrue, fastjson.TypeFalse:
		return "boolean"
	}
	return "null"
}
