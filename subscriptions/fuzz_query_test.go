package subscriptions

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

func FuzzCompile(f *testing.F) {
	f.Add("subscription { u { id } }", "", "")
	f.Add("subscription S($id: ID!) { u(id: $id) { id ...F } } fragment F on User { name }", "S", `{"id":"7"}`)
	ev := mustEvent(f, "User", "u", `{"__typename":"User","id":7,"name":"Ann","tags":["a"],"c":{"x":1}}`)
	f.Fuzz(func(t *testing.T, query, opName, varsJSON string) {
		// Not decodeJSON: goccy's Decoder.Token can panic on garbage after
		// the value, and that is event.go's to fix, not this target's.
		var vars map[string]any
		dec := json.NewDecoder(strings.NewReader(varsJSON))
		dec.UseNumber()
		_ = dec.Decode(&vars)
		p, err := Compile(query, opName, vars, Limits{MaxQueryBytes: 4096}.withDefaults())
		if err != nil {
			if k := KindOf(err); k != KindValue && k != KindType {
				t.Fatalf("error kind %v: %v", k, err)
			}
			return
		}
		p.Match(ev)
		checkPayload(t, p.AppendPayload(nil, ev))
	})
}

func FuzzProject(f *testing.F) {
	f.Add("subscription { u { id name } }", `{"id":1,"name":"x"}`)
	f.Add("subscription { u }", "{ \"a\" : \"\xff\" }")
	f.Fuzz(func(t *testing.T, query, data string) {
		p, err := Compile(query, "", nil, Limits{MaxQueryBytes: 4096}.withDefaults())
		if err != nil {
			return
		}
		ev, err := decodeEvent(Event{Type: "User", Channel: "u", Data: []byte(data)}, Limits{}.withDefaults())
		if err != nil {
			return
		}
		p.Match(ev)
		checkPayload(t, p.AppendPayload(nil, ev))
	})
}

func checkPayload(t *testing.T, out []byte) {
	t.Helper()
	if !utf8.Valid(out) || !json.Valid(out) {
		t.Fatalf("invalid payload %q", out)
	}
	// {"data":{key:value}}, with "errors" after field errors; "data" is
	// null when a schema's non-null root field failed.
	var v struct {
		Data   *map[string]any   `json:"data"`
		Errors *[]map[string]any `json:"errors"`
	}
	err := json.Unmarshal(out, &v)
	switch {
	case err != nil:
		t.Fatalf("payload %q: %v", out, err)
	case v.Data == nil && v.Errors == nil, v.Data != nil && len(*v.Data) != 1:
		t.Fatalf("payload %q is not {\"data\":{key:value}}", out)
	case v.Errors != nil && len(*v.Errors) == 0:
		t.Fatalf("payload %q has an empty errors list", out)
	}
}

// FuzzCompileSchema: documents against a schema (interfaces, unions,
// non-null, enums, input types) never panic, and their payloads are JSON.
func FuzzCompileSchema(f *testing.F) {
	s := mustSchema(f, fuzzSDL)
	f.Add("subscription { feed { id ... on A { n nn c a { id } } ... on B { b } } }", `{}`, `{"__typename":"A","id":1,"n":2}`)
	f.Add("subscription($v: Boolean = true, $r: Range) { d { x(r: $r) d @include(if: $v) { s } } }", `{"v":null,"r":{"lo":1}}`, `{"x":1,"d":{"s":"x"}}`)
	f.Add("subscription { u { __typename ... on D { x } ... on Node { id } } }", `{}`, `{"__typename":"Nope"}`)
	f.Add("subscription { a { l ln us { ... on A { id } } } }", `{}`, `{"l":[1,null],"ln":[null],"us":"x"}`)
	f.Add(`subscription($v: Int = 1, $c: Color) { d { x(r: {lo: $v, hi: 2147483647}) d { x(r: {lo: 1}) } } a { c j } }`,
		`{"v":null,"c":"RD"}`, `{"x":1,"d":{"x":2},"c":"RED","j":{"b":1,"a":[2]}}`)
	f.Fuzz(func(t *testing.T, query, varsJSON, data string) {
		var vars map[string]any
		dec := json.NewDecoder(strings.NewReader(varsJSON))
		dec.UseNumber()
		_ = dec.Decode(&vars)
		p, err := CompileWithSchema(query, "", vars, Limits{MaxQueryBytes: 4096}.withDefaults(), s)
		if err != nil {
			if k := KindOf(err); k != KindValue && k != KindType {
				t.Fatalf("error kind %v: %v", k, err)
			}
			return
		}
		for _, ch := range []string{"feed", "a", "u", "d"} {
			ev, err := decodeEvent(Event{Type: "evt", Channel: ch, Data: []byte(data)}, Limits{}.withDefaults())
			if err != nil {
				return
			}
			p.Match(ev)
			checkPayload(t, p.AppendPayload(nil, ev))
		}
	})
}

const fuzzSDL = `
enum Color { RED GREEN }
scalar JSON
interface Node { id: ID! }
type A implements Node { id: ID! n: Int nn: Int! c: Color j: JSON a: A l: [Int] ln: [Int!]! us: [U!] f: Float s: String b: Boolean }
type B implements Node { id: ID! b: Boolean! }
type D { x(r: Range): Int d: D s: String! }
union U = A | B | D
input Range { lo: Int! hi: Int = 10 }
type Query { ok: Boolean }
type Subscription { feed: Node a: A! u: U d: D }
`
