package subscriptions

import (
	"cmp"
	"math"
	"strconv"
	"unsafe"

	"github.com/valyala/fastjson"
)

// number is a JSON number with what comparing it needs, parsed once: a
// filter's operand when the filter is compiled, an event's value the
// first time a filter reads it. compareNumbers on two numbers gives what
// numCompare gives on their texts.
type number struct {
	text    string
	valid   bool // text is in JSON number syntax
	intText bool // text is an integer
	intOK   bool // ... that fits int64 (i)
	i       int64
	floatOK bool // f holds the value exactly enough to compare as float64
	f       float64
}

func parseNumber(s string) number {
	n := number{text: s, valid: isJSONNumber(s)}
	if !n.valid {
		return n
	}
	n.intText = isIntText(s)
	if n.intText {
		i, err := strconv.ParseInt(s, 10, 64)
		n.i, n.intOK = i, err == nil
	}
	const exact = 1 << 53
	f, err := strconv.ParseFloat(s, 64)
	n.f = f
	n.floatOK = err == nil && math.Abs(f) < exact && (f != 0 || isZeroText(s))
	return n
}

// compareNumbers compares two valid numbers, exactly: as int64, as
// float64 when both hold their values exactly enough, or through
// numCompare's arbitrary precision.
func compareNumbers(a, b number) int {
	if a.intText && b.intText {
		if a.intOK && b.intOK {
			return cmp.Compare(a.i, b.i)
		}
	} else if a.floatOK && b.floatOK {
		return cmp.Compare(a.f, b.f)
	}
	return numCompare(a.text, b.text)
}

// numbersEqual is equal's rule for two numbers: the same text, or two
// valid numbers of equal value.
func numbersEqual(a, b number) bool {
	return a.text == b.text || (a.valid && b.valid && compareNumbers(a, b) == 0)
}

// eventNumber is one parsed number of an event's data.
type eventNumber struct {
	v jv
	n number
}

// number returns v's number parsed, from the event's cache after the
// first time (the filters of many subscriptions read the same fields);
// ok is false when v is not a number.
func (d *decodedEvent) number(v jv) (number, bool) {
	if v == nil || v.Type() != fastjson.TypeNumber {
		return number{}, false
	}
	for i := range d.nums {
		if d.nums[i].v == v {
			return d.nums[i].n, true
		}
	}
	// The text is kept in numText until the event is released (a grown
	// numText leaves the earlier texts in the array they point into).
	start := len(d.numText)
	d.numText = v.MarshalTo(d.numText)
	text := d.numText[start:]
	n := parseNumber(unsafe.String(unsafe.SliceData(text), len(text)))
	d.nums = append(d.nums, eventNumber{v, n})
	return n, true
}
