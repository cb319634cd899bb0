"""`python -m audit_trail api|relay|consumer|migrate|verify [--database-url URL]`."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from .config import Settings

SERVICE_DIR = Path(__file__).resolve().parents[2]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="audit_trail")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("api", help="serve the FHIR AuditEvent API")
    sub.add_parser("relay", help="publish the outbox (audits of reading the trail) to Kafka")
    sub.add_parser("consumer", help="store every audit event in the hash chain")
    sub.add_parser("migrate", help="apply database migrations (owner role)")
    verify = sub.add_parser("verify", help="walk the hash chain; exit 1 if it was tampered with")
    verify.add_argument("--database-url", help="owner or superuser URL "
                                               "(default: MIGRATION_DATABASE_URL)")
    args = parser.parse_args(argv)

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
    elif args.command == "verify":
        sys.exit(_verify(args.database_url or settings.migration_database_url))


def _verify(url: str | None) -> int:
    from .service_layer.verification import verify_database

    if not url:
        print("give --database-url or set MIGRATION_DATABASE_URL (the owner role: the app "
              "role sees one practice only)", file=sys.stderr)
        return 2
    report = asyncio.run(verify_database(url))
    print(report.summary())
    return 0 if report.intact else 1


def _run_relay(settings: Settings) -> None:
    from gpsoc_kit import service

    from .adapters.tables import outbox

    service.run_relay(settings, outbox)


def _run_consumer(settings: Settings) -> None:
    from gpsoc_kit.db import create_engine
    from gpsoc_kit.runtime import run_worker

    from .entrypoints.api.app import unit_of_work_factory
    from .entrypoints.consumer import store_consumer

    async def build():  # noqa: ANN202
        engine = create_engine(settings.database_url, pool_size=4, max_overflow=2)
        return store_consumer(settings, unit_of_work_factory(engine, settings)), engine.dispose

    run_worker(settings, build)


if __name__ == "__main__":
    main()
