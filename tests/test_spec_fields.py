"""One definition per knob: a spec field's knob(...) metadata is where its range, its
signature behaviour and its doc line come from (trm/spec/fields.py); FIELD_RANGES,
NON_SEMANTIC, SIGNATURE_SKIPS_DEFAULT and the docs/knobs.md rows are derived from it.

`python tests/test_spec_fields.py` prints three knobs' definitions and what is derived
from them."""

import dataclasses
import inspect
import re
import typing
from dataclasses import dataclass

import pytest

from trm import config as C
from trm import docsgen
from trm.spec import fields as spec_fields
from trm.spec import signature as run_signature
from trm.spec.fields import KNOBS, Knob, knob

# A structural knob, a regularisation knob, and a knob added after run directories existed.
EXAMPLES = ("model.n_latent_steps", "optim.weight_decay", "data.max_lookups")
NUMERIC = (int, float, int | None, float | None, list[int])


def field_of(key: str) -> dataclasses.Field:
    return next(f for k, f, _ in spec_fields.knob_fields() if k == key)


def docs_row(key: str) -> list[str]:
    """The cells of `key`'s row in the generated knobs page."""
    row = next(line for line in docsgen.knobs_page().splitlines()
               if line.startswith(f"| `{key}` |"))
    return [cell.strip() for cell in row.strip("|").split(" | ")]


def with_value(key: str, value) -> C.RunSpec:
    spec = C.RunSpec()
    section, name = key.split(".")
    setattr(getattr(spec, section), name, value)
    return spec


def missing_metadata(cls: type) -> list[str]:
    """Fields of a spec class with no knob, an empty or multi-line doc, or (numbers) no range."""
    hints = typing.get_type_hints(cls)
    bad = []
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            continue  # a section of RunSpec, not a knob
        k = f.metadata.get("knob")
        if not isinstance(k, Knob) or not k.doc.strip() or "\n" in k.doc:
            bad.append(f"{f.name}: no knob(doc=...)")
        elif hints[f.name] in NUMERIC and k.range is None:
            bad.append(f"{f.name}: a number without a range")
    return bad


# ----------------------------------------------------------------------- three knobs, one place
@pytest.mark.parametrize("key", EXAMPLES)
def test_the_range_is_the_fields_own(key):
    k = field_of(key).metadata["knob"]
    assert C.FIELD_RANGES[key] is k.range
    low = k.range.low - 1 if not k.range.low_open else k.range.low
    with pytest.raises(C.SpecError, match=re.escape(f"'{key}' must be {k.range}")):
        C.resolve("trm_mlp", "sudoku", "tiny", {key: int(low)})
    assert docs_row(key)[3] == str(k.range)


@pytest.mark.parametrize("key", EXAMPLES)
def test_the_signature_behaviour_is_the_fields_own(key):
    f = field_of(key)
    k, default = f.metadata["knob"], spec_fields.default_of(f)
    assert (key in C.NON_SEMANTIC) is (not k.semantic)
    assert (key in C.SIGNATURE_SKIPS_DEFAULT) is k.skip_at_default
    changed = with_value(key, default + 1)
    assert (C.signature(changed) != C.signature(C.RunSpec())) is k.semantic
    if k.skip_at_default:
        # At its default the key is not hashed: the signature is the one the spec had before
        # the knob existed (the flat fields without it).
        flat = {name: v for name, v in spec_fields.flat_fields(C.RunSpec()).items()
                if name not in C.NON_SEMANTIC and name not in C.SIGNATURE_SKIPS_DEFAULT}
        assert C.signature(C.RunSpec()) == run_signature._hash(flat)
    assert docs_row(key)[4] == docsgen._signature_text(k)


@pytest.mark.parametrize("key", EXAMPLES)
def test_the_doc_line_and_names_are_the_fields_own(key):
    k = field_of(key).metadata["knob"]
    assert docs_row(key)[5] == k.doc
    if k.paper or k.official:
        assert docsgen.PAPER_NAMES[key] == (k.paper, k.official)
    else:
        assert key not in docsgen.PAPER_NAMES


