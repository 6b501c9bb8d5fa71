"""The container image's entrypoints really start as its user. With no Docker engine here,
the image is reproduced where it matters: each entrypoint (migrate, worker, miner, API) runs
as uid 10001 (setpriv) with the Dockerfile's own environment, the code and the models folders
read-only to it (owned by root), and only the data folder writable, as the image makes it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from deploy.local.postgres import PostgresService
from deploy.local.process import free_port, terminate
from deploy.validate import DEPLOY
from tests.integration.conftest import Stack, wait_for

pytestmark = [
    pytest.mark.services,
    pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root"),
]
UID = 10001


def image_environment() -> dict[str, str]:
    """The Dockerfile's final ENV, and a check of what it promises about the user."""
    text = (DEPLOY / "Dockerfile").read_text()
    final = text.rsplit("FROM ", 1)[1]
    assert re.search(rf"^USER {UID}$", final, re.M)
    assert f"chown {UID}:{UID} /var/lib/stylestream" in final
    block = re.search(r"^ENV (.*?)(?=^\S)", final, re.M | re.S)
    assert block is not None
    pairs = re.findall(r"(STYLESTREAM_\w+)=(\S+)", block.group(1))
    return dict(pairs)


@pytest.fixture(scope="module")
def stack(make_stack: Callable[..., Stack]) -> Stack:
    return make_stack(miner_metrics_port=str(free_port()))


@pytest.fixture(scope="module")
def as_image(stack: Stack, model_path: Path, attribute_models: object) -> Iterator[dict[str, str]]:
    """The environment of the image, its paths moved under a scratch folder: the data folder
    owned by the uid (mode 700), the models a root-owned read-only copy."""
    root = Path(tempfile.mkdtemp(prefix="stylestream-image-"))
    root.chmod(0o755)
    image = image_environment()
    data = root / image["STYLESTREAM_DATA_DIR"].strip("/")
    data.mkdir(parents=True)
    os.chown(data, UID, UID)
    data.chmod(0o700)
    models = root / image["STYLESTREAM_MODEL_DIR"].strip("/")
    shutil.copytree(stack.settings.models_path.resolve(), models)
    for path in [models, *models.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o444)
    for parent in data.parents:
        if parent == root.parent:
            break
        parent.chmod(0o755)
    env = stack.env()
    env.update(image)
    env.update(STYLESTREAM_DATA_DIR=str(data), STYLESTREAM_MODEL_DIR=str(models))
    env.update(STYLESTREAM_METRICS_HOST="127.0.0.1", HOME=str(data), PYTHONDONTWRITEBYTECODE="1")
    yield env
    shutil.rmtree(root, ignore_errors=True)


def as_uid(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    command = ["setpriv", f"--reuid={UID}", f"--regid={UID}", "--clear-groups", "--"]
    with log.open("wb") as out:
        return subprocess.Popen(
            [*command, sys.executable, "-m", "stylestream.cli", *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def answers(url: str) -> bool:
    try:
        return int(urllib.request.urlopen(url, timeout=2).status) == 200
    except OSError:
        return False


def test_the_code_is_not_writable_by_the_image_user(as_image: dict[str, str]) -> None:
    probe = Path(__file__).resolve().parents[2] / f".write-probe-{uuid.uuid4().hex[:6]}"
    done = subprocess.run(
        ["setpriv", f"--reuid={UID}", f"--regid={UID}", "--clear-groups", "--",
         "sh", "-c", f"touch {probe}"],
        capture_output=True,
    )  # fmt: skip
    assert done.returncode != 0 and not probe.exists()


def test_migrate_runs_as_the_image_user(
    stack: Stack, as_image: dict[str, str], tmp_path: Path
) -> None:
    database = f"image_{uuid.uuid4().hex[:6]}"
    PostgresService(stack.settings).ensure_database(database)
    env = {**as_image, "STYLESTREAM_PG_DATABASE": database}
    proc = as_uid(["migrate"], env, tmp_path / "migrate.log")
    assert proc.wait(120) == 0, (tmp_path / "migrate.log").read_text()[-3000:]
    PostgresService(stack.settings).drop_database(database)


@pytest.mark.parametrize(
    ("args", "port_setting", "path", "state"),
    [
        (["worker", "--loglevel", "warning"], "metrics_port", "/healthz", "faust"),
        (["mine", "--loglevel", "warning"], "miner_metrics_port", "/metrics", "faust"),
        (["api"], "api_port", "/healthz", None),
    ],
    ids=["worker", "miner", "api"],
)
def test_each_entrypoint_starts_as_the_image_user(
    stack: Stack,
    as_image: dict[str, str],
    tmp_path: Path,
    args: list[str],
    port_setting: str,
    path: str,
    state: str | None,
) -> None:
    port = free_port()
    env = {**as_image, f"STYLESTREAM_{port_setting.upper()}": str(port)}
    log = tmp_path / f"{args[0]}.log"
    proc = as_uid(args, env, log)
    try:
        wait_for(lambda: proc.poll() is not None or answers(f"http://127.0.0.1:{port}{path}"), 120)
        if state is not None:  # Faust's state folder made, its app started, still running
            made = Path(env["STYLESTREAM_DATA_DIR"]) / state
            wait_for(lambda: proc.poll() is not None or any(made.glob("*/*")), 60)
            time.sleep(3)
        assert proc.poll() is None, log.read_text()[-3000:]
        owner = Path(f"/proc/{proc.pid}").stat().st_uid
        assert owner == UID
    finally:
        terminate(proc)
    assert "Permission denied" not in log.read_text()


def test_a_data_folder_the_user_cannot_write_stops_the_worker(
    as_image: dict[str, str], tmp_path: Path
) -> None:
    """The image before this issue: its data folder owned by root. The worker cannot make its
    Faust state there and exits, which the tests above would see."""
    readonly = Path(as_image["STYLESTREAM_DATA_DIR"]).parent / "root-owned"  # 755, root's
    readonly.mkdir(mode=0o755)
    env = {**as_image, "STYLESTREAM_DATA_DIR": str(readonly), "STYLESTREAM_METRICS_PORT": "0"}
    proc = as_uid(["worker", "--loglevel", "warning"], env, tmp_path / "worker.log")
    try:
        assert proc.wait(120) != 0
    finally:
        terminate(proc)
    assert "Permission denied" in (tmp_path / "worker.log").read_text()
