"""An access to a patient held by another practice (a sharing agreement, break-glass) is
in the holder's trail too: "who viewed this patient's record" stays one query there."""

from __future__ import annotations

import uuid

from audit_trail.adapters.repository import AuditCriteria, AuditRecordRepository
from audit_trail.service_layer.handlers import record_patient_practice
from audit_trail.service_layer.verification import verify_store
from gpsoc_kit.events import CloudEvent


async def test_an_access_from_another_practice_is_disclosed_to_the_holding_practice(
    store, audit_cloud_event, uow_factory, superuser
):
    holder, visitor = "H" + uuid.uuid4().hex[:5].upper(), "V" + uuid.uuid4().hex[:5].upper()
    pid = str(uuid.uuid4())
    registered = CloudEvent(type="patient.registered.v1", source="urn:opengpsoc:patient-index",
                            subject=pid, practice=holder, data={"patient": {"id": pid}})
    async with uow_factory(holder) as uow:
        await record_patient_practice(uow, registered)
        await uow.commit()

    visit = audit_cloud_event(practice=visitor, patient_ids=[pid])
    own = audit_cloud_event(practice=holder, patient_ids=[pid])
    await store(visit, own)

    async def trail(practice: str) -> list:  # noqa: ANN202
        async with uow_factory(practice) as uow:
            records, _ = await AuditRecordRepository(uow.conn).search(
                practice, AuditCriteria(patient_id=pid), limit=50, offset=0)
            return records

    holder_trail = await trail(holder)
    # The visitor's access (once, as a disclosure) and the holder's own access; no copy of
    # the holder's own access.
    assert sorted(r.entry.event_id for r in holder_trail) == sorted(
        [f"{visit.id}:disclosed-to:{holder}", own.id])
    disclosed = next(r for r in holder_trail if r.entry.event_id != own.id)
    assert disclosed.entry.audit_event["source"]["site"] == visitor  # who came from where
    assert [r.entry.event_id for r in await trail(visitor)] == [visit.id]

    async with superuser.connect() as conn:
        assert (await verify_store(conn)).intact
