"""A user of practice A81002 probes practice A81001's data on every route, through the gateway.

Another practice's resource does not exist for them: reads, versions and histories answer
404 OperationOutcomes; searches (by `_id`, by patient, by name, with `_include`) neither
return A81001's resources nor count them in `total`; `$everything` answers 404; a paging
link A81001 was given, replayed with A81002's token, pages through A81002's data only. No
answer to a probe contains any id of A81001's record. Each probe has a positive control -
A81001's own staff see the same thing - so none can pass vacuously.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

HOME, OTHER = "A81001", "A81002"
ODS = "https://fhir.nhs.uk/Id/ods-organization-code"
CLINICAL = ("Encounter", "Condition", "Observation", "AllergyIntolerance")
WITH_HISTORY = ("Patient", "Appointment", "MedicationRequest", *CLINICAL)
SEARCH_BY_ID = ("Patient", "Practitioner", "MedicationRequest", *CLINICAL)
SEARCH_BY_PATIENT = ("Appointment", "MedicationRequest", *CLINICAL)
READ_BY_ID = ("Patient", "Practitioner", "Organization", "Schedule", "Slot", "Appointment",
              "MedicationRequest", *CLINICAL, "AuditEvent")


def role_for(resource_type: str) -> str:
    """Who at a practice may read this type: the audit trail is the privacy officer's."""
    return "privacy-officer" if resource_type == "AuditEvent" else "gp"


def ids_in(bundle: dict[str, Any]) -> set[str]:
    return {e["resource"].get("id") for e in bundle.get("entry", [])}


class Home:
    """A81001's record and directory entries, and every id a probe must never see."""

    def __init__(self, record: Any) -> None:
        self.record = record
        self.ids: dict[str, str] = dict(record.ids)

    @property
    def secret_ids(self) -> set[str]:
        return set(self.ids.values())

    def leaked(self, response: httpx.Response) -> set[str]:
        """A81001's ids in an answer, beyond those the probe itself sent (which an error
        message or a Bundle's self link may echo back: the prober knew them already)."""
        asked = str(response.request.url)
        return {i for i in self.secret_ids if i in response.text and i not in asked}


@pytest.fixture(scope="session")
async def home(gateway, token, home_record) -> Home:  # noqa: ANN001
    return await home_of(gateway, token, home_record)


async def home_of(gateway, token, record: Any) -> Home:  # noqa: ANN001
    """A81001's `record` with its directory entries and an audit record of it."""
    found = Home(record)
    gp = token("gp", HOME)
    orgs = (await gateway.get("/Organization", params={"identifier": f"{ODS}|{HOME}"},
                              headers=gp)).json()
    assert orgs["total"] == 1
    found.ids["Organization"] = orgs["entry"][0]["resource"]["id"]
    staff = (await gateway.get("/Practitioner", params={"_count": "1"}, headers=gp)).json()
    found.ids["Practitioner"] = staff["entry"][0]["resource"]["id"]
    officer = token("privacy-officer", HOME)

    async def audited() -> dict[str, Any] | None:
        response = await gateway.get("/AuditEvent", params={"patient": found.ids["Patient"]},
                                     headers=officer)
        bundle = response.json()
        return bundle if bundle.get("total") else None

    from gpsoc_kit.testing.flows import eventually

    found.ids["AuditEvent"] = (await eventually(audited))["entry"][0]["resource"]["id"]
    return found


Probe = Callable[[str], dict[str, str]]


@pytest.fixture
def as_home(token) -> Probe:  # noqa: ANN001
    return lambda resource_type: token(role_for(resource_type), HOME)


@pytest.fixture
def as_other(token) -> Probe:  # noqa: ANN001
    return lambda resource_type: token(role_for(resource_type), OTHER)


def assert_not_found(response: httpx.Response, home: Home, where: str) -> None:
    assert response.status_code == 404, f"{where}: {response.status_code} {response.text[:300]}"
    assert response.json()["resourceType"] == "OperationOutcome", where
    assert not home.leaked(response), where


# ----- reads, versions, histories ------------------------------------------------------------
@pytest.mark.parametrize("resource_type", READ_BY_ID)
async def test_a_read_by_id_of_another_practices_resource_is_404(
    gateway, home, as_home, as_other, resource_type
):
    path = f"/{resource_type}/{home.ids[resource_type]}"
    control = await gateway.get(path, headers=as_home(resource_type))
    assert control.status_code == 200, control.text
    assert control.json()["id"] == home.ids[resource_type]
    assert_not_found(await gateway.get(path, headers=as_other(resource_type)), home, path)


@pytest.mark.parametrize("resource_type", WITH_HISTORY)
async def test_history_and_versions_of_another_practices_resource_are_404(
    gateway, home, as_home, as_other, resource_type
):
    base = f"/{resource_type}/{home.ids[resource_type]}/_history"
    for path in (base, f"{base}/1"):
        control = await gateway.get(path, headers=as_home(resource_type))
        assert control.status_code == 200, f"{path}: {control.text[:300]}"
        assert home.ids[resource_type] in control.text
        assert_not_found(await gateway.get(path, headers=as_other(resource_type)), home, path)


