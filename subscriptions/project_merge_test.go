package subscriptions

import (
	"strings"
	"testing"

	"github.com/vektah/gqlparser/v2/ast"
)

// The cases where graphql-core's CollectFields merges what the single-pass
// projection used to keep apart, and the field errors of @include/@skip.
func TestMergedSelections(t *testing.T) {
	const shop = `{"__typename":"Shop","flag":{"a":1,"b":2}}`
	tests := []struct {
		name, q string
		vars    map[string]any
		data    string
		want    string
	}{
		{name: "outside then inside a type condition", q: "subscription { feed { flag { a } ... on Shop { flag { b } } } }", data: shop,
			want: `{"data":{"feed":{"flag":{"a":1,"b":2}}}}`},
		{name: "inside then outside", q: "subscription { feed { ... on Shop { flag { b } } flag { a } } }", data: shop,
			want: `{"data":{"feed":{"flag":{"b":2,"a":1}}}}`},
		{name: "named fragment", q: "subscription { feed { flag { a } ...S } } fragment S on Shop { flag { b } }", data: shop,
			want: `{"data":{"feed":{"flag":{"a":1,"b":2}}}}`},
		{name: "condition not holding", q: "subscription { feed { flag { a } ... on Other { flag { b } } } }", data: shop,
			want: `{"data":{"feed":{"flag":{"a":1}}}}`},
		{name: "two conditions both holding", q: "subscription { feed { ... on Shop { flag { a } } ... on evt { flag { b a } } } }", data: shop,
			want: `{"data":{"feed":{"flag":{"a":1,"b":2}}}}`},
		{name: "merge in lists", q: "subscription { feed { items { x { a } ... on I { x { b } } } } }",
			data: `{"items":[{"__typename":"I","x":{"a":1,"b":2}},{"__typename":"J","x":{"a":3,"b":4}},null]}`,
			want: `{"data":{"feed":{"items":[{"x":{"a":1,"b":2}},{"x":{"a":3}},null]}}}`},
		{name: "merge two levels", q: "subscription { feed { flag { c { a } } ... on Shop { flag { c { b } } } } }",
			data: `{"__typename":"Shop","flag":{"c":{"a":1,"b":2}}}`,
			want: `{"data":{"feed":{"flag":{"c":{"a":1,"b":2}}}}}`},
		{name: "null include variable", q: "subscription($v: Boolean = true) { feed { a @include(if: $v) b } }",
			vars: map[string]any{"v": nil}, data: shop,
			want: `{"data":{"feed":null},"errors":[{"message":"Argument 'if' of non-null type 'Boolean!' must not be null.","locations":[{"line":1,"column":58}],"path":["feed"]}]}`},
		{name: "null include variable in list items", q: "subscription($v: Boolean = true) {\n feed { items { a @skip(if: $v) } } }",
			vars: map[string]any{"v": nil}, data: `{"items":[{"a":1},null,{"a":2}]}`,
			want: `{"data":{"feed":{"items":[null,null,null]}},"errors":[` +
				`{"message":"Argument 'if' of non-null type 'Boolean!' must not be null.","locations":[{"line":2,"column":29}],"path":["feed","items",0]},` +
				`{"message":"Argument 'if' of non-null type 'Boolean!' must not be null.","locations":[{"line":2,"column":29}],"path":["feed","items",2]}]}`},
		{name: "null include under a condition holding by __typename", q: "subscription($v: Boolean = true) { feed { b ... on Shop { a @include(if: $v) } } }",
			vars: map[string]any{"v": nil}, data: shop,
			want: `{"data":{"feed":null},"errors":[{"message":"Argument 'if' of non-null type 'Boolean!' must not be null.","locations":[{"line":1,"column":74}],"path":["feed"]}]}`},
		{name: "null include under a condition not holding", q: "subscription($v: Boolean = true) { feed { b ... on Other { a @include(if: $v) } } }",
			vars: map[string]any{"v": nil}, data: shop, want: `{"data":{"feed":{"b":null}}}`},
		{name: "null include on a fragment spread already expanded", q: "subscription($v: Boolean = true) { feed { ...F ...F @include(if: $v) } } fragment F on Shop { flag { a } }",
			vars: map[string]any{"v": nil}, data: shop, want: `{"data":{"feed":{"flag":{"a":1}}}}`},
		{name: "skip evaluated before include", q: "subscription($v: Boolean = true) { feed { a @include(if: $v) @skip(if: true) flag { b } } }",
			vars: map[string]any{"v": nil}, data: shop, want: `{"data":{"feed":{"flag":{"b":2}}}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Compile(tt.q, "", tt.vars, Limits{}.withDefaults())
			if err != nil {
				t.Fatal(err)
			}
			got := string(p.AppendPayload(nil, mustEvent(t, "evt", "feed", tt.data)))
			if got != tt.want {
				t.Fatalf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestMergedSelectionPlanKeys(t *testing.T) {
	q := "subscription($v: Boolean = true) { feed { a @include(if: $v) } }"
	null := mustCompile(t, q, map[string]any{"v": nil}).Key
	if set := mustCompile(t, q, map[string]any{"v": true}).Key; set == null {
		t.Fatal("a null if: shares the plan of if: true")
	}
	if other := mustCompile(t, "subscription($w: Boolean = true) { feed { a @skip(if: $w) } }", map[string]any{"w": nil}).Key; other == null {
		t.Fatal("errors at different locations share a plan")
	}
}

// The specification's validation rules that need no schema.
func TestDocumentRules(t *testing.T) {
	tests := []struct{ name, q, op, want string }{
		{"unused variable", "subscription($v: Int) { feed { a } }", "", `line 1, column 14: Variable "$v" is never used.`},
		{"unused variable named op", "subscription S($v: Int) { feed { a } }", "", `Variable "$v" is never used in operation "S".`},
		{"unused fragment", "subscription { feed { a } } fragment F on T { a }", "", `line 1, column 29: Fragment "F" is never used.`},
		{"variable undefined in another operation", "subscription A { feed { a } } query B { x(id: $n) }", "A", `Variable "$n" is not defined by operation "B".`},
		{"duplicate variable", "subscription($v: Int, $v: Int) { feed(a: $v) }", "", `There can be only one variable named "$v".`},
		{"duplicate argument", "subscription { feed(a: 1, a: 2) }", "", `There can be only one argument named "a".`},
		{"duplicate input field", "subscription { feed(where: {a: {eq: 1}, a: {eq: 2}}) }", "", `There can be only one input field named "a".`},
		{"duplicate skip", "subscription { feed { a @skip(if: false) @skip(if: true) } }", "", `The directive "@skip" can only be used once at this location.`},
		{"unknown skip argument", "subscription { feed { a @skip(if: false, unless: true) } }", "", `Unknown argument "unless" on directive "@skip".`},
		{"nullable variable in if", "subscription($v: Boolean) { feed { a @include(if: $v) } }", "", `Variable "$v" of type "Boolean" used in position expecting type "Boolean!".`},
		{"skip on an operation", "subscription @skip(if: true) { feed }", "", `Directive "@skip" may not be used on SUBSCRIPTION.`},
		{"every problem listed", "subscription($a: Int, $b: Int) { feed }", "", `line 1, column 14: Variable "$a" is never used.; at line 1, column 23: Variable "$b" is never used.`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Compile(tt.q, tt.op, nil, Limits{}.withDefaults())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
			if KindOf(err) != KindValue {
				t.Fatalf("kind %v", KindOf(err))
			}
		})
	}
	// A null if: at the root is refused at registration: graphql-core's
	// subscribe() fails on it before any event.
	_, err := Compile("subscription($v: Boolean = true) { feed @include(if: $v) }", "", map[string]any{"v": nil}, Limits{}.withDefaults())
	if err == nil || !strings.Contains(err.Error(), "line 1, column 54: Argument 'if' of non-null type 'Boolean!' must not be null.") {
		t.Fatalf("root null if: %v", err)
	}
}

// A field merged under other conditions in between keeps its place.
func TestMergedSelectionOrder(t *testing.T) {
	p := mustCompile(t, "subscription { r: feed { o { n } ... on C { o { __typename } } o { b } } }", nil)
	got := string(p.AppendPayload(nil, mustEvent(t, "evt", "feed", `{"__typename":"C","o":{"__typename":"B","n":0,"b":true}}`)))
	if want := `{"data":{"r":{"o":{"n":0,"__typename":"B","b":true}}}}`; got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

// Descriptions on executable definitions parse in gqlparser but are a
// syntax error for graphql-core: refused.
func TestDescriptionsRefused(t *testing.T) {
	for _, q := range []string{
		`"s" subscription { a }`,
		`"" subscription { a }`,
		"\"\"\"\"\"\" subscription { a }",
		`subscription { a { ...F } } "d" fragment F on T { x }`,
		`subscription("v" $v: Int = 1) { a(x: $v) }`,
		`subscription($a: Int = 1 "" $b: ID) { a(x: $a, y: $b) }`,
		`subscription($a: String = "" "" $b: ID) { a(x: $a, y: $b) }`,
	} {
		if _, err := Compile(q, "", nil, Limits{}.withDefaults()); err == nil || !strings.Contains(err.Error(), "GraphQL syntax error at line 1") {
			t.Errorf("%s: %v", q, err)
		}
	}
	for _, q := range []string{
		"# a \"comment\"\nsubscription { a(s: \"x\") }",
		"subscription { a(s: \"x\") }\n# \"after\"",
		// A string default value before the next variable is no description.
		`subscription($a: [ID] = "a", $b: ID) { a(x: $a, y: $b) }`,
		`subscription($a: String = "", $b: ID) { a(x: $a, y: $b) }`,
		`subscription($a: String = """""" $b: ID) { a(x: $a, y: $b) }`,
	} {
		if _, err := Compile(q, "", nil, Limits{}.withDefaults()); err != nil {
			t.Errorf("%q: %v", q, err)
		}
	}
}

// An error without a position has no "locations" member, and errors sort by
// locations first, then path, then message: the message order below is the
// reverse of the expected one, so each key must decide.
func TestAppendErrorsOrderAndLocations(t *testing.T) {
	if locs := execErrorAt("m", nil).locs(); locs != nil {
		t.Fatalf("locations of an error without a position: %v", locs)
	}
	if locs := execErrorAt("m", &ast.Position{Line: 2, Column: 3}).locs(); len(locs) != 1 || locs[0] != (posn{2, 3}) {
		t.Fatalf("locations of an error at 2:3: %v", locs)
	}
	errs := []fieldErr{
		{msg: "a", locs: []posn{{2, 1}}, path: []pathElem{{key: "x"}}},
		{msg: "b", locs: []posn{{1, 5}}, path: []pathElem{{key: "x"}}},
		{msg: "c", locs: []posn{{1, 5}}, path: []pathElem{{key: "w"}}},
		{msg: "d", path: []pathElem{{key: "z"}}},
	}
	want := `,"errors":[{"message":"d","path":["z"]},` +
		`{"message":"c","locations":[{"line":1,"column":5}],"path":["w"]},` +
		`{"message":"b","locations":[{"line":1,"column":5}],"path":["x"]},` +
		`{"message":"a","locations":[{"line":2,"column":1}],"path":["x"]}]`
	if got := string(appendErrors(nil, errs)); got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

// A fragment spread again outside the condition it was first spread under
// is skipped, as graphql-core skips a visited fragment before it reads the
// spread's directives, for an object of that condition's type only: there a
// null @include variable on the second spread raises nothing.
func TestFragmentSpreadAgainOutsideItsCondition(t *testing.T) {
	const q = "subscription($v: Boolean = true) { feed { ... on Other { ...F } ...F @include(if: $v) } } fragment F on Other { a }"
	p, err := Compile(q, "", map[string]any{"v": nil}, Limits{}.withDefaults())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ data, want string }{
		{`{"__typename":"Other","a":1}`, `{"data":{"feed":{"a":1}}}`},
		{`{"__typename":"Shop","a":1}`, `{"data":{"feed":null},"errors":[{"message":"Argument 'if' of non-null type 'Boolean!' must not be null.","locations":[{"line":1,"column":83}],"path":["feed"]}]}`},
	} {
		got := string(p.AppendPayload(nil, mustEvent(t, "evt", "feed", c.data)))
		if got != c.want {
			t.Errorf("%s: got  %s\nwant %s", c.data, got, c.want)
		}
	}
}
