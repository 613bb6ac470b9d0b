package subscriptions

import (
	"errors"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"

	json "github.com/goccy/go-json"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"github.com/vektah/gqlparser/v2/validator"
)

// Schema is a GraphQL schema given as SDL: documents registered against it
// are validated by the specification's rules, their variables coerced by
// their declared types and their results shaped by the schema's types, as
// graphql-core does. It is immutable and safe for concurrent use.
type Schema struct {
	s  *ast.Schema
	id uint64 // tells plans of different schemas apart
}

var schemaIDs atomic.Uint64

// ParseSchema compiles SDL (what Strawberry's str(schema) prints, or an
// SDL file). The schema must have a subscription type.
func ParseSchema(sdl string) (*Schema, error) {
	s, err := validator.LoadSchema(validator.Prelude, &ast.Source{Name: "schema", Input: sdl})
	if err != nil {
		var ge *gqlerror.Error
		if errors.As(err, &ge) && len(ge.Locations) > 0 {
			return nil, valueErrorf("schema error at line %d, column %d: %s", ge.Locations[0].Line, ge.Locations[0].Column, ge.Message)
		}
		return nil, valueErrorf("schema error: %v", err)
	}
	if s.Subscription == nil {
		return nil, valueErrorf("schema error: the schema has no subscription type")
	}
	return &Schema{s: s, id: schemaIDs.Add(1)}, nil
}

// validate applies every validation rule of the specification.
func (sc *Schema) validate(doc *ast.QueryDocument) error {
	return validationError(validate(sc.s, doc, allRules))
}

// varError is graphql-core's request error for a variable.
type varError struct {
	msg       string
	line, col int
}

// coerceVariables is graphql-core's coerce_variable_values: the variables
// of op coerced by their declared types, defaults applied, or every
// problem found.
func (sc *Schema) coerceVariables(c *compiler, given map[string]any) (map[string]any, error) {
	out := make(map[string]any, len(c.op.VariableDefinitions))
	var errs []varError
	for _, d := range c.op.VariableDefinitions {
		fail := func(msg string) {
			e := varError{msg: msg}
			if d.Position != nil {
				e.line, e.col = d.Position.Line, d.Position.Column
			}
			errs = append(errs, e)
		}
		v, ok := given[d.Variable]
		if ok {
			nv, err := normalizeJSON(v, 0)
			if err != nil {
				return nil, typeErrorf("variable \"$%s\": %v", d.Variable, err)
			}
			v = nv
		}
		switch {
		case !ok && d.DefaultValue != nil:
			// graphql-core coerces a default by the variable's type (validation
			// checked it fits).
			if dv, fits := valueFromAST(sc.s, d.DefaultValue, d.Type, nil); fits {
				out[d.Variable] = dv
			}
		case !ok && d.Type.NonNull:
			fail("Variable '$" + d.Variable + "' of required type '" + d.Type.String() + "' was not provided.")
		case !ok:
		case v == nil && d.Type.NonNull:
			fail("Variable '$" + d.Variable + "' of non-null type '" + d.Type.String() + "' must not be null.")
		default:
			cv := coercer{s: sc.s, name: d.Variable}
			x := cv.coerce(v, d.Type, nil)
			for _, m := range cv.errs {
				fail(m)
			}
			if len(cv.errs) == 0 {
				out[d.Variable] = x
			}
		}
	}
	if len(errs) > 0 {
		return nil, requestError(errs)
	}
	return out, nil
}

// requestError refuses a document for errs, graphql-core's request errors
// (no data at all: variables, the root field's arguments).
func requestError(errs []varError) error {
	parts := make([]string, len(errs))
	gql := make([]GraphQLError, len(errs))
	for i, e := range errs {
		parts[i] = "GraphQL error at line " + strconv.Itoa(e.line) + ", column " + strconv.Itoa(e.col) + ": " + e.msg
		gql[i] = GraphQLError{Message: e.msg, Locations: []Location{{e.line, e.col}}}
	}
	return &DocumentError{err: &Error{Kind: KindValue, Message: strings.Join(parts, "; ")}, Errors: gql}
}

// coercer is graphql-core's coerce_input_value for one variable.
type coercer struct {
	s    *ast.Schema
	name string
	errs []string
}

func (cv *coercer) fail(path []any, value any, msg string) {
	m := "Variable '$" + cv.name + "' got invalid value " + inspect(value)
	if len(path) > 0 {
		m += " at '" + cv.name
		for _, p := range path {
			if i, ok := p.(int); ok {
				m += "[" + strconv.Itoa(i) + "]"
			} else {
				m += "." + p.(string)
			}
		}
		m += "'"
	}
	cv.errs = append(cv.errs, m+"; "+msg)
}

