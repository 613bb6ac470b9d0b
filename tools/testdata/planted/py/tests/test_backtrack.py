import pytest
from plantedpkg.backtrack import fails_to_match


# `n - 50` made `n + 50` backtracks over 116 a's: the regular expression engine never
# lets go of the GIL, so pytest-timeout's thread never runs; the driver's faulthandler
# watchdog (tools/mutate_watchdog.py) ends the run at twice this limit.
@pytest.mark.timeout(1, method="thread")
def test_fails_to_match():
    assert fails_to_match(66)
