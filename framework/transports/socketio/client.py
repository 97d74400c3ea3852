"""``SocketIoClient``: a ``ClientProxy`` over Socket.IO, for one service calling another
(ours or a NestJS gateway) and for tests.

Built on python-socketio's ``AsyncClient`` (install ``framework[socketio]``): ``send`` is
an emit with an ack, ``stream`` uses the transport's ``stream`` event, ``emit`` is a
plain emit. Socket.IO events carry no headers, so ``headers`` and header hooks are not
sent.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any

from framework.exceptions import RemoteError, RequestTimeoutError, TransportError
from framework.messaging.codecs import encode
from framework.transports.base import ClientProxy

_DONE = object()


def _is_error(reply: Any) -> bool:
    return reply.__class__ is dict and reply.get("status") == "error" and "message" in reply


def _plain(data: Any) -> Any:
    """``data`` as JSON-ready values (pydantic models, dataclasses...)."""
    import pydantic_core

    return pydantic_core.from_json(encode(data))


class SocketIoClient(ClientProxy):
    """A Socket.IO client for one namespace.

    Args:
        url: the server, ``http://host:port`` (``https``/``wss`` work too).
        namespace: the namespace to connect to (default ``"/"``).
        path: the Engine.IO path (default ``"socket.io"``).
        transports: ``["websocket"]`` (default), or ``["polling", "websocket"]`` to start
            on long-polling and upgrade, as browsers do.
        auth: the ``auth`` payload sent at connect (the server's guards read it).
        headers: HTTP headers of the handshake.
        timeout: default seconds to wait for an ack, a stream item or the connection.
        fail_pending_on_exception: an ``exception`` event fails a request still waiting:
            the oldest one for the event NestJS names in the error's ``cause.pattern``,
            else the oldest one. Turn it on against NestJS gateways, which emit
            ``exception`` and never answer the ack; our transport answers the ack with
            the error itself.
    """

    def __init__(
        self,
        url: str,
        *,
        namespace: str = "/",
        path: str = "socket.io",
        transports: Sequence[str] = ("websocket",),
        auth: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 10.0,
        fail_pending_on_exception: bool = False,
    ) -> None:
        self.url = url
        self.namespace = namespace
        self.path = path
        self.transports = list(transports)
        self.auth = dict(auth) if auth is not None else None
        self.headers = dict(headers or {})
        self.timeout = timeout
        self.fail_pending_on_exception = fail_pending_on_exception
        self._sio: Any = None
        self._ids = itertools.count(1)
        self._streams: dict[int, asyncio.Queue[Any]] = {}
        self._pending: list[tuple[str, asyncio.Future[Any]]] = []
        self._listeners: dict[str, list[Callable[..., Any]]] = {}

    @property
    def connected(self) -> bool:
        return self._sio is not None and bool(self._sio.connected)

    async def connect(self) -> None:
        if self._sio is not None:
            return
        try:
            import socketio
        except ImportError as exc:  # pragma: no cover - the extra is installed in tests
            raise TransportError(
                "SocketIoClient needs python-socketio: pip install 'framework[socketio]'"
            ) from exc
        sio = socketio.AsyncClient(reconnection=True)
        ns = self.namespace
        sio.on("stream", self._on_stream, namespace=ns)
        sio.on("exception", self._on_exception, namespace=ns)
        for event, handlers in self._listeners.items():
            for handler in handlers:
                sio.on(event, handler, namespace=ns)
        try:
            await sio.connect(
                self.url,
                namespaces=[ns],
                socketio_path=self.path,
                transports=self.transports,
                auth=self.auth,
                headers=self.headers,
                wait_timeout=self.timeout,
            )
        except socketio.exceptions.ConnectionError as exc:
            await sio.disconnect()
            raise TransportError(f"Socket.IO connection to {self.url} failed: {exc}") from exc
        self._sio = sio

    async def close(self) -> None:
        sio, self._sio = self._sio, None
        if sio is not None:
            await sio.disconnect()

    def _client(self) -> Any:
        if self._sio is None:
            raise TransportError("SocketIoClient is not connected: await client.connect()")
        return self._sio

    def on(self, event: str, handler: Callable[..., Any]) -> None:
        """Call ``handler(*args)`` for every ``event`` the server emits (published
        patterns, broadcasts, ``socket.emit``)."""
        self._listeners.setdefault(event, []).append(handler)
        if self._sio is not None:
            self._sio.on(event, handler, namespace=self.namespace)

    # -- ClientProxy -----------------------------------------------------------------

    async def send(
        self,
        pattern: str,
        data: Any,
        *,
        timeout: float | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """Emit ``pattern`` with ``data`` and return the ack; an error ack (or, with
        ``fail_pending_on_exception``, an ``exception`` event) raises ``RemoteError``."""
        import socketio

        sio = self._client()
        wait = self.timeout if timeout is None else timeout
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[Any] = loop.create_future()
        waiting = (pattern, answer)
        self._pending.append(waiting)

        def on_ack(*args: Any) -> None:
            if not answer.done():
                answer.set_result(args[0] if len(args) == 1 else (list(args) or None))

        try:
            await sio.emit(pattern, _plain(data), namespace=self.namespace, callback=on_ack)
            async with asyncio.timeout(wait):
                reply = await answer
        except (TimeoutError, socketio.exceptions.TimeoutError):
            raise RequestTimeoutError(pattern, wait) from None
        finally:
            if waiting in self._pending:
                self._pending.remove(waiting)
        if _is_error(reply):
            raise RemoteError(reply)
        return reply

    async def stream(
        self,
        pattern: str,
        data: Any,
        *,
        timeout: float | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> AsyncIterator[Any]:
        """Every item of a streamed reply (the ``stream`` event); leaving the loop early
        cancels the stream on the server."""
        sio = self._client()
        wait = self.timeout if timeout is None else timeout
        stream_id = next(self._ids)
        queue: asyncio.Queue[Any] = asyncio.Queue()
        self._streams[stream_id] = queue
        done = False
        try:
            frame = {"id": stream_id, "event": pattern, "data": _plain(data)}
            await sio.emit("stream", frame, namespace=self.namespace)
            while True:
                try:
                    async with asyncio.timeout(wait):
                        item = await queue.get()
                except TimeoutError:
                    raise RequestTimeoutError(pattern, wait) from None
                if item is _DONE:
                    done = True
                    return
                if isinstance(item, RemoteError):
                    done = True
                    raise item
                yield item
        finally:
            self._streams.pop(stream_id, None)
            if not done and self._sio is not None:
                await self._sio.emit("cancel", stream_id, namespace=self.namespace)

    async def emit(
        self,
        pattern: str,
        data: Any,
        *,
        key: str | bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Emit ``pattern`` with ``data``, asking for no ack (``@event_pattern``)."""
        await self._client().emit(pattern, _plain(data), namespace=self.namespace)

    async def subscribe(self, *patterns: str) -> list[str]:
        """Receive ``app.publish`` events matching ``patterns`` (listen with ``on``);
        returns every pattern this client is subscribed to."""
        result: list[str] = await self.send("subscribe", list(patterns))
        return result

    # -- what the server emits -------------------------------------------------------

    async def _on_stream(self, frame: Any) -> None:
        if frame.__class__ is not dict:
            return
        queue = self._streams.get(frame.get("id"))  # type: ignore[arg-type]
        if queue is None:
            return
        queue.put_nowait(_DONE if frame.get("done") else frame.get("data"))

    async def _on_exception(self, payload: Any) -> None:
        if payload.__class__ is dict and "id" in payload:
            queue = self._streams.get(payload["id"])
            if queue is not None:
                body = {k: v for k, v in payload.items() if k != "id"}
                queue.put_nowait(RemoteError(body))
                return
        if not self.fail_pending_on_exception or not self._pending:
            return
        cause = payload.get("cause") if payload.__class__ is dict else None
        pattern = cause.get("pattern") if cause.__class__ is dict else None
        waiting = next((w for w in self._pending if w[0] == pattern), self._pending[0])
        self._pending.remove(waiting)
        if not waiting[1].done():
            waiting[1].set_exception(RemoteError(payload))
