"""The example app serves health probes (and metrics, with prometheus-client)."""

from __future__ import annotations

import importlib.util

import httpx

from example_app.main import build_app


async def test_example_app_health_and_metrics() -> None:
    app = build_app()
    async with app:
        transport = httpx.ASGITransport(app=app.asgi)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            ready = await http.get("/health/ready")
            assert ready.status_code == 200
            assert ready.json()["transports"] == {
                "memory": "up",
                "ws": "up",
                "socketio": "up",
                "sse": "up",
            }
            assert (await http.get("/health/live")).status_code == 200
            created = await http.post("/orders", json={"customer": "ann", "total": 3.0})
            assert created.status_code == 201
            metrics = await http.get("/metrics")
            openapi = (await http.get("/openapi.json")).json()
    assert openapi["info"]["title"] == "Example orders service"
    assert "/orders/{order_id}" in openapi["paths"]
    if importlib.util.find_spec("prometheus_client") is None:
        assert metrics.status_code == 404
    else:
        assert metrics.status_code == 200
        assert "framework_connected_clients" in metrics.text
