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


def _readme_section(title: str) -> str:
    start = README.index(f"\n### {title}\n")
    ends = [i for i in (README.find("\n### ", start + 1), README.find("\n## ", start + 1))
            if i > 0]
    return README[start:min(ends)]


def _blocks(text: str, lang: str) -> list[str]:
    parts = text.split(f"```{lang}\n")[1:]
    return [p.split("```", 1)[0] for p in parts]


def test_wearable_section_runs_as_written(tmp_path, monkeypatch):
    """The README's E4 section, command by command, on the synthetic E4 writer's output: the
    shown file saved where it says, then info, run and report, which must leave the report."""
    import shlex

    from fearkd.cli import main

    section = _readme_section("Your own wearable recordings")
    (toml,) = _blocks(section, "toml")
    (bash,) = _blocks(section, "bash")
    commands = [line.split("#", 1)[0].strip() for line in bash.splitlines() if line.strip()]
    assert len(commands) == 4 and all(c.startswith("fearkd ") for c in commands)
    target = toml.splitlines()[0].lstrip("# ").strip()
    assert commands[0].startswith("fearkd synth e4 ")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "100")
    for i, command in enumerate(commands):
        argv = shlex.split(command)[1:]
        if command.startswith("fearkd run "):
            argv.append("--quiet")  # no progress bars in the test log; same run
        assert main(argv) == 0, command
        if i == 0:  # the synthetic export stands in for the user's own; then the file
            (tmp_path / target).write_text(toml, encoding="utf-8")
    run_dir = tmp_path / shlex.split(commands[2])[shlex.split(commands[2]).index("--out") + 1]
    report = (run_dir / "report.html").read_text(encoding="utf-8")
    assert "synthetic data" in report
    assert (run_dir / "results.csv").stat().st_size > 0
