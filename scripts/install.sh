#!/usr/bin/env bash
# Install what Workspace Hub needs on a Debian/Ubuntu machine, as root; skip what is there.
#   docker.io, mmdebstrap, Node.js + configurable-http-proxy, and the venv .venv/ with `ws`.
#   WSHUB_EXTRAS=test also installs the test tools, Debian's chromium, skopeo, docker-registry and wrk.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=()
command -v dockerd >/dev/null || packages+=(docker.io)
command -v mmdebstrap >/dev/null || packages+=(mmdebstrap)
command -v npm >/dev/null || packages+=(nodejs npm)
python3 -c 'import ensurepip, venv' 2>/dev/null || packages+=(python3-venv)
if [[ "${WSHUB_EXTRAS:-}" == *test* ]]; then
  command -v chromium >/dev/null || packages+=(chromium)
  command -v skopeo >/dev/null || packages+=(skopeo)
  command -v docker-registry >/dev/null || packages+=(docker-registry)  # the library's pull test
  command -v wrk >/dev/null || packages+=(wrk)  # benchmarks/serving.py
fi
if (( ${#packages[@]} )); then
  echo "installing ${packages[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
fi
command -v configurable-http-proxy >/dev/null || npm install -g --silent configurable-http-proxy

extras="hub${WSHUB_EXTRAS:+,$WSHUB_EXTRAS}"
stamp=".venv/.installed-$(cat pyproject.toml | sha256sum | cut -c1-16)-${extras//,/-}"
if [[ ! -e "$stamp" ]]; then
  [[ -x .venv/bin/python ]] || python3 -m venv .venv
  .venv/bin/pip install -q --upgrade pip
  # setuptools prints a notice for every editable install of a flat layout; nothing in it applies here
  PYTHONWARNINGS=ignore .venv/bin/pip install -q -e ".[$extras]"
  rm -f .venv/.installed-* && touch "$stamp"
fi
echo "ready: $(.venv/bin/ws --version 2>/dev/null || echo .venv/bin/ws)"
