"""The one recursive-reasoning model: HRM and TRM (and their ablations) as knobs of ModelSpec.

One supervision step (one call of `forward`), for arch "recursive":

    x = embed(puzzle prefix ++ tokens)
    repeat T = n_cycles times:                       # paper T, official H_cycles
        repeat n = n_latent_steps times:             # paper n, official L_cycles
            z = f_L(z + y + x)                       # latent reasoning
        y = f_H(y + z)                               # answer update (no x)
    logits = lm_head(y)[prefix:], q = q_head(y[0])

f_L is f_H when share_weights (TRM: one net); otherwise two nets (HRM: 4 + 4 blocks).
The T*(n+1) network calls are numbered 1..T(n+1); only the last `n_grad_calls` run with
autograd, all earlier ones under no_grad (so memory does not grow with T):
    one_step   -> last 2 calls = last f_L + last f_H (HRM's 1-step gradient)
    last_cycle -> last n+1 calls (TRM)
    last_k     -> last grad_last_k calls
    all        -> every call (full backprop through the step)
The latents are detached on return: deep supervision never backpropagates across steps.

Grouping of the input sums (the rule `run` in `_recurse` implements). Each network input is
    state + injection
where the state is the latent being rewritten and the injection everything added to it, and
each side is summed left to right BEFORE the two are added, exactly as the official code
(the official ReasoningModule computes `hidden_states + input_injection`, with the injection
summed at the call site):
    y_z (trm.py, HRM hrm_act_v1.py, TRM-repo hrm.py):  f_L(z + (y + x)),   f_H(y + z)
    single_z (trm_singlez.py):                          f_L(z + x),         f_H(z)
    multi_scale_z (trm_hier6.py), s = ((z1 + z2) + ...) + zn:
                                                        f_L(s + (y + x)),   f_H(y + s)
    transformer_act (transformers_baseline.py):         f(y + x)
Why: float addition is not associative, so (z + y) + x and z + (y + x) differ in the last
bit; the recursion amplifies that difference about 25x per supervision step (TRM-MLP logits
1.45 apart after 4 steps in fp32), which hides every other comparison with the official code.
With this grouping, forward, loss, gradients and carries equal the official code's bit for
bit in fp32 on CPU (tests/test_grouping.py pins the grouping).
"""

from __future__ import annotations

import torch
from torch import nn

from trm.config import ModelSpec
from trm.model.heads import PuzzleEmbedding, q_head, token_embedding
from trm.model.layers import Network, Rotary, linear, trunc_normal_


def grad_call_count(spec: ModelSpec, n: int | None = None, T: int | None = None) -> int:
    """How many of the final network calls of a supervision step carry gradient (at the
    spec's depth, or at n latent steps and T cycles when given)."""
    if spec.arch != "recursive":
        return 1
    n = spec.n_latent_steps if n is None else n
    T = spec.n_cycles if T is None else T
    total = T * (n + 1)
    k = {
        "one_step": 2,
        "last_cycle": n + 1,
        "last_k": spec.grad_last_k,
        "all": total,
    }[spec.grad_steps]
    return min(k, total)


def latent_names(spec: ModelSpec) -> list[str]:
    """Names of the carried latents, in the order of the latents tuple."""
    if spec.arch != "recursive":
        return ["y"]
    if spec.latents == "y_z":
        return ["y", "z"]  # official z_H, z_L
    if spec.latents == "single_z":
        return ["z"]
    return ["y"] + [f"z{k + 1}" for k in range(multi_scale_count(spec))]


# Official trm_hier6 always carries six z's (its L_cycles is 6 in the paper's setting).
OFFICIAL_MULTI_SCALE_ZS = 6


def multi_scale_count(spec: ModelSpec) -> int:
    """z's carried by multi_scale_z: six (official, "fixed6") or one per latent step."""
    if spec.multi_scale_layout == "per_step":
        return spec.n_latent_steps
    return OFFICIAL_MULTI_SCALE_ZS


