"""`dataops --help` stays fast because the CLI never imports heavy libraries at start-up."""

from __future__ import annotations

import subprocess
import sys

HEAVY = (
    "torch",
    "faiss",
    "sklearn",
    "label_studio_sdk",
    "fastapi",
    "matplotlib",
    "pyarrow",
    "scipy",
)


def test_cli_start_up_imports_nothing_heavy() -> None:
    code = f"import sys, dataops.cli; print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
