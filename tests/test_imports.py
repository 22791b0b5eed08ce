"""The modules of trm/ import one way: no import cycle, and a stated layer order in which a
module imports its own layer or a lower one, never a higher one (the launcher knows the
trainer, the trainer never the launcher). The graph is read from the modules' own source,
every import statement counted, the lazy ones inside functions too: a cycle through a lazy
import is still two modules that cannot be understood, changed or tested apart."""

import ast
import graphlib
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "trm"

# Lowest first. An entry names a module, or a package and everything in it (the root package
# `trm` names only its own __init__). A new module must be placed here.
LAYERS = {
    # Shared leaves: the spec, atomic files, the run directory's contract. train.precision is
    # torch-free at import and imports nothing of trm: config resolves precision=auto with it.
    # train.curriculum is torch-free and imports only the spec: model.flops counts FLOPs
    # along its depth schedule.
    "shared": ("trm", "trm.config", "trm.spec", "trm.keys", "trm.files", "trm.rundir",
               "trm.retry", "trm.guard", "trm.train.precision", "trm.train.curriculum"),
    "plan": ("trm.studies", "trm.resources"),  # what to run, on what
    "data": ("trm.data",),
    "model": ("trm.model", "trm.describe"),
    "train": ("trm.train",),
    "launch": ("trm.launch", "trm.slurm"),
    "results": ("trm.results", "trm.progress"),
    "command line": ("trm.cli", "trm.__main__", "trm.docsgen"),
}


def modules(package_dir: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file under the package."""
    out = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = list(path.relative_to(package_dir.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def import_graph(package_dir: Path) -> dict[str, set[str]]:
    """Module -> the package's modules it imports. `from P import n` counts as importing P.n
    when that is a module, else P; relative imports are resolved. A module's import of a
    package that contains it is left out: Python has run that package's __init__ already."""
    mods = modules(package_dir)
    root = package_dir.name

    def owner(name: str) -> str | None:  # the longest module prefix of a dotted name
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {name: set() for name in mods}
    for name, path in mods.items():
        here = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [owner(a.name) for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = here[: len(here) - (node.level - 1)]
                    base = ".".join(anchor + ([base] if base else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else owner(base)
                           for a in node.names]
            else:
                continue
            for target in targets:
                if (target and target.split(".")[0] == root and target != name
                        and not name.startswith(target + ".")):
                    graph[name].add(target)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path that ends where it starts, or None when there is none."""
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as e:
        return list(reversed(e.args[1]))  # graphlib lists it against the import direction
    return None


def layer_of(module: str, layers: dict = LAYERS) -> str | None:
    best = None
    for layer, names in layers.items():
        for entry in names:
            covers = module == entry or ("." in entry and module.startswith(entry + "."))
            if covers and (best is None or len(entry) > len(best[1])):
                best = (layer, entry)
    return best[0] if best else None


def upward_imports(graph: dict[str, set[str]], layers: dict = LAYERS) -> list[str]:
    """Every import of a higher layer, as 'importer (layer) -> imported (layer)'."""
    rank = {layer: i for i, layer in enumerate(layers)}
    return [f"{m} ({layer_of(m, layers)}) -> {t} ({layer_of(t, layers)})"
            for m in sorted(graph) for t in sorted(graph[m])
            if rank[layer_of(m, layers)] < rank[layer_of(t, layers)]]


GRAPH = import_graph(PACKAGE)


def test_the_graph_sees_the_imports_we_know_of():
    # A module-level import, a lazy one inside a function, and a `from package import module`.
    assert "trm.train.loop" in GRAPH["trm.launch"]  # lazy, in TrainJob.__call__
    assert "trm.rundir" in GRAPH["trm.train.provenance"]
    # lazy, `from trm.train import precision`
    assert "trm.train.precision" in GRAPH["trm.spec.layering"]
    assert len(GRAPH) > 50


def test_no_import_cycle():
    cycle = find_cycle(GRAPH)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_every_module_has_a_layer():
    unplaced = [m for m in GRAPH if layer_of(m) is None]
    assert unplaced == [], f"place these modules in LAYERS (tests/test_imports.py): {unplaced}"


def test_no_module_imports_a_higher_layer():
    up = upward_imports(GRAPH)
    assert up == [], "imports against the layer order " + " < ".join(LAYERS) + ":\n" + "\n".join(up)


def test_the_trainer_never_imports_the_launcher():
    trainer = [m for m in GRAPH if m.startswith("trm.train.")]
    assert trainer and not [m for m in trainer if GRAPH[m] & {"trm.launch", "trm.slurm"}]


# ------------------------------------------------------------ the checks on constructed graphs
def test_find_cycle_reports_a_constructed_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    cycle = find_cycle(graph)
    assert cycle is not None and cycle[0] == cycle[-1] and set(cycle) == {"a", "b", "c"}
    for importer, imported in zip(cycle, cycle[1:]):
        assert imported in graph[importer]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set(), "d": {"a", "c"}}) is None


def test_upward_imports_are_named():
    layers = {"low": ("p.low",), "high": ("p.high",)}
    assert upward_imports({"p.low": set(), "p.high": {"p.low"}}, layers) == []
    assert upward_imports({"p.low": {"p.high"}, "p.high": set()}, layers) == [
        "p.low (low) -> p.high (high)"]


def test_a_cycle_through_a_lazy_relative_import_is_found(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("import os\n\ndef f():\n    from .sub import b\n    return b\n")
    (pkg / "sub" / "b.py").write_text("from ..a import f\n")
    (pkg / "c.py").write_text("import pkg.a\nfrom pkg import sub\n")
    graph = import_graph(pkg)
    assert graph == {"pkg": set(), "pkg.sub": set(), "pkg.a": {"pkg.sub.b"},
                     "pkg.sub.b": {"pkg.a"}, "pkg.c": {"pkg.a", "pkg.sub"}}
    assert set(find_cycle(graph)) == {"pkg.a", "pkg.sub.b"}
