"""Offset bookkeeping, retry policy, subscriptions, option routing and limits: pure, no
broker."""

from __future__ import annotations

import importlib.util
import re
import ssl
import subprocess
import sys
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from framework.exceptions import ConfigurationError
from framework.transports.kafka import (
    KafkaClient,
    KafkaRelay,
    KafkaSecurity,
    KafkaTable,
    KafkaTransport,
)
from framework.transports.kafka._admin import split_options
from framework.transports.kafka._offsets import OffsetTracker
from framework.transports.kafka._retry import RetryPolicy, is_poison
from framework.transports.kafka.server import subscription_regex


def tracker(every: int = 10) -> OffsetTracker[str]:
    return OffsetTracker(commit_every=every)


def test_commit_is_due_by_count() -> None:
    t = tracker(every=10)
    assert not t.done("p0", 5, 4)
    assert t.done("p1", 20, 6)  # 10 records finished
    assert t.take() == {"p0": 5, "p1": 20}
    assert t.uncommitted == 0
    assert t.take() == {}


def test_watermarks_never_move_backwards() -> None:
    t = tracker()
    t.done("p", 10)
    t.done("p", 7)
    assert t.watermark("p") == 10
    assert t.take() == {"p": 10}
    t.done("p", 9)  # below what was committed: nothing to commit
    t.seed("p", 10)
    assert t.take() == {}
    assert t.watermark("p") == 10


def test_failed_commit_is_restored_below_newer_progress() -> None:
    t = tracker()
    t.done("p", 10)
    taken = t.take()
    t.done("p", 15)  # progress made while the commit was in flight
    t.restore(taken)
    assert t.take() == {"p": 15}
    t2 = tracker()
    t2.done("q", 3)
    t2.restore(t2.take())
    assert t2.take() == {"q": 3}


def test_take_some_partitions_and_forget_revoked() -> None:
    t = tracker(every=5)
    t.done("a", 4, 3)
    t.done("b", 8, 3)
    assert t.take(["a"]) == {"a": 4}
    assert t.uncommitted == 3
    t.forget(["b"])
    assert t.uncommitted == 0 and t.watermark("b") is None
    assert t.take() == {}


def test_seed_pins_a_new_partitions_position() -> None:
    t = tracker()
    t.seed("p", 100)
    assert t.uncommitted == 0
    assert t.take() == {"p": 100}


def test_tracker_rejects_nonsense_limits() -> None:
    with pytest.raises(ConfigurationError, match="commit_every"):
        OffsetTracker(commit_every=0)


def test_retry_backoff_doubles_up_to_the_ceiling() -> None:
    policy = RetryPolicy(max_retries=5, retry_backoff=0.1, retry_backoff_max=0.5, jitter=0)
    assert [policy.delay(n) for n in range(1, 6)] == [0.1, 0.2, 0.4, 0.5, 0.5]
    jittered = RetryPolicy(max_retries=5, retry_backoff=0.1, retry_backoff_max=0.5)
    assert all(0.9 * 0.5 <= jittered.delay(n) <= 0.5 for n in range(4, 30))


def test_handler_extras_override_the_transport_defaults() -> None:
    base = RetryPolicy(max_retries=3, retry_backoff=0.2)
    policy = base.with_extras({"max_retries": 0, "dlq": "dead", "other": 1}, "H.h")
    assert policy == RetryPolicy(max_retries=0, retry_backoff=0.2, dlq="dead")
    assert base.with_extras({}, "H.h") is base
    with pytest.raises(ConfigurationError, match=r"H\.h"):
        base.with_extras({"max_retries": -1}, "H.h")
    with pytest.raises(ConfigurationError):
        RetryPolicy(dlq=True)


def test_dead_letter_topic() -> None:
    assert RetryPolicy().dead_letter_topic("orders", ".dlq") == "orders.dlq"
    assert RetryPolicy(dlq="dead").dead_letter_topic("orders", ".dlq") == "dead"
    assert RetryPolicy(dlq=False).dead_letter_topic("orders", ".dlq") is None


