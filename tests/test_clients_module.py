"""``ClientsModule.register``: clients injected by token, connected at start, closed at stop."""

from __future__ import annotations

from typing import Annotated

from framework import (
    ClientProxy,
    ClientsModule,
    Inject,
    InjectionToken,
    create_app,
    injectable,
    module,
)
from framework.transports.memory import MemoryClient

BILLING = InjectionToken("BILLING")


class RecordingClient(MemoryClient):
    """A real in-memory client (it talks to the app it is given) that records its lifecycle."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def connect(self) -> None:
        self.calls.append("connect")

    async def close(self) -> None:
        self.calls.append("close")


@injectable()
class Checkout:
    def __init__(self, billing: Annotated[ClientProxy, Inject(BILLING)]) -> None:
        self.billing = billing


async def test_registered_client_is_injected_connected_and_closed() -> None:
    client = RecordingClient()

    @module(imports=[ClientsModule.register({BILLING: client})], providers=[Checkout])
    class App:
        pass

    app = create_app(App)
    client.transport = app.memory
    async with app:
        assert app.get(Checkout).billing is client
        assert client.calls == ["connect"]
    assert client.calls == ["connect", "close"]


async def test_registered_clients_are_private_to_the_importing_module_unless_global() -> None:
    other = RecordingClient()

    @module(imports=[ClientsModule.register({BILLING: other}, global_=True)])
    class Shared:
        pass

    @module(providers=[Checkout])
    class Feature:
        pass

    @module(imports=[Shared, Feature])
    class App:
        pass

    async with create_app(App) as app:
        assert app.get(Checkout).billing is other
