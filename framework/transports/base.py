"""The public contract between the core and a transport. Write your own against this.

A transport moves bytes: it receives messages, looks handlers up in the app's ``Router``
and awaits ``handler.call(raw, ctx)``; it turns results and errors into replies with
``framework.messaging.codecs.encode`` and ``framework.messaging.errors.error_payload``.
The core never imports a transport.

Lifecycle: ``bind(host)`` once (before start), ``await start()``, ``await stop()``.
``stop`` must stop taking new messages, let in-flight handlers finish, then close.

Extension points, for observability and your own code: a transport reports what happens
to it through ``host.events`` (``TransportEvents``), and a client passes the headers of
every outgoing message through its ``header_hooks``.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, Self

if TYPE_CHECKING:
    from reactivex import Observable
    from starlette.routing import BaseRoute

    from framework.messaging.router import MessageHandler, Router


class TransportEvents:
    """What happens to a transport, reported by it to ``host.events``; metrics count it.

    Every method does nothing here: an observer overrides the ones it wants. A transport
    calls them on its own task, so they must be quick and must not raise. ``peer`` is
    whatever names a connection for the transport (an address, a socket id).
    """

    def connected(self, transport: Transport, peer: Any) -> None:
        """A client connection (a socket, a stream) opened."""

    def disconnected(self, transport: Transport, peer: Any) -> None:
        """A client connection closed, for whatever reason."""

    def retried(self, transport: Transport, handler: MessageHandler) -> None:
        """A failed handler is called again (before each retry)."""

    def dead_lettered(self, transport: Transport, handler: MessageHandler) -> None:
        """A message was given up after its retries (dead-lettered or dropped)."""

    def dropped(self, transport: Transport, peer: Any, why: str) -> None:
        """A client was cut off by the transport (a slow reader); ``why`` is a short,
        fixed reason (metrics use it as a label)."""


NO_EVENTS = TransportEvents()
"""The observer of a host nobody observes."""


class TransportHost(Protocol):
    """What the application gives a transport."""

    @property
    def router(self) -> Router: ...

    @property
    def logger(self) -> logging.Logger: ...

    @property
    def events(self) -> TransportEvents: ...

    async def to_peers(self, channel: str, payload: bytes) -> None:
        """Hand ``payload`` to ``on_peer_message(channel, payload)`` of every transport
        on every instance of the app (this one included), through the publish relay
        when there is one."""
        ...

    def fail(self, reason: str) -> None:
        """A transport cannot go on: stop serving, so that ``app.run()`` and ``framework
        run`` exit with status 1 (the orchestrator then restarts the process)."""
        ...


class Transport(ABC):
    """A server-side transport.

    Attributes:
        name: the name handlers use in ``transports=[...]`` and contexts report.
    """

    name: str = "custom"

    def bind(self, host: TransportHost) -> None:
        """Called once by the application before ``start``."""
        self.host = host

    @abstractmethod
    async def start(self) -> None:
        """Connect and begin delivering messages to the router."""

    @abstractmethod
    async def stop(self) -> None:
        """Stop receiving, finish in-flight handlers, release resources."""

    def routes(self) -> list[BaseRoute]:
        """Starlette routes to mount on the app's HTTP server (WebSocket, SSE)."""
        return []

    def server_options(self) -> dict[str, Any]:
        """uvicorn settings this transport needs on the app's HTTP server (applied by
        ``Application.server``/``run``; e.g. WebSocket frame size and keepalive)."""
        return {}

    def upgrade_routes(self) -> list[Any]:
        """WebSocket paths this transport serves on the app's port with picows frame I/O
        instead of ASGI (``framework.transports.websocket._picows.Route``; the
        WebSocket and Socket.IO transports have one). ``Application.server`` hands
        those upgrades over; every other path stays on the ASGI routes."""
        return []

    async def drain(self) -> None:  # noqa: B027 - optional for transports without connections
        """End long-lived connections gracefully (WebSocket close 1001, SSE streams).

        Called when the HTTP server starts shutting down, before it drops the
        connections it still holds; ``stop`` follows later.
        """

    def create_client(self) -> ClientProxy | None:
        """A client that talks to services over this transport, if it has one."""
        return None

    async def publish(self, pattern: str, payload: bytes, event_id: str | None) -> None:  # noqa: B027
        """Push an app-wide event to this transport's subscribers of ``pattern``.

        Push transports (WebSocket, SSE) override this. ``payload`` is the JSON already
        encoded once for every subscriber; ``event_id`` is a stable id (the same on every
        instance when a relay carries the event), or ``None``.
        """

    async def on_peer_message(self, channel: str, payload: bytes) -> None:  # noqa: B027
        """A message a transport sent with ``host.to_peers(channel, payload)`` on some
        instance of the app (a Socket.IO room broadcast that must reach every
        instance's sockets). Channels are named after the transport that uses them;
        ignore the others."""

    @property
    def ready(self) -> bool:
        """True once connected and serving (for readiness probes)."""
        return True

    @property
    def alive(self) -> bool:
        """False when a loop this transport depends on died and only a restart helps
        (for liveness probes); True before start and after stop."""
        return True


