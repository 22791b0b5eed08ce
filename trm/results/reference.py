"""Published numbers (configs/paper_reference.yaml) and the "ours vs paper" table.

A run cell matches a published entry when the task is the same and every knob the entry
lists has that value in the run's resolved spec. Matching says the *model setting* is the
same; data scale and provenance usually are not (our tiny runs use generated 6x6 Sudoku,
the papers use Sudoku-Extreme 9x9), so each row carries our data provenance and a
comparability label, and rows on generated data are marked synthetic.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from trm import config
from trm.keys import check_keys
from trm.results import cells as cell_tools
from trm.results import stats
from trm.results.collect import parse_json_column

REFERENCE_PATH = config.CONFIG_DIR / "paper_reference.yaml"
TOP_KEYS = {"sources", "datasets", "protocols", "knob_sets", "cards", "entries"}
ENTRY_KEYS = {
    "id",
    "source",
    "where",
    "status",
    "setting",
    "metric",
    "value",
    "protocol",
    "depth",
    "nfp",
    "params",
    "note",
    "card",
}
REQUIRED_ENTRY_KEYS = {"id", "source", "where", "status", "setting", "metric", "value", "protocol",
                       "card"}
# A protocol card (issue K): how a number was produced, for published rows (the YAML's
# `card`, "not stated" where the source is silent) and for our cells (from the run specs).
CARD_FIELDS = {
    "task_split": "task and split",
    "test_subset": "test subset",
    "mixer": "mixer",
    "batch": "batch",
    "optimizer": "optimizer",
    "precision": "precision",
    "steps_or_epochs": "steps or epochs",
    "n_sup_test": "N_sup at test",
    "pass_at_k_voting": "pass@k and voting",
    "augmentations": "augmentations",
    "puzzle_embedding": "puzzle embedding",
    "data": "data",
}
SETTING_KEYS = {"task", "dataset", "model", "knobs"}
STATUSES = {"paper", "paper_2nd", "secondary", "unverified"}
TASKS = {"sudoku", "maze", "arc1", "arc2"}
ARC_TASKS = {"arc1", "arc2"}
# Our column for each published metric, in order of preference.
OUR_METRIC = {
    "exact_accuracy": ["exact_accuracy"],
    "pass@2": ["pass@2", "pass_at_2"],
    "pass@1": ["pass@1", "pass_at_1"],
}


class ReferenceError(ValueError):
    """paper_reference.yaml is malformed; the message names the entry and key."""


def validate_reference(data: dict, where: str = "paper_reference.yaml") -> dict:
    if not isinstance(data, dict):
        raise ReferenceError(f"{where}: expected a mapping at the top level")
    check_keys(data, TOP_KEYS, where, error=ReferenceError)
    spec_keys = config.knob_keys()
    sources, protocols = data.get("sources") or {}, data.get("protocols") or {}
    datasets = data.get("datasets") or {}
    seen = set()
    for i, entry in enumerate(data.get("entries") or []):
        name = f"{where}: entries[{i}]" + (
            f" ({entry.get('id')})" if isinstance(entry, dict) else ""
        )
        if not isinstance(entry, dict):
            raise ReferenceError(f"{name}: expected a mapping")
        check_keys(entry, ENTRY_KEYS, name, error=ReferenceError)
        for key in REQUIRED_ENTRY_KEYS - set(entry):
            raise ReferenceError(f"{name}: missing key '{key}'")
        if entry["id"] in seen:
            raise ReferenceError(f"{name}: duplicate id '{entry['id']}'")
        seen.add(entry["id"])
        if entry["status"] not in STATUSES:
            raise ReferenceError(
                f"{name}: status '{entry['status']}' not one of {', '.join(sorted(STATUSES))}"
            )
        if entry["source"] not in sources:
            raise ReferenceError(f"{name}: source '{entry['source']}' is not listed under sources")
        if entry["protocol"] not in protocols:
            raise ReferenceError(
                f"{name}: protocol '{entry['protocol']}' is not listed under protocols"
            )
        if entry["value"] is not None and not isinstance(entry["value"], (int, float)):
            raise ReferenceError(f"{name}: value must be a number (percent) or null")
        validate_card(entry["card"], f"{name}: card")
        setting = entry["setting"]
        if not isinstance(setting, dict):
            raise ReferenceError(f"{name}: setting must be a mapping")
        check_keys(setting, SETTING_KEYS, name, "setting.", error=ReferenceError)
        if setting.get("task") not in TASKS:
            raise ReferenceError(f"{name}: setting.task must be one of {', '.join(sorted(TASKS))}")
        if setting.get("dataset") not in datasets:
            raise ReferenceError(
                f"{name}: setting.dataset '{setting.get('dataset')}' is not listed under datasets"
            )
        for knob in setting.get("knobs") or {}:
            if knob not in spec_keys:
                raise ReferenceError(f"{name}: setting.knobs '{knob}' is not a RunSpec key")
    return data


def validate_card(card: Any, where: str) -> dict:
    """Exactly the CARD_FIELDS, each a non-empty text or a number ("not stated" when the
    source is silent: a blank would hide whether anyone looked)."""
    if not isinstance(card, dict):
        raise ReferenceError(f"{where}: expected a mapping of {', '.join(CARD_FIELDS)}")
    check_keys(card, CARD_FIELDS, where, error=ReferenceError)
    for key in CARD_FIELDS:
        if key not in card:
            raise ReferenceError(f"{where}: missing field '{key}' (write \"not stated\" if unknown)")
        value = card[key]
        if isinstance(value, bool) or not isinstance(value, (str, int, float)) or str(value).strip() == "":
            raise ReferenceError(f"{where}: field '{key}' must be a non-empty text or number, got {value!r}")
    return card


def load_reference(path: Path = REFERENCE_PATH) -> dict:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise ReferenceError(f"{path}: {e}") from e
    # YAML anchors make entries share one card object; give each its own, so that an edit
    # to one entry's card (or an error message) concerns that entry only.
    for entry in (data.get("entries") or []) if isinstance(data, dict) else []:
        if isinstance(entry, dict) and isinstance(entry.get("card"), dict):
            entry["card"] = dict(entry["card"])
    return validate_reference(data, str(path))


def protocol_text(protocol: dict) -> str:
    return "; ".join(f"{k}: {v}" for k, v in protocol.items())


def reference_frame(reference: dict | None = None) -> pd.DataFrame:
    """Every published number, one row each (value in percent)."""
    ref = reference or load_reference()
    rows = []
    for e in ref["entries"]:
        s = e["setting"]
        rows.append(
            {
                "id": e["id"],
                "task": s["task"],
                "dataset": s["dataset"],
                "model": s["model"],
                "metric": e["metric"],
                "value": e["value"] if e["value"] is not None else math.nan,
                "status": e["status"],
                "source": ref["sources"][e["source"]]["ref"],
                "where": e["where"],
                "depth": e.get("depth"),
                "params": e.get("params"),
                "protocol": e["protocol"],
                "knobs": json.dumps(s.get("knobs") or {}, sort_keys=True),
                "note": e.get("note", ""),
            }
        )
    return pd.DataFrame(rows)


def knobs_match(knobs: dict, values: dict) -> bool:
    """Every knob has its value (or one of its listed values) in `values`; a knob the
    run does not record never matches."""
    if not knobs:
        return False
    for key, want in knobs.items():
        if key not in values:
            return False
        have = cell_tools.normalize(values[key])
        options = want if isinstance(want, list) else [want]
        if have not in [cell_tools.normalize(w) for w in options]:
            return False
    return True


def _data_label(kind: str, source: str, spec: dict | None) -> str:
    data = (spec or {}).get("data") or {}
    shape = ""
    if data:
        grid = data.get("grid")
        shape = (
            f"{data.get('task')} {grid}x{grid}, "
            f"{data.get('n_train')} train / {data.get('n_test')} test"
        )
    if kind == "real":
        head = "real"
    elif kind == "generated":
        head = "SYNTHETIC (generated)"
    else:
        head = "provenance unknown"
    return ", ".join(filter(None, [head, source, shape]))


def _comparability(kind: str, entry: dict) -> str:
    if kind == "generated":
        return "setting only: ours is on synthetic data, absolute numbers are not comparable"
    if kind != "real":
        return "setting only: our data provenance is unknown"
    if entry["setting"]["task"] in ARC_TASKS:
        return "same task; check protocol (split, pass@k, scoring, voting)"
    return "same task; check dataset and training budget"


def _our_cells(runs: pd.DataFrame) -> list[dict]:
    """One record per (task, model, sig) over all studies, runs counted once."""
    if runs.empty:
        return []
    unique = (
        runs.drop_duplicates(subset=["sig", "seed", "model", "task"]) if "sig" in runs else runs
    )
    out = []
    keys = cell_tools.CELL_KEYS
    ids = [tuple(cell_tools.group_value(k, r[k]) for k in keys) for r in unique.to_dict("records")]
    for cell_id in dict.fromkeys(ids):
        group = unique[[i == cell_id for i in ids]]
        spec = next((parse_json_column(s) for s in group.get("spec_json", []) if s), None)
        values = config.flatten(spec) if spec else {}
        for col in group.columns:  # knob columns fill in what a missing run's spec lacks
            if "." in col and not col.endswith("_json") and col not in values:
                v = group[col].dropna()
                if len(v):
                    values[col] = v.iloc[0]
        out.append({"id": dict(zip(keys, cell_id)), "rows": group, "spec": spec, "values": values})
    return out


def reference_table(runs: pd.DataFrame, reference: dict | None = None) -> pd.DataFrame:
    """'Ours vs paper': one row per (published entry, our matching cell)."""
    ref = reference or load_reference()
    rows = []
    for cell in _our_cells(runs):
        task = cell["id"]["task"]
        group = cell["rows"]
        ok = group[group["status"] == "ok"]
        counts = cell_tools.status_counts(group["status"])
        kind = next((k for k in group["data_kind"] if k), "") if "data_kind" in group else ""
        source = next((k for k in group["data_source"] if k), "") if "data_source" in group else ""
        for e in ref["entries"]:
            setting = e["setting"]
            if setting["task"] != task or not knobs_match(
                setting.get("knobs") or {}, cell["values"]
            ):
                continue
            column = next(
                (
                    c
                    for c in OUR_METRIC.get(e["metric"], [e["metric"]])
                    if c in ok.columns and ok[c].notna().any()
                ),
                None,
            )
            ours_metric = column or "exact_accuracy"
            summary = stats.summarize(
                pd.to_numeric(ok[ours_metric], errors="coerce") if ours_metric in ok.columns else []
            )
            protocol = ref["protocols"][e["protocol"]]
            if task in ARC_TASKS:
                recorded = next((p for p in group.get("eval_protocol", []) if p), "")
                ours_protocol = "; ".join(
                    filter(
                        None,
                        [
                            (
                                f"{ours_metric}"
                                if column
                                else f"{e['metric']} not recorded; showing exact_accuracy"
                            ),
                            recorded,
                        ],
                    )
                )
            else:
                ours_protocol = "exact accuracy at the trained number of supervision steps"
            depth = pd.to_numeric(group["effective_depth"], errors="coerce").dropna()
            params = pd.to_numeric(group["params"], errors="coerce").dropna()
            rows.append(
                {
                    "reference_id": e["id"],
                    "task": task,
                    "paper_model": setting["model"],
                    "paper_dataset": setting["dataset"],
                    "paper_metric": e["metric"],
                    "paper_value": e["value"] if e["value"] is not None else math.nan,
                    "paper_status": e["status"],
                    "paper_source": f"{ref['sources'][e['source']]['ref']}, {e['where']}",
                    "paper_depth": e.get("depth"),
                    "paper_params": e.get("params"),
                    "paper_protocol": (
                        protocol_text(protocol) if task in ARC_TASKS else protocol.get("metric", "")
                    ),
                    "ours_model": cell["id"]["model"],
                    "ours_sig": cell["id"]["sig"],
                    "ours_status": cell_tools.status_text(counts),
                    "ours_n": summary.n,
                    "ours_mean": summary.mean * 100,
                    "ours_sd": summary.sd * 100,
                    "ours_ci_low": summary.ci_low * 100,
                    "ours_ci_high": summary.ci_high * 100,
                    "ours_metric": ours_metric,
                    "ours_protocol": ours_protocol,
                    "ours_effective_depth": depth.iloc[0] if len(depth) else math.nan,
                    "ours_params": params.iloc[0] if len(params) else math.nan,
                    "ours_data_kind": kind or "unknown",
                    "ours_data": _data_label(kind, source, cell["spec"]),
                    "comparability": _comparability(kind, e),
                    "note": e.get("note", ""),
                }
            )
    columns = [
        "reference_id",
        "task",
        "paper_model",
        "paper_dataset",
        "paper_metric",
        "paper_value",
        "paper_status",
        "paper_source",
        "paper_depth",
        "paper_params",
        "paper_protocol",
        "ours_model",
        "ours_sig",
        "ours_status",
        "ours_n",
        "ours_mean",
        "ours_sd",
        "ours_ci_low",
        "ours_ci_high",
        "ours_metric",
        "ours_protocol",
        "ours_effective_depth",
        "ours_params",
        "ours_data_kind",
        "ours_data",
        "comparability",
        "note",
    ]
    return pd.DataFrame(rows, columns=columns)


def _first(group: pd.DataFrame, column: str) -> Any:
    if column not in group:
        return None
    values = [v for v in group[column] if not cell_tools.is_missing(v) and v != ""]
    return values[0] if values else None


def our_card(group: pd.DataFrame, spec: dict | None) -> dict:
    """The protocol card of one of our cells, from its resolved spec and its runs' rows."""
    spec = spec or {}
    m, d = spec.get("model") or {}, spec.get("data") or {}
    t, o, ev = spec.get("train") or {}, spec.get("optim") or {}, spec.get("eval") or {}
    task = d.get("task", "?")
    ok = group[group["status"] == "ok"] if "status" in group else group
    n_test = _first(ok, "n_test")
    mixer = {"mlp": "MLP over the sequence (mlp_t)", "attention": "self-attention"}.get(
        m.get("mixer"), str(m.get("mixer")))
    if m.get("mixer") == "attention":
        mixer += f", positions {m.get('pos_encoding')}"
    if m.get("arch") and m.get("arch") != "recursive":
        mixer = f"{m['arch']} ({m.get('direct_layers')} layers), {mixer}"
    n_sup = _first(ok, "eval_n_supervision") or ev.get("n_supervision") or m.get("n_supervision")
    extra = ev.get("extra_n_supervision") or []
    if task in ARC_TASKS:
        voting = _first(group, "eval_protocol") or "pass@K, votes over augmentations (not recorded)"
    else:
        voting = "exact accuracy of one prediction; no voting"
    emb = (f"yes: {m.get('puzzle_emb_len')} prefix token(s), dim {m.get('puzzle_emb_dim')}; "
           "table not counted in params") if (m.get("puzzle_emb_dim") or 0) > 0 else "no"
    kind = _first(group, "data_kind") or "unknown"
    source = _first(group, "data_source") or d.get("source", "")
    card = {
        "task_split": f"{task} {d.get('grid')}x{d.get('grid')}, test split",
        "test_subset": f"{int(n_test)} examples" if n_test is not None
        else f"{d.get('n_test')} examples (planned; no finished run)",
        "mixer": mixer,
        "batch": str(t.get("global_batch_size")),
        "optimizer": f"{o.get('name')}; lr {o.get('lr')}, wd {o.get('weight_decay')}",
        "precision": str(t.get("precision") or _first(group, "precision") or "not recorded"),
        "steps_or_epochs": _steps_text(t, _first(ok, "steps")),
        "n_sup_test": (f"{int(float(n_sup))}" if n_sup is not None else "not recorded")
        + (f" (also read at {', '.join(map(str, extra))})" if extra else ""),
        "pass_at_k_voting": voting,
        "augmentations": f"{d.get('n_aug')} per training puzzle",
        "puzzle_embedding": emb,
        "data": ("SYNTHETIC (generated)" if kind == "generated" else kind)
        + (f", {source}" if source else ""),
    }
    return validate_card(card, f"our cell {_first(group, 'model')}")


