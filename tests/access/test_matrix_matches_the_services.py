"""The matrix and the services' routes, side by side without running anything: every route a
service declares is in the matrix (for that service), every rule the matrix gives a service
is a route it declares, and where a route declares `require(Permission.X)` the matrix asks
for exactly X. Routes checked inside the handler (prescribing's creates, the audit trail)
are proved by the platform walk in test_permission_matrix."""

from __future__ import annotations

import inspect
import re

import pytest
from fastapi.routing import APIRoute
from gpsoc_kit.access import MATRIX, needs
from gpsoc_kit.auth import Permission

# The router each service's app mounts (its app module's `router`, which may gather several).
ROUTERS = {
    "patient-index": "patient_index.entrypoints.api.app",
    "appointments": "appointments.entrypoints.api.app",
    "prescribing": "prescribing.entrypoints.api.app",
    "clinical-notes": "clinical_notes.entrypoints.api.app",
    "audit": "audit_trail.entrypoints.api.app",
}


def _shape(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "{}", path)


def _api_routes(router) -> list[APIRoute]:  # noqa: ANN001
    """Every APIRoute of a router, through the routers it includes (no prefixes are used)."""
    found: list[APIRoute] = []
    for route in router.routes:
        if isinstance(route, APIRoute):
            found.append(route)
        elif (included := getattr(route, "original_router", None)) is not None:
            found += _api_routes(included)
    return found


def declared(service: str) -> dict[tuple[str, str], Permission | None]:
    """(method, path shape) -> the permission its `require(...)` dependency names, if any."""
    module = __import__(ROUTERS[service], fromlist=["router"])
    routes: dict[tuple[str, str], Permission | None] = {}
    for route in _api_routes(module.router):
        permission = None
        for dependency in route.dependencies:
            function = dependency.dependency
            if function is not None and function.__qualname__.startswith("require."):
                permission = inspect.getclosurevars(function).nonlocals["permission"]
        for method in route.methods:
            routes[(method, _shape(route.path))] = permission
    return routes


@pytest.mark.parametrize("service", list(ROUTERS))
def test_every_route_of_the_service_is_in_the_matrix_and_no_more(service):
    routes = declared(service)
    in_matrix = {(r.method, _shape(r.path)) for r in MATRIX
                 if r.service == service}
    assert set(routes) - in_matrix == set(), "routes the matrix does not know (the gateway 404s)"
    assert in_matrix - set(routes) == set(), "rules for routes the service does not serve"


@pytest.mark.parametrize("service", list(ROUTERS))
def test_a_declared_permission_is_the_matrix_permission(service):
    for (method, shape), permission in declared(service).items():
        if permission is None:
            continue
        rules = [r for r in MATRIX if r.method == method and _shape(r.path) == shape]
        assert rules, (method, shape)
        for rule in rules:
            assert rule.requires == needs(permission), (
                f"{rule.name}: the service requires {permission.value}, "
                f"the matrix {rule.requires.describe()}")


def test_every_matrix_route_is_routed_by_the_gateway_to_its_service():
    from gpsoc_gateway.config import GatewaySettings
    from gpsoc_gateway.routing import RouteTable, configured_upstreams

    settings = GatewaySettings(**{f"{name.replace('-', '_')}_url": f"http://{name}"
                                  for name in ROUTERS})
    routes = RouteTable(configured_upstreams(settings))
    for rule in MATRIX:
        if rule.service == "gateway":
            continue
        upstream = routes.for_resource_type(rule.resource_type)
        assert upstream is not None and upstream.name == rule.service, rule.name
    assert routes.for_resource_type("OrganizationAffiliation").name == "patient-index"
