"""The mutation driver's Python target whose mutant hangs."""


def steps_to(n: int) -> int:
    """How many steps of one reach n from 0 (n >= 0)."""
    i = 0
    while i != n:
        i += 1  # `-=` walks away from n: a loop without end
    return i
