"""The floor: the least any service can do for an NHS-number search.

A bare FastAPI + asyncpg app (uvicorn, uvloop, httptools, one worker) running the same
indexed query as the patient index, as the same app role, under the same row-level
security (app.practice set per transaction). No auth, no audit, no SQLAlchemy: whatever
the real service costs beyond this is the price of its layers.

    FLOOR_DATABASE_URL=postgresql://... python -m bench.floor --port 28199
    GET /Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|9990000018   (X-Practice: A81001)
"""

from __future__ import annotations

import argparse
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from fastapi import FastAPI, Request
from starlette.responses import Response

QUERY = "SELECT resource FROM patients WHERE nhs_number = $1"
SET_PRACTICE = "SELECT set_config('app.practice', $1, true)"
NHS_SYSTEM_PREFIX = "https://fhir.nhs.uk/Id/nhs-number|"


def create_app(database_url: str, *, pool_size: int = 10) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # jsonb comes back as text (asyncpg's default): it is sent on as is.
        app.state.pool = await asyncpg.create_pool(
            database_url, min_size=pool_size, max_size=pool_size
        )
        try:
            yield
        finally:
            await app.state.pool.close()

    app = FastAPI(lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/healthz")
    async def healthz() -> Response:
        return Response(b'{"status":"ok"}', media_type="application/json")

    @app.get("/Patient")
    async def search(request: Request, identifier: str) -> Response:
        nhs = (
            identifier[len(NHS_SYSTEM_PREFIX) :]
            if identifier.startswith(NHS_SYSTEM_PREFIX)
            else identifier
        )
        practice = request.headers.get("x-practice", "")
        async with request.app.state.pool.acquire() as conn, conn.transaction():
            await conn.fetchval(SET_PRACTICE, practice)
            rows = await conn.fetch(QUERY, nhs)
        entries = ",".join('{"resource":' + r[0] + ',"search":{"mode":"match"}}' for r in rows)
        body = (
            '{"resourceType":"Bundle","type":"searchset","total":'
            + str(len(rows))
            + ',"entry":['
            + entries
            + "]}"
        )
        return Response(body, media_type="application/fhir+json")

    return app


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench.floor")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--pool-size", type=int, default=10)
    args = parser.parse_args()
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        parser.error("the floor app listens on loopback only")
    import uvicorn

    uvicorn.run(
        create_app(os.environ["FLOOR_DATABASE_URL"], pool_size=args.pool_size),
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        workers=1,
        log_level="warning",
        access_log=False,
        lifespan="on",
    )


if __name__ == "__main__":
    main()
