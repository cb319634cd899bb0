"""The gateway in-process against upstreams that fail: answers are always OperationOutcomes."""

from __future__ import annotations


async def test_a_healthy_upstream_gets_the_token_trace_and_request_id(
    upstream, gateway_client, headers
):
    app, client = gateway_client(f"http://127.0.0.1:{upstream.port}")
    async with app.router.lifespan_context(app), client:
        response = await client.get("/fhir/R4/Patient/p1", headers=headers)
    assert response.status_code == 200
    assert response.headers["etag"] == 'W/"1"'
    assert upstream.seen_headers["authorization"] == headers["Authorization"]
    assert upstream.seen_headers["x-request-id"] == response.headers["x-request-id"]


async def test_an_unreachable_upstream_answers_502_operation_outcome(
    gateway_client, headers, dead_url
):
    app, client = gateway_client(dead_url)
    async with app.router.lifespan_context(app), client:
        response = await client.get("/fhir/R4/Patient/p1", headers=headers)
        ready = await client.get("/readyz")
    assert response.status_code == 502
    assert response.json()["resourceType"] == "OperationOutcome"
    assert ready.status_code == 503 and ready.json()["checks"]["patient-index"] == "unavailable"


async def test_a_slow_upstream_answers_504_operation_outcome(upstream, gateway_client, headers):
    upstream.mode = "slow"
    app, client = gateway_client(f"http://127.0.0.1:{upstream.port}")
    async with app.router.lifespan_context(app), client:
        response = await client.get("/fhir/R4/Patient/p1", headers=headers)
    assert response.status_code == 504
    assert response.json()["issue"][0]["code"] == "timeout"


async def test_an_upstream_stack_trace_never_reaches_the_client(upstream, gateway_client, headers):
    upstream.mode = "crash"
    app, client = gateway_client(f"http://127.0.0.1:{upstream.port}")
    async with app.router.lifespan_context(app), client:
        response = await client.get("/fhir/R4/Patient/p1", headers=headers)
    assert response.status_code == 502
    assert "Traceback" not in response.text
    assert response.json()["resourceType"] == "OperationOutcome"


async def test_no_token_is_refused_before_any_upstream_call(upstream, gateway_client):
    app, client = gateway_client(f"http://127.0.0.1:{upstream.port}")
    async with app.router.lifespan_context(app), client:
        response = await client.get("/fhir/R4/Patient/p1")
    assert response.status_code == 401
    assert upstream.seen_headers == {}
