package subscriptions

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"github.com/vektah/gqlparser/v2/lexer"
	"github.com/vektah/gqlparser/v2/validator"
	"github.com/vektah/gqlparser/v2/validator/core"
	"github.com/vektah/gqlparser/v2/validator/rules"
)

// preludeSchema holds only what every schema declares (built-in scalars,
// @skip, @include...): the schema-less validation walks documents against
// it, so the rules below see the built-in directives' argument types and
// nothing else.
var preludeSchema = func() *ast.Schema {
	s, err := validator.LoadSchema(validator.Prelude)
	if err != nil {
		panic("subscriptions: the GraphQL prelude does not load: " + err.Error())
	}
	return s
}()

// documentRules are the specification's validation rules whose outcome
// does not depend on the schema's own types, as gqlparser implements them.
// Field-level rules (known fields and arguments, leaf selections,
// overlapping fields) need a schema and run only with one.
var documentRules = []core.Rule{
	rules.LoneAnonymousOperationRule,
	rules.UniqueOperationNamesRule,
	rules.UniqueFragmentNamesRule,
	rules.KnownFragmentNamesRule,
	rules.NoUnusedFragmentsRule,
	rules.NoFragmentCyclesRule,
	rules.UniqueVariableNamesRule,
	rules.NoUndefinedVariablesRule,
	rules.NoUnusedVariablesRule,
	rules.UniqueArgumentNamesRule,
	rules.UniqueInputFieldNamesRule,
	rules.UniqueDirectivesPerLocationRule,
	rules.KnownArgumentNamesRule,        // only built-in directives have known arguments here
	rules.ProvidedRequiredArgumentsRule, // @skip and @include need if:
	rules.ValuesOfCorrectTypeRule,       // literals where a built-in directive says the type
	rules.VariablesInAllowedPositionRule,
	builtinDirectiveLocationsRule,
}

// allRules is gqlparser's default rule set, in its (name) order, listed
// once: its ValidateWithRules copies and sorts the set on every call.
// PossibleFragmentSpreads is graphql-core's (see possibleFragmentSpreads).
var allRules = func() []core.Rule {
	set := rules.NewDefaultRules()
	set.ReplaceRule(possibleFragmentSpreadsRule.Name, possibleFragmentSpreadsRule.RuleFunc)
	var out []core.Rule
	for name, fn := range set.GetInner() {
		out = append(out, core.Rule{Name: name, RuleFunc: fn})
	}
	out = append(out, intRangeRule)
	slices.SortFunc(out, func(a, b core.Rule) int { return strings.Compare(a.Name, b.Name) })
	return out
}()

// validate walks doc once with every rule of set, as gqlparser's
// ValidateWithRules does, and returns the problems found.
func validate(schema *ast.Schema, doc *ast.QueryDocument, set []core.Rule) gqlerror.List {
	var errs gqlerror.List
	observers := &core.Events{}
	for _, r := range set {
		r.RuleFunc(observers, func(options ...core.ErrorOption) {
			err := &gqlerror.Error{Rule: r.Name}
			for _, o := range options {
				o(err)
			}
			errs = append(errs, err)
		})
	}
	core.Walk(schema, doc, observers)
	return errs
}

