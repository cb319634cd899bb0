"""Development tokens: RS256 JWTs for the demo users, as an OIDC provider would issue.

Services verify them with JWT_ISSUER, JWT_AUDIENCE and the profile's JWKS file; in
production the same claims come from a real provider (Keycloak, NHS CIS2).
"""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

from devstack import demo
from devstack.config import JWT_AUDIENCE, JWT_ISSUER, StackConfig
from devstack.keys import DevKeys

ROLES = demo.ROLES
DEFAULT_LIFETIME = timedelta(hours=8)  # a working day


class TokenRequestError(ValueError):
    """Unknown role or practice; the CLI exits 2 with this message."""


def claims_for(
    role: str, practice: str, *, lifetime: timedelta = DEFAULT_LIFETIME, now: float | None = None
) -> dict:
    """The claim set of the demo user holding `role` at `practice`."""
    try:
        user = demo.user_for(role, practice)
    except KeyError as error:
        raise TokenRequestError(str(error.args[0])) from None
    issued = int(time.time() if now is None else now)
    return {
        "iss": JWT_ISSUER,
        "aud": JWT_AUDIENCE,
        "sub": user.id,
        "iat": issued,
        "nbf": issued,
        "exp": issued + int(lifetime.total_seconds()),
        "jti": str(uuid.uuid4()),
        "practice": user.practice,
        "roles": [user.role],
        "name": user.display_name,
        "prescriber": user.prescriber,
    }


def mint_token(
    role: str,
    practice: str,
    *,
    lifetime: timedelta = DEFAULT_LIFETIME,
    keys: DevKeys | None = None,
    profile: str = "run",
) -> str:
    """An RS256 JWT for the demo user with `role` at `practice` (ODS code), signed with
    `keys` or else the profile's development key."""
    claims = claims_for(role, practice, lifetime=lifetime)
    keys = keys or DevKeys.for_config(StackConfig.for_profile(profile))
    return keys.mint(claims)
