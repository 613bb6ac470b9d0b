//go:build shapes

package planted

import "testing"

func TestArea(t *testing.T) {
	if got := Area(2, 3); got != 12 {
		t.Errorf("Area(2, 3) = %d, want 12", got)
	}
}

func TestPerimeter(t *testing.T) {
	if got := Perimeter(2, 3); got != 14 {
		t.Errorf("Perimeter(2, 3) = %d, want 14", got)
	}
}

func TestSides(t *testing.T) {
	if Sides != 4 {
		t.Errorf("Sides = %d, want 4", Sides)
	}
}

func TestKind(t *testing.T) {
	if got := Kind(4); got != "polygon" {
		t.Errorf("Kind(4) = %q, want polygon", got)
	}
}
