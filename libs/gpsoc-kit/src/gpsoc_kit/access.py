"""The one permission matrix: every route and FHIR interaction the platform serves -> what it needs.

Each row names a method and a path pattern (relative to the FHIR base, e.g.
`/Patient/{id}/_history/{vid}`), the resource type and FHIR interaction it is, the service
that answers it, and the access it requires: `PUBLIC` (no token: the CapabilityStatement),
`AUTHENTICATED` (any verified user holding a known role) or permissions from
`gpsoc_kit.auth.ROLE_PERMISSIONS`. A caller with no known role is denied everywhere but
the public routes.

The gateway looks up every request here before it proxies (403 and an audit record when
the roles do not grant the rule; 404 for a route that is not in the table), and each
service enforces the same permission on its own routes (`require(Permission.X)`), so a
request that slips past the gateway is still refused. The rows were derived from what the
services enforce; tests walk the whole table through the gateway and against each service.

A few rules depend on more than the path:
- `POST /MedicationRequest` is three interactions told apart by the body (authorise,
  request a repeat, issue): the rows carry `when` conditions and the first whose
  conditions hold applies.
- Some services refine a rule by the stored resource's state (cancelling an *issued*
  order needs issue-prescription where withdrawing a repeat request does not); the
  table holds the gate every caller must pass, and `note` says what the service adds.

Lookup is by (method, first path segment) into a few pre-compiled patterns: cheap enough
for every request.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from .auth import ROLE_PERMISSIONS, Permission, Principal

P = Permission

KNOWN_ROLES = frozenset(ROLE_PERMISSIONS)

# FHIR ids (and version ids): https://hl7.org/fhir/R4/datatypes.html#id. An operation
# (`$lookup`) or `_history` never matches an id segment.
_ID = r"[A-Za-z0-9\-.]{1,64}"
_PARAM = re.compile(r"\{([a-z_]+)\}")


@dataclass(frozen=True)
class Requirement:
    """What a caller needs for one rule."""

    all_of: frozenset[Permission] = frozenset()
    any_of: frozenset[Permission] = frozenset()
    public: bool = False

    def allows(self, principal: Principal | None) -> bool:
        if self.public:
            return True
        if principal is None or not principal.roles & KNOWN_ROLES:
            return False
        if not all(principal.can(p) for p in self.all_of):
            return False
        return not self.any_of or any(principal.can(p) for p in self.any_of)

    def missing(self, principal: Principal | None) -> str:
        """What the caller lacks, for the 403's diagnostics (a permission name, not data)."""
        if principal is None or not principal.roles & KNOWN_ROLES:
            return "a known role"
        lacking = sorted(p.value for p in self.all_of if not principal.can(p))
        if lacking:
            return ", ".join(lacking)
        return "one of " + ", ".join(sorted(p.value for p in self.any_of))

    def describe(self) -> str:
        if self.public:
            return "public"
        parts = [p.value for p in sorted(self.all_of)]
        if self.any_of:
            parts.append("any of (" + ", ".join(p.value for p in sorted(self.any_of)) + ")")
        return " + ".join(parts) or "authenticated"


PUBLIC = Requirement(public=True)
AUTHENTICATED = Requirement()


def needs(*permissions: Permission) -> Requirement:
    return Requirement(all_of=frozenset(permissions))


def any_of(*permissions: Permission) -> Requirement:
    return Requirement(any_of=frozenset(permissions))


# FHIR restful-interaction codes -> the codes the chassis' audit records use.
_AUDIT_INTERACTIONS = {
    "search-type": "search",
    "history-instance": "history",
    "capabilities": "read",
}


