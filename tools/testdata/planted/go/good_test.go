//go:build good

package planted

import "testing"

func TestClamp(t *testing.T) {
	cases := [][4]int{{5, 0, 10, 5}, {-1, 0, 10, 0}, {11, 0, 10, 10}, {0, 0, 10, 0}, {10, 0, 10, 10}}
	for _, c := range cases {
		if got := Clamp(c[0], c[1], c[2]); got != c[3] {
			t.Errorf("Clamp(%d, %d, %d) = %d, want %d", c[0], c[1], c[2], got, c[3])
		}
	}
}

func TestSum(t *testing.T) {
	if got := Sum(4); got != 10 {
		t.Errorf("Sum(4) = %d, want 10", got)
	}
}

func TestTwice(t *testing.T) {
	if got := Twice("ab"); got != "abab" {
		t.Errorf("Twice = %q", got)
	}
}

func TestBracket(t *testing.T) {
	if got := Bracket("x"); got != "[x]" {
		t.Errorf("Bracket = %q", got)
	}
}
