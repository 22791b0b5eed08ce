"""Refusing the keys a file's vocabulary does not define, one way for every file the suite
reads (specs, scales, studies, the paper reference): a misspelt key would otherwise be
ignored in silence. Imports nothing of trm, so that trm.config can use it too; each caller
passes its own error class."""

from __future__ import annotations

from typing import Any, Collection


def check_keys(mapping: dict, allowed: Collection[str], where: Any = "", prefix: str = "",
               valid: str | None = None, error: type[Exception] = ValueError) -> None:
    """Raise `error` for the first key of `mapping` not in `allowed`, in one line:
    "<where>: unknown key '<prefix><key>' (valid: ...)". `where` names the file (and entry),
    `prefix` the key's dotted position in it; `valid` replaces the list of allowed keys
    where that list is too long to read."""
    for key in mapping:
        if key not in allowed:
            head = f"{where}: " if str(where) else ""
            raise error(f"{head}unknown key '{prefix}{key}' (valid: {valid or ', '.join(sorted(allowed))})")
