"""Halting targets and decisions on constructed batches (official HRM/TRM semantics)."""

import torch

from trm.train.loop import halt_decision, q_continue_target, sequence_correct


def test_sequence_correct_ignores_padding():
    labels = torch.tensor([[2, 3, 0], [2, 3, 4], [5, 0, 0]])
    mask = labels != 0
    pred = torch.tensor([[2, 3, 9], [2, 9, 4], [5, 7, 7]])  # wrong only on padding in rows 0, 2
    logits = torch.nn.functional.one_hot(pred, 10).float()
    assert sequence_correct(logits, labels, mask).tolist() == [True, False, True]


def test_q_continue_target():
    is_last = torch.tensor([False, False, True])
    nq_halt = torch.tensor([1.0, -2.0, 0.5])
    nq_cont = torch.tensor([-1.0, 3.0, 9.0])
    got = q_continue_target(is_last, nq_halt, nq_cont)
    want = torch.sigmoid(torch.tensor([1.0, 3.0, 0.5]))  # max(h, c) unless last: h
    assert torch.allclose(got, want)


def test_halt_decision_bce_and_q_learning():
    steps = torch.tensor([1, 2, 3, 4, 2])
    q_halt = torch.tensor([0.5, -0.5, 0.1, -9.0, 2.0])
    q_cont = torch.tensor([1.0, -1.0, 0.0, 0.0, 3.0])
    no_min = torch.zeros(5, dtype=torch.long)
    # bce: halt logit > 0, or the last step (4)
    assert halt_decision("bce", 4, steps, q_halt, None, no_min).tolist() == [True, False, True, True, True]
    # q_learning: Q(halt) > Q(continue), or the last step
    assert halt_decision("q_learning", 4, steps, q_halt, q_cont, no_min).tolist() == [False, True, True, True, False]
    # none: only at N_sup
    assert halt_decision("none", 4, steps, q_halt, q_cont, no_min).tolist() == [False, False, False, True, False]
    # exploration: a minimum of 3 steps holds back early halts, never the last step
    min3 = torch.full((5,), 3)
    assert halt_decision("bce", 4, steps, q_halt, None, min3).tolist() == [False, False, True, True, False]
    assert halt_decision("bce", 4, steps, q_halt, None, torch.full((5,), 9)).tolist() == [False, False, False, True, False]
