"""`python -m appointments api|relay|consumer|migrate|seed-demo --file F`.

The relay process also runs the housekeeper (expired holds freed, rota windows rolled on).
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

SERVICE_DIR = Path(__file__).resolve().parents[2]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="appointments")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("api", help="serve the FHIR API")
    sub.add_parser("relay", help="publish the outbox to Kafka; free expired holds; roll rotas on")
    sub.add_parser("consumer", help="consume patient.events.v1 into the patient projection")
    sub.add_parser("migrate", help="apply database migrations (owner role)")
    seed = sub.add_parser("seed-demo", help="load the demo staff and rotas (idempotent)")
    seed.add_argument("--file", required=True, type=Path)
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
    elif args.command == "migrate":
        from gpsoc_kit.service import migrate

        migrate(SERVICE_DIR, settings)
    elif args.command == "seed-demo":
        counts = asyncio.run(_seed(settings, json.loads(args.file.read_text())))
        print(json.dumps({"seeded": counts}))


def _run_relay(settings) -> None:  # noqa: ANN001
    """The outbox relay, and the housekeeper (hold sweeping, the rolling slot window)."""
    from gpsoc_kit import service

    from .adapters.tables import outbox
    from .entrypoints.api.app import unit_of_work_factory
    from .entrypoints.housekeeping import Housekeeper

    def housekeeper(engine):  # noqa: ANN001, ANN202
        return Housekeeper(engine, unit_of_work_factory(engine, settings),
                           interval_seconds=settings.housekeeping_interval_seconds,
                           window_days=settings.rolling_window_days)

    service.run_relay(settings, outbox, also=(housekeeper,))


def _run_consumer(settings) -> None:  # noqa: ANN001
    from gpsoc_kit.consumer import ConsumerConfig, ConsumerRunner
    from gpsoc_kit.db import create_engine
    from gpsoc_kit.runtime import run_worker

    from .adapters.tables import inbox
    from .entrypoints.api.app import unit_of_work_factory
    from .entrypoints.consumer import CONSUMER_GROUP, HANDLERS, PATIENT_TOPIC

    async def build():  # noqa: ANN202
        engine = create_engine(settings.database_url, pool_size=4, max_overflow=2)
        runner = ConsumerRunner(
            ConsumerConfig(settings.service_name, CONSUMER_GROUP, (PATIENT_TOPIC,),
                           settings.kafka_bootstrap_servers),
            unit_of_work=unit_of_work_factory(engine, settings), inbox=inbox, handlers=HANDLERS,
        )
        return runner, engine.dispose

    run_worker(settings, build)


async def _seed(settings, dataset):  # noqa: ANN001, ANN202
    from gpsoc_kit.db import create_engine

    from .entrypoints.api.app import unit_of_work_factory
    from .service_layer.seed import seed_demo

    engine = create_engine(settings.database_url, pool_size=2, max_overflow=0)
    try:
        return await seed_demo(dataset, unit_of_work_factory(engine, settings),
                               window_days=settings.rolling_window_days)
    finally:
        await engine.dispose()


if __name__ == "__main__":
    main()
