package subscriptions

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"

	json "github.com/goccy/go-json"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"github.com/vektah/gqlparser/v2/parser"
)

// Plan is a compiled subscription document with its variables applied.
// It is immutable and safe for concurrent use.
type Plan struct {
	// RootField is the name of the single root field; events match it when
	// RootField equals the event's Channel or Type.
	RootField string
	// ResponseKey is the root field's alias if any, else RootField.
	ResponseKey string
	// Key identifies the plan: plans with equal keys give identical Match
	// and AppendPayload results for every event.
	Key string

	raw    bool       // no selection set: publish the data as is
	sel    *selSet    // projection of the event data when !raw
	schema *Schema    // when compiled against one:
	typed  *tField    // the root field shaped by the schema
	filter filterNode // nil matches every event
	prefix []byte     // {"data":{"<ResponseKey>":
}

// Compile parses and checks a subscription document and applies variables.
// lim must have its defaults applied; variables may be nil.
func Compile(query, operationName string, variables map[string]any, lim Limits) (*Plan, error) {
	return CompileWithSchema(query, operationName, variables, lim, nil)
}

// CompileWithSchema is Compile against a schema (none when nil): the
// document is validated by every rule of the specification, variables
// are coerced by their types and results shaped by the schema.
func CompileWithSchema(query, operationName string, variables map[string]any, lim Limits, schema *Schema) (*Plan, error) {
	lim = lim.withDefaults()
	if len(query) > lim.MaxQueryBytes {
		return nil, valueErrorf("query is %d bytes, over the max_query_bytes limit of %d", len(query), lim.MaxQueryBytes)
	}
	doc, err := parser.ParseQuery(&ast.Source{Input: query})
	if err != nil {
		return nil, syntaxError(err)
	}
	if err := describedDefinition(query, doc); err != nil {
		return nil, err
	}
	if schema != nil {
		if err := schema.validate(doc); err != nil {
			return nil, err
		}
	}
	op, err := pickOperation(doc, operationName)
	if err != nil {
		return nil, err
	}
	c := &compiler{
		lim:    lim,
		op:     op,
		frags:  make(map[string]*fragInfo, len(doc.Fragments)),
		schema: schema,
		query:  query,
	}
	for _, f := range doc.Fragments {
		if _, dup := c.frags[f.Name]; dup {
			return nil, valueErrorf("there can be only one fragment named %q", f.Name)
		}
		c.frags[f.Name] = &fragInfo{def: f}
	}
	if schema == nil {
		err = c.resolveVariables(variables)
	} else {
		err = c.coerceVariables(variables)
	}
	if err != nil {
		return nil, err
	}
	// Measure before expanding so that fragment fan-out cannot blow up.
	fields, depth, err := c.measure(op.SelectionSet)
	if err != nil {
		return nil, err
	}
	if fields > lim.MaxFields {
		return nil, valueErrorf("query selects more than %d fields, over the max_fields limit of %d", lim.MaxFields, lim.MaxFields)
	}
	if depth > lim.MaxDepth {
		return nil, valueErrorf("query nests more than %d levels deep, over the max_depth limit of %d", lim.MaxDepth, lim.MaxDepth)
	}
	if schema == nil {
		if err := validateDocument(doc); err != nil {
			return nil, err
		}
	}
	return c.plan()
}

func syntaxError(err error) error {
	var ge *gqlerror.Error
	if errors.As(err, &ge) && len(ge.Locations) > 0 {
		l := ge.Locations[0]
		return valueErrorf("GraphQL syntax error at line %d, column %d: %s", l.Line, l.Column, ge.Message)
	}
	return valueErrorf("GraphQL syntax error: %v", err)
}

