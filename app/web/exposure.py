"""What serving the web app on an address others can reach leaves open, said before it starts.

`postcall serve` refuses a forgeable session key outright. The two things here it only warns about,
because setups exist where they are what the operator wants: a TLS-terminating proxy in front may be the
only way browsers reach the app (and may mark the cookie Secure itself), and a Prometheus on a private
network may read an open `/metrics`. Bound to loopback, only this machine reaches the app: nothing to say.
"""

from __future__ import annotations

from ipaddress import IPv6Address, ip_address

from app.config import Settings

# Names that resolve to loopback without asking any resolver (RFC 6761 reserves them).
LOOPBACK_NAMES = frozenset({"localhost", "localhost."})


def is_loopback(host: str) -> bool:
    """Whether binding `host` keeps the app reachable from this machine only. A name other than
    localhost may resolve to any address, and an empty or wildcard host is every interface: not loopback."""
    name = host.strip().removeprefix("[").removesuffix("]").lower()
    if name in LOOPBACK_NAMES:
        return True
    try:
        address = ip_address(name)
    except ValueError:
        return False
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def exposure_warnings(settings: Settings, *, host: str, https_only: bool) -> list[str]:
    """One warning per thing left open when the app is bound to `host` with these settings, each saying
    how to close it; none on a loopback address. `https_only` is what the session cookie will be."""
    if is_loopback(host):
        return []
    warnings = []
    # Same test as /metrics itself (app/web/ops.py): an empty token, as docker-compose passes an unset one,
    # leaves it open.
    if not settings.metrics_token:
        warnings.append(
            f"/metrics is open to anyone who can reach this server (bound to {host or 'every interface'}): its "
            "counts span every tenant. Set POSTCALL_METRICS_TOKEN (Prometheus then sends it as a bearer token), "
            "or bind to 127.0.0.1"
        )
    if not https_only:
        warnings.append(
            "the session cookie has no Secure flag, so browsers also send it over plain http. Serve over https "
            "(directly or behind a TLS-terminating proxy) and set POSTCALL_HTTPS_ONLY=true or pass --https-only"
        )
    return warnings
