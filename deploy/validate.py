"""Static checks of deploy/ (no Docker engine or cluster here): schemas plus our invariants.

- compose.yaml against the Compose spec (compose-spec), depends_on targets, env names;
- every Kubernetes object against the bundled 1.37 OpenAPI schemas (kubernetes-validate,
  strict: unknown fields fail), selectors matching pod labels, referenced ConfigMaps/Secrets
  existing, kustomization listing every file, and every STYLESTREAM_* variable being a real
  setting (a typo would otherwise be silently ignored by pydantic-settings).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from config.settings import Settings

DEPLOY = Path(__file__).resolve().parent
K8S_VERSION = "1.37.0"
CUSTOM_KINDS = {("milvus.io/v1beta1", "Milvus")}


def _setting_errors(names: Iterable[str], where: str) -> list[str]:
    fields = {f.upper() for f in Settings.model_fields}
    return [
        f"{where}: {n} is not a setting"
        for n in names
        if n.startswith("STYLESTREAM_") and n.removeprefix("STYLESTREAM_") not in fields
    ]


def check_compose(path: Path = DEPLOY / "compose.yaml") -> list[str]:
    from compose_spec import PyCompose

    text = path.read_text()
    errors: list[str] = []
    try:
        PyCompose.from_yaml(text)
    except Exception as exc:  # the binding raises its own error types
        return [f"{path.name}: not a valid Compose file: {exc}"]
    spec = yaml.safe_load(text)
    services: dict[str, Any] = spec.get("services", {})
    volumes = set(spec.get("volumes") or {})
    for name, svc in services.items():
        deps = svc.get("depends_on") or []
        for dep in deps if isinstance(deps, list) else list(deps):
            if dep not in services:
                errors.append(f"{path.name}: {name} depends on unknown service {dep}")
        env = svc.get("environment") or {}
        errors += _setting_errors(env if isinstance(env, dict) else [], f"{path.name}:{name}")
        for mount in svc.get("volumes") or []:
            source = str(mount).split(":", 1)[0]
            if source.startswith("."):
                if not (path.parent / source).exists():
                    errors.append(f"{path.name}: {name} mounts missing file {source}")
            elif source not in volumes:
                errors.append(f"{path.name}: {name} uses undeclared volume {source}")
        if svc.get("image", "").startswith(("postgres", "apache/kafka", "milvusdb")) and (
            "healthcheck" not in svc
        ):
            errors.append(f"{path.name}: {name} has no healthcheck")
    return errors


def load_k8s(directory: Path = DEPLOY / "k8s") -> dict[Path, list[dict[str, Any]]]:
    return {
        p: [d for d in yaml.safe_load_all(p.read_text()) if d]
        for p in sorted(directory.glob("*.yaml"))
        if p.name != "kustomization.yaml"
    }


def check_k8s(directory: Path = DEPLOY / "k8s") -> list[str]:
    import kubernetes_validate

    errors: list[str] = []
    docs = load_k8s(directory)
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    listed = set(kustomization.get("resources", []))
    for path in docs:
        if path.name not in listed:
            errors.append(f"kustomization.yaml does not list {path.name}")
    objects = [(p, d) for p, ds in docs.items() for d in ds]
    names = {(d["kind"], d["metadata"]["name"]) for _, d in objects}
    for generated in kustomization.get("secretGenerator", []):
        names.add(("Secret", generated["name"]))
        errors += _generated_secret_errors(directory, generated)
    for path, doc in objects:
        where = f"{path.name}:{doc['kind']}/{doc['metadata']['name']}"
        if (doc["apiVersion"], doc["kind"]) in CUSTOM_KINDS:
            if doc.get("spec", {}).get("mode") not in ("standalone", "cluster"):
                errors.append(f"{where}: spec.mode must be standalone or cluster")
            continue
        try:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{where}: {exc.message} at {'.'.join(map(str, exc.path))}")
        errors += _workload_errors(doc, where, names)
    return errors


def _generated_secret_errors(directory: Path, generated: dict[str, Any]) -> list[str]:
    """A generated Secret's env files: never committed (gitignored), described by a committed
    ``.example`` whose keys are settings, and holding no values there."""
    errors: list[str] = []
    ignored = {Path(line).name for line in (DEPLOY.parent / ".gitignore").read_text().split()}
    for env in generated.get("envs", []):
        if Path(env).name not in ignored:
            errors.append(f"kustomization.yaml: {env} is not gitignored (it holds secrets)")
        example = directory / f"{env}.example"
        if not example.exists():
            errors.append(f"kustomization.yaml: {example.name} is missing")
            continue
        lines = [x for x in example.read_text().splitlines() if x and not x.startswith("#")]
        keys = [x.split("=", 1)[0] for x in lines]
        errors += _setting_errors(keys, example.name)
        errors += [f"{example.name}: {x.split('=')[0]} has a value" for x in lines
                   if x.split("=", 1)[1] and not x.startswith("POSTGRES_USER")
                   and not x.startswith("POSTGRES_DB")]  # fmt: skip
    return errors


def _workload_errors(doc: dict[str, Any], where: str, names: set[tuple[str, str]]) -> list[str]:
    errors: list[str] = []
    if doc["kind"] in ("ConfigMap", "Secret"):
        keys = list(doc.get("data") or {}) + list(doc.get("stringData") or {})
        errors += _setting_errors(keys, where)
    template = doc.get("spec", {}).get("template")
    if template is None:
        return errors
    selector = doc["spec"].get("selector", {}).get("matchLabels", {})
    labels = template.get("metadata", {}).get("labels", {})
    if any(labels.get(k) != v for k, v in selector.items()):
        errors.append(f"{where}: selector {selector} does not match pod labels {labels}")
    for container in template["spec"].get("containers", []):
        for source in container.get("envFrom", []):
            for kind, key in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
                if key in source and (kind, source[key]["name"]) not in names:
                    errors.append(f"{where}: {kind} {source[key]['name']} is not defined")
        errors += _setting_errors([e["name"] for e in container.get("env", [])], where)
    return errors


def main() -> int:
    errors = check_compose() + check_k8s()
    for e in errors:
        print(f"deploy: {e}", file=sys.stderr)
    count = sum(len(d) for d in load_k8s().values())
    print(f"deploy: compose.yaml and {count} Kubernetes objects checked, {len(errors)} problems")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
