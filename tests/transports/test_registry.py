"""Transports are found by name through the ``framework.transports`` entry point group:
the built-ins from the framework's own metadata, a user's from their package's."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest

import framework.transports
from framework import ConfigurationError, controller, create_app, message_pattern, module
from framework.transports import Transport, available_transports, load_transport
from framework.transports.kafka import KafkaTransport
from framework.transports.memory import MemoryTransport
from framework.transports.sse import SseTransport
from framework.transports.websocket import WebSocketTransport


def install_package(site: Path, name: str, entry_points: dict[str, str]) -> None:
    """What ``pip install`` leaves for a package that registers transports: a
    ``.dist-info`` folder with ``METADATA`` and ``entry_points.txt``."""
    info = site / f"{name}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    lines = [f"{key} = {value}" for key, value in entry_points.items()]
    (info / "entry_points.txt").write_text("[framework.transports]\n" + "\n".join(lines) + "\n")


def test_the_built_in_transports_are_registered() -> None:
    found = available_transports()
    assert found["memory"] == "framework.transports.memory:MemoryTransport"
    assert found["kafka"] == "framework.transports.kafka:KafkaTransport"
    assert found["ws"] == "framework.transports.websocket:WebSocketTransport"
    assert found["sse"] == "framework.transports.sse:SseTransport"
    assert found["socketio"] == "framework.transports.socketio:SocketIoTransport"


def test_load_transport_creates_one_with_its_options() -> None:
    memory = load_transport("memory", max_queue=5)
    assert isinstance(memory, MemoryTransport) and memory.max_queue == 5
    assert isinstance(load_transport("kafka", group_id="orders"), KafkaTransport)
    assert isinstance(load_transport("ws", path="/socket"), WebSocketTransport)
    assert isinstance(load_transport("sse"), SseTransport)


async def test_a_loaded_transport_serves_the_app() -> None:
    @controller()
    class Pong:
        @message_pattern("ping")
        def ping(self, n: int) -> int:
            return n + 1

    @module(controllers=[Pong])
    class PingModule:
        pass

    async with create_app(PingModule, transports=[load_transport("memory")]) as app:
        assert await app.client.send("ping", 1) == 2


def test_an_installed_package_registers_its_transport(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_package(
        tmp_path,
        "redis_streams_example",
        {"redis-streams": "examples.redis_streams:RedisStreamsTransport"},
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert available_transports()["redis-streams"] == "examples.redis_streams:RedisStreamsTransport"
    pytest.importorskip("redis")
    from examples.redis_streams import RedisStreamsTransport

    transport = load_transport("redis-streams", url="redis://127.0.0.1:1/0", group="orders")
    assert isinstance(transport, RedisStreamsTransport)
    assert transport.group == "orders" and transport.name == "redis-streams"


def test_an_unknown_name_lists_what_is_installed() -> None:
    with pytest.raises(ConfigurationError, match=r"No transport named 'carrier-pigeon'.*memory"):
        load_transport("carrier-pigeon")


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("no_such_module_xyz:Transport", "cannot be imported"),
        ("framework.exceptions:ConfigurationError", "is not a Transport subclass"),
    ],
)
def test_a_broken_registration_says_what_is_wrong(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, target: str, message: str
) -> None:
    install_package(tmp_path, "broken_transport", {"broken": target})
    monkeypatch.syspath_prepend(str(tmp_path))
    assert available_transports()["broken"] == target  # listed without importing it
    with pytest.raises(ConfigurationError, match=message):
        load_transport("broken")


def test_two_packages_claiming_one_name_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_package(tmp_path, "one", {"twice": "examples.redis_streams:RedisStreamsTransport"})
    install_package(tmp_path, "two", {"twice": "framework.transports.memory:MemoryTransport"})
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigurationError, match="Two packages register a transport named"):
        load_transport("twice")


def test_the_transport_author_surface_is_exact() -> None:
    package = framework.transports
    public = {
        name
        for name in dir(package)
        if not name.startswith(("_", "@")) and not isinstance(getattr(package, name), ModuleType)
    }
    assert set(package.__all__) == public
    assert package.Transport is Transport