# ----- searches --------------------------------------------------------------------------------
async def search_both(gateway, as_home, as_other, resource_type: str, params: Any):  # noqa: ANN001, ANN201
    path = f"/{resource_type}"
    control = await gateway.get(path, params=params, headers=as_home(resource_type))
    probe = await gateway.get(path, params=params, headers=as_other(resource_type))
    assert control.status_code == 200, control.text
    assert probe.status_code == 200, probe.text
    return control.json(), probe


@pytest.mark.parametrize("resource_type", SEARCH_BY_ID)
async def test_an_id_search_never_finds_another_practices_resource(
    gateway, home, as_home, as_other, resource_type
):
    wanted = home.ids[resource_type]
    control, probe = await search_both(gateway, as_home, as_other, resource_type,
                                       {"_id": wanted})
    assert control["total"] == 1 and ids_in(control) == {wanted}
    assert probe.json()["total"] == 0 and not probe.json().get("entry")
    assert not home.leaked(probe)


@pytest.mark.parametrize("resource_type", SEARCH_BY_PATIENT)
async def test_a_search_by_another_practices_patient_finds_and_counts_nothing(
    gateway, home, as_home, as_other, resource_type
):
    control, probe = await search_both(gateway, as_home, as_other, resource_type,
                                       {"patient": home.ids["Patient"]})
    assert control["total"] >= 1
    assert home.ids[resource_type] in ids_in(control)
    assert probe.json()["total"] == 0 and not probe.json().get("entry")
    assert not home.leaked(probe)


def sites(bundle: dict[str, Any]) -> set[str]:
    return {e["resource"]["source"]["site"] for e in bundle.get("entry", [])}


async def test_the_audit_trail_of_another_practices_patient_holds_only_ones_own_probes(
    gateway, home, as_home, as_other
):
    """A81002's privacy officer asking about A81001's patient sees no record of A81001's:
    only their own staff's refused attempts on that id (which A81002's users sent), if any.
    A81001's trail holds those attempts too, as disclosures to the holding practice."""
    params = {"patient": home.ids["Patient"], "_count": "100"}
    control, probe = await search_both(gateway, as_home, as_other, "AuditEvent", params)
    assert control["total"] >= 1 and HOME in sites(control) and sites(control) <= {HOME, OTHER}
    assert all(e["resource"]["outcome"] != "0" for e in control["entry"]
               if e["resource"]["source"]["site"] == OTHER), "A81002 only ever tried"
    found = probe.json()
    assert sites(found) <= {OTHER}
    assert not ids_in(found) & ids_in(control)
    assert all(e["resource"]["outcome"] != "0" for e in found.get("entry", [])), (
        "A81002 never accessed the patient successfully")
    assert found["total"] == len(found.get("entry", []))


async def test_a_demographic_search_never_finds_another_practices_patient(
    gateway, home, as_home, as_other
):
    for params in ({"family": home.record.family}, {"name": home.record.family},
                   {"phonetic": home.record.family}):
        control, probe = await search_both(gateway, as_home, as_other, "Patient", params)
        assert ids_in(control) == {home.ids["Patient"]}, params
        assert probe.json()["total"] == 0, params
        assert not home.leaked(probe), params


async def test_the_other_practice_sees_its_own_organization_only(gateway, token, home):
    other = token("gp", OTHER)
    own = (await gateway.get("/Organization", params={"identifier": f"{ODS}|{OTHER}"},
                             headers=other)).json()
    assert own["total"] == 1, "positive control: a practice finds itself"
    own_id = own["entry"][0]["resource"]["id"]
    assert (await gateway.get(f"/Organization/{own_id}", headers=other)).status_code == 200
    listed = await gateway.get("/Organization", headers=other)
    assert listed.status_code == 200
    assert home.ids["Organization"] not in ids_in(listed.json())
    assert listed.json()["total"] == len(ids_in(listed.json()))
    by_code = await gateway.get("/Organization", params={"identifier": f"{ODS}|{HOME}"},
                                headers=other)
    assert by_code.json()["total"] == 0 and not home.leaked(by_code)


async def test_schedules_and_slots_of_another_practice_are_not_found_or_included(
    gateway, token, home, records
):
    home_gp, other_gp = token("gp", HOME), token("gp", OTHER)
    window = records.slot_window(days=14)
    by_schedule = [*window, ("schedule", f"Schedule/{home.ids['Schedule']}"),
                   ("_total", "accurate")]
    control = await gateway.get("/Slot", params=by_schedule, headers=home_gp)
    assert control.status_code == 200 and control.json()["total"] >= 1, control.text
    probe = await gateway.get("/Slot", params=by_schedule, headers=other_gp)
    assert probe.status_code == 200 and probe.json()["total"] == 0
    assert not home.leaked(probe)

    practitioner = f"Practitioner/{home.ids['Practitioner']}"
    schedules = await gateway.get("/Schedule", params={"actor": practitioner}, headers=other_gp)
    assert schedules.status_code == 200 and schedules.json()["total"] == 0

    included = [*window, ("_include", "Slot:schedule"),
                ("_include:recurse", "Schedule:actor:Practitioner"), ("_count", "100")]
    control = await gateway.get("/Slot", params=included, headers=home_gp)
    assert control.status_code == 200
    control_included = {e["resource"]["id"] for e in control.json()["entry"]
                        if e["search"]["mode"] == "include"}
    assert control_included, "positive control: A81001's search includes its schedules"
    probe = await gateway.get("/Slot", params=included, headers=other_gp)
    assert probe.status_code == 200, probe.text
    probe_ids = {e["resource"]["id"] for e in probe.json()["entry"]}
    assert probe_ids, "A81002 has slots of its own: the probe is not empty by accident"
    assert not probe_ids & control_included, "no A81001 schedule or practitioner is included"
    assert not home.leaked(probe)


