"""The mutation driver against planted suites: one that asserts nothing must score 0,
one that asserts must kill, and neither a build failure nor a hang counts as a kill."""
import json
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
PLANTED = os.path.join(HERE, "testdata", "planted")
sys.path.insert(0, HERE)

import mutate  # noqa: E402

# Clamp's `<` -> `<=` and `>` -> `>=` return the bound itself on the bound: equivalent.
EQUIVALENT_GO = {("go/calc.go", 7, "<="), ("go/calc.go", 10, ">=")}
EQUIVALENT_PY = {("py/src/plantedpkg/__init__.py", 5, "<="), ("py/src/plantedpkg/__init__.py", 7, ">=")}


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("mutate") / "report.txt"
    subprocess.run([sys.executable, os.path.join(HERE, "mutate.py"), "--root", PLANTED,
                    "--config", os.path.join(PLANTED, "areas.json"), "--jobs", "2",
                    "--min-timeout", "5", "--timeout-factor", "5", "--report", str(out)],
                   check=True, capture_output=True, text=True, timeout=600)
    with open(out.with_suffix(".json")) as f:
        return {area: {(m["path"], m["line"], m["new"]): m["status"] for m in ms}
                for area, ms in json.load(f).items()}, out.read_text()


def statuses(fates):
    return sorted(fates.values())


def test_assert_nothing_go_suite_scores_zero(report):
    fates, text = report
    got = fates["go-nothing"]
    assert "killed" not in got.values()
    assert statuses(got).count("lived") == 7
    assert "go-nothing: score 0.0% (0 killed of 7)" in text


def test_asserting_go_suite_kills_all_but_the_equivalent(report):
    fates, text = report
    got = fates["go-good"]
    lived = {k for k, v in got.items() if v == "lived"}
    assert lived == EQUIVALENT_GO
    assert statuses(got).count("killed") == 5
    assert "go/calc.go:7:7: '<' -> '<='" in text  # survivors are listed by file:line


def test_go_build_failure_is_not_viable_and_hang_is_a_timeout(report):
    fates, _ = report
    for area in ("go-nothing", "go-good"):
        assert fates[area][("go/calc.go", 27, "-")] == "not viable"  # string minus string
        assert fates[area][("go/calc.go", 19, "--")] == "timeout"  # i-- never reaches n


def test_assert_nothing_python_suite_scores_zero(report):
    fates, text = report
    assert set(fates["py-nothing"].values()) == {"lived"}
    assert "py-nothing: score 0.0% (0 killed of 5)" in text


def test_asserting_python_suite_kills_all_but_the_equivalent(report):
    fates, _ = report
    got = fates["py-good"]
    assert {k for k, v in got.items() if v == "lived"} == EQUIVALENT_PY
    assert statuses(got).count("killed") == 3


@pytest.mark.parametrize("out, want", [
    # gremlins' `--test-cpu 1` reached the test binary as one argument: exit 1, no test ran.
    ("flag provided but not defined: -cpu 1\nUsage of /tmp/x.test:\nFAIL\tpkg\t0.01s\n", "error"),
    ("# pkg\n./a.go:3:9: invalid operation\nFAIL\tpkg [build failed]\n", "not viable"),
    ("--- FAIL: TestX (0.00s)\n    x_test.go:9: wrong\nFAIL\nFAIL\tpkg\t0.1s\n", "killed"),
    ("panic: runtime error: index out of range\n\ngoroutine 7 [running]:\nFAIL\tpkg\t0.1s\n", "killed"),
    ("panic: test timed out after 5s\n\trunning tests:\nFAIL\tpkg\t5.0s\n", "timeout"),
    ("ok  \tpkg\t0.3s\n", "lived"),
    ("fatal error: concurrent map writes\n\ngoroutine 9 [running]:\nFAIL\tpkg\t0.1s\n", "crashed"),
    ("", "error"),
])
def test_go_output_is_judged_by_what_the_tests_said(out, want):
    assert mutate.judge_go(out, False)[0] == want


@pytest.mark.parametrize("out, want", [
    ("FAILED test_a.py::test_x - assert 1 == 2\n1 failed, 3 passed in 0.2s\n", "killed"),
    ("ERROR test_a.py::test_x - RuntimeError\n1 error, 3 passed in 0.2s\n", "killed"),
    ("ERROR collecting test_a.py\nInterrupted: 1 error during collection\n", "not viable"),
    ("4 passed in 0.2s\n", "lived"),
    ("test_a.py ..\nFatal Python error: Segmentation fault\n\nCurrent thread 0x1:\n", "crashed"),
    ("no tests ran in 0.01s\n", "error"),
])
def test_pytest_output_is_judged_by_its_summary(out, want):
    assert mutate.judge_py(out, False)[0] == want


def test_mutant_sites_skip_strings_comments_types_and_signs():
    src = 'package p\n// a < b\nvar s = "x == y" + t\nfunc f(p *T, n int) int { return -n + p.v*2 }\n'
    sites = {(m.old, m.new) for m in mutate.clike_mutants("a", "p.go", src, False)}
    assert sites == {("+", "-"), ("*", "/")}
