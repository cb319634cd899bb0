"""openGPSoC benchmark harness: `uv run python -m bench` (or `make bench`).

It starts its own stack with devstack (own state dir and ports under .state/bench, so it
never touches a `make run` or `make test` stack) with the services of the chosen suites
(BENCH_SUITES: patients, appointments, prescribing, clinical), loads each suite's data,
drives each operation through the gateway and directly (and the patient index's bare
FastAPI + asyncpg "floor" app) with vegeta, and prints and saves throughput and latency
per scenario, with a PASS/MISS line per target of issues 2-5. See bench/README.md.
"""
