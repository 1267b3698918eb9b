"""Hand-computed checks of every advantage and loss in train.py."""

import math

import pytest
import torch

import data
import model
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
    loss_kl, m = train.reg_grpo_loss(
        logp, torch.zeros(3, 1), logp_ref, predicted, mask, group_size=3, beta=0.1, eps_rho=EPS
    )
    assert loss_kl.item() == pytest.approx(0.1 * 0.193147, abs=1e-6) and m["loss/kl"] == pytest.approx(
        0.193147, abs=1e-6
    )


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

    tiny, big, adapter = tmp_path / "tiny", tmp_path / "big", tmp_path / "adapter"
    for folder, width in ((tiny, model.TINY_HIDDEN), (big, 2048)):
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps({"text_config": {"hidden_size": width}}))
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(tiny)}))
    resolved = {
        name: train.parse_args(["--algo", "grpo", "--model", str(path)])
        for name, path in (("tiny", tiny), ("big", big), ("adapter", adapter))
    }
    assert train.parse_args(["--algo", "grpo"]).num_frames == 4
    assert (resolved["tiny"].num_frames, resolved["tiny"].learning_rate, resolved["tiny"].max_completion_length) == (
        4,
        1e-4,
        64,
    )
    assert (resolved["big"].num_frames, resolved["big"].learning_rate, resolved["big"].max_completion_length) == (
        16,
        1e-6,
        768,
    )
    assert (
        resolved["tiny"].batch_size,
        resolved["tiny"].num_generations,
        resolved["tiny"].max_steps,
        resolved["tiny"].num_shuffled,
    ) == (8, 4, 60, 2)
    assert (
        resolved["big"].batch_size,
        resolved["big"].num_generations,
        resolved["big"].max_steps,
        resolved["big"].num_shuffled,
    ) == (1, 8, 50, 4)
    assert (resolved["adapter"].num_frames, resolved["adapter"].learning_rate) == (4, 1e-4)
    # RL: the vision encoder frozen, as DeepVideo-R1
    assert resolved["tiny"].freeze_vision and resolved["big"].freeze_vision


def _args(**kw):
    return train.Args(**{"num_generations": 4, **kw})


def test_temporal_bonus_is_a_no_op_on_a_two_level_group():
    """Rewards accuracy + format with the format always 1: right 2, wrong 1. +0.3 on the right ones is an
    affine map (R' = 1.3 R - 0.3), so the std-normalised advantages do not move; a three-level group's do."""
    binary = torch.tensor([2.0, 1.0, 1.0, 2.0])
    with_bonus = binary + torch.tensor([0.3, 0.0, 0.0, 0.3])
    a = 0.5 / (math.sqrt(1 / 3) + EPS)  # as test_group_advantages_by_hand: mean 1.5, std 0.57735
    a_bonus = 0.65 / (1.3 * math.sqrt(1 / 3) + EPS)  # mean 1.65, std 1.3 * 0.57735: a up to eps
    assert torch.allclose(train.group_advantages(binary, 4), torch.tensor([a, -a, -a, a]), atol=1e-6)
    assert torch.allclose(
        train.group_advantages(with_bonus, 4), torch.tensor([a_bonus, -a_bonus, -a_bonus, a_bonus]), atol=1e-6
    )
    assert abs(a - a_bonus) < 4e-5  # only eps differs: 0.5 / (0.57735 + eps) against 0.65 / (0.75056 + eps)
    assert not train.bonus_changes_advantages(binary, with_bonus, _args())  # compared without eps: identical
    assert not train.bonus_changes_advantages(torch.full((4,), 2.0), torch.full((4,), 2.3), _args())  # all right: all 0
    # three levels: one right answer without the format (1 + 0), one right with (2), two wrong with (1)
    graded = torch.tensor([2.0, 1.0, 1.0, 1.0])
    graded_bonus = graded + torch.tensor([0.3, 0.0, 0.0, 0.0])
    three = torch.tensor([2.0, 1.0, 0.0, 1.0])  # right+format, wrong+format, wrong no format, wrong+format
    three_bonus = three + torch.tensor([0.3, 0.0, 0.0, 0.0])
    # three: mean 1, Bessel std sqrt(2/3) -> A_0 = 1 / 0.816497 = 1.224745; with the bonus mean 1.075,
    # squares 1.500625 + 0.005625 * 2 + 1.155625 = 2.6675, std sqrt(2.6675 / 3) = 0.942956
    # -> A_0 = 1.225 / 0.942956 = 1.299102
    assert train.group_advantages(three, 4)[0].item() == pytest.approx(1 / math.sqrt(2 / 3), abs=1e-3)
    assert train.group_advantages(three_bonus, 4)[0].item() == pytest.approx(1.225 / math.sqrt(2.6675 / 3), abs=1e-3)
    assert train.bonus_changes_advantages(three, three_bonus, _args())
    assert not train.bonus_changes_advantages(graded, graded_bonus, _args())  # one right answer: still two levels
    # without the std (Dr. GRPO) even the binary group's advantages grow: 0.5 -> 0.65
    assert train.bonus_changes_advantages(binary, with_bonus, _args(adv_norm="none"))
    assert train.bonus_changes_advantages(binary, with_bonus, _args(advantage="rloo"))


