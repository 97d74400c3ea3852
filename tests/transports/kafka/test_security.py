"""The Kafka transport, client and relay on a real broker that requires TLS, SASL or both.

One local broker for the session (``kafka_secure_broker``) has an SSL, a SASL_PLAINTEXT
and a SASL_SSL listener (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512); every client in a test
bootstraps from the secured listener only, so every connection it makes (consumer,
producers, admin) goes through it. Misconfigured clients must fail fast, naming why.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
import uuid
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer  # type: ignore[import-untyped]
from aiokafka.abc import AbstractTokenProvider  # type: ignore[import-untyped]

from framework import (
    Application,
    controller,
    create_app,
    event_pattern,
    message_pattern,
    module,
)
from framework.exceptions import ConfigurationError, TransportError
from framework.testing.kafka import LocalKafkaBroker
from framework.transports.base import Transport
from framework.transports.kafka import (
    KafkaClient,
    KafkaRelay,
    KafkaSecurity,
    KafkaTransport,
    TumblingWindow,
)
from tests.timing import TIME_FACTOR
from tests.transports.kafka.test_produce import read_all

pytestmark = pytest.mark.kafka

LIMIT = 30 * TIME_FACTOR  # seconds any one wait in these tests may take
FAIL_FAST = 10 * TIME_FACTOR  # a misconfigured client must have failed by then

# (listener, SASL mechanism): every protocol, and every mechanism at least once.
SECURED = [
    ("ssl", None),
    ("sasl_plaintext", "SCRAM-SHA-256"),
    ("sasl_ssl", "SCRAM-SHA-512"),
    ("sasl_ssl", "PLAIN"),
]
# The confluent engine gets the same settings by librdkafka's names.
ENGINES = [(*case, "aiokafka") for case in SECURED] + [
    ("ssl", None, "confluent"),
    ("sasl_ssl", "SCRAM-SHA-512", "confluent"),
]


def name(prefix: str) -> str:
    return f"{prefix}.{uuid.uuid4().hex[:10]}"


def connection(
    broker: LocalKafkaBroker, protocol: str, mechanism: str | None = "SCRAM-SHA-512"
) -> tuple[str, KafkaSecurity]:
    return (
        broker.secure_bootstrap_servers(protocol),
        broker.client_security(protocol, mechanism=mechanism or "SCRAM-SHA-512"),
    )


def server(bootstrap: str, security: KafkaSecurity | None, **options: Any) -> KafkaTransport:
    settings: dict[str, Any] = {"group_id": name("g"), "start_timeout": LIMIT, **options}
    return KafkaTransport(bootstrap_servers=bootstrap, security=security, **settings)


async def read(bootstrap: str, security: KafkaSecurity, topic: str, count: int) -> list[Any]:
    """The committed records of ``topic`` (at least ``count``), read over ``security``."""
    return await read_all(bootstrap, topic, count, **security.aiokafka_options())


@pytest.mark.parametrize(("protocol", "mechanism", "engine"), ENGINES)
async def test_events_and_request_reply_over_a_secured_listener(
    kafka_secure_broker: LocalKafkaBroker, protocol: str, mechanism: str | None, engine: Any
) -> None:
    bootstrap, security = connection(kafka_secure_broker, protocol, mechanism)
    events, requests = name("secure.events"), name("secure.get")
    seen: list[dict[str, Any]] = []
    arrived = asyncio.Event()

    @controller()
    class Orders:
        @event_pattern(events)
        async def on_event(self, order: dict[str, Any]) -> None:
            seen.append(order)
            arrived.set()

        @message_pattern(requests)
        async def get(self, order_id: int) -> dict[str, Any]:
            return {"id": order_id, "via": protocol}

    @module(controllers=[Orders])
    class App:
        pass

    transport = server(bootstrap, security, engine=engine)
    app = create_app(App, transports=[transport])
    client = KafkaClient(bootstrap_servers=bootstrap, security=security, engine=engine)
    async with app, client:
        await client.emit(events, {"id": 7})
        async with asyncio.timeout(LIMIT):
            await arrived.wait()
        assert await client.send(requests, 8, timeout=LIMIT) == {"id": 8, "via": protocol}
        # The transport's own client connects the same way.
        own = transport.create_client()
        async with own:
            assert await own.send(requests, 9, timeout=LIMIT) == {"id": 9, "via": protocol}
    assert seen == [{"id": 7}]


async def test_failing_events_are_dead_lettered_over_sasl_ssl(
    kafka_secure_broker: LocalKafkaBroker,
) -> None:
    """Retries and the dead-letter producer (and the admin creating the .dlq topic)
    use the security settings too."""
    bootstrap, security = connection(kafka_secure_broker, "sasl_ssl")
    topic = name("secure.fails")

    @controller()
    class Failing:
        @event_pattern(topic)
        async def on_event(self, order: dict[str, Any]) -> None:
            raise ValueError(f"cannot take order {order['id']}")

    @module(controllers=[Failing])
    class App:
        pass

    transport = server(bootstrap, security, max_retries=1, retry_backoff=0.01)
    async with (
        create_app(App, transports=[transport]),
        KafkaClient(bootstrap_servers=bootstrap, security=security) as client,
    ):
        await client.emit(topic, {"id": 3})
        [dead] = await read(bootstrap, security, f"{topic}.dlq", 1)
    assert json.loads(dead.value) == {"id": 3}
    assert dict(dead.headers)["kafka_dlt-exception-message"] == b"cannot take order 3"


class Recorder(Transport):
    """A push transport that keeps what ``app.publish`` hands it (on this instance)."""

    name = "recorder"

    def __init__(self) -> None:
        self.got: list[tuple[str, bytes, str | None]] = []
        self.arrived = asyncio.Event()

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def publish(self, pattern: str, payload: bytes, event_id: str | None) -> None:
        self.got.append((pattern, payload, event_id))
        self.arrived.set()


@pytest.mark.parametrize("protocol", ["ssl", "sasl_plaintext", "sasl_ssl"])
async def test_app_publish_reaches_every_instance_through_a_secured_relay(
    kafka_secure_broker: LocalKafkaBroker, protocol: str
) -> None:
    bootstrap, security = connection(kafka_secure_broker, protocol)
    topic = name("secure.broadcast")

    @module()
    class App:
        pass

    def instance() -> tuple[Application, Recorder]:
        recorder = Recorder()
        relay = KafkaRelay(
            bootstrap_servers=bootstrap, topic=topic, start_timeout=LIMIT, security=security
        )
        return create_app(App, transports=[recorder], relay=relay), recorder

    (a, seen_a), (b, seen_b) = instance(), instance()
    async with a, b:
        await a.publish("orders.updated", {"id": 1})
        async with asyncio.timeout(LIMIT):
            await seen_a.arrived.wait()
            await seen_b.arrived.wait()
    assert seen_a.got == seen_b.got == [("orders.updated", b'{"id":1}', "0-0")]


async def test_exactly_once_consume_transform_produce_over_sasl_ssl(
    kafka_secure_broker: LocalKafkaBroker,
) -> None:
    """The per-partition transactional producers and the read_committed consumer
    authenticate too: every input's output appears once, committed."""
    bootstrap, security = connection(kafka_secure_broker, "sasl_ssl", "SCRAM-SHA-256")
    source, out, count = name("secure.in"), name("secure.out"), 20

    @controller()
    class Doubler:
        @event_pattern(source, emits=out)
        async def double(self, record: dict[str, Any]) -> dict[str, Any]:
            return {"id": record["id"], "doubled": 2 * record["id"]}

    @module(controllers=[Doubler])
    class App:
        pass

    transport = server(bootstrap, security, exactly_once=True)
    async with (
        create_app(App, transports=[transport]),
        KafkaClient(bootstrap_servers=bootstrap, security=security) as client,
    ):
        for i in range(count):
            await client.emit(source, {"id": i})
        outputs = await read(bootstrap, security, out, count)
    assert sorted(json.loads(r.value)["id"] for r in outputs) == list(range(count))
    assert transport.aborted_transactions == 0


