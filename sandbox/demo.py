"""`flask demo`: a few signed Kustomer conversations through the running service, into the Klaviyo sandbox."""

from __future__ import annotations

import time
import uuid

import click
import requests
from flask import current_app
from sqlalchemy import select

from app.card.views import signed_url
from app.extensions import db
from app.models import Workspace, new_webhook_secret
from sandbox import klaviyo as klaviyo_sandbox
from sandbox import kustomer as kustomer_sandbox


def _demo_workspace() -> Workspace:
    workspace = db.session.scalar(select(Workspace).filter_by(name="Demo", helpdesk="kustomer"))
    if workspace is None:
        workspace = Workspace(name="Demo", helpdesk="kustomer", settings={})
        workspace.klaviyo_key = klaviyo_sandbox.DEFAULT_API_KEY
        workspace.helpdesk_key = kustomer_sandbox.DEFAULT_API_KEY
        workspace.webhook_secret = new_webhook_secret()
        db.session.add(workspace)
        db.session.commit()
    return workspace


@click.command("demo")
@click.option("--timeout", default=30.0, show_default=True, help="Seconds to wait for the events to arrive.")
def demo_command(timeout: float) -> None:
    """Send demo Kustomer webhooks to this service and print what arrived in the Klaviyo sandbox."""
    klaviyo_url = current_app.config["KLAVIYO_API_URL"]
    kustomer_url = current_app.config["HELPDESK_API_URLS"]["kustomer"]
    try:
        requests.get(f"{klaviyo_url}/sandbox/stats", timeout=2).raise_for_status()
    except requests.RequestException:
        raise click.ClickException(
            f"KLAVIYO_API_URL ({klaviyo_url}) is not a running Klaviyo sandbox: the demo only writes to the "
            "sandbox. Start everything with `make demo`."
        ) from None
    workspace = _demo_workspace()
    url = f"{current_app.config['PUBLIC_URL']}/webhooks/kustomer/{workspace.id}"
    run = uuid.uuid4().hex[:6]
    ada = {
        "id": f"cust-ada-{run}",
        "name": "Ada Lovelace",
        "email": f"ada.{run}@example.com",
        "phone": "(415) 555-0132",
    }
    grace = {"id": f"cust-grace-{run}", "name": "Grace Hopper", "email": f"grace.{run}@example.com"}
    # Grace is known only to the Kustomer API: the worker looks her up there.
    requests.post(f"{kustomer_url}/sandbox/customers", json=[grace], timeout=5).raise_for_status()
    _seed_marketing(klaviyo_url, ada["email"])
    first, second = f"conv-{run}-1", f"conv-{run}-2"
    webhooks = [
        kustomer_sandbox.customer_changed(ada),
        kustomer_sandbox.conversation_created(first, ada["id"], "Where is my order?"),
        kustomer_sandbox.conversation_done(first, ada["id"], "Where is my order?"),
        kustomer_sandbox.conversation_rated(
            first, ada["id"], "Where is my order?", 5, comment="Quick and kind!"
        ),
        kustomer_sandbox.conversation_created(second, grace["id"], "Refund for a broken mug"),
        kustomer_sandbox.conversation_rated(second, grace["id"], "Refund for a broken mug", 2),
    ]
    click.echo(f"Sending {len(webhooks)} signed Kustomer webhooks to {url}")
    for webhook in webhooks:
        response = kustomer_sandbox.send_webhook(url, webhook, workspace.webhook_secret)
        click.echo(f"  {webhook['name']:<30} -> {response.status_code} {response.json().get('status')}")
    expected = 5
    deadline = time.monotonic() + timeout
    while True:
        events = requests.get(f"{klaviyo_url}/sandbox/events", timeout=5).json()["events"]
        ours = [e for e in events if e["properties"].get("conversationId") in (first, second)]
        if len(ours) >= expected or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    click.echo(f"\nIn Klaviyo (sandbox at {klaviyo_url}): {len(ours)} of {expected} events")
    for event in ours:
        rating = event["properties"].get("rating")
        score = f"  rating {rating}, score {event['properties']['score']}" if rating else ""
        click.echo(
            f"  {event['metric']:<38} {event['email']:<28} {event['properties']['conversationId']}{score}"
        )
    if len(ours) < expected:
        raise click.ClickException(
            "not every event arrived in time: is the worker running? see the delivery log"
        )
    card = signed_url(workspace, "email", ada["email"], expires_in=24 * 3600)
    db.session.commit()  # the workspace's card token is made on first use
    click.echo(f"\nAda's insight card, as an agent sees it in the sidebar (valid 24 h):\n  {card}")


def _seed_marketing(klaviyo_url: str, email: str) -> None:
    """Lists, a segment and campaigns for the demo customer, so that her card has something to show."""
    document = {
        "lists": [{"name": "Newsletter", "members": [email]}],
        "segments": [{"name": "Engaged in the last 30 days", "members": [email]}],
        "campaigns": [
            {"name": "Black Friday preview", "recipients": [{"email": email, "opened": True}]},
            {"name": "Autumn lookbook", "recipients": [email]},
        ],
    }
    requests.post(f"{klaviyo_url}/sandbox/seed", json=document, timeout=5).raise_for_status()
