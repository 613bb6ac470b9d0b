package subscriptions

import (
	"cmp"
	"math"
	"math/big"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"

	json "github.com/goccy/go-json"
	"github.com/valyala/fastjson"
)

// filterNode is one compiled condition on the event data. Evaluating it
// does not allocate.
type filterNode interface {
	match(ev *decodedEvent) bool
}

// Match reports whether the event passes the root field's argument
// filters. Tenant and user checks are the executor's job.
func (p *Plan) Match(ev *decodedEvent) bool {
	if p.filter == nil {
		return true
	}
	if ev == nil {
		return false
	}
	return p.filter.match(ev)
}

type andNode []filterNode

func (n andNode) match(ev *decodedEvent) bool {
	for _, c := range n {
		if !c.match(ev) {
			return false
		}
	}
	return true
}

type orNode []filterNode

func (n orNode) match(ev *decodedEvent) bool {
	for _, c := range n {
		if c.match(ev) {
			return true
		}
	}
	return false
}

type notNode struct{ n filterNode }

func (n notNode) match(ev *decodedEvent) bool { return !n.n.match(ev) }

// argEq is a scalar root argument: equality on the top-level field of the
// same name. Ids are often sent as a string by one side and a number by
// the other, so a string and a number are equal when the string is a JSON
// number numerically equal to the number ("7" == 7, "7.0" == 7).
// A null argument matches a null or missing field.
type argEq struct {
	field string
	want  any
}

func (n argEq) match(ev *decodedEvent) bool {
	v, ok := ev.get(n.field)
	if n.want == nil {
		return v == nil
	}
	if !ok {
		return false
	}
	switch w := n.want.(type) {
	case string:
		if x, isNum := numText(v, &ev.num); isNum {
			return isJSONNumber(w) && numCompare(x, w) == 0
		}
	case json.Number:
		if x, isStr := strOf(v); isStr {
			return isJSONNumber(x) && numCompare(x, string(w)) == 0
		}
	}
	return ev.equal(v, n.want)
}

type op uint8

const (
	opEq op = iota
	opNeq
	opGt
	opGte
	opLt
	opLte
	opIn
	opNin
	opContains
	opStartsWith
	opIsNull
)

var operators = map[string]op{
	"eq": opEq, "neq": opNeq, "gt": opGt, "gte": opGte, "lt": opLt, "lte": opLte,
	"in": opIn, "nin": opNin, "contains": opContains, "startswith": opStartsWith, "isnull": opIsNull,
}

const validOperators = "eq, neq, gt, gte, lt, lte, in, nin, contains, startswith, isnull"

// leaf is one operator applied to the value at path. Missing values behave
// like SQL NULL: only eq null, isnull and in [null] can match them.
type leaf struct {
	path []string
	op   op
	want any   // eq, neq, gt, gte, lt, lte, contains, startswith
	list []any // in, nin
	null bool  // isnull
	// num is want parsed when it is a number and op is eq or an order:
	// compared with the event's parsed number, without text.
	num   number
	numOp bool
	// at is where path[0] was found in the last event (see getAt).
	at atomic.Int32
}

func (n *leaf) match(ev *decodedEvent) bool {
	var v jv
	for i, p := range n.path {
		if i == 0 {
			v = ev.getAt(p, &n.at)
		} else {
			v, _ = field(objectOf(v), p)
		}
		if v == nil {
			break
		}
	}
	if n.numOp {
		return n.matchNumber(ev, v)
	}
	switch n.op {
	case opIsNull:
		return (v == nil) == n.null
	case opEq:
		return ev.equal(v, n.want)
	case opIn:
		for _, w := range n.list {
			if ev.equal(v, w) {
				return true
			}
		}
		return false
	}
	if v == nil {
		return false
	}
	switch n.op {
	case opNeq:
		return sameKindValue(v, n.want) && !ev.equal(v, n.want)
	case opNin:
		for _, w := range n.list {
			if ev.equal(v, w) {
				return false
			}
		}
		return true
	case opContains:
		if x, ok := strOf(v); ok {
			w, ok := n.want.(string)
			return ok && strings.Contains(x, w)
		}
		if a, ok := arrayOf(v); ok {
			for _, e := range a {
				if ev.equal(norm(e), n.want) {
					return true
				}
			}
		}
		return false
	case opStartsWith:
		x, ok := strOf(v)
		return ok && strings.HasPrefix(x, n.want.(string))
	}
	c, ok := order(v, n.want)
	return ok && n.op.holds(c)
}

// holds reports whether an order operator holds for a comparison's
// result c (negative, zero or positive).
func (o op) holds(c int) bool {
	switch o {
	case opGt:
		return c > 0
	case opGte:
		return c >= 0
	case opLt:
		return c < 0
	default:
		return c <= 0
	}
}

