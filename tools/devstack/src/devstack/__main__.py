"""python -m devstack <command>: the local stack's command line (the Makefile calls it).

run                                  the whole platform in the foreground (make run)
infra up|down|status [--profile P]   just PostgreSQL and Kafka
token --role R --practice P          a development token, printed as the last line
demo-data --out FILE                 the demo dataset as JSON
clean                                remove .state (refuses while the stack runs)
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from devstack.config import PROFILES, ConfigError, StackConfig


def _cmd_run(args: argparse.Namespace) -> int:
    from devstack.platform import run

    return run(args.profile)


def _how(started_by_us: bool) -> str:
    return "started" if started_by_us else "already running"


def _cmd_infra(args: argparse.Namespace) -> int:
    from devstack.kafka import KafkaBroker
    from devstack.keys import DevKeys
    from devstack.platform import platform_topics
    from devstack.postgres import PostgresCluster

    config = StackConfig.for_profile(args.profile)
    postgres, kafka = PostgresCluster(config), KafkaBroker(config)
    if args.action == "up":
        config.state_dir.mkdir(parents=True, exist_ok=True)
        DevKeys.for_config(config)
        postgres.ensure_started()
        kafka.ensure_started()
        kafka.create_topics(platform_topics())
        print(f"PostgreSQL 127.0.0.1:{config.pg_port} ({_how(postgres.started_by_us)})")
        print(f"Kafka      {config.kafka_bootstrap} ({_how(kafka.started_by_us)})")
        return 0
    if args.action == "down":
        # Whoever started them: `infra down` is the explicit way to stop this profile's infra.
        kafka.stop(force=True)
        postgres.stop(force=True)
        print(f"stopped PostgreSQL and Kafka of profile {args.profile!r}")
        return 0
    pg_up, kafka_up = postgres.is_running(), kafka.is_running()
    print(f"PostgreSQL 127.0.0.1:{config.pg_port}: {'running' if pg_up else 'stopped'}")
    print(f"Kafka      {config.kafka_bootstrap}: {'running' if kafka_up else 'stopped'}")
    return 0 if (pg_up and kafka_up) else 3


def _cmd_token(args: argparse.Namespace) -> int:
    from devstack.tokens import TokenRequestError, mint_token

    try:
        token = mint_token(args.role, args.practice, profile=args.profile)
    except TokenRequestError as error:
        print(f"devstack token: {error}", file=sys.stderr)
        return 2
    print(token)  # the last (only) line on stdout, for `TOKEN=$(make -s token ...)`
    return 0


def _cmd_demo_data(args: argparse.Namespace) -> int:
    from devstack.demo import dataset

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(dataset(), indent=1, sort_keys=True) + "\n")
    print(f"wrote {out}", file=sys.stderr)
    return 0


def _cmd_clean(args: argparse.Namespace) -> int:
    from devstack.kafka import KafkaBroker
    from devstack.postgres import PostgresCluster

    root = StackConfig.for_profile("run").repo_root / ".state"
    running, outside = [], []
    for profile in PROFILES:
        config = StackConfig.for_profile(profile)
        postgres = PostgresCluster(config)
        if postgres.pg_dir != config.pg_dir:
            outside.append(postgres.pg_dir)  # data dir moved out of an untraversable checkout
        if postgres.is_running():
            running.append(f"PostgreSQL ({profile})")
        if KafkaBroker(config)._our_pid() is not None:
            running.append(f"Kafka ({profile})")
    if running:
        print(
            f"devstack clean: refusing, still running: {', '.join(running)}. "
            "Stop `make run`, or run `make infra-down` (and with PROFILE=test).",
            file=sys.stderr,
        )
        return 1
    for path in [root, *outside]:
        if path.exists():
            shutil.rmtree(path)
            print(f"removed {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m devstack", description="openGPSoC local stack")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run the whole platform in the foreground")
    run.add_argument("--profile", choices=PROFILES, default="run")
    run.set_defaults(handler=_cmd_run)

    infra = commands.add_parser("infra", help="start, stop or inspect PostgreSQL and Kafka")
    infra.add_argument("action", choices=("up", "down", "status"))
    infra.add_argument("--profile", choices=PROFILES, default="run")
    infra.set_defaults(handler=_cmd_infra)

    token = commands.add_parser("token", help="print a development token (last line)")
    token.add_argument("--role", required=True)
    token.add_argument("--practice", required=True)
    token.add_argument("--profile", choices=PROFILES, default="run")
    token.set_defaults(handler=_cmd_token)

    demo_data = commands.add_parser("demo-data", help="write the demo dataset as JSON")
    demo_data.add_argument("--out", required=True)
    demo_data.set_defaults(handler=_cmd_demo_data)

    clean = commands.add_parser("clean", help="remove .state (only while nothing runs)")
    clean.set_defaults(handler=_cmd_clean)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except ConfigError as error:
        print(f"devstack: {error}", file=sys.stderr)
        return 2
    except (RuntimeError, OSError) as error:
        print(f"devstack: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
