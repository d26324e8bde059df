"""The browser the panel tests drive: Debian's chromium under Playwright reaches a real
server on 127.0.0.1 (a failure here is the browser's setup, not the panel's)."""

from __future__ import annotations

import json

from tests.serverproc import ServerProcess


def test_chromium_opens_a_page_of_the_real_server(tmp_path, new_page):
    server = ServerProcess(tmp_path / "server", database_url=f"sqlite:///{tmp_path / 's.db'}")
    server.start()
    try:
        panel = new_page(server.url)
        response = panel.page.goto("/health")
        assert response is not None and response.status == 200
        assert json.loads(panel.page.inner_text("body"))["status"] == "ok"
    finally:
        server.kill()
