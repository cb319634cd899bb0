"""openGPSoC benchmark harness: `uv run python -m bench` (or `make bench`).

It starts its own stack with devstack (own state dir and ports under .state/bench, so it
never touches a `make run` or `make test` stack), loads 100,000 patients, drives the
patient index through the gateway, directly, and a bare FastAPI + asyncpg "floor" app
with vegeta, and prints and saves throughput and latency per scenario.
"""
