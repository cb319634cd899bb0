"""Token verification: every forged or stale token is refused with 401."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from gpsoc_kit.auth import Permission, Principal, TokenVerifier
from gpsoc_kit.fhir import FhirError

ISSUER, AUDIENCE = "https://issuer.test", "opengpsoc"


def _key_pair(kid: str) -> tuple[rsa.RSAPrivateKey, dict]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update(kid=kid, use="sig", alg="RS256")
    return key, jwk


@pytest.fixture(scope="module")
def keys() -> dict:
    return {"k1": _key_pair("k1"), "k2": _key_pair("k2")}


@pytest.fixture
def jwks_file(tmp_path: Path, keys: dict) -> Path:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [keys["k1"][1]]}))
    return path


@pytest.fixture
def verifier(jwks_file: Path) -> TokenVerifier:
    return TokenVerifier(
        issuer=ISSUER, audience=AUDIENCE, jwks_file=str(jwks_file), min_reload_interval_seconds=0
    )


def claims(**overrides) -> dict:
    now = int(time.time())
    base = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "user-1",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "practice": "A81001",
        "roles": ["gp"],
    }
    base.update(overrides)
    return base


def sign(keys: dict, kid: str = "k1", **overrides) -> str:
    return jwt.encode(claims(**overrides), keys[kid][0], algorithm="RS256", headers={"kid": kid})


async def test_a_valid_token_gives_the_principal(verifier, keys):
    principal = await verifier.verify(sign(keys))
    assert principal.practice == "A81001" and principal.roles == {"gp"}


@pytest.mark.parametrize(
    "overrides",
    [
        {"exp": int(time.time()) - 3600},
        {"nbf": int(time.time()) + 3600},
        {"iss": "https://evil.example"},
        {"aud": "someone-else"},
    ],
)
async def test_expired_premature_wrong_issuer_or_audience_tokens_answer_401(
    verifier, keys, overrides
):
    with pytest.raises(FhirError) as err:
        await verifier.verify(sign(keys, **overrides))
    assert err.value.status == 401


async def test_alg_none_is_refused(verifier):
    header = base64.urlsafe_b64encode(json.dumps({"alg": "none", "kid": "k1"}).encode()).rstrip(
        b"="
    )
    body = base64.urlsafe_b64encode(json.dumps(claims()).encode()).rstrip(b"=")
    with pytest.raises(FhirError) as err:
        await verifier.verify(f"{header.decode()}.{body.decode()}.")
    assert err.value.status == 401


async def test_hmac_signed_with_the_public_key_is_refused(verifier, keys):
    public_pem = (
        keys["k1"][0]
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    header = {"alg": "HS256", "kid": "k1", "typ": "JWT"}
    segments = [
        base64.urlsafe_b64encode(json.dumps(p).encode()).rstrip(b"=") for p in (header, claims())
    ]
    import hashlib
    import hmac

    signing_input = b".".join(segments)
    signature = base64.urlsafe_b64encode(
        hmac.new(public_pem, signing_input, hashlib.sha256).digest()
    ).rstrip(b"=")
    with pytest.raises(FhirError) as err:
        await verifier.verify((signing_input + b"." + signature).decode())
    assert err.value.status == 401


async def test_unknown_key_id_is_refused(verifier, keys):
    with pytest.raises(FhirError) as err:
        await verifier.verify(sign(keys, kid="k2"))
    assert err.value.status == 401


async def test_tampered_payload_is_refused(verifier, keys):
    token = sign(keys)
    header, payload, signature = token.split(".")
    forged = base64.urlsafe_b64encode(json.dumps(claims(practice="A81002")).encode()).rstrip(b"=")
    with pytest.raises(FhirError) as err:
        await verifier.verify(f"{header}.{forged.decode()}.{signature}")
    assert err.value.status == 401


async def test_a_rotated_key_set_is_picked_up_without_a_restart(verifier, keys, jwks_file):
    assert (await verifier.verify(sign(keys))).user_id == "user-1"
    jwks_file.write_text(json.dumps({"keys": [keys["k1"][1], keys["k2"][1]]}))
    principal = await verifier.verify(sign(keys, kid="k2", sub="user-2"))
    assert principal.user_id == "user-2"


async def test_token_without_practice_or_roles_is_refused(verifier, keys):
    for bad in ({"practice": None}, {"roles": "gp"}):
        with pytest.raises(FhirError) as err:
            await verifier.verify(sign(keys, **bad))
        assert err.value.status == 401


def test_unknown_role_has_no_permissions():
    principal = Principal(user_id="u", practice="A81001", roles=frozenset({"janitor"}))
    assert not any(principal.can(p) for p in Permission)


def test_nurse_authorises_only_when_flagged_as_independent_prescriber():
    nurse = Principal(user_id="u", practice="A81001", roles=frozenset({"nurse"}))
    prescribing_nurse = Principal(
        user_id="u", practice="A81001", roles=frozenset({"nurse"}), prescriber=True
    )
    assert not nurse.can(Permission.AUTHORISE_PRESCRIPTION)
    assert prescribing_nurse.can(Permission.AUTHORISE_PRESCRIPTION)
    assert Principal(user_id="u", practice="A81001", roles=frozenset({"gp"})).can(
        Permission.AUTHORISE_PRESCRIPTION
    )


def test_receptionist_cannot_read_the_clinical_record():
    receptionist = Principal(user_id="u", practice="A81001", roles=frozenset({"receptionist"}))
    assert receptionist.can(Permission.READ_DEMOGRAPHICS)
    assert not receptionist.can(Permission.READ_CLINICAL)


async def test_keys_from_a_jwks_url_and_rotation_without_restart(keys):
    """An OIDC provider's JWKS endpoint (here a loopback server) works like the local file."""
    import asyncio

    served = {"keys": [keys["k1"][1]]}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        body = json.dumps(served).encode()
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n" + body
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        verifier = TokenVerifier(
            issuer=ISSUER,
            audience=AUDIENCE,
            jwks_url=f"http://127.0.0.1:{port}/jwks.json",
            min_reload_interval_seconds=0,
        )
        assert (await verifier.verify(sign(keys))).user_id == "user-1"
        with pytest.raises(FhirError):
            await verifier.verify(sign(keys, kid="k2"))
        served["keys"].append(keys["k2"][1])  # the provider rotates in a new key
        assert (await verifier.verify(sign(keys, kid="k2", sub="user-2"))).user_id == "user-2"
    finally:
        server.close()
        await server.wait_closed()
