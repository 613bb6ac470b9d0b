import pytest
from plantedpkg import clamp, is_empty


@pytest.mark.parametrize("v, want", [(5, 5), (-1, 0), (11, 10), (0, 0), (10, 10)])
def test_clamp(v, want):
    assert clamp(v, 0, 10) == want


def test_is_empty():
    assert is_empty([])
    assert not is_empty([1])
