"""Endpoint URL safety and secret storage (no network: literal addresses and localhost only)."""

from __future__ import annotations

import pytest

from app.errors import ConfigError
from app.handoff.secrets import SecretBox, generate_secret
from app.handoff.urls import WebhookUrlError, check_endpoint_url


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
    ],
)
def test_private_loopback_and_link_local_targets_are_refused(url: str) -> None:
    with pytest.raises(WebhookUrlError, match="POSTCALL_WEBHOOK_ALLOW_PRIVATE"):
        check_endpoint_url(url, allow_private=False)


def test_allow_private_admits_them_and_plain_http() -> None:
    assert check_endpoint_url(" http://127.0.0.1:8080/hook ", allow_private=True) == "http://127.0.0.1:8080/hook"
    assert check_endpoint_url("https://10.0.0.5/h", allow_private=True) == "https://10.0.0.5/h"


def test_a_public_address_over_https_is_accepted() -> None:
    assert check_endpoint_url("https://93.184.215.14/hook", allow_private=False) == "https://93.184.215.14/hook"


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://93.184.215.14/hook", "https"),
        ("ftp://93.184.215.14/hook", "https"),
        ("https://user:pw@93.184.215.14/hook", "credentials"),
        ("https:///nohost", "no host"),
        ("", "1 to"),
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
