package subscriptions

import (
	"slices"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/vektah/gqlparser/v2/ast"
)

// The projection of a plan compiled against a schema: graphql-core's
// CollectFields done at registration for every object type a value may
// have at run time, so that executing an event only looks up the event's
// __typename.

// tField is a merged field of a selection for one object type.
type tField struct {
	key, name string
	keyJSON   []byte
	typename  bool      // the field is __typename
	parent    string    // the object type's name, for messages
	typ       *ast.Type // nil for __typename and unknown fields
	named     *ast.Definition
	leaf      leafKind // how named's values are written
	scalar    bool     // a built-in scalar, not a list: see appendFittingScalar
	enum      enumSet  // named's values when it is an enum
	locs      []posn
	argErr    *execError       // the field error coercing its arguments raises
	subs      map[string]*tSel // by object type, when named is composite
	objSel    *tSel            // subs[named.Name] when named is an object type
	at        atomic.Int32     // where name was last found in the event's top level (see getAt)
}

// leafKind is how the values of a field's named type are written.
type leafKind uint8

const (
	leafComposite leafKind = iota // an object, interface or union: its selection
	leafCustom                    // a custom scalar: the value as it is
	leafEnum
	leafString
	leafID
	leafInt
	leafFloat
	leafBoolean
)

func leafOf(named *ast.Definition) leafKind {
	switch {
	case named == nil:
		return leafCustom
	case named.IsCompositeType():
		return leafComposite
	case named.Kind == ast.Enum:
		return leafEnum
	}
	switch named.Name {
	case "String":
		return leafString
	case "ID":
		return leafID
	case "Int":
		return leafInt
	case "Float":
		return leafFloat
	case "Boolean":
		return leafBoolean
	}
	return leafCustom
}

// enumSet is an enum's value names: a list to scan when short, else a set.
type enumSet struct {
	names []string
	set   map[string]struct{}
}

func newEnumSet(def *ast.Definition) enumSet {
	var e enumSet
	for _, v := range def.EnumValues {
		e.names = append(e.names, v.Name)
	}
	if len(e.names) > 8 {
		e.set = make(map[string]struct{}, len(e.names))
		for _, n := range e.names {
			e.set[n] = struct{}{}
		}
	}
	return e
}

func (e *enumSet) has(name string) bool {
	if e.set != nil {
		_, ok := e.set[name]
		return ok
	}
	for _, n := range e.names {
		if n == name {
			return true
		}
	}
	return false
}

type posn struct{ line, col int }

// tSel is a selection set collected for one object type: its fields, or
// the field error collecting it raises.
type tSel struct {
	fields []*tField
	err    *execError
}

type typer struct {
	c    *compiler
	s    *ast.Schema
	memo map[string]*tSel   // by object type and field nodes
	ids  map[*ast.Field]int // field nodes numbered for memo keys
}

func (t *typer) field(nodes []*ast.Field, parent *ast.Definition) *tField {
	f0 := nodes[0]
	tf := &tField{key: responseKey(f0), name: f0.Name, parent: parent.Name}
	tf.keyJSON = append(appendString(nil, tf.key), ':')
	for _, n := range nodes {
		if n.Position != nil {
			tf.locs = append(tf.locs, posn{n.Position.Line, n.Position.Column})
		}
	}
	if f0.Name == "__typename" {
		tf.typename = true
		return tf
	}
	def := parent.Fields.ForName(f0.Name)
	if def == nil { // validation rejects this; keep a null rather than fail
		return tf
	}
	tf.typ = def.Type
	// graphql-core coerces a field's arguments (of its first node) each
	// time it executes the field; with the variables known, an argument
	// that fails always fails.
	_, tf.argErr = argumentValues(t.s, def, f0, t.c.vars)
	tf.named = t.s.Types[def.Type.Name()]
	tf.leaf = leafOf(tf.named)
	tf.scalar = tf.leaf >= leafString && tf.typ.Elem == nil
	if tf.leaf == leafEnum {
		tf.enum = newEnumSet(tf.named)
	}
	if tf.named != nil && tf.named.IsCompositeType() {
		tf.subs = map[string]*tSel{}
		for _, obj := range possibleObjects(t.s, tf.named) {
			tf.subs[obj.Name] = t.selection(nodes, obj)
		}
		if tf.named.Kind == ast.Object {
			tf.objSel = tf.subs[tf.named.Name]
		}
	}
	return tf
}

// selection collects the sub-selections of nodes for an object of type
// obj, as graphql-core's collect_subfields does (memoized likewise).
func (t *typer) selection(nodes []*ast.Field, obj *ast.Definition) *tSel {
	var mk strings.Builder
	mk.WriteString(obj.Name)
	for _, n := range nodes {
		mk.WriteByte(' ')
		id, ok := t.ids[n]
		if !ok {
			id = len(t.ids)
			t.ids[n] = id
		}
		mk.WriteString(strconv.Itoa(id))
	}
	if s, ok := t.memo[mk.String()]; ok {
		return s
	}
	var keys []string
	groups := map[string][]*ast.Field{}
	visited := map[string]bool{}
	var ee *execError
	for _, n := range nodes {
		if ee == nil {
			ee = t.collect(n.SelectionSet, obj, visited, &keys, groups)
		}
	}
	s := &tSel{err: ee}
	if ee == nil {
		for _, k := range keys {
			s.fields = append(s.fields, t.field(groups[k], obj))
		}
	}
	t.memo[mk.String()] = s
	return s
}

func (t *typer) collect(set ast.SelectionSet, obj *ast.Definition, visited map[string]bool, keys *[]string, groups map[string][]*ast.Field) *execError {
	for _, sel := range set {
		switch sel := sel.(type) {
		case *ast.Field:
			inc, ee, _ := t.c.included(sel.Directives)
			if ee != nil {
				return ee
			}
			if !inc {
				continue
			}
			k := responseKey(sel)
			if _, seen := groups[k]; !seen {
				*keys = append(*keys, k)
			}
			groups[k] = append(groups[k], sel)
		case *ast.InlineFragment:
			inc, ee, _ := t.c.included(sel.Directives)
			if ee != nil {
				return ee
			}
			if !inc || !t.applies(sel.TypeCondition, obj) {
				continue
			}
			if ee := t.collect(sel.SelectionSet, obj, visited, keys, groups); ee != nil {
				return ee
			}
		case *ast.FragmentSpread:
			if visited[sel.Name] {
				continue
			}
			inc, ee, _ := t.c.included(sel.Directives)
			if ee != nil {
				return ee
			}
			if !inc {
				continue
			}
			visited[sel.Name] = true
			fi := t.c.frags[sel.Name]
			if fi == nil || !t.applies(fi.def.TypeCondition, obj) {
				continue
			}
			if ee := t.collect(fi.def.SelectionSet, obj, visited, keys, groups); ee != nil {
				return ee
			}
		}
	}
	return nil
}

// applies is does_fragment_condition_match: the condition names obj or
// an interface or union obj belongs to.
func (t *typer) applies(cond string, obj *ast.Definition) bool {
	if cond == "" || cond == obj.Name {
		return true
	}
	def := t.s.Types[cond]
	if def == nil || !def.IsAbstractType() {
		return false
	}
	return slices.Contains(possibleObjects(t.s, def), obj)
}
