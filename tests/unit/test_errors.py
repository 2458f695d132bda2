"""Errors name request fields; each face spells them its own way, and no user value can break
the message (braces in a task name, Rich markup in a pattern)."""

from __future__ import annotations

import pytest

from dataops.cli.errors import EXIT_USER_ERROR, flag_for, handle
from dataops.errors import DataopsError
from tests.support.cli import run_cli


def test_a_field_is_spelled_by_each_face() -> None:
    exc = DataopsError("{gate} must be between 0 and 1, got {{1.5}}", fields=("gate",))
    assert str(exc) == "gate must be between 0 and 1, got {1.5}"
    assert exc.render(flag_for) == "--gate must be between 0 and 1, got {1.5}"
    assert exc.field == "gate"


def test_positional_and_renamed_fields_are_spelled_as_the_cli_takes_them() -> None:
    assert flag_for("batch_id") == "BATCH_ID"
    assert flag_for("paths") == "PATHS"
    assert flag_for("copy_bytes") == "--copy"
    assert flag_for("page_size") == "--page-size"


@pytest.mark.parametrize("value", ["a{b}", "a}", "{0}", "{x.y}"])
def test_braces_from_a_user_value_never_break_the_message(value: str) -> None:
    exc = DataopsError(f"no label for task {value!r}; check {{query}}", fields=("query",))
    assert str(exc) == f"no label for task {value!r}; check query"
    assert exc.render(flag_for) == f"no label for task {value!r}; check --query"


def test_the_cli_prints_a_message_as_text_not_markup(capsys: pytest.CaptureFixture[str]) -> None:
    exc = DataopsError("{kind}: should match '^[a-z_]{1,32}$'", fields=("kind",))
    assert handle(exc) == EXIT_USER_ERROR
    assert "--kind: should match '^[a-z_]{1,32}$'" in capsys.readouterr().err


def test_a_task_name_with_braces_is_a_clear_cli_error() -> None:
    run_cli("init")
    proc = run_cli("manifest", "create", "braces", "--task", "a{b}", check=False)
    assert proc.returncode == EXIT_USER_ERROR, proc.stderr
    assert "'a{b}'" in proc.stderr and "Traceback" not in proc.stderr
