#!/usr/bin/env bash
# Install datumaro (the CVAT team's dataset framework) into its own virtualenv, .venv-datumaro:
# the tests import VOC and CVAT exports with it. Its pins (numpy, pandas, ...) are not ours.
# Idempotent: a second run finds the pinned version and returns at once.
set -euo pipefail
cd "$(dirname "$0")/.."
DATUMARO_VERSION=1.13.0
VENV=.venv-datumaro
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c \
  "import datumaro, sys; sys.exit(datumaro.__version__ != '$DATUMARO_VERSION')" 2>/dev/null; then
  exit 0
fi
python3.11 -m venv "$VENV"
"$VENV/bin/pip" install -q --disable-pip-version-check "datumaro==$DATUMARO_VERSION"
"$VENV/bin/python" -c "import datumaro; print('datumaro', datumaro.__version__)"
