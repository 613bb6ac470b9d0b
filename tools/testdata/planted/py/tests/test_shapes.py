import pytest
from plantedpkg.shapes import SIDES, area, perimeter


# Ids with spaces and brackets: the driver passes them back to pytest as they are.
@pytest.mark.parametrize("w, h, want", [(2, 3, 12), (0, 0, 1)], ids=["2 by 3", "[0, 0]"])
def test_area(w, h, want):
    assert area(w, h) == want


def test_perimeter():
    assert perimeter(2, 3) == 14


def test_sides():
    assert SIDES == 4


def test_scaled():
    from plantedpkg.units import scaled  # the module's first import, inside this test

    assert scaled(3) == 6


def test_doubled_after_refusal():
    import asyncio

    from plantedpkg.waits import doubled_after_refusal

    assert asyncio.run(doubled_after_refusal(2)) == ("refused", 4)
