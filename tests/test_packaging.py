"""The release artifacts: what the sdist carries, the build's message when Go is
missing or too old, and the manylinux wheels `make wheels` writes to dist/.

Runs with the dev tools (.venv: build, setuptools, auditwheel) after `make wheels`;
`make test` does both. The phase 1 tests against each installed wheel (no Go on
PATH) and against the installed sdist are run by `make wheels` and `make sdist-check`.
"""
import email.parser
import glob
import os
import re
import subprocess
import sys
import tarfile
import zipfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIST = os.path.join(ROOT, "dist")
VERSION_FILE = "python/fraiseql/subscriptions/_version.py"
with open(os.path.join(ROOT, VERSION_FILE)) as _f:
    __version__ = re.search(r'^__version__ = "([^"]+)"$', _f.read(), re.MULTILINE).group(1)

NAME = f"fraiseql_subscriptions-{__version__}"
TAGS = ["cp39", "cp310", "cp311", "cp312", "cp313"]
PLATFORM = "manylinux2014_x86_64.manylinux_2_17_x86_64"
# Libraries a Go c-shared extension may need: glibc's, nothing else (no libpython).
GLIBC_LIBS = {"libc.so.6", "libpthread.so.0", "libresolv.so.2", "libdl.so.2", "libm.so.6"}


def go_version_needed():
    with open(os.path.join(ROOT, "go.mod")) as f:
        return re.search(r"^go (\S+)$", f.read(), re.MULTILINE).group(1)


def without_go(path):
    return os.pathsep.join(p for p in path.split(os.pathsep) if p and not os.path.exists(os.path.join(p, "go")))


@pytest.fixture(scope="module")
def sdist():
    found = glob.glob(os.path.join(DIST, NAME + ".tar.gz"))
    assert found, "no sdist in dist/: run make sdist (or make wheels)"
    return found[0]


# ---- the sdist ---------------------------------------------------------------

def test_sdist_carries_every_file_the_build_needs_and_nothing_else(sdist):
    with tarfile.open(sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
        files = {m.name.split("/", 1)[1] for m in tar.getmembers() if m.isfile()}
    go_sources = {os.path.relpath(p, ROOT) for d in ("subscriptions", "pyapi")
                  for p in glob.glob(os.path.join(ROOT, d, "*.go")) if not p.endswith("_test.go")}
    c_sources = {os.path.relpath(p, ROOT) for d in ("subscriptions", "pyapi")
                 for ext in ("c", "h") for p in glob.glob(os.path.join(ROOT, d, "*." + ext))}
    python = {os.path.relpath(p, ROOT) for ext in ("py", "pyi", "typed")
              for p in glob.glob(os.path.join(ROOT, "python", "**", "*." + ext), recursive=True)}
    expected = ({"go.mod", "go.sum", "setup.py", "pyproject.toml", "MANIFEST.in", "README.md", "LICENSE",
                 "gen/README.md", "sql/fraiseql_events.sql", "PKG-INFO", "setup.cfg"} | go_sources | c_sources | python)
    metadata = {n for n in files if n.startswith("python/fraiseql_subscriptions.egg-info/")}
    assert files - metadata == expected
    assert go_sources and "pyapi/executor.go" in go_sources and "subscriptions/executor.go" in go_sources
    assert not [n for n in names if n.endswith("_test.go") or "/testdata" in n or n.startswith(("internal", "tests"))
                or n.endswith((".so", ".pyc")) or re.match(r"gen/_", n)]


def test_sdist_metadata_is_what_an_index_shows(sdist):
    with tarfile.open(sdist) as tar:
        pkg_info = tar.extractfile(f"{NAME}/PKG-INFO").read().decode()
    meta = email.parser.Parser().parsestr(pkg_info)
    assert meta["Name"] == "fraiseql-subscriptions" and meta["Version"] == __version__
    assert meta["License-Expression"] == "MIT" and meta["Requires-Python"] == ">=3.9"
    assert meta["Description-Content-Type"] == "text/markdown"
    with open(os.path.join(ROOT, "README.md")) as f:
        assert meta.get_payload().strip() == f.read().strip()
    classifiers = meta.get_all("Classifier")
    assert [c for c in classifiers if c.startswith("Programming Language :: Python :: 3.")] == [
        f"Programming Language :: Python :: 3.{v}" for v in (9, 10, 11, 12, 13)]
    assert "Operating System :: POSIX :: Linux" in classifiers and "Typing :: Typed" in classifiers
    urls = dict(u.split(", ", 1) for u in meta.get_all("Project-URL"))
    assert urls["Source"] == "https://github.com/fraiseql/fraiseql-subscriptions"


def test_version_is_written_once():
    code = "import fraiseql.subscriptions as s; print(s.__version__)"
    # Run in python/: the source tree's package, whatever is installed.
    out = subprocess.run([sys.executable, "-c", code], cwd=os.path.join(ROOT, "python"), capture_output=True,
                         text=True, check=True).stdout
    assert out == f"{__version__}\n"
    hits = subprocess.run(["git", "grep", "-l", "-F", f'"{__version__}"', "--", "*.py", "*.toml", "*.cfg"],
                          cwd=ROOT, capture_output=True, text=True).stdout.split()
    assert hits == [VERSION_FILE]


# ---- building without a usable Go ----------------------------------------------

FAKE_GO = {
    "too old": ('echo go1.20.14', "{go} is go1.20.14"),
    # A Go 1.21+ that may not switch toolchains says why; that line is passed on.
    "cannot switch": ('echo "go: go.mod requires go >= {need} (running go 1.22.0; GOTOOLCHAIN=local)" >&2; exit 1',
                      "{go} is go version go1.22.0 linux/amd64 (go: go.mod requires go >= {need} "
                      "(running go 1.22.0; GOTOOLCHAIN=local))"),
}


def build_wheel_from(sdist, tmp_path, path):
    """`python -m build --wheel` on the unpacked sdist, with this PATH; returns (rc, output)."""
    with tarfile.open(sdist) as tar:
        tar.extractall(tmp_path, filter="data") if hasattr(tarfile, "data_filter") else tar.extractall(tmp_path)
    env = dict(os.environ, PATH=path)
    # No isolation: the build tools are this interpreter's, so the test needs no network.
    proc = subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir",
                           str(tmp_path / "out"), str(tmp_path / NAME)], env=env, capture_output=True, text=True)
    return proc.returncode, proc.stdout + proc.stderr


