package subscriptions

import (
	"fmt"
	"math"
	"strings"
	"testing"

	json "github.com/goccy/go-json"
)

func mustEvent(t testing.TB, typ, channel, data string) *decodedEvent {
	t.Helper()
	ev, err := decodeEvent(Event{Type: typ, Channel: channel, Data: []byte(data)}, Limits{}.withDefaults())
	if err != nil {
		t.Fatalf("decodeEvent(%s): %v", data, err)
	}
	return ev
}

func mustCompile(t testing.TB, q string, vars map[string]any) *Plan {
	t.Helper()
	p, err := Compile(q, "", vars, Limits{}.withDefaults())
	if err != nil {
		t.Fatalf("Compile(%q): %v", q, err)
	}
	return p
}

func TestCompileErrors(t *testing.T) {
	deep := "subscription { a " + strings.Repeat("{ b ", 20) + strings.Repeat("}", 20) + " }"
	many := "subscription { a { " + strings.Repeat("x ", 600) + "} }"
	// Each fragment spreads the next twice: 2^30 fields if expanded naively.
	var fan strings.Builder
	fan.WriteString("subscription { a { ...F0 } }\n")
	for i := range 30 {
		fmt.Fprintf(&fan, "fragment F%d on T { ...F%d ...F%d }\n", i, i+1, i+1)
	}
	fanQ := fan.String() + "fragment F30 on T { id }\n"

	tests := []struct {
		name, q, op string
		vars        map[string]any
		lim         Limits
		want        string
	}{
		{name: "too long", q: "subscription { a }" + strings.Repeat(" ", 200), lim: Limits{MaxQueryBytes: 100}, want: "query is 218 bytes, over the max_query_bytes limit of 100"},
		{name: "syntax", q: "subscription { a", want: "GraphQL syntax error at line 1, column 17: Expected Name, found <EOF>"},
		{name: "syntax line", q: "subscription {\n  a(\n}", want: "GraphQL syntax error at line 3, column 1"},
		{name: "too many fields", q: many, want: "max_fields limit of 500"},
		{name: "fields limit small", q: "subscription { a { b c } }", lim: Limits{MaxFields: 2}, want: "max_fields limit of 2"},
		{name: "fragment fan-out", q: fanQ, want: "max_fields limit of 500"},
		{name: "too deep", q: deep, want: "max_depth limit of 15"},
		{name: "depth via fragment", q: "subscription { a { ...F } } fragment F on T { b { c } }", lim: Limits{MaxDepth: 2}, want: "max_depth limit of 2"},
		{name: "no operation", q: "fragment F on T { a }", want: "document contains no subscription operation"},
		{name: "query op", q: "query { a }", want: "only subscription operations can be registered, got a query operation"},
		{name: "shorthand", q: "{ a }", want: "only subscription operations"},
		{name: "mutation", q: "mutation M { a }", want: "got a mutation operation"},
		{name: "several ops", q: "subscription A { a } subscription B { b }", want: "must provide operation name if query contains multiple operations"},
		{name: "unknown op", q: "subscription A { a } subscription B { b }", op: "C", want: `Unknown operation named "C"`},
		{name: "two roots", q: "subscription { a b }", want: "exactly one root field, got 2 (a, b)"},
		{name: "two roots via fragment", q: "subscription { a ...F } fragment F on Subscription { b }", want: "exactly one root field, got 2"},
		{name: "no root after skip", q: "subscription { a @skip(if: true) }", want: "exactly one root field, got 0"},
		{name: "typename root", q: "subscription { __typename }", want: "introspection field"},
		{name: "root args differ", q: "subscription { a(id: 1) a(id: 2) }", want: "different arguments"},
		{name: "alias conflict", q: "subscription { a { x: b x: c } }", want: `fields "x" conflict`},
		{name: "required var missing", q: "subscription ($t: ID!) { a(id: $t) }", want: `variable "$t" of required type "ID!" was not provided`},
		{name: "required var null", q: "subscription ($t: ID!) { a(id: $t) }", vars: map[string]any{"t": nil}, want: `"$t"`},
		{name: "undeclared var", q: "subscription S { a(id: $x) }", want: `variable "$x" is not defined by operation "S"`},
		{name: "undeclared var in skipped field", q: "subscription { a { b(x: $y) @skip(if: true) } }", want: `variable "$y" is not defined`},
		{name: "undeclared var in directive", q: "subscription { a { b @include(if: $y) } }", want: `"$y"`},
		{name: "unknown fragment", q: "subscription { a { ...Nope } }", want: `Unknown fragment "Nope"`},
		{name: "fragment cycle", q: "subscription { a { ...A } } fragment A on T { ...B } fragment B on T { x ...A }", want: "cycle: A -> B -> A"},
		{name: "self cycle", q: "subscription { a { ...A } } fragment A on T { ...A }", want: "cycle"},
		{name: "duplicate fragment", q: "subscription { a { ...A } } fragment A on T { x } fragment A on T { y }", want: `only one fragment named "A"`},
		{name: "non-boolean skip", q: `subscription { a { b @skip(if: "yes") } }`, want: "@skip(if:) must be a Boolean, got string"},
		{name: "non-boolean include var", q: `subscription ($v: Boolean) { a { b @include(if: $v) } }`, vars: map[string]any{"v": json.Number("1")}, want: "@include(if:) must be a Boolean, got number"},
		{name: "skip without if", q: `subscription { a { b @skip } }`, want: "must be a Boolean, got null"},
		{name: "unsupported var type", q: `subscription ($v: ID) { a(id: $v) }`, vars: map[string]any{"v": struct{}{}}, want: `variable "$v"`},
		{name: "where not object", q: `subscription { a(where: 5) }`, want: "where must be an object, got number"},
		{name: "unknown operator", q: `subscription { a(where: {status: {equals: "x"}}) }`, want: `unknown operator "equals" in where at status; valid operators are eq, neq`},
		{name: "unknown operator mixed", q: `subscription { a(where: {status: {eq: "x", foo: 1}}) }`, want: `unknown operator "foo"`},
		{name: "in not list", q: `subscription { a(where: {status: {in: 5}}) }`, want: "operator in at status expects a list, got number"},
		{name: "gt bool", q: `subscription { a(where: {total: {gt: true}}) }`, want: "operator gt at total expects a number or a string, got boolean"},
		{name: "startswith number", q: `subscription { a(where: {name: {startswith: 1}}) }`, want: "expects a string"},
		{name: "isnull string", q: `subscription { a(where: {name: {isnull: "yes"}}) }`, want: "isnull at name expects a boolean"},
		{name: "contains null", q: `subscription { a(where: {name: {contains: null}}) }`, want: "contains at name expects a value"},
		{name: "nested path scalar", q: `subscription { a(where: {customer: 5}) }`, want: "where customer expects an object"},
		{name: "AND of scalars", q: `subscription { a(where: {AND: [1]}) }`, want: "where AND expects a list of objects"},
		{name: "NOT list", q: `subscription { a(where: {NOT: [{x: {eq: 1}}]}) }`, want: "where NOT expects an object"},
		{name: "nested unknown op", q: `subscription { a(where: {c: {d: {like: "x"}}}) }`, want: `unknown operator "like" in where at c.d`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lim := tt.lim.withDefaults()
			_, err := Compile(tt.q, tt.op, tt.vars, lim)
			if err == nil {
				t.Fatalf("no error, want %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not contain %q", err, tt.want)
			}
			if k := KindOf(err); k != KindValue && k != KindType {
				t.Fatalf("error kind %v", k)
			}
		})
	}
}

