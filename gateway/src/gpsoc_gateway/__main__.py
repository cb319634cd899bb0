"""`python -m gpsoc_gateway api`: serve the gateway."""

from __future__ import annotations

import argparse


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="gpsoc_gateway")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("api", help="serve the gateway")
    parser.parse_args(argv)

    from gpsoc_kit.runtime import serve_api

    from .app import create_app
    from .config import GatewaySettings

    settings = GatewaySettings()
    serve_api(create_app(settings), settings)


if __name__ == "__main__":
    main()
