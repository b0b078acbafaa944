"""The host pages' shared parts: the page around a desk, a 320 px sidebar, and calls to this machine only."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode, urlsplit

from flask import Response, render_template_string, request

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


def page_template(*, title: str, style: str, header: str, desk: str, scripts: str = "") -> str:
    """A host page's Jinja template: a `header` bar over the `desk`, then the page's `scripts`."""
    return f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>{title}</title>
  <link rel="icon" href="data:,">
  <style>{style}</style>
</head>
<body>
  <header>{header}</header>
  <div class="desk">{desk}</div>{scripts}
</body>
</html>
"""


def html_page(template: str, **context: Any) -> Response:
    """`template` rendered with `context`, answered as an HTML page."""
    return Response(render_template_string(template, **context), 200, content_type="text/html; charset=utf-8")


def script(body: str) -> Response:
    """`body` answered as a JavaScript file."""
    return Response(body, 200, content_type="text/javascript; charset=utf-8")


def page_json(value: Any) -> str:
    """`value` as JSON that cannot close the `<script type="application/json">` it is put in."""
    return json.dumps(value).replace("<", "\\u003c")


def chosen(name: str, choices: list) -> int:
    """The index the query parameter `name` picks in `choices`, held to the list (0 when absent)."""
    return min(max(request.args.get(name, 0, type=int), 0), len(choices) - 1)


def with_query(url: str, params: dict[str, str]) -> str | None:
    """`url` with `params` added to its query, or None when it is not an absolute http(s) URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    joiner = "&" if parts.query else "?"
    return f"{url}{joiner}{urlencode(params)}"


def loopback_url(url: str) -> str | None:
    """`url` when it is http(s) on this machine, else None: a sandbox never calls anywhere else."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or parts.hostname not in LOOPBACK_HOSTS:
        return None
    return url
