"""Every setting of the example app, read from the environment (and ``./.env`` if there)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """``KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092 PORT=8080 python -m example_app``."""

    model_config = SettingsConfigDict(env_file=".env")

    kafka_bootstrap_servers: str | None = None
    """Serve handlers from Kafka too (and relay publishes between instances) when set."""
    kafka_group_id: str = "example-orders"
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    """TLS and SASL (the names ``framework kafka start --security ...`` prints)."""
    kafka_ssl_ca_file: str | None = None
    kafka_sasl_mechanism: str | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    log_format: Literal["json", "text"] = "json"
    feed_size: int = Field(100, ge=1, le=10_000)
    """How many notifications the feed keeps."""