@dataclass(frozen=True)
class Rule:
    """One row of the matrix."""

    method: str
    path: str  # pattern relative to the FHIR base: /Patient/{id}/_history/{vid}
    resource_type: str
    interaction: str  # FHIR restful-interaction code: read, vread, search-type, create, ...
    service: str  # who answers it: a service name, or "gateway"
    requires: Requirement
    operation: str | None = None  # "$everything" for interaction "operation"
    when: tuple[tuple[str, str], ...] = ()  # body conditions: (("intent", "plan"),)
    note: str = ""
    # False: the service answers 405 to everyone (records are never deleted, prescriptions
    # change only through their operations); the route stays so the client learns why.
    supported: bool = True

    @property
    def name(self) -> str:
        """A stable, readable id: `POST /MedicationRequest [intent=plan]`."""
        conditions = ",".join(f"{k}={v}" for k, v in self.when)
        return f"{self.method} {self.path}" + (f" [{conditions}]" if conditions else "")

    @property
    def audit_interaction(self) -> str:
        """The interaction as the chassis' audit records name it."""
        if self.interaction == "operation":
            return "operation"
        return _AUDIT_INTERACTIONS.get(self.interaction, self.interaction)

    def matches_body(self, resource: Mapping[str, Any] | None) -> bool:
        if not self.when:
            return True
        if resource is None:
            return False
        return all(resource.get(key) == value for key, value in self.when)


@dataclass(frozen=True)
class Match:
    """A request's rule and the path parameters (`id`, `vid`) it named."""

    rule: Rule
    params: Mapping[str, str] = field(default_factory=dict)

    @property
    def resource_id(self) -> str | None:
        return self.params.get("id")

    def patient_id(self, query: Mapping[str, str] | None = None) -> str | None:
        """The patient the request names: Patient/{id}, or the `patient` (`subject`) parameter."""
        if self.rule.resource_type == "Patient" and self.resource_id:
            return self.resource_id
        for name in ("patient", "subject"):
            value = (query or {}).get(name)
            if value:
                return value.removeprefix("Patient/")
        return None


@dataclass(frozen=True)
class _Route:
    regex: re.Pattern[str]
    rules: tuple[Rule, ...]  # several only when told apart by the body

    @property
    def discriminated(self) -> bool:
        return len(self.rules) > 1


class PermissionMatrix:
    """The rules, compiled for lookup by method and path."""

    def __init__(self, rules: Iterable[Rule]) -> None:
        self.rules: tuple[Rule, ...] = tuple(rules)
        grouped: dict[tuple[str, str], list[Rule]] = {}
        for rule in self.rules:
            if not rule.path.startswith("/"):
                raise ValueError(f"{rule.name}: paths start with /")
            grouped.setdefault((rule.method, rule.path), []).append(rule)
        self._routes: dict[tuple[str, str], list[_Route]] = {}
        for (method, path), rules in grouped.items():
            if any(not r.when for r in rules[:-1]):
                raise ValueError(f"{method} {path}: only the last variant may be unconditional")
            first = path.split("/")[1]
            if "{" in first:
                raise ValueError(f"{method} {path}: the first segment must be literal")
            self._routes.setdefault((method, first), []).append(
                _Route(_compile(path), tuple(rules))
            )

    def __iter__(self) -> Iterator[Rule]:
        return iter(self.rules)

    def __len__(self) -> int:
        return len(self.rules)

    def route(self, method: str, path: str) -> tuple[tuple[Rule, ...], dict[str, str]] | None:
        """The candidate rules (variants told apart by the body) and path parameters."""
        path = "/" + path.lstrip("/")
        first = path.split("/", 2)[1]
        for route in self._routes.get((method.upper(), first), ()):
            found = route.regex.fullmatch(path)
            if found:
                return route.rules, found.groupdict()
        return None

    def needs_body(self, method: str, path: str) -> bool:
        """Whether the rule depends on the request body (parse it only then)."""
        found = self.route(method, path)
        return found is not None and len(found[0]) > 1

    def lookup(
        self, method: str, path: str, resource: Mapping[str, Any] | None = None
    ) -> Match | None:
        """The rule for a request, or None: the platform serves no such route."""
        found = self.route(method, path)
        if found is None:
            return None
        rules, params = found
        for rule in rules:
            if rule.matches_body(resource):
                return Match(rule, params)
        return None  # unreachable: the last variant is unconditional

    def served_by(self, service: str) -> frozenset[str]:
        """The resource types a service answers for (what the gateway routes to it)."""
        return frozenset(r.resource_type for r in self.rules if r.service == service)

    def rule(self, name: str) -> Rule:
        for rule in self.rules:
            if rule.name == name:
                return rule
        raise KeyError(name)


