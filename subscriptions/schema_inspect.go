package subscriptions

import (
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode"

	json "github.com/goccy/go-json"
	"github.com/valyala/fastjson"
)

// Values in error messages are written the way graphql-core's inspect()
// writes the Python value json.loads gives: 'text', 1, 1.5, True, None,
// [1, 2], {'a': 1}, with its truncation of long strings and lists and its
// depth limit. A JSON number is a Python int when it has no fraction or
// exponent, else a float.

const (
	inspectMaxDepth = 2
	inspectMaxStr   = 240
	inspectMaxList  = 10
)

// pyKV is one member of an object, in published order.
type pyKV struct {
	key string
	val any
}

// fromJV turns event data into the values inspect reads: objects as
// []pyKV (order kept), arrays as []any, numbers as json.Number.
func fromJV(v jv) any {
	if v == nil {
		return nil
	}
	switch v.Type() {
	case fastjson.TypeTrue:
		return true
	case fastjson.TypeFalse:
		return false
	case fastjson.TypeString:
		s, _ := strOf(v)
		return s
	case fastjson.TypeNumber:
		return json.Number(v.String())
	case fastjson.TypeArray:
		a, _ := arrayOf(v)
		out := make([]any, len(a))
		for i, e := range a {
			out[i] = fromJV(norm(e))
		}
		return out
	case fastjson.TypeObject:
		var out []pyKV
		objectOf(v).Visit(func(k []byte, e *fastjson.Value) {
			out = append(out, pyKV{string(k), fromJV(norm(e))})
		})
		if out == nil {
			out = []pyKV{}
		}
		return out
	}
	return nil
}

func inspect(v any) string { return inspectDepth(v, 0) }

func inspectDepth(v any, depth int) string {
	switch x := v.(type) {
	case nil:
		return "None"
	case bool:
		if x {
			return "True"
		}
		return "False"
	case string:
		return truncStr(pyRepr(x))
	case json.Number:
		if isPyInt(string(x)) {
			return truncStr(pyIntString(string(x)))
		}
		f, _ := strconv.ParseFloat(string(x), 64)
		return pyFloatRepr(f)
	case []any:
		if len(x) == 0 {
			return "[]"
		}
		if depth >= inspectMaxDepth {
			return "[...]"
		}
		parts := make([]string, 0, len(x))
		for i, e := range x {
			if s, skip := truncItem(i, len(x)); skip {
				continue
			} else if s != "" {
				parts = append(parts, s)
				continue
			}
			parts = append(parts, inspectDepth(e, depth+1))
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case []pyKV:
		return inspectObject(x, depth)
	case map[string]any:
		// Decoded variables have lost their order: sorted keys, at least
		// stable (graphql-core shows them in the order sent).
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		kv := make([]pyKV, 0, len(x))
		for _, k := range keys {
			kv = append(kv, pyKV{k, x[k]})
		}
		return inspectObject(kv, depth)
	}
	return "<value>"
}

func inspectObject(x []pyKV, depth int) string {
	if len(x) == 0 {
		return "{}"
	}
	if depth >= inspectMaxDepth {
		return "{...}"
	}
	parts := make([]string, 0, len(x))
	for i, kv := range x {
		if s, skip := truncItem(i, len(x)); skip {
			continue
		} else if s != "" {
			parts = append(parts, s)
			continue
		}
		parts = append(parts, truncStr(pyRepr(kv.key))+": "+inspectDepth(kv.val, depth+1))
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

// truncItem is graphql-core's trunc_list: over 10 items, the first 5,
// "...", the last 4.
func truncItem(i, n int) (s string, skip bool) {
	if n <= inspectMaxList {
		return "", false
	}
	head := inspectMaxList / 2
	tail := head - 1
	switch {
	case i < head || i >= n-tail:
		return "", false
	case i == head:
		return "...", false
	}
	return "", true
}

func truncStr(s string) string {
	r := []rune(s)
	if len(r) <= inspectMaxStr {
		return s
	}
	i := (inspectMaxStr - 3) / 2
	j := inspectMaxStr - 3 - i
	return string(r[:i]) + "..." + string(r[len(r)-j:])
}

// pyRepr is Python's repr() of a str.
func pyRepr(s string) string {
	quote := byte('\'')
	if strings.IndexByte(s, '\'') >= 0 && strings.IndexByte(s, '"') < 0 {
		quote = '"'
	}
	var b strings.Builder
	b.WriteByte(quote)
	for _, r := range s {
		switch {
		case r == rune(quote) || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case unicode.IsPrint(r): // the ASCII space and U+FFFD too
			b.WriteRune(r)
		case r < 0x100:
			b.WriteString(`\x`)
			b.WriteString(hexPad(uint64(r), 2))
		case r < 0x10000:
			b.WriteString(`\u`)
			b.WriteString(hexPad(uint64(r), 4))
		default:
			b.WriteString(`\U`)
			b.WriteString(hexPad(uint64(r), 8))
		}
	}
	b.WriteByte(quote)
	return b.String()
}

func hexPad(n uint64, width int) string {
	s := strconv.FormatUint(n, 16)
	return strings.Repeat("0", max(0, width-len(s))) + s
}

// isPyInt reports whether a JSON number is an int for json.loads.
func isPyInt(tok string) bool { return !strings.ContainsAny(tok, ".eE") }

// pyIntString is str(int(tok)): "-0" is "0".
func pyIntString(tok string) string {
	if strings.TrimLeft(tok, "-0") == "" {
		return "0"
	}
	return tok
}

// pyFloatRepr is Python's repr() of a float (also its str()).
func pyFloatRepr(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	case math.IsNaN(f):
		return "nan"
	}
	e := strconv.FormatFloat(f, 'e', -1, 64) // d.ddde±XX
	mant, expS, _ := strings.Cut(e, "e")
	exp, _ := strconv.Atoi(expS)
	sign := ""
	if strings.HasPrefix(mant, "-") {
		sign, mant = "-", mant[1:]
	}
	digits := strings.Replace(mant, ".", "", 1)
	if exp < -4 || exp >= 16 {
		m := digits[:1]
		if len(digits) > 1 {
			m += "." + digits[1:]
		}
		es := strconv.Itoa(abs(exp))
		if len(es) < 2 {
			es = "0" + es
		}
		if exp < 0 {
			return sign + m + "e-" + es
		}
		return sign + m + "e+" + es
	}
	if exp < 0 {
		return sign + "0." + strings.Repeat("0", -exp-1) + digits
	}
	if len(digits) <= exp+1 {
		return sign + digits + strings.Repeat("0", exp+1-len(digits)) + ".0"
	}
	return sign + digits[:exp+1] + "." + digits[exp+1:]
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}
