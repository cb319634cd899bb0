"""The development token signing key of a profile.

An RSA 2048 key made at first use in <state>/keys/dev-signing-key.pem (mode 600) with its
public half as a JWKS in <state>/keys/jwks.json, which services read through
JWT_JWKS_FILE. The key id is the RFC 7638 thumbprint, so a regenerated key is a new kid.
Both files stay in the state dir: never committed, different on every machine.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

PRIVATE_KEY_NAME = "dev-signing-key.pem"
JWKS_NAME = "jwks.json"


def _b64url_uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def rfc7638_thumbprint(public_jwk: dict[str, Any]) -> str:
    """SHA-256 thumbprint over the required RSA members in lexicographic order."""
    canonical = json.dumps(
        {"e": public_jwk["e"], "kty": public_jwk["kty"], "n": public_jwk["n"]},
        separators=(",", ":"),
        sort_keys=True,
    )
    return (
        base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()
    )


def _write_atomically(path: Path, data: bytes, mode: int) -> None:
    # Write then rename, so a reader (a service, a parallel test) never sees half a file.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class DevKeys:
    def __init__(self, keys_dir: Path) -> None:
        self.keys_dir = Path(keys_dir)
        self.private_key_file = self.keys_dir / PRIVATE_KEY_NAME
        self.jwks_file = self.keys_dir / JWKS_NAME
        self._private_key = self._load_or_create()
        self.public_jwk = self._public_jwk()
        self.kid = self.public_jwk["kid"]
        # The JWKS is derived from the key; rewrite it if missing or stale.
        jwks = json.dumps({"keys": [self.public_jwk]}, indent=2).encode() + b"\n"
        if not self.jwks_file.exists() or self.jwks_file.read_bytes() != jwks:
            _write_atomically(self.jwks_file, jwks, 0o644)

    @classmethod
    def for_config(cls, config) -> DevKeys:  # config: devstack.config.StackConfig
        return cls(config.keys_dir)

    def _load_or_create(self) -> rsa.RSAPrivateKey:
        self.keys_dir.mkdir(parents=True, exist_ok=True)
        if not self.private_key_file.exists():
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            pem = key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            fd, tmp = tempfile.mkstemp(dir=self.keys_dir, prefix=".key.")
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(pem)
            try:
                # link() fails if another process created the key meanwhile: keep theirs.
                os.link(tmp, self.private_key_file)
            except FileExistsError:
                pass
            finally:
                os.unlink(tmp)
        key = serialization.load_pem_private_key(self.private_key_file.read_bytes(), password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError(f"{self.private_key_file} is not an RSA key")
        return key

    def _public_jwk(self) -> dict[str, Any]:
        numbers = self._private_key.public_key().public_numbers()
        jwk = {"kty": "RSA", "n": _b64url_uint(numbers.n), "e": _b64url_uint(numbers.e)}
        return {**jwk, "kid": rfc7638_thumbprint(jwk), "use": "sig", "alg": "RS256"}

    @property
    def jwks(self) -> dict[str, Any]:
        return {"keys": [dict(self.public_jwk)]}

    @property
    def private_key(self) -> rsa.RSAPrivateKey:
        return self._private_key

    def public_key(self) -> rsa.RSAPublicKey:
        return self._private_key.public_key()

    def mint(self, claims: dict[str, Any], *, headers: dict[str, Any] | None = None) -> str:
        """Sign arbitrary claims with RS256 (tests use this for expired, foreign-audience,
        tampered... tokens). The kid header is set unless headers override it."""
        return jwt.encode(
            claims,
            self._private_key,
            algorithm="RS256",
            headers={"kid": self.kid, **(headers or {})},
        )
