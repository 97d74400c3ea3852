"""``create_testing_module``: the app with providers overridden, on the memory transport.

Example::

    async with create_testing_module(AppModule).override_provider(
        OrdersRepository, use_value=FakeRepo()
    ).compile() as t:
        await t.client.send("orders.get", 1)          # through the real pipeline
        response = await t.http.get("/orders")         # through the real HTTP stack

Guards, interceptors, filters and pipes are replaced the same way
(``override_guard(AuthGuard, use_value=AllowAll())``), wherever the app applies them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, overload

from framework.application import Application, create_app
from framework.di.metadata import Provider, Token
from framework.exceptions import ConfigurationError
from framework.testing._live import EventStream, LiveServer, sse_params
from framework.transports.base import ClientProxy, Transport

if TYPE_CHECKING:
    import httpx

    from framework.transports.websocket import WebSocketClient

T = TypeVar("T")
_UNSET: Any = object()


class TestingModuleBuilder:
    """Collects overrides; ``compile()`` makes the ``TestingApp``."""

    __test__ = False  # not a pytest test class

    def __init__(self, root_module: Any) -> None:
        self._root = root_module
        self._overrides: list[Provider] = []
        self._transports: list[Transport] = []
        self._enhancers: list[tuple[str, Any, Any]] = []

    def override_provider(
        self,
        token: Token,
        *,
        use_value: Any = _UNSET,
        use_class: type | None = None,
        use_factory: Callable[..., Any] | None = None,
        inject: Sequence[Token] = (),
    ) -> TestingModuleBuilder:
        """Replace the provider of ``token`` in whichever module declares it."""
        if use_value is not _UNSET:
            provider = Provider(token, use_value=use_value, _has_value=True)
        else:
            provider = Provider(token, use_class=use_class, use_factory=use_factory, inject=inject)
        self._overrides.append(provider)
        return self

    def override_guard(
        self, guard: Any, *, use_value: Any = _UNSET, use_class: type | None = None
    ) -> TestingModuleBuilder:
        """Replace ``guard`` (a class or an instance, as the app lists it in
        ``use_guards`` or ``use_global_guards``) everywhere it is used.

        ``use_value`` is an instance used as is; ``use_class`` is built with the module's
        providers, as the original would be. Starting the app fails with a
        ``ConfigurationError`` if no handler or route uses ``guard``.
        """
        return self._override("guards", guard, use_value, use_class)

    def override_interceptor(
        self, interceptor: Any, *, use_value: Any = _UNSET, use_class: type | None = None
    ) -> TestingModuleBuilder:
        """Replace ``interceptor`` everywhere it is used (see ``override_guard``)."""
        return self._override("interceptors", interceptor, use_value, use_class)

    def override_filter(
        self, filter_: Any, *, use_value: Any = _UNSET, use_class: type | None = None
    ) -> TestingModuleBuilder:
        """Replace the exception filter ``filter_`` everywhere it is used (see
        ``override_guard``)."""
        return self._override("filters", filter_, use_value, use_class)

    def override_pipe(
        self, pipe: Any, *, use_value: Any = _UNSET, use_class: type | None = None
    ) -> TestingModuleBuilder:
        """Replace ``pipe`` everywhere it is used (see ``override_guard``)."""
        return self._override("pipes", pipe, use_value, use_class)

    def _override(
        self, kind: str, original: Any, use_value: Any, use_class: type | None
    ) -> TestingModuleBuilder:
        if (use_value is _UNSET) == (use_class is None):
            raise ConfigurationError(
                f"override_{kind.rstrip('s')}({original!r}) needs exactly one of "
                "use_value= or use_class="
            )
        self._enhancers.append((kind, original, use_class or use_value))
        return self

    def with_transports(self, *transports: Transport) -> TestingModuleBuilder:
        """Also serve on these transports (the memory transport is always there)."""
        self._transports.extend(transports)
        return self

    def compile(self) -> TestingApp:
        app = create_app(self._root, transports=self._transports)
        app._overrides.extend(self._overrides)
        app._enhancer_overrides.extend(self._enhancers)
        return TestingApp(app)


class TestingApp:
    """A started-on-demand app for tests: ``async with`` it, or ``await start()``.

    Attributes:
        app: the ``Application``.
        client: the in-memory ``ClientProxy`` (requests go through the real pipeline).
    """

    __test__ = False

    def __init__(self, app: Application) -> None:
        self.app = app
        self.client: ClientProxy = app.client
        self._http: httpx.AsyncClient | None = None
        self._server: LiveServer | None = None
        self._clients: list[ClientProxy] = []

    async def listen(self) -> str:
        """Start the app (if needed) and serve it with uvicorn on a free 127.0.0.1 port,
        as ``app.run()`` would; returns the base URL (``http://127.0.0.1:<port>``).

        ``websocket()`` and ``sse()`` connect there; ``stop()`` closes the server (the
        transports drain first), then stops the app.
        """
        if self._server is None:
            await self.app.start()
            server = LiveServer(self.app)
            await server.start()
            self._server = server
        return self._server.url

    @property
    def url(self) -> str:
        """The base URL of the server ``listen()`` started."""
        if self._server is None:
            raise ConfigurationError("Call `await t.listen()` first: no server is running")
        return self._server.url

    def websocket(self, path: str = "/ws", **options: Any) -> WebSocketClient:
        """A ``WebSocketClient`` for the server's ``path`` (``async with`` it, or call
        ``connect()``); ``options`` go to ``WebSocketClient`` (``headers``, ``auth``,
        ``default_timeout``...). Closed by ``stop()`` if still open."""
        from framework.transports.websocket import WebSocketClient

        ws_url = "ws" + self.url.removeprefix("http") + "/" + path.lstrip("/")
        client = WebSocketClient(ws_url, **options)
        self._clients.append(client)
        return client

    def sse(
        self,
        path: str = "/events",
        *,
        subscribe: str | Sequence[str] | None = None,
        last_event_id: str | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 10.0,
    ) -> EventStream:
        """An ``EventStream`` on the server's ``path``: an ``SseTransport``
        (``subscribe=["orders.*"]``, ``last_event_id`` to resume) or an ``@sse`` route.

        ``async with t.sse(...) as events: event = await events.next()``; a response
        other than 200 raises ``httpx.HTTPStatusError`` on entering. Needs ``httpx``
        (the ``testing`` extra).
        """
        return EventStream(
            self.url + "/" + path.lstrip("/"),
            params=sse_params(subscribe, last_event_id),
            headers=headers,
            timeout=timeout,
        )

    @property
    def http(self) -> httpx.AsyncClient:
        """An ``httpx.AsyncClient`` calling the app in-process (needs ``httpx``)."""
        if self._http is None:
            import httpx

            transport = httpx.ASGITransport(app=self.app.asgi)
            self._http = httpx.AsyncClient(transport=transport, base_url="http://testserver")
        return self._http

    @overload
    def get(self, token: type[T]) -> T: ...

    @overload
    def get(self, token: Any) -> Any: ...

    def get(self, token: Any) -> Any:
        """The app's instance for ``token``."""
        return self.app.get(token)

    async def settle(self) -> None:
        """Wait until every in-memory event emitted so far has been handled."""
        await self.app.memory.join()

    async def start(self) -> TestingApp:
        await self.app.start()
        return self

    async def stop(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None
        for client in self._clients:
            await client.close()
        self._clients.clear()
        if self._server is not None:
            server, self._server = self._server, None
            await server.stop()
        await self.app.stop()

    async def __aenter__(self) -> TestingApp:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def create_testing_module(root_module: Any) -> TestingModuleBuilder:
    """Start building a test app from ``root_module`` (NestJS's ``Test.createTestingModule``)."""
    return TestingModuleBuilder(root_module)
