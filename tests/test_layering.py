"""The command line sits on top: no module of the package imports trm.cli (only
`python -m trm`, trm/__main__.py, does), so there is no import circle through it."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "trm"


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{a.name}" for a in node.names}
    return names


def test_nothing_imports_the_command_line():
    offenders = [
        str(p.relative_to(PACKAGE.parent))
        for p in sorted(PACKAGE.rglob("*.py"))
        if p.name not in ("cli.py", "__main__.py") or p.parent != PACKAGE
        if {"trm.cli"} & _imports(p)
    ]
    assert offenders == []


def test_data_resolution_lives_in_the_data_package():
    from trm.data import resolve

    assert callable(resolve.ensure_data) and callable(resolve.default_data_dir)
    # cli keeps the names (for `python -m trm train`) but takes them from below.
    from trm import cli

    assert cli.ensure_data is resolve.ensure_data
