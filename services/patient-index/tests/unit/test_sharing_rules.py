"""Sharing agreements and break-glass reasons: the rules, with no I/O."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from gpsoc_kit.errors import InvalidResource
from patient_index.domain.sharing import (
    ODS_SYSTEM,
    SHARING_SCOPE_SYSTEM,
    check_amendment,
    read_agreement,
    read_break_glass_reason,
)


def affiliation(**changes: Any) -> dict[str, Any]:
    resource = {
        "resourceType": "OrganizationAffiliation",
        "active": True,
        "period": {"start": "2026-11-01", "end": "2027-11-01T00:00:00Z"},
        "organization": {"identifier": {"system": ODS_SYSTEM, "value": "A81001"}},
        "participatingOrganization": {"identifier": {"system": ODS_SYSTEM, "value": "A81002"}},
        "code": [
            {"coding": [{"system": SHARING_SCOPE_SYSTEM, "code": "read-record"}]},
            {"coding": [{"system": SHARING_SCOPE_SYSTEM, "code": "book-shared-slots"}]},
        ],
    }
    resource.update(changes)
    return resource


def problems(resource: dict[str, Any], practice: str = "A81001") -> dict[str, str]:
    with pytest.raises(InvalidResource) as refused:
        read_agreement(resource, practice=practice)
    return {p.expression: p.message for p in refused.value.problems}


def test_an_agreement_reads_its_parties_scopes_and_period():
    agreement = read_agreement(affiliation(), practice="A81001")
    assert (agreement.grantor, agreement.grantee) == ("A81001", "A81002")
    assert agreement.scopes == ("read-record", "book-shared-slots")
    assert agreement.start == dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    assert agreement.end == dt.datetime(2027, 11, 1, tzinfo=dt.UTC)
    assert agreement.active
    data = agreement.event_data("id-1", 2)
    assert data["versionId"] == 2 and data["end"].startswith("2027-11-01")


def test_a_practice_shares_only_its_own_data():
    assert "OrganizationAffiliation.organization" in problems(affiliation(), practice="A81002")


def test_a_practice_cannot_share_with_itself():
    same = affiliation(
        participatingOrganization={"identifier": {"system": ODS_SYSTEM, "value": "A81001"}}
    )
    assert "OrganizationAffiliation.participatingOrganization" in problems(same)


@pytest.mark.parametrize(
    ("changes", "expression"),
    [
        ({"code": []}, "OrganizationAffiliation.code"),
        (
            {"code": [{"coding": [{"system": SHARING_SCOPE_SYSTEM, "code": "all"}]}]},
            "OrganizationAffiliation.code",
        ),
        ({"period": {}}, "OrganizationAffiliation.period.start"),
        ({"period": {"start": "yesterday"}}, "OrganizationAffiliation.period.start"),
        (
            {"period": {"start": "2026-11-01", "end": "2026-10-01"}},
            "OrganizationAffiliation.period.end",
        ),
        (
            {"period": {"start": "2026-11-01", "end": "2036-11-01"}},
            "OrganizationAffiliation.period.end",
        ),
        ({"organization": {"reference": "Organization/1"}}, "OrganizationAffiliation.organization"),
        (
            {
                "participatingOrganization": {
                    "identifier": {"system": ODS_SYSTEM, "value": "a81002"}
                }
            },
            "OrganizationAffiliation.participatingOrganization",
        ),
        ({"active": "yes"}, "OrganizationAffiliation.active"),
    ],
)
def test_a_bad_agreement_is_refused_naming_the_field(changes, expression):
    assert expression in problems(affiliation(**changes))


def test_the_parties_of_an_agreement_never_change():
    current = read_agreement(affiliation(), practice="A81001")
    widened = read_agreement(affiliation(active=False), practice="A81001")
    check_amendment(current, widened)  # ending it is fine
    other = read_agreement(
        affiliation(
            participatingOrganization={"identifier": {"system": ODS_SYSTEM, "value": "A81003"}}
        ),
        practice="A81001",
    )
    with pytest.raises(InvalidResource):
        check_amendment(current, other)


def reason(text: Any) -> dict[str, Any]:
    return {"resourceType": "Parameters", "parameter": [{"name": "reason", "valueString": text}]}


def test_a_break_glass_reason_is_required_and_tidied():
    assert (
        read_break_glass_reason(reason("  Unconscious   in clinic, allergies needed "))
        == "Unconscious in clinic, allergies needed"
    )
    for bad in (
        reason(""),
        reason("urgent"),
        reason("x" * 501),
        reason(42),
        {"resourceType": "Parameters"},
    ):
        with pytest.raises(InvalidResource):
            read_break_glass_reason(bad)
