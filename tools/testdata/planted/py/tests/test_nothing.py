from plantedpkg import clamp, is_empty


def test_nothing():
    # Calls everything, checks nothing: every viable mutant must live.
    clamp(5, 0, 10)
    clamp(-1, 0, 10)
    clamp(11, 0, 10)
    is_empty([])
