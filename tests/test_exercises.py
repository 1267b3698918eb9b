"""The course exercises of the README ("Exercises"): for each, a reference solution and the hand-computed
test it must pass. A student writes the function in the file the exercise names; the test then checks the
student's function against the same numbers (until it exists, that half is skipped: the reference half
always runs, so the numbers themselves stay checked)."""

import math

import pytest
import torch

import rewards
import train

# -----------------------------------------------------------------------------
# 1. GSPO's sequence-level ratio (Zheng et al., arXiv 2507.18071, Eq. 5-7): train.gspo_loss


def reference_gspo_loss(logp, logp_old, advantages, mask, eps=0.2):
    """s_i = exp(mean over the completion's tokens of (logp - logp_old)): the length-normalised sequence
    ratio; loss = -mean_i min(s_i A_i, clip(s_i, 1 - eps, 1 + eps) A_i). One ratio per sequence, so the
    clip keeps or drops whole sequences, where GRPO clips token by token."""
    mask = mask.to(logp.dtype)
    s = torch.exp(((logp - logp_old) * mask).sum(1) / mask.sum(1).clamp(min=1))  # [N]
    return -torch.min(s * advantages, torch.clamp(s, 1 - eps, 1 + eps) * advantages).mean()


def _gspo_case():
    logp_old = torch.zeros(2, 3)
    logp = torch.tensor([[0.2, 0.0, 9.0], [-0.5, -0.5, -0.5]])  # row 0: 9.0 is masked out
    mask = torch.tensor([[True, True, False], [True, True, True]])
    # row 0: mean 0.1 -> s = e^0.1 = 1.105171, A = 1 -> min(1.105171, 1.2) = 1.105171
    # row 1: mean -0.5 -> s = 0.606531, A = -1 -> min(-0.606531, -0.8) = -0.8 (clipped)
    expected = -(math.exp(0.1) - 0.8) / 2
    return logp, logp_old, torch.tensor([1.0, -1.0]), mask, expected


@pytest.mark.parametrize("solution", ["reference", "student"])
def test_exercise_gspo_sequence_ratio(solution):
    fn = reference_gspo_loss if solution == "reference" else getattr(train, "gspo_loss", None)
    if fn is None:
        pytest.skip("exercise 1 not done: write train.gspo_loss(logp, logp_old, advantages, mask, eps)")
    logp, logp_old, adv, mask, expected = _gspo_case()
    assert float(fn(logp, logp_old, adv, mask, 0.2)) == pytest.approx(expected, abs=1e-6)  # -0.152585


# -----------------------------------------------------------------------------
# 2. DAPO's dynamic sampling (Yu et al., arXiv 2503.14476, Sec. 3.2): train.informative_groups


def reference_informative_groups(rewards_, group_size):
    """[B] bool: the groups whose rewards are not all equal (the rest have zero advantage and teach nothing;
    DAPO samples more prompts until a batch is full of informative ones)."""
    grouped = rewards_.view(-1, group_size)
    return grouped.max(1).values > grouped.min(1).values


@pytest.mark.parametrize("solution", ["reference", "student"])
def test_exercise_dynamic_sampling(solution):
    fn = reference_informative_groups if solution == "reference" else getattr(train, "informative_groups", None)
    if fn is None:
        pytest.skip("exercise 2 not done: write train.informative_groups(rewards, group_size)")
    r = torch.tensor([2.0, 2.0, 2.0, 2.0, 1.0, 2.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0])
    assert fn(r, 4).tolist() == [False, True, False]


# -----------------------------------------------------------------------------
# 3. A new reward: partial credit for near-miss counts, rewards.near_count_reward


def reference_near_count_reward(completion, solution):
    """1 for the right number, 0.5 for one off, 0 otherwise (and for no number); never raises."""
    pred, gt = (
        rewards._parse_number(rewards.extract_answer(completion)),
        rewards._parse_number(rewards.extract_answer(solution)),
    )
    if pred is None or gt is None:
        return 0.0
    return {0: 1.0, 1: 0.5}.get(round(abs(pred - gt)), 0.0)


@pytest.mark.parametrize("solution", ["reference", "student"])
def test_exercise_near_count_reward(solution):
    fn = reference_near_count_reward if solution == "reference" else getattr(rewards, "near_count_reward", None)
    if fn is None:
        pytest.skip("exercise 3 not done: write rewards.near_count_reward(completion, solution)")
    cases = [
        ("<answer>3</answer>", 1.0),
        ("<answer>4</answer>", 0.5),
        ("<answer>2</answer>", 0.5),
        ("<answer>6</answer>", 0.0),
        ("<answer>three</answer>", 0.0),
        ("", 0.0),
        ("<answer>nan</answer>", 0.0),
    ]
    assert [fn(text, "<answer>3</answer>") for text, _ in cases] == [value for _, value in cases]


# -----------------------------------------------------------------------------
# 4. Another KL estimator: Schulman's k2 = (logp_ref - logp)^2 / 2, train.kl_k2


def reference_kl_k2(logp, logp_ref):
    """Per-token k2: biased, but with lower variance than k3 when the policies are close; >= 0."""
    return 0.5 * (logp_ref - logp) ** 2


@pytest.mark.parametrize("solution", ["reference", "student"])
def test_exercise_kl_k2(solution):
    fn = reference_kl_k2 if solution == "reference" else getattr(train, "kl_k2", None)
    if fn is None:
        pytest.skip("exercise 4 not done: write train.kl_k2(logp, logp_ref)")
    logp = torch.log(torch.tensor([[0.5, 0.25]]))
    logp_ref = torch.log(torch.tensor([[0.25, 0.25]]))
    # log(0.25 / 0.5) = -0.693147 -> 0.5 * 0.480453 = 0.240227; equal -> 0. (k3 on the same: 0.193147, 0)
    assert torch.allclose(fn(logp, logp_ref), torch.tensor([[0.240227, 0.0]]), atol=1e-6)
    assert torch.allclose(train.kl_k3(logp, logp_ref), torch.tensor([[0.193147, 0.0]]), atol=1e-6)
