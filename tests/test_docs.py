"""The documentation stays true: generated pages are current, documented commands parse,
links resolve, and the environment variables and runs.csv columns the code knows are named.

Commands are checked in ```bash / ```sh blocks of README.md and docs/*.md; ```text blocks
hold commands that name files a reader writes first (docs/extending.md) and are not run.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from trm import config as C
from trm import docsgen

ROOT = C.REPO_ROOT
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)
# Snakemake lines that a dry run cannot check: they need a file the reader makes first, or
# they are not plans (the report, unlocking, metadata clean-up).
NOT_DRY_RUN = ("--configfile", "--report", "--unlock", "--cleanup-metadata")
# README's snakemake lines are all dry-run; from docs/ at most this many more (time).
DOCS_SNAKEMAKE_LINES = 4


def commands(path: Path) -> list[str]:
    """Each command of the file's bash/sh code blocks (`a && b` gives two)."""
    out = []
    for lang, body in FENCE.findall(path.read_text()):
        if lang not in ("bash", "sh"):
            continue
        for line in body.splitlines():
            line = line.split(" #", 1)[0].strip()
            out += [part.strip() for part in line.split("&&") if part.strip()]
    return out


def trm_commands() -> list[tuple[str, list[str]]]:
    found = []
    for page in PAGES:
        for cmd in commands(page):
            if cmd.startswith("python -m trm ") and "|" not in cmd and "$(" not in cmd:
                found.append((page.name, shlex.split(cmd)[3:]))
    return found


def snakemake_commands() -> list[tuple[str, list[str]]]:
    found, seen, from_docs = [], set(), 0
    for page in PAGES:
        for cmd in commands(page):
            if not cmd.startswith("snakemake") or any(flag in cmd for flag in NOT_DRY_RUN):
                continue
            args = [a for a in shlex.split(cmd)[1:] if a not in ("-n", "--dry-run")]
            key = tuple(sorted(args))
            if key in seen:
                continue
            if page.name != "README.md":
                if from_docs == DOCS_SNAKEMAKE_LINES:
                    continue
                from_docs += 1
            seen.add(key)
            found.append((page.name, args))
    return found


def test_generated_studies_and_knobs_pages_are_current():
    for rel in ("docs/studies.md", "docs/knobs.md"):
        fresh = docsgen.PAGES[rel]()
        assert (ROOT / rel).read_text() == fresh, f"{rel} is stale: run python -m trm.docsgen --write"


@pytest.mark.slow
def test_generated_cost_page_is_current():
    rel = "docs/cluster-cost.md"
    assert (ROOT / rel).read_text() == docsgen.PAGES[rel](), \
        f"{rel} is stale: run python -m trm.docsgen --write"


def test_check_names_the_stale_page(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(docsgen, "PAGES", {"docs/a.md": lambda: "A\n", "docs/b.md": lambda: "B\n"})
    assert docsgen.main(["--write", "--root", str(tmp_path)]) == 0
    assert docsgen.main(["--check", "--root", str(tmp_path)]) == 0
    (tmp_path / "docs" / "b.md").write_text("edited by hand\n")
    capsys.readouterr()
    assert docsgen.main(["--check", "--root", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("docs/b.md is stale")


def test_studies_page_counts_runs_as_the_manifest_does():
    from trm.studies import manifest

    _, runs = manifest("depth_scaling", "tiny")
    cells = {(r.task, r.model, r.sig) for r in runs}
    row = next(line for line in (ROOT / "docs/studies.md").read_text().splitlines()
               if line.startswith("| [`depth_scaling`]"))
    assert f"| {len(cells)} / {len(runs)} |" in row


def test_glossary_names_existing_spec_keys():
    keys = set(C.flatten(C.to_dict(C.RunSpec())))
    assert set(docsgen.PAPER_NAMES) <= keys
    assert docsgen.PAPER_NAMES["model.n_latent_steps"] == ("n", "L_cycles")


def test_documented_trm_commands_parse():
    from trm import cli

    found = trm_commands()
    assert len(found) >= 5, "README and docs lost their python -m trm examples"
    for page, args in found:
        # --help on the full line: the command and every option before it must be accepted.
        with pytest.raises(SystemExit) as e:
            cli.main(args + ["--help"])
        assert e.value.code == 0, f"{page}: python -m trm {' '.join(args)} --help exits {e.value.code}"
        if args[0] != "data":  # `data build` parses inside trm.data.build
            try:
                cli.build_parser().parse_args(args)
            except SystemExit as e:
                pytest.fail(f"{page}: python -m trm {' '.join(args)} does not parse (exit {e.code})")


@pytest.mark.slow
def test_documented_snakemake_commands_dry_run():
    found = snakemake_commands()
    readme = [args for page, args in found if page == "README.md"]
    assert [] in readme, "README lost its bare `snakemake`"
    for page, args in found:
        cmd = [sys.executable, "-m", "snakemake", "-n", "--quiet", "--nolock", *args]
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, (f"{page}: snakemake {' '.join(args)} fails a dry run:\n"
                                      f"{done.stderr[-2000:]}")


def test_relative_links_resolve():
    link = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
    for page in PAGES:
        for target in link.findall(page.read_text()):
            if "://" in target:
                continue
            assert (page.parent / target).exists(), f"{page.name}: broken link {target}"


def test_every_trm_environment_variable_is_documented():
    names = set()
    for path in (ROOT / "trm").rglob("*.py"):
        names |= set(re.findall(r"[\"'](TRM_[A-Z0-9_]+)[\"']", path.read_text()))
    assert names, "found no TRM_* variable: the pattern is wrong"
    page = (ROOT / "docs/environment.md").read_text()
    missing = sorted(n for n in names if f"`{n}" not in page)
    assert not missing, f"docs/environment.md does not name {missing}"


def test_every_runs_table_column_is_documented():
    from trm.studies import RUN_COLUMNS

    page = (ROOT / "docs/outputs.md").read_text()
    missing = sorted(c for c in RUN_COLUMNS if f"`{c}`" not in page)
    assert not missing, f"docs/outputs.md does not describe runs.csv columns {missing}"


def test_readme_stays_short_and_keeps_its_test_command():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 220
    assert "pip install -e '.[test,fast]' && python -m pytest -q" in text


def test_architecture_page_names_every_part_of_the_package():
    """docs/architecture.md maps the package: a module or subpackage it does not name is one a
    newcomer cannot place (the layer test places it for the imports, this page for people)."""
    page = (ROOT / "docs" / "architecture.md").read_text()
    package = ROOT / "trm"
    parts = [p.name for p in package.iterdir()
             if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").is_file()]
    missing = [name for name in parts if (name if name.endswith(".py") else f"trm/{name}/") not in page]
    assert not missing, f"docs/architecture.md does not name: {missing}"
