"""The helpdesks' published SDKs the sidebar tests serve, installed from npm by their lock file."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LOCKED = ROOT / "tests" / "js"
CACHE = ROOT / ".cache" / "npm"


def node_modules() -> Path:
    """.cache/npm/node_modules as tests/js/package-lock.json pins it, installed (`npm ci`) once."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE.parent / "npm.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two xdist workers must not run `npm ci` in one directory at once
        return _installed()


def _installed() -> Path:
    stamp = CACHE / "node_modules" / ".package-lock.json"
    lock = LOCKED / "package-lock.json"
    if stamp.exists() and (CACHE / "package-lock.json").read_bytes() == lock.read_bytes():
        return CACHE / "node_modules"
    if shutil.which("npm") is None:
        if os.environ.get("CI"):
            pytest.fail("npm is missing; the sidebar tests need it to install the helpdesks' SDKs")
        pytest.skip("npm is not installed: the sidebar tests serve the helpdesks' SDKs from npm")
    for name in ("package.json", "package-lock.json"):
        shutil.copyfile(LOCKED / name, CACHE / name)
    # --ignore-scripts: nothing from the registry runs here, and no package downloads anything else
    subprocess.run(
        ["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund"],
        cwd=CACHE,
        check=True,
        capture_output=True,
        timeout=600,
    )
    return CACHE / "node_modules"
