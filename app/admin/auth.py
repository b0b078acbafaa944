"""Sign-in and sign-out, with failed attempts throttled per (email, client address) and per address.

A failure counts against the address it came from, never against the email everywhere: someone
guessing an admin's password from elsewhere cannot lock the admin out.
"""

from __future__ import annotations

import functools
import logging
import secrets
import time
from collections import defaultdict
from urllib.parse import urlsplit

from flask import current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_user, logout_user
from flask_wtf import FlaskForm
from redis.exceptions import RedisError
from sqlalchemy import delete, select
from werkzeug.security import check_password_hash, generate_password_hash
from werkzeug.wrappers import Response
from wtforms import EmailField, PasswordField
from wtforms.validators import DataRequired, Length

from app.admin import bp
from app.admin.forms import required_text
from app.extensions import db, redis_client
from app.models import User, UserSession, utcnow

log = logging.getLogger(__name__)
WINDOW_SECONDS = 15 * 60
MAX_FAILURES_PER_EMAIL = 5  # from one address
MAX_FAILURES_PER_ADDRESS = 20


@functools.cache
def _no_user_hash(method: str) -> str:
    """Compared against when the email is unknown, so an unknown address takes as long as a wrong password."""
    return generate_password_hash("no such admin", method)


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=320)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1000)])


class FailedLogins:
    """Failed sign-ins counted in Redis (shared by every web process) over a 15-minute window."""

    def __init__(self) -> None:
        self._local: dict[str, list[float]] = defaultdict(list)

    def _keys(self, email: str) -> list[tuple[str, int]]:
        return [
            (f"login-failures:email:{email}:{request.remote_addr}", MAX_FAILURES_PER_EMAIL),
            (f"login-failures:address:{request.remote_addr}", MAX_FAILURES_PER_ADDRESS),
        ]

    def blocked_for(self, email: str) -> int:
        """Seconds until this email may try again from this address; 0 when it may now."""
        waits = [self._ttl(key) for key, limit in self._keys(email) if self._count(key) >= limit]
        return max(waits, default=0)

    def record(self, email: str) -> None:
        for key, _ in self._keys(email):
            if current_app.config.get("REDIS_URL"):
                pipe = redis_client(current_app).pipeline()
                pipe.set(key, 0, ex=WINDOW_SECONDS, nx=True)  # the window starts at the first failure
                pipe.incr(key)
                pipe.execute()
            else:
                self._local[key].append(time.monotonic())

    def clear(self, email: str) -> None:
        key = self._keys(email)[0][0]
        if current_app.config.get("REDIS_URL"):
            redis_client(current_app).delete(key)
        else:
            self._local.pop(key, None)

    def _count(self, key: str) -> int:
        if current_app.config.get("REDIS_URL"):
            return int(redis_client(current_app).get(key) or 0)
        cutoff = time.monotonic() - WINDOW_SECONDS
        self._local[key] = [moment for moment in self._local[key] if moment > cutoff]
        return len(self._local[key])

    def _ttl(self, key: str) -> int:
        if current_app.config.get("REDIS_URL"):
            return max(1, int(redis_client(current_app).ttl(key)))
        return max(1, int(self._local[key][0] + WINDOW_SECONDS - time.monotonic()))


failed_logins = FailedLogins()


@bp.route("/login", methods=["GET", "POST"])
def login() -> Response | tuple[str, int] | str:
    form = LoginForm()
    if not form.validate_on_submit():
        return render_template("admin/login.html", form=form), 400 if request.method == "POST" else 200
    email = required_text(form.email).strip().lower()
    try:
        wait = failed_logins.blocked_for(email)
    except RedisError:
        log.exception("login throttle unavailable")
        return render_template("admin/login.html", form=form, error="Sign-in is unavailable; retry."), 503
    if wait:
        minutes = -(-wait // 60)
        message = f"Too many failed attempts. Try again in {minutes} minute{'s' if minutes > 1 else ''}."
        return render_template("admin/login.html", form=form, error=message), 429
    user = db.session.scalar(select(User).filter_by(email=email))
    stored = user.password_hash if user else _no_user_hash(current_app.config["PASSWORD_HASH_METHOD"])
    if not check_password_hash(stored, required_text(form.password)) or not user:
        failed_logins.record(email)
        log.info("failed sign-in for %s from %s", email, request.remote_addr)
        return render_template("admin/login.html", form=form, error="Wrong email or password."), 401
    failed_logins.clear(email)
    user.last_login_at = utcnow()
    token = start_session(user)
    db.session.commit()
    login_user(user.with_session(token))
    flash(f"Signed in as {user.email}.")
    return redirect(same_site_path(request.args.get("next", "")) or url_for("admin.workspaces"))


def start_session(user: User) -> str:
    """A new session of `user` recorded in the database; its token goes in the cookie."""
    token = secrets.token_urlsafe(32)
    lifetime = current_app.config["PERMANENT_SESSION_LIFETIME"]
    db.session.add(UserSession(id=UserSession.key(token), user_id=user.id, expires_at=utcnow() + lifetime))
    # a sign-in is a good moment to forget the user's sessions that ran out
    db.session.execute(
        delete(UserSession).where(UserSession.user_id == user.id, UserSession.expires_at <= utcnow())
    )
    return token


def same_site_path(target: str) -> str | None:
    """`target` when it is a path on this site, else None: the sign-in page must not redirect away.

    Browsers drop tabs and newlines from a URL and read a backslash as a slash (a tab between the
    slashes of `/ /evil.example` makes it //evil.example), so a control character, a space or a
    backslash anywhere refuses the target; a newline would also break the Location header.
    """
    if not target.startswith("/") or target.startswith("//"):
        return None
    if any(ord(char) <= 0x20 or ord(char) == 0x7F or char == "\\" for char in target):
        return None
    parts = urlsplit(target)
    return target if not parts.scheme and not parts.netloc else None


@bp.post("/logout")
def logout() -> Response:
    token = current_user.get_id()
    if token:
        db.session.execute(delete(UserSession).where(UserSession.id == UserSession.key(token)))
        db.session.commit()
    logout_user()
    flash("Signed out.")
    return redirect(url_for("admin.login"))