def _compile(path: str) -> re.Pattern[str]:
    pattern = ""
    for segment in path.strip("/").split("/"):
        name = _PARAM.fullmatch(segment)
        pattern += "/" + (f"(?P<{name.group(1)}>{_ID})" if name else re.escape(segment))
    return re.compile(pattern)


# ----- the table -------------------------------------------------------------------------
def _instance_rules(
    service: str,
    resource_type: str,
    *,
    read: Requirement,
    create: Requirement | None = None,
    update: Requirement | None = None,
    history: bool = False,
    delete_refused: bool = False,
    search: bool = True,
) -> list[Rule]:
    """The usual REST interactions of one resource type."""
    base = f"/{resource_type}"
    rows = [Rule("GET", f"{base}/{{id}}", resource_type, "read", service, read)]
    if search:
        rows.append(Rule("GET", base, resource_type, "search-type", service, read))
    if create is not None:
        rows.append(Rule("POST", base, resource_type, "create", service, create))
    if update is not None:
        rows.append(Rule("PUT", f"{base}/{{id}}", resource_type, "update", service, update))
    if history:
        rows += [
            Rule("GET", f"{base}/{{id}}/_history", resource_type, "history-instance", service,
                 read),
            Rule("GET", f"{base}/{{id}}/_history/{{vid}}", resource_type, "vread", service, read),
        ]
    if delete_refused:
        rows.append(
            Rule("DELETE", f"{base}/{{id}}", resource_type, "delete", service, AUTHENTICATED,
                 note="never deleted: the service answers 405", supported=False)
        )
    return rows


def _operation(
    method: str, path: str, resource_type: str, service: str, requires: Requirement, **kw: Any
) -> Rule:
    return Rule(method, path, resource_type, "operation", service, requires,
                operation=path.rsplit("/", 1)[-1], **kw)


CLINICAL_RESOURCE_TYPES = ("Encounter", "Condition", "Observation", "AllergyIntolerance", "List")
# What Patient/$everything gathers (gateway.everything): the union of what its parts need.
EVERYTHING = needs(P.READ_DEMOGRAPHICS, P.READ_APPOINTMENTS, P.READ_MEDICATION, P.READ_CLINICAL)
_PRESCRIBING_CREATE = any_of(P.AUTHORISE_PRESCRIPTION, P.REQUEST_REPEAT, P.ISSUE_PRESCRIPTION)

