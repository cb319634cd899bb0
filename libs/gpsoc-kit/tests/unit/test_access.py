"""The permission matrix: lookup by method and path, body variants, and who each rule admits."""

from __future__ import annotations

import time

import pytest
from gpsoc_kit.access import (
    AUTHENTICATED,
    MATRIX,
    PUBLIC,
    PermissionMatrix,
    Rule,
    any_of,
    needs,
)
from gpsoc_kit.auth import Permission, Principal

P = Permission


def principal(*roles: str, prescriber: bool = False) -> Principal:
    return Principal(user_id="u1", practice="A81001", roles=frozenset(roles), prescriber=prescriber)


@pytest.mark.parametrize(
    ("method", "path", "name"),
    [
        ("GET", "/Patient/9a1b", "GET /Patient/{id}"),
        ("GET", "/Patient", "GET /Patient"),
        ("GET", "/Patient/9a1b/_history", "GET /Patient/{id}/_history"),
        ("GET", "/Patient/9a1b/_history/2", "GET /Patient/{id}/_history/{vid}"),
        ("GET", "/Patient/9a1b/$everything", "GET /Patient/{id}/$everything"),
        ("POST", "/Patient/9a1b/$break-glass", "POST /Patient/{id}/$break-glass"),
        ("GET", "/Encounter/$patient-summary", "GET /Encounter/$patient-summary"),
        ("GET", "/Encounter/e1", "GET /Encounter/{id}"),
        ("POST", "/Condition/c1/$entered-in-error", "POST /Condition/{id}/$entered-in-error"),
        ("GET", "/CodeSystem/$lookup", "GET /CodeSystem/$lookup"),
        ("POST", "/Slot/s1/$hold", "POST /Slot/{id}/$hold"),
        ("GET", "/metadata", "GET /metadata"),
        ("PUT", "/OrganizationAffiliation/a1", "PUT /OrganizationAffiliation/{id}"),
        ("GET", "Patient/9a1b", "GET /Patient/{id}"),  # the gateway's path has no leading /
    ],
)
def test_a_served_route_finds_its_rule(method, path, name):
    match = MATRIX.lookup(method, path)
    assert match is not None and match.rule.name == name


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/Spaceship/1"),
        ("PATCH", "/Patient/p1"),
        ("POST", "/Patient/p1/$everything"),
        ("GET", "/Patient/p1/_history/1/extra"),
        ("GET", "/Patient/not an id"),
        ("GET", "/Patient/" + "x" * 65),
        ("GET", "/Organization/o1/_history"),
        ("DELETE", "/AuditEvent/a1"),
        ("GET", "/"),
        ("GET", ""),
    ],
)
def test_a_route_the_platform_does_not_serve_has_no_rule(method, path):
    assert MATRIX.lookup(method, path) is None


def test_an_operation_is_never_taken_for_a_resource_id():
    summary = MATRIX.lookup("GET", "/Encounter/$patient-summary")
    assert summary is not None and summary.rule.interaction == "operation"
    assert summary.params == {}


def test_path_parameters_name_the_resource_and_patient():
    match = MATRIX.lookup("GET", "/Patient/p-1/_history/3")
    assert match is not None
    assert match.params == {"id": "p-1", "vid": "3"}
    assert match.patient_id() == "p-1"
    search = MATRIX.lookup("GET", "/Condition")
    assert search is not None and search.patient_id({"patient": "Patient/p-2"}) == "p-2"
    assert search.patient_id({}) is None