def test_the_three_definitions():
    """What the three fields say (so a change to one of them is a change seen here)."""
    n = KNOBS["model.n_latent_steps"]
    assert (n.paper, n.official, str(n.range), n.semantic, n.skip_at_default) == \
        ("n", "L_cycles", "> 0", True, False)
    wd = KNOBS["optim.weight_decay"]
    assert (wd.official, str(wd.range), wd.semantic, wd.skip_at_default) == \
        ("weight_decay", ">= 0", True, False)
    lookups = KNOBS["data.max_lookups"]
    assert (str(lookups.range), lookups.semantic, lookups.skip_at_default) == ("> 0", True, True)
    assert C.SIGNATURE_SKIPS_DEFAULT["data.max_lookups"] == 1
    for key in EXAMPLES:  # each is one knob(...) call, the only place the key is defined
        assert definition(key).split("=", 1)[1].strip().startswith("knob(")


# ----------------------------------------------------------------------- every field is covered
def test_every_field_has_a_knob_the_tables_cover():
    for cls in (C.ModelSpec, C.DataSpec, C.OptimSpec, C.TrainSpec, C.EvalSpec, C.RunSpec,
                C.DepthStage):
        assert missing_metadata(cls) == [], cls.__name__
    keys = {key for key, _, _ in spec_fields.knob_fields()}
    assert keys == C.knob_keys() == set(KNOBS)
    assert set(C.FIELD_RANGES) == {key for key, k in KNOBS.items() if k.range is not None}
    assert C.NON_SEMANTIC == {key for key, k in KNOBS.items() if not k.semantic}
    assert set(C.SIGNATURE_SKIPS_DEFAULT) == {key for key, k in KNOBS.items() if k.skip_at_default}
    for key in keys - {"name"}:
        assert docs_row(key)[5], f"{key} has no doc line in docs/knobs.md"


def test_a_field_without_metadata_is_caught():
    @dataclass
    class Section:
        documented: int = knob(1, range=spec_fields.POSITIVE, doc="a documented number")
        plain: int = 2
        no_range: float = knob(0.5, doc="a number without its range")
        two_lines: bool = knob(False, doc="first line\nsecond line")

    assert missing_metadata(Section) == ["plain: no knob(doc=...)",
                                         "no_range: a number without a range",
                                         "two_lines: no knob(doc=...)"]


def test_a_list_default_is_a_fresh_list_per_spec():
    a, b = C.RunSpec(), C.RunSpec()
    a.eval.extra_n_supervision.append(4)
    assert b.eval.extra_n_supervision == [] and C.EvalSpec().extra_n_supervision == []


def definition(key: str) -> str:
    """The source lines of `key`'s field in trm/spec/fields.py."""
    section, name = key.split(".")
    cls = typing.get_type_hints(C.RunSpec)[section]
    lines = inspect.getsource(cls).splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith(f"    {name}:"))
    last = first + 1
    while last < len(lines) and lines[last].startswith("        "):
        last += 1
    return "\n".join(lines[first:last])


def example(keys=EXAMPLES) -> str:
    """Each knob's one definition and what is derived from it (for a closing note)."""
    out = []
    for key in keys:
        out += [f"# {key}", definition(key),
                f"#   FIELD_RANGES[key]            -> {C.FIELD_RANGES.get(key)}",
                f"#   key in NON_SEMANTIC          -> {key in C.NON_SEMANTIC}",
                f"#   SIGNATURE_SKIPS_DEFAULT[key] -> "
                f"{C.SIGNATURE_SKIPS_DEFAULT.get(key, '(not there: always hashed)')}",
                f"#   glossary (paper, official)   -> "
                f"{docsgen.PAPER_NAMES.get(key, '(not in the glossary)')}",
                "#   docs/knobs.md row            -> | " + " | ".join(docs_row(key)) + " |",
                ""]
    return "\n".join(out)


if __name__ == "__main__":
    print(example())
