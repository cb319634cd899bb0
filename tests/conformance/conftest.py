"""FHIR conformance fixtures: one offline HAPI FHIR validator per test run, and the report.

The validator is the Java program in infra/fhir-validator (HAPI FHIR validation libraries,
UK Core loaded from ../shared/fhir/uk-core, and our own extensions and code systems from
fhir/definitions; no terminology server). The session fixture
builds its jar with Maven when the jar is missing or older than its sources, starts it once on
a loopback port, and stops it at the end of the session (it also exits by itself when our
end of its stdin closes, so it never outlives a killed run).

Environment:
  GPSOC_UK_CORE_DIR          the UK Core folder (default: <repo>/../shared/fhir/uk-core)
  GPSOC_FHIR_DEFINITIONS_DIR our own conformance resources (default: <repo>/fhir/definitions)
  GPSOC_FHIR_VALIDATOR_HEAP  the validator's -Xmx (default 2g)
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
VALIDATOR_DIR = REPO / "infra" / "fhir-validator"
JAR = VALIDATOR_DIR / "target" / "fhir-validator.jar"
STATE = REPO / ".state" / "conformance"
REPORT_FILE = STATE / "report.md"
START_TIMEOUT = 300.0  # a cold JVM on a busy 2-core machine; typically 15-30 s
OFFLINE_PREFIX = "Not checked offline:"
# The validator's word that a *profile's* slicing cannot be evaluated (its discriminator
# has no fixed value, binding or existence assertion in the generated snapshot: seen for
# UKCore-Observation-VitalSigns-BloodPressure's component code slices). It says nothing
# about the instance, so it is reported in its own column as a warning, never dropped.
UNEVALUABLE_SLICING = "does not have fixed value, binding or existence assertions"


def definitions_dir() -> Path:
    configured = os.environ.get("GPSOC_FHIR_DEFINITIONS_DIR")
    return Path(configured) if configured else REPO / "fhir" / "definitions"


def uk_core_dir() -> Path:
    configured = os.environ.get("GPSOC_UK_CORE_DIR")
    return Path(configured) if configured else REPO.parent / "shared" / "fhir" / "uk-core"


# ----- validation outcomes and the report --------------------------------------------------
@dataclass
class Outcome:
    """The validator's OperationOutcome for one resource, sorted by severity."""

    operation_outcome: dict[str, Any]

    def _issues(self, *severities: str) -> list[dict[str, Any]]:
        return [i for i in self.operation_outcome.get("issue", []) if i.get("severity") in severities]

    @property
    def errors(self) -> list[dict[str, Any]]:
        return [i for i in self._issues("error", "fatal") if not _unevaluable(i)]

    @property
    def warnings(self) -> list[dict[str, Any]]:
        return self._issues("warning") + self.unevaluable_profile

    @property
    def unevaluable_profile(self) -> list[dict[str, Any]]:
        """Issues where the validator could not evaluate the profile itself (see above)."""
        return [i for i in self._issues("error", "fatal") if _unevaluable(i)]

    @property
    def offline_terminology(self) -> list[dict[str, Any]]:
        """Warnings for codes (SNOMED CT, dm+d, LOINC...) that cannot be checked offline."""
        return [i for i in self.warnings if i.get("diagnostics", "").startswith(OFFLINE_PREFIX)]

    def describe(self, issues: list[dict[str, Any]] | None = None) -> str:
        shown = self.errors if issues is None else issues
        return "\n".join(f"  {i['severity']}: {', '.join(i.get('expression', []) or ['-'])}: "
                         f"{i.get('diagnostics', '')}" for i in shown)


def _unevaluable(issue: dict[str, Any]) -> bool:
    return UNEVALUABLE_SLICING in issue.get("diagnostics", "")


