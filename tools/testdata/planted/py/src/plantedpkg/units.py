"""Imported by no test module when pytest collects them: test_scaled imports it inside the
test, so coverage names that test as the one that ran SCALE's line; every test that
imports the module after it may depend on SCALE, so its mutants run every test."""

SCALE = 4 - 2


def scaled(v: int) -> int:
    return v * SCALE
