"""The host's Ed25519 key: signs config packages; its public half goes to terminals in hello.reply."""
from __future__ import annotations

import base64
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


class Signer:
    def __init__(self, key: Ed25519PrivateKey):
        self._key = key
        self.public_raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

    @classmethod
    def load_or_create(cls, instance: str | Path) -> "Signer":
        path = Path(instance) / "config_signing_key.pem"
        if path.exists():
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
            if not isinstance(key, Ed25519PrivateKey):
                raise ValueError(f"{path} is not an Ed25519 key")
            return cls(key)
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(pem)
        tmp.chmod(0o600)
        tmp.replace(path)
        return cls(key)

    @property
    def public_key_b64(self) -> str:
        return base64.b64encode(self.public_raw).decode("ascii")

    def sign_digest(self, sha256_hex: str) -> str:
        """Signature over the 32 raw sha256 bytes, base64 (terminal-mqtt.md config.push)."""
        return base64.b64encode(self._key.sign(bytes.fromhex(sha256_hex))).decode("ascii")
