"""What the sidebar hosts' pages share: a desk with a 320 px sidebar, and calls to this machine only."""

from __future__ import annotations

from urllib.parse import urlsplit

SIDEBAR_WIDTH = 320
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")

DESK_STYLE = f"""
    body {{ margin: 0; font: 14px/1.45 system-ui, sans-serif; color: #1b1f24; background: #f3f4f6; }}
    header {{ padding: 10px 16px; color: #fff; font-weight: 600; background: #1f2a44; }}
    .desk {{ display: grid; grid-template-columns: 180px 1fr {SIDEBAR_WIDTH}px; min-height: 560px; }}
    .threads {{ display: flex; flex-direction: column; gap: 4px; padding: 12px;
      border-right: 1px solid #d0d7de; }}
    .threads a {{ color: inherit; padding: 6px 8px; border-radius: 6px; text-decoration: none; }}
    .threads a[aria-current="page"] {{ background: #dde3ea; font-weight: 700; }}
    .thread {{ padding: 16px; }}
    .sidebar {{ box-sizing: border-box; width: {SIDEBAR_WIDTH}px; background: #fff;
      border-left: 1px solid #d0d7de; padding: 10px 12px; overflow-wrap: anywhere; }}
    .sidebar h2 {{ font-size: .75rem; text-transform: uppercase; letter-spacing: .04em; margin: 0 0 8px; }}
    .sidebar .muted {{ color: #57606a; font-size: .75rem; }}
"""


def loopback_url(url: str) -> str | None:
    """`url` when it is http(s) on this machine, else None: a sandbox never calls anywhere else."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or parts.hostname not in LOOPBACK_HOSTS:
        return None
    return url
