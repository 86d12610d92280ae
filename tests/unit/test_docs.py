"""The documentation describes what exists: every variable, command and path it names."""

from __future__ import annotations

import re
from pathlib import Path

from services import configref
from services.cli import main

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text()


def test_configuration_reference_is_generated_fresh_and_every_setting_is_described() -> None:
    assert configref.undocumented() == []
    assert (REPO / "docs" / "CONFIGURATION.md").read_text() == configref.render(), (
        "docs/CONFIGURATION.md is stale: run python -m services.configref"
    )


def test_every_variable_the_readme_names_exists() -> None:
    known = {name for v in configref.variables() for name in v.name.split(" or ")}
    named = set(re.findall(r"STREAMREC_[A-Z0-9_]*[A-Z0-9]", README))
    # Shorthands such as `STREAMREC_KAFKA_SASL_*` name a family, not one variable.
    families = {n for n in named if README.count(n + "_*")}
    assert named - known - families == set()


def test_every_streamrec_command_the_readme_names_exists() -> None:
    commands = set(main.commands)  # type: ignore[attr-defined]
    named = set(re.findall(r"`streamrec ([a-z]+)", README))
    assert named and named - commands == set()
    dlq = main.commands["dlq"].commands  # type: ignore[attr-defined]
    assert {"list", "replay"} <= set(dlq)


def test_every_repository_path_the_readme_names_exists() -> None:
    linked = r"\((?!https?:)((?:docs|services|models|tests|deploy)/[^)#\s]*)"
    quoted = r"`((?:services|models|tests|deploy)/[\w/.-]+\.(?:py|yml|json))`"
    paths = set(re.findall(linked, README)) | set(re.findall(quoted, README))
    assert paths
    missing = sorted(p for p in paths if not (REPO / p).exists())
    assert missing == []