async def test_window_state_comes_back_from_its_changelog_over_sasl_ssl(
    kafka_secure_broker: LocalKafkaBroker,
) -> None:
    """The changelog topics' admin client, writer and reader log in too: a window
    opened before a restart is closed after it with the count from before."""
    bootstrap, security = connection(kafka_secure_broker, "sasl_ssl")
    clicks, counts, group = name("secure.clicks"), name("secure.counts"), name("g")
    base = 1_700_000_000_000  # ms, a window boundary

    @controller()
    class Counts:
        @event_pattern(clicks, emits=counts, window=TumblingWindow(10))
        async def per_window(self, click: dict[str, Any]) -> int:
            return 1

    @module(controllers=[Counts])
    class App:
        pass

    def restartable() -> KafkaTransport:
        return server(bootstrap, security, group_id=group, auto_offset_reset="earliest")

    async def click_at(ms: int) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, **security.aiokafka_options())
        await producer.start()
        try:
            await producer.send_and_wait(clicks, b"{}", key=b"k", timestamp_ms=ms)
        finally:
            await producer.stop()

    first = restartable()
    async with create_app(App, transports=[first]):
        await click_at(base + 1000)
        await click_at(base + 2000)
        async with asyncio.timeout(LIMIT):
            while first.window_stats()["state_size"] < 1:  # noqa: ASYNC110 - a counter
                await asyncio.sleep(0.02)
    second = restartable()
    async with create_app(App, transports=[second]):
        await click_at(base + 12_000)  # stream time past the window's end: it closes
        [closed] = await read(bootstrap, security, counts, 1)
    assert json.loads(closed.value)["value"] == 2


