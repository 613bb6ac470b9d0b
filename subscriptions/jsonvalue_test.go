package subscriptions

import (
	"strings"
	"testing"

	"github.com/valyala/fastjson"
)

// The event form read by filters and projection (fastjson) keeps the
// semantics the engine had with maps: these pin them with exact bytes.
func TestEventFormSemantics(t *testing.T) {
	lim := Limits{}.withDefaults()
	sel := mustCompile(t, `subscription { u { a b { c } } }`, nil)
	raw := mustCompile(t, `subscription { u }`, nil)
	cases := []struct {
		name, data, sel, raw string
	}{
		{"duplicate keys: the last wins", `{"a":1,"a":2,"b":{"c":1,"c":3}}`,
			`{"data":{"u":{"a":2,"b":{"c":3}}}}`, `{"data":{"u":{"a":1,"a":2,"b":{"c":1,"c":3}}}}`},
		{"unselected object: sorted keys, last duplicate", `{"a":{"z":1,"y":[1,{"q":2,"p":null}],"z":5}}`,
			`{"data":{"u":{"a":{"y":[1,{"p":null,"q":2}],"z":5},"b":null}}}`, `{"data":{"u":{"a":{"z":1,"y":[1,{"q":2,"p":null}],"z":5}}}}`},
		{"numbers keep their text", `{"a":1.50e3,"b":[{"c":-0.0},{"c":123456789012345678901234567890}]}`,
			`{"data":{"u":{"a":1.50e3,"b":[{"c":-0.0},{"c":123456789012345678901234567890}]}}}`, ""},
		{"lone surrogate escape becomes U+FFFD", `{"a":"x\ud800y","b":{"c":"\udc00"}}`,
			"{\"data\":{\"u\":{\"a\":\"x\uFFFDy\",\"b\":{\"c\":\"\uFFFD\"}}}}", `{"data":{"u":{"a":"x\ud800y","b":{"c":"\udc00"}}}}`},
		{"surrogate pair", `{"a":"\ud83d\ude00"}`, "{\"data\":{\"u\":{\"a\":\"\U0001F600\",\"b\":null}}}", ""},
		{"invalid UTF-8 becomes U+FFFD", "{\"a\":\"\xff\"}", "{\"data\":{\"u\":{\"a\":\"\uFFFD\",\"b\":null}}}", ""},
		{"null and missing", `{"a":null}`, `{"data":{"u":{"a":null,"b":null}}}`, ""},
	}
	for _, c := range cases {
		d, err := decodeEvent(Event{Type: "u", Channel: "u", Data: []byte(c.data)}, lim)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got := string(sel.AppendPayload(nil, d)); got != c.sel {
			t.Errorf("%s: projection\n got %s\nwant %s", c.name, got, c.sel)
		}
		if c.raw != "" {
			if got := string(raw.AppendPayload(nil, d)); got != c.raw {
				t.Errorf("%s: raw\n got %s\nwant %s", c.name, got, c.raw)
			}
		}
		d.release()
	}
}

func TestEventFormFilters(t *testing.T) {
	lim := Limits{}.withDefaults()
	for _, c := range []struct {
		q, data string
		want    bool
	}{
		{`subscription { u(where: {a: {eq: 2}}) { a } }`, `{"a":1,"a":2}`, true},
		{`subscription { u(where: {a: {eq: 1}}) { a } }`, `{"a":1,"a":2}`, false},
		{`subscription { u(where: {b: {c: {gte: 2}}}) { a } }`, `{"b":{"c":1,"c":2}}`, true},
		{`subscription { u(where: {a: {isnull: true}}) { a } }`, `{"a":null}`, true},
		{`subscription { u(where: {a: {isnull: true}}) { a } }`, `{}`, true},
		{`subscription { u(where: {a: {contains: 2}}) { a } }`, `{"a":[1,2.0]}`, true},
		{`subscription { u(where: {a: {eq: {x: [1, "y"]}}}) { a } }`, `{"a":{"x":[1.0,"y"]}}`, true},
		{`subscription { u(where: {a: {eq: {x: 1}}}) { a } }`, `{"a":{"x":1,"x":2}}`, false},
		{`subscription { u(id: "7") { a } }`, `{"id":7.0}`, true},
		{`subscription { u(id: 7) { a } }`, `{"id":"7"}`, true},
		{`subscription { u(where: {a: {neq: "x"}}) { a } }`, `{"a":1}`, false},
		{`subscription { u(where: {a: {startswith: "é"}}) { a } }`, `{"a":"\u00e9t\u00e9"}`, true},
	} {
		p := mustCompile(t, c.q, nil)
		d, err := decodeEvent(Event{Type: "u", Channel: "u", Data: []byte(c.data)}, lim)
		if err != nil {
			t.Fatal(err)
		}
		if got := p.Match(d); got != c.want {
			t.Errorf("%s on %s: %v, want %v", c.q, c.data, got, c.want)
		}
		d.release()
	}
}

