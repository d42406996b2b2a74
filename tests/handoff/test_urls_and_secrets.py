"""Endpoint URL safety and secret storage (no network: literal addresses, localhost and a loopback receiver)."""

from __future__ import annotations

import logging
import re
import socket
from collections.abc import Callable
from ipaddress import ip_network
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from app.config import Settings
from app.errors import ConfigError
from app.handoff.secrets import SecretBox, generate_secret
from app.handoff.urls import WebhookUrlError, check_endpoint_url, webhook_client
from tests.support.receiver import running_receiver


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/hook",
        "https://localhost:8443/hook",
        "https://10.1.2.3/hook",
        "https://192.168.0.10/hook",
        "https://172.16.5.5/hook",
        "https://169.254.169.254/latest/meta-data",  # cloud metadata: link-local
        "https://[::1]/hook",
        "https://[fe80::1]/hook",
        "https://[::ffff:127.0.0.1]/hook",
        "https://0.0.0.0/hook",
        "https://100.64.0.1/hook",  # shared address space (carrier-grade NAT; a cloud metadata service)
        "https://100.100.100.200/hook",
        "https://[2002:7f00:1::]/hook",  # 6to4 of 127.0.0.1
        "https://[64:ff9b::a9fe:a9fe]/hook",  # NAT64 of 169.254.169.254
        # Global by Python 3.11's `ipaddress` tables, not by IANA's registries (NOT_GLOBALLY_REACHABLE):
        "https://[fec0::1]/hook",  # deprecated site-local
        "https://192.0.0.8/hook",  # IETF protocol assignments
        "https://192.88.99.1/hook",  # the deprecated 6to4 relay anycast
        "https://[3fff::1]/hook",  # documentation (2024)
    ],
)
def test_private_loopback_and_link_local_targets_are_refused(url: str) -> None:
    with pytest.raises(WebhookUrlError, match="POSTCALL_WEBHOOK_ALLOW_PRIVATE"):
        check_endpoint_url(url, allow_private=False)


def test_allow_private_admits_them_and_plain_http() -> None:
    assert check_endpoint_url(" http://127.0.0.1:8080/hook ", allow_private=True) == "http://127.0.0.1:8080/hook"
    assert check_endpoint_url("https://10.0.0.5/h", allow_private=True) == "https://10.0.0.5/h"


def test_allowed_networks_admit_their_addresses_and_nothing_else() -> None:
    # An in-house receiver on 10.20.0.0/16 without opening the box's other networks (or plain http).
    allowed = (ip_network("10.20.0.0/16"), ip_network("fd00:7::/64"))
    assert check_endpoint_url("https://10.20.3.4/h", allow_private=False, allowed_networks=allowed) == "https://10.20.3.4/h"
    assert check_endpoint_url("https://[fd00:7::9]/h", allow_private=False, allowed_networks=allowed)
    # NAT64 and mapped forms are judged by the IPv4 address they reach.
    assert check_endpoint_url("https://[::ffff:10.20.0.1]/h", allow_private=False, allowed_networks=allowed)
    for refused in ("https://10.21.0.1/h", "https://127.0.0.1/h", "https://169.254.169.254/h",
                    "https://[::ffff:10.21.0.1]/h", "https://[fd00:8::1]/h", "https://[fec0::1]/h",
                    "https://192.0.0.8/h"):
        with pytest.raises(WebhookUrlError, match="POSTCALL_WEBHOOK_ALLOWED_NETWORKS"):
            check_endpoint_url(refused, allow_private=False, allowed_networks=allowed)
    with pytest.raises(WebhookUrlError, match="must use https"):
        check_endpoint_url("http://10.20.3.4/h", allow_private=False, allowed_networks=allowed)
    # The table of blocks that are not globally reachable is refused as private networks are: unless allowed.
    in_house = (ip_network("192.0.0.0/29"), ip_network("fec0:7::/64"))
    assert check_endpoint_url("https://192.0.0.5/h", allow_private=False, allowed_networks=in_house)
    assert check_endpoint_url("https://[fec0:7::9]/h", allow_private=False, allowed_networks=in_house)
    # No allowed network opens the box itself, the cloud's metadata service or multicast.
    wide = (ip_network("0.0.0.0/1"), ip_network("169.254.0.0/16"), ip_network("224.0.0.0/4"),
            ip_network("fe80::/10"), ip_network("::/1"))
    for refused in ("https://0.0.0.0/h", "https://169.254.169.254/h", "https://224.0.0.1/h", "https://[fe80::1]/h",
                    "https://[::]/h"):
        with pytest.raises(WebhookUrlError):
            check_endpoint_url(refused, allow_private=False, allowed_networks=wide)