# -- misconfigured clients: a clear error, fast ---------------------------------------


class _Token(AbstractTokenProvider):  # type: ignore[misc]
    async def token(self) -> str:
        return "not-a-token"


def _bad_settings(broker: LocalKafkaBroker, case: str) -> tuple[str, KafkaSecurity | None, dict]:
    ca, user = broker.ca_file, broker.sasl_username
    if case == "wrong password":
        security = KafkaSecurity(
            protocol="SASL_SSL",
            ca_file=ca,
            mechanism="SCRAM-SHA-256",
            username=user,
            password="not-the-password",
        )
        return broker.secure_bootstrap_servers("sasl_ssl"), security, {}
    if case == "unknown user":
        security = KafkaSecurity(
            protocol="SASL_PLAINTEXT", mechanism="PLAIN", username="mallory", password="x"
        )
        return broker.secure_bootstrap_servers("sasl_plaintext"), security, {}
    if case == "wrong mechanism":
        security = KafkaSecurity(protocol="SASL_PLAINTEXT", mechanism="OAUTHBEARER")
        options = {"sasl_oauth_token_provider": _Token()}
        return broker.secure_bootstrap_servers("sasl_plaintext"), security, options
    if case == "untrusted certificate":
        # The system's CAs: the broker's own CA is not among them.
        return broker.secure_bootstrap_servers("ssl"), KafkaSecurity(protocol="SSL"), {}
    if case == "plaintext client on a TLS listener":
        return broker.secure_bootstrap_servers("ssl"), None, {}
    if case == "TLS client on a SASL_SSL listener":
        security = KafkaSecurity(protocol="SSL", ca_file=ca)
        return broker.secure_bootstrap_servers("sasl_ssl"), security, {}
    raise AssertionError(case)


BAD = {
    "wrong password": r"Kafka authentication failed for user 'framework' \(SCRAM-SHA-256\): "
    r".*invalid credentials",
    "unknown user": r"Kafka authentication failed for user 'mallory' \(PLAIN\): "
    r".*Invalid username or password",
    "wrong mechanism": r"does not accept SASL mechanism OAUTHBEARER",
    "untrusted certificate": r"TLS certificate of 127\.0\.0\.1:\d+ is not trusted "
    r"\(self.signed certificate in certificate chain\); pass the CA",
    "plaintext client on a TLS listener": r"does not speak PLAINTEXT; set "
    r"KafkaSecurity\(protocol=\.\.\.\)",
    "TLS client on a SASL_SSL listener": r"does not speak SSL; set KafkaSecurity",
}