func pickOperation(doc *ast.QueryDocument, name string) (*ast.OperationDefinition, error) {
	var op *ast.OperationDefinition
	switch {
	case len(doc.Operations) == 0:
		return nil, valueErrorf("document contains no subscription operation")
	case name != "":
		for _, o := range doc.Operations {
			if o.Name == name {
				if op != nil {
					return nil, valueErrorf("there can be only one operation named %q", name)
				}
				op = o
			}
		}
		if op == nil {
			return nil, valueErrorf("Unknown operation named %q", name)
		}
	case len(doc.Operations) > 1:
		return nil, valueErrorf("must provide operation name if query contains multiple operations")
	default:
		op = doc.Operations[0]
	}
	if op.Operation != ast.Subscription {
		return nil, valueErrorf("only subscription operations can be registered, got a %s operation", op.Operation)
	}
	return op, nil
}

type fragInfo struct {
	def           *ast.FragmentDefinition
	state         int8 // 0 unvisited, 1 being measured, 2 measured
	fields, depth int
}

type compiler struct {
	lim      Limits
	op       *ast.OperationDefinition
	frags    map[string]*fragInfo
	declared map[string]bool
	vars     map[string]any // absent key: variable not provided and no default
	stack    []string       // fragments being measured, for cycle messages
	schema   *Schema        // nil without a schema
	query    string
}

func (c *compiler) coerceVariables(given map[string]any) error {
	c.declared = make(map[string]bool, len(c.op.VariableDefinitions))
	for _, d := range c.op.VariableDefinitions {
		c.declared[d.Variable] = true
	}
	vars, err := c.schema.coerceVariables(c, given)
	c.vars = vars
	return err
}

func (c *compiler) resolveVariables(given map[string]any) error {
	c.declared = make(map[string]bool, len(c.op.VariableDefinitions))
	c.vars = make(map[string]any, len(c.op.VariableDefinitions))
	for _, d := range c.op.VariableDefinitions {
		c.declared[d.Variable] = true
	}
	for _, d := range c.op.VariableDefinitions {
		v, ok := given[d.Variable]
		if ok {
			nv, err := normalizeJSON(v, 0)
			if err != nil {
				return typeErrorf("variable \"$%s\": %v", d.Variable, err)
			}
			v = nv
		} else if d.DefaultValue != nil {
			dv, present, err := c.value(d.DefaultValue)
			if err != nil {
				return err
			}
			v, ok = dv, present
		}
		if d.Type != nil && d.Type.NonNull && (!ok || v == nil) {
			return valueErrorf("variable \"$%s\" of required type %q was not provided", d.Variable, d.Type.String())
		}
		if ok {
			c.vars[d.Variable] = v
		}
	}
	return nil
}

// normalizeJSON copies a decoded JSON value, turning Go numbers into
// json.Number so that later comparisons and keys see one representation.
func normalizeJSON(v any, depth int) (any, error) {
	if depth > 1000 {
		return nil, errors.New("value nests too deeply")
	}
	switch x := v.(type) {
	case nil, bool, string, json.Number:
		return x, nil
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil, errors.New("number is not finite")
		}
		return json.Number(strconv.FormatFloat(x, 'g', -1, 64)), nil
	case float32:
		return normalizeJSON(float64(x), depth)
	case int:
		return json.Number(strconv.Itoa(x)), nil
	case int64:
		return json.Number(strconv.FormatInt(x, 10)), nil
	case int32:
		return json.Number(strconv.FormatInt(int64(x), 10)), nil
	case uint64:
		return json.Number(strconv.FormatUint(x, 10)), nil
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			n, err := normalizeJSON(e, depth+1)
			if err != nil {
				return nil, err
			}
			out[i] = n
		}
		return out, nil
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			n, err := normalizeJSON(e, depth+1)
			if err != nil {
				return nil, err
			}
			out[k] = n
		}
		return out, nil
	default:
		return nil, errors.New("unsupported value of type " + strconv.Quote(jsonKind(v)))
	}
}

