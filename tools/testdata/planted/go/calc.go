// Package planted is the mutation driver's target: suites that assert nothing and
// everything (tags nothing, good), and shapes.go for test selection (tag shapes).
package planted

// Clamp limits v to [lo, hi].
func Clamp(v, lo, hi int) int {
	if v < lo {
		return lo
	}
	if v > hi {
		return hi
	}
	return v
}

// Sum adds 1..n counting up: the `i--` mutant never ends.
func Sum(n int) int {
	total := 0
	for i := 1; i <= n; i++ {
		total += i
	}
	return total
}

// Twice repeats s: its `-` mutant does not compile.
func Twice(s string) string {
	return s + s
}

// Bracket puts s between brackets: each `+` has a string literal beside it (raw
// or interpreted), so the driver makes no mutant of it (`-` would not compile).
func Bracket(s string) string {
	out := `[` + s
	out += "]"
	return out
}