class RecursiveReasoningModel(nn.Module):
    def __init__(self, spec: ModelSpec, vocab_size: int, seq_len: int, num_puzzle_ids: int):
        super().__init__()
        self.spec = spec
        D = spec.hidden_size
        self.seq_len = seq_len
        # Puzzle-embedding prefix tokens (HRM 1, TRM 16); none when the embedding is off.
        self.prefix_len = spec.puzzle_emb_len if spec.puzzle_emb_dim > 0 else 0
        if spec.puzzle_emb_dim > self.prefix_len * D and spec.puzzle_emb_dim > 0:
            raise ValueError(
                f"puzzle_emb_dim {spec.puzzle_emb_dim} does not fit in puzzle_emb_len "
                f"{spec.puzzle_emb_len} x hidden_size {D}"
            )
        n_positions = seq_len + self.prefix_len

        # ---- inputs
        self.embed_scale = D**0.5
        self.token_emb = token_embedding(vocab_size, D)
        self.puzzle_emb = (
            PuzzleEmbedding(num_puzzle_ids, spec.puzzle_emb_dim) if spec.puzzle_emb_dim > 0 else None
        )
        self.pos_emb = None
        if spec.pos_encoding == "learned":
            self.pos_emb = nn.Parameter(trunc_normal_(torch.empty(n_positions, D), std=D**-0.5))
        # RoPE only matters for attention; with the MLP mixer it is simply unused (as official).
        self.rotary = None
        if spec.pos_encoding == "rope" and spec.mixer == "attention":
            self.rotary = Rotary(D // spec.num_heads, n_positions, spec.rope_theta)

        # ---- the networks
        block = dict(hidden=D, num_heads=spec.num_heads, expansion=spec.expansion,
                     eps=spec.norm_eps, mixer=spec.mixer, n_positions=n_positions,
                     ffn_multiple=spec.ffn_multiple)
        if spec.arch == "recursive":
            self.net_L = Network(spec.layers, **block)
            self.net_H = None if spec.share_weights else Network(spec.layers, **block)
        else:  # "direct" / "transformer_act": one deeper network, no recursion
            self.net_L = Network(spec.direct_layers, **block)
            self.net_H = None

        # ---- outputs
        self.lm_head = linear(D, vocab_size)
        self.q_head = q_head(D)

        # ---- fixed (never trained) latent inits, one vector per latent, broadcast over
        # positions; halted samples are reset to these (official H_init / L_init).
        self.latent_names = latent_names(spec)
        for name in self.latent_names:
            self.register_buffer(f"init_{name}", trunc_normal_(torch.empty(D), std=1.0))

        self.set_depth(spec.n_latent_steps, spec.n_cycles)

    def set_depth(self, n_latent_steps: int, n_cycles: int) -> None:
        """Run the recursion at n latent steps and T cycles from now on (the spec's depth
        at construction). Depth is not a weight: the same parameters run at any (n, T), which
        is what test-time depth and a depth curriculum change. multi_scale_z "fixed6" keeps
        its six z's, so n may not exceed six there; "per_step" carries one z per step of the
        spec's n, so n may not exceed that."""
        spec = self.spec
        if n_latent_steps < 1 or n_cycles < 1:
            raise ValueError(f"depth must be >= 1, got n={n_latent_steps}, T={n_cycles}")
        if spec.arch == "recursive" and spec.latents == "multi_scale_z":
            limit = multi_scale_count(spec)
            if n_latent_steps > limit:
                raise ValueError(f"multi_scale_z carries {limit} z's; n={n_latent_steps} "
                                 "needs one per latent step")
        self.n_latent_steps, self.n_cycles = n_latent_steps, n_cycles
        recursive = spec.arch == "recursive"
        self.n_calls = n_cycles * (n_latent_steps + 1) if recursive else 1
        self.n_grad_calls = grad_call_count(spec, n_latent_steps, n_cycles)

    # ------------------------------------------------------------------ bookkeeping

    @property
    def f_L(self) -> Network:
        return self.net_L

    @property
    def f_H(self) -> Network:
        return self.net_H if self.net_H is not None else self.net_L

    def param_counts(self) -> dict[str, int]:
        table = self.puzzle_emb.weight.numel() if self.puzzle_emb is not None else 0
        # The puzzle table is a buffer, so parameters() already excludes it.
        return {"params": sum(p.numel() for p in self.parameters() if p.requires_grad),
                "puzzle_embedding_params": table}

    def call_counts(self) -> dict[str, int]:
        return {"forward_calls_per_step": self.n_calls, "grad_calls_per_step": self.n_grad_calls}

    # ------------------------------------------------------------------ latents

    def initial_latents(self, batch_size: int, device=None) -> tuple[torch.Tensor, ...]:
        shape = (batch_size, self.seq_len + self.prefix_len, self.spec.hidden_size)
        return tuple(
            getattr(self, f"init_{n}").to(device).expand(shape).clone() for n in self.latent_names
        )

    def reset_latents(self, latents: tuple[torch.Tensor, ...], reset: torch.Tensor):
        keep_init = reset.view(-1, 1, 1)
        return tuple(
            torch.where(keep_init, getattr(self, f"init_{n}"), lat)
            for n, lat in zip(self.latent_names, latents)
        )

    # ------------------------------------------------------------------ forward

    def embed_inputs(self, inputs: torch.Tensor, puzzle_ids: torch.Tensor) -> torch.Tensor:
        """x = sqrt(D) * [puzzle prefix ; token embeddings] (+ learned positions, / sqrt 2)."""
        x = self.token_emb(inputs)
        if self.puzzle_emb is not None:
            rows = self.puzzle_emb(puzzle_ids)
            # The official code zero-pads the embedding vector to prefix_len * D: with
            # dim 512 = D and 16 prefix tokens, token 0 is the embedding, 1..15 are zeros.
            pad = self.prefix_len * self.spec.hidden_size - rows.shape[-1]
            rows = nn.functional.pad(rows, (0, pad)).view(-1, self.prefix_len, self.spec.hidden_size)
            x = torch.cat((rows.to(x.dtype), x), dim=1)
        if self.pos_emb is not None:
            # Official: 1/sqrt(2) keeps the variance of (token + position) at that of a token.
            x = 0.707106781 * (x + self.pos_emb)
        return self.embed_scale * x

    def forward(self, latents, inputs, puzzle_ids):
        """One supervision step. Returns (detached latents, logits [B, seq_len, V] float32,
        q_halt [B] float32, q_continue [B] float32 or None)."""
        x = self.embed_inputs(inputs, puzzle_ids)
        if self.spec.arch == "recursive":
            latents, y = self._recurse(latents, x)
        elif self.spec.arch == "transformer_act":
            # Official transformers_baseline ("HRM ACT V2"): one pass y = f(y + x) per
            # supervision step, no inner cycles; the carried y is what ACT refines.
            y = self.f_L(latents[0] + x, self.rotary)
            latents = (y,)
        else:  # "direct": y = f(x); the carry is returned for loop uniformity but never read.
            y = self.f_L(x, self.rotary)
            latents = (y,)
        logits = self.lm_head(y[:, self.prefix_len:]).float()
        q = self.q_head(y[:, 0]).float()
        q_continue = q[:, 1] if self.spec.halting == "q_learning" else None
        return tuple(t.detach() for t in latents), logits, q[:, 0], q_continue

    def _recurse(self, latents, x):
        """T cycles of (n z-updates, 1 y-update); the last n_grad_calls calls carry gradient."""
        spec = self.spec
        grad_wanted = torch.is_grad_enabled()
        first_grad_call = self.n_calls - self.n_grad_calls + 1
        call = 0

        def left_sum(ts) -> torch.Tensor:
            h = ts[0]
            for t in ts[1:]:
                h = h + t
            return h

        def run(net: Network, *terms: torch.Tensor) -> torch.Tensor:
            """net(state + injection), grouped as the official code (module docstring,
            "Grouping"): terms = the updated latent(s) first, then the injected ones."""
            nonlocal call
            call += 1
            if terms[-1] is x:
                # A z-update (only z-updates see x): the injection is (y + x), or x alone with
                # a single z; the state is the z, or the left-to-right sum of the z's.
                n_inject = 1 if spec.latents == "single_z" else 2
            else:
                # A y-update: the state is y, the injection the z (or the sum of the z's).
                n_inject = len(terms) - 1
            # The sum is inside the context too, so no-grad calls build no graph at all.
            with torch.set_grad_enabled(grad_wanted and call >= first_grad_call):
                h = left_sum(terms[: len(terms) - n_inject])
                if n_inject:
                    h = h + left_sum(terms[len(terms) - n_inject:])
                return net(h, self.rotary)

        n, T = self.n_latent_steps, self.n_cycles  # set_depth; the spec's at construction
        if spec.latents == "y_z":
            y, z = latents
            for _ in range(T):
                for _ in range(n):
                    z = run(self.f_L, z, y, x)
                y = run(self.f_H, y, z)
            return (y, z), y

        if spec.latents == "single_z":
            # Official trm_singlez: only z is carried; the "y-update" is f_H(z) and y = z.
            (z,) = latents
            for _ in range(T):
                for _ in range(n):
                    z = run(self.f_L, z, x)
                z = run(self.f_H, z)
            return (z,), z

        # multi_scale_z, after official trm_hier6: separate z's; latent step k of every cycle
        # rewrites z_k from the SUM of all z's, and y reads that sum:
        #     z_k = f_L(sum_j z_j + (y + x)),  k = 1..n;   y = f_H(y + sum_j z_j)
        # "fixed6" (official) carries six z's whatever n is: with n < 6, z_{n+1}..z_6 never
        # change and enter every sum at their init. "per_step" carries exactly n.
        y, *zs = latents
        for _ in range(T):
            for k in range(n):
                zs[k] = run(self.f_L, *zs, y, x)
            y = run(self.f_H, y, *zs)
        return (y, *zs), y