def expected_message(found):
    need = go_version_needed()
    return (f"error: Building fraiseql-subscriptions from source needs Go {need} or newer on PATH: {found}.\n"
            f"Install Go (https://go.dev/dl/), or let an older Go 1.21+ fetch {need} itself (GOTOOLCHAIN=auto,\n"
            "the default), then retry. Wheels that need no Go (CPython 3.9-3.13, Linux x86_64, glibc 2.17\n"
            "or newer) are built by `make wheels` in the source repository; install one of those instead\n"
            "to skip this build.\n")


def test_build_without_go_says_what_is_needed(sdist, tmp_path):
    path = os.path.dirname(sys.executable) + os.pathsep + without_go(os.environ["PATH"])
    rc, out = build_wheel_from(sdist, tmp_path, path)
    assert rc != 0
    assert expected_message("no `go` command was found") in out
    assert "Traceback" not in out
    assert not os.path.exists(tmp_path / "out") or not os.listdir(tmp_path / "out")


@pytest.mark.parametrize("case", sorted(FAKE_GO))
def test_build_with_old_go_says_what_is_needed(sdist, tmp_path, case):
    script, found = FAKE_GO[case]
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    go = bin_dir / "go"
    need = go_version_needed()
    go.write_text('#!/bin/sh\ncase "$*" in\n'
                  '  version) echo "go version go%s linux/amd64";;\n' % ("1.20.14" if case == "too old" else "1.22.0")
                  + '  "env GOVERSION") %s;;\n' % script.format(need=need)
                  + '  *) exit 2;;\nesac\n')
    go.chmod(0o755)
    path = os.pathsep.join([str(bin_dir), os.path.dirname(sys.executable), without_go(os.environ["PATH"])])
    rc, out = build_wheel_from(sdist, tmp_path, path)
    assert rc != 0
    assert expected_message(found.format(go=go, need=need)) in out
    assert "Traceback" not in out


# ---- the wheels ----------------------------------------------------------------

def wheel(tag):
    found = glob.glob(os.path.join(DIST, f"{NAME}-{tag}-{tag}-{PLATFORM}.whl"))
    assert len(found) == 1, f"expected one {tag} {PLATFORM} wheel in dist/ (make wheels), found {found}"
    return found[0]


def test_dist_holds_exactly_the_sdist_and_five_manylinux_wheels():
    assert sorted(os.listdir(DIST)) == sorted([NAME + ".tar.gz"] + [os.path.basename(wheel(t)) for t in TAGS])


