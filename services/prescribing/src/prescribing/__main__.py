"""`python -m prescribing api|relay|consumer|transport|migrate|import-dmd --dir D|seed-demo --file F`."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

SERVICE_DIR = Path(__file__).resolve().parents[2]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="prescribing")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("api", help="serve the FHIR API")
    sub.add_parser("relay", help="publish the outbox to Kafka")
    sub.add_parser("consumer", help="project patient and allergy events")
    sub.add_parser("transport", help="send EPS messages to Spine (SIMULATED)")
    sub.add_parser("migrate", help="apply database migrations (owner role)")
    dmd = sub.add_parser("import-dmd", help="import an unzipped NHSBSA dm+d XML release")
    dmd.add_argument("--dir", required=True, type=Path)
    kb = sub.add_parser("load-knowledge-base", help="replace the clinical knowledge base")
    kb.add_argument("--file", required=True, type=Path)
    seed = sub.add_parser("seed-demo", help="load the demo formulary and SAMPLE knowledge base")
    seed.add_argument("--file", required=True, type=Path,
                      help="the demo dataset (unused: nothing patient-specific is seeded here)")
    args = parser.parse_args(argv)

    from .config import Settings

    settings = Settings()
    if args.command == "api":
        from gpsoc_kit.runtime import serve_api

        from .entrypoints.api.app import create_app

        serve_api(create_app(settings), settings)
    elif args.command == "relay":
        _run_relay(settings)
    elif args.command == "consumer":
        _run_consumer(settings)
    elif args.command == "transport":
        _run_transport(settings)
    elif args.command == "migrate":
        from gpsoc_kit.service import migrate

        migrate(SERVICE_DIR, settings)
    elif args.command == "import-dmd":
        from .adapters.dmd_import import load_release, parse_release

        release = parse_release(args.dir)
        print(json.dumps({"release": release.name,
                          "imported": asyncio.run(_with_engine(settings, load_release, release))}))
    elif args.command == "load-knowledge-base":
        from .adapters.knowledge_base import load_knowledge_base

        print(json.dumps({"loaded": asyncio.run(
            _with_engine(settings, load_knowledge_base, args.file))}))
    elif args.command == "seed-demo":
        from .service_layer.seed import seed_demo

        print(json.dumps({"seeded": asyncio.run(_with_engine(settings, seed_demo))}))


async def _with_engine(settings, fn, *args):  # noqa: ANN001, ANN202
    from gpsoc_kit.db import create_engine

    engine = create_engine(settings.database_url, pool_size=2, max_overflow=0)
    try:
        return await fn(engine, *args)
    finally:
        await engine.dispose()


def _run_relay(settings) -> None:  # noqa: ANN001
    """Both of this service's outboxes: events to Kafka, and EPS messages to (simulated) Spine.

    They share the relay process so that every service has the same process types to
    deploy (api, relay, consumer, migrate); `transport` runs the EPS sender alone.
    """
    from gpsoc_kit import service

    from .adapters.tables import outbox
    from .service_layer.transport import EpsTransport

    def transport(engine):  # noqa: ANN001, ANN202
        return EpsTransport(engine, poll_seconds=settings.eps_transport_poll_seconds)

    service.run_relay(settings, outbox, also=(transport,))


def _run_consumer(settings) -> None:  # noqa: ANN001
    from gpsoc_kit.consumer import ConsumerConfig, ConsumerRunner
    from gpsoc_kit.db import create_engine
    from gpsoc_kit.runtime import run_worker

    from .adapters.tables import inbox
    from .entrypoints.api.app import unit_of_work_factory
    from .entrypoints.consumer import GROUP_SUFFIX, HANDLERS, TOPICS

    async def build():  # noqa: ANN202
        engine = create_engine(settings.database_url, pool_size=4, max_overflow=2)
        runner = ConsumerRunner(
            ConsumerConfig(settings.service_name, f"{settings.service_name}.{GROUP_SUFFIX}",
                           TOPICS, settings.kafka_bootstrap_servers),
            unit_of_work=unit_of_work_factory(engine, settings), inbox=inbox, handlers=HANDLERS,
        )
        return runner, engine.dispose

    run_worker(settings, build)


def _run_transport(settings) -> None:  # noqa: ANN001
    from gpsoc_kit.db import create_engine
    from gpsoc_kit.runtime import run_worker

    from .service_layer.transport import EpsTransport

    async def build():  # noqa: ANN202
        engine = create_engine(settings.database_url, pool_size=2, max_overflow=0)
        return EpsTransport(engine, poll_seconds=settings.eps_transport_poll_seconds), \
            engine.dispose

    run_worker(settings, build)


if __name__ == "__main__":
    main()
