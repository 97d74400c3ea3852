"""``ClientsModule.register``: clients as injectable providers, as in NestJS."""

from __future__ import annotations

from collections.abc import Mapping

from framework.di.metadata import DynamicModule, Token, module, value_provider
from framework.transports.base import ClientProxy


@module()
class ClientsModule:
    """Register clients by token; the app connects them at start and closes them at stop.

    Example:
        ``ClientsModule.register({ORDERS: KafkaClient(bootstrap_servers=...)})`` then
        ``Annotated[ClientProxy, Inject(ORDERS)]`` in a constructor.
    """

    @staticmethod
    def register(clients: Mapping[Token, ClientProxy], *, global_: bool = False) -> DynamicModule:
        providers = [value_provider(token, client) for token, client in clients.items()]
        return DynamicModule(
            ClientsModule, providers=providers, exports=list(clients), global_=global_
        )
