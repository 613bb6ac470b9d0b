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


# free_port() gives back a port that another process on the machine (another test run, a
# Go test's cluster) may take before the server binds it: a first start that finds its
# port taken retries on another one, this many times.
START_ATTEMPTS = 5


class PortTaken(Exception):
    """The server could not bind its port."""


def _wait_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"server on port {port} did not start within {timeout}s")


def _start_on_a_free_port(server: "RedisServer | PostgresServer") -> None:
    for attempt in range(START_ATTEMPTS):
        try:
            server.start()
            return
        except PortTaken:
            if attempt == START_ATTEMPTS - 1:
                raise
            server.port = free_port()


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
        _start_on_a_free_port(self)

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = [self.exe, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir,
                "--save", "", "--appendonly", "yes", "--appendfsync", "always", "--daemonize", "no"]
        if self.password:
            args += ["--requirepass", self.password]
        log = os.path.join(self.dir, "log")
        written = os.path.getsize(log) if os.path.exists(log) else 0
        self.proc = subprocess.Popen(args + ["--logfile", log], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        # Its own log says when it listens: a connection could reach whoever took the port.
        deadline = time.monotonic() + 60.0
        while time.monotonic() < deadline:
            said = ""
            if os.path.exists(log):
                with open(log, errors="replace") as f:
                    f.seek(written)
                    said = f.read()
            if "Ready to accept connections" in said:
                return
            if self.proc.poll() is not None:
                self.proc = None
                if "Address already in use" in said:
                    raise PortTaken(f"port {self.port} was taken")
                raise RuntimeError(f"redis-server exited: {said[-500:]}")
            time.sleep(0.05)
        raise RuntimeError(f"redis-server on port {self.port} did not start within 60 s")

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
        _start_on_a_free_port(self)

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
        log = os.path.join(self.dir, "log")
        written = os.path.getsize(log) if os.path.exists(log) else 0
        try:
            # -t: pg_ctl's 60 s default wait is short on a loaded machine.
            self._run([os.path.join(self.bin, "pg_ctl"), "-D", self.data, "-o", opts,
                       "-l", log, "-t", "300", "-w", "start"])
        except subprocess.CalledProcessError:
            with open(log, errors="replace") as f:
                f.seek(written)
                if "Address already in use" in f.read():
                    raise PortTaken(f"port {self.port} was taken") from None
            raise

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