@dataclass
class Row:
    subject: str  # e.g. "Patient (create)", "Bundle (Patient search)", "example UKCore-Patient-..."
    resource_type: str
    profile: str
    errors: int
    warnings: int
    offline: int
    note: str = ""


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)

    def add(self, subject: str, resource: dict[str, Any], profile: str | None, outcome: Outcome,
            note: str = "") -> None:
        if outcome.unevaluable_profile and not note:
            note = (f"{len(outcome.unevaluable_profile)} slicing checks of the profile could not "
                    "be evaluated by the validator (counted as warnings)")
        self.rows.append(Row(subject, resource.get("resourceType", "?"),
                             profile or _short(resource), len(outcome.errors),
                             len(outcome.warnings), len(outcome.offline_terminology), note))

    def finding(self, text: str) -> None:
        self.findings.append(text)

    def render(self) -> list[str]:
        if not self.rows and not self.findings:
            return []
        rows = sorted(self.rows, key=lambda r: (r.resource_type, r.subject))
        head = ("checked", "resource type", "profile", "errors", "warnings", "of which offline terms")
        table = [head] + [(r.subject, r.resource_type, r.profile.rsplit("/", 1)[-1], str(r.errors),
                           str(r.warnings), str(r.offline)) for r in rows]
        widths = [max(len(line[i]) for line in table) for i in range(len(head))]
        lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) + " |"
                 for line in table]
        lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
        by_type: dict[str, list[int]] = {}
        for r in rows:
            total = by_type.setdefault(r.resource_type, [0, 0, 0])
            total[0] += r.errors
            total[1] += r.warnings
            total[2] += r.offline
        lines += ["", "totals by resource type (errors / warnings / of which offline terminology):"]
        lines += [f"  {t}: {e} / {w} / {o}" for t, (e, w, o) in sorted(by_type.items())]
        if self.findings:
            lines += ["", "findings:"] + [f"  - {f}" for f in self.findings]
        return lines


def _short(resource: dict[str, Any]) -> str:
    profiles = (resource.get("meta") or {}).get("profile") or []
    return profiles[0] if profiles else f"http://hl7.org/fhir/StructureDefinition/{resource.get('resourceType')}"


REPORT = Report()


@pytest.fixture(scope="session")
def conformance_report() -> Report:
    return REPORT


def pytest_terminal_summary(terminalreporter: Any) -> None:
    lines = REPORT.render()
    if not lines:
        return
    terminalreporter.section("FHIR conformance (HAPI FHIR validator, FHIR R4 + UK Core)")
    for line in lines:
        terminalreporter.write_line(line)
    STATE.mkdir(parents=True, exist_ok=True)
    REPORT_FILE.write_text("\n".join(lines) + "\n")
    terminalreporter.write_line(f"(written to {REPORT_FILE.relative_to(REPO)})")


# ----- the validator process ----------------------------------------------------------------
def _sources_newer_than_jar() -> bool:
    if not JAR.exists():
        return True
    built = JAR.stat().st_mtime
    sources = [VALIDATOR_DIR / "pom.xml", *(VALIDATOR_DIR / "src").rglob("*")]
    return any(p.is_file() and p.stat().st_mtime > built for p in sources)


def build_validator() -> None:
    if not _sources_newer_than_jar():
        return
    mvn = shutil.which("mvn")
    if mvn is None:
        pytest.fail("Maven (mvn) is needed to build infra/fhir-validator; install it and Java 17")
    result = subprocess.run([mvn, "-q", "-f", str(VALIDATOR_DIR / "pom.xml"), "package"],
                            capture_output=True, text=True, timeout=1800, check=False)
    if result.returncode != 0 or not JAR.exists():
        pytest.fail(f"building the FHIR validator failed:\n{result.stdout[-4000:]}\n"
                    f"{result.stderr[-4000:]}")


