#!/usr/bin/env bash
# Install the Label Studio test server (its own virtualenv) and its template data dir.
# Idempotent: a second run finds both and returns at once.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
exec "$PYTHON" -m tests.support.labelstudio install
