"""Requests served from Kafka: replies, error replies and streamed replies."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from framework.messaging.errors import error_payload
from framework.messaging.router import MessageHandler
from framework.transports.kafka.context import KafkaContext
from framework.transports.kafka.lanes import Lane
from framework.transports.kafka.wire import RequestInfo, encode_value, payload, reply_headers

logger = logging.getLogger("framework.kafka")


class Replies:
    """``KafkaTransport``'s request/reply side, as NestJS clients expect it."""

    stream_end_wait: float
    _producer: Any
    _decoders: dict[MessageHandler, Callable[[bytes | None], Any]]
    _streams: set[asyncio.Task[None]]
    _stream_slots: asyncio.Semaphore

    async def _serve_request(
        self, lane: Lane, record: Any, handler: MessageHandler, info: RequestInfo
    ) -> None:
        ctx = KafkaContext(record) if handler.needs_context else None
        try:
            result = await handler.call(self._decoders.get(handler, payload)(record.value), ctx)
            if hasattr(result, "__aiter__"):
                # Streams may run for long: keep replying in the background, so the
                # partition moves on (as NestJS does after the first item).
                await self._stream_slots.acquire()
                task = asyncio.create_task(self._stream(result, info, handler))
                self._streams.add(task)
                task.add_done_callback(self._streams.discard)
                return
            value = encode_value(result)
        except Exception as exc:
            await self._reply(lane, info, None, error=error_payload(exc, where=handler.name))
            return
        await self._reply(lane, info, value, disposed=True)

    async def _reply(
        self,
        lane: Lane | None,
        info: RequestInfo,
        value: bytes | None,
        *,
        disposed: bool = True,
        error: Any = None,
        no_value: bool = False,
    ) -> asyncio.Future[Any] | None:
        """Queue one reply record; its broker ack is awaited with the lane's batch."""
        headers = reply_headers(
            info.correlation_id,
            disposed=disposed or error is not None,
            error=error,
            no_value=no_value,
        )
        try:
            # A null value needs a key for aiokafka: the correlation id (clients ignore it).
            key = None if value is not None else info.correlation_id.encode()
            ack: asyncio.Future[Any] = await self._producer.send(
                info.reply_topic, value, key=key, partition=info.reply_partition, headers=headers
            )
        except Exception as exc:
            logger.error("Reply to %s failed: %r", info.reply_topic, exc)
            return None
        if lane is not None:
            lane.acks.append(ack)
        return ack

    async def _settle(self, lane: Lane) -> None:
        acks, lane.acks = lane.acks, []
        for result in await asyncio.gather(*acks, return_exceptions=True):
            if isinstance(result, BaseException):
                logger.error("A Kafka reply was not delivered: %r", result)

    async def _stream(
        self, iterator: AsyncIterator[Any], info: RequestInfo, handler: MessageHandler
    ) -> None:
        acks: list[asyncio.Future[Any] | None] = []

        async def send(value: Any, *, disposed: bool, no_value: bool = False) -> None:
            data = None if no_value else encode_value(value)
            acks.append(await self._reply(None, info, data, disposed=disposed, no_value=no_value))

        try:
            await self._run_stream(iterator, send)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                error = {"status": "error", "message": "The service is shutting down"}
                await self._reply(None, info, None, error=error)
            raise
        except Exception as exc:
            await self._reply(None, info, None, error=error_payload(exc, where=handler.name))
        finally:
            self._stream_slots.release()
            close = getattr(iterator, "aclose", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    await close()
            pending = [a for a in acks if a is not None]
            for result in await asyncio.gather(*pending, return_exceptions=True):
                if isinstance(result, BaseException):
                    logger.error("A Kafka stream reply was not delivered: %r", result)

    async def _run_stream(self, iterator: AsyncIterator[Any], send: Any) -> None:
        """Send every item; the last one carries is-disposed when it comes quickly."""

        async def next_item() -> Any:
            return await anext(iterator)

        try:
            item = await next_item()
        except StopAsyncIteration:
            await send(None, disposed=True, no_value=True)
            return
        while True:
            upcoming = asyncio.ensure_future(next_item())
            sent = False
            try:
                done, _ = await asyncio.wait({upcoming}, timeout=self.stream_end_wait)
                if not done:
                    # A live stream: do not hold its item back any longer.
                    await send(item, disposed=False)
                    sent = True
                try:
                    following = await upcoming
                except StopAsyncIteration:
                    if sent:
                        await send(None, disposed=True, no_value=True)
                    else:
                        await send(item, disposed=True)
                    return
            except BaseException:
                upcoming.cancel()
                if not sent:
                    with contextlib.suppress(Exception):
                        await send(item, disposed=False)
                raise
            if not sent:
                await send(item, disposed=False)
            item = following
