"""The OpenAPI description and the aiohttp router describe exactly the same API."""

from __future__ import annotations

from typing import Any, cast

from dispatcher.api.app import create_api
from dispatcher.api.auth import PUBLIC_PATHS
from dispatcher.api.openapi import openapi_spec

HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}


def router_routes() -> set[tuple[str, str]]:
    app = create_api(cast(Any, None))  # no I/O happens until a request arrives
    return {
        (route.method.lower(), route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None
    }


def spec_routes() -> set[tuple[str, str]]:
    return {
        (method, path)
        for path, item in openapi_spec()["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }


class TestOpenApi:
    def test_every_route_is_documented_and_every_documented_route_exists(self) -> None:
        """The router and the spec list the same (method, path) pairs, in both directions."""
        routes = router_routes()
        assert routes, "the app registers routes"
        assert routes - spec_routes() == set(), "routes missing from openapi.yaml"
        assert spec_routes() - routes == set(), "documented routes the app does not serve"

    def test_spec_is_openapi_31_with_bearer_security(self) -> None:
        """The document declares OpenAPI 3.1 and bearer auth; exactly the spec, /healthz and
        /metrics are public, and those are the paths the auth middleware lets through."""
        spec = openapi_spec()
        assert spec["openapi"].startswith("3.1")
        assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
        assert spec["security"] == [{"bearer": []}]
        public = {
            path
            for path, item in spec["paths"].items()
            for method, op in item.items()
            if method in HTTP_METHODS and op.get("security") == []
        }
        assert public == {"/api/openapi.json", "/healthz", "/metrics"}
        assert public == PUBLIC_PATHS

    def test_secured_operations_document_401_and_refs_resolve(self) -> None:
        """Every secured operation documents 401, and every local $ref points at something."""
        spec = openapi_spec()
        for path, item in spec["paths"].items():
            for method, op in item.items():
                if method in HTTP_METHODS and op.get("security") != []:
                    assert "401" in op["responses"], f"{method} {path} lacks 401"

        def refs(node: Any) -> list[str]:
            if isinstance(node, dict):
                found = [node["$ref"]] if "$ref" in node else []
                return found + [r for v in node.values() for r in refs(v)]
            if isinstance(node, list):
                return [r for v in node for r in refs(v)]
            return []

        for ref in refs(spec):
            assert ref.startswith("#/"), ref
            target: Any = spec
            for part in ref[2:].split("/"):
                assert part in target, f"dangling {ref}"
                target = target[part]
