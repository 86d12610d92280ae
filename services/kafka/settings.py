"""Connection settings shared by every Kafka client StreamRec creates."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SASL_PROTOCOLS = ("SASL_PLAINTEXT", "SASL_SSL")


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

    @model_validator(mode="after")
    def _sasl_needs_credentials(self) -> KafkaSettings:
        # Caught here, at start, rather than as an authentication failure in every client.
        if self.security_protocol in SASL_PROTOCOLS and not (
            self.sasl_username and self.sasl_password
        ):
            raise ValueError(
                f"security_protocol {self.security_protocol} needs STREAMREC_KAFKA_SASL_USERNAME "
                "and STREAMREC_KAFKA_SASL_PASSWORD"
            )
        return self

    def confluent_config(self) -> dict[str, Any]:
        """librdkafka configuration for confluent-kafka clients: the one place a Kafka
        client's configuration comes from, so the security settings reach every client
        (``tests/unit/test_security.py`` holds every client in the code to it)."""
        conf: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap,
            "security.protocol": self.security_protocol,
        }
        if self.sasl_mechanism:
            conf["sasl.mechanism"] = self.sasl_mechanism
        elif self.security_protocol in SASL_PROTOCOLS:
            # librdkafka's default is GSSAPI (Kerberos); Faust's is PLAIN. One cluster, one
            # mechanism: both clients get PLAIN unless told otherwise.
            conf["sasl.mechanism"] = "PLAIN"
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
