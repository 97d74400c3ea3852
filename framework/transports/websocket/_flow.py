"""Inbound flow control: a connection whose write buffer is full is not read.

The protocol libraries answer some frames by themselves (a pong for each ping, the echo
of a close) and write those answers without back-pressure. A client that sends pings
and never reads would make the server buffer one pong per ping, without bound (issue
15, defect 2). Both server connections below stop reading while their asyncio write
buffer is above its high-water mark, and read again once it drains: the flood then
waits in the kernel's socket buffers and, once they are full, in the client's ``send``.

The libraries also pause and resume reading for their own inbound queues; when one of
them resumes while the write buffer is still full, the next chunk read pauses again, so
the buffer grows by at most one chunk's answers.

Reads are also smaller than asyncio's default (256 KiB): the libraries parse every
frame of a chunk in one call, and 256 KiB of tiny frames from one flooding client is
about 8,000 frames, tens of milliseconds during which no other connection runs.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.asyncio.server import ServerConnection

READ_SIZE = 16 * 1024
"""Bytes read from a connection at a time."""


def _small_reads(transport: asyncio.BaseTransport) -> None:
    # ``max_size`` is what asyncio's selector transports pass to ``recv``; other
    # transports (uvloop, SSL) ignore the attribute.
    if hasattr(transport, "max_size"):
        cast(Any, transport).max_size = READ_SIZE


class FlowControlledConnection(ServerConnection):
    """The standalone server's connection (``serve(create_connection=...)``)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        _small_reads(transport)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.paused:  # set by pause_writing: the write buffer is above its limit
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        super().resume_writing()
        if not self.recv_messages.paused:  # its inbound queue is not the one pausing
            self.transport.resume_reading()


class FlowControlledProtocol(WebSocketsSansIOProtocol):
    """uvicorn's websockets-sansio protocol (the ``ws`` option of ``uvicorn.Config``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._write_paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        _small_reads(transport)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._write_paused and not self.transport.is_closing():
            self.transport.pause_reading()

    def pause_writing(self) -> None:
        super().pause_writing()
        self._write_paused = True

    def resume_writing(self) -> None:
        super().resume_writing()
        self._write_paused = False
        if not self.read_paused and not self.transport.is_closing():
            # ``read_paused``: uvicorn holds a message the app has not received yet.
            self.transport.resume_reading()
