"""Bearer-token verification and the one permission table every service and the gateway use.

Tokens are OIDC JWTs with asymmetric signatures. Keys come from a JWKS URL (any
OIDC provider: Keycloak, NHS CIS2) or, locally, a JWKS file written by the
development issuer. An unknown key id triggers one reload, so a rotated key set
is picked up without a restart.
"""

from __future__ import annotations

import asyncio
import enum
import json
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jwt
from jwt import PyJWK

from .fhir import FhirError


class Permission(enum.StrEnum):
    READ_DEMOGRAPHICS = "read-demographics"
    WRITE_DEMOGRAPHICS = "write-demographics"
    MANAGE_STAFF = "manage-staff"
    READ_APPOINTMENTS = "read-appointments"
    BOOK_APPOINTMENTS = "book-appointments"
    MANAGE_ROTA = "manage-rota"
    READ_CLINICAL = "read-clinical"
    WRITE_CLINICAL = "write-clinical"
    READ_MEDICATION = "read-medication"
    REQUEST_REPEAT = "request-repeat"
    AUTHORISE_PRESCRIPTION = "authorise-prescription"
    ISSUE_PRESCRIPTION = "issue-prescription"
    READ_AUDIT = "read-audit"
    # Sharing agreements between practices (OrganizationAffiliation): the practice
    # that holds the data records them; a privacy officer reviews them.
    READ_SHARING = "read-sharing"
    MANAGE_SHARING = "manage-sharing"
    # Opening a record outside any agreement, with a reason: audited and alerted.
    BREAK_GLASS = "break-glass"


P = Permission
_CLINICIAN = frozenset(
    {
        P.READ_DEMOGRAPHICS,
        P.WRITE_DEMOGRAPHICS,
        P.READ_APPOINTMENTS,
        P.BOOK_APPOINTMENTS,
        P.READ_CLINICAL,
        P.WRITE_CLINICAL,
        P.READ_MEDICATION,
        P.REQUEST_REPEAT,
    }
)

# The one permission table. Prescribing needs more than a role: a nurse or a
# pharmacist authorises only when the token says they are an independent prescriber
# (see Principal.can).
ROLE_PERMISSIONS: dict[str, frozenset[Permission]] = {
    "gp": _CLINICIAN | {P.AUTHORISE_PRESCRIPTION, P.ISSUE_PRESCRIPTION, P.BREAK_GLASS},
    "nurse": _CLINICIAN | {P.AUTHORISE_PRESCRIPTION, P.ISSUE_PRESCRIPTION, P.BREAK_GLASS},
    "pharmacist": _CLINICIAN | {P.AUTHORISE_PRESCRIPTION, P.ISSUE_PRESCRIPTION, P.BREAK_GLASS},
    "receptionist": frozenset(
        {
            P.READ_DEMOGRAPHICS,
            P.WRITE_DEMOGRAPHICS,
            P.READ_APPOINTMENTS,
            P.BOOK_APPOINTMENTS,
            # The front desk raises repeat requests, so it sees the repeat list.
            P.READ_MEDICATION,
            P.REQUEST_REPEAT,
        }
    ),
    "practice-manager": frozenset(
        {
            P.READ_DEMOGRAPHICS,
            P.WRITE_DEMOGRAPHICS,
            P.MANAGE_STAFF,
            P.READ_APPOINTMENTS,
            P.BOOK_APPOINTMENTS,
            P.MANAGE_ROTA,
            P.READ_AUDIT,
            P.READ_SHARING,
            P.MANAGE_SHARING,
        }
    ),
    # Reads the audit trail, the sharing agreements and the break-glass alerts; sees
    # no records.
    "privacy-officer": frozenset({P.READ_AUDIT, P.READ_SHARING}),
}

PRESCRIBER_ONLY = frozenset({P.AUTHORISE_PRESCRIPTION, P.ISSUE_PRESCRIPTION})
ROLES_NEEDING_PRESCRIBER_FLAG = frozenset({"nurse", "pharmacist"})

# NHS national RBAC role codes our roles correspond to (carried into audit events).
NATIONAL_ROLE_CODES: dict[str, str] = {
    "gp": "R8000",
    "nurse": "R8001",
    "pharmacist": "R8003",
    "receptionist": "R8009",
    "practice-manager": "R8008",
    "privacy-officer": "R0001",
}


@dataclass(frozen=True)
class Principal:
    """Who is calling: a user working in one practice with some roles."""

    user_id: str
    practice: str
    roles: frozenset[str]
    name: str = ""
    prescriber: bool = False
    token: str = field(default="", repr=False)
    claims: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def can(self, permission: Permission) -> bool:
        for role in self.roles:
            granted = ROLE_PERMISSIONS.get(role, frozenset())
            if permission not in granted:
                continue
            if permission in PRESCRIBER_ONLY and role in ROLES_NEEDING_PRESCRIBER_FLAG:
                if not self.prescriber:
                    continue
            return True
        return False

    def require(self, permission: Permission) -> None:
        if not self.can(permission):
            raise FhirError(
                403,
                f"Your role does not permit {permission.value}",
                code="forbidden",
                details_code="ACCESS_DENIED",
            )

    @property
    def primary_role(self) -> str:
        return sorted(self.roles)[0] if self.roles else ""

    @property
    def role_code(self) -> str:
        return NATIONAL_ROLE_CODES.get(self.primary_role, "")


