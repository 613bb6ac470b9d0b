//go:build broken

package planted

import "testing"

// Fails on the unmutated code: the driver must stop before any mutant.
func TestBroken(t *testing.T) {
	if Area(0, 0) != 0 {
		t.Errorf("Area(0, 0) = %d: side adds 1", Area(0, 0))
	}
}
