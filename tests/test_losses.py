"""Hand-computed checks of every advantage and loss in train.py."""

import math

import pytest
import torch

import data
import model
import rewards
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
    assert torch.equal(model.completion_mask(ids, eos), expected)


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
    assert rewards.hint_prefix(words, 0.4) == "one two three four"  # ceil(0.4 * 10) = 4
    assert rewards.hint_prefix(words, 0.31) == "one two three four"  # ceil(3.1) = 4
    assert rewards.hint_prefix(words, 1.0) == words and rewards.hint_prefix("", 0.5) == ""


def test_t_grpo_shuffles_what_da_sampled_the_ordered_group_on(monkeypatch):
    """Under T-GRPO + DA the shuffled group sees the ordered group's augmentation: the masked frames (too easy)
    or the hint (too hard), so that p and p~ compare the same question. The first call samples every ordered
    and shuffled group; the augmented group and its shuffled group come in one more call."""
    calls = []  # per generate call: [(frames, hint, n)] of its items

    def fake_groups(model, processor, items, n, args):
        counts = [n] * len(items) if isinstance(n, int) else n
        calls.append([(visual.frames.clone(), hint, k) for (_, visual, hint), k in zip(items, counts)])
        groups = []
        for (record, _, hint), k in zip(items, counts):
            revealed = hint is not None and "correct answer" in hint
            # the first call: all right (no spread, so DA acts); the reveal: reasoning that names the answer;
            # the augmented groups: half right, so that they replace the originals
            rights = [True] * k if len(calls) == 1 or revealed else [j % 2 == 0 for j in range(k)]
            thought = "I see it. The answer is A. It is red." if revealed else "x"
            texts = [f"<think>{thought}</think><answer>{'A' if ok else 'B'}</answer>" for ok in rights]
            ids, mask = torch.ones(k, 2, dtype=torch.long), torch.ones(k, 2, dtype=torch.bool)
            groups.append(train.Group(record, None, ids, mask, texts))
        return groups

    monkeypatch.setattr(train, "sample_groups", fake_groups)
    record = {
        "problem_id": "p",
        "solution": "<answer>A</answer>",
        "problem_type": "multiple choice",
        "data_type": "video",
        "options": ["A. red", "B. blue"],
    }
    frames = torch.randint(0, 256, (4, 3, 56, 56), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    visual = data.Visual("video", frames)
    args = train.Args(algo="t_grpo", da=True, num_generations=4, num_shuffled=2, da_threshold=0.1).resolve()
    # every completion right: reward 2.0 (2 tokens: no length reward), far above 0 / far below 5
    for reference, kind in ((0.0, "easy"), (5.0, "hard")):
        calls.clear()
        prompts = [(record, visual, torch.Generator().manual_seed(1))]
        groups, stats = train.collect_rollouts(None, None, prompts, reference, args, {"generate": 0.0, "score": 0.0})
        assert [len(c) for c in calls] == ([2, 2] if kind == "easy" else [2, 1, 2])  # ordered + shuffled per call
        assert stats[kind] == 1 and len(stats["acc_shuffled"]) == 1
        assert groups[0].augmentation["kind"] == kind  # it has a reward spread: it replaced the original
        (ordered_frames, ordered_hint, n), (shuffled_frames, shuffled_hint, n_shuffled) = calls[-1]
        assert (n, n_shuffled) == (4, 2) and shuffled_hint == ordered_hint
        assert (ordered_hint is None) == (kind == "easy")
        assert not torch.equal(shuffled_frames, ordered_frames)  # permuted ...
        # ... the same frames
        assert sorted(map(bytes, shuffled_frames.numpy())) == sorted(map(bytes, ordered_frames.numpy()))
        assert torch.equal(ordered_frames, frames) == (kind == "hard")  # easy: the masked frames
        if kind == "hard":  # cut before the answer ("A" followed by '.'), dR 3 -> all of what is left
            assert ordered_hint == "I see it. The answer is"


def test_length_reward_counts_accuracy_above_0_1_as_correct_by_hand():
    """Video-R1's length reward: +0.2 to completions with accuracy > 0.1 (its code's threshold) and l_min..l_max
    tokens, when more than one completion of the group is correct. Regression answers to 50 (reward
    1 - |pred - 50| / 50): 48 -> 0.96, 52.5 -> 0.95, 97.5 -> 0.05 (not correct), 30 -> 0.6."""
    record = {"solution": "<answer>50</answer>", "problem_type": "regression"}
    texts = [f"<think>x</think><answer>{v}</answer>" for v in ("48", "52.5", "97.5", "30")]
    lengths = [30, 50, 30, 28]  # the tiny model's window is 27..43 tokens
    mask = torch.arange(64)[None, :] < torch.tensor(lengths)[:, None]  # [4, 64]
    args = train.parse_args(["--algo", "grpo"])
    assert (args.length_bonus, args.l_min, args.l_max, train.CORRECT) == (True, 27, 43, 0.1)
    group = train.score_group(train.Group(record, None, None, mask, texts), args)
    assert group.format == [1.0] * 4
    # 0.96 + 1 + 0.2 (correct, 30 tokens) | 0.95 + 1 (50 tokens: outside) | 0.05 + 1 (not correct) | 0.6 + 1 + 0.2
    assert torch.allclose(group.rewards, torch.tensor([2.16, 1.95, 1.05, 1.8]))
    assert torch.allclose(
        train.score_group(group, train.parse_args(["--no-length_bonus"])).rewards, torch.tensor([1.96, 1.95, 1.05, 1.6])
    )


def test_accuracy_needs_format_gates_the_accuracy_by_hand():
    """--accuracy_needs_format: a right answer outside the format earns nothing. Answers to multiple choice "B":
    formatted right (1 + 1), unformatted right (default: 1 + 0; gated: 0 + 0), formatted wrong (0 + 1)."""
    record = {"solution": "<answer>B</answer>", "problem_type": "multiple choice"}
    texts = [
        "<think>x</think><answer>B</answer>",
        "The answer is <answer>B</answer>",
        "<think>x</think><answer>C</answer>",
    ]
    mask = torch.ones(3, 10, dtype=torch.bool)
    plain = train.parse_args(["--algo", "grpo", "--no-length_bonus"])
    assert plain.accuracy_needs_format is False
    group = train.score_group(train.Group(record, None, None, mask, texts), plain)
    assert group.accuracy == [1.0, 1.0, 0.0] and group.format == [1.0, 0.0, 1.0]
    assert group.rewards.tolist() == [2.0, 1.0, 1.0]
    gated = train.parse_args(["--algo", "grpo", "--no-length_bonus", "--accuracy_needs_format"])
    group = train.score_group(group, gated)
    assert group.accuracy == [1.0, 0.0, 0.0] and group.rewards.tolist() == [2.0, 0.0, 1.0]


def test_temporal_bonus_changes_a_three_level_groups_advantages():
    """With the length reward a group has more than two reward levels, and T-GRPO's +0.3 to the correct ones is
    no longer an affine map: [2.16, 1.95, 1.05, 1.8] -> [2.46, 2.25, 1.05, 2.1] moves the advantages (the
    wrong completion's from -1.428 to -1.458, by hand: mean 1.74 -> 1.965, std 0.48311 -> 0.62761)."""
    args = train.parse_args(["--algo", "t_grpo"])
    before = torch.tensor([2.16, 1.95, 1.05, 1.8])
    after = before + torch.tensor([0.3, 0.3, 0.0, 0.3])
    assert train.bonus_changes_advantages(before, after, args)
    a_before, a_after = (train.group_advantages(r, 4, eps=0.0) for r in (before, after))
    assert a_before[2].item() == pytest.approx((1.05 - 1.74) / 0.48311, abs=1e-4)
    assert a_after[2].item() == pytest.approx((1.05 - 1.965) / 0.62761, abs=1e-4)
    assert not train.bonus_changes_advantages(
        torch.tensor([2.0, 2.0, 1.0, 1.0]), torch.tensor([2.3, 2.3, 1.0, 1.0]), args
    )


def test_reg_grpo_gradient_at_the_default_scale_is_grpos_by_hand():
    """--reg_scale grpo (the default): on the first update (rho == 0) the gradient per masked token is GRPO's,
    -(1/N) * A_i / |y_i| (minus the group mean of A_j / |y_j|, 0 here): one group, A = [1, -1, 0.5, -0.5],
    lengths 3, 3, 2, 2 -> -1/12, 1/12, -1/16, 1/16. The paper's scale is 2 |y| / eps_rho times larger."""
    logp = torch.full((4, 3), -1.0, requires_grad=True)
    mask = torch.tensor([[1, 1, 1], [1, 1, 1], [1, 1, 0], [1, 1, 0]], dtype=torch.bool)
    adv = torch.tensor([1.0, -1.0, 0.5, -0.5])
    loss, m = train.reg_grpo_loss(logp, logp.detach(), None, adv, mask, group_size=4, beta=0.0, scale="grpo")
    (grad,) = torch.autograd.grad(loss, logp)
    expected = torch.tensor([[-1 / 12] * 3, [1 / 12] * 3, [-1 / 16, -1 / 16, 0], [1 / 16, 1 / 16, 0]])
    assert torch.allclose(grad, expected, atol=1e-7) and m["reggrpo/active_frac"] == 0.0
    grpo, _ = train.grpo_loss(logp, logp.detach(), None, adv, mask, beta=0.0)
    assert torch.allclose(torch.autograd.grad(grpo, logp)[0], expected, atol=1e-7)
    paper, _ = train.reg_grpo_loss(logp, logp.detach(), None, adv, mask, group_size=4, beta=0.0, eps_rho=1e-4)
    # -(2 / (N eps)) A_i per token: 5000 A_i, i.e. 2 |y| / eps = 6e4 (|y| = 3) times GRPO's -A_i / (N |y|)
    assert torch.autograd.grad(paper, logp)[0][0, 0].item() == pytest.approx(-5000.0, rel=1e-4)
    with pytest.raises(ValueError, match="scale"):
        train.reg_grpo_loss(logp, logp.detach(), None, adv, mask, group_size=4, scale="other")


def test_kl_grad_share_by_hand():
    """The share of the gradient (with respect to logp) the KL term carries: objective 3 x0 + 4 x1 (gradient
    norm 5) beside a term 5 x2 (norm 5): 0.5; beside nothing: 0. At the defaults Reg-GRPO's paper scale
    leaves the KL ~1e-5 of it, the GRPO scale gives it GRPO's share."""
    logp = torch.zeros(3, requires_grad=True)
    objective = 3 * logp[0] + 4 * logp[1]
    assert train.kl_grad_share(objective, 5 * logp[2], logp) == pytest.approx(0.5)
    assert train.kl_grad_share(objective, 0.0 * logp.detach().sum(), logp) == 0.0
    # Reg-GRPO, one group of 4, a reference 0.1 below on every token, beta 0.1
    torch.manual_seed(0)
    logp = torch.randn(4, 5, requires_grad=True)
    mask, adv = torch.ones(4, 5, dtype=torch.bool), torch.tensor([1.0, -1.0, 1.0, -1.0])
    shares = {}
    for scale in ("paper", "grpo"):
        loss, _ = train.reg_grpo_loss(logp, logp.detach(), logp.detach() - 0.1, adv, mask, 4, beta=0.1, scale=scale)
        objective, _ = train.reg_grpo_loss(
            logp, logp.detach(), logp.detach() - 0.1, adv, mask, 4, beta=0.0, scale=scale
        )
        shares[scale] = train.kl_grad_share(objective, loss - objective, logp)
    # KL gradient per token: beta (1 - exp(-0.1)) / (N T) = 0.1 * 0.0952 / 20; objective's: |A| / (N T) (grpo)
    kl_norm, grpo_norm = 0.1 * (1 - math.exp(-0.1)) / 20 * math.sqrt(20), 1 / 20 * math.sqrt(20)
    assert shares["grpo"] == pytest.approx(kl_norm / (kl_norm + grpo_norm), rel=1e-4)
    assert shares["paper"] < 1e-5


def test_da_acts_only_on_groups_without_a_reward_spread_and_per_branch():
    args = train.Args(da_threshold=0.1, da_noise_scale=1.0, da_noise_max=0.6)
    assert train.da_plan(-0.5, args, zero_std=True) == ("easy", pytest.approx(0.5))  # half the cells masked
    assert train.da_plan(-0.5, args, zero_std=False) == (None, 0.0)  # a learning signal already: left alone
    assert train.da_plan(0.5, args, zero_std=False) == (None, 0.0)
    assert train.da_plan(0.5, train.Args(da_all_groups=True), zero_std=False) == ("hard", 0.5)  # the paper, literally
    assert train.da_plan(-0.5, train.Args(da_branches="hard"), zero_std=True) == (None, 0.0)  # DeepVideo-R1 Table 7
    assert train.da_plan(0.5, train.Args(da_branches="hard"), zero_std=True) == ("hard", 0.5)
    assert train.da_plan(0.5, train.Args(da_branches="easy"), zero_std=True) == (None, 0.0)


@pytest.mark.parametrize(
    "reasoning,solution,options,hint",
    [
        ("The square is green.", "<answer>B</answer>", ["A. red", "B. green"], "The square is"),
        ("It grows: closer.", "<answer>A</answer>", ["A. closer", "B. farther away"], "It grows:"),
        ("It shrinks: Farther Away, so B.", "<answer>B</answer>", ["A. closer", "B. farther away"], "It shrinks:"),
        ("It spans about 80 percent.", "<answer>80</answer>", [], "It spans about"),
        ("Counting: 1, 2, 3.", "<answer>3</answer>", [], "Counting: 1, 2,"),
        ("The answer is B) green", "<answer>B</answer>", ["A. red", "B. green"], "The answer is"),
        ("A big square, all red.", "<answer>A</answer>", ["A. red", "B. green"], "A big square, all"),
        ("green", "<answer>B</answer>", ["A. red", "B. green"], ""),
    ],
)
def test_hint_never_contains_the_answer(reasoning, solution, options, hint):
    """DA's hint is cut before the answer's first mention (the answer, the option's text, or its letter
    followed by '.' or ')'); the article 'A' stays."""
    record = {"solution": solution, "options": options}
    assert rewards.hint_of(reasoning, record, 1.0) == hint
    answer = data.answer_of(solution)
    text = next((o.split(".", 1)[1].strip() for o in options if o.startswith(answer + ".")), answer)
    assert text.lower() not in hint.lower()


def test_defaults_match_the_readme_table(tmp_path):
    """The README's settings table says what each --algo resolves to, for a real checkpoint and for the tiny
    model: every cell of its two "ours" columns is checked against train.Args.resolve()."""
    import json
    import os

    readme = open(os.path.join(os.path.dirname(__file__), "..", "README.md")).read().splitlines()
    start = next(i for i, line in enumerate(readme) if line.startswith("| flag | Video-R1 |"))
    rows = [line for line in readme[start + 2 :] if line.startswith("|")]
    rows = rows[: next((i for i, r in enumerate(rows) if not r.startswith("| `")), len(rows))]
    big = tmp_path / "big"
    big.mkdir()
    (big / "config.json").write_text(json.dumps({"text_config": {"hidden_size": 2048}}))
    resolved = {
        (kind, algo): train.parse_args(["--algo", algo] + (["--model", str(big)] if kind == "real" else []))
        for kind in ("real", "tiny")
        for algo in ("grpo", "t_grpo", "reg_grpo")
    }
    assert len(rows) >= 20
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        flag = cells[0].split("`")[1]
        for kind, cell in (("real", cells[3]), ("tiny", cells[4])):
            values = [v.strip().split(" ")[0] for v in cell.split(" / ")]
            values = values * 3 if len(values) == 1 else values
            for algo, expected in zip(("grpo", "t_grpo", "reg_grpo"), values):
                value = getattr(resolved[(kind, algo)], flag)
                if isinstance(value, bool):
                    assert expected == ("on" if value else "off"), (flag, kind, algo, value)
                elif isinstance(value, (int, float)):
                    assert float(expected) == value, (flag, kind, algo, value, expected)
                else:
                    assert expected == value, (flag, kind, algo, value)