// value resolves a literal or variable. present is false for a variable
// that was neither provided nor defaulted: the argument is then absent.
func (c *compiler) value(v *ast.Value) (val any, present bool, err error) {
	if v == nil {
		return nil, false, nil
	}
	switch v.Kind {
	case ast.Variable:
		if !c.declared[v.Raw] {
			return nil, false, c.undeclared(v.Raw)
		}
		val, present = c.vars[v.Raw]
		return val, present, nil
	case ast.IntValue, ast.FloatValue:
		return json.Number(v.Raw), true, nil
	case ast.StringValue, ast.BlockValue, ast.EnumValue:
		return v.Raw, true, nil
	case ast.BooleanValue:
		return v.Raw == "true", true, nil
	case ast.ListValue:
		out := make([]any, 0, len(v.Children))
		for _, ch := range v.Children {
			x, _, err := c.value(ch.Value) // absent in a list is null
			if err != nil {
				return nil, false, err
			}
			out = append(out, x)
		}
		return out, true, nil
	case ast.ObjectValue:
		out := make(map[string]any, len(v.Children))
		for _, ch := range v.Children {
			x, ok, err := c.value(ch.Value)
			if err != nil {
				return nil, false, err
			}
			if ok {
				out[ch.Name] = x
			}
		}
		return out, true, nil
	default: // NullValue
		return nil, true, nil
	}
}

func (c *compiler) undeclared(name string) error {
	if c.op.Name != "" {
		return valueErrorf("variable \"$%s\" is not defined by operation %q", name, c.op.Name)
	}
	return valueErrorf("variable \"$%s\" is not defined", name)
}

// included applies @skip, then @include, as graphql-core does. A variable
// given as null for if: is no error here but an execError, a field error
// at execution (registration only refuses it at the operation's root).
func (c *compiler) included(dirs ast.DirectiveList) (bool, *execError, error) {
	for _, name := range [...]string{"skip", "include"} {
		d := dirs.ForName(name)
		if d == nil {
			continue
		}
		var arg *ast.Value
		if a := d.Arguments.ForName("if"); a != nil {
			arg = a.Value
		}
		v, _, err := c.value(arg)
		if err != nil {
			return false, nil, err
		}
		if v == nil && arg != nil && arg.Kind == ast.Variable {
			if _, given := c.vars[arg.Raw]; given {
				return false, nullIfError(arg), nil
			}
			// Neither given nor defaulted: the document breaks
			// VariablesInAllowedPosition, which validation reports.
			continue
		}
		b, ok := v.(bool)
		if !ok {
			return false, nil, valueErrorf("@%s(if:) must be a Boolean, got %s", d.Name, jsonKind(v))
		}
		if b == (name == "skip") {
			return false, nil, nil
		}
	}
	return true, nil, nil
}

// nullIfError is graphql-core's error for an if: variable given as null.
func nullIfError(arg *ast.Value) *execError {
	e := &execError{msg: "Argument 'if' of non-null type 'Boolean!' must not be null."}
	if arg.Position != nil {
		e.line, e.col = arg.Position.Line, arg.Position.Column
	}
	return e
}

// checkArgs resolves every argument so that undeclared variables are
// reported even where arguments are otherwise ignored.
func (c *compiler) checkArgs(args ast.ArgumentList) error {
	for _, a := range args {
		if _, _, err := c.value(a.Value); err != nil {
			return err
		}
	}
	return nil
}

// includedOrErr is included for measuring: a selection that may raise a
// field error counts as included.
func (c *compiler) includedOrErr(dirs ast.DirectiveList) (bool, error) {
	inc, ee, err := c.included(dirs)
	return inc || ee != nil, err
}

func (c *compiler) sat(n, limit int) int { return min(n, limit+1) }

