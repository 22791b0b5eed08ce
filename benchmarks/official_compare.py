"""Bit-for-bit check of our model against the official TinyRecursiveModels code, fp32 on CPU.

    git -C <TinyRecursiveModels clone> archive HEAD models | tar -x -C /tmp/trm_official
    python benchmarks/official_compare.py --official /tmp/trm_official [trm_mlp trm_att hrm]

The official inner models (models/recursive_reasoning/trm.py; hrm.py of the same repo, whose
forward is sapientinc/HRM's hrm_act_v1 with SDPA in place of flash-attn) are built in fp32
(forward_dtype float32) at the Sudoku paper shapes, our weights and latent inits are copied in
by name, and two chained supervision steps are compared with torch.equal: logits, q_halt, both
carries, the official stablemax loss, every parameter gradient and the puzzle-row gradient.
The official code is run from the given folder, not copied; einops (two transposes there) is
stubbed when it is not installed. Prints one line per model and exits 1 on any difference.
"""
import argparse
import importlib.util
import sys
import tempfile
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
_ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
_ap.add_argument("--official", required=True, help="folder holding the official models/ package")
_ap.add_argument("models", nargs="*", default=["trm_mlp", "trm_att", "hrm"])
_args = _ap.parse_args()
if importlib.util.find_spec("einops") is None:
    _shim = Path(tempfile.mkdtemp())
    (_shim / "einops.py").write_text(
        "def rearrange(t, pattern):\n"
        "    # the only two patterns the official layers use: B S H D <-> B H S D\n"
        "    assert pattern in ('B S H D -> B H S D', 'B H S D -> B S H D'), pattern\n"
        "    return t.transpose(1, 2)\n")
    sys.path.insert(0, str(_shim))
sys.path[:0] = [str(Path(_args.official).resolve()), str(REPO)]
torch.set_num_threads(1)
from models.recursive_reasoning import trm as OT, hrm as OH
from models.losses import stablemax_cross_entropy
from trm import config as C
from trm.model import build_model

V, L, B = 11, 81, 3
def official(name):
    common = dict(batch_size=B, seq_len=L, puzzle_emb_ndim=512, num_puzzle_identifiers=1, vocab_size=V,
                  hidden_size=512, expansion=4, num_heads=8, halt_max_steps=16, halt_exploration_prob=0.1,
                  forward_dtype="float32")
    if name == "hrm":
        cfg = OH.HierarchicalReasoningModel_ACTV1Config(**common, H_cycles=2, L_cycles=2, H_layers=4, L_layers=4, pos_encodings="rope")
        return OH.HierarchicalReasoningModel_ACTV1_Inner(cfg)
    mlp = name == "trm_mlp"
    cfg = OT.TinyRecursiveReasoningModel_ACTV1Config(**common, H_cycles=3, L_cycles=6, H_layers=0, L_layers=2,
                                                     pos_encodings="none" if mlp else "rope", mlp_t=mlp, puzzle_emb_len=16)
    return OT.TinyRecursiveReasoningModel_ACTV1_Inner(cfg)

def mapping(ours, theirs):
    """Our parameter name -> official name, by position in the block and role."""
    m = {"token_emb.weight": "embed_tokens.embedding_weight", "lm_head.weight": "lm_head.weight",
         "q_head.weight": "q_head.weight", "q_head.bias": "q_head.bias"}
    for net, lvl in (("net_L", "L_level"), ("net_H", "H_level")):
        for i in range(8):
            p, q = f"{net}.blocks.{i}.", f"{lvl}.layers.{i}."
            m |= {p + "attn.qkv.weight": q + "self_attn.qkv_proj.weight", p + "attn.out.weight": q + "self_attn.o_proj.weight",
                  p + "seq_mlp.mlp.gate_up.weight": q + "mlp_t.gate_up_proj.weight", p + "seq_mlp.mlp.down.weight": q + "mlp_t.down_proj.weight",
                  p + "mlp.gate_up.weight": q + "mlp.gate_up_proj.weight", p + "mlp.down.weight": q + "mlp.down_proj.weight"}
    op = dict(ours.named_parameters()); tp = dict(theirs.named_parameters())
    m = {k: v for k, v in m.items() if k in op}
    assert set(m.values()) == set(tp), (set(tp) - set(m.values()), set(m.values()) - set(tp))
    return m, op, tp

ok_all = True
for name in _args.models:
    spec = C.resolve(name, "sudoku", "paper", {"train.precision": "fp32"}).model
    torch.manual_seed(0)
    ours = build_model(spec, V, L, 1)
    theirs = official(name)
    m, op, tp = mapping(ours, theirs)
    with torch.no_grad():
        for k, v in m.items():
            tp[v].copy_(op[k])
        theirs.H_init.copy_(ours.init_y); theirs.L_init.copy_(ours.init_z)
        g = torch.Generator().manual_seed(1)
        table = torch.randn(1, 512, generator=g) * 0.1  # a nonzero puzzle row
        ours.puzzle_emb.weight.copy_(table); theirs.puzzle_emb.weights.copy_(table)
    ours.train(); theirs.train()
    inputs = torch.randint(1, V, (B, L), generator=g)
    labels = torch.randint(1, V, (B, L), generator=g)
    pids = torch.zeros(B, dtype=torch.long)
    lat = ours.initial_latents(B)
    carry = theirs.reset_carry(torch.ones(B, dtype=torch.bool), theirs.empty_carry(B))
    batch = {"inputs": inputs, "puzzle_identifiers": pids}
    res = {}
    for step in range(2):
        lat, lo, qh, qc = ours(lat, inputs, pids)
        carry, lt, (th, tc) = theirs(carry, batch)
        res[f"step{step + 1} logits"] = torch.equal(lo, lt.float())
        res[f"step{step + 1} q_halt"] = torch.equal(qh, th)
        res[f"step{step + 1} carry y/z_H"] = torch.equal(lat[0], carry.z_H)
        res[f"step{step + 1} carry z/z_L"] = torch.equal(lat[1], carry.z_L)
    # The official loss on both outputs of step 2 (stablemax, float64), then backward.
    lo_loss = stablemax_cross_entropy(lo, labels).sum() + torch.nn.functional.binary_cross_entropy_with_logits(qh, torch.ones_like(qh), reduction="sum")
    lt_loss = stablemax_cross_entropy(lt, labels).sum() + torch.nn.functional.binary_cross_entropy_with_logits(th, torch.ones_like(th), reduction="sum")
    res["loss"] = torch.equal(lo_loss, lt_loss)
    lo_loss.backward(); lt_loss.backward()
    res[f"all {len(m)} param grads"] = all(torch.equal(op[k].grad, tp[v].grad) for k, v in m.items())
    res["puzzle-row grad"] = torch.equal(ours.puzzle_emb.local_rows.grad, theirs.puzzle_emb.local_weights.grad)
    maxdiff = float((lo - lt).detach().abs().max())
    print(name, "bit-equal:", res, "max |logit diff|", maxdiff, flush=True)
    ok_all &= all(res.values())
print("ALL BIT-EQUAL" if ok_all else "DIFFERENCES")
sys.exit(0 if ok_all else 1)
