//go:build nothing

package planted

import "testing"

// Calls everything, checks nothing: every viable mutant must live.
func TestNothing(t *testing.T) {
	_ = Clamp(5, 0, 10)
	_ = Clamp(-1, 0, 10)
	_ = Clamp(11, 0, 10)
	_ = Sum(4)
	_ = Twice("ab")
	_ = Bracket("x")
}