// measure validates set (fragments, variables, directives) and returns the
// number of included fields and their depth, saturated just over the limits.
// Each fragment is measured once, so this is linear in the document size.
func (c *compiler) measure(set ast.SelectionSet) (fields, depth int, err error) {
	for _, s := range set {
		var f, d int
		var inc bool
		switch s := s.(type) {
		case *ast.Field:
			if err = c.checkArgs(s.Arguments); err != nil {
				return 0, 0, err
			}
			if inc, err = c.includedOrErr(s.Directives); err != nil {
				return 0, 0, err
			}
			if f, d, err = c.measure(s.SelectionSet); err != nil {
				return 0, 0, err
			}
			f, d = f+1, d+1
		case *ast.InlineFragment:
			if inc, err = c.includedOrErr(s.Directives); err != nil {
				return 0, 0, err
			}
			if f, d, err = c.measure(s.SelectionSet); err != nil {
				return 0, 0, err
			}
		case *ast.FragmentSpread:
			if inc, err = c.includedOrErr(s.Directives); err != nil {
				return 0, 0, err
			}
			fi, err := c.fragment(s.Name)
			if err != nil {
				return 0, 0, err
			}
			f, d = fi.fields, fi.depth
		}
		if inc {
			fields = c.sat(fields+f, c.lim.MaxFields)
			depth = c.sat(max(depth, d), c.lim.MaxDepth)
		}
	}
	return fields, depth, nil
}

func (c *compiler) fragment(name string) (*fragInfo, error) {
	fi := c.frags[name]
	switch {
	case fi == nil:
		return nil, valueErrorf("Unknown fragment %q", name)
	case fi.state == 1:
		i := slices.Index(c.stack, name)
		cycle := strings.Join(append(c.stack[i:], name), " -> ")
		return nil, valueErrorf("fragment %q spreads itself (cycle: %s)", name, cycle)
	case fi.state == 2:
		return fi, nil
	}
	fi.state = 1
	c.stack = append(c.stack, name)
	f, d, err := c.measure(fi.def.SelectionSet)
	if err != nil {
		return nil, err
	}
	c.stack = c.stack[:len(c.stack)-1]
	fi.fields, fi.depth, fi.state = f, d, 2
	return fi, nil
}

// occurrence is one included field with the type conditions guarding it.
type occurrence struct {
	field *ast.Field
	conds string // sorted, comma-joined type conditions
}

// execError is a field error raised when a selection set is collected for
// an object its conditions apply to: the object becomes null and the error
// is reported with the field's path.
type execError struct {
	msg       string
	line, col int
	conds     []string   // type conditions that must all hold
	unless    [][]string // it does not apply when any of these all hold
}

// collection is what collect gathers from the selection sets of one
// response key: fields in order, field errors in order, and the fragment
// spreads reached, which graphql-core expands once per collection.
type collection struct {
	occs   []occurrence
	errs   []execError
	visits []visit
}

type visit struct {
	name  string
	conds []string
}

