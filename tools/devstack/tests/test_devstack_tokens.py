"""Development tokens: claims, RS256 signature verifiable with the JWKS, key handling."""

import json
import stat
from datetime import timedelta

import jwt
import pytest
from devstack import demo, tokens
from devstack.__main__ import main
from devstack.config import JWT_AUDIENCE, JWT_ISSUER
from devstack.keys import DevKeys, rfc7638_thumbprint


@pytest.fixture
def keys(tmp_path):
    return DevKeys(tmp_path / "keys")


def verify(token: str, jwks_file):
    jwks = json.loads(jwks_file.read_text())
    header = jwt.get_unverified_header(token)
    (jwk,) = [k for k in jwks["keys"] if k["kid"] == header["kid"]]
    public_key = jwt.PyJWK(jwk).key
    return jwt.decode(
        token, public_key, algorithms=["RS256"], audience=JWT_AUDIENCE, issuer=JWT_ISSUER
    )


def test_token_verifies_with_jwks_and_carries_the_claims(keys):
    token = tokens.mint_token("gp", "A81001", keys=keys)
    claims = verify(token, keys.jwks_file)
    user = demo.user_for("gp", "A81001")
    assert claims["sub"] == user.id
    assert claims["practice"] == "A81001"
    assert claims["roles"] == ["gp"]
    assert claims["name"] == user.display_name and claims["name"].startswith("Dr ")
    assert claims["prescriber"] is True
    assert claims["exp"] - claims["iat"] == 8 * 3600
    assert claims["nbf"] == claims["iat"]
    assert claims["jti"]
    assert jwt.get_unverified_header(token)["alg"] == "RS256"


def test_prescriber_flag_differs_by_practice(keys):
    assert (
        verify(tokens.mint_token("nurse", "A81001", keys=keys), keys.jwks_file)["prescriber"]
        is True
    )
    assert (
        verify(tokens.mint_token("nurse", "A81002", keys=keys), keys.jwks_file)["prescriber"]
        is False
    )
    assert (
        verify(tokens.mint_token("receptionist", "A81002", keys=keys), keys.jwks_file)["prescriber"]
        is False
    )


def test_lifetime_and_tampering(keys):
    token = tokens.mint_token("pharmacist", "A81002", keys=keys, lifetime=timedelta(minutes=5))
    assert verify(token, keys.jwks_file)["exp"] - verify(token, keys.jwks_file)["iat"] == 300
    header, payload, signature = token.split(".")
    tampered = f"{header}.{payload[:-2]}AA.{signature}"
    with pytest.raises(jwt.InvalidTokenError):
        verify(tampered, keys.jwks_file)


def test_kid_is_the_rfc7638_thumbprint_and_key_is_private(keys):
    jwk = json.loads(keys.jwks_file.read_text())["keys"][0]
    assert jwk["kid"] == rfc7638_thumbprint(jwk) == keys.kid
    assert "d" not in jwk  # public only
    assert stat.S_IMODE(keys.private_key_file.stat().st_mode) == 0o600
    # Loading again reuses the key.
    assert DevKeys(keys.keys_dir).kid == keys.kid


def test_rfc7638_example():
    # The example key of RFC 7638 section 3.1 and its published thumbprint.
    jwk = {
        "kty": "RSA",
        "e": "AQAB",
        "n": (
            "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPeb"
            "WKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368"
            "QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd"
            "2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
        ),
    }
    assert rfc7638_thumbprint(jwk) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_arbitrary_claims_and_headers(keys):
    token = keys.mint({"iss": "someone-else", "aud": JWT_AUDIENCE}, headers={"kid": "other"})
    assert jwt.get_unverified_header(token)["kid"] == "other"
    with pytest.raises(jwt.InvalidIssuerError):
        verify(keys.mint({"iss": "someone-else", "aud": JWT_AUDIENCE}), keys.jwks_file)


def test_unknown_role_or_practice_is_an_error():
    with pytest.raises(tokens.TokenRequestError, match="unknown role"):
        tokens.claims_for("consultant", "A81001")
    with pytest.raises(tokens.TokenRequestError, match="unknown practice"):
        tokens.claims_for("gp", "B99999")


def test_cli_prints_the_token_last_and_exits_2_on_bad_input(tmp_path, monkeypatch, capsys):
    (tmp_path / "pyproject.toml").write_text("[tool.uv.workspace]\nmembers = []\n")
    monkeypatch.setenv("GPSOC_REPO_ROOT", str(tmp_path))
    assert main(["token", "--role", "gp", "--practice", "A81002"]) == 0
    token = capsys.readouterr().out.strip().splitlines()[-1]
    claims = verify(token, tmp_path / ".state" / "run" / "keys" / "jwks.json")
    assert claims["practice"] == "A81002"
    assert main(["token", "--role", "wizard", "--practice", "A81001"]) == 2
    assert "unknown role" in capsys.readouterr().err