def test_rloo_advantages_by_hand():
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.9, 0.92, 0.94, 0.96])
    # group 1: R_0 - (0 + 0 + 1) / 3 = 2/3, R_1 - (1 + 0 + 1) / 3 = -2/3;
    # group 2: 0.9 - (0.92 + 0.94 + 0.96) / 3 = -0.04, ...
    expected = torch.tensor([2 / 3, -2 / 3, -2 / 3, 2 / 3, -0.04, -0.04 / 3, 0.04 / 3, 0.04])
    assert torch.allclose(train.rloo_advantages(rewards, 4), expected, atol=1e-6)
    assert torch.allclose(
        train.rloo_advantages(rewards, 4), 4 / 3 * train.group_advantages(rewards, 4, norm="none"), atol=1e-6
    )
    assert torch.allclose(train.advantages_of(rewards, _args(advantage="rloo")), expected, atol=1e-6)


def test_reinforce_advantages_use_one_baseline_for_the_batch():
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0, 2.0, 2.0, 2.0, 2.0])  # batch mean 1.25
    expected = torch.tensor([-0.25, -1.25, -1.25, -0.25, 0.75, 0.75, 0.75, 0.75])
    assert torch.allclose(train.reinforce_advantages(rewards), expected)
    assert torch.allclose(train.advantages_of(rewards, _args(advantage="reinforce")), expected)
    # the all-equal group still has a signal (GRPO's would be 0), and the easy prompt's are all positive
    assert train.advantages_of(rewards, _args())[4:].abs().max() == 0


def test_reg_grpo_first_update_gradient_scales_with_all_rows():
    """Two groups of G = 4 (N = 8 rows): at rho == 0 the gradient per masked token is -(2 / (N * eps_rho)) * A_i,
    N the rows averaged, not G; the regression is inactive (reggrpo/active_frac 0) until logp_old differs."""
    G, N = 4, 8
    mask = torch.ones(N, 2, dtype=torch.bool)
    logp = torch.randn(N, 2, generator=torch.Generator().manual_seed(1)).requires_grad_()
    adv = train.group_advantages(torch.tensor([1.0, 0.0, 2.0, 1.0, 0.0, 0.0, 1.0, 0.0]), G)
    loss, m = train.reg_grpo_loss(logp, logp.detach(), None, adv, mask, group_size=G, beta=0.0, eps_rho=EPS)
    loss.backward()
    assert torch.allclose(logp.grad, -(2 / (N * EPS)) * adv[:, None] * mask, rtol=1e-4, atol=1e-3)
    assert m["reggrpo/active_frac"] == 0.0
    _, m2 = train.reg_grpo_loss(
        logp.detach(), logp.detach() - 0.01 * torch.arange(N)[:, None], None, adv, mask, group_size=G, eps_rho=EPS
    )
    assert m2["reggrpo/active_frac"] == 1.0