// collect flattens fragments into the included fields of set, in order.
// Type conditions are ignored at the operation root, which can only be
// the subscription type. unless lists the conditions under which this set
// was already collected (a fragment spread twice): errors do not repeat.
func (c *compiler) collect(set ast.SelectionSet, conds []string, unless [][]string, root bool, out *collection) error {
	for _, s := range set {
		var dirs ast.DirectiveList
		var prior [][]string
		switch s := s.(type) {
		case *ast.Field:
			dirs = s.Directives
		case *ast.InlineFragment:
			dirs = s.Directives
		case *ast.FragmentSpread:
			dirs = s.Directives
			var seen bool
			if prior, seen = out.visited(s.Name, conds); seen {
				continue
			}
		}
		inc, ee, err := c.included(dirs)
		if err != nil {
			return err
		}
		un := append(slices.Clip(unless), prior...)
		if ee != nil {
			if root {
				return valueErrorf("GraphQL error at line %d, column %d: %s", ee.line, ee.col, ee.msg)
			}
			ee.conds, ee.unless = slices.Clone(conds), un
			out.errs = append(out.errs, *ee)
		}
		if !inc {
			continue
		}
		switch s := s.(type) {
		case *ast.Field:
			out.occs = append(out.occs, occurrence{field: s, conds: strings.Join(conds, ",")})
		case *ast.InlineFragment:
			err = c.collect(s.SelectionSet, addCond(conds, s.TypeCondition, root), unless, root, out)
		case *ast.FragmentSpread:
			out.visits = append(out.visits, visit{name: s.Name, conds: conds})
			fi := c.frags[s.Name] // measure checked it exists
			if fi.fields > 0 {
				err = c.collect(fi.def.SelectionSet, addCond(conds, fi.def.TypeCondition, root), un, root, out)
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// visited returns the conditions of the earlier visits of fragment name;
// seen is true when one of them holds whenever conds hold, so that this
// spread is never expanded.
func (out *collection) visited(name string, conds []string) (prior [][]string, seen bool) {
	for _, v := range out.visits {
		if v.name != name {
			continue
		}
		if subset(v.conds, conds) {
			return nil, true
		}
		prior = append(prior, v.conds)
	}
	return prior, false
}

func subset(a, b []string) bool {
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}

func addCond(conds []string, cond string, root bool) []string {
	if root || cond == "" || slices.Contains(conds, cond) {
		return conds
	}
	out := append(slices.Clip(conds), cond)
	sort.Strings(out)
	return out
}

func responseKey(f *ast.Field) string {
	if f.Alias != "" {
		return f.Alias
	}
	return f.Name
}

// group is consecutive occurrences of a response key under the same type
// conditions.
type group struct {
	key, conds string
	fields     []*ast.Field
}

// groupFields merges consecutive occurrences of a response key under the
// same conditions, keeping the order of first appearance, and rejects one
// key naming two fields.
func groupFields(occs []occurrence) ([]group, error) {
	var groups []group
	names := map[string]string{}
	for _, o := range occs {
		k := responseKey(o.field)
		if n, ok := names[k]; ok && n != o.field.Name {
			return nil, valueErrorf("fields %q conflict because %s and %s are different fields; use different aliases", k, n, o.field.Name)
		}
		names[k] = o.field.Name
		// Merge into the key's last group only: a group of other conditions
		// in between keeps its place in the merged sub-selections.
		i := -1
		for j := len(groups) - 1; j >= 0 && i < 0; j-- {
			if groups[j].key == k {
				i = j
			}
		}
		if i >= 0 && groups[i].conds != o.conds {
			i = -1
		}
		if i < 0 {
			groups = append(groups, group{key: k, conds: o.conds})
			i = len(groups) - 1
		}
		groups[i].fields = append(groups[i].fields, o.field)
	}
	return groups, nil
}

func (c *compiler) plan() (*Plan, error) {
	var top collection
	if err := c.collect(c.op.SelectionSet, nil, nil, true, &top); err != nil {
		return nil, err
	}
	groups, err := groupFields(top.occs)
	if err != nil {
		return nil, err
	}
	if len(groups) != 1 {
		keys := make([]string, len(groups))
		for i, g := range groups {
			keys[i] = g.key
		}
		return nil, valueErrorf("a subscription must select exactly one root field, got %d (%s)", len(groups), strings.Join(keys, ", "))
	}
	g := groups[0]
	root := g.fields[0]
	if strings.HasPrefix(root.Name, "__") {
		return nil, valueErrorf("the subscription root field cannot be the introspection field %s", root.Name)
	}
	var args map[string]any
	if c.schema != nil {
		args, err = c.schemaRootArgs(root)
	} else {
		args, err = c.rootArgs(g.fields)
	}
	if err != nil {
		return nil, err
	}
	filter, err := compileFilter(args)
	if err != nil {
		return nil, err
	}
	p := &Plan{RootField: root.Name, ResponseKey: g.key, filter: filter}
	p.prefix = append([]byte(`{"data":{`), appendString(nil, p.ResponseKey)...)
	p.prefix = append(p.prefix, ':')

	var kb []byte
	kb = append(kb, "v1 "...)
	kb = appendString(kb, p.RootField)
	kb = appendString(kb, p.ResponseKey)
	kb = appendCanonical(kb, args)
	if c.schema != nil {
		t := &typer{c: c, s: c.schema.s, memo: map[string]*tSel{}, ids: map[*ast.Field]int{}}
		p.schema, p.typed = c.schema, t.field(g.fields, c.schema.s.Subscription)
		// The document and its coerced variables determine the result.
		kb = strconv.AppendUint(append(kb, " schema "...), c.schema.id, 10)
		kb = appendString(kb, c.query)
		kb = appendString(kb, c.op.Name)
		kb = appendCanonical(kb, c.vars)
	} else {
		sel, err := c.selection(g.fields)
		if err != nil {
			return nil, err
		}
		p.raw, p.sel = sel == nil, sel
		kb = sel.appendKey(kb)
	}
	sum := sha256.Sum256(kb)
	p.Key = hex.EncodeToString(sum[:])
	return p, nil
}

// schemaRootArgs is the root field's arguments coerced by the schema, as
// graphql-core's subscribe() does before it calls the field's source: an
// argument it cannot coerce refuses the document.
func (c *compiler) schemaRootArgs(root *ast.Field) (map[string]any, error) {
	def := c.schema.s.Subscription.Fields.ForName(root.Name)
	if def == nil { // validation rejects this
		return nil, valueErrorf("unknown subscription field %q", root.Name)
	}
	args, ee := argumentValues(c.schema.s, def, root, c.vars)
	if ee != nil {
		return nil, requestError([]varError{{msg: ee.msg, line: ee.line, col: ee.col}})
	}
	return args, nil
}

// rootArgs resolves the root field's arguments, which every occurrence of
// the root field must spell the same way.
func (c *compiler) rootArgs(fields []*ast.Field) (map[string]any, error) {
	var first []byte
	var args map[string]any
	for i, f := range fields {
		m := make(map[string]any, len(f.Arguments))
		for _, a := range f.Arguments {
			v, ok, err := c.value(a.Value)
			if err != nil {
				return nil, err
			}
			if ok {
				m[a.Name] = v
			}
		}
		canon := appendCanonical(nil, m)
		if i == 0 {
			first, args = canon, m
		} else if string(canon) != string(first) {
			return nil, valueErrorf("field %q is selected with different arguments", f.Name)
		}
	}
	return args, nil
}

// selection compiles the merged selection sets of fields; nil when none
// of them has one.
func (c *compiler) selection(fields []*ast.Field) (*selSet, error) {
	var col collection
	has := false
	for _, f := range fields {
		if f.SelectionSet == nil {
			continue
		}
		has = true
		if err := c.collect(f.SelectionSet, nil, nil, false, &col); err != nil {
			return nil, err
		}
	}
	if !has {
		return nil, nil
	}
	groups, err := groupFields(col.occs)
	if err != nil {
		return nil, err
	}
	s := &selSet{entries: make([]entry, len(groups)), errs: col.errs}
	s.careful = len(s.errs) > 0
	for i, g := range groups {
		e := &s.entries[i]
		e.key, e.name = g.key, g.fields[0].Name
		e.keyJSON = append(appendString(nil, g.key), ':')
		e.typename = e.name == "__typename"
		if g.conds != "" {
			e.conds = strings.Split(g.conds, ",")
		}
		for j := range i {
			if groups[j].key == g.key {
				e.dups = append(e.dups, j)
			}
		}
		s.needTypename = s.needTypename || e.typename || len(e.conds) > 0 || len(s.errs) > 0
		if !e.typename {
			if e.child, err = c.selection(g.fields); err != nil {
				return nil, err
			}
		}
		s.careful = s.careful || e.child != nil && e.child.careful
		for _, j := range e.dups {
			// Two object fields of one key that may both apply: their
			// selections merge at execution.
			s.careful = s.careful || e.child != nil && s.entries[j].child != nil
		}
	}
	return s, nil
}