@pytest.mark.parametrize(("value", "problem"), [
    ("0.0.0.0/0", "wider than a network"), ("::/0", "wider than a network"), ("0.0.0.0/1", "wider than a network"),
    ("::/1", "wider than a network"), ("10.0.0.0/33", "not a network"), ("intranet", "not a network"),
    ("::ffff:10.20.0.0/112", "list that IPv4 network"), ("64:ff9b::/96", "list that IPv4 network"),
    ("::/96", "list that IPv4 network"),  # IPv4-compatible addresses, ::1 among them
])
def test_allowed_networks_setting_refuses_what_is_not_a_narrower_network(
    monkeypatch: pytest.MonkeyPatch, value: str, problem: str
) -> None:
    monkeypatch.setenv("POSTCALL_WEBHOOK_ALLOWED_NETWORKS", value)
    with pytest.raises(ValidationError, match=problem):
        Settings()


def test_allowed_networks_setting_reads_comma_separated_cidrs_and_addresses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POSTCALL_WEBHOOK_ALLOWED_NETWORKS", " 10.20.0.0/16, 192.168.7.5 ,fd00:7::/64")
    assert Settings().webhook_allowed_networks == (
        ip_network("10.20.0.0/16"), ip_network("192.168.7.5/32"), ip_network("fd00:7::/64"))
    monkeypatch.setenv("POSTCALL_WEBHOOK_ALLOWED_NETWORKS", "")
    assert Settings().webhook_allowed_networks == ()


def test_a_public_address_over_https_is_accepted() -> None:
    assert check_endpoint_url("https://93.184.215.14/hook", allow_private=False) == "https://93.184.215.14/hook"
    assert check_endpoint_url("https://[2606:2800:21f:cb07:6820:80da:af6b:8b2c]/hook", allow_private=False)
    assert check_endpoint_url("https://[::ffff:93.184.215.14]/hook", allow_private=False)  # judged as IPv4


def _resolving_to(*addresses: str) -> Callable[..., list[tuple[Any, ...]]]:
    """A stand-in for `socket.getaddrinfo` answering `addresses`."""
    def getaddrinfo(_host: str, port: int, *_args: object, **_kwargs: object) -> list[tuple[Any, ...]]:
        return [(socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))
                for address in addresses]

    return getaddrinfo


def test_a_refused_host_name_is_not_told_what_it_resolves_to_the_log_says(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # "the endpoint host 'vm' resolves to 10.0.0.5, a loopback ..." let a tenant's admin map the server's
    # internal network by registering names, and the same text went into deliveries' last_error. A name only
    # this box resolves, whichever of its addresses it gives:
    with pytest.raises(WebhookUrlError) as local:
        check_endpoint_url("https://localhost/hook", allow_private=False)
    assert "does not resolve to a public address" in str(local.value)
    assert "127.0.0.1" not in str(local.value) and "::1" not in str(local.value)
    # A name with a public address and a private one (stubbed: no query leaves the box).
    monkeypatch.setattr(socket, "getaddrinfo", _resolving_to("93.184.215.14", "10.0.0.5"))
    with caplog.at_level(logging.WARNING, logger="app.handoff.urls"), pytest.raises(WebhookUrlError) as refused:
        check_endpoint_url("https://vm.corp.example/hook", allow_private=False)
    assert str(refused.value).startswith("the endpoint host 'vm.corp.example' does not resolve to a public address")
    assert "10.0.0.5" not in str(refused.value) and "93.184" not in str(refused.value)
    assert "POSTCALL_WEBHOOK_ALLOWED_NETWORKS" in str(refused.value)
    assert "'vm.corp.example'" in caplog.text and "10.0.0.5" in caplog.text  # for the operator


def test_a_host_name_that_does_not_resolve_is_not_told_the_resolvers_error_the_log_says(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def no_such_name(*_args: object, **_kwargs: object) -> None:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_name)
    with caplog.at_level(logging.WARNING, logger="app.handoff.urls"), pytest.raises(WebhookUrlError) as refused:
        check_endpoint_url("https://db-internal/hook", allow_private=False)
    assert str(refused.value) == "the endpoint host 'db-internal' does not resolve"
    assert refused.value.temporary
    assert "Name or service not known" in caplog.text and "'db-internal'" in caplog.text


@pytest.mark.parametrize(("url", "address"), [("https://[fec0::1]/hook", "fec0::1"),
                                              ("https://192.0.0.8/hook", "192.0.0.8")])
def test_an_address_written_in_the_url_is_named_in_its_refusal(url: str, address: str) -> None:
    # Its sender typed it: saying which address and why tells them nothing they did not know (as for 10.0.0.5).
    with pytest.raises(WebhookUrlError, match=rf"resolves to {re.escape(address)}, a loopback, link-local, private"):
        check_endpoint_url(url, allow_private=False)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://93.184.215.14/hook", "https"),
        ("ftp://93.184.215.14/hook", "https"),
        ("https://user:pw@93.184.215.14/hook", "credentials"),
        ("https:///nohost", "no host"),
        ("", "1 to"),
        # Characters the HTTP client refuses to send: accepted, every attempt failed later.
        ("https://93.184.215.14/esc\x1b[2J", "control characters"),
        ("https://93.184.215.14/a b", "whitespace"),
        ("https://93.184.215.14/\u200bhook", "control characters"),
        ("https://93.184.215.14:99999/hook", "port"),
    ],
)
def test_malformed_or_insecure_urls_are_refused(url: str, problem: str) -> None:
    with pytest.raises(WebhookUrlError, match=problem):
        check_endpoint_url(url, allow_private=False)


