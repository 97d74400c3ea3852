"""``KafkaSecurity``: how the transport, client and relay authenticate to the brokers.

One object holds the connection security (TLS, SASL) and is the one place that turns
it into client settings: :meth:`KafkaSecurity.aiokafka_options` gives the keyword
arguments every aiokafka consumer, producer and admin client of the framework gets
(through ``_admin.split_options``). An engine with other names (librdkafka's
``security.protocol``, ``sasl.mechanisms``, ``ssl.ca.location``...) maps from the same
fields.

:func:`explain_connect_failure` turns a failed connection into a sentence naming the
cause (refused login, untrusted certificate, TLS or SASL mismatch): aiokafka reports
only "Unable to bootstrap" and logs the cause.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from framework.exceptions import ConfigurationError, TransportError

__all__ = [
    "KafkaSecurity",
    "SecurityProtocol",
    "connect_error",
    "explain_connect_failure",
    "start_within",
]

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
_PASSWORD_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
_MECHANISMS = (*_PASSWORD_MECHANISMS, "GSSAPI", "OAUTHBEARER")

SECURITY_OPTIONS = frozenset(
    {"security_protocol", "ssl_context", "sasl_mechanism", "sasl_plain_username",
     "sasl_plain_password"}
)  # fmt: skip
"""aiokafka options that only :class:`KafkaSecurity` sets (one way to configure them)."""


@dataclass(frozen=True, slots=True)
class KafkaSecurity:
    """Connection security for ``KafkaTransport``, ``KafkaClient`` and ``KafkaRelay``
    (``security=...``); every Kafka client they create uses it.

    Args:
        protocol: ``"PLAINTEXT"`` (default), ``"SSL"``, ``"SASL_PLAINTEXT"`` or
            ``"SASL_SSL"`` (any case), as the broker's listener is configured.
        mechanism: SASL mechanism for the ``SASL_*`` protocols: ``"PLAIN"``,
            ``"SCRAM-SHA-256"``, ``"SCRAM-SHA-512"`` (with *username* and *password*), or
            ``"GSSAPI"`` / ``"OAUTHBEARER"`` (their settings, such as
            ``sasl_oauth_token_provider``, go in the aiokafka ``**options``).
        username: SASL user.
        password: SASL password (left out of ``repr``).
        ca_file: PEM file of the CA(s) that signed the brokers' certificates, for the
            ``*SSL`` protocols; ``None`` with no *ssl_context* trusts the system's CAs.
        ssl_context: A ready ``ssl.SSLContext`` instead of *ca_file* (client
            certificates for mutual TLS, pinned ciphers...).

    Raises:
        ConfigurationError: an unknown protocol or mechanism, SASL settings without a
            ``SASL_*`` protocol (or the reverse), TLS settings without TLS, or both
            *ca_file* and *ssl_context*.
    """

    protocol: str = "PLAINTEXT"
    mechanism: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: str | os.PathLike[str] | None = None
    ssl_context: ssl.SSLContext | None = None

    def __post_init__(self) -> None:
        protocol = self.protocol.upper()
        if protocol not in _PROTOCOLS:
            raise ConfigurationError(
                f"KafkaSecurity protocol must be one of {', '.join(_PROTOCOLS)}, "
                f"not {self.protocol!r}"
            )
        object.__setattr__(self, "protocol", protocol)
        sasl, tls = protocol.startswith("SASL_"), protocol.endswith("SSL")
        if self.mechanism is not None:
            object.__setattr__(self, "mechanism", self.mechanism.upper())
        if sasl:
            if self.mechanism not in _MECHANISMS:
                raise ConfigurationError(
                    f"KafkaSecurity {protocol} needs mechanism= one of "
                    f"{', '.join(_MECHANISMS)}, not {self.mechanism!r}"
                )
            if self.mechanism in _PASSWORD_MECHANISMS and (not self.username or not self.password):
                raise ConfigurationError(
                    f"KafkaSecurity {self.mechanism} needs username= and password="
                )
        elif self.mechanism is not None or self.username is not None or self.password is not None:
            raise ConfigurationError(
                f"KafkaSecurity mechanism, username and password need a SASL_PLAINTEXT or "
                f"SASL_SSL protocol, not {protocol}"
            )
        if not tls and (self.ca_file is not None or self.ssl_context is not None):
            raise ConfigurationError(
                f"KafkaSecurity ca_file and ssl_context need an SSL or SASL_SSL protocol, "
                f"not {protocol}"
            )
        if self.ca_file is not None and self.ssl_context is not None:
            raise ConfigurationError("KafkaSecurity takes ca_file or ssl_context, not both")
        if self.ca_file is not None and not os.path.isfile(self.ca_file):
            raise ConfigurationError(f"KafkaSecurity ca_file {str(self.ca_file)!r} is not a file")

    @property
    def tls(self) -> bool:
        """Whether connections are encrypted (``SSL``, ``SASL_SSL``)."""
        return self.protocol.endswith("SSL")

    def context(self) -> ssl.SSLContext | None:
        """The TLS context clients use (``None`` without TLS): *ssl_context*, or a
        verifying context trusting *ca_file* (or the system's CAs)."""
        if not self.tls:
            return None
        if self.ssl_context is not None:
            return self.ssl_context
        return ssl.create_default_context(cafile=self.ca_file)

    def aiokafka_options(self) -> dict[str, Any]:
        """The keyword arguments of every aiokafka client (consumer, producer, admin)."""
        options: dict[str, Any] = {"security_protocol": self.protocol}
        if self.tls:
            options["ssl_context"] = self.context()
        if self.mechanism is not None:
            options["sasl_mechanism"] = self.mechanism
        if self.username is not None:
            options["sasl_plain_username"] = self.username
        if self.password is not None:
            options["sasl_plain_password"] = self.password
        return options

    def librdkafka_config(self) -> dict[str, Any]:
        """The same settings by librdkafka's names, for ``engine="confluent"``.

        Raises:
            ConfigurationError: an *ssl_context*, which librdkafka cannot take (pass
                *ca_file*, or librdkafka's ``ssl.*`` settings in ``consumer_options``
                and ``producer_options``).
        """
        if self.ssl_context is not None:
            raise ConfigurationError(
                'KafkaSecurity ssl_context has no librdkafka form (engine="confluent"): '
                "pass ca_file=, or librdkafka's ssl.* settings in consumer_options and "
                "producer_options"
            )
        config: dict[str, Any] = {"security.protocol": self.protocol}
        if self.ca_file is not None:
            config["ssl.ca.location"] = os.fspath(self.ca_file)
        if self.mechanism is not None:
            config["sasl.mechanisms"] = self.mechanism
        if self.username is not None:
            config["sasl.username"] = self.username
        if self.password is not None:
            config["sasl.password"] = self.password
        return config

    def describe(self) -> str:
        """``"SASL_SSL, SCRAM-SHA-256 as 'alice'"``: for messages (never the password)."""
        if self.mechanism is None:
            return self.protocol
        who = f" as {self.username!r}" if self.username else ""
        return f"{self.protocol}, {self.mechanism}{who}"


async def start_within(
    client: Any,
    timeout: float,
    what: str,
    bootstrap_servers: str | list[str],
    security: KafkaSecurity | None,
) -> None:
    """Start an aiokafka client, giving up after *timeout* seconds.

    aiokafka waits ``request_timeout_ms`` (40 s) for a server that accepts connections
    but never answers (a wrong port, a TLS client waiting for a handshake).

    Raises:
        TransportError: no answer within *timeout*; starts with *what*.
    """
    try:
        async with asyncio.timeout(timeout):
            await client.start()
    except TimeoutError:
        over = security.describe() if security is not None else "PLAINTEXT"
        raise TransportError(
            f"{what} {_joined(bootstrap_servers)}: no answer within {timeout:g} s over "
            f"{over}; is that a Kafka listener of this protocol?"
        ) from None


async def connect_error(
    what: str,
    exc: BaseException,
    bootstrap_servers: str | list[str],
    security: KafkaSecurity | None,
    options: Mapping[str, Any],
    timeout: float,
) -> TransportError:
    """The ``TransportError`` to raise when a client of *what* could not connect.

    aiokafka reports a failed bootstrap as "Unable to bootstrap from ..." and only logs
    why; then one more connection attempt with the same settings finds the cause
    (:func:`explain_connect_failure`) so the message names it.

    Args:
        what: ``"Kafka transport could not start on"``...: the message starts with it.
        exc: What aiokafka raised.
        bootstrap_servers: The cluster.
        security: The settings used (``None``: PLAINTEXT).
        options: The failed client's aiokafka options (they include *security*'s, and
            the settings of GSSAPI and OAUTHBEARER).
        timeout: Seconds the extra attempt may take.
    """
    from aiokafka.errors import KafkaConnectionError  # type: ignore[import-untyped]

    cause = None
    if isinstance(exc, KafkaConnectionError):
        cause = await explain_connect_failure(
            bootstrap_servers, security or KafkaSecurity(), options, timeout
        )
    return TransportError(f"{what} {_joined(bootstrap_servers)}: {cause or repr(exc)}")


async def explain_connect_failure(
    bootstrap_servers: str | list[str],
    security: KafkaSecurity,
    options: Mapping[str, Any],
    timeout: float,
) -> str | None:
    """Connect once to the first bootstrap server with *security* and say why that
    fails, or ``None`` if it works (then the failure was elsewhere).

    Args:
        bootstrap_servers: The cluster, as the client got it.
        security: The settings the failed client used.
        options: Its aiokafka options (those a connection takes are used).
        timeout: Seconds the attempt may take.
    """
    from aiokafka.conn import create_conn  # type: ignore[import-untyped]
    from aiokafka.errors import (
        IllegalSaslStateError,
        KafkaConnectionError,
        SaslAuthenticationFailed,
        UnsupportedSaslMechanismError,
    )
    from aiokafka.protocol.metadata import MetadataRequest  # type: ignore[import-untyped]

    first = bootstrap_servers if isinstance(bootstrap_servers, str) else bootstrap_servers[0]
    where = first.split(",")[0].strip()
    host, _, port = where.rpartition(":")
    protocol = security.protocol
    mismatch = (
        f"the listener at {where} does not speak {protocol}; set "
        "KafkaSecurity(protocol=...) to the listener's PLAINTEXT, SSL, SASL_PLAINTEXT or "
        "SASL_SSL"
    )
    accepted = inspect.signature(create_conn).parameters
    settings = {k: v for k, v in options.items() if k in accepted and k != "request_timeout_ms"}
    try:
        async with asyncio.timeout(timeout):
            conn = await create_conn(
                host, int(port), request_timeout_ms=max(1, int(timeout * 1000)), **settings
            )
            try:
                await conn.send(MetadataRequest([]))
            finally:
                conn.close()
    except SaslAuthenticationFailed as exc:
        return (
            f"Kafka authentication failed for user {security.username!r} "
            f"({security.mechanism}): {_broker_message(exc)}"
        )
    except UnsupportedSaslMechanismError:
        return (
            f"the broker at {where} does not accept SASL mechanism {security.mechanism} "
            "on this listener; use one of those its sasl.enabled.mechanisms lists"
        )
    except IllegalSaslStateError:
        return f"{mismatch} (it refused the SASL handshake: is it SSL or PLAINTEXT?)"
    except ssl.SSLCertVerificationError as exc:
        return (
            f"the TLS certificate of {where} is not trusted ({exc.verify_message}); pass "
            "the CA that signed it as KafkaSecurity(ca_file=...)"
        )
    except (ssl.SSLError, ConnectionResetError) as exc:
        return f"{mismatch} (the TLS handshake failed: {exc!r})"
    except KafkaConnectionError as exc:
        if "closed" in str(exc):
            # A TLS listener drops a plaintext request, a SASL one a request sent
            # before the SASL handshake.
            return f"{mismatch} (it closed the connection at the first request)"
        return f"cannot connect over {security.describe()}: {exc!r}"
    except TimeoutError:
        return f"{where} did not answer within {timeout:g} s over {security.describe()}"
    except (OSError, ValueError) as exc:
        return f"cannot connect over {security.describe()}: {exc!r}"
    return None


def _joined(bootstrap_servers: str | list[str]) -> str:
    return bootstrap_servers if isinstance(bootstrap_servers, str) else ",".join(bootstrap_servers)


def _broker_message(exc: BaseException) -> str:
    # "[Error 58] SaslAuthenticationFailed: <the broker's text>": keep the broker's text.
    text = str(exc)
    return text.split(": ", 1)[1] if ": " in text else text or type(exc).__name__
