// Package pyapi is the surface that gopy turns into the CPython extension
// behind fraiseql._fraiseql_rs.subscriptions.
//
// It is shaped by what gopy handles well (see the README's "How the build
// works"): every value crosses as a method argument or result of type
// string, int, float64 or bool; structured values cross as JSON strings;
// errors carry their Python exception type as a message prefix that the
// Python layer turns into ValueError or TypeError; every method recovers
// panics, because a Go panic would abort the interpreter.
package pyapi
