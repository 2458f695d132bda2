"""datumaro (the CVAT team's dataset framework) as a reader of exports, in its own virtualenv.

``bash .ci/datumaro.sh`` installs it into ``.venv-datumaro``: its pins are not ours.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
VENV = Path(os.environ.get("DATAOPS_DATUMARO_VENV", REPO / ".venv-datumaro"))
SCRIPT = Path(__file__).with_name("datumaro_read.py")


def python() -> Path:
    """The virtualenv's interpreter; skips without it, but fails under CI=true."""
    binary = VENV / "bin" / "python"
    if not binary.exists():
        message = f"datumaro is not installed at {VENV}: run bash .ci/datumaro.sh"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return binary


def read(path: Path, fmt: str, convert: tuple[Path, str] | None = None) -> dict[str, Any]:
    """The dataset at ``path`` as datumaro's ``Dataset.import_from(path, fmt)`` sees it;
    ``convert`` (folder, format) also has datumaro write it in another format."""
    extra = [str(convert[0]), convert[1]] if convert else []
    proc = subprocess.run(
        [str(python()), str(SCRIPT), str(path), fmt, *extra],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")},
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])