// coerce is v coerced to type t; the value is meaningful only when no
// error was recorded (graphql-core returns Undefined then).
func (cv *coercer) coerce(v any, t *ast.Type, path []any) any {
	if t.NonNull {
		if v == nil {
			cv.fail(path, v, "Expected non-nullable type '"+t.String()+"' not to be None.")
			return nil
		}
		inner := *t
		inner.NonNull = false
		return cv.coerce(v, &inner, path)
	}
	if v == nil {
		return nil
	}
	if t.Elem != nil {
		list, isList := v.([]any)
		if !isList {
			return []any{cv.coerce(v, t.Elem, path)}
		}
		out := make([]any, len(list))
		for i, e := range list {
			out[i] = cv.coerce(e, t.Elem, append(slices.Clip(path), i))
		}
		return out
	}
	def := cv.s.Types[t.NamedType]
	if def == nil {
		return v // validation reports unknown types
	}
	switch def.Kind {
	case ast.InputObject:
		obj, isObj := v.(map[string]any)
		if !isObj {
			cv.fail(path, v, "Expected type '"+def.Name+"' to be a mapping.")
			return nil
		}
		out := make(map[string]any, len(def.Fields))
		for _, f := range def.Fields {
			fv, present := obj[f.Name]
			if !present {
				if dv, ok := schemaDefault(cv.s, f.DefaultValue, f.Type); ok {
					out[f.Name] = dv
				} else if f.Type.NonNull {
					cv.fail(path, v, "Field '"+f.Name+"' of required type '"+f.Type.String()+"' was not provided.")
				}
				continue
			}
			out[f.Name] = cv.coerce(fv, f.Type, append(slices.Clip(path), f.Name))
		}
		keys := make([]string, 0, len(obj))
		for k := range obj {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			if def.Fields.ForName(k) == nil {
				cv.fail(path, v, "Field '"+k+"' is not defined by type '"+def.Name+"'."+
					didYouMean(suggestionList(k, fieldNames(def)), ""))
			}
		}
		return out
	case ast.Enum:
		s, isStr := v.(string)
		if !isStr {
			cv.fail(path, v, "Enum '"+def.Name+"' cannot represent non-string value: "+inspect(v)+"."+
				enumSuggestions(def, inspect(v)))
			return nil
		}
		if def.EnumValues.ForName(s) == nil {
			cv.fail(path, v, "Value '"+s+"' does not exist in '"+def.Name+"' enum."+enumSuggestions(def, s))
			return nil
		}
		return s
	case ast.Scalar:
		x, msg := parseScalar(def.Name, v)
		if msg != "" {
			cv.fail(path, v, msg)
			return nil
		}
		return x
	}
	cv.fail(path, v, "Expected type '"+def.Name+"'.")
	return nil
}

// parseScalar is graphql-core's parse_value of the built-in scalars;
// custom scalars take any value.
func parseScalar(name string, v any) (any, string) {
	num, isNum := v.(json.Number)
	isInt := isNum && isPyInt(string(num))
	var f float64
	if isNum {
		f, _ = strconv.ParseFloat(string(num), 64)
	}
	integral := isInt || isNum && !math.IsInf(f, 0) && f == math.Trunc(f)
	switch name {
	case "Int":
		if !integral {
			return nil, "Int cannot represent non-integer value: " + inspect(v)
		}
		if f < math.MinInt32 || f > math.MaxInt32 {
			return nil, "Int cannot represent non 32-bit signed integer value: " + inspect(v)
		}
		return json.Number(strconv.FormatInt(int64(f), 10)), ""
	case "Float":
		if !isNum || math.IsInf(f, 0) {
			return nil, "Float cannot represent non numeric value: " + inspect(v)
		}
		return num, ""
	case "String":
		if _, ok := v.(string); !ok {
			return nil, "String cannot represent a non string value: " + inspect(v)
		}
		return v, ""
	case "Boolean":
		if _, ok := v.(bool); !ok {
			return nil, "Boolean cannot represent a non boolean value: " + inspect(v)
		}
		return v, ""
	case "ID":
		if s, ok := v.(string); ok {
			return s, ""
		}
		if isInt {
			return pyIntString(string(num)), ""
		}
		return nil, "ID cannot represent value: " + inspect(v)
	}
	return v, ""
}

func fieldNames(def *ast.Definition) []string {
	names := make([]string, len(def.Fields))
	for i, f := range def.Fields {
		names[i] = f.Name
	}
	return names
}
