"""The benchmark's bulk loader writes records the service reads like its own."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SERVICE_DIR = Path(__file__).resolve().parents[2]


def _bench_support():  # noqa: ANN202 - a module loaded by path: it is not in a package
    spec = importlib.util.spec_from_file_location(
        "clinical_notes_bench_support", SERVICE_DIR / "bench_support.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_bulk_loaded_records_give_a_full_patient_summary(client, auth, database):
    bench = _bench_support()
    practices = ("TBENA", "TBENB")
    result = await bench.load_records(
        database.owner_url, patients=6, entries_per_patient=100, practices=practices
    )
    assert result["entries"] == 6 * 100
    patient = bench.bench_patient_id(3)
    headers = auth(practice_code=bench.bench_practice(3, practices))
    response = await client.get(
        "/Encounter/$patient-summary", params={"patient": patient}, headers=headers
    )
    assert response.status_code == 200, response.text
    counts: dict[str, int] = {}
    for entry in response.json()["entry"]:
        counts[entry["resource"]["resourceType"]] = (
            counts.get(entry["resource"]["resourceType"], 0) + 1
        )
    assert counts == {"Condition": 3, "AllergyIntolerance": 2, "Observation": 5, "Encounter": 5}
    weights = await client.get(
        "/Observation",
        headers=headers,
        params={"patient": patient, "code": "27113001", "_count": "1"},
    )
    assert weights.json()["entry"][0]["resource"]["valueQuantity"]["code"] == "kg"
    other_practice = auth(practice_code=practices[0])
    assert (
        await client.get(
            "/Encounter/$patient-summary", params={"patient": patient}, headers=other_practice
        )
    ).status_code == 404
