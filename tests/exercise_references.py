"""Reference solutions of the course exercises (README, "Exercises"), for teachers: the students' file,
tests/test_exercises.py, holds only expected numbers; it compares a student's function with these on random
inputs when this file is present. Leave this file out of the copy students get."""

import torch

import rewards


def gspo_loss(logp, logp_old, advantages, mask, eps=0.2):
    """GSPO (Zheng et al., arXiv 2507.18071, Eq. 5-7): s_i = exp(mean over the completion's tokens of
    (logp - logp_old)), the length-normalised sequence ratio; loss = -mean_i min(s_i A_i, clip(s_i, 1 - eps,
    1 + eps) A_i), a scalar tensor. One ratio per sequence, so the clip keeps or drops whole sequences."""
    mask = mask.to(logp.dtype)
    s = torch.exp(((logp - logp_old) * mask).sum(1) / mask.sum(1).clamp(min=1))  # [N]
    return -torch.min(s * advantages, torch.clamp(s, 1 - eps, 1 + eps) * advantages).mean()


def informative_groups(rewards_, group_size):
    """DAPO's dynamic sampling filter (Yu et al., arXiv 2503.14476, Sec. 3.2): [B] bool, True for the groups
    whose rewards are not all equal."""
    grouped = rewards_.view(-1, group_size)
    return grouped.max(1).values > grouped.min(1).values


def near_count_reward(completion, solution):
    """1 for the right number, 0.5 for one off, 0 otherwise (and for no number); never raises."""
    pred = rewards._parse_number(rewards.extract_answer(completion))
    gt = rewards._parse_number(rewards.extract_answer(solution))
    if pred is None or gt is None:
        return 0.0
    return {0: 1.0, 1: 0.5}.get(round(abs(pred - gt)), 0.0)


def kl_k2(logp, logp_ref):
    """Schulman's k2 per token: (logp_ref - logp)^2 / 2; biased, lower variance than k3 near the reference."""
    return 0.5 * (logp_ref - logp) ** 2