func TestCompileOK(t *testing.T) {
	tests := []struct {
		name, q, op   string
		vars          map[string]any
		root, respKey string
	}{
		{name: "plain", q: "subscription { userCreated { id } }", root: "userCreated", respKey: "userCreated"},
		{name: "alias", q: "subscription { u: userCreated { id } }", root: "userCreated", respKey: "u"},
		{name: "pick op", q: "subscription A { a } subscription B { b } query Q { q }", op: "B", root: "b", respKey: "b"},
		{name: "root in fragment", q: "subscription { ...R } fragment R on Subscription { r { id } }", root: "r", respKey: "r"},
		{name: "root in inline fragment", q: "subscription { ... on Subscription { r } }", root: "r", respKey: "r"},
		{name: "same root twice", q: "subscription { a { x } a { y } }", root: "a", respKey: "a"},
		{name: "other root skipped", q: "subscription ($s: Boolean = true) { a b @skip(if: $s) }", root: "a", respKey: "a"},
		{name: "unused extra var", q: "subscription { a }", vars: map[string]any{"zzz": 1}, root: "a", respKey: "a"},
		{name: "required var given", q: "subscription ($t: ID!) { a(id: $t) }", vars: map[string]any{"t": "1"}, root: "a", respKey: "a"},
		{name: "required with default", q: "subscription ($t: ID! = 3) { a(id: $t) }", root: "a", respKey: "a"},
		{name: "unknown directive ignored", q: "subscription { a @live { b @foo } }", root: "a", respKey: "a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Compile(tt.q, tt.op, tt.vars, Limits{}.withDefaults())
			if err != nil {
				t.Fatal(err)
			}
			if p.RootField != tt.root || p.ResponseKey != tt.respKey {
				t.Fatalf("root %q key %q, want %q %q", p.RootField, p.ResponseKey, tt.root, tt.respKey)
			}
			if len(p.Key) != 64 {
				t.Fatalf("key %q", p.Key)
			}
		})
	}
}

