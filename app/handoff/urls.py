"""Endpoint URL safety: no webhook may reach the box's own network unless explicitly allowed.

Checked when an endpoint is registered and again before every attempt (a DNS answer can change).
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from app.errors import PermanentError

MAX_URL_CHARS = 2_000


class WebhookUrlError(PermanentError):
    """The endpoint URL is malformed, not https, or resolves to a refused address."""


def _refused(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return (address.is_loopback or address.is_link_local or address.is_private or address.is_reserved
            or address.is_multicast or address.is_unspecified)


def check_endpoint_url(url: str, *, allow_private: bool, resolve: bool = True) -> str:
    """The URL, stripped, if it is safe to send to; otherwise `WebhookUrlError` saying why."""
    url = url.strip()
    if not url or len(url) > MAX_URL_CHARS:
        raise WebhookUrlError(f"an endpoint URL has 1 to {MAX_URL_CHARS} characters")
    parts = urlsplit(url)
    allowed_schemes = {"https", "http"} if allow_private else {"https"}
    if parts.scheme not in allowed_schemes:
        raise WebhookUrlError(
            f"endpoint URLs must use https (got {parts.scheme or 'no scheme'!r}); plain http only with "
            "POSTCALL_WEBHOOK_ALLOW_PRIVATE=true"
        )
    if parts.username or parts.password:
        raise WebhookUrlError("endpoint URLs may not carry credentials; verify the signature instead")
    host = parts.hostname
    if not host:
        raise WebhookUrlError("the endpoint URL has no host")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise WebhookUrlError("the endpoint URL has an invalid port") from None
    if allow_private or not resolve:
        return url
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise WebhookUrlError(f"the endpoint host {host!r} does not resolve: {exc}") from None
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if _refused(address):
            raise WebhookUrlError(
                f"the endpoint host {host!r} resolves to {address}, a loopback, link-local or private address; "
                "set POSTCALL_WEBHOOK_ALLOW_PRIVATE=true to allow it"
            )
    return url
