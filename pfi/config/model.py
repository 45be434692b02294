"""The shape of PFI's configuration.

Every section forbids unknown keys: a misspelt key that is silently ignored is how a
hospital ends up with a feed that "works" on the default it did not mean. Later
capabilities add their own section here rather than reading raw dicts.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from pfi.config.base import Port, Section
from pfi.config.delivery import DeliverySettings
from pfi.config.dmp import DmpSettings
from pfi.config.documents import DocumentsSettings
from pfi.config.mssante import MssanteSettings
from pfi.config.observability import ObservabilitySettings
from pfi.config.outbound import OutboundSettings
from pfi.config.routing import RoutingSettings

MESSAGE_TYPE = re.compile(r"^[A-Z0-9]{3}(\^[A-Z0-9]{3})?$")


class EngineSettings(Section):
    name: str = "PFI"
    data_dir: Path = Path("var")
    shutdown_timeout_s: Annotated[float, Field(gt=0, le=120)] = 10.0
    worker_process: bool = Field(
        default=True,
        description="run the outbox relay and the stages in a child process (own core); "
        "false runs them as threads of the engine process",
    )


class HttpSettings(Section):
    host: str = "127.0.0.1"
    port: Port = 8080


class DatabaseSettings(Section):
    url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; empty means SQLite at <data_dir>/pfi.db",
    )
    sqlite_synchronous: Literal["FULL", "NORMAL"] = "FULL"
    pool_size: Annotated[int, Field(ge=1, le=100)] = 5

    @field_validator("url")
    @classmethod
    def _known_backend(cls, url: str | None) -> str | None:
        if url is None or url == "":
            return None
        if not url.startswith(("sqlite", "postgresql")):
            raise ValueError("a sqlite:/// or postgresql+psycopg:// URL")
        return url


class KafkaSettings(Section):
    bootstrap_servers: str | None = Field(
        default=None, description="host:port[,host:port]; empty starts the embedded broker"
    )
    topic_prefix: Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]+$")] = "pfi"
    partitions: Annotated[int, Field(ge=1, le=256)] = 6
    replication_factor: Annotated[int, Field(ge=1, le=9)] = 1
    client_id: str = "pfi"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: str | None = None
    group_mode: Literal["auto", "subscribe", "assign"] = Field(
        default="auto",
        description="auto: assign all partitions in embedded mode, consumer groups otherwise",
    )
    fetch_max_wait_ms: Annotated[int, Field(ge=1, le=10000)] = Field(
        default=50,
        description="how long the broker may hold a consumer's fetch when it has nothing. "
        "Tansu (the embedded broker) answers only when this wait ends, so with it this is "
        "each hop's latency and 50 costs ~15% of a core when idle; Kafka answers as soon "
        "as a record arrives: 500 with a cluster costs no latency and little CPU",
    )
    republish_on_start: Literal["auto", "unfinished", "unpublished"] = Field(
        default="auto",
        description="auto: 'unfinished' for the memory-only embedded broker, else 'unpublished'",
    )


class TlsSettings(Section):
    certfile: Path
    keyfile: Path
    cafile: Path | None = None
    require_client_cert: bool = False

    @model_validator(mode="after")
    def _client_cert_needs_ca(self) -> TlsSettings:
        if self.require_client_cert and self.cafile is None:
            raise ValueError("require_client_cert needs cafile (the CA that signs client certs)")
        return self


Charset = Literal["ASCII", "8859/1", "8859/15", "UNICODE UTF-8"]


class SourceSettings(Section):
    """One sending system (DPI, SGL, RIS...) and the MLLP listener that serves it."""

    host: str = "127.0.0.1"
    port: Port
    allowed_message_types: list[str] = Field(min_length=1)
    default_charset: Charset = "8859/1"
    tls: TlsSettings | None = None
    max_message_bytes: Annotated[int, Field(ge=1024, le=64 * 1024 * 1024)] = 16 * 1024 * 1024
    idle_timeout_s: Annotated[float, Field(gt=0)] = 300.0
    read_timeout_s: Annotated[float, Field(gt=0)] = 30.0
    duplicate_window_s: Annotated[float, Field(ge=0)] = 24 * 3600.0

    @field_validator("allowed_message_types")
    @classmethod
    def _message_types(cls, types: list[str]) -> list[str]:
        for t in types:
            if not MESSAGE_TYPE.match(t):
                raise ValueError(f"message types like 'ORU^R01' or 'ADT', got {t!r}")
        return types


def _default_sources() -> dict[str, SourceSettings]:
    adt = ["ADT"]
    return {
        "DPI": SourceSettings(port=2575, allowed_message_types=[*adt, "ORU^R01", "MDM"]),
        "SGL": SourceSettings(port=2576, allowed_message_types=["ORU^R01", *adt]),
        "RIS": SourceSettings(port=2577, allowed_message_types=["ORU^R01", "MDM", *adt]),
    }


class IdentitySettings(Section):
    """How PID-3 and PID-32 are read (PAM-FR 2.11)."""

    qualifying_statuses: list[str] = Field(
        default_factory=lambda: ["VALI"],
        description="PID-32 codes (table 0445) that make an INS usable",
        min_length=1,
    )
    ins_authority_oids: list[str] = Field(
        default_factory=lambda: [
            "1.2.250.1.213.1.4.8",  # INS-NIR
            "1.2.250.1.213.1.4.9",  # INS-NIA
            "1.2.250.1.213.1.4.10",  # INS-NIR de test
            "1.2.250.1.213.1.4.11",  # INS-NIA de test
        ]
    )
    local_timezone: str = "Europe/Paris"

    @field_validator("local_timezone")
    @classmethod
    def _known_zone(cls, zone: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"an IANA time zone such as Europe/Paris, got {zone!r}") from None
        return zone


class LoggingSettings(Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["text", "json"] = "text"
    file: Path | None = Field(default=None, description="relative paths are under data_dir")


class Settings(Section):
    """The whole configuration, as `config/pfi.yaml` spells it."""

    engine: EngineSettings = EngineSettings()
    http: HttpSettings = HttpSettings()
    database: DatabaseSettings = DatabaseSettings()
    kafka: KafkaSettings = KafkaSettings()
    sources: dict[Annotated[str, Field(pattern=r"^[A-Z][A-Z0-9_]{1,15}$")], SourceSettings] = Field(
        default_factory=_default_sources
    )
    identity: IdentitySettings = IdentitySettings()
    logging: LoggingSettings = LoggingSettings()
    observability: ObservabilitySettings = ObservabilitySettings()
    dmp: DmpSettings | None = Field(default=None, description="empty: no DMP destination")
    mssante: MssanteSettings | None = Field(default=None, description="empty: no MSSanté")
    routing: RoutingSettings = RoutingSettings()
    outbound: OutboundSettings = OutboundSettings()
    documents: DocumentsSettings = DocumentsSettings()
    delivery: DeliverySettings = DeliverySettings()

    @model_validator(mode="after")
    def _observed_sources_exist(self) -> Settings:
        fitted = self.observability.for_sources(set(self.sources))
        if fitted is not self.observability:
            object.__setattr__(self, "observability", fitted)  # no re-validation loop
        return self

    @model_validator(mode="after")
    def _document_sources_exist(self) -> Settings:
        fitted = self.documents.for_sources(set(self.sources))
        if fitted is not self.documents:
            object.__setattr__(self, "documents", fitted)
        return self

    @model_validator(mode="after")
    def _mail_has_a_source_id(self) -> Settings:
        mss = self.mssante
        if mss is None or not mss.enabled or mss.xdm.source_id:
            return self
        if self.dmp is not None and self.dmp.identity.source_id:
            return self
        raise ValueError(
            "mssante.xdm.source_id: the OID of this PFI is needed for the IHE_XDM.zip of "
            "every mail (XDSSubmissionSet.sourceId); set it, or dmp.identity.source_id"
        )

    @model_validator(mode="after")
    def _distinct_ports(self) -> Settings:
        seen: dict[tuple[str, int], str] = {("http", self.http.port): "http"}
        for name, src in self.sources.items():
            key = ("http", src.port)
            if key in seen:
                raise ValueError(f"source {name} port {src.port} is already used by {seen[key]}")
            seen[key] = f"source {name}"
        return self

    @property
    def embedded_broker(self) -> bool:
        return not self.kafka.bootstrap_servers

    @property
    def database_url(self) -> str:
        if self.database.url:
            return self.database.url
        return f"sqlite:///{(self.engine.data_dir / 'pfi.db').resolve()}"
