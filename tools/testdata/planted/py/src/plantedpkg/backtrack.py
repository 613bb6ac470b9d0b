"""The mutation driver's Python target whose mutant hangs holding the GIL."""
import re


def fails_to_match(n: int) -> bool:
    """Whether (a+)+$ fails on n - 50 a's and a b, as it always does, after about 2**(n - 50) tries."""
    return re.match(r"(a+)+$", "a" * (n - 50) + "b") is None
