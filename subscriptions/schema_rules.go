package subscriptions

import (
	"fmt"
	"slices"
	"strings"

	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
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
var allRules = func() []core.Rule {
	var out []core.Rule
	for name, fn := range rules.NewDefaultRules().GetInner() {
		out = append(out, core.Rule{Name: name, RuleFunc: fn})
	}
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
	runes := []rune(query)
	check := func(desc string, pos *ast.Position) error {
		if pos == nil || (desc == "" && !quotedBefore(runes, pos.Start)) {
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

// quotedBefore reports whether the last token before runes[at] (past
// blanks, commas and comment lines) ends with a quote: an empty
// description, which the parser does not keep.
func quotedBefore(runes []rune, at int) bool {
	i := min(at, len(runes)) - 1
	for i >= 0 {
		switch r := runes[i]; {
		case r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == ',' || r == '\ufeff':
			i--
		case r == '"':
			lineStart := i
			for lineStart > 0 && runes[lineStart-1] != '\n' && runes[lineStart-1] != '\r' {
				lineStart--
			}
			if !slices.Contains(runes[lineStart:i], '#') {
				return true
			}
			i = lineStart - 1 // the end of a comment line
		default:
			lineStart := i
			for lineStart > 0 && runes[lineStart-1] != '\n' && runes[lineStart-1] != '\r' {
				lineStart--
			}
			if !slices.Contains(runes[lineStart:i+1], '#') {
				return false
			}
			i = lineStart - 1
		}
	}
	return false
}
