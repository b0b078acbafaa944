"""The reference for the intake benchmark: a bare Flask route, served the same way as the service."""

from flask import Flask, jsonify


def create_app() -> Flask:
    app = Flask(__name__)

    @app.post("/webhooks/<helpdesk>/<workspace_id>")
    def receive(helpdesk: str, workspace_id: str):
        return jsonify(status="accepted"), 202

    return app
