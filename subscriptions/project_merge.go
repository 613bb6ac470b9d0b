package subscriptions

import (
	"slices"
	"strconv"

	"github.com/valyala/fastjson"
	"github.com/vektah/gqlparser/v2/ast"
)

// The careful projection: for plans where one response key is selected
// under several type conditions that may hold together, or where
// collecting a selection set may raise a field error. It does what
// graphql-core's CollectFields does for each object: the fields of every
// selection that applies to the object's type, merged by response key in
// order of first appearance, the sub-selections of a merged field merged
// in turn. Plans without either keep the single-pass projection of
// project.go.

// merger projects one event; path is the response path of the value
// being written, for error paths.
type merger struct {
	ev     *decodedEvent
	evType string
	path   []pathElem
	errs   []byte      // encoded GraphQL errors, comma-separated
	nerrs  int         // how many
	schema *ast.Schema // for plans shaped by a schema
}

type pathElem struct {
	key   string
	index int // when key == ""
}

func appendMergedPayload(dst []byte, ev *decodedEvent, p *Plan) []byte {
	m := merger{ev: ev, evType: ev.Type, path: []pathElem{{key: p.ResponseKey}}}
	dst = m.object(dst, ev.obj, []*selSet{p.sel})
	dst = append(dst, '}')
	if len(m.errs) > 0 {
		dst = append(dst, `,"errors":[`...)
		dst = append(dst, m.errs...)
		dst = append(dst, ']')
	}
	return append(dst, '}')
}

func (m *merger) value(dst []byte, v jv, sets []*selSet) []byte {
	if v == nil {
		return append(dst, "null"...)
	}
	if o := objectOf(v); o != nil {
		return m.object(dst, o, sets)
	}
	if a, ok := arrayOf(v); ok {
		dst = append(dst, '[')
		for i, e := range a {
			if i > 0 {
				dst = append(dst, ',')
			}
			m.path = append(m.path, pathElem{index: i})
			dst = m.value(dst, norm(e), sets)
			m.path = m.path[:len(m.path)-1]
		}
		return append(dst, ']')
	}
	return appendEventValue(dst, v)
}

// object writes obj projected on the merge of sets, or null when
// collecting them raises a field error (then recorded at m.path).
func (m *merger) object(dst []byte, obj *fastjson.Object, sets []*selSet) []byte {
	var tn string
	if v, _ := field(obj, "__typename"); v != nil {
		tn, _ = strOf(v)
	}
	for _, s := range sets {
		for i := range s.errs {
			if x := &s.errs[i]; x.applies(m.evType, tn) {
				m.addError(x)
				return append(dst, "null"...)
			}
		}
	}
	dst = append(dst, '{')
	var done []string
	for si, s := range sets {
		for i := range s.entries {
			e := &s.entries[i]
			if slices.Contains(done, e.key) || !e.applies(m.evType, tn) {
				continue
			}
			if len(done) > 0 {
				dst = append(dst, ',')
			}
			done = append(done, e.key)
			dst = append(dst, e.keyJSON...)
			switch {
			case e.typename && tn != "":
				dst = appendString(dst, tn)
			case e.typename:
				dst = appendString(dst, m.evType)
			case e.child == nil:
				v, _ := field(obj, e.name)
				dst = appendEventValue(dst, v)
			default:
				v, _ := field(obj, e.name)
				m.path = append(m.path, pathElem{key: e.key})
				dst = m.value(dst, v, m.subSelections(sets, si, i, tn))
				m.path = m.path[:len(m.path)-1]
			}
		}
	}
	return append(dst, '}')
}

// subSelections returns the selections of every entry from sets[si].entries[i]
// on with the same key that applies to an object of type tn.
func (m *merger) subSelections(sets []*selSet, si, i int, tn string) []*selSet {
	key := sets[si].entries[i].key
	var kids []*selSet
	for ; si < len(sets); si, i = si+1, 0 {
		for k := i; k < len(sets[si].entries); k++ {
			if x := &sets[si].entries[k]; x.key == key && x.child != nil && x.applies(m.evType, tn) {
				kids = append(kids, x.child)
			}
		}
	}
	return kids
}

func (m *merger) addError(x *execError) {
	var locs []posn
	if x.line > 0 {
		locs = []posn{{x.line, x.col}}
	}
	m.addErrorAt(x, locs)
}

// addErrorAt records x's message at the current path with locs.
func (m *merger) addErrorAt(x *execError, locs []posn) {
	m.nerrs++
	if len(m.errs) > 0 {
		m.errs = append(m.errs, ',')
	}
	m.errs = append(m.errs, `{"message":`...)
	m.errs = appendString(m.errs, x.msg)
	for i, l := range locs {
		if i == 0 {
			m.errs = append(m.errs, `,"locations":[`...)
		} else {
			m.errs = append(m.errs, ',')
		}
		m.errs = append(m.errs, `{"line":`...)
		m.errs = strconv.AppendInt(m.errs, int64(l.line), 10)
		m.errs = append(m.errs, `,"column":`...)
		m.errs = strconv.AppendInt(m.errs, int64(l.col), 10)
		m.errs = append(m.errs, '}')
	}
	if len(locs) > 0 {
		m.errs = append(m.errs, ']')
	}
	m.errs = append(m.errs, `,"path":[`...)
	for i, p := range m.path {
		if i > 0 {
			m.errs = append(m.errs, ',')
		}
		if p.key != "" {
			m.errs = appendString(m.errs, p.key)
		} else {
			m.errs = strconv.AppendInt(m.errs, int64(p.index), 10)
		}
	}
	m.errs = append(m.errs, "]}"...)
}

// applies reports whether the error is raised for an object of type tn.
func (x *execError) applies(evType, tn string) bool {
	if !condsHold(x.conds, evType, tn) {
		return false
	}
	for _, u := range x.unless {
		if condsHold(u, evType, tn) {
			return false
		}
	}
	return true
}

func condsHold(conds []string, evType, tn string) bool {
	for _, c := range conds {
		if c != evType && c != tn {
			return false
		}
	}
	return true
}

func (x *execError) appendKey(dst []byte) []byte {
	dst = append(dst, "!err"...)
	dst = appendString(dst, x.msg)
	dst = strconv.AppendInt(dst, int64(x.line), 10)
	dst = append(dst, ':')
	dst = strconv.AppendInt(dst, int64(x.col), 10)
	for _, c := range x.conds {
		dst = appendString(dst, c)
	}
	for _, u := range x.unless {
		dst = append(dst, '|')
		for _, c := range u {
			dst = appendString(dst, c)
		}
	}
	return append(dst, ';')
}
