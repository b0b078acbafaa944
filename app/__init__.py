"""helpdesk-klaviyo: helpdesk webhooks in, Klaviyo events and profiles out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Flask, jsonify

from app.config import Settings


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the web application; nothing is read or started before this is called."""
    app = Flask(__name__, instance_relative_config=True, template_folder="../templates")
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    app.config.from_mapping(Settings.from_env(Path(app.instance_path)).as_flask_config())
    if test_config:
        app.config.from_mapping(test_config)

    @app.get("/healthz")
    def healthz():  # the process is up and serving; dependencies are /readyz's business
        return jsonify(status="ok")

    return app