@pytest.mark.parametrize("tag", TAGS)
def test_wheel_is_manylinux2014_and_does_not_link_libpython(tag, tmp_path):
    path = wheel(tag)
    show = subprocess.run([sys.executable, "-m", "auditwheel", "show", path], capture_output=True, text=True,
                          check=True).stdout
    show = " ".join(show.split())
    # The glibc symbols used allow an even older tag; Go's runtime needs Linux 3.2+, so 2014 is the floor.
    m = re.search(r'consistent with the following platform tag: "manylinux_2_(\d+)_x86_64"', show)
    assert m and int(m.group(1)) <= 17, show
    assert "The wheel requires no external shared libraries!" in show
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        (so,) = [n for n in names if n.startswith("fraiseql/_native/_engine") and n.endswith(".so")]
        assert so.endswith(f".cpython-{tag[2:]}-x86_64-linux-gnu.so")
        zf.extract(so, tmp_path)
        wheel_meta = zf.read(f"{NAME}.dist-info/WHEEL").decode()
    assert f"Tag: {tag}-{tag}-manylinux_2_17_x86_64" in wheel_meta
    assert f"Tag: {tag}-{tag}-manylinux2014_x86_64" in wheel_meta
    assert not [n for n in names if n.endswith((".go", ".c", ".h", "_test.py")) or ".libs/" in n]
    dynamic = subprocess.run(["readelf", "-d", str(tmp_path / so)], capture_output=True, text=True,
                             check=True).stdout
    needed = set(re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", dynamic))
    assert needed and needed <= GLIBC_LIBS, needed
    assert "RPATH" not in dynamic and "RUNPATH" not in dynamic
    versions = subprocess.run(["readelf", "-V", "--wide", str(tmp_path / so)], capture_output=True, text=True,
                              check=True).stdout
    glibc = {tuple(int(x) for x in v.split(".")) for v in re.findall(r"GLIBC_([0-9.]+)", versions)}
    assert glibc and max(glibc) <= (2, 17), sorted(glibc)


# ---- beside FraiseQL -------------------------------------------------------------
# PyPI's `fraiseql` (2.x) ships fraiseql/__init__.py; this distribution ships only
# sub-packages FraiseQL does not have, so either installs, and uninstalls, without
# touching the other's files.

PROBE = r'''
import json, importlib.metadata as md, sys
out = {}
try:
    import fraiseql
    out["exports"] = sorted(n for n in getattr(fraiseql, "__all__", []) if hasattr(fraiseql, n))
    out["version"] = getattr(fraiseql, "__version__", None)
except ImportError as exc:
    out["exports"] = "ImportError: %s" % exc
try:
    from fraiseql import _fraiseql_rs
    ex = _fraiseql_rs.subscriptions.PySubscriptionExecutor()
    ex.register_subscription("c", "s", "subscription { users { id } }", user_id="u", tenant_id="t")
    ex.publish_event("userCreated", "users", {"id": 1})
    out["engine"] = ex.next_event("s").decode()
    ex.close()
except ImportError as exc:
    out["engine"] = "ImportError: %s" % exc
out["files"] = {}
for name in ("fraiseql", "fraiseql-subscriptions"):
    try:
        out["files"][name] = sorted(str(f) for f in md.files(name) if not str(f).startswith(".."))
    except md.PackageNotFoundError:
        pass
print(json.dumps(out))
'''
ENGINE_OK = '{"type":"next","id":"s","payload":{"data":{"users":{"id":1}}}}'


@pytest.fixture(scope="module")
def fraiseql_wheelhouse(tmp_path_factory):
    """The newest `fraiseql` on the index and its dependencies, downloaded once."""
    house = tmp_path_factory.mktemp("wheelhouse")
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check", "--only-binary=:all:",
                    "-d", str(house), "fraiseql"], check=True)
    (real,) = glob.glob(str(house / "fraiseql-*.whl"))
    return house, real


def venv_env():
    """The environment without PYTHONPATH (make packaging-test points it at the source tree)."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def pip(venv, *args):
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "-q", "--disable-pip-version-check", *args],
                   env=venv_env(), check=True)


def probe(venv):
    out = subprocess.run([str(venv / "bin" / "python"), "-c", PROBE], cwd=str(venv), env=venv_env(),
                         capture_output=True, text=True, check=True).stdout
    return __import__("json").loads(out)


@pytest.mark.parametrize("first", ["fraiseql", "fraiseql-subscriptions"])
def test_installs_beside_fraiseql_in_either_order_and_uninstalls_cleanly(first, fraiseql_wheelhouse, tmp_path):
    house, real = fraiseql_wheelhouse
    ours = wheel("cp%d%d" % sys.version_info[:2])
    install = {"fraiseql": ["--no-index", "--find-links", str(house), real], "fraiseql-subscriptions": [ours]}
    second = "fraiseql" if first == "fraiseql-subscriptions" else "fraiseql-subscriptions"
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)

    # What FraiseQL alone exports, to compare with.
    pip(venv, "install", *install["fraiseql"])
    alone = probe(venv)
    assert isinstance(alone["exports"], list) and len(alone["exports"]) > 20, alone["exports"]
    assert alone["engine"].startswith("ImportError")
    fraiseql_files = set(alone["files"]["fraiseql"])
    assert "fraiseql/__init__.py" in fraiseql_files
    pip(venv, "uninstall", "-y", "fraiseql")

    pip(venv, "install", *install[first])
    pip(venv, "install", *install[second])
    both = probe(venv)
    assert both["exports"] == alone["exports"] and both["version"] == alone["version"]
    assert both["engine"] == ENGINE_OK
    ours_files = set(both["files"]["fraiseql-subscriptions"])
    assert not ours_files & fraiseql_files
    assert set(both["files"]["fraiseql"]) == fraiseql_files

    # Uninstalling either leaves the other whole; then the other way round.
    pip(venv, "uninstall", "-y", "fraiseql-subscriptions")
    left = probe(venv)
    assert left["exports"] == alone["exports"] and left["engine"].startswith("ImportError")
    pip(venv, "install", *install["fraiseql-subscriptions"])
    pip(venv, "uninstall", "-y", "fraiseql")
    left = probe(venv)
    assert left["engine"] == ENGINE_OK and left["exports"] == [] and left["version"] is None
    assert set(left["files"]) == {"fraiseql-subscriptions"}
