package subscriptions

import (
	"math"
	"strconv"
	"strings"

	json "github.com/goccy/go-json"
	"github.com/vektah/gqlparser/v2/ast"
)

// Arguments against a schema: graphql-core's get_argument_values and
// value_from_ast. The values are coerced by their declared types (an ID
// written 7 is "7", input fields get their defaults, one value where a
// list is expected is a list of it), and an argument that cannot be
// coerced once the variables are known raises graphql-core's error: at
// the root field it refuses the document, below it is a field error
// wherever the field is executed.

// argumentValues coerces the arguments of field node f, of definition def,
// with the coerced variables vars (absent: neither given nor defaulted).
func argumentValues(s *ast.Schema, def *ast.FieldDefinition, f *ast.Field, vars map[string]any) (map[string]any, *execError) {
	if len(def.Arguments) == 0 {
		return nil, nil
	}
	out := make(map[string]any, len(def.Arguments))
	for _, a := range def.Arguments {
		node := f.Arguments.ForName(a.Name)
		if node == nil {
			if dv, ok := schemaDefault(s, a.DefaultValue, a.Type); ok {
				out[a.Name] = dv
			} else if a.Type.NonNull {
				return nil, execErrorAt("Argument '"+a.Name+"' of required type '"+a.Type.String()+"' was not provided.", f.Position)
			}
			continue
		}
		v := node.Value
		isNull := v.Kind == ast.NullValue
		if v.Kind == ast.Variable {
			given, ok := vars[v.Raw]
			if !ok {
				if dv, fits := schemaDefault(s, a.DefaultValue, a.Type); fits {
					out[a.Name] = dv
				} else if a.Type.NonNull {
					return nil, execErrorAt("Argument '"+a.Name+"' of required type '"+a.Type.String()+
						"' was provided the variable '$"+v.Raw+"' which was not provided a runtime value.", v.Position)
				}
				continue
			}
			isNull = given == nil
		}
		if isNull && a.Type.NonNull {
			return nil, execErrorAt("Argument '"+a.Name+"' of non-null type '"+a.Type.String()+"' must not be null.", v.Position)
		}
		x, ok := valueFromAST(s, v, a.Type, vars)
		if !ok {
			return nil, execErrorAt("Argument '"+a.Name+"' has invalid value "+printValue(v)+".", v.Position)
		}
		out[a.Name] = x
	}
	return out, nil
}

func execErrorAt(msg string, pos *ast.Position) *execError {
	e := &execError{msg: msg}
	if pos != nil {
		e.line, e.col = pos.Line, pos.Column
	}
	return e
}

// valueFromAST is graphql-core's value_from_ast: v coerced to type t, or
// ok false where graphql-core returns Undefined.
func valueFromAST(s *ast.Schema, v *ast.Value, t *ast.Type, vars map[string]any) (any, bool) {
	if v == nil {
		return nil, false
	}
	if v.Kind == ast.Variable {
		x, given := vars[v.Raw]
		if !given || x == nil && t.NonNull {
			return nil, false
		}
		return x, true
	}
	if v.Kind == ast.NullValue {
		return nil, !t.NonNull
	}
	if t.Elem != nil {
		if v.Kind != ast.ListValue {
			x, ok := valueFromAST(s, v, t.Elem, vars)
			if !ok {
				return nil, false
			}
			return []any{x}, true
		}
		out := make([]any, 0, len(v.Children))
		for _, item := range v.Children {
			if missingVariable(item.Value, vars) {
				if t.Elem.NonNull {
					return nil, false
				}
				out = append(out, nil)
				continue
			}
			x, ok := valueFromAST(s, item.Value, t.Elem, vars)
			if !ok {
				return nil, false
			}
			out = append(out, x)
		}
		return out, true
	}
	def := s.Types[t.NamedType]
	if def == nil {
		return nil, false
	}
	switch def.Kind {
	case ast.InputObject:
		if v.Kind != ast.ObjectValue {
			return nil, false
		}
		out := make(map[string]any, len(def.Fields))
		for _, f := range def.Fields {
			node := v.Children.ForName(f.Name)
			if node == nil || missingVariable(node, vars) {
				if dv, ok := schemaDefault(s, f.DefaultValue, f.Type); ok {
					out[f.Name] = dv
				} else if f.Type.NonNull {
					return nil, false
				}
				continue
			}
			x, ok := valueFromAST(s, node, f.Type, vars)
			if !ok {
				return nil, false
			}
			out[f.Name] = x
		}
		return out, true
	case ast.Enum:
		if v.Kind != ast.EnumValue || def.EnumValues.ForName(v.Raw) == nil {
			return nil, false
		}
		return v.Raw, true
	}
	return scalarLiteral(def.Name, v, vars)
}

