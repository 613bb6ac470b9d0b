package subscriptions

import (
	"cmp"
	"slices"
	"strconv"
	"strings"

	"github.com/valyala/fastjson"
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
	errs   []fieldErr // the payload's GraphQL errors
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
		dst = appendErrors(dst, m.errs)
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
	m.errs = append(m.errs, fieldErr{msg: x.msg, locs: x.locs(), path: slices.Clone(m.path)})
}

// locs is where the error is raised in the document.
func (x *execError) locs() []posn {
	if x.line > 0 {
		return []posn{{x.line, x.col}}
	}
	return nil
}

// fieldErr is one GraphQL error of a payload.
type fieldErr struct {
	msg  string
	locs []posn
	path []pathElem
}

// appendErrors writes a payload's errors as graphql-core's build_response
// leaves them: sorted by locations, then path, then message.
func appendErrors(dst []byte, errs []fieldErr) []byte {
	slices.SortStableFunc(errs, compareErrs)
	dst = append(dst, `,"errors":[`...)
	for i, e := range errs {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"message":`...)
		dst = appendString(dst, e.msg)
		for j, l := range e.locs {
			if j == 0 {
				dst = append(dst, `,"locations":[`...)
			} else {
				dst = append(dst, ',')
			}
			dst = append(dst, `{"line":`...)
			dst = strconv.AppendInt(dst, int64(l.line), 10)
			dst = append(dst, `,"column":`...)
			dst = strconv.AppendInt(dst, int64(l.col), 10)
			dst = append(dst, '}')
		}
		if len(e.locs) > 0 {
			dst = append(dst, ']')
		}
		dst = append(dst, `,"path":[`...)
		for j, p := range e.path {
			if j > 0 {
				dst = append(dst, ',')
			}
			if p.key != "" {
				dst = appendString(dst, p.key)
			} else {
				dst = strconv.AppendInt(dst, int64(p.index), 10)
			}
		}
		dst = append(dst, "]}"...)
	}
	return append(dst, ']')
}

// compareErrs orders errors as Python compares (locations, path, message).
func compareErrs(a, b fieldErr) int {
	if c := slices.CompareFunc(a.locs, b.locs, func(x, y posn) int {
		return cmp.Or(cmp.Compare(x.line, y.line), cmp.Compare(x.col, y.col))
	}); c != 0 {
		return c
	}
	if c := slices.CompareFunc(a.path, b.path, func(x, y pathElem) int {
		return cmp.Or(strings.Compare(x.key, y.key), cmp.Compare(x.index, y.index))
	}); c != 0 {
		return c
	}
	return strings.Compare(a.msg, b.msg)
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
