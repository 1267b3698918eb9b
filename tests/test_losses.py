"""Hand-computed checks of every advantage and loss in train.py."""

import math

import pytest
import torch

import train

EPS = 1e-4


def test_group_advantages_by_hand():
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0, 2.0, 2.0, 2.0, 2.0])
    # group 1: mean 0.5, Bessel std sqrt(4 * 0.25 / 3) = 0.577350; group 2: all equal -> 0
    a = 0.5 / (math.sqrt(1 / 3) + EPS)
    expected = torch.tensor([a, -a, -a, a, 0.0, 0.0, 0.0, 0.0])
    assert torch.allclose(train.group_advantages(rewards, 4, EPS), expected, atol=1e-6)
    assert abs(a - 0.865876) < 1e-5


def test_group_advantages_without_std_by_hand():
    # Dr. GRPO: R - mean only. Right/wrong group (mean 0.5) and a graded group 0.9, 0.92, 0.94, 0.96 (mean 0.93)
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.90, 0.92, 0.94, 0.96])
    expected = torch.tensor([0.5, -0.5, -0.5, 0.5, -0.03, -0.01, 0.01, 0.03])
    assert torch.allclose(train.group_advantages(rewards, 4, EPS, norm="none"), expected, atol=1e-6)
    # with the std the graded group's spread of 0.06 becomes as strong as the right/wrong one's
    graded = train.group_advantages(rewards, 4, EPS)[4:]
    assert graded.max() > 1.1 and train.group_advantages(rewards, 4, EPS)[:4].max() < 0.87
    with pytest.raises(ValueError, match="'std' or 'none'"):
        train.group_advantages(rewards, 4, EPS, norm="mean")


def test_kl_k3_by_hand():
    logp = torch.log(torch.tensor([[0.5, 0.25]]))
    logp_ref = torch.log(torch.tensor([[0.25, 0.25]]))
    # delta = log(0.25/0.5) = -0.693147: exp(delta) - delta - 1 = 0.5 + 0.693147 - 1 = 0.193147; equal -> 0
    assert torch.allclose(train.kl_k3(logp, logp_ref), torch.tensor([[0.193147, 0.0]]), atol=1e-6)


MASK = torch.tensor([[True, True, False], [True, False, False]])


def test_grpo_on_policy_both_normalisations_and_gradient():
    logp = torch.tensor([[-1.0, -2.0, -3.0], [-0.5, -0.7, -0.9]], requires_grad=True)
    adv = torch.tensor([1.0, -0.5])
    # ratio 1 everywhere: per token -A. sequence: mean(-1, +0.5) = -0.25; token: (-1 - 1 + 0.5) / 3 = -0.5
    loss, m = train.grpo_loss(logp, logp.detach(), None, adv, MASK, beta=0.04)
    assert loss.item() == pytest.approx(-0.25) and m["loss/kl"] == 0 and m["loss/clip_frac"] == 0
    loss_tok, _ = train.grpo_loss(logp, logp.detach(), None, adv, MASK, norm="token")
    assert loss_tok.item() == pytest.approx(-0.5)
    loss.backward()
    # d/dlogp = -A / len(seq) / N: row 0 -> -1/2/2 = -0.25 on its 2 tokens; row 1 -> 0.5/1/2 = 0.25
    assert torch.allclose(logp.grad, torch.tensor([[-0.25, -0.25, 0.0], [0.25, 0.0, 0.0]]))