class Validator:
    """Client of the running validator: validate, convert XML to JSON, must-support elements."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self._client = httpx.AsyncClient(base_url=base_url, timeout=120)
        self._must_support: dict[str, list[dict[str, Any]]] = {}

    async def validate(self, resource: dict[str, Any], profile: str | None = None) -> Outcome:
        params = {"profile": profile} if profile else None
        response = await self._client.post("/validate", params=params,
                                            content=json.dumps(resource).encode())
        assert response.status_code == 200, response.text
        return Outcome(response.json())

    async def convert(self, xml: str) -> dict[str, Any]:
        response = await self._client.post("/convert", content=xml.encode())
        assert response.status_code == 200, response.text
        return response.json()

    async def must_support(self, profile: str) -> list[dict[str, Any]]:
        if profile not in self._must_support:
            response = await self._client.get("/mustsupport", params={"profile": profile})
            assert response.status_code == 200, response.text
            self._must_support[profile] = response.json()["elements"]
        return self._must_support[profile]

    async def aclose(self) -> None:
        await self._client.aclose()


def _start_validator() -> tuple[subprocess.Popen[bytes], int]:
    java = shutil.which("java")
    if java is None:
        pytest.fail("Java 17 is needed to run the FHIR validator (infra/fhir-validator)")
    uk_core = uk_core_dir()
    if not (uk_core / "structuredefinitions").is_dir():
        pytest.fail(f"UK Core assets not found at {uk_core}; set GPSOC_UK_CORE_DIR")
    definitions = definitions_dir()
    if not definitions.is_dir():
        pytest.fail(f"our FHIR definitions not found at {definitions}; set GPSOC_FHIR_DEFINITIONS_DIR")
    STATE.mkdir(parents=True, exist_ok=True)
    log = (STATE / "validator.log").open("wb")
    heap = os.environ.get("GPSOC_FHIR_VALIDATOR_HEAP", "2g")
    process = subprocess.Popen(
        [java, f"-Xmx{heap}", "-XX:+UseSerialGC", "-jar", str(JAR), str(uk_core), "0",
         str(definitions)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, cwd=REPO)
    log.close()
    lines: queue.Queue[bytes] = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)
        lines.put(b"")

    threading.Thread(target=pump, name="fhir-validator-stdout", daemon=True).start()
    try:
        while True:
            line = lines.get(timeout=START_TIMEOUT)
            if not line:
                raise RuntimeError("the validator exited before it was ready")
            if line.startswith(b"LISTENING "):
                return process, int(line.split()[1])
    except (queue.Empty, RuntimeError) as exc:
        _stop(process)
        tail = (STATE / "validator.log").read_text(errors="replace")[-4000:]
        pytest.fail(f"the FHIR validator did not start ({exc!r}); log tail:\n{tail}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.stdin is not None:
        process.stdin.close()  # the validator exits when its stdin closes
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=15)


@pytest.fixture(scope="session")
def validator_process() -> Iterator[str]:
    build_validator()
    process, port = _start_validator()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        _stop(process)


@pytest.fixture(scope="session")
async def validator(validator_process: str) -> AsyncIterator[Validator]:
    client = Validator(validator_process)
    try:
        yield client
    finally:
        await client.aclose()


# ----- the platform, through the gateway ----------------------------------------------------
@pytest.fixture(scope="session")
async def gateway(platform: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=platform.fhir_base, timeout=60) as client:
        yield client


@pytest.fixture(scope="session")
def token(test_stack: Any):  # noqa: ANN201
    """`token(role, practice)` -> Authorization headers for a demo user."""

    def headers(role: str = "gp", practice: str = "A81001") -> dict[str, str]:
        return {"Authorization": f"Bearer {test_stack.keys.mint_token(role, practice)}",
                "Content-Type": "application/fhir+json"}

    return headers


@pytest.fixture(scope="session")
async def demo_platform(platform: Any, gateway: httpx.AsyncClient, token: Any) -> Any:
    """The platform with the demo dataset loaded (practices, staff, patients, rotas).

    Organizations and Practitioners have no create route (they arrive by onboarding), so the
    demo data is how the suite gets real ones to fetch and to reference. Loaded here only if
    the `platform` fixture has not loaded it already.
    """
    from gpsoc_kit.testing.plugin import run_sync

    found = await gateway.get("/Organization", headers=token("gp", "A81001"))
    if not found.json().get("total"):
        await run_sync(lambda: platform.platform.seed_demo(force=True))
    return platform


@pytest.fixture(scope="session")
async def served_types(gateway: httpx.AsyncClient, demo_platform: Any) -> set[str]:
    """The resource types the platform's CapabilityStatement says it serves."""
    statement = (await gateway.get("/metadata")).json()
    return {r["type"] for rest in statement.get("rest", []) for r in rest.get("resource", [])}