@pytest.mark.parametrize("case", list(BAD))
async def test_a_misconfigured_transport_fails_start_naming_the_cause(
    kafka_secure_broker: LocalKafkaBroker, case: str
) -> None:
    bootstrap, security, options = _bad_settings(kafka_secure_broker, case)

    @controller()
    class Nothing:
        @event_pattern(name("never"))
        async def on_event(self, payload: Any) -> None:
            return None

    @module(controllers=[Nothing])
    class App:
        pass

    transport = server(bootstrap, security, **options)
    app = create_app(App, transports=[transport])
    started = time.monotonic()
    with pytest.raises(TransportError, match=rf"Kafka transport could not start on .*{BAD[case]}"):
        async with asyncio.timeout(FAIL_FAST):
            await app.start()
    assert time.monotonic() - started < FAIL_FAST
    assert not transport.ready


@pytest.mark.parametrize("case", ["wrong password", "untrusted certificate"])
async def test_a_misconfigured_client_and_relay_fail_naming_the_cause(
    kafka_secure_broker: LocalKafkaBroker, case: str
) -> None:
    bootstrap, security, _ = _bad_settings(kafka_secure_broker, case)
    client = KafkaClient(bootstrap_servers=bootstrap, security=security)
    with pytest.raises(TransportError, match=rf"Kafka client could not connect to .*{BAD[case]}"):
        async with asyncio.timeout(FAIL_FAST):
            await client.connect()
    relay = KafkaRelay(bootstrap_servers=bootstrap, topic=name("b"), security=security)

    async def deliver(pattern: str, payload: bytes, event_id: str | None) -> None:
        return None

    with pytest.raises(TransportError, match=rf"Kafka relay could not start on .*{BAD[case]}"):
        async with asyncio.timeout(FAIL_FAST):
            await relay.start(deliver)


async def test_a_listener_that_never_answers_fails_start_within_start_timeout() -> None:
    """A server that takes the connection and says nothing (a wrong port; a TLS client
    waits for a handshake there): aiokafka alone would wait 40 s."""

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # until the client gives up
        writer.close()

    server_ = await asyncio.start_server(silent, "127.0.0.1", 0)
    bootstrap = f"127.0.0.1:{server_.sockets[0].getsockname()[1]}"

    @controller()
    class Nothing:
        @event_pattern(name("never"))
        async def on_event(self, payload: Any) -> None:
            return None

    @module(controllers=[Nothing])
    class App:
        pass

    limit = 2.0 * TIME_FACTOR
    async with server_:
        for security in (None, KafkaSecurity(protocol="SSL")):
            transport = server(bootstrap, security, start_timeout=limit)
            started = time.monotonic()
            with pytest.raises(TransportError, match=rf"no answer within {limit:g} s over"):
                await create_app(App, transports=[transport]).start()
            assert time.monotonic() - started < limit + FAIL_FAST


def test_security_settings_are_checked_when_built(tmp_path: Any) -> None:
    with pytest.raises(ConfigurationError, match="protocol must be one of"):
        KafkaSecurity(protocol="TLS")
    with pytest.raises(ConfigurationError, match="SCRAM-SHA-256 needs username= and password="):
        KafkaSecurity(protocol="SASL_SSL", mechanism="scram-sha-256", username="u")
    with pytest.raises(ConfigurationError, match="need a SASL_PLAINTEXT or SASL_SSL protocol"):
        KafkaSecurity(protocol="SSL", mechanism="PLAIN", username="u", password="p")
    with pytest.raises(ConfigurationError, match="need an SSL or SASL_SSL protocol"):
        KafkaSecurity(protocol="SASL_PLAINTEXT", mechanism="PLAIN", username="u",
                      password="p", ca_file=__file__)  # fmt: skip
    with pytest.raises(ConfigurationError, match="is not a file"):
        KafkaSecurity(protocol="SSL", ca_file=tmp_path / "missing.pem")
    with pytest.raises(ConfigurationError, match="ca_file or ssl_context, not both"):
        KafkaSecurity(protocol="SSL", ca_file=__file__, ssl_context=ssl.create_default_context())
    # One way to set them: aiokafka's own names are refused with a pointer.
    with pytest.raises(ConfigurationError, match=r"pass 'sasl_mechanism' as security="):
        KafkaTransport(sasl_mechanism="PLAIN")
    secret = KafkaSecurity(protocol="sasl_ssl", mechanism="plain", username="u", password="pw")
    assert (secret.protocol, secret.mechanism) == ("SASL_SSL", "PLAIN")
    assert "pw" not in repr(secret)
