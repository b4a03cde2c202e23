"""A real PostgreSQL server for the store's tests, started by the test session on a free loopback port.

The server comes from PyPI (the `pgserver` wheel ships PostgreSQL's binaries), so `make test` gets it on a fresh
machine; a system PostgreSQL (pg_config, or Debian's /usr/lib/postgresql/*/bin) is used when that wheel is absent.
PostgreSQL refuses to run as root: as root, the server runs as `nobody`.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from emulators._net import free_port


def binaries() -> Path:
    spec = importlib.util.find_spec("pgserver")
    if spec and spec.submodule_search_locations:
        path = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
        if (path / "postgres").exists():
            return path
    if pg_config := shutil.which("pg_config"):
        path = Path(subprocess.run([pg_config, "--bindir"], capture_output=True, text=True).stdout.strip())
        if (path / "postgres").exists():
            return path
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if (Path(candidate) / "postgres").exists():
            return Path(candidate)
    raise RuntimeError("no PostgreSQL server binaries: `pip install pgserver` (make test installs it)")


class PostgresServer:
    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="syncbot-pg-"))
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self._user = "nobody" if os.geteuid() == 0 else None

    def _run(self, *command: str) -> None:
        subprocess.run(command, check=True, capture_output=True, user=self._user, timeout=120)

    def _reachable(self, bin_dir: Path) -> Path:
        """The binaries where `nobody` can run them: a copy when the install lies under a private folder (/root)."""
        if self._user is None:
            return bin_dir
        private = any(not path.stat().st_mode & 0o001 for path in [bin_dir, *bin_dir.parents])
        if not private:
            return bin_dir
        # The wheel's binaries find their libraries at $ORIGIN/../../../pgserver.libs: keep that layout.
        install, package = bin_dir.parent, bin_dir.parent.parent
        copy = self.root / "pg" / package.name / install.name
        shutil.copytree(install, copy, symlinks=True)
        libs = package.parent / f"{package.name}.libs"
        if libs.is_dir():
            shutil.copytree(libs, self.root / "pg" / libs.name, symlinks=True)
        return copy / "bin"

    def start(self) -> PostgresServer:
        self.root.chmod(0o755)
        bin_dir = self._reachable(binaries())
        data, sockets = self.root / "data", self.root / "sockets"
        sockets.mkdir(parents=True)
        if self._user:
            for path in (self.root, sockets):
                shutil.chown(path, self._user)
        self._run(str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "--encoding=UTF8",
                  "--no-sync")
        self.log = (self.root / "server.log").open("ab")
        # fsync off: a test server, thrown away at the end of the session
        self.process = subprocess.Popen(
            [str(bin_dir / "postgres"), "-D", str(data), "-p", str(self.port), "-h", "127.0.0.1", "-k", str(sockets),
             "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
             "-c", "max_connections=200"], stdout=self.log, stderr=subprocess.STDOUT, user=self._user)
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        import psycopg

        deadline = time.monotonic() + 30
        while True:
            try:
                psycopg.connect(self.url("postgres"), connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if self.process is None or self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the test PostgreSQL server did not start: "
                                       + (self.root / "server.log").read_text(errors="replace")[-2000:]) from None
                time.sleep(0.1)

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh, empty database; its URL."""
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url("postgres"), autocommit=True) as connection:
            connection.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()  # smart shutdown… then fast
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        if hasattr(self, "log"):
            self.log.close()
        shutil.rmtree(self.root, ignore_errors=True)