def test_grpo_clip_fires_high_and_low():
    mask = torch.ones(4, 1, dtype=torch.bool)
    logp_old = torch.zeros(4, 1)
    logp = torch.log(torch.tensor([[1.5], [0.5], [1.5], [0.5]])).requires_grad_()
    adv = torch.tensor([1.0, -1.0, -1.0, 1.0])
    # r=1.5,A=1: min(1.5, 1.2) = 1.2 (clipped high)   r=0.5,A=-1: min(-0.5, -0.8) = -0.8 (clipped low)
    # r=1.5,A=-1: min(-1.5, -1.2) = -1.5 (no clip)    r=0.5,A=1: min(0.5, 0.8) = 0.5 (no clip)
    loss, m = train.grpo_loss(logp, logp_old, None, adv, mask, beta=0.0)
    assert loss.item() == pytest.approx(-(1.2 - 0.8 - 1.5 + 0.5) / 4)
    assert m["loss/clip_frac"] == pytest.approx(0.5)
    loss.backward()
    # clipped rows get no gradient; unclipped: d(-r*A)/dlogp = -r*A/4
    assert torch.allclose(logp.grad.view(-1), torch.tensor([0.0, 0.0, 1.5 / 4, -0.5 / 4]))
    # asymmetric clip (DAPO's eps_high 0.28): r=1.5, A=1 -> 1.28
    loss_hi, _ = train.grpo_loss(logp[:1], logp_old[:1], None, adv[:1], mask[:1], beta=0.0, eps_high=0.28)
    assert loss_hi.item() == pytest.approx(-1.28)


def test_grpo_with_kl():
    logp = torch.log(torch.tensor([[0.5, 0.5]]))
    logp_ref = torch.log(torch.tensor([[0.25, 0.5]]))
    mask = torch.tensor([[True, True]])
    loss, m = train.grpo_loss(logp, logp, logp_ref, torch.tensor([2.0]), mask, beta=0.1)
    # tokens: -2 + 0.1 * 0.193147 and -2 + 0; sequence mean = -2 + 0.0096574
    assert loss.item() == pytest.approx(-2 + 0.1 * 0.193147 / 2, abs=1e-6)
    assert m["loss/kl"] == pytest.approx(0.193147 / 2, abs=1e-6)
    no_kl, _ = train.grpo_loss(logp, logp, logp_ref, torch.tensor([2.0]), mask, beta=0.0)
    assert no_kl.item() == pytest.approx(-2.0)


def test_reg_grpo_value_by_hand():
    # one group of 3; per-token log-ratios chosen so that rho = [0.3, 0.0, -0.3]
    mask = torch.tensor([[True, True], [True, False], [True, True]])
    logp_old = torch.zeros(3, 2)
    logp = torch.tensor([[0.1, 0.2], [0.0, 5.0], [-0.3, 0.0]])  # 5.0 is masked out
    adv = torch.tensor([0.5, 0.5, -1.0])
    # mean 0, Bessel std sqrt((0.09 + 0 + 0.09) / 2) = 0.3 -> predicted = rho / (0.3 + 1e-4)
    p = 0.3 / (0.3 + EPS)
    mse = ((0.5 - p) ** 2 + 0.5**2 + (-1 + p) ** 2) / 3
    loss, m = train.reg_grpo_loss(logp, logp_old, None, adv, mask, group_size=3, beta=0.1, eps_rho=EPS)
    assert loss.item() == pytest.approx(mse, rel=1e-5)
    assert m["reggrpo/mse"] == pytest.approx(mse, rel=1e-5) and m["reggrpo/rho_std"] == pytest.approx(0.3, rel=1e-5)


def test_reg_grpo_zero_when_predicted_equals_target_and_kl_term():
    mask = torch.ones(3, 1, dtype=torch.bool)
    logp = torch.tensor([[0.3], [0.0], [-0.3]])
    predicted = torch.tensor([0.3, 0.0, -0.3]) / (0.3 + EPS)
    loss, _ = train.reg_grpo_loss(logp, torch.zeros(3, 1), None, predicted, mask, group_size=3, eps_rho=EPS)
    assert loss.item() == pytest.approx(0.0, abs=1e-10)
    logp_ref = logp + math.log(0.5)  # delta = -0.693147 on every token -> KL 0.193147
    loss_kl, m = train.reg_grpo_loss(logp, torch.zeros(3, 1), logp_ref, predicted, mask, group_size=3, beta=0.1, eps_rho=EPS)
    assert loss_kl.item() == pytest.approx(0.1 * 0.193147, abs=1e-6) and m["loss/kl"] == pytest.approx(0.193147, abs=1e-6)


