package subscriptions

import (
	"strings"
	"testing"

	json "github.com/goccy/go-json"
)

func TestMatch(t *testing.T) {
	const order = `{"id":7,"sid":"7","status":"active","total":150,"price":19.99,"big":9007199254740993,
		"name":"Widget Pro","tags":["new","sale"],"ids":[1,2],"none":null,"flag":true,
		"customer":{"country":"FR","address":{"zip":"75001"}},"obj":{"a":1}}`
	tests := []struct {
		name string
		args string // root field arguments
		vars map[string]any
		want bool
	}{
		{"no filter", "", nil, true},
		// scalar arguments
		{"id number", "(id: 7)", nil, true},
		{"id number other", "(id: 8)", nil, false},
		{"id float equal", "(id: 7.0)", nil, true},
		{"id string vs number", `(id: "7")`, nil, true},
		{"id string vs other number", `(id: "8")`, nil, false},
		{"number vs string field", `(sid: 7)`, nil, true},
		{"string vs string", `(sid: "7")`, nil, true},
		{"string non-number vs number", `(id: "seven")`, nil, false},
		{"enum", `(status: active)`, nil, true},
		{"string", `(status: "done")`, nil, false},
		{"var", `(status: $s)`, map[string]any{"s": "active"}, true},
		{"var other", `(status: $s)`, map[string]any{"s": "done"}, false},
		{"absent optional var filters nothing", `(status: $s)`, nil, true},
		{"null arg matches null", `(none: null)`, nil, true},
		{"null arg matches missing", `(missing: null)`, nil, true},
		{"null arg vs value", `(status: null)`, nil, false},
		{"missing field", `(missing: 1)`, nil, false},
		{"bool", `(flag: true)`, nil, true},
		{"list equality", `(ids: [1, 2])`, nil, true},
		{"list order matters", `(ids: [2, 1])`, nil, false},
		{"object equality", `(obj: {a: 1.0})`, nil, true},
		{"object equality extra key", `(obj: {a: 1, b: 2})`, nil, false},
		{"object equality missing key", `(obj: {})`, nil, false},
		{"several args ANDed", `(id: 7, status: "done")`, nil, false},
		{"big int exact", `(big: 9007199254740993)`, nil, true},
		{"big int off by one", `(big: 9007199254740992)`, nil, false},
		// where operators
		{"eq", `(where: {status: {eq: "active"}})`, nil, true},
		{"eq no", `(where: {status: {eq: "x"}})`, nil, false},
		{"eq type mismatch", `(where: {id: {eq: "7"}})`, nil, false},
		{"eq null missing", `(where: {missing: {eq: null}})`, nil, true},
		{"neq", `(where: {status: {neq: "x"}})`, nil, true},
		{"neq same", `(where: {status: {neq: "active"}})`, nil, false},
		{"neq type mismatch", `(where: {status: {neq: 1}})`, nil, false},
		{"neq missing", `(where: {missing: {neq: 1}})`, nil, false},
		{"neq null", `(where: {status: {neq: null}})`, nil, true},
		{"gt", `(where: {total: {gt: 100}})`, nil, true},
		{"gt equal", `(where: {total: {gt: 150}})`, nil, false},
		{"gte", `(where: {total: {gte: 150}})`, nil, true},
		{"lt float", `(where: {price: {lt: 20}})`, nil, true},
		{"lte", `(where: {price: {lte: 19.99}})`, nil, true},
		{"lte no", `(where: {price: {lte: 19.98}})`, nil, false},
		{"gt big exact", `(where: {big: {gt: 9007199254740992}})`, nil, true},
		{"gt big float", `(where: {big: {gt: 9007199254740992.5}})`, nil, true},
		{"gt exponent", `(where: {total: {gt: 1.4e2}})`, nil, true},
		{"gt string", `(where: {status: {gt: "aa"}})`, nil, true},
		{"lt string", `(where: {status: {lt: "aa"}})`, nil, false},
		{"gt type mismatch", `(where: {status: {gt: 1}})`, nil, false},
		{"gt missing", `(where: {missing: {gt: 1}})`, nil, false},
		{"in", `(where: {status: {in: ["active", "done"]}})`, nil, true},
		{"in no", `(where: {status: {in: ["done"]}})`, nil, false},
		{"in numbers", `(where: {total: {in: [1, 150.0]}})`, nil, true},
		{"in empty", `(where: {status: {in: []}})`, nil, false},
		{"nin", `(where: {status: {nin: ["done"]}})`, nil, true},
		{"nin no", `(where: {status: {nin: ["active"]}})`, nil, false},
		{"nin missing", `(where: {missing: {nin: ["active"]}})`, nil, false},
		{"contains substring", `(where: {name: {contains: "get P"}})`, nil, true},
		{"contains substring no", `(where: {name: {contains: "pro"}})`, nil, false},
		{"contains list", `(where: {tags: {contains: "sale"}})`, nil, true},
		{"contains list number", `(where: {ids: {contains: 2}})`, nil, true},
		{"contains list no", `(where: {tags: {contains: "old"}})`, nil, false},
		{"contains type mismatch", `(where: {total: {contains: "1"}})`, nil, false},
		{"startswith", `(where: {name: {startswith: "Wid"}})`, nil, true},
		{"startswith no", `(where: {name: {startswith: "wid"}})`, nil, false},
		{"startswith number field", `(where: {total: {startswith: "1"}})`, nil, false},
		{"isnull true null", `(where: {none: {isnull: true}})`, nil, true},
		{"isnull true missing", `(where: {missing: {isnull: true}})`, nil, true},
		{"isnull true present", `(where: {status: {isnull: true}})`, nil, false},
		{"isnull false", `(where: {status: {isnull: false}})`, nil, true},
		{"isnull false null", `(where: {none: {isnull: false}})`, nil, false},
		{"range in one object", `(where: {total: {gte: 100, lt: 200}})`, nil, true},
		{"range in one object no", `(where: {total: {gte: 100, lt: 150}})`, nil, false},
		{"nested path", `(where: {customer: {country: {in: ["FR", "BE"]}}})`, nil, true},
		{"nested path deeper", `(where: {customer: {address: {zip: {startswith: "75"}}}})`, nil, true},
		{"nested path no", `(where: {customer: {country: {eq: "DE"}}})`, nil, false},
		{"nested path through scalar", `(where: {status: {x: {eq: 1}}})`, nil, false},
		{"nested missing isnull", `(where: {nope: {x: {isnull: true}}})`, nil, true},
		{"keys ANDed", `(where: {status: {eq: "active"}, total: {gte: 100}})`, nil, true},
		{"keys ANDed no", `(where: {status: {eq: "active"}, total: {gte: 1000}})`, nil, false},
		{"AND", `(where: {AND: [{status: {eq: "active"}}, {total: {gt: 1}}]})`, nil, true},
		{"AND no", `(where: {AND: [{status: {eq: "active"}}, {total: {gt: 1000}}]})`, nil, false},
		{"AND single object", `(where: {AND: {status: {eq: "active"}}})`, nil, true},
		{"OR", `(where: {OR: [{status: {eq: "x"}}, {total: {gt: 1}}]})`, nil, true},
		{"OR no", `(where: {OR: [{status: {eq: "x"}}, {total: {gt: 1000}}]})`, nil, false},
		{"OR empty", `(where: {OR: []})`, nil, false},
		{"NOT", `(where: {NOT: {status: {eq: "x"}}})`, nil, true},
		{"NOT no", `(where: {NOT: {status: {eq: "active"}}})`, nil, false},
		{"combinator in nested path", `(where: {customer: {OR: [{country: {eq: "BE"}}, {country: {eq: "FR"}}]}})`, nil, true},
		{"where null", `(where: null)`, nil, true},
		{"where from variable", `(where: $w)`, map[string]any{"w": map[string]any{"total": map[string]any{"gt": json.Number("100")}}}, true},
		{"where from variable go float", `(where: $w)`, map[string]any{"w": map[string]any{"total": map[string]any{"gt": 200.0}}}, false},
		// A Go caller's json.Number that is no JSON number orders nothing.
		{"where from variable malformed number", `(where: $w)`, map[string]any{"w": map[string]any{"total": map[string]any{"gt": json.Number("1x")}}}, false},
		{"where absent var in object", `(where: {status: {eq: $s}, total: {gt: 1}})`, nil, true},
		{"where and scalar arg", `(id: 7, where: {status: {eq: "x"}})`, nil, false},
	}
	ev := mustEvent(t, "orderCreated", "orders", order)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := "subscription { orders" + tt.args + " { id } }"
			if tt.vars != nil || containsVar(tt.args) {
				// Only the variables used: unused ones are a validation error.
				var defs []string
				for _, d := range []string{"$s: String", "$w: OrderWhere"} {
					if strings.Contains(tt.args, d[:2]) {
						defs = append(defs, d)
					}
				}
				q = "subscription (" + strings.Join(defs, ", ") + ") { orders" + tt.args + " { id } }"
			}
			p := mustCompile(t, q, tt.vars)
			if got := p.Match(ev); got != tt.want {
				t.Fatalf("Match = %v, want %v", got, tt.want)
			}
		})
	}
}

