"""FHIR R4 plumbing shared by every service: OperationOutcome errors, responses, Bundles."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlencode

import orjson
from starlette.responses import Response

FHIR_JSON = "application/fhir+json"

# HTTP status -> OperationOutcome.issue.code used when a caller does not say.
_DEFAULT_ISSUE_CODES = {
    400: "invalid",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    409: "duplicate",
    410: "deleted",
    412: "conflict",
    413: "too-costly",
    415: "not-supported",
    422: "processing",
    429: "throttled",
    500: "exception",
    502: "transient",
    503: "transient",
    504: "timeout",
}


class FhirResponse(Response):
    """A FHIR JSON response, serialised with orjson (fast on hot read paths)."""

    media_type = FHIR_JSON

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


class Issue:
    """One OperationOutcome issue; `expression` names the offending element (FHIRPath)."""

    __slots__ = ("severity", "code", "diagnostics", "expression", "details_code", "details_system")

    def __init__(
        self,
        diagnostics: str,
        *,
        severity: str = "error",
        code: str = "invalid",
        expression: str | Iterable[str] | None = None,
        details_code: str | None = None,
        details_system: str = "https://fhir.nhs.uk/CodeSystem/Spine-ErrorOrWarningCode",
    ) -> None:
        self.severity = severity
        self.code = code
        self.diagnostics = diagnostics
        if isinstance(expression, str):
            expression = [expression]
        self.expression = list(expression) if expression else None
        self.details_code = details_code
        self.details_system = details_system

    def to_fhir(self) -> dict[str, Any]:
        issue: dict[str, Any] = {
            "severity": self.severity,
            "code": self.code,
            "diagnostics": self.diagnostics,
        }
        if self.details_code:
            issue["details"] = {
                "coding": [
                    {
                        "system": self.details_system,
                        "code": self.details_code,
                        "display": self.details_code.replace("_", " ").capitalize(),
                    }
                ]
            }
        if self.expression:
            issue["expression"] = self.expression
        return issue


def operation_outcome(issues: Iterable[Issue]) -> dict[str, Any]:
    return {"resourceType": "OperationOutcome", "issue": [i.to_fhir() for i in issues]}


class FhirError(Exception):
    """An error a FHIR client should see as an OperationOutcome with this HTTP status."""

    def __init__(
        self,
        status: int,
        diagnostics: str,
        *,
        code: str | None = None,
        expression: str | Iterable[str] | None = None,
        details_code: str | None = None,
        issues: Iterable[Issue] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(diagnostics)
        self.status = status
        self.headers = dict(headers or {})
        if issues is not None:
            self.issues = list(issues)
        else:
            self.issues = [
                Issue(
                    diagnostics,
                    code=code or _DEFAULT_ISSUE_CODES.get(status, "processing"),
                    expression=expression,
                    details_code=details_code,
                )
            ]

    def response(self) -> FhirResponse:
        return FhirResponse(
            operation_outcome(self.issues), status_code=self.status, headers=self.headers
        )


def not_found(resource_type: str, resource_id: str) -> FhirError:
    # The same answer whether the resource is absent or belongs to another practice:
    # existence is never disclosed across tenants.
    return FhirError(
        404,
        f"{resource_type}/{resource_id} is not known",
        details_code="RESOURCE_NOT_FOUND" if resource_type != "Patient" else "PATIENT_NOT_FOUND",
    )


def etag(version_id: int | str) -> str:
    return f'W/"{version_id}"'


def parse_if_match(value: str | None) -> int | None:
    """The version a client expects, from an If-Match header such as W/"3"; None if absent."""
    if value is None:
        return None
    raw = value.strip()
    if raw.startswith("W/"):
        raw = raw[2:]
    raw = raw.strip('"')
    if not raw.isdigit():
        raise FhirError(
            400, f'If-Match must be a version ETag like W/"1", got {value!r}', expression="If-Match"
        )
    return int(raw)


def searchset(
    entries: Iterable[dict[str, Any]],
    *,
    total: int | None,
    base_url: str,
    resource_type: str,
    params: list[tuple[str, str]],
    offset: int,
    count: int,
    included: Iterable[dict[str, Any]] = (),
    more: bool | None = None,
) -> dict[str, Any]:
    """A Bundle of type searchset with total and self/next/previous links.

    `total` None leaves Bundle.total out (it is optional in FHIR); then `more` says whether
    a next page exists, which the total would otherwise tell.
    """

    def link(relation: str, page_offset: int) -> dict[str, str]:
        query = [(k, v) for k, v in params if k not in ("_offset", "_count")]
        query += [("_count", str(count)), ("_offset", str(page_offset))]
        return {"relation": relation, "url": f"{base_url}/{resource_type}?{urlencode(query)}"}

    entry_list = [
        {
            "fullUrl": f"{base_url}/{resource['resourceType']}/{resource['id']}",
            "resource": resource,
            "search": {"mode": "match"},
        }
        for resource in entries
    ]
    entry_list += [
        {
            "fullUrl": f"{base_url}/{resource['resourceType']}/{resource['id']}",
            "resource": resource,
            "search": {"mode": "include"},
        }
        for resource in included
    ]
    if total is None and more is None:
        raise ValueError("a searchset without a total must say whether there is more")
    links = [link("self", offset)]
    if (offset + count < total) if total is not None else more:
        links.append(link("next", offset + count))
    if offset > 0:
        links.append(link("previous", max(0, offset - count)))
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset"}
    if total is not None:
        bundle["total"] = total
    bundle["link"] = links
    bundle["entry"] = entry_list
    return bundle


def history_bundle(versions: Iterable[dict[str, Any]], *, base_url: str) -> dict[str, Any]:
    entries = [
        {
            "fullUrl": f"{base_url}/{r['resourceType']}/{r['id']}",
            "resource": r,
            "request": {
                "method": "PUT" if r["meta"]["versionId"] != "1" else "POST",
                "url": f"{r['resourceType']}/{r['id']}",
            },
            "response": {
                "status": "200" if r["meta"]["versionId"] != "1" else "201",
                "etag": etag(r["meta"]["versionId"]),
                "lastModified": r["meta"]["lastUpdated"],
            },
        }
        for r in versions
    ]
    return {"resourceType": "Bundle", "type": "history", "total": len(entries), "entry": entries}
