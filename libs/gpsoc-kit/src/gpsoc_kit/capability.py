"""What a service declares it serves; the gateway builds the CapabilityStatement from these.

Each service answers GET /metadata with a CapabilityStatement built here from its
declarations, never hand-written, so the gateway's view cannot drift from what
the service actually routes.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

FHIR_VERSION = "4.0.1"


@dataclass(frozen=True)
class SearchParam:
    name: str
    type: str
    documentation: str = ""


@dataclass(frozen=True)
class ResourceCapability:
    type: str
    profile: str
    interactions: tuple[str, ...]
    search_params: tuple[SearchParam, ...] = ()
    operations: tuple[str, ...] = ()
    versioning: str = "versioned-update"
    conditional_update: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def to_fhir(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"type": self.type, "profile": self.profile}
        # FHIR forbids empty arrays: a type served only through operations lists none.
        if self.interactions:
            entry["interaction"] = [{"code": code} for code in self.interactions]
            entry.update(
                versioning=self.versioning,
                readHistory="history-instance" in self.interactions,
                updateCreate=False,
                conditionalCreate=False,
                conditionalUpdate=self.conditional_update,
                conditionalDelete="not-supported",
            )
        if self.search_params:
            entry["searchParam"] = [
                {
                    "name": p.name,
                    "type": p.type,
                    **({"documentation": p.documentation} if p.documentation else {}),
                }
                for p in self.search_params
            ]
        if self.operations:
            entry["operation"] = [
                {"name": op, "definition": f"https://opengpsoc.org/fhir/OperationDefinition/{op}"}
                for op in self.operations
            ]
        entry.update(self.extra)
        return entry


def capability_statement(
    name: str,
    title: str,
    resources: list[ResourceCapability],
    *,
    software_version: str = "0.1.0",
    base_url: str | None = None,
) -> dict[str, Any]:
    statement: dict[str, Any] = {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": dt.date.today().isoformat(),
        "publisher": "openGPSoC",
        "name": name,
        "title": title,
        "kind": "instance",
        "software": {"name": "openGPSoC", "version": software_version},
        "fhirVersion": FHIR_VERSION,
        "format": ["application/fhir+json", "json"],
        "rest": [
            {
                "mode": "server",
                "security": {
                    "cors": True,
                    "service": [
                        {
                            "coding": [
                                {
                                    "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                                    "code": "OAuth",
                                    "display": "OAuth",
                                }
                            ]
                        }
                    ],
                    "description": "OIDC bearer tokens (asymmetric JWTs); the practice and roles come from the token",
                },
                "resource": [r.to_fhir() for r in sorted(resources, key=lambda r: r.type)],
            }
        ],
    }
    if base_url:
        statement["implementation"] = {"description": title, "url": base_url}
    return statement
