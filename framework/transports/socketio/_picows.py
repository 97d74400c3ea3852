"""Engine.IO's WebSocket on picows: the Socket.IO transport's ``Route`` on the app's port
(``websocket._uvicorn``).

Admission and the read loop are the ASGI endpoint's own (``EngineEndpoint``'s
``admit_websocket`` and ``run_websocket``); only the frames are read and written by
picows, through a ``PicowsLink`` (text packets as ``str``, attachments as binary
frames), which also stops reading a client whose write buffer is full.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from picows import WSCloseCode
from starlette.datastructures import Headers
from websockets.http11 import Request

from framework.transports.socketio._asgi import Client, EngineEndpoint
from framework.transports.socketio._engine import EngineSession
from framework.transports.websocket._picows import PicowsLink, picows_protocol


class EngineRoute:
    """``path`` (``/socket.io/``) served on picows."""

    def __init__(self, endpoint: EngineEndpoint, path: str) -> None:
        self.endpoint = endpoint
        self.path = path
        # Engine.IO checks each packet against ``max_payload`` (``run_websocket``) and
        # drops the session; picows's own limit only bounds a frame's buffer: a text
        # packet of ``max_payload`` characters may take 4 bytes each.
        self.max_frame_size = 4 * endpoint.engine.max_payload
        self._tasks: set[asyncio.Task[None]] = set()

    def serves(self, path: str) -> bool:
        return path == self.path

    async def admit(self, request: Request, client: Client) -> PicowsLink | None:
        url = urlsplit(request.path)
        # The ASGI path's view of the request: starlette's headers, the query as parsed
        # there, so guards, ``socket.headers`` and the checks see the same on both.
        headers = Headers(
            raw=[
                (name.lower().encode("latin-1"), value.encode("latin-1"))
                for name, value in request.headers.raw_items()
            ]
        )
        query = dict(parse_qsl(url.query))
        problem, upgrade = self.endpoint.admit_websocket(headers, query, client)
        if problem is not None:
            return None

        def opened(link: PicowsLink) -> None:
            self._start(link, headers, query, client, upgrade)

        return PicowsLink(self.max_frame_size, opened, text=True)

    def protocol(self, link: PicowsLink) -> Any:
        # No WebSocket pings: Engine.IO has its own heartbeat (``ping_interval``).
        return picows_protocol(
            link, ping_interval=None, ping_timeout=None, max_frame_size=self.max_frame_size
        )

    def _start(
        self,
        link: PicowsLink,
        headers: Headers,
        query: dict[str, str],
        client: Client,
        upgrade: EngineSession | None,
    ) -> None:
        run = self.endpoint.run_websocket(link, link.receive, headers, query, client, upgrade)
        task = asyncio.get_running_loop().create_task(self._serve(link, run))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, link: PicowsLink, run: Any) -> None:
        try:
            await run
        finally:
            # The session has ended (its close frame sent, or it was dropped): make
            # sure the TCP connection goes too if the client never closes its side.
            transport = link.transport
            if transport is not None and not transport.is_disconnected:
                if not transport.is_close_frame_sent:
                    transport.send_close(WSCloseCode.OK)
                transport.disconnect()
