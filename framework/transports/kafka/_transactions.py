"""Exactly once: a transactional producer per input partition.

aiokafka has no KIP-447 (a transaction cannot carry the consumer's group generation),
so fencing comes from the transactional id alone, as before Kafka 2.5 and as Faust does
it: partition ``topic[p]`` of group ``g`` is produced for by transactional id
``<prefix><topic>-<p>`` (prefix ``g-`` by default), whoever owns it. A new owner starts
that producer before handling anything: the broker then bumps the id's epoch, aborts
(or finishes) what the previous owner left open and refuses its later writes
(``ProducerFenced``), and only then does the new owner read the committed offset; records
before it that were fetched already (from an offset read earlier) are skipped, so it
never handles again what a transaction of the previous owner committed.

One transaction per partition batch: the outputs of its finished records, their dead
letters, and the offset after the last of them (``send_offsets_to_transaction``), then
``commit_transaction``. Guards against aiokafka's open transaction issues:

- #1004 (a ``TxnOffsetCommit`` racing in-flight produce requests kills the sender on
  Kafka 3.7+) and #1098 (a ``KeyError`` in the sender's offset-commit handler): the
  acks of every output are awaited before the offsets are sent, one offsets call per
  transaction, one transaction at a time per producer; every step runs under a timeout,
  because a dead sender leaves ``commit_transaction`` waiting forever.
- #920 (after an abort the consumer's position stays past the aborted records): a
  failed transaction makes the batch unfinished, and the lane seeks back to its first
  record.

A failed transaction is never retried in place: the producer is dropped and the next
batch starts a new one with the same id, which aborts the old transaction on the broker
(an abort that cannot reach a dead sender cannot hang us either).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from typing import Any

from aiokafka import AIOKafkaProducer  # type: ignore[import-untyped]
from aiokafka.errors import ProducerFenced  # type: ignore[import-untyped]

from framework.exceptions import TransportError
from framework.transports.kafka._admin import stop_quietly
from framework.transports.kafka._produce import Outputs

logger = logging.getLogger("framework.kafka")


class _Txn:
    __slots__ = ("dirty", "open", "producer")

    def __init__(self, producer: Any) -> None:
        self.producer = producer
        self.open = False
        self.dirty = False  # something was (or may have been) produced in the open one


def _ignore(tp: Any) -> None:
    return None


class Transactions(Outputs):
    """Outputs, dead letters and offset commits of each partition batch in one
    transaction.

    Args:
        consumer: the group's consumer (``committed``, ``seek``, ``pause``).
        bootstrap_servers: the cluster.
        group_id: the consumer group whose offsets the transactions commit.
        prefix: transactional ids are ``<prefix><topic>-<partition>``.
        producer_options: ``AIOKafkaProducer`` options for the per-partition producers.
        timeout: seconds one transaction may stay open, and each step may take (also
            the broker's ``transaction_timeout_ms``).
        aborted: told (with the partition) when a transaction is given up.
    """

    transactional = True

    def __init__(
        self,
        consumer: Any,
        *,
        bootstrap_servers: str | list[str],
        group_id: str,
        prefix: str,
        producer_options: Mapping[str, Any],
        timeout: float,
        aborted: Callable[[Any], None] = _ignore,
    ) -> None:
        super().__init__(None)
        self._consumer = consumer
        self._bootstrap = bootstrap_servers
        self.group_id = group_id
        self.prefix = prefix
        self._options = {
            **producer_options,
            "acks": "all",
            "enable_idempotence": True,
            "transaction_timeout_ms": int(timeout * 1000),
        }
        self.timeout = timeout
        self._aborted = aborted
        self._txns: dict[Any, _Txn] = {}
        self._opening: dict[Any, asyncio.Task[_Txn]] = {}
        self._starts: dict[Any, int] = {}
        # Partitions whose producer was fenced: another instance owns them now, and a
        # new producer of ours would fence it in turn. Cleared when the group next
        # assigns or revokes them.
        self._fenced: set[Any] = set()

    def transactional_id(self, tp: Any) -> str:
        return f"{self.prefix}{tp.topic}-{tp.partition}"

    # -- group membership ------------------------------------------------------------

    async def prepare(self, partitions: set[Any]) -> None:
        """As partitions are assigned: fence their earlier owners now rather than at
        the first batch (aiokafka may fetch before this runs: ``begin`` waits)."""
        self._fenced.difference_update(partitions)
        opened = await asyncio.gather(
            *(self._ready(tp) for tp in partitions), return_exceptions=True
        )
        for failure in (r for r in opened if isinstance(r, BaseException)):
            # Not fatal: the first batch tries again (and stays unfinished until then).
            logger.error("Kafka transactional producer did not start: %r", failure)

    async def release(self, partitions: set[Any]) -> None:
        """After revoked partitions' lanes ended (their batches committed or not):
        stop their producers."""
        for tp in partitions:
            self._fenced.discard(tp)
            task = self._opening.pop(tp, None)
            if task is not None:
                task.cancel()
            self._starts.pop(tp, None)
        await asyncio.gather(*(self._drop(tp) for tp in partitions))

    async def stop(self) -> None:
        await self.release({*self._txns, *self._opening})

    def _ready(self, tp: Any) -> asyncio.Future[_Txn]:
        """The partition's producer, started once however many ask at the same time."""
        txn = self._txns.get(tp)
        if txn is not None:
            done: asyncio.Future[_Txn] = asyncio.get_running_loop().create_future()
            done.set_result(txn)
            return done
        task = self._opening.get(tp)
        if task is None:
            task = self._opening[tp] = asyncio.create_task(self._open(tp))
            task.add_done_callback(lambda _: self._opening.pop(tp, None))
        return asyncio.shield(task)

    async def _open(self, tp: Any) -> _Txn:
        """Start ``tp``'s producer and its first transaction (which fences the previous
        owner: the broker ends its open transaction first), then note the committed
        offset as that left it: records before it are done (see ``begin``)."""
        producer = AIOKafkaProducer(
            bootstrap_servers=self._bootstrap,
            transactional_id=self.transactional_id(tp),
            **self._options,
        )
        try:
            async with asyncio.timeout(self.timeout):
                await producer.start()
                # Waits for the producer id: the broker has fenced the previous epoch.
                await producer.begin_transaction()
                committed = await self._consumer.committed(tp)
        except BaseException:
            await stop_quietly("KafkaTransport", producer, timeout=self.timeout)
            raise
        if committed is not None:
            self._starts[tp] = committed
        txn = self._txns[tp] = _Txn(producer)
        txn.open = True
        return txn

    async def _drop(self, tp: Any) -> None:
        txn = self._txns.pop(tp, None)
        if txn is not None:
            await stop_quietly("KafkaTransport", txn.producer, timeout=self.timeout)

    # -- transactions ----------------------------------------------------------------

    async def begin(self, lane: Any, records: list[Any]) -> int:
        """Before a batch: wait until the partition's earlier owner is fenced. Records
        fetched from a position read before that (aiokafka fetches while the
        assignment is still being prepared) may be ones whose outputs the earlier
        owner's last transaction committed: they are skipped, as finished."""
        if lane.tp in self._fenced:
            raise TransportError(f"{lane.tp} was fenced: waiting for the group to take it")
        await self._ready(lane.tp)
        start = self._starts.get(lane.tp)
        if start is None:
            return 0
        if records[-1].offset + 1 >= start:
            del self._starts[lane.tp]  # this batch reaches the start: no more to skip
        return sum(1 for r in records if r.offset < start)

    async def producer(self, tp: Any) -> Any:
        txn = self._txns.get(tp)
        if txn is None:
            txn = await self._ready(tp)
        if not txn.open:
            async with asyncio.timeout(self.timeout):
                await txn.producer.begin_transaction()
            txn.open = True
        txn.dirty = True
        return txn.producer

    async def finish(self, lane: Any, records: list[Any], finished: int) -> int:
        """Commit the outputs and the offset of ``records[:finished]`` in one
        transaction; returns ``finished``, or 0 if the transaction failed (aborted)."""
        tp = lane.tp
        acks = self._acks.pop(tp, None)
        txn = self._txns.get(tp)
        if not finished:
            if txn is not None and txn.dirty:
                await self._abort(tp, "its batch finished no record")
            return 0
        try:
            async with asyncio.timeout(self.timeout):
                producer = await self.producer(tp)
                if acks:
                    await asyncio.gather(*(ack for _, ack in acks))
                offsets = {tp: records[finished - 1].offset + 1}
                await producer.send_offsets_to_transaction(offsets, self.group_id)
                await producer.commit_transaction()
        except ProducerFenced:
            logger.error(
                "Kafka transactional id %r was fenced: another instance owns %s now; "
                "pausing it until the group reassigns it",
                self.transactional_id(tp),
                tp,
            )
            with contextlib.suppress(Exception):
                self._consumer.pause(tp)
            self._fenced.add(tp)
            await self._abort(tp, "it was fenced")
            return 0
        except Exception as exc:  # KafkaError, TimeoutError, aiokafka's state errors
            await self._abort(tp, repr(exc))
            return 0
        txn = self._txns[tp]
        txn.open = txn.dirty = False
        return finished

    async def _abort(self, tp: Any, why: str) -> None:
        logger.warning(
            "Kafka transaction of %s aborted (%s); its batch will be handled again", tp, why
        )
        self._aborted(tp)
        # Dropping the producer aborts for us: the next one with this id ends (aborts)
        # whatever the dropped one left open on the broker.
        await self._drop(tp)