@pytest.mark.parametrize("resource_type", ["Appointment", "MedicationRequest"])
async def test_an_include_on_other_types_is_refused_or_leaks_nothing(
    gateway, home, as_other, resource_type
):
    params = {"patient": home.ids["Patient"], "_include": f"{resource_type}:patient"}
    probe = await gateway.get(f"/{resource_type}", params=params, headers=as_other(resource_type))
    assert probe.status_code in (200, 400), probe.text
    if probe.status_code == 200:
        assert probe.json()["total"] == 0
    assert not home.leaked(probe)


async def test_a_patient_summary_of_another_practices_patient_shows_nothing(
    gateway, token, home
):
    params = {"patient": home.ids["Patient"]}
    control = await gateway.get("/Encounter/$patient-summary", params=params,
                                headers=token("gp", HOME))
    assert control.status_code == 200 and home.ids["Condition"] in control.text
    probe = await gateway.get("/Encounter/$patient-summary", params=params,
                              headers=token("gp", OTHER))
    assert probe.status_code in (200, 404), probe.text
    if probe.status_code == 200:
        assert not probe.json().get("entry")
    assert not home.leaked(probe)


# ----- $everything and paging links --------------------------------------------------------
async def test_everything_on_another_practices_patient_is_404(gateway, token, home):
    path = f"/Patient/{home.ids['Patient']}/$everything"
    control = await gateway.get(path, headers=token("gp", HOME))
    assert control.status_code == 200
    found = {e["resource"]["id"] for e in control.json()["entry"]}
    assert {home.ids[t] for t in ("Patient", "Appointment", "Condition", "AllergyIntolerance",
                                  "Observation", "MedicationRequest")} <= found
    assert_not_found(await gateway.get(path, headers=token("gp", OTHER)), home, path)


def _relative(link: str) -> str:
    """A paging link made relative to the FHIR base, so it is replayed on this gateway."""
    parts = urlsplit(link)
    path = parts.path.split("/fhir/R4", 1)[-1]
    return f"{path}?{parts.query}" if parts.query else path


@pytest.mark.parametrize(("resource_type", "params"), [
    ("Patient", {"_count": "2"}),
    ("Practitioner", {"_count": "1"}),
    ("AuditEvent", {"_count": "2"}),
])
async def test_a_paging_link_replayed_by_another_practice_pages_its_own_data_only(
    gateway, home, as_home, as_other, resource_type, params
):
    first = await gateway.get(f"/{resource_type}", params=params, headers=as_home(resource_type))
    assert first.status_code == 200
    links = {link["relation"]: link["url"] for link in first.json()["link"]}
    assert "next" in links, "positive control: A81001 has more than one page"
    next_page = _relative(links["next"])
    control = await gateway.get(next_page, headers=as_home(resource_type))
    home_page = ids_in(control.json())
    assert control.status_code == 200 and home_page, "A81001's next page has its data"
    replayed = await gateway.get(next_page, headers=as_other(resource_type))
    assert replayed.status_code == 200, replayed.text
    assert not ids_in(replayed.json()) & home_page, "none of A81001's page"
    all_home = await gateway.get(f"/{resource_type}", params={"_count": "100"},
                                 headers=as_home(resource_type))
    assert not ids_in(replayed.json()) & ids_in(all_home.json())
    if resource_type == "AuditEvent":
        # A81002's own trail records its staff's probes of A81001's patient id (they sent
        # it); what matters is that every record on the page is A81002's.
        assert sites(replayed.json()) == {OTHER}
    else:
        assert not home.leaked(replayed)


async def test_probing_an_id_that_never_existed_answers_exactly_like_another_practices(
    gateway, token, home
):
    """Existence is not disclosed: A81001's patient and a random id get the same answer."""
    other = token("gp", OTHER)
    real = await gateway.get(f"/Patient/{home.ids['Patient']}", headers=other)
    made_up = await gateway.get(f"/Patient/{uuid.uuid4()}", headers=other)
    assert real.status_code == made_up.status_code == 404
    strip = lambda text: text.replace(home.ids["Patient"], "X")  # noqa: E731
    assert real.json()["issue"][0]["code"] == made_up.json()["issue"][0]["code"]
    assert len(strip(real.text)) - len(strip(made_up.text)) in range(-40, 41)
