"""The mutation driver against planted suites: one that asserts nothing must score 0,
one that asserts must kill, and neither a build failure nor a hang counts as a kill. A Go or
Python mutant runs only the tests that run its line, and gets the fate the whole suite gives it."""
import json
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
PLANTED = os.path.join(HERE, "testdata", "planted")
sys.path.insert(0, HERE)

import mutate  # noqa: E402

# A driver run over the planted areas takes minutes on a loaded machine (each Python area's
# baseline is a measured run, then its groups'): subprocess.run's own timeout bounds it.
pytestmark = pytest.mark.timeout(900)

# Clamp's `<` -> `<=` and `>` -> `>=` return the bound itself on the bound: equivalent.
# planted/equivalent.txt lists them but the Python `>` one, and wrongly lists Sum's `+=`.
EQUIVALENT_GO = {("go/calc.go", 7, "<="), ("go/calc.go", 10, ">=")}
EQUIVALENT_PY = {("py/src/plantedpkg/__init__.py", 5, "<="), ("py/src/plantedpkg/__init__.py", 7, ">=")}
LISTED_WRONGLY = ("go/calc.go", 20, "-=")
GO_AREAS = ["go-nothing", "go-good", "go-shapes"]
PY_AREAS = ["py-nothing", "py-good", "py-hang", "py-gil", "py-shapes"]
SHAPES = "go/shapes.go"  # the selection cases
PY_SHAPES = "py/src/plantedpkg/shapes.py"
PY_UNITS = "py/src/plantedpkg/units.py"  # first imported inside a test
PY_WAITS = "py/src/plantedpkg/waits.py"  # a line coverage does not see run


def run_driver(out, *args):
    """The driver over the planted areas: each mutant's record by (path, line, replacement),
    by area, and the report's text."""
    subprocess.run([sys.executable, os.path.join(HERE, "mutate.py"), "--root", PLANTED,
                    "--config", os.path.join(PLANTED, "areas.json"), "--jobs", "2",
                    "--equivalent", os.path.join(PLANTED, "equivalent.txt"),
                    "--min-timeout", "15", "--timeout-factor", "5", "--report", str(out), *args],
                   check=True, capture_output=True, text=True, timeout=600)
    with open(out.with_suffix(".json")) as f:
        return {area: {(m["path"], m["line"], m["new"]): m for m in ms}
                for area, ms in json.load(f).items()}, out.read_text()


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    return run_driver(tmp_path_factory.mktemp("mutate") / "report.txt")


@pytest.fixture(scope="module")
def report(records):
    runs, text = records
    return {area: {k: m["status"] for k, m in ms.items()} for area, ms in runs.items()}, text


@pytest.fixture(scope="module")
def unselected(tmp_path_factory):
    """The Go and Python areas with --no-select: every test of the package or the pytest
    subset against each mutant."""
    args = ["--no-select"] + [a for area in GO_AREAS + PY_AREAS for a in ("--area", area)]
    return run_driver(tmp_path_factory.mktemp("mutate") / "report.txt", *args)


def statuses(fates):
    return sorted(fates.values())


def test_assert_nothing_go_suite_scores_zero(report):
    fates, text = report
    got = fates["go-nothing"]
    assert "killed" not in got.values()
    assert statuses(got).count("lived") == 4  # and the 3 listed: outside the score
    assert {k for k, v in got.items() if v == "equivalent"} == EQUIVALENT_GO | {LISTED_WRONGLY}
    assert "go-nothing: score 0.0% (0 killed of 4: lived 4, uncovered 0)" in text


def test_asserting_go_suite_kills_all_but_the_equivalent(report):
    fates, text = report
    got = fates["go-good"]
    assert {k for k, v in got.items() if v == "equivalent"} == EQUIVALENT_GO
    assert "lived" not in got.values()
    assert statuses(got).count("killed") == 5
    assert "go-good: score 100.0% (5 killed of 5: lived 0, uncovered 0)" in text


