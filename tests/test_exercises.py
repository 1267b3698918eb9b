"""The course exercises (README, "Exercises"): write the function an exercise names, then run

    python -m pytest tests/test_exercises.py -k gspo        # or dynamic, near_count, kl_k2

A test fails until its function exists and gives the hand-computed numbers below, each row with its own message.
The plain `python -m pytest` leaves this file out (it says "deselected"), so that an untouched checkout's suite
passes. Teachers: the reference solutions are in tests/exercise_references.py (keep it out of the students' copy);
when it is present the tests also compare the student's function with it on random inputs, and
tests/test_exercise_references.py checks the references against these same numbers."""

import importlib.util
import math

import pytest
import torch

import rewards
import train


def _written(module, name, signature):
    fn = getattr(module, name, None)
    if fn is None:
        pytest.fail(f"not written yet: {module.__name__}.{signature}", pytrace=False)
    return fn


def _reference(name):
    """The teacher's reference solution, or None in a student's copy."""
    if importlib.util.find_spec("exercise_references") is None:
        return None
    import exercise_references

    return getattr(exercise_references, name)


# -----------------------------------------------------------------------------
# 1. GSPO's sequence-level ratio (Zheng et al., arXiv 2507.18071, Eq. 5-7)
#    train.gspo_loss(logp, logp_old, advantages, mask, eps) -> scalar tensor, differentiable in logp
#    s_i = exp(mean over completion i's tokens of (logp - logp_old)); loss = -mean_i min(s_i A_i, clip(s_i) A_i)


