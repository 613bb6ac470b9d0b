"""The mutation driver's Python target."""


def clamp(v: int, lo: int, hi: int) -> int:
    if v < lo:
        return lo
    if v > hi:
        return hi
    return v


def is_empty(items: list) -> bool:
    return not items
