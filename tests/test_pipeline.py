"""A decoded synthetic video through the tiny model's processor and model: time positions, forward,
generate, and the memory-efficient log-prob pass against the naive one."""

import math
import os

import pytest
import torch

import data
import model as M
import train


@pytest.fixture(scope="module")
def setup(tiny_dir, synth_dir):
    policy, processor = M.load(tiny_dir)
    records, _ = data.load_records(os.path.join(synth_dir, "train.json"))
    budget = processor.video_processor.size
    video = next(r for r in records if r["data_type"] == "video" and r["question_family"] == "direction")
    image = next(r for r in records if r["data_type"] == "image")
    return policy, processor, records, video, image, (budget["shortest_edge"], budget["longest_edge"])


def _inputs(processor, record, budget, num_frames=8):
    visual = data.load_visual(record, num_frames, *budget)
    return visual, data.processor_inputs(processor, [data.prompt_text(processor, record)], [visual])


def test_video_time_positions_follow_the_sampled_frame_rate(setup):
    policy, processor, _, video, _, budget = setup
    visual, inputs = _inputs(processor, video, budget, num_frames=8)
    # 8 of 16 frames of an 8 fps clip: sampled 4 fps, 2 frames per temporal patch -> 0.5 s per patch
    assert inputs["second_per_grid_ts"] == [pytest.approx(0.5)] or inputs["second_per_grid_ts"].tolist() == [
        pytest.approx(0.5)
    ]
    t, h, w = inputs["video_grid_thw"][0].tolist()
    assert t == 4 and (inputs["input_ids"] == M.VIDEO_TOKEN_ID).sum() == t * h * w // 4
    positions, _ = policy.model.get_rope_index(
        inputs["input_ids"],
        video_grid_thw=inputs["video_grid_thw"],
        second_per_grid_ts=inputs["second_per_grid_ts"],
        attention_mask=inputs["attention_mask"],
        mm_token_type_ids=inputs["mm_token_type_ids"],
    )
    video_pos = positions[0, 0][inputs["input_ids"][0] == M.VIDEO_TOKEN_ID]  # temporal ids of the video tokens
    start = video_pos.min().item()
    # tokens_per_second 2 x 0.5 s per patch = 1 position per temporal patch: 4 distinct, ordered times
    assert sorted(set((video_pos - start).tolist())) == [0, 1, 2, 3]


def test_video_forward_and_generate(setup):
    policy, processor, _, video, _, budget = setup
    _, inputs = _inputs(processor, video, budget, num_frames=4)
    with torch.no_grad():
        out = policy(**inputs)
    assert out.logits.shape == (1, inputs["input_ids"].shape[1], 151936) and torch.isfinite(out.logits).all()
    gen = policy.generate(**inputs, max_new_tokens=6, do_sample=False)
    assert gen.shape[1] > inputs["input_ids"].shape[1]
    assert isinstance(processor.batch_decode(gen[:, inputs["input_ids"].shape[1] :])[0], str)


