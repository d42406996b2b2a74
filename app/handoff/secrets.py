"""Webhook signing secrets: generated here, stored encrypted (HMAC needs the plain secret), never logged.

The encryption key is POSTCALL_WEBHOOK_SECRETS_KEY, or derived from POSTCALL_SECRET_KEY when that is unset;
changing it makes stored secrets unreadable (rotate every endpoint's secret afterwards, with --force: a
rotation refuses, by default, to replace a secret it cannot decrypt, since the cause may be its own key).
A delivery signs with every secret of its endpoint that decrypts and leaves out (and reports) one that
does not.
"""

from __future__ import annotations

import base64
import hashlib
import secrets

from cryptography.fernet import Fernet, InvalidToken

from app.config import Settings
from app.errors import ConfigError

SECRET_PREFIX = "whsec_"  # noqa: S105 - the Standard Webhooks prefix, not a secret
SECRET_BYTES = 32
KEY_DERIVATION_CONTEXT = b"postcall webhook secrets v1\x00"


def generate_secret() -> str:
    """A Standard Webhooks secret: `whsec_` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


class SecretBox:
    """Encrypts and decrypts signing secrets (Fernet: AES-128-CBC + HMAC-SHA256)."""

    def __init__(self, key_material: str) -> None:
        key = base64.urlsafe_b64encode(hashlib.sha256(KEY_DERIVATION_CONTEXT + key_material.encode()).digest())
        self._fernet = Fernet(key)

    @classmethod
    def from_settings(cls, settings: Settings) -> SecretBox:
        return cls((settings.webhook_secrets_key or settings.secret_key).get_secret_value())

    def seal(self, secret: str) -> str:
        return self._fernet.encrypt(secret.encode()).decode()

    def open(self, sealed: str) -> str:
        try:
            return self._fernet.decrypt(sealed.encode()).decode()
        except InvalidToken:
            raise ConfigError(
                "a webhook secret cannot be decrypted: POSTCALL_WEBHOOK_SECRETS_KEY (or POSTCALL_SECRET_KEY) "
                "changed since it was stored, or the process that stored it runs with another key than this one; "
                "give every process the same key, or rotate the endpoint's secret (--force, API force=true) "
                "where the workers' key is set"
            ) from None
