"""The real local stack (test profile): database roles under row-level security, and Kafka."""

import asyncio
import dataclasses
import uuid

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from devstack.config import StackConfig
from devstack.kafka import KafkaBroker
from devstack.testing import TestStack
from devstack.topics import TOPICS

pytestmark = pytest.mark.integration

DB = "devstack_selftest"


@pytest.fixture(scope="module")
def stack(request):
    # Share the chassis plugin's session stack when it is loaded; otherwise run our own,
    # which reuses a stack that is already up and stops only what it started itself.
    if "test_stack" in request.fixturenames or _plugin_loaded(request):
        yield request.getfixturevalue("test_stack")
        return
    stack = TestStack().start()
    yield stack
    stack.stop()


def _plugin_loaded(request) -> bool:
    return request.config.pluginmanager.has_plugin("gpsoc_kit.testing.plugin")


@pytest.fixture(scope="module")
def database(stack):
    return stack.reset_database(DB)


async def test_app_role_is_not_owner_superuser_or_bypassrls(database):
    admin = await asyncpg.connect(database.superuser_url)
    try:
        row = await admin.fetchrow(
            "SELECT rolsuper, rolbypassrls, rolcreatedb, rolcreaterole"
            " FROM pg_roles WHERE rolname = $1",
            database.app_user,
        )
        owner = await admin.fetchval(
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = $1", DB
        )
    finally:
        await admin.close()
    assert not any(row.values())
    assert owner == database.owner_user


async def test_app_role_sees_only_its_practice_under_forced_rls(database):
    owner = await asyncpg.connect(database.owner_url)
    try:
        # What a migration would do: the owner makes a tenant table with FORCE RLS.
        await owner.execute(
            """
            CREATE TABLE note (
                id bigserial PRIMARY KEY,
                practice text NOT NULL,
                body text NOT NULL
            );
            ALTER TABLE note ENABLE ROW LEVEL SECURITY;
            ALTER TABLE note FORCE ROW LEVEL SECURITY;
            CREATE POLICY tenant ON note
                USING (practice = current_setting('app.practice', true))
                WITH CHECK (practice = current_setting('app.practice', true));
            """
        )
    finally:
        await owner.close()

    app = await asyncpg.connect(database.app_url)
    try:
        for practice, body in (("A81001", "a1"), ("A81001", "a2"), ("A81002", "b1")):
            async with app.transaction():
                await app.execute("SELECT set_config('app.practice', $1, true)", practice)
                await app.execute(
                    "INSERT INTO note (practice, body) VALUES ($1, $2)", practice, body
                )

        async with app.transaction():
            await app.execute("SET LOCAL app.practice = 'A81001'")
            seen = await app.fetch("SELECT practice, body FROM note ORDER BY body")
        assert [tuple(r) for r in seen] == [("A81001", "a1"), ("A81001", "a2")]

        # No practice set: nothing at all.
        async with app.transaction():
            assert await app.fetchval("SELECT count(*) FROM note") == 0

        # Writing another practice's row is refused by the policy's check.
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            async with app.transaction():
                await app.execute("SET LOCAL app.practice = 'A81001'")
                await app.execute("INSERT INTO note (practice, body) VALUES ('A81002', 'x')")

        # And the app role cannot switch the wall off.
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await app.execute("ALTER TABLE note NO FORCE ROW LEVEL SECURITY")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await app.execute("CREATE TABLE sneaky (id int)")
    finally:
        await app.close()

    # The superuser sees everything (tests use it to inspect or tamper with rows).
    admin = await asyncpg.connect(database.superuser_url)
    try:
        assert await admin.fetchval("SELECT count(*) FROM note") == 3
    finally:
        await admin.close()


def test_provisioning_is_idempotent_and_reset_empties(stack, database):
    again = stack.database(DB)
    assert again.app_url == database.app_url and again.owner_url == database.owner_url

    async def tables(url):
        conn = await asyncpg.connect(url)
        try:
            return await conn.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
        finally:
            await conn.close()

    fresh = stack.reset_database("devstack_selftest_reset")
    conn_url = fresh.owner_url

    async def make_table():
        conn = await asyncpg.connect(conn_url)
        try:
            await conn.execute("CREATE TABLE t (id int)")
        finally:
            await conn.close()

    asyncio.run(make_table())
    assert asyncio.run(tables(fresh.superuser_url)) == 1
    fresh = stack.reset_database("devstack_selftest_reset")
    assert asyncio.run(tables(fresh.superuser_url)) == 0


async def test_standard_topics_exist(stack):
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.kafka_bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
    finally:
        await admin.close()
    assert set(TOPICS) <= existing
    assert TOPICS["patient.events.v1"] == 6 and TOPICS["patient.events.v1.dlq"] == 3


async def test_kafka_round_trip(stack):
    topic = f"devstack.selftest.{uuid.uuid4().hex[:8]}"
    stack.create_topics({topic: 3})
    stack.create_topics({topic: 3})  # idempotent

    producer = AIOKafkaProducer(
        bootstrap_servers=stack.kafka_bootstrap, enable_idempotence=True, acks="all"
    )
    await producer.start()
    try:
        await producer.send_and_wait(
            topic,
            b'{"hello": "world"}',
            key=b"patient-1",
            headers=[("traceparent", b"00-abc-def-01")],
        )
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=stack.kafka_bootstrap,
        group_id=f"selftest-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        message = await asyncio.wait_for(consumer.getone(), timeout=30)
        await consumer.commit()
    finally:
        await consumer.stop()
    assert message.key == b"patient-1"
    assert message.value == b'{"hello": "world"}'
    assert dict(message.headers)["traceparent"] == b"00-abc-def-01"


def test_kafka_storage_formats_with_a_cluster_id_that_begins_with_a_dash(tmp_path):
    """A random base64 cluster id begins with "-" once in 64 fresh machines; the storage
    tool must not take it for an option."""
    config = dataclasses.replace(StackConfig.for_profile("test"), state_dir=tmp_path)
    broker = KafkaBroker(config)
    broker.home.mkdir(parents=True)
    (broker.home / "cluster.id").write_text("-93vBCQwQtOO6A-A8NIi1Q\n")
    broker._write_properties()
    broker._format(f"{broker.resolve_jars()}/*")
    meta = next(broker.data_dir.rglob("meta.properties")).read_text()
    assert "cluster.id=-93vBCQwQtOO6A-A8NIi1Q" in meta