def test_go_mutant_runs_only_the_tests_that_run_its_line(records):
    runs, text = records
    got = {(k[1], k[2]): (m["status"], m["tests"]) for k, m in runs["go-shapes"].items() if k[0] == SHAPES}
    assert got == {
        (13, "-"): ("killed", ["TestArea", "TestPerimeter"]),  # side: run by both
        (18, "/"): ("killed", ["TestArea"]),
        (23, "/"): ("killed", ["TestPerimeter"]),
        (23, "-"): ("killed", ["TestPerimeter"]),
        (28, "!="): ("uncovered", []),
        (10, "-"): ("killed", ["TestArea", "TestPerimeter", "TestSides", "TestKind"]),  # a constant: in no block
        # A case's condition runs for every test that reaches its switch, its body or not.
        (36, "!="): ("killed", ["TestKind"]),
        (46, "=="): ("equivalent", []),  # run by no test, listed: unreachable code's mutant
    }
    # The test that failed is one that ran.
    assert runs["go-shapes"][(SHAPES, 18, "/")]["detail"].startswith("--- FAIL: TestArea ")
    assert runs["go-shapes"][(SHAPES, 23, "/")]["detail"].startswith("--- FAIL: TestPerimeter ")
    assert runs["go-shapes"][(SHAPES, 10, "-")]["detail"].startswith("--- FAIL: TestSides ")
    assert "tests per mutant: those that run the mutated line (Go) or function (Python), from per-test coverage" in text
    # An uncovered mutant is a survivor: in the score, as a lived one is.
    assert "go-shapes: score 85.7% (6 killed of 7: lived 0, uncovered 1)" in text


def test_python_mutant_runs_only_the_tests_that_run_its_line(records):
    runs, text = records
    area = ["test_shapes.py::test_area[2 by 3]", "test_shapes.py::test_area[[0, 0]]"]
    perimeter = ["test_shapes.py::test_perimeter"]
    every = area + perimeter + ["test_shapes.py::test_sides", "test_shapes.py::test_scaled",
                                "test_shapes.py::test_doubled_after_refusal"]
    got = {(k[0], k[1], k[2]): (m["status"], [t.rsplit("/", 1)[-1] for t in m["tests"]])
           for k, m in runs["py-shapes"].items()}
    assert {k[1:]: v for k, v in got.items() if k[0] == PY_SHAPES} == {
        (9, "-"): ("killed", area + perimeter),  # side: run by both
        (13, "/"): ("killed", area),
        (17, "/"): ("killed", perimeter),
        (18, "-"): ("killed", perimeter),  # the second line of perimeter's statement
        (22, "!="): ("uncovered", []),
        (5, "-"): ("killed", every),  # run on import, at collection: every test
    }
    assert {k[1:]: v for k, v in got.items() if k[0] == PY_UNITS} == {
        (5, "+"): ("killed", every),  # run on import, inside test_scaled: every test still
        (9, "/"): ("killed", ["test_shapes.py::test_scaled"]),
    }
    # Its line is missing from the coverage of the test that runs it: the function's first is not.
    assert {k[1:]: v for k, v in got.items() if k[0] == PY_WAITS} == {
        (21, "-"): ("killed", ["test_shapes.py::test_doubled_after_refusal"]),
    }
    # The test that failed is one that ran (the node ids, spaces and brackets kept, reached pytest).
    detail = {line: runs["py-shapes"][(PY_SHAPES, line, new)]["detail"]
              for line, new in [(13, "/"), (17, "/"), (5, "-")]}
    assert detail[13].startswith("FAILED test_shapes.py::test_area[2 by 3] - ")
    assert detail[17].startswith("FAILED test_shapes.py::test_perimeter - ")
    assert detail[5].startswith("FAILED test_shapes.py::test_sides - ")
    assert "py-shapes: score 88.9% (8 killed of 9: lived 0, uncovered 1)" in text


def test_fates_without_selection_are_the_same(records, unselected):
    runs, _ = records
    whole, text = unselected
    for area in GO_AREAS + PY_AREAS:
        assert {k: m["status"] for k, m in whole[area].items()} == {k: m["status"] for k, m in runs[area].items()}
        assert all(m["tests"] == [] for m in whole[area].values())
    assert "tests per mutant: the whole package or pytest subset (--no-select)" in text


def test_a_case_line_belongs_to_its_switch():
    source = ["func f(v int) int {", "\tswitch {", "\tcase v == 3:", "\t\treturn 1",
              "\tcase v > 3 &&", "\t\tv < 9:", "\t}", "\tselect {", "\tcase <-c:", "\t}", "}"]
    assert mutate.enclosing_switch(source, 3) == 2
    assert mutate.enclosing_switch(source, 5) == 2
    assert mutate.enclosing_switch(source, 9) == 8
    assert mutate.enclosing_switch(source, 4) is None  # a case's body
    assert mutate.enclosing_switch(source, 6) is None  # a continued condition: its own coverage


def test_selected_tests_become_an_anchored_run_pattern():
    assert mutate.run_filter(["TestA", "FuzzB"], None) == "^(TestA|FuzzB)$"
    assert mutate.run_filter(["TestA"], "Test/small") == "^(TestA)$/small"  # --go-run's subtests kept


def test_go_test_failing_alone_stops_the_driver(tmp_path):
    """The unmutated tests must pass: with selection, each one run alone."""
    with open(os.path.join(PLANTED, "areas.json")) as f:
        areas = json.load(f)
    failing = dict(areas["go-shapes"], tags="shapes,broken")
    (tmp_path / "areas.json").write_text(json.dumps({"go-broken": failing}))
    done = subprocess.run([sys.executable, os.path.join(HERE, "mutate.py"), "--root", PLANTED,
                           "--config", str(tmp_path / "areas.json"), "--report", str(tmp_path / "r.txt")],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode != 0
    assert "go-broken: 1 of 5 unmutated tests fail when run alone: TestBroken" in done.stderr
    assert "--- FAIL: TestBroken" in done.stderr
    assert not (tmp_path / "r.txt").exists()


def test_python_test_failing_without_the_others_stops_the_driver(tmp_path):
    """With selection, each group of tests a mutant runs must pass unmutated: here a perimeter
    mutant would run test_perimeter_after_area without test_area_first, which it needs."""
    with open(os.path.join(PLANTED, "areas.json")) as f:
        areas = json.load(f)
    ordered = dict(areas["py-shapes"], pytest=["test_shapes_order.py"])
    (tmp_path / "areas.json").write_text(json.dumps({"py-order": ordered}))
    done = subprocess.run([sys.executable, os.path.join(HERE, "mutate.py"), "--root", PLANTED,
                           "--config", str(tmp_path / "areas.json"), "--mutant", "shapes.py:17",
                           "--report", str(tmp_path / "r.txt")],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode != 0
    first = done.stderr.splitlines()[0]
    assert first.startswith("py-order: 1 of 1 groups of unmutated tests fail when run without the others: ")
    assert first.endswith(": test_shapes_order.py::test_perimeter_after_area")  # as pytest's summary names it
    assert "assert [] == ['area']" in done.stderr
    assert not (tmp_path / "r.txt").exists()


def test_lines_run_on_import_are_told_from_function_bodies():
    src = ("X = 1 + 2\n\n@deco(3 - 1)\ndef f(a=4 * 2,\n      b: int = 5):\n    return a < b\n\n"
           "class C:\n    Y = X or 0\n\n    def m(self):\n        return lambda v: v + 1\n\n"
           "Z = sorted([2, 1], key=lambda v: -v)\n")
    assert mutate.import_time_lines(src) == {1, 3, 4, 5, 9, 14}


def test_failed_node_ids_keep_their_spaces():
    out = "FAILED t.py::test_a[2 by 3] - assert 1 == 2\nERROR t.py::test_b\n1 failed, 1 error in 0.1s\n"
    assert mutate.failed_tests(out) == ["t.py::test_a[2 by 3]", "t.py::test_b"]
    assert mutate.node_id_of_context("t.py::test_a[x|y]|run") == "t.py::test_a[x|y]"


def test_equivalent_mutants_are_reported_apart_with_their_reason(report):
    _, text = report
    section = text.split("go-good, equivalent (outside the score):\n")[1]
    assert section.startswith("  go/calc.go:7:7: '<' -> '<=': v == lo returns lo either way.\n")
    # An entry that a test kills is named as wrong; one matching no mutant as stale.
    assert "go-good, listed as equivalent but killed (remove their entries):\n  go/calc.go:20:9: '+=' -> '-='" in text
    assert "go-nothing, listed as equivalent but killed" not in text
    stale = text.split("equivalence entries that match no mutant")[1]
    assert "go/calc.go: if v \u27e6<=\u27e7 lo { => '<'" in stale
    assert "\u27e6<\u27e7 lo: =>" not in stale


def test_equivalence_file_format_is_checked(tmp_path):
    bad = tmp_path / "eq.txt"
    bad.write_text("go/calc.go: if v \u27e6<\u27e7 lo { => '<='\n")  # no reason
    with pytest.raises(ValueError, match="without its reason"):
        mutate.read_equivalents(str(bad))
    bad.write_text("go/calc.go: if v < lo { => '<='\n    unmarked\n")
    with pytest.raises(ValueError, match="token marked"):
        mutate.read_equivalents(str(bad))
    good = tmp_path / "good.txt"
    good.write_text("# two entries share a reason\na.go: x \u27e6<\u27e7 y => '<='\na.go: x \u27e6<\u27e7 y => '>='\n"
                    "    one\n    reason\nb.py: \u27e6not \u27e7z => ''\n    another\n")
    got = [(e.path, e.site, e.new, e.why) for e in mutate.read_equivalents(str(good))]
    assert got == [("a.go", "x \u27e6<\u27e7 y", "<=", "one reason"), ("a.go", "x \u27e6<\u27e7 y", ">=", "one reason"),
                   ("b.py", "\u27e6not \u27e7z", "", "another")]


def test_mutant_names_select_one_site():
    src = "package p\nfunc f(a, b int) bool { return a < b && b > 0 }\n"
    ms = mutate.clike_mutants("a", "p/x.go", src, False)
    assert {(m.col, m.new) for m in mutate.select(ms, ["x.go:2:34"])} == {(34, "<="), (34, ">=")}
    assert len(mutate.select(ms, ["p/x.go:2"])) == len(ms)
    assert mutate.select(ms, ["x.go:3"]) == []


def test_native_relink_only_for_function_bodies_and_c():
    src = ("package p\n\nconst (\n\tA = 1 << 2\n)\n\nvar b = A + 1\n\n"
           "// f's comment, a < b\nfunc f(x int) bool {\n\tif x > 0 {\n\t\treturn x < A\n\t}\n\treturn false\n}\n"
           "func g() int { return 2 * 3 }\n")
    ms = mutate.clike_mutants("native", "pyapi/x.go", src, False)
    assert {m.line for m in ms if mutate.relinkable(src, m)} == {11, 12, 14, 16}
    assert {m.line for m in ms if not mutate.relinkable(src, m)} == {4, 7}
    c = "static int f(int a) { return a < 2; }\n"
    assert all(mutate.relinkable(c, m) for m in mutate.clike_mutants("native", "pyapi/x.c", c, True))


GOPY_OUT = """--- building package ---
go build -mod=mod -buildmode=c-shared -ldflags=-s -w -o engine_go.so .
CGO_CFLAGS="-I/py/include" -fPIC -Ofast
CGO_LDFLAGS=-shared -L/py/lib -s
go build -mod=mod -buildmode=c-shared -ldflags=-s -w -o _engine.abi.so .
BUILT /src/gen/_abi/_engine.abi.so
"""


def test_native_relink_repeats_gopys_last_build():
    r = mutate.Relink.parse(GOPY_OUT, "/src/gen/_abi/_engine.abi.so", {"GOFLAGS": "-mod=mod", "HOME": "/h"})
    assert r.gen_dir == "/src/gen/_abi"
    assert r.cmd == ["go", "build", "-mod=mod", "-buildmode=c-shared", "-ldflags=-s -w", "-o", "_engine.abi.so", "."]
    assert r.env["CGO_CFLAGS"] == '"-I/py/include" -fPIC -Ofast' and r.env["CGO_LDFLAGS"] == "-shared -L/py/lib -s"
    assert r.env["GOFLAGS"] == "-mod=mod -mod=mod -trimpath" and r.env["CGO_LDFLAGS_ALLOW"] == "-fwrapv"
    assert r.env["HOME"] == "/h"
    # Anything not as expected: no relink, the whole gopy build for every mutant.
    assert mutate.Relink.parse(GOPY_OUT, "", {}) is None
    assert mutate.Relink.parse(GOPY_OUT, "/src/gen/_abi/_other.so", {}) is None
    assert mutate.Relink.parse(GOPY_OUT.replace("CGO_LDFLAGS", "LDFLAGS"), "/src/gen/_abi/_engine.abi.so", {}) is None


def test_go_build_failure_is_not_viable_and_hang_is_a_timeout(report):
    fates, _ = report
    for area in ("go-nothing", "go-good"):
        assert fates[area][("go/calc.go", 27, "-")] == "not viable"  # string minus string
        assert fates[area][("go/calc.go", 19, "--")] == "timeout"  # i-- never reaches n


def test_assert_nothing_python_suite_scores_zero(report):
    fates, text = report
    assert sorted(fates["py-nothing"].values()) == ["equivalent"] + ["lived"] * 4
    assert "py-nothing: score 0.0% (0 killed of 4: lived 4, uncovered 0)" in text


def test_asserting_python_suite_kills_all_but_the_equivalent(report):
    fates, _ = report
    got = fates["py-good"]
    assert {k for k, v in got.items() if v in ("lived", "equivalent")} == EQUIVALENT_PY
    assert got[("py/src/plantedpkg/__init__.py", 5, "<=")] == "equivalent"
    assert statuses(got).count("killed") == 3


def test_python_test_ended_by_pytest_timeout_is_a_timeout(report):
    fates, text = report
    got = fates["py-hang"]
    # i += 1 made -= never reaches n: pytest-timeout (1 s) ends the run, well inside
    # the driver's limit (15 s at least), and prints no summary.
    assert got[("py/src/plantedpkg/steps.py", 8, "-=")] == "timeout"
    assert got[("py/src/plantedpkg/steps.py", 7, "==")] == "killed"
    assert "py-hang: score 100.0% (1 killed of 1: lived 0, uncovered 0); timeout 1," in text


def test_python_test_holding_the_gil_is_ended_by_the_watchdog(records):
    runs, text = records
    got = runs["py-gil"]
    # n - 50 made n + 50 backtracks without end inside the regular expression engine, which
    # holds the GIL: pytest-timeout (1 s) cannot fire; faulthandler's watchdog ends the run at
    # 2 s, before the driver's own limit (15 s at least), which would leave no detail.
    hang = got[("py/src/plantedpkg/backtrack.py", 7, "+")]
    assert hang["status"] == "timeout"
    assert hang["detail"] == "Timeout (0:00:02)!"
    assert "py-gil: score 100.0% (3 killed of 3: lived 0, uncovered 0); timeout 1," in text


@pytest.mark.parametrize("out, want", [
    # gremlins' `--test-cpu 1` reached the test binary as one argument: exit 1, no test ran.
    ("flag provided but not defined: -cpu 1\nUsage of /tmp/x.test:\nFAIL\tpkg\t0.01s\n", "error"),
    ("# pkg\n./a.go:3:9: invalid operation\nFAIL\tpkg [build failed]\n", "not viable"),
    ("--- FAIL: TestX (0.00s)\n    x_test.go:9: wrong\nFAIL\nFAIL\tpkg\t0.1s\n", "killed"),
    ("panic: runtime error: index out of range\n\ngoroutine 7 [running]:\nFAIL\tpkg\t0.1s\n", "killed"),
    ("panic: test timed out after 5s\n\trunning tests:\nFAIL\tpkg\t5.0s\n", "timeout"),
    ("ok  \tpkg\t0.3s\n", "lived"),
    ("fatal error: concurrent map writes\n\ngoroutine 9 [running]:\nFAIL\tpkg\t0.1s\n", "crashed"),
    # The binary killed by a signal, not by the driver: the OOM killer, a fault in C.
    ("=== RUN   TestX\nsignal: killed\nFAIL\tpkg\t58.231s\n", "crashed"),
    ("signal: segmentation fault (core dumped)\nFAIL\tpkg\t0.2s\n", "crashed"),
    ("", "error"),
])
def test_go_output_is_judged_by_what_the_tests_said(out, want):
    assert mutate.judge_go(out, False)[0] == want


@pytest.mark.parametrize("out, want", [
    ("FAILED test_a.py::test_x - assert 1 == 2\n1 failed, 3 passed in 0.2s\n", "killed"),
    ("ERROR test_a.py::test_x - RuntimeError\n1 error, 3 passed in 0.2s\n", "killed"),
    # The mutated package raised on import: the test module that imports it reports it.
    ("ERROR collecting test_a.py\nInterrupted: 1 error during collection\n", "killed"),
    ("4 passed in 0.2s\n", "lived"),
    ("test_a.py ..\nFatal Python error: Segmentation fault\n\nCurrent thread 0x1:\n", "crashed"),
    ("....Fatal Python error: Segmentation fault\n\nCurrent thread 0x1:\n", "crashed"),  # after -q's dots
    ("no tests ran in 0.01s\n", "error"),
    # pytest-timeout's thread method: the stacks between two banners, then os._exit(1).
    ("test_a.py ..+++++ Timeout +++++\n~~ Stack of MainThread (1) ~~\n  File \"a.py\", line 3\n"
     "+++++ Timeout +++++\n", "timeout"),
    # Its signal method fails the test instead.
    ("FAILED test_a.py::test_x - Failed: Timeout >1.0s\n1 failed in 1.2s\n", "timeout"),
    # tools/mutate_watchdog.py: faulthandler's stacks after -q's dots, then _exit(1).
    ("test_a.py ..Timeout (0:04:00)!\nThread 0x1 (most recent call first):\n  File \"a.py\", line 3 in f\n",
     "timeout"),
])
def test_pytest_output_is_judged_by_its_summary(out, want):
    assert mutate.judge_py(out, False)[0] == want


def test_mutant_sites_skip_strings_comments_types_and_signs():
    src = 'package p\n// a < b\nvar s = "x == y" + t\nfunc f(p *T, n int) int { return -n + p.v*2 }\n'
    sites = {(m.old, m.new) for m in mutate.clike_mutants("a", "p.go", src, False)}
    assert sites == {("+", "-"), ("*", "/")}


def test_plus_beside_a_string_literal_makes_no_mutant():
    """`-` on strings does not compile: no `+` or `+=` beside a literal, raw or not, is mutated;
    the `+` between two names, and `+=` after a literal's line, are."""
    src = ('package p\nfunc f(s, t string, n int) string {\n\tu := `a` + s + "b"\n\tu += `c`\n'
           '\tu += "d"\n\tn += 1\n\treturn u + s[:n] + t\n}\n')
    sites = {(m.line, m.old) for m in mutate.clike_mutants("a", "p.go", src, False)}
    assert sites == {(6, "+="), (7, "+")}


def bracket_lines():
    """The lines of the planted Bracket's `+` and `+=`, each beside a string literal."""
    with open(os.path.join(PLANTED, "go", "calc.go")) as f:
        lines = {i for i, line in enumerate(f, 1) if "`[` + s" in line or 'out += "]"' in line}
    assert len(lines) == 2
    return lines


def test_planted_concatenations_make_no_mutant(report):
    fates, _ = report
    for area in ("go-nothing", "go-good"):
        assert [k for k in fates[area] if k[0] == "go/calc.go" and k[1] in bracket_lines()] == []


def test_equivalence_entries_tell_identical_lines_apart(tmp_path):
    src = ("package p\n\nfunc f(a, b []int) (n int) {\n\tfor i := range a {\n\t\tif i > 0 {\n\t\t\tn++\n\t\t}\n\t}\n"
           "\tfor i := range b {\n\t\tif i > 0 {\n\t\t\tn--\n\t\t}\n\t}\n\treturn\n}\n")
    ms = mutate.locate(mutate.clike_mutants("a", "p.go", src, False), src)
    eq = tmp_path / "eq.txt"
    eq.write_text("p.go: if i \u27e6>\u27e7 0 { => '>='\n    ambiguous\n"
                  "p.go: for i := range b { \u23ce if i \u27e6>\u27e7 0 { => '<='\n    the second loop's\n")
    entries = mutate.read_equivalents(str(eq))
    mutate.mark_equivalents(ms, entries)
    assert [(e.matched, e.ambiguous) for e in entries] == [(2, True), (1, False)]  # the first: applied to neither
    assert [(m.line, m.new) for m in ms if m.why] == [(10, "<=")]
    assert all(m.why == "the second loop's" for m in ms if m.why)
