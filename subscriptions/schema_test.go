package subscriptions

import (
	"fmt"
	"strings"
	"testing"
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

func BenchmarkCompileSchema(b *testing.B) {
	s := mustSchema(b, ordersSDL)
	for _, bc := range []struct {
		name   string
		schema *Schema
	}{{"without schema", nil}, {"with schema", s}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := CompileWithSchema(ordersQuery, "", nil, Limits{}.withDefaults(), bc.schema); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkAppendPayloadSchema(b *testing.B) {
	ev := benchEvent(b)
	s := mustSchema(b, ordersSDL)
	for _, bc := range []struct {
		name   string
		schema *Schema
	}{{"without schema", nil}, {"with schema", s}} {
		b.Run(bc.name, func(b *testing.B) {
			p, err := CompileWithSchema(ordersQuery, "", nil, Limits{}.withDefaults(), bc.schema)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(ev.Data)))
			b.ReportAllocs()
			buf := p.AppendPayload(nil, ev)
			for b.Loop() {
				buf = p.AppendPayload(buf[:0], ev)
			}
		})
	}
}

const w2SDL = `
type Query { ok: Boolean }
input StringFilter { eq: String }
input IntFilter { gte: Int }
input OrderWhere { region: StringFilter total: IntFilter }
type Order { id: ID! region: String total: Int status: String customer: String }
type Subscription { orders(where: OrderWhere): Order }
`

// BenchmarkW2Schema is BenchmarkW2 with the executor given a schema.
func BenchmarkW2Schema(b *testing.B) {
	for _, sdl := range []string{"", w2SDL} {
		name := "without schema"
		if sdl != "" {
			name = "with schema"
		}
		b.Run(name, func(b *testing.B) {
			e, events := w2ExecutorWith(b, sdl)
			b.Logf("%d groups", len(e.reg.groups))
			benchW2(b, e, events)
		})
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
