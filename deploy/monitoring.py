"""Static checks of the alert rules and the Grafana dashboard: every expression parses as
PromQL, and every ``stylestream_*`` metric it names is one the worker, the miner or the API
really exports (read from their own registries, so a renamed metric fails here)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

DEPLOY = Path(__file__).resolve().parent
ALERTS = DEPLOY / "k8s" / "prometheus-alerts.yml"
DASHBOARD = DEPLOY / "grafana" / "stylestream.json"
METRIC = re.compile(r"\bstylestream_[a-z0-9_]+\b")
SAMPLES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "gauge": ("",),
}


def exported_metrics() -> set[str]:
    from api.metrics import ApiMetrics
    from streams.faults import FaultMetrics
    from streams.metrics import MinerMetrics, WorkerMetrics

    worker = WorkerMetrics()
    FaultMetrics(worker.registry)
    names: set[str] = set()
    for registry in (worker.registry, MinerMetrics().registry, ApiMetrics().registry):
        for family in registry.collect():
            names |= {family.name + s for s in SAMPLES.get(family.type, ("",))}
    return names


def expression_errors(expr: str, where: str, known: set[str]) -> list[str]:
    import promql_parser

    try:
        promql_parser.parse(expr)
    except Exception as exc:  # the parser's own error type
        return [f"{where}: not PromQL ({exc})"]
    unknown = sorted(set(METRIC.findall(expr)) - known)
    return [f"{where}: {name} is not a metric StyleStream exports" for name in unknown]


def check_alerts(path: Path = ALERTS, known: set[str] | None = None) -> list[str]:
    known = exported_metrics() if known is None else known
    errors: list[str] = []
    spec: dict[str, Any] = yaml.safe_load(path.read_text())
    rules = [r for group in spec.get("groups", []) for r in group.get("rules", [])]
    if not rules:
        return [f"{path.name}: no alert rules"]
    for rule in rules:
        where = f"{path.name}:{rule.get('alert', '?')}"
        if not rule.get("alert") or not rule.get("expr"):
            errors.append(f"{where}: a rule needs alert and expr")
            continue
        if rule.get("labels", {}).get("severity") not in ("warning", "critical"):
            errors.append(f"{where}: severity must be warning or critical")
        if not rule.get("annotations", {}).get("summary"):
            errors.append(f"{where}: no summary annotation")
        errors += expression_errors(str(rule["expr"]), where, known)
    return errors


def check_dashboard(path: Path = DASHBOARD, known: set[str] | None = None) -> list[str]:
    known = exported_metrics() if known is None else known
    try:
        dashboard: dict[str, Any] = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        return [f"{path.name}: not JSON ({exc})"]
    errors: list[str] = []
    panels = dashboard.get("panels", [])
    if not dashboard.get("uid") or not panels:
        errors.append(f"{path.name}: a dashboard needs a uid and panels")
    for panel in panels:
        targets = panel.get("targets") or []
        if not targets:
            errors.append(f"{path.name}:{panel.get('title')}: a panel without queries")
        for target in targets:
            errors += expression_errors(
                target.get("expr", ""), f"{path.name}:{panel.get('title')}", known
            )
    return errors


def check_monitoring() -> list[str]:
    known = exported_metrics()
    return check_alerts(known=known) + check_dashboard(known=known)