// matchNumber is match for eq and the order operators with a number: as
// equal and order decide, on parsed numbers.
func (n *leaf) matchNumber(ev *decodedEvent, v jv) bool {
	x, ok := ev.number(v)
	if !ok {
		return false
	}
	if n.op == opEq {
		return numbersEqual(x, n.num)
	}
	if !x.valid || !n.num.valid {
		return false
	}
	return n.op.holds(compareNumbers(x, n.num))
}

// compileFilter compiles the root field's resolved arguments.
func compileFilter(args map[string]any) (filterNode, error) {
	var nodes andNode
	for _, name := range sortedKeys(args) {
		v := args[name]
		if name != "where" {
			nodes = append(nodes, argEq{field: name, want: v})
			continue
		}
		if v == nil {
			continue // where: null filters nothing
		}
		w, ok := v.(map[string]any)
		if !ok {
			return nil, valueErrorf("where must be an object, got %s", jsonKind(v))
		}
		n, err := compileWhere(w, nil)
		if err != nil {
			return nil, err
		}
		nodes = append(nodes, n)
	}
	if len(nodes) == 0 {
		return nil, nil
	}
	if len(nodes) == 1 {
		return nodes[0], nil
	}
	return nodes, nil
}

func pathName(path []string, key string) string {
	return strings.Join(append(path[:len(path):len(path)], key), ".")
}

// compileWhere compiles a where object found at path.
func compileWhere(w map[string]any, path []string) (filterNode, error) {
	var nodes andNode
	for _, k := range sortedKeys(w) {
		v := w[k]
		switch k {
		case "AND", "OR":
			list, ok := v.([]any)
			if !ok {
				list = []any{v} // GraphQL coerces a single value to a list
			}
			var sub []filterNode
			for _, e := range list {
				m, ok := e.(map[string]any)
				if !ok {
					return nil, valueErrorf("where %s expects a list of objects, got an element of type %s", pathName(path, k), jsonKind(e))
				}
				n, err := compileWhere(m, path)
				if err != nil {
					return nil, err
				}
				sub = append(sub, n)
			}
			if k == "AND" {
				nodes = append(nodes, andNode(sub))
			} else {
				nodes = append(nodes, orNode(sub))
			}
		case "NOT":
			m, ok := v.(map[string]any)
			if !ok {
				return nil, valueErrorf("where %s expects an object, got %s", pathName(path, k), jsonKind(v))
			}
			n, err := compileWhere(m, path)
			if err != nil {
				return nil, err
			}
			nodes = append(nodes, notNode{n})
		default:
			m, ok := v.(map[string]any)
			if !ok {
				return nil, valueErrorf("where %s expects an object of operators (%s) or of fields, got %s", pathName(path, k), validOperators, jsonKind(v))
			}
			sub := append(path[:len(path):len(path)], k)
			var n filterNode
			var err error
			if isLeaf(m) {
				n, err = compileLeaf(m, sub)
			} else {
				n, err = compileWhere(m, sub)
			}
			if err != nil {
				return nil, err
			}
			nodes = append(nodes, n)
		}
	}
	if len(nodes) == 1 {
		return nodes[0], nil
	}
	return nodes, nil
}

// isLeaf tells an operator object from a nested path: it has an operator,
// or a value no nested path could have.
func isLeaf(m map[string]any) bool {
	for k, v := range m {
		if _, ok := operators[k]; ok {
			return true
		}
		if k == "AND" || k == "OR" || k == "NOT" {
			continue
		}
		if _, ok := v.(map[string]any); !ok {
			return true
		}
	}
	return false
}