@pytest.mark.parametrize("kind", ["video", "image"])
def test_chunked_encode_once_logprobs_equal_the_naive_full_forward(setup, kind):
    """group_logprobs (vision encoded once, hidden states only at completion positions, LM head in
    chunks) == log_softmax of the full-vocabulary logits of G separately encoded copies."""
    policy, processor, _, video, image, budget = setup
    record = video if kind == "video" else image
    _, prompt = _inputs(processor, record, budget, num_frames=4)
    G, T = 3, 7
    completions = torch.randint(0, 151643, (G, T), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        fast = M.group_logprobs(policy, prompt, completions, chunk_size=5)  # [G, T]; chunks split rows
        P = prompt["input_ids"].shape[1]
        batch = data.processor_inputs(
            processor, [data.prompt_text(processor, record)] * G, [data.load_visual(record, 4, *budget)] * G
        )
        ids = torch.cat([batch["input_ids"], completions], 1)
        extra = {k: v for k, v in batch.items() if k not in ("input_ids", "attention_mask", "mm_token_type_ids")}
        logits = policy(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            mm_token_type_ids=torch.cat([batch["mm_token_type_ids"], torch.zeros_like(completions)], 1),
            **extra,
        ).logits
        naive = (
            torch.log_softmax(logits[:, P - 1 : P + T - 1].float(), -1).gather(-1, completions[..., None]).squeeze(-1)
        )
    assert torch.allclose(fast, naive, atol=1e-5)


def test_logprob_gradients_flow_through_the_shared_vision_features(setup):
    policy, processor, _, video, _, budget = setup
    _, prompt = _inputs(processor, video, budget, num_frames=4)
    completions = torch.randint(0, 1000, (2, 3), generator=torch.Generator().manual_seed(1))
    policy.zero_grad()
    M.LogProbs(policy, chunk_size=4)([(prompt, completions)]).sum().backward()
    patch_embed = M.vision_module(policy).patch_embed.proj.weight
    assert patch_embed.grad is not None and patch_embed.grad.abs().sum() > 0
    policy.zero_grad()


def test_sft_labels_cover_only_reasoning_and_answer(setup):
    """SFT's loss equals the model's own cross-entropy with every prompt and vision position at -100."""
    policy, processor, _, video, _, budget = setup
    visual = data.load_visual(video, 4, *budget)
    group = train.sft_group(processor, video, visual, "cpu")
    target_text = processor.tokenizer.decode(group.completion_ids[0])
    assert target_text == data.sft_target(video) + "<|im_end|>"
    with torch.no_grad():
        ours = train.sft_loss(M.group_logprobs(policy, group.prompt, group.completion_ids), group.mask)
        ids = torch.cat([group.prompt["input_ids"], group.completion_ids], 1)
        labels = ids.clone()
        labels[:, : group.prompt["input_ids"].shape[1]] = -100
        extra = {k: v for k, v in group.prompt.items() if k not in ("input_ids", "attention_mask", "mm_token_type_ids")}
        ref = policy(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            labels=labels,
            mm_token_type_ids=torch.cat([group.prompt["mm_token_type_ids"], torch.zeros_like(group.completion_ids)], 1),
            **extra,
        ).loss
    assert ours.item() == pytest.approx(ref.item(), rel=1e-5)


def test_temporal_bonus_wiring(setup):
    """T-GRPO: correct ordered completions get +alpha exactly when p >= mu * p~, the shuffled group only
    measures p~, and the group records the shuffled group's frame order."""
    _, _, _, video, _, _ = setup
    answer = data.answer_of(video["solution"])
    right, wrong = f"<think>x</think><answer>{answer}</answer>", "<think>x</think><answer>?</answer>"
    args = train.parse_args(["--num_generations", "4"])
    mask = torch.ones(4, 2, dtype=torch.bool)
    for shuffled_texts, bonus_expected in (([right, wrong], True), ([right, right], False)):
        # mu = 1: p = 0.5; p~ = 0.5 -> bonus; p~ = 1.0 -> no bonus
        group = train.score_group(train.Group(video, None, None, mask, [right, right, wrong, wrong]), args)
        shuffled = train.score_group(train.Group(video, None, None, mask[:2], shuffled_texts), args)
        shuffled.order = [2, 0, 3, 1]
        base = group.rewards.clone()
        p, p_shuffled, bonus, changed = train.add_temporal_bonus(group, shuffled, args)
        assert (p, bonus) == (0.5, bonus_expected)
        assert not changed  # rewards 2 (right) and 1 (wrong): the bonus leaves the normalised advantages as they were
        assert group.temporal["order"] == [2, 0, 3, 1] and group.temporal["acc_shuffled"] == p_shuffled
        expected = torch.tensor([0.3, 0.3, 0.0, 0.0]) if bonus_expected else torch.zeros(4)
        assert torch.allclose(group.rewards - base, expected)


def test_one_batched_forward_equals_one_forward_per_prompt(setup):
    """Several prompts of different lengths (videos and an image) padded into one forward give the same
    log-probs as each prompt alone."""
    policy, processor, records, video, image, budget = setup
    chosen = [video, image, next(r for r in records if r["data_type"] == "video" and r is not video)]
    groups = []
    for i, record in enumerate(chosen):
        _, prompt = _inputs(processor, record, budget, num_frames=4)
        groups.append((prompt, torch.randint(0, 151643, (2, 3 + 2 * i), generator=torch.Generator().manual_seed(i))))
    with torch.no_grad():
        batched = M.batch_logprobs(policy, groups, chunk_size=7)  # [6, 7]
        for i, (prompt, ids) in enumerate(groups):
            alone = M.group_logprobs(policy, prompt, ids)
            assert torch.allclose(batched[2 * i : 2 * i + 2, : ids.shape[1]], alone, atol=1e-5)


def test_one_generate_call_for_several_prompts_samples_what_each_prompt_alone_does(setup):
    """sample_groups (prompts of different lengths, videos and an image, left-padded into one generate
    call) gives each prompt's group what sample_groups gives it alone: with a top_p that keeps only the most
    likely token, the same completions; each group trimmed to its own longest completion, with its own
    prompt for the log-prob pass."""
    policy, processor, records, video, image, budget = setup
    chosen = [video, image, next(r for r in records if r["data_type"] == "video" and r is not video)]
    visuals = [data.load_visual(r, 4, *budget) for r in chosen]
    args = train.parse_args(["--algo", "grpo", "--model", "unused", "--max_completion_length", "6", "--top_p", "1e-6"])
    groups = train.sample_groups(policy, processor, [(r, v, None) for r, v in zip(chosen, visuals)], 3, args)
    assert len(groups) == 3
    for record, visual, group in zip(chosen, visuals, groups):
        alone = train.sample_groups(policy, processor, [(record, visual, None)], 3, args)[0]
        assert group.record is record and torch.equal(group.prompt["input_ids"], alone.prompt["input_ids"])
        assert torch.equal(group.completion_ids, alone.completion_ids) and torch.equal(group.mask, alone.mask)
        assert group.texts == alone.texts and group.mask[:, -1].any()  # no all-padding column at the end


@pytest.mark.parametrize("algo", ["grpo", "reg_grpo"])
def test_one_update_moves_probability_toward_rewarded_completions(setup, algo):
    """End to end on real rollouts: sample a group, give alternate completions reward 1 and 0, take one small
    normalised gradient step on the algorithm's loss: the log-prob of every rewarded completion goes up
    relative to the unrewarded ones (the losses' signs, the advantage-to-row alignment and the masks agree)."""
    policy, processor, _, video, _, budget = setup
    args = train.parse_args(
        ["--algo", algo, "--model", "unused", "--beta", "0", "--max_completion_length", "8", "--num_generations", "6"]
    )
    visual = data.load_visual(video, 4, *budget)
    torch.manual_seed(0)
    group = train.sample_groups(policy, processor, [(video, visual, None)], 6, args)[0]
    rewards_ = torch.tensor([1.0, 0.0] * 3)
    pairs = [(group.prompt, group.completion_ids)]
    logprobs = M.LogProbs(policy)
    mb = {
        "pairs": pairs,
        "mask": group.mask,
        "advantages": train.group_advantages(rewards_, 6),
        "logp_old": None,
        "logp_ref": None,
    }
    before = logprobs(pairs).detach()
    loss, _ = train.compute_loss(logprobs, mb, args)
    policy.zero_grad()
    loss.backward()
    norm = torch.sqrt(sum((p.grad**2).sum() for p in policy.parameters() if p.grad is not None))
    saved = {n: p.detach().clone() for n, p in policy.named_parameters() if p.grad is not None}
    try:
        with torch.no_grad():
            for p in policy.parameters():
                if p.grad is not None:
                    p -= 1e-3 * p.grad / norm
            after = logprobs(pairs)
    finally:
        with torch.no_grad():  # the module-scoped model goes back to its weights for the other tests
            for n, p in policy.named_parameters():
                if n in saved:
                    p.copy_(saved[n])
        policy.zero_grad()
    change = ((after - before) * group.mask).sum(1)  # [6] change of each completion's sequence log-prob
    assert change[0::2].min() > change[1::2].max(), change


def test_logp_gap_is_rounding_on_policy_and_jumps_when_only_the_sampler_changes(setup):
    """rollout/logp_gap: each sampled token's log-prob as the sampler drew it against the trainer's forward on
    the first update. Same distribution (temperature 1; top-p only truncates what is drawn from): fp32
    rounding. A temperature applied in sampling only, an off-policy rollout: a jump. The entropy of the same
    pass lies between 0 and log V."""
    policy, processor, _, video, _, budget = setup
    visual = data.load_visual(video, 4, *budget)
    gaps = {}
    for temperature in (1.0, 0.5):
        args = train.parse_args(
            ["--algo", "grpo", "--model", "unused", "--max_completion_length", "8", "--temperature", str(temperature)]
        )
        torch.manual_seed(0)
        group = train.sample_groups(policy, processor, [(video, visual, None)], 4, args)[0]
        assert group.sampler_logp.shape == group.mask.shape
        mb = {"pairs": [(group.prompt, group.completion_ids)], "mask": group.mask, "logp_sampler": group.sampler_logp}
        mb |= {"advantages": torch.tensor([1.0, -1.0, 0.5, -0.5]), "logp_old": None, "logp_ref": None}
        _, metrics = train.compute_loss(M.LogProbs(policy), mb, args, first=True)
        gaps[temperature] = metrics["rollout/logp_gap_max"]
        assert metrics["rollout/logp_gap_mean"] <= metrics["rollout/logp_gap_max"]
        assert 0 < metrics["policy/entropy"] < math.log(policy.lm_head.out_features)
        _, later = train.compute_loss(M.LogProbs(policy), mb, args)  # later updates: the policy has moved
        assert "rollout/logp_gap_max" not in later and "policy/entropy" not in later
    assert gaps[1.0] < 1e-4 and gaps[0.5] > 0.1, gaps


def test_a_prompt_longer_than_the_context_is_refused_naming_the_record(setup):
    """A 1 MB question once became a 125k-token prompt (the tiny model's context: 4,096) and took 16 GB before
    anything was said: check_prompt_length counts text and visual tokens first and names the record and file."""
    policy, processor, _, video, _, budget = setup
    visual = data.load_visual(video, 4, *budget)
    limit = M.context_length(policy)
    assert limit == M.TINY_MAX_POSITIONS
    fits = data.check_prompt_length(processor, video, visual, limit, 64)
    _, inputs = _inputs(processor, video, budget, num_frames=4)
    assert fits == inputs["input_ids"].shape[1]  # the count is the processor's own
    huge = dict(video, problem=video["problem"] + " why" * 200_000, _file="big.json")
    with pytest.raises(data.SampleError, match=rf"problem_id={huge['problem_id']} file=big.json: a prompt of \d+ text"):
        data.check_prompt_length(processor, huge, visual, limit, 64)
    with pytest.raises(data.SampleError, match=f"exceeds the model's {fits + 63}-token context"):
        data.check_prompt_length(processor, video, visual, fits + 63, 64)  # one new token too many
    assert data.check_prompt_length(processor, video, visual, fits + 64, 64) == fits


def test_rollouts_never_sample_vision_placeholders(setup):
    """Even when the model prefers <|image_pad|> / <|video_pad|> / <|vision_start|> above everything else,
    sample_groups never emits them (the log-prob pass would look for a picture that is not there)."""
    policy, processor, _, video, _, budget = setup
    args = train.parse_args(["--algo", "grpo", "--model", "unused", "--max_completion_length", "6"])
    visual = data.load_visual(video, 4, *budget)
    placeholders = [M.IMAGE_TOKEN_ID, M.VIDEO_TOKEN_ID, M.VISION_START_ID]

    def prefer_placeholders(module, inputs, logits):
        logits[..., placeholders] += 1e4
        return logits

    hook = policy.lm_head.register_forward_hook(prefer_placeholders)
    try:
        group = train.sample_groups(policy, processor, [(video, visual, None)], 4, args)[0]
    finally:
        hook.remove()
    assert not torch.isin(group.completion_ids, torch.tensor(placeholders)).any()


def test_rollouts_sample_the_policy_whatever_the_checkpoint_ships(setup, monkeypatch):
    """A checkpoint whose generation_config.json sets repetition_penalty 2.0 and top_k 3 (Qwen's instruct models
    ship 1.05): the scores the sampler sees are the model's own logits, and the rollout's tokens are those of a
    checkpoint without those settings. Before, generate ran the penalty ahead of the sampler: the rollouts came
    from another distribution than the log-probs trained on."""
    policy, processor, _, video, _, budget = setup
    visual = data.load_visual(video, 4, *budget)
    args = train.parse_args(["--num_generations", "2", "--max_completion_length", "4"])
    seen = []
    sampler_call = M.NucleusSampler.__call__
    monkeypatch.setattr(
        M.NucleusSampler,
        "__call__",
        lambda self, ids, scores: seen.append(scores.clone()) or sampler_call(self, ids, scores),
    )
    tokens = {}
    for shipped in ({}, {"repetition_penalty": 2.0, "top_k": 3}):
        for key, value in shipped.items():
            setattr(policy.generation_config, key, value)
        seen.clear()
        torch.manual_seed(0)
        group = train.sample_groups(policy, processor, [(video, visual, None)], 2, args)[0]
        tokens[bool(shipped)] = group.completion_ids
        # the checkpoint's config is back
        assert policy.generation_config.repetition_penalty == shipped.get("repetition_penalty")
    # as shipped by model.build_tiny
    policy.generation_config.repetition_penalty, policy.generation_config.top_k = (None, None)
    inputs = M.stacked_prompts(
        policy, [data.processor_inputs(processor, [data.prompt_text(processor, video)], [visual])], [2]
    )
    with torch.no_grad():
        logits = policy(**inputs).logits[:, -1]  # [2, V]: the first token's distribution
    logits[:, M.vision_placeholder_ids(policy.config)] = float("-inf")  # what sample_groups suppresses itself
    assert torch.allclose(seen[0], logits, atol=1e-5)
    assert torch.equal(tokens[True], tokens[False])


def test_frozen_vision_tower_is_not_backpropagated_under_checkpointing(tiny_dir, setup):
    """--gradient_checkpointing with the vision encoder frozen: its blocks run forward once (no recomputation in the
    backward, so no backward through them), while the merger still gets gradients."""
    _, processor, _, video, _, budget = setup
    model, _ = M.load(tiny_dir, gradient_checkpointing=True, freeze_vision=True)
    model.train()
    visual, prompt = _inputs(processor, video, budget, num_frames=4)
    calls = []
    for block in model.model.visual.blocks:  # a module inside each block: checkpointing's recomputation calls it again
        block.norm1.register_forward_hook(lambda module, args, out: calls.append(module))
    logp = M.group_logprobs(model, prompt, torch.tensor([[11, 22, 33]]))
    forward = len(calls)
    logp.sum().backward()
    assert forward == len(model.model.visual.blocks) and len(calls) == forward  # nothing recomputed in the backward
    assert all(p.grad is None for n, p in model.model.visual.named_parameters() if not n.startswith("merger."))
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.model.visual.merger.parameters())