class TokenVerifier:
    """Verifies bearer tokens against a key set; keys reload on an unknown kid."""

    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        jwks_file: str | None = None,
        jwks_url: str | None = None,
        algorithms: Iterable[str] = ("RS256", "ES256", "PS256"),
        leeway_seconds: int = 30,
        min_reload_interval_seconds: float = 5.0,
    ) -> None:
        if not (jwks_file or jwks_url):
            raise ValueError("TokenVerifier needs JWT_JWKS_FILE or JWT_JWKS_URL")
        self._issuer = issuer
        self._audience = audience
        self._jwks_file = jwks_file
        self._jwks_url = jwks_url
        # Asymmetric algorithms only: 'none' and HMAC (where a public key could be
        # misused as a shared secret) are never accepted.
        self._algorithms = [a for a in algorithms if a[:2] in ("RS", "ES", "PS")]
        self._leeway = leeway_seconds
        self._keys: dict[str, PyJWK] = {}
        self._loaded_at = 0.0
        self._file_mtime = 0.0
        self._min_reload = min_reload_interval_seconds
        self._lock = asyncio.Lock()
        # Verified tokens, remembered briefly: an RSA verification per request is the
        # largest cost of a cached read. Bounded in size and time, and never past exp.
        self._verified: dict[str, tuple[float, Principal]] = {}
        self._cache_seconds = 60.0
        self._cache_size = 10_000

    async def verify(self, token: str) -> Principal:
        now = time.time()
        cached = self._verified.get(token)
        if cached is not None:
            if cached[0] > now:
                return cached[1]
            del self._verified[token]
        principal = await self._verify(token)
        expires = float(principal.claims.get("exp", now))
        if len(self._verified) >= self._cache_size:
            self._verified.clear()
        self._verified[token] = (min(expires, now + self._cache_seconds), principal)
        return principal

    async def _verify(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise _unauthorised("The bearer token is not a well-formed JWT") from None
        alg = header.get("alg")
        if alg not in self._algorithms:
            raise _unauthorised(f"Token algorithm {alg!r} is not accepted")
        kid = header.get("kid")
        key = await self._key_for(kid)
        if key is None:
            raise _unauthorised("Token signed by an unknown key")
        if key.algorithm_name and key.algorithm_name != alg:
            raise _unauthorised("Token algorithm does not match its key")
        try:
            claims = jwt.decode(
                token,
                key=key.key,
                algorithms=[alg],
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise _unauthorised("The bearer token has expired") from None
        except jwt.ImmatureSignatureError:
            raise _unauthorised("The bearer token is not valid yet") from None
        except jwt.InvalidAudienceError:
            raise _unauthorised("The bearer token is for another audience") from None
        except jwt.InvalidIssuerError:
            raise _unauthorised("The bearer token is from an unknown issuer") from None
        except jwt.PyJWTError as exc:
            raise _unauthorised(f"The bearer token is not valid ({type(exc).__name__})") from None
        return principal_from_claims(claims, token)

    async def _key_for(self, kid: str | None) -> PyJWK | None:
        if self._file_changed() or not self._keys:
            await self._reload()
        key = self._find(kid)
        if key is None and time.monotonic() - self._loaded_at >= self._min_reload:
            await self._reload()
            key = self._find(kid)
        return key

    def _find(self, kid: str | None) -> PyJWK | None:
        if kid is None:
            return next(iter(self._keys.values())) if len(self._keys) == 1 else None
        return self._keys.get(kid)

    def _file_changed(self) -> bool:
        if not self._jwks_file:
            return False
        try:
            return os.stat(self._jwks_file).st_mtime != self._file_mtime
        except FileNotFoundError:
            return False

    async def _reload(self) -> None:
        async with self._lock:
            try:
                if self._jwks_file:
                    path = Path(self._jwks_file)
                    # A small local file, read only when it changed: not worth a thread.
                    self._file_mtime = path.stat().st_mtime  # noqa: ASYNC240
                    document = json.loads(path.read_text())  # noqa: ASYNC240
                else:
                    assert self._jwks_url is not None
                    async with httpx.AsyncClient(timeout=5) as client:
                        response = await client.get(self._jwks_url)
                        response.raise_for_status()
                        document = response.json()
            except (OSError, ValueError, httpx.HTTPError):
                self._loaded_at = time.monotonic()
                return
            keys: dict[str, PyJWK] = {}
            for jwk in document.get("keys", []):
                if jwk.get("use", "sig") != "sig":
                    continue
                try:
                    parsed = PyJWK(jwk)
                except jwt.PyJWTError:
                    continue
                keys[jwk.get("kid", "")] = parsed
            self._keys = keys
            self._loaded_at = time.monotonic()


def principal_from_claims(claims: dict[str, Any], token: str = "") -> Principal:
    practice = claims.get("practice")
    roles = claims.get("roles")
    if not isinstance(practice, str) or not practice:
        raise _unauthorised("The bearer token names no practice")
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise _unauthorised("The bearer token carries no roles")
    return Principal(
        user_id=str(claims["sub"]),
        practice=practice,
        roles=frozenset(roles),
        name=str(claims.get("name", "")),
        prescriber=bool(claims.get("prescriber", False)),
        token=token,
        claims=claims,
    )


def bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise _unauthorised("A bearer token is required")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthorised("A bearer token is required")
    return token.strip()


def _unauthorised(message: str) -> FhirError:
    return FhirError(
        401,
        message,
        code="login",
        details_code="ACCESS_DENIED",
        headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
    )