// possibleFragmentSpreadsRule is PossibleFragmentSpreads as graphql-core
// decides it (do_types_overlap): a fragment applies where its type is the
// parent type itself, or where the two share an object type. gqlparser
// counts interfaces among an interface's possible types, so it accepts a
// fragment on an interface that only other interfaces implement, and it
// refuses a fragment on an interface nothing implements inside a
// selection on that same interface.
var possibleFragmentSpreadsRule = core.Rule{
	Name: "PossibleFragmentSpreads",
	RuleFunc: func(observers *core.Events, addError core.AddErrFunc) {
		impossible := func(w *core.Walker, parent *ast.Definition, cond string) bool {
			frag := w.Schema.Types[cond]
			if parent == nil || frag == nil || !parent.IsCompositeType() || !frag.IsCompositeType() || frag == parent {
				return false // other rules report unknown and leaf types
			}
			mine := possibleObjects(w.Schema, parent)
			for _, o := range possibleObjects(w.Schema, frag) {
				if slices.Contains(mine, o) {
					return false
				}
			}
			return true
		}
		observers.OnInlineFragment(func(w *core.Walker, f *ast.InlineFragment) {
			if f.TypeCondition != "" && impossible(w, f.ObjectDefinition, f.TypeCondition) {
				addError(core.Message(`Fragment cannot be spread here as objects of type "%s" can never be of type "%s".`,
					f.ObjectDefinition.Name, f.TypeCondition), core.At(f.Position))
			}
		})
		observers.OnFragmentSpread(func(w *core.Walker, f *ast.FragmentSpread) {
			if f.Definition != nil && impossible(w, f.ObjectDefinition, f.Definition.TypeCondition) {
				addError(core.Message(`Fragment "%s" cannot be spread here as objects of type "%s" can never be of type "%s".`,
					f.Name, f.ObjectDefinition.Name, f.Definition.TypeCondition), core.At(f.Position))
			}
		})
	},
}

// intRangeRule is the part of ValuesOfCorrectType that gqlparser leaves
// out: an Int literal must fit 32 bits (graphql-core's parse_literal).
var intRangeRule = core.Rule{
	Name: "ValuesOfCorrectType",
	RuleFunc: func(observers *core.Events, addError core.AddErrFunc) {
		observers.OnValue(func(_ *core.Walker, v *ast.Value) {
			if v.Kind != ast.IntValue || v.Definition == nil || v.Definition.Name != "Int" {
				return
			}
			if _, err := strconv.ParseInt(v.Raw, 10, 32); err != nil {
				addError(core.Message("Int cannot represent non 32-bit signed integer value: %s", v.Raw), core.At(v.Position))
			}
		})
	},
}

// possibleObjects is the object types a value of composite type def may
// have: def itself for an object type, else the object types among its
// possible types (gqlparser lists an interface's sub-interfaces there too).
func possibleObjects(s *ast.Schema, def *ast.Definition) []*ast.Definition {
	if def.Kind == ast.Object {
		return []*ast.Definition{def}
	}
	var out []*ast.Definition
	for _, p := range s.GetPossibleTypes(def) {
		if p.Kind == ast.Object {
			out = append(out, p)
		}
	}
	return out
}

// builtinDirectiveLocationsRule is the part of KnownDirectives that needs
// no schema: a built-in directive where it may not be used (@skip on an
// operation). Other directives stay unknown, and ignored, without a schema.
var builtinDirectiveLocationsRule = core.Rule{
	Name: "KnownDirectives",
	RuleFunc: func(observers *core.Events, addError core.AddErrFunc) {
		observers.OnDirective(func(_ *core.Walker, d *ast.Directive) {
			if d.Definition == nil || slices.Contains(d.Definition.Locations, d.Location) {
				return
			}
			addError(core.Message(`Directive "@%s" may not be used on %s.`, d.Name, d.Location), core.At(d.Position))
		})
	},
}

// validateDocument applies documentRules to doc (which it annotates) and
// returns the first problem found, or nil.
func validateDocument(doc *ast.QueryDocument) error {
	return validationError(validate(preludeSchema, doc, documentRules))
}

// DocumentError is a document refused at registration (validation,
// variables), with each problem as a GraphQL error: what the protocols
// send back in an error message. It unwraps to the KindValue *Error whose
// message lists them all.
type DocumentError struct {
	err    *Error
	Errors []GraphQLError
}

func (e *DocumentError) Error() string { return e.err.Message }

// Unwrap returns the *Error, so that KindOf and errors.As see it.
func (e *DocumentError) Unwrap() error { return e.err }