func TestPlanKey(t *testing.T) {
	key := func(q string, vars map[string]any) string { return mustCompile(t, q, vars).Key }
	same := [][2]string{
		{"subscription { u { id name } }", "subscription\n{\n  u {\n id,\n name # comment\n }\n}"},
		{"subscription S { u { id } }", "subscription T { u { id } }"},
		{"subscription { u { id } }", "subscription { u { ... { id } } }"},
		{"subscription { u { ... on U { id } } }", "subscription { u { ...F } } fragment F on U { id }"},
		{"subscription { u { id } }", "subscription { u { id name @skip(if: true) } }"},
		{"subscription { u { id } }", "subscription { u { id id } }"},
		{`subscription { u(where: {a: {eq: 1}, b: {eq: 2}}) { id } }`, `subscription { u(where: {b: {eq: 2}, a: {eq: 1}}) { id } }`},
		{`subscription { u(id: 1, x: 2) }`, `subscription { u(x: 2, id: 1) }`},
	}
	for _, s := range same {
		if a, b := key(s[0], nil), key(s[1], nil); a != b {
			t.Errorf("keys differ:\n%s\n%s", s[0], s[1])
		}
	}
	q := "subscription ($id: ID!) { u(id: $id) { id } }"
	if key(q, map[string]any{"id": "1"}) == key(q, map[string]any{"id": "2"}) {
		t.Error("different variables gave the same key")
	}
	if key(q, map[string]any{"id": "1"}) != key("subscription { u(id: \"1\") { id } }", nil) {
		t.Error("variable and literal gave different keys")
	}
	differ := [][2]string{
		{"subscription { u { id } }", "subscription { u { name } }"},
		{"subscription { u { id } }", "subscription { u { a: id } }"},
		{"subscription { u { id } }", "subscription { v: u { id } }"},
		{"subscription { u { id } }", "subscription { u }"},
		{"subscription { u { id name } }", "subscription { u { name id } }"},
		{"subscription { u { ... on A { id } } }", "subscription { u { ... on B { id } } }"},
		{"subscription { u(id: 1) }", "subscription { u(id: 2) }"},
		{"subscription { u(id: 1) }", `subscription { u(id: "1") }`},
		{"subscription { u { x { y } } }", "subscription { u { x } }"},
		{"subscription { u { x { y } } }", "subscription { u { x { z } } }"},
	}
	for _, d := range differ {
		if a, b := key(d[0], nil), key(d[1], nil); a == b {
			t.Errorf("keys equal:\n%s\n%s", d[0], d[1])
		}
	}
}

// The limits are maxima: a query at exactly max_fields or max_depth compiles.
func TestCompileAtTheLimits(t *testing.T) {
	for _, tt := range []struct {
		name string
		lim  Limits
	}{
		{"max_fields", Limits{MaxFields: 3}},
		{"max_depth", Limits{MaxDepth: 3}},
	} {
		// Three fields, three levels deep.
		if _, err := Compile("subscription { a { b { c } } }", "", nil, tt.lim); err != nil {
			t.Errorf("%s at the limit: %v", tt.name, err)
		}
	}
}

// Variables are JSON: a NaN or an infinity (possible in a Go map, not in
// JSON) has no JSON form and is refused rather than written as text.
func TestNormalizeJSONRefusesNonFiniteNumbers(t *testing.T) {
	for _, v := range []any{math.NaN(), math.Inf(1), math.Inf(-1), float32(math.NaN()), []any{1.0, math.Inf(1)}} {
		if got, err := normalizeJSON(v, 0); err == nil {
			t.Errorf("normalizeJSON(%v) = %v, want an error", v, got)
		}
	}
	if got, err := normalizeJSON(1.5, 0); err != nil || got != json.Number("1.5") {
		t.Errorf("normalizeJSON(1.5) = %v, %v", got, err)
	}
}
