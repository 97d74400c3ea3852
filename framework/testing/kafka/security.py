"""Secured listeners of the local broker: TLS material made with keytool, SASL settings.

:func:`make_tls` writes, with the JDK's ``keytool`` only (no openssl, no Python crypto
package), a throw-away CA, a broker keystore signed by it and a truststore holding it,
plus the CA as PEM for Python clients (``ssl.create_default_context(cafile=...)``).
:func:`listener_properties` returns the ``server.properties`` entries of the secured
listeners, :func:`scram_arguments` the ``StorageTool format --add-scram`` arguments that
put the SCRAM credentials into the KRaft metadata before the first start.
"""

from __future__ import annotations

import ipaddress
import secrets
import shutil
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from framework.testing.kafka.errors import KafkaBrokerError
from framework.testing.kafka.process import run_tool

__all__ = [
    "SASL_MECHANISMS",
    "SECURE_PROTOCOLS",
    "SecureProtocol",
    "TlsFiles",
    "listener_properties",
    "make_tls",
    "normalize_protocols",
    "scram_arguments",
]

SecureProtocol = Literal["SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SECURE_PROTOCOLS: tuple[SecureProtocol, ...] = ("SSL", "SASL_PLAINTEXT", "SASL_SSL")
"""Kafka's names of the listener kinds the local broker can add."""

SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
"""Every SASL listener accepts each of these for the broker's one user."""

_VALIDITY_DAYS = "30"
# keytool is a JVM start per call: C1 only and the serial GC halve each one.
_FAST_JVM = ("-J-XX:TieredStopAtLevel=1", "-J-XX:+UseSerialGC")


def normalize_protocols(security: str | Iterable[str] | None) -> tuple[SecureProtocol, ...]:
    """``"sasl_ssl"``, ``["SSL", "sasl_plaintext"]``... as Kafka's upper-case names.

    Raises:
        KafkaBrokerError: a name that is not SSL, SASL_PLAINTEXT or SASL_SSL.
    """
    if security is None:
        return ()
    names = [security] if isinstance(security, str) else list(security)
    found: list[SecureProtocol] = []
    for name in names:
        upper = name.upper()
        protocol = next((p for p in SECURE_PROTOCOLS if p == upper), None)
        if protocol is None:
            raise KafkaBrokerError(
                f"unknown security {name!r}: use one of "
                f"{', '.join(p.lower() for p in SECURE_PROTOCOLS)}"
            )
        if protocol not in found:
            found.append(protocol)
    return tuple(found)


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """What :func:`make_tls` wrote (all PKCS12 stores share one password)."""

    ca_file: Path
    """The CA certificate, PEM: what a client trusts."""
    keystore: Path
    """The broker's key and certificate chain (PKCS12)."""
    truststore: Path
    """The CA in a PKCS12 truststore, for Java clients."""
    password: str


def keytool_for(java: str) -> str:
    """The ``keytool`` next to *java* (same JDK), else the one on ``PATH``.

    Raises:
        KafkaBrokerError: neither exists.
    """
    found = shutil.which(java)
    if found is not None:
        sibling = Path(found).resolve().parent / "keytool"
        if sibling.exists():
            return str(sibling)
    on_path = shutil.which("keytool")
    if on_path is None:
        raise KafkaBrokerError("keytool (part of the JDK) not found: it makes the TLS certificates")
    return on_path


def make_tls(folder: Path, *, host: str, java: str, timeout: float) -> TlsFiles:
    """Write a CA, a broker keystore for *host* (plus ``localhost``) and a truststore.

    Args:
        folder: Where the files go (created).
        host: The broker's address; the certificate names it (IP or DNS name).
        java: The JDK whose ``keytool`` is used.
        timeout: Seconds each keytool call may take.

    Raises:
        KafkaBrokerError: a keytool call failed (the message has its output).
    """
    folder.mkdir(parents=True, exist_ok=True)
    keytool = keytool_for(java)
    password = secrets.token_hex(12)
    ca_store, ca_pem = folder / "ca.p12", folder / "ca.pem"
    keystore, csr, signed = folder / "broker.p12", folder / "broker.csr", folder / "broker.pem"
    truststore = folder / "truststore.p12"
    names = ["dns:localhost"]
    try:
        ipaddress.ip_address(host)
        names.append(f"ip:{host}")
    except ValueError:
        names.append(f"dns:{host}")
    san = "SAN=" + ",".join(dict.fromkeys(names))

    def tool(*args: str | Path) -> list[str]:
        return [keytool, *_FAST_JVM, *map(str, args), "-storepass", password]

    def keypair(alias: str, store: Path, dname: str, *ext: str) -> list[str]:
        return tool("-genkeypair", "-alias", alias, "-keyalg", "EC", "-groupname", "secp256r1",
                    "-dname", dname, *ext, "-validity", _VALIDITY_DAYS, "-storetype", "PKCS12",
                    "-keystore", store)  # fmt: skip

    def run(*commands: list[str]) -> None:
        # Independent keytool runs at once: each is mostly JVM start-up.
        what = "making TLS certificates with keytool"
        with ThreadPoolExecutor(len(commands)) as pool:
            futures = [
                pool.submit(run_tool, cmd, what=what, cwd=folder, timeout=timeout)
                for cmd in commands
            ]
            for future in futures:
                future.result()

    run(
        keypair("ca", ca_store, "CN=framework local Kafka test CA", "-ext", "bc:c"),
        keypair("broker", keystore, f"CN={host}"),
    )
    run(
        tool("-exportcert", "-rfc", "-alias", "ca", "-keystore", ca_store, "-file", ca_pem),
        tool("-certreq", "-alias", "broker", "-keystore", keystore, "-file", csr),
    )
    sign: list[str | Path] = ["-gencert", "-rfc", "-alias", "ca", "-keystore", ca_store,
                              "-infile", csr, "-outfile", signed, "-ext", san,
                              "-ext", "eku=serverAuth", "-validity", _VALIDITY_DAYS]  # fmt: skip
    run(tool(*sign))
    trust: list[str | Path] = ["-importcert", "-noprompt", "-alias", "ca", "-file", ca_pem]
    run(
        tool(*trust, "-keystore", keystore),
        tool(*trust, "-storetype", "PKCS12", "-keystore", truststore),
    )
    # The CA must be in the keystore first: keytool installs a reply only with its chain.
    run(tool("-importcert", "-alias", "broker", "-file", signed, "-keystore", keystore))
    return TlsFiles(ca_file=ca_pem, keystore=keystore, truststore=truststore, password=password)


def listener_properties(
    ports: Mapping[SecureProtocol, int],
    *,
    host: str,
    tls: TlsFiles | None,
    username: str,
    password: str,
) -> tuple[list[str], dict[str, str]]:
    """The secured listeners' ``server.properties`` entries.

    Returns:
        ``(listeners, properties)``: the ``NAME://host:port`` entries to add to
        ``listeners`` and ``advertised.listeners`` (each listener is named after its
        protocol), and the TLS and SASL settings.
    """
    listeners = [f"{protocol}://{host}:{port}" for protocol, port in ports.items()]
    props: dict[str, str] = {}
    if tls is not None:
        props.update(
            {
                "ssl.keystore.type": "PKCS12",
                "ssl.keystore.location": str(tls.keystore),
                "ssl.keystore.password": tls.password,
                "ssl.key.password": tls.password,
                "ssl.truststore.type": "PKCS12",
                "ssl.truststore.location": str(tls.truststore),
                "ssl.truststore.password": tls.password,
                "ssl.client.auth": "none",
            }
        )
    sasl = [p for p in ports if p.startswith("SASL_")]
    if sasl:
        props["sasl.enabled.mechanisms"] = ",".join(SASL_MECHANISMS)
    for protocol in sasl:
        prefix = f"listener.name.{protocol.lower()}"
        # PLAIN checks against the users listed here; SCRAM against the credentials that
        # `format --add-scram` put into the metadata log.
        props[f"{prefix}.plain.sasl.jaas.config"] = (
            "org.apache.kafka.common.security.plain.PlainLoginModule required "
            f'user_{username}="{password}";'
        )
        for mechanism in SASL_MECHANISMS[1:]:
            props[f"{prefix}.{mechanism.lower()}.sasl.jaas.config"] = (
                "org.apache.kafka.common.security.scram.ScramLoginModule required;"
            )
    return listeners, props


def scram_arguments(username: str, password: str) -> list[str]:
    """``StorageTool format`` arguments creating the SCRAM credentials of *username*."""
    args: list[str] = []
    for mechanism in SASL_MECHANISMS[1:]:
        args += ["--add-scram", f"{mechanism}=[name={username},password={password}]"]
    return args
