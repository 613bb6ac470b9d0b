import pytest
from plantedpkg.steps import steps_to


# pytest-timeout ends the hung run well before the driver's own limit: the thread
# method, as the project's pytest configuration sets it, dumps the stacks between
# "+++ Timeout +++" banners and exits without a summary.
@pytest.mark.timeout(1, method="thread")
def test_steps_to():
    assert steps_to(3) == 3