// schemaDefault is the default value v of an argument or input field of
// type t, coerced by it; ok is false without one. A default that does not
// fit its type is no default, as graphql-core's build_schema keeps it
// (Undefined): the schema's loader does not check defaults.
func schemaDefault(s *ast.Schema, v *ast.Value, t *ast.Type) (any, bool) {
	return valueFromAST(s, v, t, nil)
}

// missingVariable is graphql-core's is_missing_variable.
func missingVariable(v *ast.Value, vars map[string]any) bool {
	if v.Kind != ast.Variable {
		return false
	}
	_, given := vars[v.Raw]
	return !given
}

// scalarLiteral is graphql-core's parse_literal of the built-in scalars;
// a custom scalar takes any literal as it is.
func scalarLiteral(scalar string, v *ast.Value, vars map[string]any) (any, bool) {
	switch scalar {
	case "Int":
		n, err := strconv.ParseInt(v.Raw, 10, 64)
		if v.Kind != ast.IntValue || err != nil || n < math.MinInt32 || n > math.MaxInt32 {
			return nil, false
		}
		return json.Number(strconv.FormatInt(n, 10)), true
	case "Float":
		if v.Kind != ast.IntValue && v.Kind != ast.FloatValue {
			return nil, false
		}
		return json.Number(v.Raw), true
	case "String":
		if v.Kind != ast.StringValue && v.Kind != ast.BlockValue {
			return nil, false
		}
		return v.Raw, true
	case "Boolean":
		if v.Kind != ast.BooleanValue {
			return nil, false
		}
		return v.Raw == "true", true
	case "ID":
		switch v.Kind {
		case ast.StringValue, ast.BlockValue:
			return v.Raw, true
		case ast.IntValue:
			return pyIntString(v.Raw), true
		}
		return nil, false
	}
	return untypedValue(v, vars), true
}

// untypedValue is graphql-core's value_from_ast_untyped.
func untypedValue(v *ast.Value, vars map[string]any) any {
	switch v.Kind {
	case ast.Variable:
		return vars[v.Raw]
	case ast.IntValue, ast.FloatValue:
		return json.Number(v.Raw)
	case ast.BooleanValue:
		return v.Raw == "true"
	case ast.NullValue:
		return nil
	case ast.ListValue:
		out := make([]any, len(v.Children))
		for i, c := range v.Children {
			out[i] = untypedValue(c.Value, vars)
		}
		return out
	case ast.ObjectValue:
		out := make(map[string]any, len(v.Children))
		for _, c := range v.Children {
			out[c.Name] = untypedValue(c.Value, vars)
		}
		return out
	}
	return v.Raw // strings and enum values
}

// printValue writes a literal as graphql-core's print_ast does.
func printValue(v *ast.Value) string {
	switch v.Kind {
	case ast.Variable:
		return "$" + v.Raw
	case ast.StringValue:
		return printString(v.Raw)
	case ast.BlockValue:
		return `"""` + strings.ReplaceAll(v.Raw, `"""`, `\"""`) + `"""`
	case ast.NullValue:
		return "null"
	case ast.ListValue:
		parts := make([]string, len(v.Children))
		for i, c := range v.Children {
			parts[i] = printValue(c.Value)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case ast.ObjectValue:
		parts := make([]string, len(v.Children))
		for i, c := range v.Children {
			parts[i] = c.Name + ": " + printValue(c.Value)
		}
		return "{" + strings.Join(parts, ", ") + "}"
	}
	return v.Raw
}

// printString is graphql-core's print_string.
func printString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\b':
			b.WriteString(`\b`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\f':
			b.WriteString(`\f`)
		case r == '\r':
			b.WriteString(`\r`)
		case r < 0x20 || r >= 0x7f && r <= 0x9f:
			b.WriteString(`\u00`)
			b.WriteString(strings.ToUpper(strconv.FormatInt(int64(r)>>4, 16)))
			b.WriteString(strings.ToUpper(strconv.FormatInt(int64(r)&0xf, 16)))
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