func containsVar(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == '$' {
			return true
		}
	}
	return false
}

// A decimal operand with more digits than a float64 holds means the float64
// it rounds to, as eq and the order operators compare it (and as
// graphql-core reads a Float literal): in, nin and the root arguments,
// which compare through equality of values, agree with them.
func TestLongDecimalOperandsMatchAsEqDoes(t *testing.T) {
	const long = "0.10000000000000000001" // rounds to the float64 0.1
	ev := mustEvent(t, "e", "orders", `{"price":0.1,"sprice":"0.1","prices":[0.1],"total":150}`)
	for args, want := range map[string]bool{
		`(where: {price: {eq: LONG}})`:             true,
		`(where: {price: {gte: LONG, lte: LONG}})`: true,
		`(where: {price: {gt: LONG}})`:             false,
		`(where: {price: {in: [1, LONG]}})`:        true,
		`(where: {price: {nin: [LONG]}})`:          false,
		`(where: {prices: {contains: LONG}})`:      true,
		`(price: LONG)`:                            true,
		`(price: "LONG")`:                          true,
		`(sprice: LONG)`:                           true,
		`(prices: [LONG])`:                         true,
		`(total: "150.00000000000000000001")`:      true,
	} {
		args = strings.ReplaceAll(args, "LONG", long)
		p := mustCompile(t, "subscription { orders"+args+" { total } }", nil)
		if got := p.Match(ev); got != want {
			t.Errorf("%s on %s: Match = %v, want %v", args, ev.Data, got, want)
		}
	}
}

