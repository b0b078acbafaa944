"""Klaviyo: the API client and its errors, the shared rate limiter, the body mapping, the key probe."""

from app.klaviyo.client import (
    JSON_API,
    REVISION,
    AuthError,
    BearerToken,
    DuplicateProfile,
    InvalidRequest,
    KlaviyoClient,
    KlaviyoError,
    NotConnected,
    PermissionDenied,
    RateLimited,
    ServerError,
    TransportError,
)

__all__ = [
    "JSON_API",
    "REVISION",
    "AuthError",
    "BearerToken",
    "DuplicateProfile",
    "InvalidRequest",
    "KlaviyoClient",
    "KlaviyoError",
    "NotConnected",
    "PermissionDenied",
    "RateLimited",
    "ServerError",
    "TransportError",
]
