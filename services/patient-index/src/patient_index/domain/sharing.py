"""Sharing agreements between practices and break-glass access: the rules, no I/O.

An agreement is a FHIR OrganizationAffiliation recorded by the practice whose data is
shared (`organization`, the data controller) naming the practice whose users may see it
(`participatingOrganization`), what they may do (`code`, from our sharing-scope code
system) and when (`period`). Practices of one primary care network usually hold one
agreement each way; `network` may name the PCN.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from gpsoc_kit.errors import InvalidResource, Problem
from gpsoc_kit.sharing import SCOPES

ODS_SYSTEM = "https://fhir.nhs.uk/Id/ods-organization-code"
SHARING_SCOPE_SYSTEM = "https://opengpsoc.org/fhir/CodeSystem/sharing-scope"
UK_CORE_ORGANIZATION_AFFILIATION_PROFILE = (
    "https://fhir.hl7.org.uk/StructureDefinition/UKCore-OrganizationAffiliation"
)
SCOPE_DISPLAY = {
    "read-record": "Open the practice's patient records",
    "book-shared-slots": "See and book into the practice's shared appointment book",
}
_ODS_CODE = re.compile(r"^[A-Z0-9]{3,10}$")
# An agreement is reviewed at least every five years (data-sharing agreements in
# the NHS are typically reviewed annually; five is the outer bound we accept).
MAX_AGREEMENT_YEARS = 5

BREAK_GLASS_REASON_MIN = 10
BREAK_GLASS_REASON_MAX = 500


@dataclass(frozen=True)
class Agreement:
    grantor: str
    grantee: str
    scopes: tuple[str, ...]
    start: dt.datetime
    end: dt.datetime | None
    active: bool

    def event_data(self, agreement_id: str, version_id: int) -> dict[str, Any]:
        return {
            "agreementId": agreement_id,
            "grantor": self.grantor,
            "grantee": self.grantee,
            "scopes": list(self.scopes),
            "start": self.start.isoformat(),
            "end": self.end.isoformat() if self.end else None,
            "active": self.active,
            "versionId": version_id,
        }


def read_agreement(resource: dict[str, Any], *, practice: str) -> Agreement:
    """The agreement an OrganizationAffiliation states, recorded by `practice`."""
    problems: list[Problem] = []
    grantor = _ods_code(
        resource.get("organization"), "OrganizationAffiliation.organization", problems
    )
    grantee = _ods_code(
        resource.get("participatingOrganization"),
        "OrganizationAffiliation.participatingOrganization",
        problems,
    )
    if grantor and grantor != practice:
        problems.append(
            Problem(
                "organization must be your own practice: a practice shares only its own data",
                "OrganizationAffiliation.organization",
            )
        )
    if grantee and grantee == grantor:
        problems.append(
            Problem(
                "participatingOrganization must be another practice",
                "OrganizationAffiliation.participatingOrganization",
            )
        )
    scopes = _scopes(resource.get("code"), problems)
    start, end = _period(resource.get("period"), problems)
    active = resource.get("active", True)
    if not isinstance(active, bool):
        problems.append(Problem("active must be true or false", "OrganizationAffiliation.active"))
    if problems:
        raise InvalidResource(problems)
    assert grantor and grantee and start
    return Agreement(
        grantor=grantor, grantee=grantee, scopes=scopes, start=start, end=end, active=bool(active)
    )


def check_amendment(current: Agreement, amended: Agreement) -> None:
    """Who shares with whom is fixed: a different pair is a different agreement."""
    if amended.grantee != current.grantee:
        raise InvalidResource(
            [
                Problem(
                    "participatingOrganization cannot change; end this agreement and record a new one",
                    "OrganizationAffiliation.participatingOrganization",
                )
            ]
        )


def read_break_glass_reason(parameters: dict[str, Any]) -> str:
    """The reason a clinician gives for opening a record outside any agreement."""
    reason = None
    for parameter in parameters.get("parameter") or ():
        if isinstance(parameter, dict) and parameter.get("name") == "reason":
            reason = parameter.get("valueString")
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidResource(
            [Problem("A reason is required to break the glass", "Parameters.parameter('reason')")]
        )
    reason = " ".join(reason.split())
    if not BREAK_GLASS_REASON_MIN <= len(reason) <= BREAK_GLASS_REASON_MAX:
        raise InvalidResource(
            [
                Problem(
                    f"The reason must be {BREAK_GLASS_REASON_MIN} to {BREAK_GLASS_REASON_MAX} characters",
                    "Parameters.parameter('reason')",
                )
            ]
        )
    return reason


def _ods_code(reference: Any, expression: str, problems: list[Problem]) -> str | None:
    identifier = reference.get("identifier") if isinstance(reference, dict) else None
    if (
        not isinstance(identifier, dict)
        or identifier.get("system") != ODS_SYSTEM
        or not isinstance(identifier.get("value"), str)
        or not _ODS_CODE.match(identifier["value"])
    ):
        problems.append(
            Problem(
                f"{expression.rsplit('.', 1)[1]} must identify a practice by "
                f"its ODS code ({ODS_SYSTEM})",
                expression,
            )
        )
        return None
    return identifier["value"]


def _scopes(codes: Any, problems: list[Problem]) -> tuple[str, ...]:
    found: list[str] = []
    for concept in codes if isinstance(codes, list) else ():
        for coding in (concept.get("coding") or ()) if isinstance(concept, dict) else ():
            if isinstance(coding, dict) and coding.get("system") == SHARING_SCOPE_SYSTEM:
                if coding.get("code") in SCOPES:
                    found.append(coding["code"])
                else:
                    problems.append(
                        Problem(
                            f"Unknown sharing scope {coding.get('code')!r}",
                            "OrganizationAffiliation.code",
                        )
                    )
    if not found:
        problems.append(
            Problem(
                f"code must name what is shared: {', '.join(SCOPES)} ({SHARING_SCOPE_SYSTEM})",
                "OrganizationAffiliation.code",
            )
        )
    return tuple(dict.fromkeys(found))


def _period(period: Any, problems: list[Problem]) -> tuple[dt.datetime | None, dt.datetime | None]:
    if not isinstance(period, dict) or not period.get("start"):
        problems.append(
            Problem(
                "period.start is required: an agreement says when it begins",
                "OrganizationAffiliation.period.start",
            )
        )
        return None, None
    start = _instant(period.get("start"), "OrganizationAffiliation.period.start", problems)
    end = (
        _instant(period.get("end"), "OrganizationAffiliation.period.end", problems)
        if period.get("end")
        else None
    )
    if start and end:
        if end <= start:
            problems.append(
                Problem(
                    "period.end must be after period.start", "OrganizationAffiliation.period.end"
                )
            )
        elif end - start > dt.timedelta(days=366 * MAX_AGREEMENT_YEARS):
            problems.append(
                Problem(
                    f"An agreement lasts at most {MAX_AGREEMENT_YEARS} years",
                    "OrganizationAffiliation.period.end",
                )
            )
    return start, end


def _instant(value: Any, expression: str, problems: list[Problem]) -> dt.datetime | None:
    """A FHIR date or dateTime; a bare date means the start of that day in UTC."""
    if isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            parsed = None
        if parsed is not None:
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
    problems.append(Problem("Not a FHIR date or dateTime", expression))
    return None
