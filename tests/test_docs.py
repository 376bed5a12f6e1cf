"""The README stays true to the code: CLI usage lines, config keys, shipped configs."""

import dataclasses
from pathlib import Path

import pytest

from fearkd.cli import build_parser
from fearkd.config import ExperimentConfig, load_config

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


def _subparsers():
    parser = build_parser()
    action = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return action.choices


def test_readme_opens_with_the_two_commands():
    head = README.split("\n## ")[0]
    assert "make demo" in head and "make test" in head


@pytest.mark.parametrize("name", sorted(_subparsers()))
def test_readme_usage_line_matches_parser(name, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    usage = _subparsers()[name].format_usage().splitlines()[0].strip()
    assert usage in README, f"README lacks the current usage line of 'fearkd {name}': {usage}"


def test_readme_lists_every_config_key():
    sections = [f for f in dataclasses.fields(ExperimentConfig)
                if f.default_factory is not dataclasses.MISSING]
    assert len(sections) == 8
    for section in sections:
        for key in dataclasses.fields(section.default_factory):
            if key.name == "options":
                continue
            assert f"`[{section.name}] {key.name}`" in README or \
                f"`[{section.name}.{key.name}" in README, f"[{section.name}] {key.name}"


@pytest.mark.parametrize(
    "path", sorted((REPO / "configs").glob("*.toml")) + [REPO / "src/fearkd/configs/demo.toml"],
    ids=lambda p: p.name)
def test_shipped_configs_validate(path):
    cfg = load_config(path)
    assert isinstance(cfg, ExperimentConfig)
    assert cfg.name != "experiment"


def test_rundir_doc_lists_every_result_column_in_order():
    from fearkd.evaluation.results import RESULT_COLUMNS

    doc = (REPO / "docs" / "RUNDIR.md").read_text(encoding="utf-8")
    rows = [line.split("|")[1].strip() for line in doc.splitlines()
            if line.startswith("| `") and "|" in line[1:]]
    listed = [name.strip(" `") for row in rows for name in row.split(",")]
    assert listed == list(RESULT_COLUMNS)
