"""The store on real PostgreSQL: append-only whoever connects, one practice per reader,
and a verifier that finds records altered, slipped in or removed behind its back.

Tampering happens as a superuser with triggers off (session_replication_role =
replica), the one way left to change a record, inside a transaction that is rolled
back, so the shared chain stays intact for the other tests.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sys
import uuid
from typing import Any

import asyncpg
import pytest
from audit_trail.__main__ import SERVICE_DIR, main
from audit_trail.domain.chain import canonical_json, record_hash
from audit_trail.service_layer.verification import verify_database, verify_store
from gpsoc_kit.db import plain_url
from sqlalchemy import text


@pytest.fixture
async def two_practices(store, audit_cloud_event) -> tuple[str, str, list[Any]]:  # noqa: ANN001
    ours, theirs = "Q" + uuid.uuid4().hex[:5].upper(), "Q" + uuid.uuid4().hex[:5].upper()
    records = await store(*[audit_cloud_event(practice=p, patient_ids=[f"pt-{n}"])
                            for n, p in enumerate([ours, theirs, ours, theirs, ours])])
    return ours, theirs, records


async def tampered(superuser, *statements: tuple[str, dict[str, Any]]):  # noqa: ANN001, ANN201
    """Apply `statements` as a superuser with triggers off, verify, then roll it all back."""
    async with superuser.connect() as conn:
        transaction = await conn.begin()
        try:
            await conn.execute(text("SET LOCAL session_replication_role = replica"))
            for sql, params in statements:
                await conn.execute(text(sql), params)
            return await verify_store(conn)
        finally:
            await transaction.rollback()


async def test_the_app_role_may_not_update_delete_or_truncate_records(database, two_practices):
    ours, _, records = two_practices
    conn = await asyncpg.connect(plain_url(database.app_url))
    try:
        async with conn.transaction():
            await conn.execute("SELECT set_config('app.practice', $1, true)", ours)
            for sql in (f"UPDATE audit_records SET outcome = '0' WHERE seq = {records[0].seq}",
                        f"DELETE FROM audit_records WHERE seq = {records[0].seq}",
                        "TRUNCATE audit_records"):
                with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
                    async with conn.transaction():
                        await conn.execute(sql)
    finally:
        await conn.close()


async def test_even_the_owner_is_stopped_by_the_append_only_trigger(database, two_practices):
    ours, _, records = two_practices
    conn = await asyncpg.connect(plain_url(database.owner_url))
    try:
        # Working in the record's practice, so row-level security lets the owner reach it.
        await conn.execute("SELECT set_config('app.practice', $1, false)", ours)
        for sql in (f"UPDATE audit_records SET outcome = '4' WHERE seq = {records[0].seq}",
                    f"DELETE FROM audit_records WHERE seq = {records[0].seq}",
                    "TRUNCATE audit_records", "DELETE FROM chain_head"):
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
                await conn.execute(sql)
    finally:
        await conn.close()


async def test_a_record_that_does_not_follow_the_chain_head_is_refused(
    database, two_practices, superuser
):
    ours, _, records = two_practices
    row = await _raw_record(superuser, records[0].seq)
    conn = await asyncpg.connect(plain_url(database.app_url))
    try:
        async with conn.transaction():
            await conn.execute("SELECT set_config('app.practice', $1, true)", ours)
            with pytest.raises(asyncpg.IntegrityConstraintViolationError, match="chain head"):
                async with conn.transaction():
                    await conn.execute(_insert_sql(), *_forged_values(row, seq=10**9))
            with pytest.raises(asyncpg.IntegrityConstraintViolationError, match="chain head"):
                async with conn.transaction():
                    await conn.execute("UPDATE chain_head SET seq = seq - 1")
    finally:
        await conn.close()


async def test_the_app_role_reads_only_the_practice_it_is_working_in(database, two_practices):
    ours, theirs, records = two_practices
    conn = await asyncpg.connect(plain_url(database.app_url))
    try:
        async with conn.transaction():
            await conn.execute("SELECT set_config('app.practice', $1, true)", ours)
            seen = await conn.fetch("SELECT DISTINCT practice_code FROM audit_records "
                                    "WHERE practice_code IN ($1, $2)", ours, theirs)
    finally:
        await conn.close()
    assert [r["practice_code"] for r in seen] == [ours]


async def test_the_verifier_as_owner_reads_every_practice_and_finds_the_chain_intact(
    database, two_practices, superuser
):
    report = await verify_database(database.owner_url)
    async with superuser.connect() as conn:
        total = await conn.scalar(text("SELECT count(*) FROM audit_records"))
    assert report.intact, report.summary()
    assert report.records_checked == total
    assert report.head.seq == total


async def test_a_record_altered_in_the_database_is_reported(two_practices, superuser):
    _, _, records = two_practices
    seq = records[2].seq
    report = await tampered(superuser, (
        "UPDATE audit_records SET outcome = '0', agent_id = 'someone-else' WHERE seq = :seq",
        {"seq": seq}))
    assert report.altered == [seq]
    assert (report.inserted, report.missing, report.first_bad_seq) == ([], [], seq)


async def test_a_record_deleted_from_the_database_is_reported_missing(two_practices, superuser):
    _, _, records = two_practices
    seq = records[1].seq
    report = await tampered(superuser, ("DELETE FROM audit_records WHERE seq = :seq", {"seq": seq}))
    assert report.missing == [(seq, seq)]
    assert (report.altered, report.inserted) == ([], [])


async def test_a_forged_record_inserted_into_the_database_is_reported(two_practices, superuser):
    """The forger knows the algorithm and hashes the record correctly; the chain head,
    which it did not move, gives it away."""
    _, _, records = two_practices
    async with superuser.connect() as conn:
        head = (await conn.execute(text("SELECT seq, hash FROM chain_head"))).one()
    row = await _raw_record(superuser, records[0].seq)
    values = _forged_values(row, seq=head.seq + 1, previous_hash=head.hash)
    columns = _INSERT_COLUMNS
    report = await tampered(superuser, (
        f"INSERT INTO audit_records ({', '.join(columns)}) "
        f"VALUES ({', '.join(':' + c for c in columns)})", dict(zip(columns, values, strict=True))))
    assert report.inserted == [head.seq + 1]
    assert (report.altered, report.missing) == ([], [])


async def test_a_deleted_chain_head_is_reported(two_practices, superuser):
    report = await tampered(superuser, ("DELETE FROM chain_head", {}))
    assert report.head_mismatch
    assert not report.intact


async def test_verify_command_exits_0_when_intact_and_1_naming_the_bad_seq_when_not(
    database, two_practices, superuser, capsys
):
    _, _, records = two_practices
    with pytest.raises(SystemExit) as intact:
        await asyncio.to_thread(main, ["verify", "--database-url", database.owner_url])
    assert intact.value.code == 0
    assert "audit chain: INTACT" in capsys.readouterr().out

    seq = records[0].seq
    original = await _raw_record(superuser, seq)
    await _set_outcome(superuser, seq, "12")
    try:
        broken = await _verify_process(database.owner_url)  # the real `python -m audit_trail`
    finally:
        await _set_outcome(superuser, seq, original.outcome)
    assert broken.returncode == 1
    assert f"altered: 1 (seq {seq})" in broken.stdout
    assert f"first bad seq: {seq}" in broken.stdout
    assert original.patient_ids[0] not in broken.stdout
    assert (await verify_database(database.owner_url)).intact


# ----- helpers ----------------------------------------------------------------------
_INSERT_COLUMNS = ("seq", "id", "event_id", "source", "practice_code", "agent_id", "role_code",
                   "patient_ids", "resource_refs", "action", "outcome", "recorded_at",
                   "request_id", "trace_id", "break_glass_reason", "stored_at", "audit_event",
                   "previous_hash", "hash")


def _insert_sql() -> str:
    placeholders = ", ".join(f"${n}" for n in range(1, len(_INSERT_COLUMNS) + 1))
    return f"INSERT INTO audit_records ({', '.join(_INSERT_COLUMNS)}) VALUES ({placeholders})"


async def _raw_record(superuser, seq: int) -> Any:  # noqa: ANN001
    async with superuser.connect() as conn:
        return (await conn.execute(text("SELECT * FROM audit_records WHERE seq = :seq"),
                                   {"seq": seq})).one()


def _forged_values(row: Any, *, seq: int, previous_hash: str | None = None) -> list[Any]:
    """A copy of `row` as a new record at `seq`, correctly hashed for that place."""
    from audit_trail.adapters.repository import record_from_row

    template = record_from_row(row)
    event_id, record_id = str(uuid.uuid4()), str(uuid.uuid4())
    entry = dataclasses.replace(template.entry, event_id=event_id)
    previous = previous_hash if previous_hash is not None else row.hash
    digest = record_hash(seq=seq, previous_hash=previous, record_id=record_id,
                         stored_at=row.stored_at, entry=entry)
    return [seq, record_id, event_id, row.source, row.practice_code, row.agent_id, row.role_code,
            list(row.patient_ids), list(row.resource_refs), row.action, row.outcome,
            row.recorded_at, row.request_id, row.trace_id, row.break_glass_reason, row.stored_at,
            canonical_json(entry.audit_event), previous, digest]


async def _set_outcome(superuser, seq: int, outcome: str) -> None:  # noqa: ANN001
    async with superuser.begin() as conn:
        await conn.execute(text("SET LOCAL session_replication_role = replica"))
        await conn.execute(text("UPDATE audit_records SET outcome = :o WHERE seq = :seq"),
                           {"o": outcome, "seq": seq})


async def _verify_process(url: str) -> Any:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "audit_trail", "verify", "--database-url", url,
        cwd=SERVICE_DIR, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    return _Completed(process.returncode, stdout.decode(), stderr.decode())


class _Completed:
    def __init__(self, returncode: int | None, stdout: str, stderr: str) -> None:
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr
