"""`uv run python -m bench` (make bench): see bench/__init__.py and the BENCH_* settings
in bench/settings.py."""

from __future__ import annotations

import sys

from devstack.config import find_repo_root

from .run import Bench
from .settings import BenchSettings


def main() -> int:
    try:
        settings = BenchSettings.from_env()
    except ValueError as error:
        print(f"bench: {error}", file=sys.stderr)
        return 2
    return Bench(settings, find_repo_root()).run()


if __name__ == "__main__":
    sys.exit(main())
