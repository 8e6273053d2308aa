"""docs/openapi.yaml stays in step with the code: every route of services/api/api_route.c
is documented with the same methods and nothing else is; every $ref resolves; every
operation documents an error response."""

import re
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parents[2]
METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE"}


def norm(path):
    """/api/v1/sandboxes/{id}/files/{path+} → /sandboxes/{}/files/{}"""
    path = path[len("/api/v1"):] if path.startswith("/api/v1") else path
    return re.sub(r"\{[^}]+\}", "{}", path)


def code_routes():
    text = (ROOT / "services/api/api_route.c").read_text()
    routes = {}
    for method, path in re.findall(r'\{API_R_\w+, API_M_(\w+), "([^"]+)"', text):
        routes.setdefault(norm(path), set()).add(method)
    assert len(routes) > 20, "the route table was not found in api_route.c"
    return routes


def spec():
    return yaml.safe_load((ROOT / "docs/openapi.yaml").read_text())


def test_every_route_is_documented_and_nothing_else():
    doc = {norm(p): {m.upper() for m in ops if m.upper() in METHODS}
           for p, ops in spec()["paths"].items()}
    code = code_routes()
    assert sorted(set(code) - set(doc)) == [], "routes missing from docs/openapi.yaml"
    assert sorted(set(doc) - set(code)) == [], "documented paths the server does not serve"
    for path, methods in code.items():
        assert doc[path] == methods, f"{path}: code {sorted(methods)}, doc {sorted(doc[path])}"


def test_refs_resolve():
    d = spec()
    text = (ROOT / "docs/openapi.yaml").read_text()
    refs = set(re.findall(r'\$ref: "#/([^"]+)"', text))
    assert refs
    for ref in refs:
        node = d
        for part in ref.split("/"):
            assert isinstance(node, dict) and part in node, f"unresolved $ref #/{ref}"
            node = node[part]


def test_operations_have_responses_and_errors():
    public = {"/health", "/ready", "/metrics"}
    for path, ops in spec()["paths"].items():
        for method, op in ops.items():
            if method.upper() not in METHODS:
                continue
            assert op.get("responses"), f"{method} {path}: no responses"
            if path not in public:
                assert "default" in op["responses"], f"{method} {path}: no error response"