func TestEventFormRefusals(t *testing.T) {
	lim := Limits{}.withDefaults()
	deep := strings.Repeat(`{"a":`, 300) + "1" + strings.Repeat("}", 300)
	for _, c := range []struct {
		data       string
		wellFormed bool
		want       string
	}{
		{`{"a":1e999}`, false, `event data is not valid JSON: the number 1e999 is beyond the range of a float64`},
		{`{"a":1e999}`, true, `event data is not valid JSON: the number 1e999 is beyond the range of a float64`},
		{`{"a":NaN}`, true, `event data is not valid JSON: invalid character 'N' looking for beginning of value`},
		{`{"a":01}`, false, `event data is not valid JSON: invalid character '1' after object key:value pair`},
		{`{"a":-Inf}`, true, `event data is not valid JSON: invalid character 'I' in numeric literal`},
		{`{"a":"\ud800"}`, true, `data is not valid Unicode: it contains the lone surrogate '\ud800'`},
		{`{"a":"\udc00"}`, true, `data is not valid Unicode: it contains the lone surrogate '\udc00'`},
		{`{"a":"\ud800\u0041"}`, true, `data is not valid Unicode: it contains the lone surrogate '\ud800'`},
		{`{"a":"\ud83d\ude00"}`, true, ""},
		{`{"a":"\udfff"}`, true, `data is not valid Unicode: it contains the lone surrogate '\udfff'`},
		{`{"a":"\udbff"}`, true, `data is not valid Unicode: it contains the lone surrogate '\udbff'`},
		{`{"a":"\udbff\udfff\ud800\udc00\ud7ff\ue000"}`, true, ""},
		{`{"a":"\\ud800"}`, true, ""},
		{`[1]`, true, `event data must be a JSON object, got array`},
		{deep, false, "event data is not valid JSON: nested deeper than 300 levels"},
	} {
		d, err := decodeEventFrom(Event{Type: "u", Channel: "u", Data: []byte(c.data)}, lim, c.wellFormed)
		got := ""
		if err != nil {
			got = err.Error()
		} else {
			d.release()
		}
		if got != c.want {
			t.Errorf("%.40s (wellFormed %v): %q, want %q", c.data, c.wellFormed, got, c.want)
		}
	}
}

// field tells a key present with null from a missing one and from no
// object at all, and of duplicate keys returns the last.
func TestFieldPresence(t *testing.T) {
	v, err := fastjson.Parse(`{"n":null,"a":1,"a":2}`)
	if err != nil {
		t.Fatal(err)
	}
	o := objectOf(v)
	for _, tt := range []struct {
		o       *fastjson.Object
		key     string
		want    string
		present bool
	}{
		{nil, "a", "", false},
		{o, "x", "", false},
		{o, "n", "", true},
		{o, "a", "2", true},
	} {
		got, present := field(tt.o, tt.key)
		s := ""
		if got != nil {
			s = got.String()
		}
		if s != tt.want || present != tt.present {
			t.Errorf("field(%v, %q) = %q, %v; want %q, %v", tt.o, tt.key, s, present, tt.want, tt.present)
		}
	}
}