func TestNumCompare(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"1", "2", -1}, {"2", "1", 1}, {"1", "1.0", 0}, {"-0", "0", 0}, {"1e2", "100", 0},
		{"9223372036854775807", "9223372036854775806", 1},
		{"99999999999999999999", "99999999999999999998", 1},
		{"1e400", "1e399", 1}, {"-1e400", "1", -1}, {"0.1", "0.10", 0},
		{"9007199254740993", "9007199254740992.0", 1},
		{"-0.0e5", "0", 0}, {"1e-400", "2e-400", -1},
		// One side past int64 and the other at its bound: ParseInt's clamped
		// value for the first would make them equal.
		{"9223372036854775808", "9223372036854775807", 1},
		{"9223372036854775807", "9223372036854775808", -1},
		{"-9223372036854775809", "-9223372036854775808", -1},
		{"-9223372036854775808", "-9223372036854775809", 1},
		// Underflows to float64 zero whose first digit is 1 or 9 are not zero.
		{"1e-400", "0", 1}, {"9e-400", "0", 1}, {"0", "9e-400", -1},
		{"-1e-400", "-0", -1}, {"0e-400", "0", 0}, {"8e-400", "9e-400", -1},
	}
	for _, tt := range tests {
		if got := numCompare(tt.a, tt.b); got != tt.want {
			t.Errorf("numCompare(%s, %s) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
	for s, want := range map[string]bool{"1": true, "-0.5e+3": true, "01": false, "1.": false, ".5": false, "": false, "-": false, "1e": false, "Inf": false, "0x10": false} {
		if isJSONNumber(s) != want {
			t.Errorf("isJSONNumber(%q) != %v", s, want)
		}
	}
}

func TestMatchAllocs(t *testing.T) {
	p := mustCompile(t, `subscription { orders(id: "7", where: {status: {in: ["a", "active"]}, total: {gte: 100.5}, customer: {country: {eq: "FR"}}}) { id } }`, nil)
	ev := mustEvent(t, "e", "orders", `{"id":7,"status":"active","total":150,"customer":{"country":"FR"}}`)
	if n := testing.AllocsPerRun(100, func() { p.Match(ev) }); n != 0 {
		t.Fatalf("Match allocates %v times", n)
	}
	if !p.Match(ev) {
		t.Fatal("no match")
	}
}

// A number beyond big.Float's exponent range compares as the infinity (or
// zero) float64 reads it as: a filter operand of 1e3000000000 is above
// every total, and an event's 1e-3000000000 equals 0, whichever side the
// out-of-range number is on.
func TestNumbersBeyondBigFloatRangeCompareAsFloat64(t *testing.T) {
	ev := mustEvent(t, "e", "orders", `{"total":150,"tiny":1e-3000000000}`)
	for args, want := range map[string]bool{
		`(where: {total: {lt: 1e3000000000}})`:  true,
		`(where: {total: {gt: -1e3000000000}})`: true,
		`(where: {total: {gte: 1e3000000000}})`: false,
		`(where: {tiny: {eq: 0}})`:              true,
		`(where: {tiny: {lt: 1}})`:              true,
	} {
		p := mustCompile(t, "subscription { orders"+args+" { total } }", nil)
		if got := p.Match(ev); got != want {
			t.Errorf("%s on %s: Match = %v, want %v", args, ev.Data, got, want)
		}
	}
}

// Each equality and order rule at the edge where it stops holding: lists
// one element short and one over, values of another JSON type, a string
// operand ordering a number, and a number root argument against a string
// field of another value.
func TestMatchEdges(t *testing.T) {
	ev := mustEvent(t, "e", "orders", `{"sid":"7","ids":[1,2],"empty":[],"obj":{"a":1},"total":150,
		"u1":1e-400,"u9":9e-400,"z":0e-400}`)
	for args, want := range map[string]bool{
		`(sid: 7)`:                       true,
		`(sid: 8)`:                       false,
		`(sid: 6)`:                       false,
		`(ids: [1, 2])`:                  true,
		`(ids: [1])`:                     false,
		`(ids: [1, 2, 3])`:               false,
		`(empty: [])`:                    true,
		`(empty: "x")`:                   false,
		`(empty: 1)`:                     false,
		`(obj: {a: 1})`:                  true,
		`(obj: 1)`:                       false,
		`(obj: "a")`:                     false,
		`(obj: [1])`:                     false,
		`(where: {total: {lt: "2"}})`:    false,
		`(where: {total: {gt: "2"}})`:    false,
		`(where: {total: {gte: "150"}})`: false,
		`(where: {total: {lte: "150"}})`: false,
		`(where: {sid: {lte: "7"}})`:     true,
		`(where: {sid: {lt: "7"}})`:      false,
		`(where: {u1: {gt: 0}})`:         true,
		`(where: {u1: {eq: 0}})`:         false,
		`(where: {u9: {gt: 0}})`:         true,
		`(where: {u9: {lte: 0}})`:        false,
		`(where: {u9: {gt: 8e-400}})`:    true,
		`(where: {z: {eq: 0}})`:          true,
		`(where: {z: {lt: 1e-400}})`:     true,
	} {
		p := mustCompile(t, "subscription { orders"+args+" { sid } }", nil)
		if got := p.Match(ev); got != want {
			t.Errorf("%s on %s: Match = %v, want %v", args, ev.Data, got, want)
		}
	}
}

// A plan with a filter matches no missing event.
func TestMatchNilEvent(t *testing.T) {
	if mustCompile(t, "subscription { orders(id: 7) { id } }", nil).Match(nil) {
		t.Fatal("filter matched a nil event")
	}
	if !mustCompile(t, "subscription { orders { id } }", nil).Match(nil) {
		t.Fatal("no filter: a nil event is not matched")
	}
}

// A Go caller's json.Number that is no JSON number (here empty) equals no
// string field, whatever number the string holds.
func TestMatchEmptyNumberArgument(t *testing.T) {
	ev := mustEvent(t, "e", "orders", `{"sid":"7","nsid":"-7"}`)
	for _, f := range []string{"sid", "nsid"} {
		q := "subscription ($v: ID) { orders(" + f + ": $v) { sid } }"
		p := mustCompile(t, q, map[string]any{"v": json.Number("")})
		if p.Match(ev) {
			t.Errorf("%s: an empty json.Number matched", f)
		}
	}
}

// A where eq whose operand is a Go caller's empty json.Number matches no
// field that is not a number: a string, null or missing one.
func TestWhereEqEmptyNumberMatchesNoOtherKind(t *testing.T) {
	ev := mustEvent(t, "e", "orders", `{"s":"","n":null,"o":{},"a":[]}`)
	for _, f := range []string{"s", "n", "o", "a", "missing"} {
		p := mustCompile(t, "subscription ($w: JSON) { orders(where: $w) { s } }",
			map[string]any{"w": map[string]any{f: map[string]any{"eq": json.Number("")}}})
		if p.Match(ev) {
			t.Errorf("%s: eq an empty json.Number matched", f)
		}
	}
}
