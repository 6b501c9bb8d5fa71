"""A single-node Apache Kafka broker in KRaft mode, from Maven Central jars (see the pom).

Its client listener speaks the settings' security protocol: PLAINTEXT by default; with
``STYLESTREAM_KAFKA_SECURITY_PROTOCOL=SASL_SSL`` (or SSL, SASL_PLAINTEXT) it serves TLS with a
development CA written to ``STYLESTREAM_KAFKA_SSL_CAFILE`` (deploy/local/tls.py) and
authenticates the settings' SASL user, whose SCRAM credentials are set when the storage is
formatted. The broker talks to itself over the same listener."""

from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess
import uuid
from pathlib import Path

from config.kafka import KafkaConfig, kafka_admin
from config.settings import Settings
from deploy.local.process import ManagedProcess
from deploy.local.tls import server_certificate

POM = Path(__file__).resolve().parents[2] / "deploy" / "kafka" / "pom.xml"

LOG4J = """log4j.rootLogger=INFO, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka=INFO
log4j.logger.org.apache.kafka=WARN
log4j.logger.state.change.logger=WARN
log4j.logger.org.apache.kafka.common.network.Selector=INFO
"""


def new_cluster_id() -> str:
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


class KafkaService:
    name = "kafka"

    def __init__(self, settings: Settings, libs: Path | None = None) -> None:
        """``libs``: the jar folder when several brokers share one (tests)."""
        self.settings = settings
        self.kafka = KafkaConfig.of(settings)
        self.home = settings.data_dir.resolve() / "kafka"
        self.libs = libs or self.home / "libs"
        self.host, port = settings.kafka_bootstrap.rsplit(":", 1)
        self.port = int(port)

    def fetch_jars(self) -> None:
        """mvn copy-dependencies once; re-run only when the pom changes."""
        marker = self.libs / ".pom-sha256"
        digest = hashlib.sha256(POM.read_bytes()).hexdigest()
        if marker.exists() and marker.read_text() == digest:
            return
        if shutil.which("mvn") is None:
            raise RuntimeError(
                "Maven (mvn) is needed to fetch the Kafka jars: apt-get install maven"
            )
        shutil.rmtree(self.libs, ignore_errors=True)
        self.libs.mkdir(parents=True)
        done = subprocess.run(
            [
                "mvn",
                "-q",
                "-B",
                "-Dstyle.color=never",
                "-f",
                str(POM),
                "dependency:copy-dependencies",
                f"-Dkafka.libs.dir={self.libs}",
            ],
            capture_output=True,  # never on a command's stdout (--json)
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"fetching Kafka's jars failed:\n{done.stdout}{done.stderr}"[-4000:])
        marker.write_text(digest)

    def _write_config(self) -> Path:
        s = self.settings
        client = f"CLIENT://{self.host}:{self.port}"
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{self.host}:{s.kafka_controller_port}",
            "listeners": f"{client},CONTROLLER://{self.host}:{s.kafka_controller_port}",
            "advertised.listeners": client,
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "CLIENT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,"
            f"CLIENT:{self.kafka.security_protocol}",
            "log.dirs": str(self.home / "data"),
            "num.partitions": "1",
            "auto.create.topics.enable": "false",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "8",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "log.retention.hours": "168",
            **self._security(),
        }
        path = self.home / "server.properties"
        self.home.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        path.chmod(0o600)  # it may hold the SASL user's password
        (self.home / "log4j.properties").write_text(LOG4J)
        return path

    def _security(self) -> dict[str, str]:
        """The client listener's TLS and SASL properties (none for PLAINTEXT)."""
        props: dict[str, str] = {}
        kafka = self.kafka
        if kafka.tls:
            ca = kafka.ssl_cafile or self.home / "tls" / "ca.pem"
            cert = server_certificate(self.home / "tls", ca, self.host)
            props |= {
                "listener.name.client.ssl.keystore.type": "PEM",
                "listener.name.client.ssl.keystore.location": str(cert.chain),
                "listener.name.client.ssl.truststore.type": "PEM",
                "listener.name.client.ssl.truststore.location": str(cert.ca),
            }
        if kafka.sasl:
            if not (kafka.username and kafka.password):
                raise RuntimeError(
                    "a SASL listener needs STYLESTREAM_KAFKA_SASL_USERNAME and _PASSWORD"
                )
            if set('"\\,=[]') & set(kafka.username + kafka.password):
                raise RuntimeError(
                    "the local broker's SASL user and password: no quotes, commas, "
                    "equals signs, brackets or backslashes"
                )
            mechanism = kafka.sasl_mechanism
            module = "plain.PlainLoginModule" if mechanism == "PLAIN" else "scram.ScramLoginModule"
            users = f' user_{kafka.username}="{kafka.password}"' if mechanism == "PLAIN" else ""
            props |= {
                "sasl.enabled.mechanisms": mechanism,
                "sasl.mechanism.inter.broker.protocol": mechanism,
                f"listener.name.client.{mechanism.lower()}.sasl.jaas.config": (
                    f"org.apache.kafka.common.security.{module} required "
                    f'username="{kafka.username}" password="{kafka.password}"{users};'
                ),
            }
        return props

    def _scram_users(self) -> list[str]:
        """Storage-format arguments that create the SASL user's SCRAM credentials."""
        kafka = self.kafka
        if not kafka.sasl or not kafka.sasl_mechanism.startswith("SCRAM"):
            return []
        return [
            "--add-scram",
            f"{kafka.sasl_mechanism}=[name={kafka.username},password={kafka.password}]",
        ]

    def _java(self, *args: str) -> list[str]:
        return [
            "java",
            "-Xmx512m",
            "-Xms128m",
            f"-Dlog4j.configuration=file:{self.home / 'log4j.properties'}",
            "-cp",
            f"{self.libs}/*",
            *args,
        ]

    @property
    def log_file(self) -> Path:
        """The broker's log (refused authentications included, by the client's address)."""
        return self.process().log_file

    def process(self) -> ManagedProcess:
        return ManagedProcess(
            "kafka", self._java("kafka.Kafka", str(self.home / "server.properties")), self.home
        )

    def up(self, timeout: float = 90.0) -> None:
        self.fetch_jars()
        config = self._write_config()
        if not (self.home / "data" / "meta.properties").exists():
            self.format_storage(config, new_cluster_id())
        self.process().start_healthy(self.host, self.port, self.healthy, timeout)

    def format_storage(self, config: Path, cluster_id: str) -> None:
        """KRaft storage formatting (once, before the first start). The id goes as
        ``--cluster-id=ID``: a random id starts with '-' one time in 64, and as a separate
        argument that reads as an unknown option."""
        done = subprocess.run(
            self._java(
                "kafka.tools.StorageTool",
                "format",
                f"--cluster-id={cluster_id}",
                "-c",
                str(config),
                "--ignore-formatted",
                *self._scram_users(),
            ),
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise RuntimeError(f"Kafka storage format failed: {done.stdout}{done.stderr}")

    def healthy(self) -> bool:
        admin = kafka_admin(self.settings, request_timeout_ms=3000)
        try:
            admin.list_topics()
            return True
        finally:
            admin.close()

    def down(self) -> bool:
        return self.process().stop(timeout=30)