class Model(BaseModel):
    id: int


def test_poison_means_undecodable_or_invalid() -> None:
    with pytest.raises(ValidationError) as info:
        Model.model_validate_json(b"{")
    assert is_poison(info.value)
    assert is_poison(UnicodeDecodeError("utf-8", b"\xff", 0, 1, "bad"))
    assert not is_poison(RuntimeError("database down"))


def test_wildcard_subscriptions_skip_replies_dead_letters_and_internals() -> None:
    rx = re.compile(subscription_regex(["orders.*", "audit.#", "exact.dlq"]))
    assert rx.match("orders.created")
    assert rx.match("audit.eu.login")
    assert rx.match("exact.dlq")  # named exactly: served
    assert not rx.match("orders.created.reply") and not rx.match("orders.x.dlq")
    assert not rx.match("orders.dlq")
    assert not rx.match("__consumer_offsets") and not rx.match("ordersXcreated")
    assert re.compile(subscription_regex(["a.b"])).match("a.b")
    assert not re.compile(subscription_regex(["a.b"])).match("a.bc")


def test_options_are_routed_to_the_aiokafka_classes_that_take_them() -> None:
    consumer, producer, admin = split_options(
        {"auto_offset_reset": "earliest", "linger_ms": 5, "client_id": "svc"}, "T"
    )
    assert consumer == {"auto_offset_reset": "earliest", "client_id": "svc"}
    assert producer == {"linger_ms": 5, "client_id": "svc"}
    assert admin == {"client_id": "svc"}
    with pytest.raises(ConfigurationError, match="unknown option 'nope'"):
        split_options({"nope": 1}, "T")
    with pytest.raises(ConfigurationError, match="set by the framework"):
        split_options({"enable_auto_commit": True}, "T")


@pytest.mark.parametrize(
    "options",
    [
        {"max_batch_size": 0},
        {"max_pending_batches": 0},
        {"max_concurrency": 0},
        {"max_streams": 0},
        {"commit_every": 0},
        {"commit_interval": 0},
        {"max_retries": -1},
        {"retry_jitter": 2},
    ],
)
def test_bad_transport_limits_are_configuration_errors(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError, match=next(iter(options)).split("_")[-1]):
        KafkaTransport(**options)


@pytest.mark.parametrize("options", [{"max_pending": 0}, {"stream_buffer": 0}])
def test_bad_client_limits_are_configuration_errors(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError, match=next(iter(options))):
        KafkaClient(**options)


def test_the_confluent_engine_is_imported_only_when_asked_for() -> None:
    """A fresh interpreter: the default engine never loads confluent_kafka."""
    code = (
        "import sys\n"
        "from framework.transports.kafka import KafkaClient, KafkaRelay, KafkaTransport\n"
        "KafkaTransport(); KafkaClient(); KafkaRelay()\n"
        "assert 'confluent_kafka' not in sys.modules, 'loaded'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_the_confluent_engine_without_its_package_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "confluent_kafka" else real(name, *a),
    )
    for make in (KafkaTransport, KafkaClient, KafkaRelay):
        with pytest.raises(ConfigurationError, match=r"framework\[confluent\]"):
            make(engine="confluent")


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"exactly_once": True}, "exactly_once"),
        ({"tables": [KafkaTable("t")]}, "tables"),
        (
            {"security": KafkaSecurity(protocol="SSL", ssl_context=ssl.create_default_context())},
            "ssl_context has no librdkafka form",
        ),
        ({"engine": "kafkajs"}, "kafkajs"),
    ],
)
def test_what_the_confluent_engine_cannot_do_fails_at_construction(
    options: dict[str, Any], named: str
) -> None:
    with pytest.raises(ConfigurationError, match=named):
        KafkaTransport(**{"engine": "confluent", **options})
