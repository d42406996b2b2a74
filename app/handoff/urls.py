"""Endpoint URL safety: no webhook may reach the box's own network unless explicitly allowed.

Checked when an endpoint is registered and again before every attempt (a DNS answer can change), and
the workers' transport connects only to the public address it resolved and checked for that connection
(`webhook_transport`), so a name that answers differently between the check and the connect cannot
reach the box's network either.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import time
import unicodedata
from collections.abc import Iterable, Sequence
from contextvars import ContextVar
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

from app.errors import PermanentError

MAX_URL_CHARS = 2_000

logger = logging.getLogger(__name__)


class WebhookUrlError(PermanentError):
    """The endpoint URL is malformed, not https, or resolves to a refused address. `temporary`: its host did
    not resolve, which may change (refused on registration, retried on delivery)."""

    def __init__(self, message: str, *, temporary: bool = False) -> None:
        super().__init__(message)
        self.temporary = temporary


# NAT64's well-known prefix: the last 32 bits are an IPv4 address the translator connects to.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

# Blocks no receiver is in, refused whatever `is_global` says: its tables change with the Python version
# (3.11 takes fec0::1, deprecated site-local, and 192.0.0.8, an IETF protocol assignment, as global). The IANA
# special-purpose address registries' blocks that are not globally reachable, whole (192.0.0.0/24 and
# 2001::/23 hold a few anycast services, none a webhook receiver), with multicast, fec0::/10 and the
# broadcast address. The IPv6 forms that carry an IPv4 address (::ffff:0:0/96, 64:ff9b::/96, 2002::/16) are
# judged by that address before this table is read (`_refused`); they are here as the registry lists them.
NOT_GLOBALLY_REACHABLE: tuple[Network, ...] = tuple(ipaddress.ip_network(block) for block in (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
    "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15", "198.51.100.0/24",
    "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4", "255.255.255.255/32",
    "::/128", "::1/128", "::ffff:0:0/96", "64:ff9b::/96", "64:ff9b:1::/48", "100::/64", "2001::/23",
    "2001:db8::/32", "2002::/16", "3fff::/20", "5f00::/16", "fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8",
))


def _refused(address: Address, allowed: Sequence[Network] = ()) -> bool:
    """Not a public unicast address nor in an `allowed` network (POSTCALL_WEBHOOK_ALLOWED_NETWORKS), or an
    IPv6 address carrying an IPv4 one that is neither (mapped, 6to4, NAT64: the address connected to is the
    IPv4 one, so that is the one judged). Public: in no block of `NOT_GLOBALLY_REACHABLE`, and global and
    not reserved by `ipaddress` too (private, loopback, link-local, shared 100.64.0.0/10: carrier-grade NAT,
    and some clouds' metadata service)."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return _refused(embedded, allowed)
    if address.is_unspecified or address.is_multicast or address.is_link_local:
        # Whatever is allowed: 0.0.0.0 connects to the box itself, link-local holds the cloud's metadata
        # service (169.254.169.254), multicast reaches no one receiver.
        return True
    if any(address in network for network in allowed if network.version == address.version):
        return False
    if any(address in network for network in NOT_GLOBALLY_REACHABLE if network.version == address.version):
        return True
    return not address.is_global or address.is_reserved


def _unsendable(url: str) -> str | None:
    """Why the HTTP client would refuse to send to `url` (control characters, a malformed authority), if it
    would: asked of the same parser that sends, so a URL accepted here never fails every attempt later."""
    if any(character.isspace() or unicodedata.category(character) in ("Cc", "Cf") for character in url):
        return "the endpoint URL contains whitespace or control characters; percent-encode them"
    try:
        httpx.URL(url)
    except httpx.InvalidURL as exc:
        return f"the endpoint URL is malformed: {exc}"
    return None


def check_endpoint_url(url: str, *, allow_private: bool, allowed_networks: Sequence[Network] = (),
                       resolve: bool = True) -> str:
    """The URL, stripped, if it is safe to send to; otherwise `WebhookUrlError` saying why. Its host must
    resolve to public addresses or ones in `allowed_networks`, unless `allow_private`."""
    url = url.strip()
    if not url or len(url) > MAX_URL_CHARS:
        raise WebhookUrlError(f"an endpoint URL has 1 to {MAX_URL_CHARS} characters")
    problem = _unsendable(url)
    if problem:
        raise WebhookUrlError(problem)
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
    public_addresses(host, port, allowed_networks)
    return url


_NON_PUBLIC_REMEDY = ("add its network to POSTCALL_WEBHOOK_ALLOWED_NETWORKS to allow it (or, for a local setup, "
                      "POSTCALL_WEBHOOK_ALLOW_PRIVATE=true)")


def public_addresses(host: str, port: int, allowed: Sequence[Network] = ()) -> list[str]:
    """The addresses `host` resolves to (at least one), when every one is public or in an `allowed`
    network; otherwise `WebhookUrlError`. For a host name, the error says that it does not resolve, or not
    to a public address, and no more: what it does resolve to, or the resolver's error, would map the
    server's network for whoever registers endpoints, and is stored in deliveries' last_error. The details
    are logged for the operator. An address written in the URL is named: its sender typed it."""
    try:
        ipaddress.ip_address(host)
        written_as_address = True
    except ValueError:
        written_as_address = False
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        logger.warning("webhook endpoint host %r does not resolve: %s", host, exc)
        raise WebhookUrlError(f"the endpoint host {host!r} does not resolve", temporary=True) from None
    addresses = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if _refused(address, allowed):
            if written_as_address:
                raise WebhookUrlError(f"the endpoint host {host!r} resolves to {address}, a loopback, link-local, "
                                      f"private or other non-public address; {_NON_PUBLIC_REMEDY}")
            logger.warning("webhook endpoint host %r refused: it resolves to %s, not a public address", host, address)
            raise WebhookUrlError(f"the endpoint host {host!r} does not resolve to a public address (the server's "
                                  f"log says what it resolves to); {_NON_PUBLIC_REMEDY}")
        addresses.append(str(address))
    if not addresses:
        raise WebhookUrlError(f"the endpoint host {host!r} resolves to no address")
    return addresses


# When the current attempt must be over (time.monotonic()), set by the sender around each request.
# httpx's timeouts bound each read and write, not a request: a receiver answering a byte a second, or its
# headers a byte a second, held an attempt for minutes, past its lease (the sweep then sent the event
# again while the first attempt still ran) and held the worker's thread with it.
attempt_deadline: ContextVar[float | None] = ContextVar("webhook_attempt_deadline", default=None)


def _within_deadline(timeout: float | None, exceeded: type[Exception]) -> float | None:
    """`timeout` cut to what is left of the attempt; `exceeded` raised once nothing is."""
    deadline = attempt_deadline.get()
    if deadline is None:
        return timeout
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise exceeded("the attempt's time is up")
    return remaining if timeout is None else min(timeout, remaining)


class _DeadlineStream(httpcore.NetworkStream):
    """A connection whose every read and write ends by the attempt's deadline."""

    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _within_deadline(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _within_deadline(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(self, ssl_context: Any, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        return _DeadlineStream(self._stream.start_tls(
            ssl_context, server_hostname, _within_deadline(timeout, httpcore.ConnectTimeout)))

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _DeadlineBackend(httpcore.SyncBackend):
    """Connections bounded by the attempt's deadline (`attempt_deadline`)."""

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        return _DeadlineStream(super().connect_tcp(
            host, port, timeout=_within_deadline(timeout, httpcore.ConnectTimeout), local_address=local_address,
            socket_options=socket_options))


class _PublicOnlyBackend(_DeadlineBackend):
    """Connects to the address it has just checked. Checking the URL and then letting the client resolve
    the name again leaves a window (DNS rebinding: public on the check, 127.0.0.1 on the connect); here the
    name is resolved once per connection, every answer checked, and the socket opened to that address. TLS
    still verifies the certificate against the URL's host name (httpcore takes it from the request).
    Addresses in `allowed` networks (POSTCALL_WEBHOOK_ALLOWED_NETWORKS) pass as public ones do."""

    def __init__(self, allowed: Sequence[Network] = ()) -> None:
        self._allowed = tuple(allowed)

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        try:
            addresses = public_addresses(host, port, self._allowed)
        except WebhookUrlError as exc:
            raise httpcore.ConnectError(f"refused: {exc}") from None
        # Each checked address in turn, as `socket.create_connection` tries a name's (an IPv6 answer first on
        # a box without IPv6, one dead A record); the last failure is the one raised.
        for address in addresses[:-1]:
            try:
                return super().connect_tcp(address, port, timeout=timeout, local_address=local_address,
                                           socket_options=socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout):
                continue
        return super().connect_tcp(addresses[-1], port, timeout=timeout, local_address=local_address,
                                   socket_options=socket_options)


def webhook_transport(limits: httpx.Limits, *, public_only: bool,
                      allowed_networks: Sequence[Network] = ()) -> httpx.HTTPTransport:
    """The workers' HTTP transport: every request ends by its attempt's deadline (`attempt_deadline`) and,
    `public_only`, connects only to public addresses (or ones in `allowed_networks`), checked at connect
    time."""
    transport = httpx.HTTPTransport(limits=limits)
    # httpx builds its connection pool without a way to pass a network backend: the same pool, built again
    # with ours (httpx's default TLS context and settings for this transport, with these limits).
    transport._pool = httpcore.ConnectionPool(
        ssl_context=httpx.create_ssl_context(),
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        network_backend=_PublicOnlyBackend(allowed_networks) if public_only else _DeadlineBackend(),
    )
    return transport


def webhook_client(limits: httpx.Limits, *, public_only: bool,
                   allowed_networks: Sequence[Network] = ()) -> httpx.Client:
    """The client the workers deliver with (`webhook_transport`). Mounted for every URL rather than given as
    `transport`, which would turn off the proxies the environment names (HTTPS_PROXY, NO_PROXY): those, more
    specific, still take their URLs (through a proxy only httpx's own timeouts apply)."""
    transport = webhook_transport(limits, public_only=public_only, allowed_networks=allowed_networks)
    return httpx.Client(limits=limits, mounts={"all://": transport})
