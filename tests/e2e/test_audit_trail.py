"""Audit as a product, end to end: accesses in any service reach the hash-chained store, and
"who viewed this patient's record" is one query for a privacy officer."""

from __future__ import annotations

import asyncio
import subprocess
import sys

from gpsoc_kit.testing.fhir_factories import patient


async def test_who_viewed_this_record_is_one_query_and_the_chain_verifies(gateway, token, platform):
    registered = await gateway.post("/Patient", json=patient(), headers=token("receptionist"))
    pid = registered.json()["id"]
    assert (await gateway.get(f"/Patient/{pid}", headers=token("nurse"))).status_code == 200
    assert (await gateway.get(f"/Patient/{pid}", headers=token("gp"))).status_code == 200
    assert (await gateway.get(f"/Patient/{pid}", headers=token("gp", "A81002"))).status_code == 404

    officer = token("privacy-officer")
    viewers: list[str] = []
    for _ in range(90):
        response = await gateway.get(
            "/AuditEvent", params={"patient": pid, "action": "R", "outcome": "0"}, headers=officer
        )
        assert response.status_code == 200, response.text
        viewers = [
            e["resource"]["agent"][0]["role"][0]["coding"][0]["display"]
            for e in response.json()["entry"]
        ]
        if len(viewers) >= 2:
            break
        await asyncio.sleep(0.5)
    assert sorted(viewers) == ["gp", "nurse"]

    # The other practice's probe (answered 404, existence not disclosed to it) is in this
    # practice's trail as a refused attempt: the holder's privacy officer sees who tried.
    async def probe() -> list[dict]:
        response = await gateway.get(
            "/AuditEvent", params={"patient": pid, "outcome": "4"}, headers=officer
        )
        return [e["resource"] for e in response.json().get("entry", [])]

    for _ in range(90):
        attempts = await probe()
        if attempts:
            break
        await asyncio.sleep(0.5)
    assert [a["source"]["site"] for a in attempts] == ["A81002"]
    # The prober's own practice sees its user's attempt, and nothing of the patient.
    theirs = await gateway.get(
        "/AuditEvent", params={"patient": pid}, headers=token("privacy-officer", "A81002")
    )
    assert [e["resource"]["outcome"] for e in theirs.json().get("entry", [])] in ([], ["4"])

    assert (
        await gateway.get("/AuditEvent", params={"patient": pid}, headers=token("receptionist"))
    ).status_code == 403

    owner_url = platform.databases["audit"].owner_url
    verify = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "audit_trail", "verify", "--database-url", owner_url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