def gspo_case():
    """Three completions (N = 3, T = 3), eps = 0.2, by hand:
    row 0: tokens 0-1 (token 2 masked, in logp_old too), mean 0.1 -> s = e^0.1 = 1.105171, A = +1: unclipped
    row 1: mean -0.5 -> s = 0.606531, A = -1: min(-0.606531, -0.8) = -0.8, the clip chosen (no gradient)
    row 2: tokens 0-1, mean -0.4 -> s = 0.670320, A = +1: min(0.670320, 0.8) = 0.670320 (a clip without min: 0.8)
    loss = -(1.105171 - 0.8 + 0.670320) / 3 = -0.325164; with eps = 0.1: -(1.1 - 0.9 + 0.670320) / 3 = -0.290107
    d loss / d logp: row 0 tokens 0-1: -(1/3) * s_0 / 2 = -0.184195; row 2 tokens 0-1: -(1/3) * s_2 / 2 = -0.111720;
    every other entry 0."""
    logp = torch.tensor([[0.2, 0.0, 9.0], [-0.5, -0.5, -0.5], [-0.4, -0.4, 7.0]], requires_grad=True)
    logp_old = torch.tensor([[0.0, 0.0, 5.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    mask = torch.tensor([[True, True, False], [True, True, True], [True, True, False]])
    return logp, logp_old, torch.tensor([1.0, -1.0, 1.0]), mask


def check_gspo(fn):
    logp, logp_old, adv, mask = gspo_case()
    loss = fn(logp, logp_old, adv, mask, 0.2)
    assert torch.is_tensor(loss) and loss.dim() == 0, "return the loss as a scalar tensor"
    assert float(loss.detach()) == pytest.approx(-0.325164, abs=1e-5), (
        f"eps 0.2: {float(loss.detach()):.6f}, expected -0.325164 (a clip without the min gives -0.368390; "
        "logp_old unmasked differs too: mask logp - logp_old, then divide by the number of completion tokens)"
    )
    eps_01 = float(fn(logp, logp_old, adv, mask, 0.1).detach())
    assert eps_01 == pytest.approx(-0.290107, abs=1e-5), f"eps 0.1: {eps_01:.6f}, expected -0.290107 (eps unused?)"
    assert loss.requires_grad, "no gradient reaches logp: is the ratio detached?"
    loss.backward()
    expected = torch.tensor([[-0.184195, -0.184195, 0.0], [0.0, 0.0, 0.0], [-0.111720, -0.111720, 0.0]])
    for i in range(3):
        assert torch.allclose(logp.grad[i], expected[i], atol=1e-5), f"gradient of row {i}: {logp.grad[i].tolist()}"


def test_exercise_gspo_sequence_ratio():
    fn = _written(train, "gspo_loss", "gspo_loss(logp, logp_old, advantages, mask, eps)")
    check_gspo(fn)
    reference = _reference("gspo_loss")
    if reference is not None:  # random inputs: any batch, any mask
        g = torch.Generator().manual_seed(0)
        for _ in range(20):
            logp, logp_old = torch.randn(5, 7, generator=g) * 0.3, torch.randn(5, 7, generator=g) * 0.3
            mask = torch.rand(5, 7, generator=g) > 0.3
            mask[:, 0] = True
            adv, eps = torch.randn(5, generator=g), float(torch.rand(1, generator=g)) * 0.4 + 0.05
            assert torch.allclose(fn(logp, logp_old, adv, mask, eps), reference(logp, logp_old, adv, mask, eps))


# -----------------------------------------------------------------------------
# 2. DAPO's dynamic sampling (Yu et al., arXiv 2503.14476, Sec. 3.2)
#    train.informative_groups(rewards, group_size) -> [B] bool tensor: True where a group's rewards differ


def check_dynamic_sampling(fn):
    cases = [  # (rewards of one group, informative?, what it is)
        ([2.0, 2.0, 2.0, 2.0], False, "all right"),
        ([1.0, 2.0, 1.0, 1.0], True, "one right"),
        ([0.0, 0.0, 0.0, 0.0], False, "all wrong, no format"),
        ([1.0, 1.0, 1.0, 1.0], False, "all equal at a middle value (format only)"),
        ([1.5, 1.5, 1.5, 1.6], True, "graded rewards that differ a little"),
    ]
    got = fn(torch.tensor([r for group, _, _ in cases for r in group]), 4)
    assert torch.is_tensor(got) and got.dtype == torch.bool and got.shape == (5,), "return a [B] bool tensor"
    for i, (group, wanted, what) in enumerate(cases):
        assert bool(got[i]) == wanted, f"group {i} {group} ({what}): expected {wanted}"
    assert fn(torch.tensor([1.0, 1.0, 0.0, 1.0, 2.0, 2.0]), 2).tolist() == [False, True, False], "group_size unused?"


def test_exercise_dynamic_sampling():
    fn = _written(train, "informative_groups", "informative_groups(rewards, group_size)")
    check_dynamic_sampling(fn)
    reference = _reference("informative_groups")
    if reference is not None:
        g = torch.Generator().manual_seed(1)
        for _ in range(20):
            r = torch.randint(0, 3, (24,), generator=g).float() / 2  # few levels: many equal groups
            assert torch.equal(fn(r, 4), reference(r, 4)) and torch.equal(fn(r, 3), reference(r, 3))


# -----------------------------------------------------------------------------
# 3. A new reward: partial credit for near-miss counts
#    rewards.near_count_reward(completion, solution) -> float: 1 right, 0.5 one off, else 0; never raises


def check_near_count(fn):
    cases = [
        ("<answer>3</answer>", 1.0),
        ("<answer>3.0</answer>", 1.0),
        ("<answer>4</answer>", 0.5),
        ("<answer>2</answer>", 0.5),
        ("<answer>6</answer>", 0.0),
        ("<answer>-3</answer>", 0.0),
        ("<answer>three</answer>", 0.0),
        ("", 0.0),
        ("<answer>nan</answer>", 0.0),
    ]
    for text, wanted in cases:
        assert fn(text, "<answer>3</answer>") == wanted, f"{text!r} against 3: expected {wanted}"


def test_exercise_near_count_reward():
    check_near_count(_written(rewards, "near_count_reward", "near_count_reward(completion, solution)"))


# -----------------------------------------------------------------------------
# 4. Another KL estimator: Schulman's k2 = (logp_ref - logp)^2 / 2
#    train.kl_k2(logp, logp_ref) -> [N, T] tensor, per token


def check_kl_k2(fn):
    logp = torch.log(torch.tensor([[0.5, 0.25, 0.1]]))
    logp_ref = torch.log(torch.tensor([[0.25, 0.25, 0.4]]))
    # log(0.25 / 0.5) = -0.693147 -> 0.240227; equal -> 0; log(0.4 / 0.1) = 1.386294 -> 0.960906
    expected = [0.240227, 0.0, 0.960906]
    got = fn(logp, logp_ref)
    assert got.shape == logp.shape, "one value per token"
    for t, value in enumerate(expected):
        assert float(got[0, t]) == pytest.approx(value, abs=1e-5), f"token {t}: expected {value} (k2, not k3)"
    assert torch.allclose(train.kl_k3(logp, logp_ref), torch.tensor([[0.193147, 0.0, 1.613706]]), atol=1e-5)
    assert math.isclose(float(fn(logp_ref, logp)[0, 2]), 0.960906, abs_tol=1e-5), "k2 is symmetric"


def test_exercise_kl_k2():
    check_kl_k2(_written(train, "kl_k2", "kl_k2(logp, logp_ref)"))