def _steps_text(train: dict, steps_run: Any) -> str:
    """The budget as run: optimizer steps taken (finished runs), and the spec's budget."""
    planned = (f"{train.get('epochs')} epochs" if (train.get("epochs") or 0) > 0
               else f"{train.get('steps')} optimizer steps")
    if steps_run is None:
        return f"{planned} (planned; no finished run)"
    ran = f"{int(steps_run)} optimizer steps"
    return ran if ran == planned else f"{ran} (spec: {planned})"


def _card_table(rows: list[tuple[str, dict]], first: str) -> str:
    frame = pd.DataFrame([{first: name, **{CARD_FIELDS[k]: card[k] for k in CARD_FIELDS}}
                          for name, card in rows])
    return frame.to_markdown(index=False)


def protocol_cards_markdown(runs: pd.DataFrame, reference: dict, entry_ids=None) -> str:
    """'## Protocol cards': one card (table row) per published entry (all, or entry_ids),
    then one per cell of ours, so every printed number says how it was produced."""
    entries = [e for e in reference["entries"] if entry_ids is None or e["id"] in entry_ids]
    lines = ["## Protocol cards", "",
             "How each number was produced (issue K). Published: from the papers, their code "
             "and README (\"not stated\" where the source is silent). Ours: from the run specs.",
             "", "### Published rows", "",
             _card_table([(e["id"], e["card"]) for e in entries], "entry") if entries
             else "_none_", "", "### Our cells", ""]
    ours = [(f"{c['id']['task']}/{c['id']['model']} ({c['id']['sig']})", our_card(c["rows"], c["spec"]))
            for c in _our_cells(runs)]
    lines += [_card_table(ours, "cell") if ours else "_no runs_", ""]
    return "\n".join(lines)


