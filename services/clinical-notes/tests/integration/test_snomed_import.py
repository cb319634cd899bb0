"""The RF2 importer on a small release in RF2 format: imported concepts are accepted and found."""

from __future__ import annotations

from pathlib import Path

from clinical_notes.examples import condition
from clinical_notes.service_layer.terminology import import_release

RELEASE = Path(__file__).resolve().parents[1] / "fixtures" / "rf2"


async def _import(app) -> dict[str, int]:  # noqa: ANN001
    async with app.state.engine.begin() as conn:
        return await import_release(conn, RELEASE)


async def test_an_imported_release_extends_validation_lookup_and_search(
    client, auth, register, app
):
    patient = await register()
    assert await _import(app) == {"concepts": 6, "descriptions": 11}
    assert await _import(app) == {"concepts": 6, "descriptions": 11}  # re-import is harmless
    heart_failure = condition(patient, code="42343007", display="Congestive heart failure")
    assert (await client.post("/Condition", json=heart_failure, headers=auth())).status_code == 201
    retired = condition(patient, code="99999900004", display="Retired test concept")
    assert (await client.post("/Condition", json=retired, headers=auth())).status_code == 422
    lookup = await client.get(
        "/CodeSystem/$lookup",
        headers=auth(),
        params={"system": "http://snomed.info/sct", "code": "42343007"},
    )
    assert lookup.status_code == 200
    parameters = lookup.json()["parameter"]
    assert {"name": "display", "valueString": "Congestive heart failure"} in parameters
    expansion = await client.get(
        "/ValueSet/$expand", headers=auth(), params={"filter": "congestive"}
    )
    assert [c["code"] for c in expansion.json()["expansion"]["contains"]] == ["42343007"]
