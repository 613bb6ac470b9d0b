from plantedpkg.shapes import area, perimeter

# test_perimeter_after_area passes only after test_area_first: with selection, a
# perimeter mutant runs it alone, and the driver must refuse to start.
ran = []


def test_area_first():
    ran.append("area")
    assert area(2, 3) == 12


def test_perimeter_after_area():
    assert ran == ["area"]
    assert perimeter(2, 3) == 14