RULES: tuple[Rule, ...] = (
    # ----- the gateway's own ------------------------------------------------------------
    Rule("GET", "/metadata", "CapabilityStatement", "capabilities", "gateway", PUBLIC,
         note="read before a client has a token, as FHIR expects"),
    _operation("GET", "/Patient/{id}/$everything", "Patient", "gateway", EVERYTHING,
               note="fans out to the services, each of which checks and audits its part"),
    # ----- patient-index ------------------------------------------------------------------
    *_instance_rules("patient-index", "Patient", read=needs(P.READ_DEMOGRAPHICS),
                     create=needs(P.WRITE_DEMOGRAPHICS), update=needs(P.WRITE_DEMOGRAPHICS),
                     history=True, delete_refused=True),
    *_instance_rules("patient-index", "Organization", read=needs(P.READ_DEMOGRAPHICS)),
    *_instance_rules("patient-index", "Practitioner", read=needs(P.READ_DEMOGRAPHICS)),
    # Sharing agreements between practices and break-glass (issue #6).
    *_instance_rules("patient-index", "OrganizationAffiliation", read=needs(P.READ_SHARING),
                     create=needs(P.MANAGE_SHARING), update=needs(P.MANAGE_SHARING)),
    _operation("POST", "/Patient/{id}/$break-glass", "Patient", "patient-index",
               needs(P.BREAK_GLASS),
               note="a reason is required; time-limited, audited and alerted"),
    # ----- appointments -------------------------------------------------------------------
    *_instance_rules("appointments", "Schedule", read=needs(P.READ_APPOINTMENTS),
                     create=needs(P.MANAGE_ROTA)),
    _operation("POST", "/Schedule/{id}/$add-session", "Schedule", "appointments",
               needs(P.MANAGE_ROTA)),
    *_instance_rules("appointments", "Slot", read=needs(P.READ_APPOINTMENTS)),
    _operation("POST", "/Slot/{id}/$hold", "Slot", "appointments", needs(P.BOOK_APPOINTMENTS),
               note="the slot's type may further limit who books it"),
    _operation("POST", "/Slot/{id}/$block", "Slot", "appointments", needs(P.MANAGE_ROTA)),
    _operation("POST", "/Slot/{id}/$unblock", "Slot", "appointments", needs(P.MANAGE_ROTA)),
    *_instance_rules("appointments", "Appointment", read=needs(P.READ_APPOINTMENTS),
                     create=needs(P.BOOK_APPOINTMENTS), update=needs(P.BOOK_APPOINTMENTS),
                     history=True, delete_refused=True),
    # ----- prescribing --------------------------------------------------------------------
    *_instance_rules("prescribing", "Medication", read=AUTHENTICATED),
    Rule("POST", "/MedicationRequest", "MedicationRequest", "create", "prescribing",
         needs(P.AUTHORISE_PRESCRIPTION), when=(("intent", "plan"),),
         note="authorise; nurses and pharmacists only as independent prescribers"),
    Rule("POST", "/MedicationRequest", "MedicationRequest", "create", "prescribing",
         needs(P.REQUEST_REPEAT), when=(("intent", "order"), ("status", "draft")),
         note="request a repeat, for a prescriber to approve"),
    Rule("POST", "/MedicationRequest", "MedicationRequest", "create", "prescribing",
         needs(P.ISSUE_PRESCRIPTION), when=(("intent", "order"),), note="issue"),
    Rule("POST", "/MedicationRequest", "MedicationRequest", "create", "prescribing",
         _PRESCRIBING_CREATE, note="any other intent: the service answers 422"),
    *_instance_rules("prescribing", "MedicationRequest", read=needs(P.READ_MEDICATION),
                     history=True, delete_refused=True),
    Rule("PUT", "/MedicationRequest/{id}", "MedicationRequest", "update", "prescribing",
         AUTHENTICATED, note="changes go through $issue, $stop, $cancel", supported=False),
    _operation("POST", "/MedicationRequest/{id}/$issue", "MedicationRequest", "prescribing",
               needs(P.ISSUE_PRESCRIPTION)),
    _operation("POST", "/MedicationRequest/{id}/$stop", "MedicationRequest", "prescribing",
               needs(P.AUTHORISE_PRESCRIPTION)),
    _operation("POST", "/MedicationRequest/{id}/$cancel", "MedicationRequest", "prescribing",
               needs(P.REQUEST_REPEAT),
               note="cancelling an issued order also needs issue-prescription (the service)"),
    # ----- clinical-notes -----------------------------------------------------------------
    *(
        rule
        for resource_type in CLINICAL_RESOURCE_TYPES
        for rule in (
            *_instance_rules("clinical-notes", resource_type, read=needs(P.READ_CLINICAL),
                             create=needs(P.WRITE_CLINICAL), update=needs(P.WRITE_CLINICAL),
                             history=True, delete_refused=True),
            _operation("POST", f"/{resource_type}/{{id}}/$entered-in-error", resource_type,
                       "clinical-notes", needs(P.WRITE_CLINICAL)),
        )
    ),
    _operation("GET", "/Encounter/$patient-summary", "Encounter", "clinical-notes",
               needs(P.READ_CLINICAL)),
    _operation("GET", "/CodeSystem/$lookup", "CodeSystem", "clinical-notes",
               needs(P.READ_CLINICAL)),
    _operation("GET", "/ValueSet/$expand", "ValueSet", "clinical-notes", needs(P.READ_CLINICAL)),
    # ----- audit --------------------------------------------------------------------------
    *_instance_rules("audit", "AuditEvent", read=needs(P.READ_AUDIT)),
)

MATRIX = PermissionMatrix(RULES)

__all__ = [
    "AUTHENTICATED",
    "CLINICAL_RESOURCE_TYPES",
    "KNOWN_ROLES",
    "MATRIX",
    "PUBLIC",
    "RULES",
    "Match",
    "PermissionMatrix",
    "Requirement",
    "Rule",
    "any_of",
    "needs",
]
