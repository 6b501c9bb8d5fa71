"""deploy/ manifests validate, and the validator catches the mistakes it claims to."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from config.settings import Settings
from deploy.local.milvus import MilvusServerService, local_milvus
from deploy.monitoring import ALERTS, DASHBOARD, check_alerts, check_dashboard, check_monitoring
from deploy.validate import DEPLOY, check_compose, check_k8s, load_k8s


def test_shipped_manifests_are_valid() -> None:
    assert check_compose() == []
    assert check_k8s() == []


@pytest.fixture
def k8s_copy(tmp_path: Path) -> Path:
    target = tmp_path / "k8s"
    shutil.copytree(DEPLOY / "k8s", target)
    return target


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_unknown_field_fails_the_schema(k8s_copy: Path) -> None:
    _edit(k8s_copy / "worker.yaml", "terminationGracePeriodSeconds", "terminationGraceSeconds")
    assert any("worker.yaml" in e for e in check_k8s(k8s_copy))


def test_selector_mismatch_is_caught(k8s_copy: Path) -> None:
    _edit(k8s_copy / "worker.yaml", "labels: {app: stylestream-worker}", "labels: {app: other}")
    assert any("selector" in e for e in check_k8s(k8s_copy))


def test_misspelt_setting_is_caught(k8s_copy: Path) -> None:
    _edit(k8s_copy / "config.yaml", "STYLESTREAM_MILVUS_URI", "STYLESTREAM_MILVUS_URL")
    assert any("STYLESTREAM_MILVUS_URL is not a setting" in e for e in check_k8s(k8s_copy))


def test_missing_config_map_and_unlisted_file_are_caught(k8s_copy: Path) -> None:
    _edit(
        k8s_copy / "worker.yaml",
        "configMapRef: {name: stylestream-config}",
        "configMapRef: {name: nope}",
    )
    (k8s_copy / "extra.yaml").write_text("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: x\n")
    errors = check_k8s(k8s_copy)
    assert any("ConfigMap nope is not defined" in e for e in errors)
    assert any("does not list extra.yaml" in e for e in errors)


def test_compose_checks(tmp_path: Path) -> None:
    compose = tmp_path / "compose.yaml"
    shutil.copy(DEPLOY / "compose.yaml", compose)
    (tmp_path / "prometheus").mkdir()
    shutil.copy(DEPLOY / "prometheus" / "prometheus.yml", tmp_path / "prometheus")
    (tmp_path / "k8s").mkdir()
    shutil.copy(DEPLOY / "k8s" / "prometheus-alerts.yml", tmp_path / "k8s")
    assert check_compose(compose) == []
    _edit(compose, "milvus: {condition: service_healthy}", "milvuz: {condition: service_healthy}")
    _edit(compose, "STYLESTREAM_TOPIC_PARTITIONS:", "STYLESTREAM_TOPIC_PARTITION:")
    errors = check_compose(compose)
    assert any("unknown service milvuz" in e for e in errors)
    assert any("STYLESTREAM_TOPIC_PARTITION is not a setting" in e for e in errors)


def test_no_secret_is_committed(k8s_copy: Path) -> None:
    """The Secret comes from an uncommitted env file; its committed example holds keys only,
    and no manifest carries a password."""
    for path in [*DEPLOY.glob("k8s/*.yaml"), DEPLOY / "compose.yaml"]:
        text = path.read_text()
        assert "change-me" not in text and "PASSWORD: stylestream" not in text, path
        assert "kind: Secret" not in text, path
    example = k8s_copy / "infra-secrets.env.example"
    example.write_text(example.read_text().replace("POSTGRES_PASSWORD=", "POSTGRES_PASSWORD=x"))
    assert any("POSTGRES_PASSWORD has a value" in e for e in check_k8s(k8s_copy))
    example.write_text("STYLESTREAM_NOT_A_SETTING=\n")
    assert any("not a setting" in e for e in check_k8s(k8s_copy))


def test_network_policies_deny_by_default_and_open_only_what_is_used() -> None:

    policies = {
        d["metadata"]["name"]: d["spec"]
        for docs in load_k8s().values()
        for d in docs
        if d["kind"] == "NetworkPolicy"
    }
    assert policies["default-deny-ingress"] == {"podSelector": {}, "policyTypes": ["Ingress"]}
    postgres = policies["postgres-clients"]["ingress"][0]
    allowed = postgres["from"][0]["podSelector"]["matchExpressions"][0]["values"]
    assert "stylestream-worker" in allowed and "prometheus" not in allowed
    assert [p["port"] for p in postgres["ports"]] == [5432]
    metrics = policies["metrics-from-prometheus"]["ingress"][0]["from"][0]
    assert metrics == {"podSelector": {"matchLabels": {"app": "prometheus"}}}


def test_the_manifests_run_the_production_profile_and_pass_it() -> None:
    """The pods' settings (the ConfigMap, plus the Secret's keys filled in as an operator
    would) are the production profile, and it finds nothing unsafe in them."""
    config = next(
        d["data"] for ds in load_k8s().values() for d in ds if d["kind"] == "ConfigMap"
        and d["metadata"]["name"] == "stylestream-config"
    )  # fmt: skip
    assert config["STYLESTREAM_ENV"] == "production"
    example = (DEPLOY / "k8s" / "secrets.env.example").read_text().splitlines()
    keys = [line.split("=", 1)[0] for line in example if line and not line.startswith("#")]
    filled = {key: "x9-" + key.lower().ljust(40, "z") for key in keys}
    filled["STYLESTREAM_POSTGRES_DSN"] = "postgresql+psycopg2://app:Rz81-q@postgres:5432/app"
    env = {k.removeprefix("STYLESTREAM_").lower(): v for k, v in {**config, **filled}.items()}
    settings = Settings(**env)
    assert settings.production_problems() == []
    assert settings.kafka_security_protocol == "SASL_SSL"
    assert "sslrootcert=%2Fetc%2Fstylestream%2Ftls%2Fca.crt" in settings.pg_dsn


def test_secret_references_are_checked(k8s_copy: Path) -> None:
    _edit(k8s_copy / "kafka.yaml", "key: KAFKA_BROKER_PASSWORD", "key: KAFKA_BROKER_PASWORD")
    _edit(k8s_copy / "postgres.yaml", "secretName: postgres-tls", "secretName: tls")
    _edit(k8s_copy / "kafka.yaml", "items: [{key: ca.crt,", "items: [{key: ca.pem,")
    _edit(
        k8s_copy / "kustomization.yaml", "tls.key=tls/kafka.key]", "tls.key=tls/kafka.key, x.pem]"
    )
    _edit(k8s_copy / "kustomization.yaml", "[ca.crt=tls/ca.crt]", "[ca.crt=README.md]")
    errors = check_k8s(k8s_copy)
    assert any("infra-secrets has no key KAFKA_BROKER_PASWORD" in e for e in errors)
    assert any("Secret tls is not defined" in e for e in errors)
    assert any("Secret kafka-tls has no key ca.pem" in e for e in errors)
    assert any("x.pem is not gitignored" in e for e in errors)
    assert any("README.md is not gitignored" in e for e in errors)


def test_alert_rules_and_dashboard_name_real_metrics_in_valid_promql(tmp_path: Path) -> None:
    assert check_monitoring() == []
    alerts = tmp_path / "alerts.yml"
    text = ALERTS.read_text()
    alerts.write_text(
        text.replace("stylestream_dependency_up", "stylestream_dependency_upp", 1).replace(
            "> 10000", "> > 10000", 1
        )
    )
    errors = check_alerts(alerts)
    assert any("stylestream_dependency_upp is not a metric" in e for e in errors)
    assert any("StyleStreamConsumerLag: not PromQL" in e for e in errors)
    dashboard = tmp_path / "dash.json"
    dashboard.write_text(
        DASHBOARD.read_text().replace(
            "stylestream_api_requests_total", "stylestream_api_request_total"
        )
    )
    assert any(
        "stylestream_api_request_total is not a metric" in e for e in check_dashboard(dashboard)
    )


def test_the_uri_picks_the_local_milvus_dev_up_starts(tmp_path: Path) -> None:
    lite = local_milvus(Settings(data_dir=tmp_path))
    assert lite is not None and type(lite).__name__ == "MilvusLiteService"
    server = local_milvus(Settings(data_dir=tmp_path, milvus_uri="http://127.0.0.1:19530/"))
    assert isinstance(server, MilvusServerService)
    argv = list(server.process().argv)
    assert argv[1:3] == ["-m", "deploy.local.milvus_server"] and argv[-1] == "19530"
    assert local_milvus(Settings(data_dir=tmp_path, milvus_uri="http://milvus:19530")) is None
