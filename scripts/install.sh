#!/usr/bin/env bash
# One-command install for a fresh Debian/Ubuntu machine (CPU or GPU):
#   bash scripts/install.sh            -> creates .venv and installs void-batch with everything it needs
# VENV=/path/to/venv bash scripts/install.sh to pick another location; WITH_TEST_TOOLS=0 skips the
# system packages only the test suite needs (PostgreSQL, Chromium), e.g. in a worker image.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3

# System packages, each only when missing: ffmpeg/ffprobe (libx264, prores_ks, ffv1, exr);
# PostgreSQL (the production Prefect database; the tests start a throw-away cluster of it);
# Chromium (headless: the report.html test renders the page in it through playwright, which
# never downloads a browser of its own here).
missing=()
command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null || missing+=(ffmpeg)
if [ "${WITH_TEST_TOOLS:-1}" = 1 ]; then
  command -v pg_ctl >/dev/null || ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 \
    || missing+=(postgresql)
  command -v chromium >/dev/null || command -v chromium-browser >/dev/null || missing+=(chromium)
fi
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
"$PY" -m venv "$VENV"
PIP="$VENV/bin/python -m pip"
$PIP install -q --upgrade pip wheel setuptools
# Standard torch + torchvision builds (see docs/install.md: the CPU-only torch wheel and PyPI's
# torchvision do not import together; this pair does, on CPU and GPU alike).
$PIP install -q torch==2.14.1 torchvision==0.29.1
# SAM2 is an sdist whose CUDA extension is optional; build it against the torch above.
SAM2_BUILD_CUDA=0 $PIP install -q --no-build-isolation sam2==1.1.0
$PIP install -q -c constraints.txt -e ".[dev]"
"$VENV/bin/void-batch" --version