def test_reg_grpo_kl_share_is_negligible_on_the_first_update():
    """beta * KL's gradient beside the 2 / (N * eps_rho) scale: ~1e-4 of the total at beta 0.1."""
    N = 4
    mask = torch.ones(N, 3, dtype=torch.bool)
    logp = torch.log(torch.full((N, 3), 0.5)).requires_grad_()
    logp_ref = torch.log(torch.full((N, 3), 0.25))
    adv = train.group_advantages(torch.tensor([1.0, 0.0, 0.0, 1.0]), N)
    loss, _ = train.reg_grpo_loss(logp, logp.detach(), logp_ref, adv, mask, group_size=N, beta=0.1, eps_rho=EPS)
    loss.backward()
    # KL's per-token gradient: d/dlogp [exp(ref - logp) - (ref - logp) - 1] = 1 - exp(ref - logp) = 0.5,
    # times beta / (N * 3)
    kl_grad = 0.1 * 0.5 / (N * 3)
    policy_grad = 2 / (N * EPS) * abs(adv[0].item())
    assert logp.grad[0, 0].item() == pytest.approx(-policy_grad + kl_grad, rel=1e-3)
    assert kl_grad / policy_grad < 1e-4


def test_da_plan_noise_std_and_hint_length_by_hand():
    args = train.Args(da_threshold=0.1, da_noise_scale=0.5, da_noise_max=0.4, da_hint_scale=1.0)
    assert train.da_plan(-0.3, args) == ("easy", pytest.approx(0.15))  # too easy: std = 0.5 * |-0.3|
    assert train.da_plan(-2.0, args) == ("easy", pytest.approx(0.4))  # capped at da_noise_max
    assert train.da_plan(0.4, args) == ("hard", pytest.approx(0.4))  # too hard: 0.4 of the reasoning's words
    assert train.da_plan(1.7, args) == ("hard", 1.0)  # at most all of it
    assert train.da_plan(0.1, args) == (None, 0.0) and train.da_plan(-0.05, args) == (None, 0.0)  # within the threshold
    words = "one two three four five six seven eight nine ten"
    assert train.hint_prefix(words, 0.4) == "one two three four"  # ceil(0.4 * 10) = 4
    assert train.hint_prefix(words, 0.31) == "one two three four"  # ceil(3.1) = 4
    assert train.hint_prefix(words, 1.0) == words and train.hint_prefix("", 0.5) == ""


def test_t_grpo_shuffles_what_da_sampled_the_ordered_group_on(monkeypatch):
    """Under T-GRPO + DA the shuffled group sees the ordered group's augmentation: the noisy frames (too easy)
    or the hint (too hard), so that p and p~ compare the same question."""
    calls = []  # (frames, hint) of every sampling call after the first

    def group_of(record, n, right):
        text = "<think>one two three four</think><answer>" + ("A" if right else "B") + "</answer>"
        return train.Group(
            record, None, torch.ones(n, 2, dtype=torch.long), torch.ones(n, 2, dtype=torch.bool), [text] * n
        )

    def fake_groups(model, processor, items, n, args):
        return [group_of(record, n, right=True) for record, _, _ in items]

    def fake_group(model, processor, record, visual, n, args, hint=None):
        calls.append((visual.frames.clone(), hint))
        return group_of(record, n, right=hint is None or "correct answer" not in hint)

    monkeypatch.setattr(train, "sample_groups", fake_groups)
    monkeypatch.setattr(train, "sample_group", fake_group)
    record = {
        "problem_id": "p",
        "solution": "<answer>A</answer>",
        "problem_type": "multiple choice",
        "data_type": "video",
    }
    frames = torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    visual = data.Visual("video", frames)
    args = train.Args(algo="t_grpo", da=True, num_generations=4, num_shuffled=2, da_threshold=0.1)
    # every completion right: reward 2, far above 0 / far below 5
    for reference, kind in ((0.0, "easy"), (5.0, "hard")):
        calls.clear()
        groups, stats = train.collect_rollouts(
            None,
            None,
            [(record, visual, torch.Generator().manual_seed(1))],
            reference,
            args,
            {"generate": 0.0, "score": 0.0},
        )
        assert stats[kind] == 1 and len(stats["acc_shuffled"]) == 1
        (ordered_frames, ordered_hint), (shuffled_frames, shuffled_hint) = calls[-2], calls[-1]
        assert shuffled_hint == ordered_hint and (ordered_hint is None) == (kind == "easy")
        assert not torch.equal(shuffled_frames, ordered_frames)  # permuted ...
        # ... the same frames
        assert sorted(map(bytes, shuffled_frames.numpy())) == sorted(map(bytes, ordered_frames.numpy()))
        assert torch.equal(ordered_frames, frames) == (kind == "hard")  # easy: the noisy frames
