"""What `postcall serve` warns about before it binds (app/web/exposure.py): decided without a server."""

from __future__ import annotations

import pytest

from app.config import Settings
from app.web.exposure import exposure_warnings, is_loopback

LOOPBACK = ["127.0.0.1", "127.0.1.1", "::1", "[::1]", "localhost", "LOCALHOST", "::ffff:127.0.0.1"]
REACHABLE = ["0.0.0.0", "::", "", "10.1.2.3", "192.168.0.7", "fe80::1", "postcall.example.com"]


def unguarded() -> Settings:
    """No metrics token, whatever the environment running the tests holds."""
    return Settings(metrics_token=None)


@pytest.mark.parametrize("host", LOOPBACK)
def test_nothing_to_say_on_loopback_whatever_the_settings(host: str) -> None:
    assert is_loopback(host)
    assert exposure_warnings(unguarded(), host=host, https_only=False) == []


@pytest.mark.parametrize("host", REACHABLE)
def test_an_open_metrics_endpoint_and_a_cookie_without_secure_are_each_warned_about(host: str) -> None:
    assert not is_loopback(host)
    metrics, cookie = exposure_warnings(unguarded(), host=host, https_only=False)
    assert "/metrics" in metrics and "POSTCALL_METRICS_TOKEN" in metrics
    assert "Secure" in cookie and "POSTCALL_HTTPS_ONLY=true" in cookie and "--https-only" in cookie


def test_each_warning_goes_once_its_setting_is_set() -> None:
    guarded = Settings(metrics_token="scrape-token")
    assert exposure_warnings(guarded, host="0.0.0.0", https_only=True) == []
    only_cookie = exposure_warnings(guarded, host="0.0.0.0", https_only=False)
    assert len(only_cookie) == 1 and "Secure" in only_cookie[0]
    only_metrics = exposure_warnings(unguarded(), host="0.0.0.0", https_only=True)
    assert len(only_metrics) == 1 and "POSTCALL_METRICS_TOKEN" in only_metrics[0]
    # docker-compose passes an unset variable as empty: /metrics is then open (app/web/ops.py), so is warned.
    assert len(exposure_warnings(Settings(metrics_token=""), host="0.0.0.0", https_only=True)) == 1
