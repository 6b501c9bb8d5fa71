"""Static checks of deploy/ (no Docker engine or cluster here): schemas plus our invariants.

- compose.yaml against the Compose spec (compose-spec), depends_on targets, env names;
- every Kubernetes object against the bundled 1.37 OpenAPI schemas (kubernetes-validate,
  strict: unknown fields fail), selectors matching pod labels, referenced ConfigMaps/Secrets
  existing, kustomization listing every file, and every STYLESTREAM_* variable being a real
  setting (a typo would otherwise be silently ignored by pydantic-settings).
"""

from __future__ import annotations

import subprocess
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
    defined = Defined({(d["kind"], d["metadata"]["name"]): _keys(d) for _, d in objects})
    for generated in kustomization.get("configMapGenerator", []):
        files = [f.rpartition("=") for f in generated.get("files", [])]
        defined.objects[("ConfigMap", generated["name"])] = {k or Path(p).name for k, _, p in files}
        errors += [f"kustomization.yaml: {p} is missing" for _, _, p in files
                   if not (directory / p).exists()]  # fmt: skip
    for generated in kustomization.get("secretGenerator", []):
        keys, problems = _generated_secret(directory, generated)
        defined.objects[("Secret", generated["name"])] = keys
        errors += problems
    for path, doc in objects:
        where = f"{path.name}:{doc['kind']}/{doc['metadata']['name']}"
        if (doc["apiVersion"], doc["kind"]) in CUSTOM_KINDS:
            if doc.get("spec", {}).get("mode") not in ("standalone", "cluster"):
                errors.append(f"{where}: spec.mode must be standalone or cluster")
            errors += defined.env_errors(doc["spec"].get("components", {}).get("env", []), where)
            continue
        try:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{where}: {exc.message} at {'.'.join(map(str, exc.path))}")
        errors += _workload_errors(doc, where, defined)
    return errors


def _keys(doc: dict[str, Any]) -> set[str] | None:
    """A ConfigMap's or Secret's keys (None for other kinds: nothing to check by key)."""
    if doc["kind"] not in ("ConfigMap", "Secret"):
        return None
    return {
        *(doc.get("data") or {}),
        *(doc.get("stringData") or {}),
        *(doc.get("binaryData") or {}),
    }


class Defined:
    """The ConfigMaps and Secrets the manifests define (with a generated Secret's keys, where
    known), to check every reference a pod makes to one."""

    def __init__(self, objects: dict[tuple[str, str], set[str] | None]) -> None:
        self.objects = objects

    def ref_error(self, kind: str, name: str, where: str, key: str | None = None) -> list[str]:
        if (kind, name) not in self.objects:
            return [f"{where}: {kind} {name} is not defined"]
        keys = self.objects[(kind, name)]
        if key is not None and keys is not None and key not in keys:
            return [f"{where}: {kind} {name} has no key {key}"]
        return []

    def env_errors(self, env: list[dict[str, Any]], where: str) -> list[str]:
        errors = _setting_errors([e["name"] for e in env], where)
        for item in env:
            source = item.get("valueFrom", {})
            for kind, ref in (("Secret", "secretKeyRef"), ("ConfigMap", "configMapKeyRef")):
                if ref in source:
                    errors += self.ref_error(kind, source[ref]["name"], where, source[ref]["key"])
        return errors

    def volume_errors(self, volumes: list[dict[str, Any]], where: str) -> list[str]:
        errors: list[str] = []
        for volume in volumes:
            for kind, name in (("Secret", "secret"), ("ConfigMap", "configMap")):
                if name in volume:
                    ref = volume[name].get("secretName") or volume[name].get("name")
                    items = volume[name].get("items") or [{"key": None}]
                    for item in items:
                        errors += self.ref_error(kind, ref, where, item["key"])
        return errors


def _generated_secret(directory: Path, generated: dict[str, Any]) -> tuple[set[str], list[str]]:
    """A generated Secret's keys, and its problems: its files never committed (gitignored),
    each env file described by a committed ``.example`` whose keys are settings (or the
    servers' own) and which holds no values."""
    errors: list[str] = []
    keys: set[str] = set()
    for source in generated.get("files", []):
        key, _, path = source.rpartition("=")  # "key=path" or just "path"
        keys.add(key or Path(path).name)
        errors += _secret_file_errors(path)
    for env in generated.get("envs", []):
        errors += _secret_file_errors(env)
        example = directory / f"{env}.example"
        if not example.exists():
            errors.append(f"kustomization.yaml: {example.name} is missing")
            continue
        lines = [x for x in example.read_text().splitlines() if x and not x.startswith("#")]
        names = [x.split("=", 1)[0] for x in lines]
        keys.update(names)
        errors += _setting_errors(names, example.name)
        errors += [f"{example.name}: {x.split('=')[0]} has a value" for x in lines
                   if x.split("=", 1)[1] and not x.startswith("POSTGRES_USER")
                   and not x.startswith("POSTGRES_DB")]  # fmt: skip
    return keys, errors


def _secret_file_errors(path: str) -> list[str]:
    """A file a Secret is generated from must be gitignored and not committed (git decides;
    without git, the .gitignore lines are matched as plain paths and folders)."""
    where = f"deploy/k8s/{path}"
    root = DEPLOY.parent
    try:
        ignored = (
            subprocess.run(
                ["git", "-C", str(root), "check-ignore", "-q", "--no-index", where], check=False
            ).returncode
            == 0
        )
        tracked = subprocess.run(
            ["git", "-C", str(root), "ls-files", "--error-unmatch", where],
            capture_output=True, check=False,
        ).returncode == 0  # fmt: skip
    except FileNotFoundError:  # no git here
        patterns = (root / ".gitignore").read_text().split()
        ignored = any(where == p or (p.endswith("/") and where.startswith(p)) for p in patterns)
        tracked = False
    if tracked:
        return [f"kustomization.yaml: {path} is committed (it holds secrets)"]
    if not ignored:
        return [f"kustomization.yaml: {path} is not gitignored (it holds secrets)"]
    return []


def _workload_errors(doc: dict[str, Any], where: str, defined: Defined) -> list[str]:
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
    pod = template["spec"]
    errors += defined.volume_errors(pod.get("volumes", []), where)
    for container in pod.get("containers", []):
        for source in container.get("envFrom", []):
            for kind, key in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
                if key in source:
                    errors += defined.ref_error(kind, source[key]["name"], where)
        errors += defined.env_errors(container.get("env", []), where)
    return errors


def main() -> int:
    from deploy.monitoring import check_monitoring

    errors = check_compose() + check_k8s() + check_monitoring()
    for e in errors:
        print(f"deploy: {e}", file=sys.stderr)
    count = sum(len(d) for d in load_k8s().values())
    print(
        f"deploy: compose.yaml, {count} Kubernetes objects, alert rules and dashboard checked,"
        f" {len(errors)} problems"
    )
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
