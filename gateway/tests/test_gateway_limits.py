"""Front-door limits and the aggregated patient record."""

from __future__ import annotations


async def test_a_user_over_the_rate_limit_gets_429_with_retry_after(
    upstream, gateway_client, headers
):
    app, client = gateway_client(
        f"http://127.0.0.1:{upstream.port}", rate_limit_user_per_second=1, rate_limit_user_burst=3
    )
    async with app.router.lifespan_context(app), client:
        statuses = [
            (await client.get("/fhir/R4/Patient/p1", headers=headers)).status_code for _ in range(5)
        ]
        limited = await client.get("/fhir/R4/Patient/p1", headers=headers)
    assert statuses[:3] == [200, 200, 200]
    assert 429 in statuses[3:]
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) >= 1
    assert limited.json()["issue"][0]["code"] == "throttled"


async def test_a_practice_over_its_limit_is_throttled_across_its_users(
    upstream, gateway_client, test_stack
):
    app, client = gateway_client(
        f"http://127.0.0.1:{upstream.port}",
        rate_limit_practice_per_second=1,
        rate_limit_practice_burst=2,
    )
    tokens = [
        test_stack.keys.mint_token(role, "A81001") for role in ("gp", "nurse", "receptionist")
    ]
    other = test_stack.keys.mint_token("gp", "A81002")
    async with app.router.lifespan_context(app), client:
        statuses = [
            (
                await client.get("/fhir/R4/Patient/p1", headers={"Authorization": f"Bearer {t}"})
            ).status_code
            for t in tokens
        ]
        other_practice = await client.get(
            "/fhir/R4/Patient/p1", headers={"Authorization": f"Bearer {other}"}
        )
    assert statuses == [200, 200, 429]
    assert other_practice.status_code == 200


async def test_security_headers_on_every_answer_and_no_cors_unless_allowed(
    upstream, gateway_client, headers
):
    app, client = gateway_client(f"http://127.0.0.1:{upstream.port}")
    async with app.router.lifespan_context(app), client:
        ok = await client.get(
            "/fhir/R4/Patient/p1", headers={**headers, "Origin": "https://evil.example"}
        )
        denied = await client.get("/fhir/R4/Patient/p1")
    for response in (ok, denied):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["cache-control"] == "no-store"
        assert "strict-transport-security" in response.headers
    assert "access-control-allow-origin" not in ok.headers


async def test_cors_allow_list_admits_only_listed_origins(upstream, gateway_client, headers):
    app, client = gateway_client(
        f"http://127.0.0.1:{upstream.port}", cors_allow_origins=("https://gp.example.nhs.uk",)
    )
    async with app.router.lifespan_context(app), client:
        allowed = await client.options(
            "/fhir/R4/Patient/p1",
            headers={"Origin": "https://gp.example.nhs.uk", "Access-Control-Request-Method": "GET"},
        )
        refused = await client.options(
            "/fhir/R4/Patient/p1",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
        )
    assert allowed.headers["access-control-allow-origin"] == "https://gp.example.nhs.uk"
    assert "access-control-allow-origin" not in refused.headers


async def test_count_above_the_ceiling_is_refused(upstream, gateway_client, headers):
    app, client = gateway_client(f"http://127.0.0.1:{upstream.port}", max_count=50)
    async with app.router.lifespan_context(app), client:
        response = await client.get("/fhir/R4/Patient", params={"_count": "500"}, headers=headers)
    assert response.status_code == 400
    assert response.json()["issue"][0]["expression"] == ["_count"]


async def test_oversized_body_is_refused_with_413(upstream, gateway_client, headers):
    app, client = gateway_client(f"http://127.0.0.1:{upstream.port}", max_body_bytes=1000)
    async with app.router.lifespan_context(app), client:
        response = await client.post(
            "/fhir/R4/Patient",
            content=b"{" + b" " * 2000 + b"}",
            headers={**headers, "Content-Type": "application/fhir+json"},
        )
    assert response.status_code == 413


async def test_everything_degrades_with_a_warning_when_a_service_is_down(
    upstream, gateway_client, headers, dead_url
):
    app, client = gateway_client(f"http://127.0.0.1:{upstream.port}", appointments_url=dead_url)
    async with app.router.lifespan_context(app), client:
        response = await client.get("/fhir/R4/Patient/p1/$everything", headers=headers)
    assert response.status_code == 200
    bundle = response.json()
    assert bundle["entry"][0]["resource"]["resourceType"] == "Patient"
    outcome = next(
        e["resource"]
        for e in bundle["entry"]
        if e["resource"]["resourceType"] == "OperationOutcome"
    )
    messages = " ".join(i["diagnostics"] for i in outcome["issue"])
    assert "appointments" in messages and "unavailable" in messages
    assert all(i["severity"] == "warning" for i in outcome["issue"])


async def test_everything_fails_cleanly_when_the_patient_index_itself_is_down(
    gateway_client, headers, dead_url
):
    app, client = gateway_client(dead_url)
    async with app.router.lifespan_context(app), client:
        response = await client.get("/fhir/R4/Patient/p1/$everything", headers=headers)
    assert response.status_code == 502  # no partial record without the patient
    assert response.json()["resourceType"] == "OperationOutcome"


async def test_requests_are_counted_per_practice_for_the_dashboards(
    upstream, gateway_client, headers
):
    from gpsoc_kit.metrics import REGISTRY

    def sample(resource_type: str) -> float:
        return (
            REGISTRY.get_sample_value(
                "gateway_practice_requests_total",
                {"practice": "A81001", "resource_type": resource_type, "status_class": "2xx"},
            )
            or 0.0
        )

    before = sample("Patient")
    app, client = gateway_client(f"http://127.0.0.1:{upstream.port}")
    async with app.router.lifespan_context(app), client:
        await client.get("/fhir/R4/Patient/p1", headers=headers)
        await client.get("/fhir/R4/Spaceship/1", headers=headers)
    assert sample("Patient") == before + 1
    assert (
        REGISTRY.get_sample_value(
            "gateway_practice_requests_total",
            {"practice": "A81001", "resource_type": "other", "status_class": "4xx"},
        )
        >= 1
    )
