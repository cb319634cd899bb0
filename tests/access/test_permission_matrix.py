"""The whole permission matrix, walked on the real platform: every rule by every role.

Through the gateway, a role the rule does not admit gets a 403 OperationOutcome (`forbidden`)
and an admitted role never does. Then each service, called on its own port with every
refused role, refuses too (403; 405 where no one may use the interaction): the gateway and
the services enforce the same table, so a request that got past the gateway would still
be stopped.

Requests name resources that do not exist and carry minimal bodies: an admitted role gets
the service's own answer (404, 400, 422...), which is all a permission check may decide.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from devstack.demo import ROLES
from gpsoc_kit.access import MATRIX, Rule
from gpsoc_kit.auth import Principal

UNKNOWN_ROLE = "astronaut"
ALL_ROLES = (*ROLES, UNKNOWN_ROLE)
PRACTICE = "A81001"  # whose nurses and pharmacists are independent prescribers (demo data)
PUBLIC_RULES = [r for r in MATRIX if r.requires.public]
WALKED = [r for r in MATRIX if not r.requires.public]


def admitted(rule: Rule, role: str) -> bool:
    """What the matrix decides for the demo user holding `role` at PRACTICE."""
    prescriber = role in ("nurse", "pharmacist")  # independent prescribers at A81001
    return rule.requires.allows(
        Principal(user_id="u", practice=PRACTICE, roles=frozenset({role}), prescriber=prescriber)
    )


def request_for(rule: Rule) -> dict[str, Any]:
    """A request on the rule's route: unknown ids, the smallest body its method takes."""
    path = rule.path.replace("{id}", str(uuid.uuid4())).replace("{vid}", "1")
    request: dict[str, Any] = {"method": rule.method, "url": path}
    if rule.method in ("POST", "PUT"):
        if rule.interaction == "operation":
            body: dict[str, Any] = {"resourceType": "Parameters", "parameter": [
                {"name": "reason", "valueString": "access matrix test"}]}
        else:
            body = {"resourceType": rule.resource_type, **dict(rule.when)}
        request["json"] = body
    return request


def assert_forbidden(response: httpx.Response, where: str) -> None:
    assert response.status_code == 403, f"{where}: {response.status_code} {response.text[:300]}"
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome", where
    assert outcome["issue"][0]["code"] == "forbidden", where


def _cases(rules: list[Rule], roles: tuple[str, ...], *, refused_only: bool = False) -> list[Any]:
    return [
        pytest.param(rule, role, id=f"{rule.name} as {role}")
        for rule in rules
        for role in roles
        if not (refused_only and admitted(rule, role))
    ]


@pytest.mark.parametrize(("rule", "role"), _cases(WALKED, ALL_ROLES))
async def test_the_gateway_enforces_the_rule_for_the_role(gateway, token, rule, role):
    response = await gateway.request(**request_for(rule), headers=token(role, PRACTICE))
    where = f"gateway: {rule.name} as {role}"
    if admitted(rule, role):
        assert response.status_code != 403, f"{where} was refused: {response.text[:300]}"
        assert response.status_code != 401, where
        if not rule.supported:
            assert response.status_code == 405, f"{where}: {response.text[:300]}"
    else:
        assert_forbidden(response, where)


@pytest.mark.parametrize(
    ("rule", "role"),
    _cases([r for r in WALKED if r.service != "gateway"], ALL_ROLES,
           refused_only=True),
)
async def test_the_service_refuses_what_the_matrix_refuses(service_clients, token, rule, role):
    """Defence in depth: the service, called directly, refuses the role as the gateway does."""
    response = await service_clients[rule.service].request(**request_for(rule),
                                                           headers=token(role, PRACTICE))
    where = f"{rule.service} directly: {rule.name} as {role}"
    if rule.supported:
        assert_forbidden(response, where)
    else:
        assert response.status_code == 405, f"{where}: {response.text[:300]}"


@pytest.mark.parametrize("role", [*ALL_ROLES, None])
async def test_the_capability_statement_is_public(gateway, token, role):
    headers = token(role, PRACTICE) if role else {}
    for rule in PUBLIC_RULES:
        response = await gateway.request(rule.method, rule.path, headers=headers)
        assert response.status_code == 200, rule.name
        assert response.json()["resourceType"] == "CapabilityStatement"


def test_the_walk_covers_every_rule_and_role():
    cases = _cases(WALKED, ALL_ROLES)
    assert len(cases) == len(WALKED) * len(ALL_ROLES)
    assert {r.name for r in WALKED} | {r.name for r in PUBLIC_RULES} == {r.name for r in MATRIX}
    # Every role is refused somewhere and admitted somewhere (so neither branch is vacuous).
    for role in ROLES:
        assert any(admitted(r, role) for r in WALKED), role
        assert any(not admitted(r, role) for r in WALKED), role
    assert not any(admitted(r, UNKNOWN_ROLE) for r in WALKED)
