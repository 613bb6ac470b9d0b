package subscriptions

import (
	"encoding/json"
	"testing"
	"unicode/utf8"

	"github.com/valyala/fastjson"
)

func TestAppendPayload(t *testing.T) {
	const user = `{"__typename":"User","id":7,"name":"Ann","email":"a@x.io","age":30.50,
		"tags":["a","b"],"address":{"city":"Lyon","zip":"69001","geo":{"lat":1.5e3,"lng":-2}},
		"friends":[{"id":1,"name":"Bo","__typename":"Friend"},{"id":2,"name":"Cy"},null,5],
		"matrix":[[{"id":1}],[{"id":2},{"id":3}]],"nothing":null}`
	tests := []struct {
		name, q string
		vars    map[string]any
		typ     string
		data    string
		want    string
	}{
		{name: "select in query order", q: "subscription { userCreated { name id } }", data: user,
			want: `{"data":{"userCreated":{"name":"Ann","id":7}}}`},
		{name: "numbers exact", q: "subscription { u { age address { geo { lat lng } } } }", data: user,
			want: `{"data":{"u":{"age":30.50,"address":{"geo":{"lat":1.5e3,"lng":-2}}}}}`},
		{name: "aliases", q: "subscription { who: u { n: name i: id } }", data: user,
			want: `{"data":{"who":{"n":"Ann","i":7}}}`},
		{name: "missing is null", q: "subscription { u { id nope nothing } }", data: user,
			want: `{"data":{"u":{"id":7,"nope":null,"nothing":null}}}`},
		{name: "whole object and list without selection", q: "subscription { u { address tags } }", data: user,
			want: `{"data":{"u":{"address":{"city":"Lyon","geo":{"lat":1.5e3,"lng":-2},"zip":"69001"},"tags":["a","b"]}}}`},
		{name: "scalar with selection", q: "subscription { u { name { first } } }", data: user,
			want: `{"data":{"u":{"name":"Ann"}}}`},
		{name: "list of objects", q: "subscription { u { friends { name } } }", data: user,
			want: `{"data":{"u":{"friends":[{"name":"Bo"},{"name":"Cy"},null,5]}}}`},
		{name: "nested lists", q: "subscription { u { matrix { id x } } }", data: user,
			want: `{"data":{"u":{"matrix":[[{"id":1,"x":null}],[{"id":2,"x":null},{"id":3,"x":null}]]}}}`},
		{name: "raw data keeps order", q: "subscription { u }", data: "{ \"z\" : 1 ,\n \"a\": [ 1, 2 ], \"s\": \"a b\\\" c\" }",
			want: `{"data":{"u":{"z":1,"a":[1,2],"s":"a b\" c"}}}`},
		{name: "raw data keeps the U+FFFD it holds", q: "subscription { u }", data: "{\"s\":\"\uFFFD \xff\"}",
			want: "{\"data\":{\"u\":{\"s\":\"\uFFFD \\ufffd\"}}}"},
		{name: "raw alias", q: "subscription { x: u }", data: `{"a":1}`, want: `{"data":{"x":{"a":1}}}`},
		{name: "typename from data", q: "subscription { u { __typename t: __typename friends { __typename } } }", typ: "userCreated", data: user,
			want: `{"data":{"u":{"__typename":"User","t":"User","friends":[{"__typename":"Friend"},{"__typename":"userCreated"},null,5]}}}`},
		{name: "typename from event type", q: "subscription { u { __typename address { __typename } } }", typ: "userCreated", data: `{"address":{}}`,
			want: `{"data":{"u":{"__typename":"userCreated","address":{"__typename":"userCreated"}}}}`},
		{name: "named fragment", q: "subscription { u { ...F email } } fragment F on User { id name }", data: user,
			want: `{"data":{"u":{"id":7,"name":"Ann","email":"a@x.io"}}}`},
		{name: "fragment not applying", q: "subscription { u { id ...F } } fragment F on Admin { name }", typ: "userCreated", data: user,
			want: `{"data":{"u":{"id":7}}}`},
		{name: "type condition on event type", q: "subscription { u { id ... on userCreated { name } } }", typ: "userCreated", data: `{"id":1,"name":"N"}`,
			want: `{"data":{"u":{"id":1,"name":"N"}}}`},
		{name: "type condition on typename", q: "subscription { u { ... on User { name } ... on Admin { id } } }", typ: "evt", data: user,
			want: `{"data":{"u":{"name":"Ann"}}}`},
		{name: "inline without condition", q: "subscription { u { ... { id } ... @include(if: false) { name } } }", data: user,
			want: `{"data":{"u":{"id":7}}}`},
		{name: "inline without condition inside a type condition", q: "subscription { u { ... on User { ... { id } } ... on Admin { ... { name } } } }", data: user,
			want: `{"data":{"u":{"id":7}}}`},
		{name: "nested type condition", q: "subscription { u { friends { ... on Friend { id } name } } }", data: user,
			want: `{"data":{"u":{"friends":[{"id":1,"name":"Bo"},{"name":"Cy"},null,5]}}}`},
		{name: "conditional key order", q: "subscription { u { ... on User { name } id name } }", data: user,
			want: `{"data":{"u":{"name":"Ann","id":7}}}`},
		{name: "conditional key order not applying", q: "subscription { u { ... on Admin { name } id name } }", data: user,
			want: `{"data":{"u":{"id":7,"name":"Ann"}}}`},
		{name: "duplicate merged", q: "subscription { u { id address { city } id address { zip } } }", data: user,
			want: `{"data":{"u":{"id":7,"address":{"city":"Lyon","zip":"69001"}}}}`},
		{name: "root fields merged", q: "subscription { u { id } u { name } }", data: user,
			want: `{"data":{"u":{"id":7,"name":"Ann"}}}`},
		{name: "skip and include", q: "subscription ($no: Boolean = false, $yes: Boolean!) { u { a: id @skip(if: true) id @include(if: $yes) name @include(if: $no) email @skip(if: $no) } }",
			vars: map[string]any{"yes": true}, data: user,
			want: `{"data":{"u":{"id":7,"email":"a@x.io"}}}`},
		{name: "skip wins over include", q: "subscription { u { id @skip(if: true) @include(if: true) name } }", data: user,
			want: `{"data":{"u":{"name":"Ann"}}}`},
		{name: "skipped fragment spread", q: "subscription { u { id ...F @skip(if: true) } } fragment F on User { name }", data: user,
			want: `{"data":{"u":{"id":7}}}`},
		{name: "string escaping", q: "subscription { u { s } }", data: `{"s":"q\" b\\ n\n t\t c\u0001 <&> \u2028 é😀"}`,
			want: `{"data":{"u":{"s":"q\" b\\ n\n t\t c\u0001 <&> \u2028 é😀"}}}`},
		{name: "empty object data", q: "subscription { u { id } }", data: `{}`, want: `{"data":{"u":{"id":null}}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustCompile(t, tt.q, tt.vars)
			typ := tt.typ
			if typ == "" {
				typ = "evt"
			}
			got := string(p.AppendPayload(nil, mustEvent(t, typ, "c", tt.data)))
			if got != tt.want {
				t.Fatalf("got  %s\nwant %s", got, tt.want)
			}
			if !json.Valid([]byte(got)) {
				t.Fatal("invalid JSON")
			}
		})
	}
}

func TestAppendPayloadAppends(t *testing.T) {
	p := mustCompile(t, "subscription { u { id } }", nil)
	got := p.AppendPayload([]byte("prefix"), mustEvent(t, "e", "c", `{"id":"x"}`))
	if string(got) != `prefix{"data":{"u":{"id":"x"}}}` {
		t.Fatal(string(got))
	}
}

// A payload without an event holds null data, whatever the selection.
func TestAppendPayloadOfNoEventIsNull(t *testing.T) {
	for _, q := range []string{"subscription { u }", "subscription { u { id } }", "subscription { u { ... on User { id } } }"} {
		if got := string(mustCompile(t, q, nil).AppendPayload(nil, nil)); got != `{"data":{"u":null}}` {
			t.Errorf("%s: got %s", q, got)
		}
	}
}

// Decoding refuses numbers JSON forbids, and the projection does not
// trust it to: a number the lenient parser lets through is still written
// as JSON, its value when it has one, null for NaN and the infinities.
func TestEventValuesAreJSONWhateverTheParserLetThrough(t *testing.T) {
	v, err := fastjson.Parse(`[01, -01, 00.5, NaN, nan, -Inf, inf, 1.5e3]`)
	if err != nil {
		t.Fatal(err)
	}
	got := appendEventValue(nil, v)
	if string(got) != `[1,-1,0.5,null,null,null,null,1.5e3]` || !json.Valid(got) {
		t.Fatalf("got %s", got)
	}
}

func TestAppendStringMatchesEncodingJSON(t *testing.T) {
	for _, s := range []string{"", "plain", "\x00\x1f\x7f", "bad \xff utf8 \xc3", "\u2028\u2029", `"\`, "日本語", "\xed\xa0\x80"} {
		got := appendString(nil, s)
		if !utf8.Valid(got) || !json.Valid(got) {
			t.Fatalf("%q: invalid output %q", s, got)
		}
		var back, want string
		if err := json.Unmarshal(got, &back); err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(s)
		_ = json.Unmarshal(b, &want)
		if back != want {
			t.Fatalf("%q: decoded %q, encoding/json gives %q", s, back, want)
		}
	}
}

func TestAppendCompact(t *testing.T) {
	tests := []struct{ in, want string }{
		{"{\"a\" : \"x\xffy\" }", `{"a":"x\ufffdy"}`},
		{"{\"a\":\"\x01\t\"}", `{"a":"\u0001\u0009"}`},
		{"{\"a\":[true, false, null, -1.5e3, \"\\\"\"]}", `{"a":[true,false,null,-1.5e3,"\""]}`},
		{"{},", `{}`},
		{",:{}", `{}`},
		{"{}\x00", `{}`},
		{"{\"a\":01}", ""},
		{"{\"a\":\"\\u000X\"}", ""},
		{"{\"a\":\"\\q\"}", ""},
		{"{\"a\":\"\\u00e9\\/\"}", `{"a":"\u00e9\/"}`},
		{"{\"a\":\"\\u00ff\\u00FF\"}", `{"a":"\u00ff\u00FF"}`},
		// Every hex digit's range holds its ends; the characters just past them do not.
		{"{\"a\":\"\\u09aA\\uFfAa\"}", `{"a":"\u09aA\uFfAa"}`},
		{"{\"a\":\"\\u00`0\"}", ""},
		{"{\"a\":\"\\u00@0\"}", ""},
		{"{\"a\":\"\\u00g0\"}", ""},
		{"{\"a\":\"\\u00G0\"}", ""},
		{"{\"a\":\"\\u00/0\"}", ""},
		{"{\"a\":\"\\u00:0\"}", ""},
		{"{\"a\":1.}", ""},
		{"  ", ""},
		{"{\"a\":", ""},
		// A literal or number that ends the data is read up to the last byte
		// and no further.
		{"1", "1"},
		{"-0.5", "-0.5"},
		{"true", "true"},
		// A string that ends the data without its closing quote is refused.
		{"\"abc", ""},
		{"\"", ""},
		// 0x80 is the first byte past ASCII: no control character, and on its
		// own invalid UTF-8.
		{"\"\x7f\x80\"", "\"\x7f\\ufffd\""},
		// Every delimiter ends a literal or number.
		{"[1]", "[1]"},
		{"[1,2]", "[1,2]"},
		{"{\"a\":null}", `{"a":null}`},
		{"{\"a\":true,\"b\":false}", `{"a":true,"b":false}`},
		// Only the first value is read: a colon or quote ends it too.
		{"1:", "1"},
		{"null\"x\"", "null"},
	}
	for _, tt := range tests {
		got, ok := appendCompact([]byte("x"), []byte(tt.in))
		if tt.want == "" {
			if ok || string(got) != "x" {
				t.Errorf("%q: got %q, %v; want failure", tt.in, got, ok)
			}
			continue
		}
		if !ok || string(got) != "x"+tt.want {
			t.Errorf("%q: got %q, %v; want %q", tt.in, got, ok, tt.want)
		}
	}
}

func TestMalformedEventNumbersRejected(t *testing.T) {
	// Malformed numbers never reach a payload: decoding refuses them.
	for _, data := range []string{`{"a":01}`, `{"b":1.}`, `{"a":1,}`, `{}"` + "\xf6\xf6", `{"s":"\u000X"}`} {
		if _, err := decodeEvent(Event{Type: "e", Channel: "c", Data: []byte(data)}, Limits{}.withDefaults()); err == nil {
			t.Errorf("decodeEvent(%q) accepted malformed JSON", data)
		}
	}
}

func TestAppendPayloadAllocs(t *testing.T) {
	ev := mustEvent(t, "User", "u", `{"__typename":"User","id":7,"name":"Ann","f":[{"a":1,"b":"x"}],"o":{"p":"q"}}`)
	for _, q := range []string{
		"subscription { u { id name f { a ... on User { b } } o { p __typename } } }",
		"subscription { u }",
	} {
		p := mustCompile(t, q, nil)
		buf := make([]byte, 0, 1024)
		if n := testing.AllocsPerRun(100, func() { buf = p.AppendPayload(buf[:0], ev) }); n != 0 {
			t.Errorf("%s: %v allocs", q, n)
		}
	}
}

func TestAppendValue(t *testing.T) {
	tests := []struct {
		in   any
		want string
	}{
		{json.Number("1.5e3"), "1.5e3"},
		// Forms the event decoder tolerates are re-encoded; what no float
		// parses, or parses to infinity, is null.
		{json.Number("01"), "1"},
		{json.Number("x"), "null"},
		{json.Number("Inf"), "null"},
		{json.Number("01e999"), "null"},
		{[]any{}, "[]"},
		{[]any{"a"}, `["a"]`},
		{[]any{"a", json.Number("2"), nil}, `["a",2,null]`},
		{map[string]any{}, "{}"},
		{map[string]any{"a": true}, `{"a":true}`},
		{map[string]any{"c": nil, "a": "x", "b": []any{false}}, `{"a":"x","b":[false],"c":null}`},
		// Other Go values go through encoding/json; what it refuses is null.
		{int64(7), "7"},
		{1.25, "1.25"},
		{make(chan int), "null"},
	}
	for _, tt := range tests {
		if got := appendValue([]byte("x"), tt.in); string(got) != "x"+tt.want {
			t.Errorf("appendValue(%#v) = %q, want %q", tt.in, got, "x"+tt.want)
		}
	}
}
