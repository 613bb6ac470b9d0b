"""The selection case, as go/shapes.go: test_area runs area and test_perimeter runs
perimeter, both run side, no test runs unused, and SIDES is set when the module is
imported, before any test: every test may depend on it."""

SIDES = 2 + 2


def side(v: int) -> int:
    return v + 1


def area(w: int, h: int) -> int:
    return side(w) * side(h)


def perimeter(w: int, h: int) -> int:
    return (2 *
            (side(w) + side(h)))  # one statement over two lines


def unused(v: int) -> bool:
    return v == 0