def test_secrets_are_standard_webhooks_secrets_stored_encrypted() -> None:
    secret = generate_secret()
    assert secret.startswith("whsec_") and len(secret) > 40 and generate_secret() != secret
    box = SecretBox("a long server key")
    sealed = box.seal(secret)
    assert secret not in sealed and secret.removeprefix("whsec_") not in sealed
    assert box.open(sealed) == secret
    with pytest.raises(ConfigError, match="rotate"):
        SecretBox("another key").open(sealed)


def test_the_workers_transport_connects_to_the_address_it_checked() -> None:
    # What the check resolved is what the socket connects to: the request reaches the loopback receiver
    # only through the address the (here stubbed) resolution said is public, under the URL's own host name.
    with running_receiver() as receiver, webhook_client(httpx.Limits(), public_only=True) as client:
        port = receiver.port
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr("app.handoff.urls.public_addresses", lambda host, port, allowed=(): ["127.0.0.1"])
            response = client.post(f"http://rebind.invalid:{port}/hook", content=b"{}")
        assert response.status_code == 200
        assert [request.headers.get("host") for request in receiver.all_requests()] == [f"rebind.invalid:{port}"]


def test_the_workers_transport_never_connects_to_a_private_address() -> None:
    # A name that resolves to loopback when the connection is opened (DNS rebinding after the check): no
    # connection at all, so no request and no error text describing the box's network.
    with running_receiver() as receiver, webhook_client(httpx.Limits(), public_only=True) as client:
        port = receiver.port
        with pytest.raises(httpx.ConnectError, match=r"refused: .*localhost.* does not resolve to a public") as refused:
            client.post(f"http://localhost:{port}/hook", content=b"{}")
        assert "127.0.0.1" not in str(refused.value) and "::1" not in str(refused.value)
        assert receiver.all_requests() == []


def test_the_workers_transport_connects_into_an_allowed_network_only() -> None:
    # Checked again at connect time: a loopback receiver is reached with 127.0.0.0/8 allowed, and not with
    # only another loopback address allowed.
    with running_receiver() as receiver:
        url = f"http://localhost:{receiver.port}/hook"
        with webhook_client(httpx.Limits(), public_only=True, allowed_networks=(ip_network("127.0.0.0/8"),
                                                                                 ip_network("::1/128"))) as client:
            assert client.post(url, content=b"{}").status_code == 200
        only_another = (ip_network("127.0.0.2/32"),)
        with (webhook_client(httpx.Limits(), public_only=True, allowed_networks=only_another) as client,
              pytest.raises(httpx.ConnectError, match="POSTCALL_WEBHOOK_ALLOWED_NETWORKS")):
            client.post(url, content=b"{}")
        assert len(receiver.all_requests()) == 1


def test_the_workers_transport_tries_each_checked_address() -> None:
    # As socket.create_connection does for a name: the first address refusing (a dead A record, IPv6 on a
    # box without it) is not the end of the attempt.
    with running_receiver() as receiver, webhook_client(httpx.Limits(), public_only=True) as client:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr("app.handoff.urls.public_addresses",
                          lambda host, port, allowed=(): ["127.0.0.2", "127.0.0.1"])
            response = client.post(f"http://two.invalid:{receiver.port}/hook", content=b"{}")
        assert response.status_code == 200 and len(receiver.all_requests()) == 1