def _pct(v: Any) -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.1f}"


def reference_markdown(table: pd.DataFrame) -> str:
    if table.empty:
        return "_No run matches a published setting._"
    view = pd.DataFrame(
        {
            "Task": table["task"],
            "Paper setting": table["paper_model"],
            "Paper (%)": [
                f"{_pct(v)} [{s}]" for v, s in zip(table["paper_value"], table["paper_status"])
            ],
            "Paper source": table["paper_source"],
            "Ours": table["ours_model"] + " (" + table["ours_sig"].astype(str) + ")",
            "Ours (%)": [
                f"{_pct(m)} ± {_pct(s)}" if n > 1 else (_pct(m) if n else "—")
                for m, s, n in zip(table["ours_mean"], table["ours_sd"], table["ours_n"])
            ],
            "n": table["ours_n"],
            "Our data": table["ours_data"],
            "Status": table["ours_status"],
            "Comparability": table["comparability"],
        }
    )
    return view.to_markdown(index=False)


def write_reference_table(
    runs: pd.DataFrame, out_dir: Path, name: str = "paper_reference", reference: dict | None = None
) -> dict[str, Path]:
    """<out_dir>/<name>.csv and .md (the latter also lists the ARC protocols used)."""
    ref = reference or load_reference()
    table = reference_table(runs, ref)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"csv": out_dir / f"{name}.csv", "md": out_dir / f"{name}.md"}
    table.to_csv(paths["csv"], index=False)
    lines = [
        "# Ours vs published",
        "",
        "Matching is on task + model knobs only. Rows whose data are SYNTHETIC (generated) "
        "place our setting beside the paper's; their absolute numbers are not comparable. "
        "Paper status: paper = printed in the paper; paper_2nd = printed, digits completed "
        "from a secondary source; secondary / unverified = not from the paper.",
        "",
        reference_markdown(table),
        "",
    ]
    arc = table[table["task"].isin(ARC_TASKS)]
    if len(arc):
        lines += ["## ARC protocols", ""]
        for pid in sorted(
            {e["protocol"] for e in ref["entries"] if e["id"] in set(arc["reference_id"])}
        ):
            lines.append(f"- **{pid}**: {protocol_text(ref['protocols'][pid])}")
        lines.append("")
    lines.append(protocol_cards_markdown(runs, ref))
    paths["md"].write_text("\n".join(lines))
    return paths