@pytest.mark.parametrize(
    ("body", "needed"),
    [
        ({"intent": "plan"}, needs(P.AUTHORISE_PRESCRIPTION)),
        ({"intent": "order", "status": "draft"}, needs(P.REQUEST_REPEAT)),
        ({"intent": "order", "status": "active"}, needs(P.ISSUE_PRESCRIPTION)),
        ({"intent": "order"}, needs(P.ISSUE_PRESCRIPTION)),
        ({"intent": "proposal"}, any_of(P.AUTHORISE_PRESCRIPTION, P.REQUEST_REPEAT,
                                        P.ISSUE_PRESCRIPTION)),
        (None, any_of(P.AUTHORISE_PRESCRIPTION, P.REQUEST_REPEAT, P.ISSUE_PRESCRIPTION)),
    ],
)
def test_creating_a_medication_request_is_told_apart_by_its_body(body, needed):
    assert MATRIX.needs_body("POST", "/MedicationRequest")
    match = MATRIX.lookup("POST", "/MedicationRequest", body)
    assert match is not None and match.rule.requires == needed


def test_only_the_prescription_create_depends_on_the_body():
    assert [r for r in MATRIX if r.when] and all(
        r.path == "/MedicationRequest" for r in MATRIX if r.when
    )
    assert not MATRIX.needs_body("POST", "/Patient")


def test_an_unknown_role_is_denied_everything_but_the_public_routes():
    stranger = principal("astronaut")
    for rule in MATRIX:
        assert rule.requires.allows(stranger) is (rule.requires == PUBLIC), rule.name
    assert AUTHENTICATED.allows(principal("astronaut", "receptionist"))
    assert not AUTHENTICATED.allows(None)
    assert PUBLIC.allows(None)


def test_requirements_follow_the_role_table_and_the_prescriber_flag():
    authorise = MATRIX.lookup("POST", "/MedicationRequest", {"intent": "plan"})
    assert authorise is not None
    assert authorise.rule.requires.allows(principal("gp"))
    assert authorise.rule.requires.allows(principal("nurse", prescriber=True))
    assert not authorise.rule.requires.allows(principal("nurse"))
    assert not authorise.rule.requires.allows(principal("receptionist"))
    everything = MATRIX.rule("GET /Patient/{id}/$everything").requires
    assert everything.allows(principal("gp"))
    assert not everything.allows(principal("receptionist"))  # no clinical record
    assert everything.missing(principal("receptionist")) == "read-clinical"
    assert everything.missing(principal("astronaut")) == "a known role"


def test_every_rule_names_a_service_and_a_fhir_interaction():
    interactions = {"read", "vread", "search-type", "history-instance", "create", "update",
                    "delete", "operation", "capabilities"}
    services = {"gateway", "patient-index", "appointments", "prescribing", "clinical-notes",
                "audit"}
    for rule in MATRIX:
        assert rule.interaction in interactions, rule.name
        assert rule.service in services, rule.name
        assert (rule.operation is not None) == (rule.interaction == "operation"), rule.name
    assert len({r.name for r in MATRIX}) == len(MATRIX), "rule names are unique"


def test_an_interaction_no_one_may_use_still_needs_a_known_role():
    unsupported = [r for r in MATRIX if not r.supported]
    assert {r.interaction for r in unsupported} == {"delete", "update"}
    assert all(r.requires == AUTHENTICATED for r in unsupported)


def test_a_conditional_variant_after_the_catch_all_is_refused():
    with pytest.raises(ValueError, match="last variant"):
        PermissionMatrix([
            Rule("POST", "/X", "X", "create", "s", AUTHENTICATED),
            Rule("POST", "/X", "X", "create", "s", AUTHENTICATED, when=(("a", "b"),)),
        ])


def test_lookup_is_cheap_enough_for_every_request():
    paths = [("GET", "/Patient/3f1c0b9e-1d2a-4c55-9a64-0a1b2c3d4e5f/_history/2"),
             ("GET", "/Observation"), ("POST", "/MedicationRequest/m1/$issue"),
             ("GET", "/Spaceship/1")]
    started = time.perf_counter()
    for _ in range(5000):
        for method, path in paths:
            MATRIX.lookup(method, path)
    per_lookup = (time.perf_counter() - started) / 20_000
    assert per_lookup < 50e-6, f"{per_lookup * 1e6:.1f} µs per lookup"
