//go:build shapes

package planted

// The selection case: TestArea runs Area and TestPerimeter runs Perimeter, both run
// side, no test runs Unused, and Sides, a constant, is in no coverage block: every
// test may depend on it.

// Sides of a rectangle.
const Sides = 2 + 2

func side(v int) int {
	return v + 1
}

// Area of the rectangle of sides w+1 and h+1.
func Area(w, h int) int {
	return side(w) * side(h)
}

// Perimeter of the rectangle of sides w+1 and h+1.
func Perimeter(w, h int) int {
	return 2 * (side(w) + side(h))
}

// Unused is run by no test: its mutant is uncovered.
func Unused(v int) bool {
	return v == 0
}

// Kind names a shape by its side count. TestKind asks only for a square: the triangle
// case's condition runs, its body does not, and a mutant of that condition is still
// seen (it makes the square a triangle).
func Kind(sides int) string {
	switch {
	case sides == 3:
		return "triangle"
	default:
		return "polygon"
	}
}

// Never is run by no test either, and equivalent.txt lists its mutant, as it would list
// code no input can reach: equivalent, not uncovered.
func Never(v int) bool {
	return v != 0
}
