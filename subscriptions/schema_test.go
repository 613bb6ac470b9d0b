package subscriptions

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	json "github.com/goccy/go-json"
	"github.com/vektah/gqlparser/v2/ast"
)

const ordersSDL = `
type Query { ok: Boolean }
enum Status { active paid }
type Customer { name: String! country: String }
type Item { sku: ID! qty: Int! }
type Order { id: ID! status: Status total: Float customer: Customer items: [Item!]! }
input TotalFilter { gte: Float }
input OrderWhere { total: TotalFilter }
type Subscription { orders(where: OrderWhere): Order }
`

const ordersQuery = `subscription { orders(where: {total: {gte: 100}}) {
		id status total customer { name country } items { sku qty } } }`

func mustSchema(t testing.TB, sdl string) *Schema {
	t.Helper()
	s, err := ParseSchema(sdl)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// mustVars decodes variables as a request's JSON gives them (numbers kept
// as their text).
func mustVars(t testing.TB, s string) map[string]any {
	t.Helper()
	v, err := decodeJSON([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return v.(map[string]any)
}

func TestParseSchemaErrors(t *testing.T) {
	for sdl, want := range map[string]string{
		"type Query { a: Int }":         "the schema has no subscription type",
		"type Subscription { a }":       "schema error at line 1, column 23",
		"type Subscription { a: Nope }": "Undefined type Nope",
	} {
		if _, err := ParseSchema(sdl); err == nil || !strings.Contains(err.Error(), want) || KindOf(err) != KindValue {
			t.Errorf("%q: error %v, want %q", sdl, err, want)
		}
	}
}

func TestSchemaPayloads(t *testing.T) {
	s := mustSchema(t, ordersSDL)
	tests := []struct{ name, q, data, want string }{
		{"shaped", ordersQuery,
			`{"id":7,"status":"paid","total":150,"customer":{"name":"Ann","x":1},"items":[{"sku":1,"qty":2.0}]}`,
			`{"data":{"orders":{"id":"7","status":"paid","total":150,"customer":{"name":"Ann","country":null},"items":[{"sku":"1","qty":2}]}}}`},
		{"non-null item propagates to the list's nullable parent", ordersQuery,
			`{"id":"1","total":100,"items":[{"sku":"a","qty":1},{"sku":"b"}]}`,
			`{"data":{"orders":null},"errors":[{"message":"Cannot return null for non-nullable field Item.qty.","locations":[{"line":2,"column":57}],"path":["orders","items",1,"qty"]}]}`},
		{"enum value not in the enum", ordersQuery,
			`{"id":"1","total":100,"status":"lost","items":[]}`,
			`{"data":{"orders":{"id":"1","status":null,"total":100,"customer":null,"items":[]}},"errors":[{"message":"Enum 'Status' cannot represent value: 'lost'","locations":[{"line":2,"column":6}],"path":["orders","status"]}]}`},
		{"typename from the schema", `subscription { orders { __typename customer { __typename } } }`,
			`{"__typename":"Other","customer":{}}`,
			`{"data":{"orders":{"__typename":"Order","customer":{"__typename":"Customer"}}}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := CompileWithSchema(tt.q, "", nil, Limits{}.withDefaults(), s)
			if err != nil {
				t.Fatal(err)
			}
			ev := mustEvent(t, "evt", "orders", tt.data)
			if !p.Match(ev) {
				t.Fatal("the where filter refused the event")
			}
			if got := string(p.AppendPayload(nil, ev)); got != tt.want {
				t.Fatalf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestSchemaValidation(t *testing.T) {
	s := mustSchema(t, ordersSDL)
	for q, want := range map[string]string{
		"subscription { orders { id nmae } }":                          `line 1, column 28: Cannot query field "nmae" on type "Order".`,
		"subscription { orders(where: {total: {gte: \"x\"}}) { id } }": `line 1, column 45: Float cannot represent non numeric value: "x"`,
		"subscription($w: OrderWhere) { orders(where: $w) { id } }":    "",
	} {
		_, err := CompileWithSchema(q, "", map[string]any{"w": map[string]any{"total": "x"}}, Limits{}.withDefaults(), s)
		if want == "" {
			if err == nil || !strings.Contains(err.Error(), "Variable '$w' got invalid value 'x' at 'w.total'; Expected type 'TotalFilter' to be a mapping.") {
				t.Errorf("%s: %v", q, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want %q", q, err, want)
		}
	}
}

// A document whose fragments fan out to 2^30 fields is refused by the
// limits quickly with a schema too: validation must not expand it.
func TestSchemaFragmentFanOut(t *testing.T) {
	s := mustSchema(t, `type Query { ok: Boolean } type T { id: ID t: T } type Subscription { a: T }`)
	var fan strings.Builder
	fan.WriteString("subscription { a { ...F0 } }\n")
	for i := range 30 {
		fmt.Fprintf(&fan, "fragment F%d on T { ...F%d t { ...F%d } }\n", i, i+1, i+1)
	}
	fan.WriteString("fragment F30 on T { id }\n")
	_, err := CompileWithSchema(fan.String(), "", nil, Limits{}.withDefaults(), s)
	if err == nil || !strings.Contains(err.Error(), "limit") {
		t.Fatalf("error %v", err)
	}
}

// Values copied as they are must be written exactly as serializeScalar
// writes them, for every built-in scalar and edge of the number forms.
func TestFittingScalarsAreSerialized(t *testing.T) {
	values := []string{`0`, `-0`, `7`, `-7`, `10`, `2147483647`, `2147483648`, `-2147483648`, `-2147483649`,
		`9999999999`, `12345678901`, `123456789012345678901234567890`, `1.0`, `1.5`, `-0.0`, `0.1`, `1e3`, `1E3`,
		`1.5e-7`, `1e308`, `12345678901234567890.5`, `"x"`, `""`, `"12"`, `"é\u2028"`, `"a\"b"`, `true`, `false`, `[1]`, `{"a":1}`}
	kinds := map[leafKind]string{leafString: "String", leafID: "ID", leafInt: "Int", leafFloat: "Float", leafBoolean: "Boolean"}
	fitted := 0
	for k, scalar := range kinds {
		for _, raw := range values {
			v := mustEvent(t, "evt", "c", `{"v":`+raw+`}`).root
			v, _ = field(objectOf(v), "v")
			got, ok := appendFittingScalar([]byte("<"), k, v)
			want, msg := serializeScalar([]byte("<"), scalar, v)
			if !ok {
				if string(got) != "<" {
					t.Errorf("%s %s: not fitted but wrote %q", scalar, raw, got)
				}
				continue
			}
			fitted++
			if msg != "" || string(got) != string(want) {
				t.Errorf("%s %s: fitted %q, serialized %q (%s)", scalar, raw, got, want, msg)
			}
		}
	}
	if fitted < 20 {
		t.Errorf("only %d values fitted", fitted)
	}
}

// What graphql-core decides that gqlparser decides otherwise, or that the
// engine did not do before: found by the differential over random schemas.
const shapesSDL = `
scalar JSON
interface Lone { a: Int }
interface Top { a: Int }
interface Mid implements Top { a: Int }
type Obj { a: Int j: JSON x(n: Int!): Int y(r: Range): Int z(n: Int!): Int! }
type Holder { o: Obj }
input Range { lo: Int! hi: Int = 10 }
input Where { id: IDFilter }
input IDFilter { eq: ID neq: ID }
type Query { ok: Boolean }
type Subscription { lone: Lone top: Top obj(where: Where): Obj holder: Holder }
`

func TestSchemaFragmentSpreadsAsGraphQLCore(t *testing.T) {
	s := mustSchema(t, shapesSDL)
	for q, refused := range map[string]bool{
		// The same type: possible, though nothing implements Lone.
		`subscription { lone { ... on Lone { a } } }`:             false,
		`subscription { lone { ...L } } fragment L on Lone { a }`: false,
		// Only an interface implements Mid: no object is both.
		`subscription { top { ... on Mid { a } } }`:             true,
		`subscription { top { ...M } } fragment M on Mid { a }`: true,
		`subscription { obj { ... on Top { a } } }`:             true,
	} {
		_, err := CompileWithSchema(q, "", nil, Limits{}.withDefaults(), s)
		if got := err != nil && strings.Contains(err.Error(), "can never be of type"); got != refused {
			t.Errorf("%s: error %v, want refused %v", q, err, refused)
		}
	}
	// An unknown parent or fragment type, or a fragment on a leaf type, is
	// reported by its own rule alone.
	for q, want := range map[string]string{
		`subscription { obj { nope { ... on Obj { a } } } }`: `at line 1, column 22: Cannot query field "nope" on type "Obj".`,
		`subscription { obj { ... on Nope { a } } }`:         `at line 1, column 26: Unknown type "Nope".`,
		`subscription { obj { ... on Int { a } } }`: `at line 1, column 26: Fragment cannot condition on non composite type "Int".;` +
			` at line 1, column 35: Cannot query field "a" on type "Int".`,
	} {
		_, err := CompileWithSchema(q, "", nil, Limits{}.withDefaults(), s)
		if want = "GraphQL validation error " + want; err == nil || err.Error() != want {
			t.Errorf("%s: error %v, want %q", q, err, want)
		}
	}
}

func TestSchemaShapesAsGraphQLCore(t *testing.T) {
	s := mustSchema(t, shapesSDL)
	tests := []struct {
		name, q, vars, channel, data, want string
	}{
		{"an interface's sub-interface is no runtime type", `subscription { top { a } }`, `{}`, "top",
			`{"__typename":"Mid","a":1}`,
			`{"data":{"top":null},"errors":[{"message":"Abstract type 'Top' was resolved to a non-object type 'Mid'.","locations":[{"line":1,"column":16}],"path":["top"]}]}`},
		{"a custom scalar's object keeps its keys' order", `subscription { obj { j } }`, `{}`, "obj",
			`{"j":{"b":1,"a":{"d":2,"c":null},"b":3}}`,
			`{"data":{"obj":{"j":{"b":3,"a":{"d":2,"c":null}}}}}`},
		{"a null argument of a non-null type is a field error", `subscription($n: Int = 3) { obj { a x(n: $n) } }`,
			`{"n":null}`, "obj", `{"a":1,"x":2}`,
			`{"data":{"obj":{"a":1,"x":null}},"errors":[{"message":"Argument 'n' of non-null type 'Int!' must not be null.","locations":[{"line":1,"column":42}],"path":["obj","x"]}]}`},
		{"an input object that cannot be coerced is a field error", `subscription($n: Int = 3) { obj { y(r: {lo: $n}) } }`,
			`{"n":null}`, "obj", `{"y":2}`,
			`{"data":{"obj":{"y":null}},"errors":[{"message":"Argument 'r' has invalid value {lo: $n}.","locations":[{"line":1,"column":40}],"path":["obj","y"]}]}`},
		{"an argument error on a non-null field nulls its parent", `subscription($n: Int = 3) { holder { o { a z(n: $n) } } }`,
			`{"n":null}`, "holder", `{"o":{"a":1,"z":2}}`,
			`{"data":{"holder":{"o":null}},"errors":[{"message":"Argument 'n' of non-null type 'Int!' must not be null.","locations":[{"line":1,"column":49}],"path":["holder","o","z"]}]}`},
		{"an ID literal is a string for the where filter", `subscription { obj(where: {id: {neq: 7}}) { a } }`, `{}`, "obj",
			`{"id":"1","a":1}`, `{"data":{"obj":{"a":1}}}`},
		{"an ID default is a string for the where filter", `subscription($v: ID = 7) { obj(where: {id: {eq: $v}}) { a } }`, `{}`, "obj",
			`{"id":"7","a":1}`, `{"data":{"obj":{"a":1}}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var vars map[string]any
			if err := json.Unmarshal([]byte(tt.vars), &vars); err != nil {
				t.Fatal(err)
			}
			p, err := CompileWithSchema(tt.q, "", vars, Limits{}.withDefaults(), s)
			if err != nil {
				t.Fatal(err)
			}
			ev := mustEvent(t, "evt", tt.channel, tt.data)
			if !p.Match(ev) {
				t.Fatal("the where filter refused the event")
			}
			if got := string(p.AppendPayload(nil, ev)); got != tt.want {
				t.Fatalf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

// The root field's arguments are coerced before registering, as
// graphql-core's subscribe() coerces them before calling the source.
func TestSchemaRootArgumentErrors(t *testing.T) {
	s := mustSchema(t, shapesSDL)
	_, err := CompileWithSchema(`subscription($v: Int = 1) { obj(where: {id: {eq: "1"}}) { y(r: {lo: $v}) } }`,
		"", map[string]any{"v": nil}, Limits{}.withDefaults(), s)
	if err != nil {
		t.Fatalf("a field's argument error is no registration error: %v", err)
	}
	const badRoot = `
input R { lo: Int! }
type Query { ok: Boolean }
type T { a: Int }
type Subscription { t(r: R): T }`
	_, err = CompileWithSchema(`subscription($v: Int = 1) { t(r: {lo: $v}) { a } }`, "", map[string]any{"v": nil},
		Limits{}.withDefaults(), mustSchema(t, badRoot))
	var de *DocumentError
	if !errors.As(err, &de) || err.Error() != "GraphQL error at line 1, column 34: Argument 'r' has invalid value {lo: $v}." {
		t.Fatalf("error %v", err)
	}
}

// Suggestions as graphql-core's suggestion_list and did_you_mean give them
// (expected values from graphql-core 3.2.6).
func TestSuggestionsAsGraphQLCore(t *testing.T) {
	for _, tt := range []struct {
		input   string
		options []string
		want    string
	}{
		{"3", []string{"Y", "RED"}, ` Did you mean the enum value 'Y'?`},
		{"red", []string{"RED", "GREEN", "BLUE"}, ` Did you mean the enum value 'RED'?`},
		{"GREN", []string{"RED", "GREEN", "BLUE", "GREENS"}, ` Did you mean the enum value 'GREEN', 'GREENS', or 'RED'?`},
		{"ab", []string{"ba", "abc", "a", "b", "xy"}, ` Did you mean the enum value 'a', 'abc', 'b', or 'ba'?`},
		{"item2", []string{"item10", "item2", "item1", "iTem2", "items"}, ` Did you mean the enum value 'item2', 'iTem2', 'item1', 'items', or 'item10'?`},
		{"nope", []string{"name", "n", "none", "node"}, ` Did you mean the enum value 'node', 'none', or 'name'?`},
		{"True", []string{"TRUE", "true", "Tru"}, ` Did you mean the enum value 'TRUE', 'Tru', or 'true'?`},
		{"a1", []string{"a10", "a2", "a1b", "b1"}, ` Did you mean the enum value 'a1b', 'a2', 'a10', or 'b1'?`},
		{"a1", []string{"a10", "a9"}, ` Did you mean the enum value 'a9' or 'a10'?`},
		{"itemx", []string{"item1", "item"}, ` Did you mean the enum value 'item' or 'item1'?`},
		{"itemx", []string{"item", "item1"}, ` Did you mean the enum value 'item' or 'item1'?`},
		{"zzz", []string{"RED"}, ``},
	} {
		if got := didYouMean(suggestionList(tt.input, tt.options), "the enum value"); got != tt.want {
			t.Errorf("%q in %v: %q, want %q", tt.input, tt.options, got, tt.want)
		}
	}
	s := mustSchema(t, `enum E { Y RED } type Query { ok: Boolean } type T { a: Int } type Subscription { t(e: E): T }`)
	_, err := CompileWithSchema(`subscription($e: E) { t(e: $e) { a } }`, "", map[string]any{"e": "3"}, Limits{}.withDefaults(), s)
	if want := "Variable '$e' got invalid value '3'; Value '3' does not exist in 'E' enum. Did you mean the enum value 'Y'?"; err == nil || !strings.HasSuffix(err.Error(), want) {
		t.Fatalf("error %v, want %q", err, want)
	}
}

// An Int literal beyond 32 bits is a validation error, as graphql-core's
// ValuesOfCorrectType reports it (gqlparser's checks only the kind).
func TestSchemaIntLiteralRange(t *testing.T) {
	s := mustSchema(t, `input R { n: [Int] } type Query { ok: Boolean } type T { a(n: Int, r: R): Int } type Subscription { t: T }`)
	for q, want := range map[string]string{
		`subscription { t { a(n: 2147483648) } }`:            "line 1, column 25: Int cannot represent non 32-bit signed integer value: 2147483648",
		`subscription { t { a(r: {n: [1, -2147483649]}) } }`: "line 1, column 33: Int cannot represent non 32-bit signed integer value: -2147483649",
		`subscription { t { a(n: -2147483648) } }`:           "",
	} {
		_, err := CompileWithSchema(q, "", nil, Limits{}.withDefaults(), s)
		if want == "" && err != nil || want != "" && (err == nil || !strings.Contains(err.Error(), want)) {
			t.Errorf("%s: error %v, want %q", q, err, want)
		}
	}
}

// A default in the SDL that does not fit its type is no default, as
// graphql-core's build_schema keeps it (Undefined): the argument or input
// field is absent, and a required one is reported missing. The loader
// does not check defaults, so a schema may carry such a one.
func TestSchemaDefaultsThatDoNotFitAreNoDefaults(t *testing.T) {
	s := mustSchema(t, `
input W { n: Int = "5" m: Int }
input R { n: Int! = 2147483648 }
type Query { ok: Boolean }
type T { a: Int }
enum E { paid lost }
type Subscription { t(n: Int = 3000000000, k: Int = "5", e: E = "paid", f: E = gone, i: ID = 1.5, w: W): T  r(n: Int! = 1.5): T  u(r: R): T }`)
	// The root field's arguments filter events by the fields they name:
	// none but w here, which holds {m: 1} alone.
	for _, q := range []string{`subscription { t(w: {m: 1}) { a } }`, `subscription($w: W) { t(w: $w) { a } }`} {
		p, err := CompileWithSchema(q, "", map[string]any{"w": map[string]any{"m": json.Number("1")}}, Limits{}.withDefaults(), s)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		if ev := mustEvent(t, "evt", "t", `{"n":5,"k":7,"e":"lost","f":"lost","i":"x","w":{"m":1},"a":1}`); !p.Match(ev) {
			t.Errorf("%s: the arguments without a fitting default filter the event", q)
		}
	}
	// graphql-core's validation refuses the literal cases first, in its own
	// words; these are its subscribe()'s, which the engine gives.
	for q, want := range map[string]string{
		`subscription { r { a } }`: "GraphQL error at line 1, column 16: Argument 'n' of required type 'Int!' was not provided.",
		`subscription($r: R) { u(r: $r) { a } }`: "GraphQL error at line 1, column 14: Variable '$r' got invalid value {}; " +
			"Field 'n' of required type 'Int!' was not provided.",
		`subscription { u(r: {}) { a } }`: "GraphQL error at line 1, column 21: Argument 'r' has invalid value {}.",
	} {
		_, err := CompileWithSchema(q, "", map[string]any{"r": map[string]any{}}, Limits{}.withDefaults(), s)
		if err == nil || err.Error() != want {
			t.Errorf("%s: error %v, want %q", q, err, want)
		}
	}
}

// The root field's Int arguments take every 32-bit value, the bounds
// included, and filter events by it.
func TestSchemaIntArgumentBounds(t *testing.T) {
	s := mustSchema(t, `type Query { ok: Boolean } type T { a: Int } type Subscription { t(n: Int): T }`)
	for _, n := range []string{"2147483647", "-2147483648", "0"} {
		p, err := CompileWithSchema(`subscription { t(n: `+n+`) { a } }`, "", nil, Limits{}.withDefaults(), s)
		if err != nil {
			t.Fatalf("n: %s: %v", n, err)
		}
		if !p.Match(mustEvent(t, "evt", "t", `{"n":`+n+`}`)) || p.Match(mustEvent(t, "evt", "t", `{"n":1}`)) {
			t.Errorf("n: %s does not filter by its value", n)
		}
	}
}

// Values a String or an enum field cannot take are field errors that show
// the value as graphql-core's inspect() does (nested values cut at its
// depth limit); numbers and booleans are written as str() of them.
func TestSchemaLeafSerializationAsGraphQLCore(t *testing.T) {
	s := mustSchema(t, `enum Status { active paid } type Query { ok: Boolean }
		type T { s: String e: Status i: Int f: Float id: ID l: [Int] ls: [String] } type Subscription { t: T }`)
	const fieldErr = `{"data":{"t":{"%s":null}},"errors":[{"message":%q,"locations":[{"line":1,"column":20}],"path":["t","%[1]s"]}]}`
	for _, tt := range []struct{ field, value, want string }{
		{"s", `1.5`, `{"data":{"t":{"s":"1.5"}}}`},
		{"s", `7`, `{"data":{"t":{"s":"7"}}}`},
		{"s", `1e2`, `{"data":{"t":{"s":"100.0"}}}`},
		{"s", `true`, `{"data":{"t":{"s":"true"}}}`},
		{"s", `1e16`, `{"data":{"t":{"s":"1e+16"}}}`},
		{"s", `1e15`, `{"data":{"t":{"s":"1000000000000000.0"}}}`},
		{"s", `-1.5e16`, `{"data":{"t":{"s":"-1.5e+16"}}}`},
		{"s", `0.0001`, `{"data":{"t":{"s":"0.0001"}}}`},
		{"s", `0.00001`, `{"data":{"t":{"s":"1e-05"}}}`},
		{"s", `{"a":{"b":{"c":1}},"d":{}}`, fmt.Sprintf(fieldErr, "s", "String cannot represent value: {'a': {'b': {...}}, 'd': {}}")},
		{"s", `[1,[2,[3]]]`, fmt.Sprintf(fieldErr, "s", "String cannot represent value: [1, [2, [...]]]")},
		{"e", `true`, fmt.Sprintf(fieldErr, "e", "Enum 'Status' cannot represent value: True")},
		{"e", `[false,{"x":true}]`, fmt.Sprintf(fieldErr, "e", "Enum 'Status' cannot represent value: [False, {'x': True}]")},
		{"e", `"a\u0001\u0085\u200b\udb40\udc01"`, fmt.Sprintf(fieldErr, "e", `Enum 'Status' cannot represent value: 'a\x01\x85\u200b\U000e0001'`)},
		{"e", `"it's"`, fmt.Sprintf(fieldErr, "e", `Enum 'Status' cannot represent value: "it's"`)},
		{"e", `"a'b\"c\\d"`, fmt.Sprintf(fieldErr, "e", `Enum 'Status' cannot represent value: 'a\'b"c\\d'`)},
		{"e", `"` + strings.Repeat("x", 300) + `"`, fmt.Sprintf(fieldErr, "e", "Enum 'Status' cannot represent value: '"+
			strings.Repeat("x", 117)+"..."+strings.Repeat("x", 118)+"'")},
		{"e", `[0,1,2,3,4,5,6,7,8,9]`, fmt.Sprintf(fieldErr, "e", "Enum 'Status' cannot represent value: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]")},
		{"e", `[0,1,2,3,4,5,6,7,8,9,10,11]`, fmt.Sprintf(fieldErr, "e", "Enum 'Status' cannot represent value: [0, 1, 2, 3, 4, ..., 8, 9, 10, 11]")},
		{"e", `{"k0":0,"k1":1,"k2":2,"k3":3,"k4":4,"k5":5,"k6":6,"k7":7,"k8":8,"k9":9,"k10":10}`, fmt.Sprintf(fieldErr, "e",
			"Enum 'Status' cannot represent value: {'k0': 0, 'k1': 1, 'k2': 2, 'k3': 3, 'k4': 4, ..., 'k7': 7, 'k8': 8, 'k9': 9, 'k10': 10}")},
		{"i", `2147483648`, fmt.Sprintf(fieldErr, "i", "Int cannot represent non 32-bit signed integer value: 2147483648")},
		{"i", `-2147483649`, fmt.Sprintf(fieldErr, "i", "Int cannot represent non 32-bit signed integer value: -2147483649")},
		{"i", `-2147483648`, `{"data":{"t":{"i":-2147483648}}}`},
		{"i", `-0`, `{"data":{"t":{"i":0}}}`},
		{"i", `"1_2"`, `{"data":{"t":{"i":12}}}`},
		{"i", `" -5 "`, `{"data":{"t":{"i":-5}}}`},
		{"i", `"+5"`, `{"data":{"t":{"i":5}}}`},
		{"i", `"+-5"`, fmt.Sprintf(fieldErr, "i", "Int cannot represent non-integer value: '+-5'")},
		{"i", `"1__2"`, fmt.Sprintf(fieldErr, "i", "Int cannot represent non-integer value: '1__2'")},
		{"i", `"_1"`, fmt.Sprintf(fieldErr, "i", "Int cannot represent non-integer value: '_1'")},
		{"i", `"1_"`, fmt.Sprintf(fieldErr, "i", "Int cannot represent non-integer value: '1_'")},
		{"i", `"1.5"`, fmt.Sprintf(fieldErr, "i", "Int cannot represent non-integer value: '1.5'")},
		{"i", `"99999999999999999999"`, fmt.Sprintf(fieldErr, "i", "Int cannot represent non 32-bit signed integer value: '99999999999999999999'")},
		{"f", `"1.5"`, `{"data":{"t":{"f":1.5}}}`},
		{"f", `" 2 "`, `{"data":{"t":{"f":2.0}}}`},
		{"f", `"  "`, fmt.Sprintf(fieldErr, "f", "Float cannot represent non numeric value: '  '")},
		{"id", `5.0`, `{"data":{"t":{"id":"5"}}}`},
		{"id", `1e3`, `{"data":{"t":{"id":"1000"}}}`},
		{"id", `5.5`, fmt.Sprintf(fieldErr, "id", "ID cannot represent value: 5.5")},
		// One value where a list is expected is an error, even one that would
		// fit the element type.
		{"l", `5`, fmt.Sprintf(fieldErr, "l", "Expected Iterable, but did not find one for field 'T.l'.")},
		{"ls", `"x"`, fmt.Sprintf(fieldErr, "ls", "Expected Iterable, but did not find one for field 'T.ls'.")},
		{"l", `[5]`, `{"data":{"t":{"l":[5]}}}`},
	} {
		p, err := CompileWithSchema(`subscription { t { `+tt.field+` } }`, "", nil, Limits{}.withDefaults(), s)
		if err != nil {
			t.Fatal(err)
		}
		if got := string(p.AppendPayload(nil, mustEvent(t, "evt", "t", `{"`+tt.field+`":`+tt.value+`}`))); got != tt.want {
			t.Errorf("%s %s:\ngot  %s\nwant %s", tt.field, tt.value, got, tt.want)
		}
	}
}

// Every validation problem is reported once, first in the document first:
// two at one place, the same one at two places, but not gqlparser's
// repeats of one overlapping-fields conflict.
func TestSchemaValidationErrorsListedOnce(t *testing.T) {
	s := mustSchema(t, shapesSDL)
	const conflict = `Fields "o" conflict because subfields "a" conflict because they have differing arguments.` +
		` Use different aliases on the fields to fetch both if this was intentional.`
	for q, want := range map[string]string{
		`subscription { obj { z { a } } }`: `GraphQL validation error at line 1, column 22: Field "z" argument "n" of type "Int!" is required, but it was not provided.;` +
			` at line 1, column 22: Field "z" must not have a selection since type "Int" has no subfields.;` +
			` at line 1, column 26: Cannot query field "a" on type "Int".`,
		`subscription { obj { nmae ... on Obj { nmae } } }`: `GraphQL validation error at line 1, column 22: Cannot query field "nmae" on type "Obj".;` +
			` at line 1, column 40: Cannot query field "nmae" on type "Obj".`,
		`subscription { holder { o { a: x(n: 1) } o { a: x(n: 2) } o { a: x(n: 3) } } }`: `GraphQL validation error at line 1, column 42: ` + conflict +
			`; at line 1, column 59: ` + conflict,
	} {
		_, err := CompileWithSchema(q, "", nil, Limits{}.withDefaults(), s)
		var de *DocumentError
		if !errors.As(err, &de) || err.Error() != want || len(de.Errors) != strings.Count(want, "; at line")+1 {
			t.Errorf("%s:\ngot  %v\nwant %s", q, err, want)
		}
	}
}

const argsSDL = `
input R { lo: Int! note: String }
input IDFilter { in: [ID] }
input Where { id: IDFilter }
type Query { ok: Boolean }
type T { a: Int y(r: R): Int w(rs: [R]): Int }
enum E { paid lost }
type Subscription { t(n: Int, s: String, f: Float, b: Boolean, e: E, where: Where): T  r(n: Int!): T }
`

// A field argument that cannot be coerced once the variables are known is
// a field error showing the argument as graphql-core's print_ast writes it,
// a single value where a list is expected included.
func TestSchemaFieldArgumentErrorsAsGraphQLCore(t *testing.T) {
	s := mustSchema(t, argsSDL)
	for _, tt := range []struct {
		arg, want string
		col       int
	}{
		{`y(r: {lo: $n, note: "a\r\"b\\\t\b\f\u0001\u0085é"})`, `Argument 'r' has invalid value {lo: $n, note: "a\r\"b\\\t\b\f\u0001\u0085é"}.`, 38},
		{`y(r: {lo: $n, note: """x\"""y"""})`, `Argument 'r' has invalid value {lo: $n, note: """x\"""y"""}.`, 38},
		{`w(rs: {lo: $n})`, `Argument 'rs' has invalid value {lo: $n}.`, 39},
		{`w(rs: [{lo: 1}, {lo: $n}])`, `Argument 'rs' has invalid value [{lo: 1}, {lo: $n}].`, 39},
	} {
		q := `subscription($n: Int = 3) { t { ` + tt.arg + ` } }`
		p, err := CompileWithSchema(q, "", map[string]any{"n": nil}, Limits{}.withDefaults(), s)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		var got struct {
			Errors []GraphQLError `json:"errors"`
		}
		if err := json.Unmarshal(p.AppendPayload(nil, mustEvent(t, "evt", "t", `{"y":1,"w":1}`)), &got); err != nil {
			t.Fatal(err)
		}
		if len(got.Errors) != 1 || got.Errors[0].Message != tt.want || got.Errors[0].Locations[0] != (Location{1, tt.col}) {
			t.Errorf("%s: errors %+v, want %q at column %d", q, got.Errors, tt.want, tt.col)
		}
	}
	// Those that can be coerced are no error.
	p, err := CompileWithSchema(`subscription { t { w(rs: [{lo: 1, note: null}]) y(r: {lo: 2}) } }`, "", nil, Limits{}.withDefaults(), s)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(p.AppendPayload(nil, mustEvent(t, "evt", "t", `{"y":1,"w":2}`))); got != `{"data":{"t":{"w":2,"y":1}}}` {
		t.Errorf("got %s", got)
	}
}

// The root field's arguments, literal or variables, filter events by the
// coerced values: a String, null, a non-null argument, a list of IDs.
func TestSchemaRootArgumentsFilter(t *testing.T) {
	s := mustSchema(t, argsSDL)
	for _, tt := range []struct {
		q, vars, pass, fail string
	}{
		{`subscription { t(s: "x") { a } }`, `{}`, `{"s":"x"}`, `{"s":"y"}`},
		{`subscription { t(n: null) { a } }`, `{}`, `{"a":1}`, `{"n":1}`},
		{`subscription { r(n: 5) { a } }`, `{}`, `{"n":5}`, `{"n":6}`},
		{`subscription { t(b: true) { a } }`, `{}`, `{"b":true}`, `{"b":false}`},
		{`subscription { t(e: paid) { a } }`, `{}`, `{"e":"paid"}`, `{"e":"lost"}`},
		{`subscription($n: Int) { t(n: $n) { a } }`, `{"n":2147483647}`, `{"n":2147483647}`, `{"n":1}`},
		{`subscription($n: Int) { t(n: $n) { a } }`, `{"n":-2147483648}`, `{"n":-2147483648}`, `{"n":1}`},
		{`subscription($ids: [ID]) { t(where: {id: {in: $ids}}) { a } }`, `{"ids":[1,"a"]}`, `{"id":"1"}`, `{"id":"2"}`},
	} {
		p, err := CompileWithSchema(tt.q, "", mustVars(t, tt.vars), Limits{}.withDefaults(), s)
		if err != nil {
			t.Fatalf("%s %s: %v", tt.q, tt.vars, err)
		}
		if !p.Match(mustEvent(t, "evt", "t", tt.pass)) || p.Match(mustEvent(t, "evt", "t", tt.fail)) {
			t.Errorf("%s %s: does not pass %s and only it", tt.q, tt.vars, tt.pass)
		}
	}
}

// A variable that does not fit its scalar type refuses the document with
// graphql-core's message.
func TestSchemaScalarVariableErrors(t *testing.T) {
	s := mustSchema(t, argsSDL)
	for _, tt := range []struct {
		vars map[string]any
		want string
	}{
		{mustVars(t, `{"n":"x"}`), "Variable '$n' got invalid value 'x'; Int cannot represent non-integer value: 'x'"},
		{mustVars(t, `{"n":2147483648}`), "Variable '$n' got invalid value 2147483648; Int cannot represent non 32-bit signed integer value: 2147483648"},
		{mustVars(t, `{"n":-2147483649}`), "Variable '$n' got invalid value -2147483649; Int cannot represent non 32-bit signed integer value: -2147483649"},
		{mustVars(t, `{"f":"x"}`), "Variable '$f' got invalid value 'x'; Float cannot represent non numeric value: 'x'"},
		// What JSON decoding refuses, a caller of the Go API may pass.
		{map[string]any{"f": json.Number("1e400")}, "Variable '$f' got invalid value inf; Float cannot represent non numeric value: inf"},
		{mustVars(t, `{"s":5}`), "Variable '$s' got invalid value 5; String cannot represent a non string value: 5"},
	} {
		name := sortedKeys(tt.vars)[0]
		q := `subscription($` + name + `: ` + map[string]string{"n": "Int", "f": "Float", "s": "String"}[name] + `) { t(` + name + `: $` + name + `) { a } }`
		_, err := CompileWithSchema(q, "", tt.vars, Limits{}.withDefaults(), s)
		if want := "GraphQL error at line 1, column 14: " + tt.want; err == nil || err.Error() != want {
			t.Errorf("%v: error %v, want %q", tt.vars, err, want)
		}
	}
}

// A variable of a non-null type must be given and not null; given, it is
// the root argument's value, which events must match.
func TestSchemaRequiredVariables(t *testing.T) {
	s := mustSchema(t, argsSDL)
	const q = `subscription($n: Int!) { r(n: $n) { a } }`
	p, err := CompileWithSchema(q, "", mustVars(t, `{"n":3}`), Limits{}.withDefaults(), s)
	if err != nil {
		t.Fatalf("given: %v", err)
	}
	for data, want := range map[string]bool{`{"n":3}`: true, `{"n":4}`: false} {
		if got := p.Match(mustEvent(t, "evt", "r", data)); got != want {
			t.Fatalf("given n=3: Match(%s) = %v, want %v", data, got, want)
		}
	}
	for vars, want := range map[string]string{
		`{}`:         "Variable '$n' of required type 'Int!' was not provided.",
		`{"n":null}`: "Variable '$n' of non-null type 'Int!' must not be null.",
	} {
		_, err := CompileWithSchema(q, "", mustVars(t, vars), Limits{}.withDefaults(), s)
		if want = "GraphQL error at line 1, column 14: " + want; err == nil || err.Error() != want {
			t.Errorf("%s: error %v, want %q", vars, err, want)
		}
	}
}

// A value of an interface names its object type in __typename, which must
// be one of the interface's; fragments apply by type, @skip and @include
// as they say.
func TestSchemaAbstractTypesAsGraphQLCore(t *testing.T) {
	s := mustSchema(t, `interface Node { id: ID } type User implements Node { id: ID name: String } type Other { id: ID }
type Query { ok: Boolean } type Subscription { node: Node }`)
	const q = `subscription { node { ...N ... on User { name } ... on User @skip(if: true) { skipped: name } ... @include(if: false) { id2: id } } }
fragment N on Node { id }`
	fieldErr := func(msg string) string {
		return `{"data":{"node":null},"errors":[{"message":"` + msg + `","locations":[{"line":1,"column":16}],"path":["node"]}]}`
	}
	unresolved := fieldErr("Abstract type 'Node' must resolve to an Object type at runtime for field 'Subscription.node'." +
		" Either the 'Node' type should provide a 'resolve_type' function or each possible type should provide an 'is_type_of' function.")
	for data, want := range map[string]string{
		`{"__typename":"User","id":7,"name":"Ann"}`: `{"data":{"node":{"id":"7","name":"Ann"}}}`,
		`{"id":7}`:                unresolved,
		`{"__typename":5,"id":7}`: unresolved,
		`{"__typename":"Nope"}`:   fieldErr("Abstract type 'Node' was resolved to a type 'Nope' that does not exist inside the schema."),
		`{"__typename":"Other"}`:  fieldErr("Runtime Object type 'Other' is not a possible type for 'Node'."),
	} {
		p, err := CompileWithSchema(q, "", nil, Limits{}.withDefaults(), s)
		if err != nil {
			t.Fatal(err)
		}
		if got := string(p.AppendPayload(nil, mustEvent(t, "evt", "node", data))); got != want {
			t.Errorf("%s:\ngot  %s\nwant %s", data, got, want)
		}
	}
}

// A list literal's item that is a variable without a value is null in a
// list of a nullable type and makes the whole list invalid in a list of a
// non-null type, as graphql-core's value_from_ast gives [1, None] and
// Undefined for [1, $v] without $v.
func TestValueFromASTMissingListItemVariable(t *testing.T) {
	s := mustSchema(t, `type Query { ok: Boolean } type Subscription { ok: Boolean }`)
	list := &ast.Value{Kind: ast.ListValue, Children: ast.ChildValueList{
		{Value: &ast.Value{Kind: ast.IntValue, Raw: "1"}},
		{Value: &ast.Value{Kind: ast.Variable, Raw: "v"}},
	}}
	for _, tt := range []struct {
		typ  *ast.Type
		vars map[string]any
		want string
		ok   bool
	}{
		{ast.ListType(ast.NamedType("Int", nil), nil), nil, "[1 <nil>]", true},
		{ast.ListType(ast.NonNullNamedType("Int", nil), nil), nil, "<nil>", false},
		{ast.ListType(ast.NonNullNamedType("Int", nil), nil), map[string]any{"v": json.Number("2")}, "[1 2]", true},
	} {
		got, ok := valueFromAST(s.s, list, tt.typ, tt.vars)
		if fmt.Sprint(got) != tt.want || ok != tt.ok {
			t.Errorf("[1, $v] as %s with %v: %v %v, want %s %v", tt.typ, tt.vars, got, ok, tt.want, tt.ok)
		}
	}
}

// A value of a type the schema does not define coerces to nothing (not to
// null): ParseSchema and validation keep such types from reaching
// valueFromAST, and were one to, its argument would be invalid rather than
// silently null.
func TestValueFromASTUnknownType(t *testing.T) {
	s := mustSchema(t, `type Query { ok: Boolean } type Subscription { ok: Boolean }`)
	one := &ast.Value{Kind: ast.IntValue, Raw: "1"}
	if got, ok := valueFromAST(s.s, one, ast.NamedType("Nope", nil), nil); ok {
		t.Errorf("1 as Nope: %v, want no value", got)
	}
	if got, ok := valueFromAST(s.s, one, ast.NamedType("Int", nil), nil); !ok || fmt.Sprint(got) != "1" {
		t.Errorf("1 as Int: %v %v, want 1", got, ok)
	}
}

// A custom scalar is written as json.loads gives it: lists, nested ones
// too, keep their items and order.
func TestSchemaCustomScalarListsAsLoaded(t *testing.T) {
	s := mustSchema(t, `scalar JSON type Query { ok: Boolean } type T { j: JSON } type Subscription { t: T }`)
	p, err := CompileWithSchema(`subscription { t { j } }`, "", nil, Limits{}.withDefaults(), s)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"data":{"t":{"j":[1,[2,3],{"b":1,"a":[]},"x"]}}}`
	if got := string(p.AppendPayload(nil, mustEvent(t, "evt", "t", `{"j":[1,[2,3],{"b":1,"a":[]},"x"]}`))); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

// Two fields of one object type with different selections are shaped each
// by its own selection (the memo of selections tells their nodes apart).
func TestSchemaSelectionsOfOneTypeKeptApart(t *testing.T) {
	s := mustSchema(t, `type Query { ok: Boolean } type C { a: Int b: Int } type T { x: C y: C } type Subscription { t: T }`)
	p, err := CompileWithSchema(`subscription { t { x { a } y { b } } }`, "", nil, Limits{}.withDefaults(), s)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"data":{"t":{"x":{"a":1},"y":{"b":4}}}}`
	if got := string(p.AppendPayload(nil, mustEvent(t, "evt", "t", `{"x":{"a":1,"b":2},"y":{"a":3,"b":4}}`))); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

// smallInt reads the plain integers of at most ten digits, both signs.
func TestSmallInt(t *testing.T) {
	for _, tt := range []struct {
		tok  string
		want int64
		ok   bool
	}{
		{"0", 0, true}, {"42", 42, true}, {"-2147483648", -2147483648, true}, {"9999999999", 9999999999, true},
		{"-0", 0, false}, {"1.0", 0, false}, {"1e3", 0, false}, {"12345678901", 0, false}, {"-12345678901", 0, false},
	} {
		if got, ok := smallInt([]byte(tt.tok)); got != tt.want || ok != tt.ok {
			t.Errorf("smallInt(%s) = %d, %v; want %d, %v", tt.tok, got, ok, tt.want, tt.ok)
		}
	}
}
