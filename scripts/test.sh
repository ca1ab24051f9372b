#!/usr/bin/env bash
# Run the whole test suite: unit tests, then the real hub, Docker engine and browser.
# Installs the test tools, starts dockerd if none answers and builds missing env images.
set -euo pipefail
cd "$(dirname "$0")/.."
WSHUB_EXTRAS=test scripts/install.sh
wheels=(); [[ -d /opt/wheels ]] && wheels=(--wheels /opt/wheels)
.venv/bin/ws envs build --if-missing "${wheels[@]}" python pytorch tensorflow keras
exec .venv/bin/pytest "$@"
