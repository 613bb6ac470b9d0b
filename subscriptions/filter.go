package subscriptions

import (
	"cmp"
	"math"
	"math/big"
	"sort"
	"strconv"
	"strings"

	json "github.com/goccy/go-json"
)

// filterNode is one compiled condition on the event data. Evaluating it
// does not allocate.
type filterNode interface {
	match(obj map[string]any) bool
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
	return p.filter.match(ev.value)
}

type andNode []filterNode

func (n andNode) match(obj map[string]any) bool {
	for _, c := range n {
		if !c.match(obj) {
			return false
		}
	}
	return true
}

type orNode []filterNode

func (n orNode) match(obj map[string]any) bool {
	for _, c := range n {
		if c.match(obj) {
			return true
		}
	}
	return false
}

type notNode struct{ n filterNode }

func (n notNode) match(obj map[string]any) bool { return !n.n.match(obj) }

// argEq is a scalar root argument: equality on the top-level field of the
// same name. Ids are often sent as a string by one side and a number by
// the other, so a string and a number are equal when the string is a JSON
// number numerically equal to the number ("7" == 7, "7.0" == 7).
// A null argument matches a null or missing field.
type argEq struct {
	field string
	want  any
}

func (n argEq) match(obj map[string]any) bool {
	v, ok := obj[n.field]
	if n.want == nil {
		return v == nil
	}
	if !ok {
		return false
	}
	switch w := n.want.(type) {
	case string:
		if x, isNum := v.(json.Number); isNum {
			return isJSONNumber(w) && numCompare(string(x), w) == 0
		}
	case json.Number:
		if x, isStr := v.(string); isStr {
			return isJSONNumber(x) && numCompare(x, string(w)) == 0
		}
	}
	return jsonEqual(v, n.want)
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
}

func (n *leaf) match(obj map[string]any) bool {
	var v any = obj
	for _, p := range n.path {
		m, ok := v.(map[string]any)
		if !ok {
			v = nil
			break
		}
		v = m[p]
	}
	switch n.op {
	case opIsNull:
		return (v == nil) == n.null
	case opEq:
		return jsonEqual(v, n.want)
	case opIn:
		for _, w := range n.list {
			if jsonEqual(v, w) {
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
		return sameKind(v, n.want) && !jsonEqual(v, n.want)
	case opNin:
		for _, w := range n.list {
			if jsonEqual(v, w) {
				return false
			}
		}
		return true
	case opContains:
		switch x := v.(type) {
		case string:
			w, ok := n.want.(string)
			return ok && strings.Contains(x, w)
		case []any:
			for _, e := range x {
				if jsonEqual(e, n.want) {
					return true
				}
			}
		}
		return false
	case opStartsWith:
		x, ok := v.(string)
		return ok && strings.HasPrefix(x, n.want.(string))
	}
	c, ok := order(v, n.want)
	if !ok {
		return false
	}
	switch n.op {
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

func sameKind(a, b any) bool {
	switch a.(type) {
	case string:
		_, ok := b.(string)
		return ok
	case json.Number:
		_, ok := b.(json.Number)
		return ok
	case bool:
		_, ok := b.(bool)
		return ok
	case []any:
		_, ok := b.([]any)
		return ok
	case map[string]any:
		_, ok := b.(map[string]any)
		return ok
	}
	return a == nil && b == nil
}

// order compares two numbers or two strings.
func order(a, b any) (int, bool) {
	switch x := a.(type) {
	case string:
		y, ok := b.(string)
		return strings.Compare(x, y), ok
	case json.Number:
		y, ok := b.(json.Number)
		if !ok || !isJSONNumber(string(x)) || !isJSONNumber(string(y)) {
			return 0, false
		}
		return numCompare(string(x), string(y)), true
	}
	return 0, false
}

// jsonEqual compares decoded JSON values; numbers compare numerically.
func jsonEqual(a, b any) bool {
	switch x := a.(type) {
	case nil:
		return b == nil
	case bool:
		y, ok := b.(bool)
		return ok && x == y
	case string:
		y, ok := b.(string)
		return ok && x == y
	case json.Number:
		y, ok := b.(json.Number)
		if !ok {
			return false
		}
		if x == y {
			return true
		}
		return isJSONNumber(string(x)) && isJSONNumber(string(y)) && numCompare(string(x), string(y)) == 0
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !jsonEqual(x[i], y[i]) {
				return false
			}
		}
		return true
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, xv := range x {
			yv, ok := y[k]
			if !ok || !jsonEqual(xv, yv) {
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