def test_reg_grpo_on_policy_gradient_is_the_group_policy_gradient():
    """At rho == 0 the loss is mean(A^2) but its gradient is -(2 / (G * eps_rho)) * A_i per masked token:
    a group-normalised policy gradient (same direction as GRPO's on-policy gradient -A_i / (N * len_i))."""
    G = 4
    mask = torch.tensor([[True, True, True], [True, True, False], [True, False, False], [True, True, True]])
    logp = torch.randn(G, 3, generator=torch.Generator().manual_seed(0)).requires_grad_()
    adv = train.group_advantages(torch.tensor([1.0, 0.0, 2.0, 1.0]), G)  # mean exactly 0
    loss, m = train.reg_grpo_loss(logp, logp.detach(), None, adv, mask, group_size=G, beta=0.0, eps_rho=EPS)
    assert loss.item() == pytest.approx((adv**2).mean().item(), rel=1e-6) and m["reggrpo/rho_std"] == 0
    loss.backward()
    expected = -(2 / (G * EPS)) * adv[:, None] * mask  # [G, T]
    assert torch.isfinite(logp.grad).all()
    assert torch.allclose(logp.grad, expected, rtol=1e-4, atol=1e-3)
    grpo_logp = logp.detach().clone().requires_grad_()
    grpo, _ = train.grpo_loss(grpo_logp, grpo_logp.detach(), None, adv, mask, beta=0.0, norm="token")
    grpo.backward()
    cos = torch.nn.functional.cosine_similarity(logp.grad.view(-1), grpo_logp.grad.view(-1), dim=0)
    assert cos.item() == pytest.approx(1.0, abs=1e-5)  # token-normalised GRPO: identical direction


def test_sft_loss_counts_only_labelled_tokens():
    logp = torch.log(torch.tensor([[0.5, 0.25, 0.1]]))
    mask = torch.tensor([[True, True, False]])
    assert train.sft_loss(logp, mask).item() == pytest.approx(-(math.log(0.5) + math.log(0.25)) / 2)


def test_completion_mask_keeps_first_end_of_turn():
    eos = torch.tensor([151645, 151643])
    ids = torch.tensor([[5, 6, 151645, 151643, 151643], [5, 6, 7, 8, 9], [151645, 1, 2, 3, 4]])
    expected = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]], dtype=torch.bool)
    assert torch.equal(train.completion_mask(ids, eos), expected)


def test_tiny_defaults_follow_the_model_width(tmp_path):
    """Tiny defaults for the built-in model, for checkpoints of its width, and for a LoRA adapter on one;
    the papers' defaults for anything else."""
    import json

    import train

    tiny, big, adapter = tmp_path / "tiny", tmp_path / "big", tmp_path / "adapter"
    for folder, width in ((tiny, train.TINY_HIDDEN_SIZE), (big, 2048)):
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps({"text_config": {"hidden_size": width}}))
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(tiny)}))
    resolved = {name: train.parse_args(["--algo", "grpo", "--model", str(path)]) for name, path in
                (("tiny", tiny), ("big", big), ("adapter", adapter))}
    assert train.parse_args(["--algo", "grpo"]).num_frames == 4
    assert (resolved["tiny"].num_frames, resolved["tiny"].learning_rate, resolved["tiny"].max_completion_length) == (4, 1e-4, 64)
    assert (resolved["big"].num_frames, resolved["big"].learning_rate, resolved["big"].max_completion_length) == (16, 1e-6, 768)
    assert (resolved["tiny"].batch_size, resolved["tiny"].num_generations, resolved["tiny"].max_steps, resolved["tiny"].num_shuffled) == (8, 4, 60, 2)
    assert (resolved["big"].batch_size, resolved["big"].num_generations, resolved["big"].max_steps, resolved["big"].num_shuffled) == (1, 8, 50, 4)
    assert (resolved["adapter"].num_frames, resolved["adapter"].learning_rate) == (4, 1e-4)
    assert resolved["tiny"].freeze_vision and resolved["big"].freeze_vision  # RL: the vision encoder frozen, as DeepVideo-R1
