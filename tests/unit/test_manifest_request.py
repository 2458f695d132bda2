"""The one create request every face builds: defaults live in it, refusals name fields."""

from __future__ import annotations

import inspect
import re

import pytest

from dataops.cli.errors import flag_for
from dataops.errors import DataopsError
from dataops.manifests.schemas import DEFAULT_SPLITS, ManifestRequest, parse_query


def test_values_not_given_take_the_model_defaults() -> None:
    request = ManifestRequest.of({"name": "m", "seed": None, "splits": None, "query": {}})
    assert request.seed == 0
    assert request.splits == DEFAULT_SPLITS
    assert request.from_batches is None and request.parent is None and request.task is None


def test_the_cli_sets_no_default_of_its_own() -> None:
    from dataops.cli.manifest import create

    options = inspect.signature(create).parameters
    for field in ("seed", "splits", "from_batches", "stratify_by", "parent", "task"):
        assert options[field].default.default is None, field
    # the help text names the model's defaults, so it cannot drift from them
    assert DEFAULT_SPLITS in options["splits"].default.help
    assert f"default {ManifestRequest.model_fields['seed'].default}" in options["seed"].default.help


def test_a_refused_value_names_its_field_for_each_face() -> None:
    with pytest.raises(DataopsError) as raised:
        ManifestRequest.of({"name": "m", "seed": -1})
    assert raised.value.field == "seed"
    assert str(raised.value).startswith("seed: ")
    assert raised.value.render(flag_for).startswith("--seed: ")


def test_a_bad_name_says_what_a_name_may_hold() -> None:
    with pytest.raises(DataopsError, match=re.escape("bad manifest name 'a b{x}'")) as raised:
        ManifestRequest.of({"name": "a b{x}"})
    assert raised.value.field == "name"


def test_query_filters_name_the_field() -> None:
    assert parse_query(["site=lab-3", "source=studio"]) == {"site": "lab-3", "source": "studio"}
    with pytest.raises(DataopsError) as raised:
        parse_query(["site"])
    assert str(raised.value).startswith("query expects KEY=VALUE")
    assert raised.value.render(flag_for).startswith("--query expects KEY=VALUE")
    with pytest.raises(DataopsError, match="gives 'site' twice"):
        parse_query(["site=a", "site=b"])
