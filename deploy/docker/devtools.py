"""Development-only helpers for `docker compose`: the signing key, tokens and demo data.

Runs inside a service image with tools/devstack/src on PYTHONPATH, so compose uses the
same key format, token claims and demo dataset as `make run` (devstack). Never used in
production, where an OIDC provider issues tokens.

  keys                                  make /keys/dev-signing-key.pem and /keys/jwks.json
  token --role R --practice P           print a development token
  demo-data --out FILE                  write the demo dataset as JSON
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

KEYS_DIR = Path(os.environ.get("GPSOC_KEYS_DIR", "/keys"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="devtools")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("keys")
    token = sub.add_parser("token")
    token.add_argument("--role", default="gp")
    token.add_argument("--practice", default="A81001")
    demo_data = sub.add_parser("demo-data")
    demo_data.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)

    from devstack.keys import DevKeys

    if args.command == "keys":
        keys = DevKeys(KEYS_DIR)
        print(f"devtools: signing key {keys.kid} in {KEYS_DIR}", file=sys.stderr)
    elif args.command == "token":
        from devstack.tokens import TokenRequestError, claims_for

        try:
            claims = claims_for(args.role, args.practice)
        except TokenRequestError as error:
            print(f"devtools token: {error}", file=sys.stderr)
            return 2
        print(DevKeys(KEYS_DIR).mint(claims))
    elif args.command == "demo-data":
        from devstack.demo import dataset

        args.out.write_text(json.dumps(dataset(), indent=1, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
