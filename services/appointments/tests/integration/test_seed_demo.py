"""The demo rotas: free slots every working day for the next 14 days, loaded idempotently."""

from __future__ import annotations

import datetime as dt

from appointments.domain.rota import PRACTICE_TIMEZONE
from appointments.service_layer.seed import seed_demo
from devstack import demo


async def test_demo_seed_gives_free_slots_every_working_day_and_runs_twice_safely(
    app, client, test_stack
):
    dataset = demo.dataset()
    first = await seed_demo(dataset, app.state.uow_factory, window_days=14)
    assert first["schedules"] == 8  # two GPs, a nurse and a pharmacist at each practice
    assert first["staff"] == len(dataset["practitioners"])
    second = await seed_demo(dataset, app.state.uow_factory, window_days=14)
    assert second.get("schedules", 0) == 0 and second.get("slots", 0) == 0

    today = dt.datetime.now(PRACTICE_TIMEZONE).date()
    tomorrow = today + dt.timedelta(days=1)
    headers = {"Authorization": f"Bearer {test_stack.keys.mint_token('receptionist', 'A81001')}"}
    days_with_slots: set[dt.date] = set()
    offset = 0
    while True:
        response = await client.get("/Slot", params=[
            ("start", f"ge{tomorrow}"), ("start", f"le{today + dt.timedelta(days=13)}"),
            ("status", "free"), ("_count", "500"), ("_offset", str(offset))], headers=headers)
        assert response.status_code == 200, response.text
        entries = response.json()["entry"]
        days_with_slots |= {dt.datetime.fromisoformat(e["resource"]["start"].replace(
            "Z", "+00:00")).astimezone(PRACTICE_TIMEZONE).date() for e in entries}
        offset += 500
        if not any(link["relation"] == "next" for link in response.json()["link"]):
            break
    working_days = {tomorrow + dt.timedelta(days=n) for n in range(13)
                    if (tomorrow + dt.timedelta(days=n)).weekday() < 5}
    assert days_with_slots == working_days