func compileLeaf(m map[string]any, path []string) (filterNode, error) {
	var nodes andNode
	name := strings.Join(path, ".")
	for _, k := range sortedKeys(m) {
		o, ok := operators[k]
		if !ok {
			return nil, valueErrorf("unknown operator %q in where at %s; valid operators are %s", k, name, validOperators)
		}
		v := m[k]
		n := &leaf{path: path, op: o, want: v}
		if w, ok := v.(json.Number); ok && (o == opEq || o == opGt || o == opGte || o == opLt || o == opLte) {
			n.num, n.numOp = parseNumber(string(w)), true
		}
		switch o {
		case opGt, opGte, opLt, opLte:
			switch v.(type) {
			case string, json.Number:
			default:
				return nil, valueErrorf("operator %s at %s expects a number or a string, got %s", k, name, jsonKind(v))
			}
		case opIn, opNin:
			list, ok := v.([]any)
			if !ok {
				return nil, valueErrorf("operator %s at %s expects a list, got %s", k, name, jsonKind(v))
			}
			n.list = list
		case opContains:
			if v == nil {
				return nil, valueErrorf("operator contains at %s expects a value, got null", name)
			}
		case opStartsWith:
			if _, ok := v.(string); !ok {
				return nil, valueErrorf("operator startswith at %s expects a string, got %s", name, jsonKind(v))
			}
		case opIsNull:
			b, ok := v.(bool)
			if !ok {
				return nil, valueErrorf("operator isnull at %s expects a boolean, got %s", name, jsonKind(v))
			}
			n.null = b
		case opNeq:
			if v == nil { // neq null: present and not null
				n.op, n.null = opIsNull, false
			}
		}
		nodes = append(nodes, n)
	}
	if len(nodes) == 1 {
		return nodes[0], nil
	}
	return nodes, nil
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// sameKindValue reports whether the event value a (not nil) and the
// decoded value b have the same JSON type.
func sameKindValue(a jv, b any) bool {
	switch a.Type() {
	case fastjson.TypeString:
		_, ok := b.(string)
		return ok
	case fastjson.TypeNumber:
		_, ok := b.(json.Number)
		return ok
	case fastjson.TypeTrue, fastjson.TypeFalse:
		_, ok := b.(bool)
		return ok
	case fastjson.TypeArray:
		_, ok := b.([]any)
		return ok
	case fastjson.TypeObject:
		_, ok := b.(map[string]any)
		return ok
	}
	return false
}

// order compares an event value and a decoded string (numbers are
// compared by matchNumber): ok is false unless both are strings.
func order(a jv, b any) (c int, ok bool) {
	x, okA := strOf(a)
	y, okB := b.(string)
	return strings.Compare(x, y), okA && okB
}

// equal compares an event value (nil for null) with a decoded JSON value
// as jsonEqual compares two decoded values.
func (ev *decodedEvent) equal(a jv, b any) bool {
	if a == nil {
		return b == nil
	}
	switch a.Type() {
	case fastjson.TypeTrue, fastjson.TypeFalse:
		y, ok := b.(bool)
		return ok && y == (a.Type() == fastjson.TypeTrue)
	case fastjson.TypeString:
		x, _ := strOf(a)
		y, ok := b.(string)
		return ok && x == y
	case fastjson.TypeNumber:
		y, ok := b.(json.Number)
		if !ok {
			return false
		}
		x, _ := numText(a, &ev.num)
		if x == string(y) {
			return true
		}
		return isJSONNumber(x) && isJSONNumber(string(y)) && numCompare(x, string(y)) == 0
	case fastjson.TypeArray:
		x, _ := arrayOf(a)
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !ev.equal(norm(x[i]), y[i]) {
				return false
			}
		}
		return true
	case fastjson.TypeObject:
		y, ok := b.(map[string]any)
		if !ok {
			return false
		}
		keys, vals := uniqueFields(objectOf(a))
		if len(keys) != len(y) {
			return false
		}
		for i, k := range keys {
			yv, ok := y[k]
			if !ok || !ev.equal(vals[i], yv) {
				return false
			}
		}
		return true
	}
	return false
}

// numCompare compares two valid JSON numbers. Integers that fit int64
// compare exactly; so do other values that float64 holds exactly enough,
// and anything else goes through big.Float.
func numCompare(a, b string) int {
	if isIntText(a) && isIntText(b) {
		ai, err1 := strconv.ParseInt(a, 10, 64)
		bi, err2 := strconv.ParseInt(b, 10, 64)
		if err1 == nil && err2 == nil {
			return cmp.Compare(ai, bi)
		}
	}
	af, err1 := strconv.ParseFloat(a, 64)
	bf, err2 := strconv.ParseFloat(b, 64)
	const exact = 1 << 53
	if err1 == nil && err2 == nil && math.Abs(af) < exact && math.Abs(bf) < exact &&
		!(isIntText(a) && isIntText(b)) && (af != 0 || isZeroText(a)) && (bf != 0 || isZeroText(b)) {
		return cmp.Compare(af, bf)
	}
	x, _, e1 := big.ParseFloat(a, 10, 1024, big.ToNearestEven)
	y, _, e2 := big.ParseFloat(b, 10, 1024, big.ToNearestEven)
	if e1 != nil || e2 != nil {
		return cmp.Compare(af, bf)
	}
	return x.Cmp(y)
}

// isZeroText reports whether a JSON number's digits are all zero, to tell
// zero from a float64 underflow.
func isZeroText(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == 'e' || c == 'E':
			return true
		case c >= '1' && c <= '9':
			return false
		}
	}
	return true
}

func isIntText(s string) bool {
	if s != "" && s[0] == '-' {
		s = s[1:]
	}
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// isJSONNumber reports whether s is a number in JSON syntax.
func isJSONNumber(s string) bool {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	digits := func() int {
		n := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
			n++
		}
		return n
	}
	if i < len(s) && s[i] == '0' {
		i++
	} else if digits() == 0 {
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if digits() == 0 {
			return false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	return i == len(s)
}