// GraphQLError is one error of the GraphQL response format.
type GraphQLError struct {
	Message   string     `json:"message"`
	Locations []Location `json:"locations,omitempty"`
}

// Location is a line and column of the document, from 1.
type Location struct {
	Line   int `json:"line"`
	Column int `json:"column"`
}

// validationError is one error listing every problem, first in the
// document first.
func validationError(errs gqlerror.List) error {
	if len(errs) == 0 {
		return nil
	}
	errs = slices.Clone(errs)
	slices.SortStableFunc(errs, func(a, b *gqlerror.Error) int {
		switch {
		case before(a, b):
			return -1
		case before(b, a):
			return 1
		}
		return 0
	})
	// gqlparser reports some overlapping fields once per path to them.
	errs = slices.CompactFunc(errs, func(a, b *gqlerror.Error) bool {
		return a.Message == b.Message && !before(a, b) && !before(b, a)
	})
	var msg strings.Builder
	msg.WriteString("GraphQL validation error")
	out := make([]GraphQLError, len(errs))
	for i, e := range errs {
		if i > 0 {
			msg.WriteString(";")
		}
		if len(e.Locations) > 0 {
			fmt.Fprintf(&msg, " at line %d, column %d", e.Locations[0].Line, e.Locations[0].Column)
		}
		msg.WriteString(": ")
		msg.WriteString(e.Message)
		out[i].Message = e.Message
		for _, l := range e.Locations {
			out[i].Locations = append(out[i].Locations, Location{l.Line, l.Column})
		}
	}
	return &DocumentError{err: &Error{Kind: KindValue, Message: msg.String()}, Errors: out}
}

// before orders errors by their first location, those without one last.
func before(a, b *gqlerror.Error) bool {
	switch {
	case len(a.Locations) == 0:
		return false
	case len(b.Locations) == 0:
		return true
	}
	la, lb := a.Locations[0], b.Locations[0]
	return la.Line < lb.Line || la.Line == lb.Line && la.Column < lb.Column
}

// describedDefinition finds an operation, fragment or variable definition
// with a description, which gqlparser parses (a newer draft of the
// specification allows it) and graphql-core refuses as a syntax error.
func describedDefinition(query string, doc *ast.QueryDocument) error {
	if !strings.Contains(query, `"`) {
		return nil
	}
	var tokens []lexer.Token // the document parsed, so lexing succeeds
	lex := lexer.New(&ast.Source{Input: query})
	for {
		t, err := lex.ReadToken()
		if err != nil || t.Kind == lexer.EOF {
			break
		}
		if t.Kind != lexer.Comment {
			tokens = append(tokens, t)
		}
	}
	check := func(desc string, pos *ast.Position) error {
		if pos == nil || desc == "" && !emptyDescriptionBefore(tokens, pos.Start) {
			return nil
		}
		return valueErrorf("GraphQL syntax error at line %d, column %d: a description is not allowed before an operation, a fragment or a variable", pos.Line, pos.Column)
	}
	for _, op := range doc.Operations {
		if err := check(op.Description, op.Position); err != nil {
			return err
		}
		for _, v := range op.VariableDefinitions {
			if err := check(v.Description, v.Position); err != nil {
				return err
			}
		}
	}
	for _, f := range doc.Fragments {
		if err := check(f.Description, f.Position); err != nil {
			return err
		}
	}
	return nil
}

// emptyDescriptionBefore reports whether the token before rune offset at
// is an empty string that is no variable's default value: an empty
// description, which the parser does not keep.
func emptyDescriptionBefore(tokens []lexer.Token, at int) bool {
	i, _ := slices.BinarySearchFunc(tokens, at, func(t lexer.Token, at int) int { return cmp.Compare(t.Pos.Start, at) })
	if i == 0 {
		return false
	}
	t := tokens[i-1]
	return (t.Kind == lexer.String || t.Kind == lexer.BlockString) && t.Value == "" &&
		(i < 2 || tokens[i-2].Kind != lexer.Equals)
}
