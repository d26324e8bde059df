"""NODE_ENV=production serves no API explorer: neither /docs nor the /openapi.json behind it."""

from __future__ import annotations


def test_production_serves_neither_docs_nor_the_openapi_schema(server_factory, tmp_path):
    server = server_factory(
        database_url=f"sqlite:///{tmp_path / 'prod.db'}", env={"NODE_ENV": "production"}
    )
    with server.client() as c:
        for path in ("/docs", "/openapi.json", "/redoc", "/docs/oauth2-redirect"):
            r = c.get(path)
            assert r.status_code == 404, (path, r.status_code)
            assert "paths" not in r.text
        assert c.get("/health").status_code == 200


def test_development_keeps_docs_and_the_openapi_schema(server_factory, tmp_path):
    server = server_factory(
        database_url=f"sqlite:///{tmp_path / 'dev.db'}", env={"NODE_ENV": "development"}
    )
    with server.client() as c:
        assert c.get("/docs").status_code == 200
        r = c.get("/openapi.json")
        assert r.status_code == 200 and "/api/sync" in r.json()["paths"]