Deliver = Callable[[str, bytes, "str | None"], Awaitable[None]]


class PublishRelay(ABC):
    """Carries ``app.publish`` events to every instance of the app (e.g. over Kafka).

    Without a relay, events reach this process's subscribers only.
    """

    @abstractmethod
    async def start(self, deliver: Deliver) -> None:
        """Begin calling ``deliver(pattern, payload, event_id)`` for every relayed event,
        including the ones this instance publishes."""

    @abstractmethod
    async def stop(self) -> None:
        """Stop relaying."""

    @abstractmethod
    async def publish(self, pattern: str, payload: bytes) -> None:
        """Send an event to every instance."""


HeaderHook = Callable[[Mapping[str, str] | None], Mapping[str, str] | None]
"""Gets the headers of an outgoing message (``None``: none) and returns the headers to
send; it must not change the mapping it is given (copy it)."""


class ClientProxy(ABC):
    """A client for a transport: request/reply, streams and events.

    Replies arrive decoded from JSON. An error reply raises ``RemoteError`` carrying the
    error body; no reply within ``timeout`` raises ``RequestTimeoutError``.

    Attributes:
        header_hooks: applied in order to the headers of every ``send``, ``stream`` and
            ``emit`` (``outgoing_headers``); tracing adds the ``traceparent`` this way.
            A client you write calls ``outgoing_headers`` when ``header_hooks`` is not
            empty.
    """

    header_hooks: tuple[HeaderHook, ...] = ()

    def add_header_hook(self, hook: HeaderHook) -> None:
        """Apply ``hook`` to the headers of every message sent from now on (after the
        hooks already there)."""
        self.header_hooks = (*self.header_hooks, hook)

    def remove_header_hook(self, hook: HeaderHook) -> None:
        """Take away one ``hook`` added before; nothing happens if it is not there."""
        hooks = list(self.header_hooks)
        if hook in hooks:
            hooks.remove(hook)
            self.header_hooks = tuple(hooks)

    def outgoing_headers(self, headers: Mapping[str, str] | None) -> Mapping[str, str] | None:
        """``headers`` passed through every header hook."""
        for hook in self.header_hooks:
            headers = hook(headers)
        return headers

    async def connect(self) -> None:  # noqa: B027 - optional for clients without I/O
        """Open connections; called at application start for registered clients."""

    async def close(self) -> None:  # noqa: B027 - optional for clients without I/O
        """Close connections; called at application shutdown."""

    @abstractmethod
    async def send(
        self,
        pattern: str,
        data: Any,
        *,
        timeout: float | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """Send a request and return the reply (the last item, for a stream)."""

    @abstractmethod
    def stream(
        self,
        pattern: str,
        data: Any,
        *,
        timeout: float | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> AsyncIterator[Any]:
        """Send a request and iterate over every reply until the end of the stream.

        ``timeout`` bounds the wait for each item, in seconds.
        """

    @abstractmethod
    def emit(
        self,
        pattern: str,
        data: Any,
        *,
        key: str | bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Awaitable[None]:
        """Publish an event; the awaitable finishes once the transport accepted it
        (write it as ``async def``; the memory client returns a finished one)."""

    def observe(
        self,
        pattern: str,
        data: Any,
        *,
        timeout: float | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Observable[Any]:
        """``stream(pattern, data)`` as a cold ReactiveX Observable (needs the
        ``framework[rx]`` extra), as NestJS's ``client.send`` returns.

        Every subscription sends the request anew and pushes each reply (a single reply
        is one item), then completes; an error reply arrives as ``on_error`` with the
        ``RemoteError``. Disposing cancels the request's stream. Subscribe from the
        event loop's thread; ``await client.observe(...)`` gives the last item.
        """
        from framework.rx import to_observable

        return to_observable(lambda: self.stream(pattern, data, timeout=timeout, headers=headers))

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
