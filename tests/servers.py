"""Real Redis and PostgreSQL servers for the integration tests.

Each server runs from a temporary folder on a free loopback port and is
stopped by the fixture that started it. Nothing is mocked.
"""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from typing import List, Optional


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"server on port {port} did not start within {timeout}s")


class RedisServer:
    """A redis-server with append-only persistence, so a restart keeps the stream."""

    def __init__(self, password: Optional[str] = None) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            raise RuntimeError("redis-server is not installed (make test installs it)")
        self.exe = exe
        self.dir = tempfile.mkdtemp(prefix="redis-test-")
        self.port = free_port()
        self.password = password
        self.proc: Optional[subprocess.Popen] = None
        self.start()

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = [self.exe, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir,
                "--save", "", "--appendonly", "yes", "--appendfsync", "always", "--daemonize", "no"]
        if self.password:
            args += ["--requirepass", self.password]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_port(self.port)

    def command(self, *args: object) -> bytes:
        """One RESP command on a fresh connection; the reply's first line."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            parts = [str(a).encode() for a in args]
            s.sendall(b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts))
            return s.makefile("rb").readline()

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def stop(self) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


def _pg_bin() -> str:
    found = shutil.which("initdb")
    if found:
        return os.path.dirname(os.path.realpath(found))
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    if not dirs:
        raise RuntimeError("PostgreSQL server binaries are not installed (make test installs them)")
    return dirs[-1]


class PostgresServer:
    """A throwaway cluster made with initdb; runs as 'postgres' when we are root."""

    def __init__(self) -> None:
        self.bin = _pg_bin()
        self.dir = tempfile.mkdtemp(prefix="pg-test-")
        self.data = os.path.join(self.dir, "data")
        self.port = free_port()
        self._user = None
        if os.geteuid() == 0:
            self._user = pwd.getpwnam("postgres")
            os.chown(self.dir, self._user.pw_uid, self._user.pw_gid)
        os.chmod(self.dir, 0o755)
        self._run([os.path.join(self.bin, "initdb"), "-D", self.data, "-U", "postgres",
                   "--auth=trust", "-E", "UTF8", "--no-sync"])
        self.start()

    def _demote(self):
        if self._user is None:
            return None
        uid, gid = self._user.pw_uid, self._user.pw_gid

        def demote() -> None:
            os.setgid(gid)
            os.setuid(uid)
        return demote

    def _run(self, args: List[str]) -> None:
        subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       preexec_fn=self._demote(), cwd=self.dir)

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run([os.path.join(self.bin, "pg_ctl"), "-D", self.data, "-o", opts,
                   "-l", os.path.join(self.dir, "log"), "-w", "start"])

    def sql(self, statement: str) -> str:
        """Run one statement with psql and return its unaligned output."""
        psql = shutil.which("psql") or os.path.join(self.bin, "psql")
        out = subprocess.run([psql, "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                              "-d", "postgres", "-XAtqc", statement],
                             check=True, capture_output=True, text=True)
        return out.stdout.strip()

    def stop(self) -> None:
        try:
            self._run([os.path.join(self.bin, "pg_ctl"), "-D", self.data, "-m", "immediate", "stop"])
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.dir, ignore_errors=True)
