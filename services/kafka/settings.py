"""Connection settings shared by every Kafka client StreamRec creates."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class KafkaSettings(BaseSettings):
    """How to reach the broker; identical for tansu, Apache Kafka or a managed service.

    Security settings pass straight through to every client (confluent-kafka and
    Faust's aiokafka) so a SASL/TLS cluster needs no code change.
    """

    model_config = SettingsConfigDict(env_prefix="STREAMREC_KAFKA_", frozen=True)

    bootstrap: str = Field(
        default="127.0.0.1:9092",
        description="HOST:PORT[,HOST:PORT...]; the stack sets it for the processes it starts",
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT", description="passed to every client, librdkafka and Faust alike"
    )
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        default=None, description="for the SASL protocols"
    )
    sasl_username: str | None = Field(default=None, description="for the SASL protocols")
    sasl_password: SecretStr | None = Field(
        default=None, description="for the SASL protocols (never printed)"
    )
    ssl_cafile: str | None = Field(
        default=None, description="CA bundle (PEM) that signed the brokers' certificates"
    )

    def confluent_config(self) -> dict[str, Any]:
        """librdkafka configuration for confluent-kafka clients."""
        conf: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap,
            "security.protocol": self.security_protocol,
        }
        if self.sasl_mechanism:
            conf["sasl.mechanism"] = self.sasl_mechanism
        if self.sasl_username:
            conf["sasl.username"] = self.sasl_username
        if self.sasl_password:
            conf["sasl.password"] = self.sasl_password.get_secret_value()
        if self.ssl_cafile:
            conf["ssl.ca.location"] = self.ssl_cafile
        return conf

    def faust_broker_url(self) -> str:
        return ";".join(f"kafka://{hp.strip()}" for hp in self.bootstrap.split(","))

    def faust_credentials(self) -> Any:
        """Faust credentials object for SASL/SSL clusters, or None for plaintext."""
        if self.security_protocol == "PLAINTEXT":
            return None
        import ssl

        import faust

        ssl_context = None
        if self.security_protocol in ("SSL", "SASL_SSL"):
            ssl_context = ssl.create_default_context(cafile=self.ssl_cafile)
        if self.security_protocol == "SSL":
            return faust.SSLCredentials(ssl_context)
        password = self.sasl_password.get_secret_value() if self.sasl_password else ""
        if self.sasl_mechanism in ("SCRAM-SHA-256", "SCRAM-SHA-512"):
            return faust.SASLCredentials(
                username=self.sasl_username,
                password=password,
                mechanism=self.sasl_mechanism,
                ssl_context=ssl_context,
            )
        return faust.SASLCredentials(
            username=self.sasl_username, password=password, ssl_context=ssl_context
        )
