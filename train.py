"""
RL fine-tuning of Qwen2.5-VL on video: SFT cold start, GRPO, T-GRPO, Reg-GRPO, difficulty-aware augmentation.

    accelerate launch train.py --algo reg_grpo                      # built-in tiny model + synthetic videos
    accelerate launch train.py --algo t_grpo --model Qwen/Qwen2.5-VL-3B-Instruct --data Video-R1-260k.json
    python train.py --help

Read top to bottom; one RL step runs in this order:
  1. configuration: one dataclass, a one-line help per field, defaults from the papers
  2. advantages and losses: pure functions of tensors, the algorithms side by side
  3. rollouts: G completions per prompt, rewards, T-GRPO's shuffled group, difficulty-aware augmentation (DA)
  4. one step: rollouts -> advantages and old/reference log-probs -> num_iterations x (loss, backward, update)
  5. train(): the loop, and main()
The engineering (accelerator and precision, checkpoints, per-process data streams, sharded weights, logging,
the main job) is in infra.py, called in one line each; a first reading can skip it.
Shapes: B prompts, G completions per prompt, N = B*G sequences, T completion tokens, V vocabulary.
"""

import time
from contextlib import nullcontext
from dataclasses import dataclass, field, replace

import numpy as np
import torch

import data
import eval as evaluation
import infra
import model as model_lib
import rewards

# -----------------------------------------------------------------------------
# 1. Configuration. 0, -1 or "" means "the default for this model", filled in by Args.resolve(): the papers'
# values for real checkpoints, smaller ones for the built-in tiny model on a CPU. The reasons behind the
# defaults are in the README ("Choices the papers leave open") and in docs/EXPERIMENTS.md.


def arg(default, help, choices=None):
    """A configuration field with its one-line --help (and the values it may take)."""
    return field(default=default, metadata={"help": help, "choices": choices})


@dataclass
class Args:
    # which algorithm
    algo: str = arg("grpo", "the algorithm", ["sft", "grpo", "t_grpo", "reg_grpo"])
    da: bool = arg(False, "difficulty-aware augmentation (DeepVideo-R1) on top of any RL algorithm")
    advantage: str = arg("grpo", "advantage estimator (train.advantages_of)", ["grpo", "rloo", "reinforce"])
    # GRPO (DeepSeekMath; Video-R1's values)
    num_generations: int = arg(0, "G, completions per prompt; 0: 4 for the tiny model, 8 otherwise (both papers)")
    beta: float = arg(-1.0, "KL weight; -1: 0.04 (grpo, t_grpo: Video-R1), 0.1 (reg_grpo: DeepVideo-R1); 0: no ref")
    num_iterations: int = arg(1, "passes over each rollout batch (GRPO's mu); > 1 makes the clip bite")
    minibatches: int = arg(0, "optimizer updates per pass, each on 1/K of the groups; 0: 2 for reg_grpo, else 1")
    eps_low: float = arg(0.2, "GRPO ratio clip below 1")
    eps_high: float = arg(0.2, "GRPO ratio clip above 1 (DAPO: 0.28)")
    loss_norm: str = arg("sequence", "sequence: per sequence, then over sequences; token: DAPO", ["sequence", "token"])
    adv_eps: float = arg(1e-4, "eps in A = (R - mean) / (std + eps)")
    adv_norm: str = arg("std", "std: GRPO's A; none: A = R - mean (Dr. GRPO)", ["std", "none"])
    # T-GRPO (Video-R1, Eq. 1); mu 1.0 is the paper's (its code: 0.8; tulerfeng/Video-R1 issue 74)
    num_shuffled: int = arg(0, "T-GRPO: completions on shuffled frames per video prompt; 0: G/2 (Video-R1)")
    tgrpo_alpha: float = arg(0.3, "T-GRPO: bonus for correct ordered completions")
    tgrpo_mu: float = arg(1.0, "T-GRPO: bonus only when p_ordered >= mu * p_shuffled")
    # Reg-GRPO (DeepVideo-R1, Sec. 3.2); the paper gives neither mu nor eps_rho (train.reg_grpo_loss)
    rho_eps: float = arg(1e-4, "Reg-GRPO: eps in the normalisation of the sequence log-ratios")
    reg_scale: str = arg("grpo", "Reg-GRPO: grpo: gradient at GRPO's scale; paper: Eq. as written", ["grpo", "paper"])
    # DA (DeepVideo-R1, Sec. 3.3): the window is the paper's; threshold and scales are ours (it gives none)
    da_branches: str = arg("both", "DA: which samples are augmented (DeepVideo-R1 Table 7)", ["both", "easy", "hard"])
    da_all_groups: bool = arg(False, "DA: augment groups with a reward spread too (default: only those without)")
    da_window: int = arg(100, "DA: recent samples whose mean reward is the difficulty reference")
    da_threshold: float = arg(0.1, "DA: |reference - mean reward| above which a sample is too easy / too hard")
    da_easy: str = arg("mask", "DA: too-easy samples get masked cells or Gaussian noise", ["mask", "noise"])
    da_noise_scale: float = arg(1.0, "DA: masked fraction (or noise std, a fraction of 255) per unit of |dR|")
    da_noise_max: float = arg(0.6, "DA: cap on the masked fraction (or the noise std)")
    da_hint_scale: float = arg(1.0, "DA: fraction of the best reasoning given as a hint per unit of dR")
    # rewards (Video-R1: accuracy + format [+ length bonus]); `relative` is Video-R1's regression reward
    regression_reward: str = arg("relative", "regression answers' reward", list(rewards.REGRESSION_REWARDS))
    regression_tolerance: float = arg(0.2, "relative error up to which --regression_reward within counts right")
    length_bonus: bool = arg(None, "Video-R1's length reward: +omega to correct completions of l_min..l_max tokens")
    l_min: int = arg(0, "length reward's lower bound, tokens; 0: 320 (Video-R1), 27 for the tiny model")
    l_max: int = arg(0, "length reward's upper bound, tokens; 0: 512 (Video-R1), 43 for the tiny model")
    omega: float = arg(0.2, "length bonus value")
    accuracy_needs_format: bool = arg(False, "accuracy counts only when the format reward is 1 (open-instruct's gate)")
    # rollouts
    max_steps: int = arg(0, "rollout steps; 0: 60 for the tiny model, 50 otherwise")
    batch_size: int = arg(0, "prompts per process per micro-batch; 0: 8 for the tiny model, 1 otherwise")
    grad_accum: int = arg(0, "micro-batches per rollout batch; 0: 2 for reg_grpo on real checkpoints, else 1")
    max_completion_length: int = arg(0, "max new tokens per completion; 0: 64 for the tiny model, 768 otherwise")
    temperature: float = arg(1.0, "sampling temperature for rollouts")
    top_p: float = arg(0.95, "nucleus sampling for rollouts")
    # optimizer
    learning_rate: float = arg(0.0, "AdamW rate; 0: 1e-3 SFT / 1e-4 RL (tiny model), 1e-5 / 1e-6 otherwise")
    weight_decay: float = arg(-1.0, "AdamW weight decay; -1: 0.01 (Video-R1), 0 for the tiny model")
    warmup_steps: int = arg(0, "linear warm-up of the learning rate, in optimizer updates")
    lr_schedule: str = arg("", "empty: cosine (Video-R1), constant (tiny model)", ["", "constant", "cosine"])
    max_grad_norm: float = arg(-1.0, "clipping by global norm; -1: 5 (Video-R1), 1 for the tiny model; 0: none")
    # model and data
    model: str = arg("", f"hub id or folder of a Qwen2.5-VL checkpoint; empty: the tiny model ({infra.TINY_MODEL_DIR})")
    data: str = arg("", f"Video-R1 JSON/JSONL training file; empty: the synthetic benchmark ({infra.SYNTH_DIR})")
    problem_types: str = arg("", "train only on these problem types (comma-separated); empty or 'all': every type")
    num_frames: int = arg(0, "frames per video; 0: 4 for the tiny model, 16 otherwise (both papers)")
    min_pixels: int = arg(0, "min pixels per frame/image; 0: the processor's default")
    max_pixels: int = arg(0, "max pixels per frame/image; 0: the processor's (tiny) or 128*28*28 (real checkpoints)")
    freeze_vision: bool = arg(None, "freeze the vision encoder (the merger trains); default: frozen for RL only")
    gradient_checkpointing: bool = arg(False, "recompute activations in the backward pass to save memory")
    lora_r: int = arg(0, "LoRA rank on the LLM's projections; 0: full weights (LoRA: the reference is the base)")
    lora_alpha: float = arg(32.0, "LoRA scale numerator: updates are multiplied by alpha / r")
    lora_dropout: float = arg(0.0, "dropout on the LoRA branch's input")
    lora_targets: str = arg("", "regex over module names to adapt; empty: model.LLM_LORA_TARGETS")
    lora_merge: bool = arg(True, "LoRA: final/ holds the merged model; --no-lora_merge: the adapter only")
    dtype: str = arg("auto", "compute dtype (autocast; weights stay fp32)", ["auto", "bf16", "fp16", "fp32"])
    logprob_chunk: int = arg(256, "tokens per chunk of the LM-head log-softmax")
    strict_data: bool = arg(False, "stop at the first unreadable sample instead of skipping it")
    # the run
    output_dir: str = arg("", "run folder; empty: runs/<algo>[-da]-seed<seed>")
    seed: int = arg(0, "seeds python, numpy and torch (offset per process); in the run name")
    save_steps: int = arg(0, "write a checkpoint every K steps (and at the end); 0: only at the end")
    resume: bool = arg(False, "continue from the latest checkpoint in output_dir")
    report_to: str = arg("", "accelerate trackers, comma-separated (tensorboard, wandb); metrics.jsonl always")
    log_completions_steps: int = arg(10, "whole groups to completions.jsonl every K steps (eval.py view); 0: never")
    # the main job (no --model, no --data): SFT cold start, then RL; the benchmark when it is generated
    sft_steps: int = arg(infra.MAIN_JOB_SFT_STEPS, "main job: SFT cold-start steps before RL (cached under runs/)")
    sft_batch_size: int = arg(8, "main job: prompts per SFT step")
    eval_limit: int = arg(0, "main job: evaluate on the first N held-out records only; 0: all")
    synth_train: int = arg(2400, f"training samples of the synthetic benchmark ({infra.SYNTH_DIR})")
    synth_test: int = arg(200, "held-out samples of the synthetic benchmark")
    synth_families: str = arg(",".join(infra.MAIN_JOB_FAMILIES), f"from {', '.join(infra.ALL_FAMILIES)}")
    synth_size: float = arg(infra.MAIN_JOB_OBJECT_SIZE, "object size, a fraction of the frame's side")
    synth_size_percents: str = arg(infra.MAIN_JOB_SIZE_PERCENTS, "widths of `size` squares; '': any of 20..80")
    synth_afterthoughts: float = arg(1.0, "share of SFT reasoning drawing an afterthought (data.AFTERTHOUGHTS)")

    @property
    def tiny(self):
        """The built-in tiny model or a checkpoint trained from it: its small defaults apply (infra.is_tiny)."""
        return infra.is_tiny(self.model)

    def resolve(self):
        """Fill the 'auto' values (0 / -1 / empty) once, so the saved config says what actually ran: the
        papers' values for real checkpoints, the tiny model's, and what each --algo sets (infra.resolve_defaults).
        """
        return infra.resolve_defaults(self)


def parse_args(argv=None):
    """The command line (every field of Args is a flag), resolved."""
    return infra.parse_dataclass(Args, argv, description=__doc__.split("\n\n")[0].strip()).resolve()


# -----------------------------------------------------------------------------
# 2. Advantages and losses. Rows of one prompt's group are contiguous: N = B*G, mask is bool [N, T].


def group_advantages(rewards, group_size, eps=1e-4, norm="std"):
    """GRPO's group-normalised advantage (DeepSeekMath, arXiv 2402.03300, Sec. 4.1.2):
    A_i = (R_i - mean_j R_j) / (std_j R_j + eps), std with Bessel's correction as torch.std.
    A group whose rewards are all equal gets A = 0 (no signal): the "vanishing advantage" DA fights.
    norm="none" is Dr. GRPO's A_i = R_i - mean_j R_j (Liu et al., arXiv 2503.20783, Sec. 3.1): dividing
    by the std blows a group whose rewards differ by 0.02 up to the same strength as one whose answers
    are right or wrong, which is what graded rewards (regression) do to every group."""
    if norm not in ("std", "none"):
        raise ValueError(f"advantage normalisation must be 'std' or 'none', not {norm!r}")
    grouped = rewards.view(-1, group_size)  # [B, G]
    mean = grouped.mean(1, keepdim=True)  # [B, 1]
    if norm == "none":
        return (grouped - mean).view(-1)  # [N]
    std = grouped.std(1, keepdim=True)  # [B, 1]
    return ((grouped - mean) / (std + eps)).view(-1)  # [N]


def rloo_advantages(rewards, group_size):
    """RLOO's leave-one-out baseline (Ahmadian et al., arXiv 2402.14740, Sec. 3; Kool et al. 2019):
    A_i = R_i - mean_{j != i} R_j = G / (G - 1) * (R_i - mean_j R_j).
    How it differs from GRPO: no division by the group's std (a group whose rewards differ by 0.02 gets
    advantages of that size), and a baseline without the sample itself, so the estimate is unbiased."""
    grouped = rewards.view(-1, group_size)  # [B, G]
    others = (grouped.sum(1, keepdim=True) - grouped) / (group_size - 1)  # [B, G] mean of the other G-1
    return (grouped - others).view(-1)  # [N]


def reinforce_advantages(rewards):
    """REINFORCE with a batch-mean baseline (Williams 1992), the simplest row of DeepVideo-R1's comparison:
    A_i = R_i - mean over the N = B*G rows of this process's micro-batch.
    How it differs from GRPO: one baseline for every prompt, so an easy prompt's completions all get
    positive advantages and a hard one's all negative; no std. With one prompt per micro-batch (the
    real-checkpoint default --batch_size 1) it is GRPO with --adv_norm none."""
    return rewards - rewards.mean()  # [N]


def advantages_of(rewards, args):
    """The advantage estimator that --advantage names, for rewards [N] of contiguous groups."""
    if args.advantage == "rloo":
        return rloo_advantages(rewards, args.num_generations)
    if args.advantage == "reinforce":
        return reinforce_advantages(rewards)
    return group_advantages(rewards, args.num_generations, args.adv_eps, args.adv_norm)


def kl_k3(logp, logp_ref):
    """Per-token KL(pi || pi_ref) with Schulman's k3 estimator, unbiased and >= 0 (DeepSeekMath Eq. 4):
    exp(logp_ref - logp) - (logp_ref - logp) - 1."""
    delta = logp_ref - logp  # [N, T]
    return torch.exp(delta) - delta - 1  # [N, T]


def masked_mean(values, mask, norm):
    """'sequence': mean over each sequence's tokens, then over sequences (GRPO paper, Video-R1, DeepVideo-R1).
    'token': one mean over all tokens of the batch (DAPO, arXiv 2503.14476), so long answers weigh more."""
    mask = mask.to(values.dtype)
    if norm == "token":
        return (values * mask).sum() / mask.sum().clamp(min=1)
    return ((values * mask).sum(1) / mask.sum(1).clamp(min=1)).mean()


def grpo_loss(logp, logp_old, logp_ref, advantages, mask, beta=0.04, eps_low=0.2, eps_high=0.2, norm="sequence"):
    """GRPO (DeepSeekMath Eq. 3): minus the clipped surrogate plus beta * KL.

    per token:  r = exp(logp - logp_old),  min(r * A, clip(r, 1 - eps_low, 1 + eps_high) * A) - beta * KL
    logp, logp_old, logp_ref: [N, T]; advantages: [N]; mask: [N, T]. logp_ref None or beta 0: no KL.
    With one update per rollout r == 1 and the clip never fires; the gradient is then A * grad(logp).
    T-GRPO (Video-R1) uses this same loss; only its rewards differ (see `score_group`).
    """
    ratio = torch.exp(logp - logp_old)  # [N, T]
    A = advantages[:, None]  # [N, 1]
    surrogate = torch.min(ratio * A, torch.clamp(ratio, 1 - eps_low, 1 + eps_high) * A)  # [N, T]
    per_token = -surrogate
    kl = kl_k3(logp, logp_ref) if (logp_ref is not None and beta > 0) else torch.zeros_like(logp)  # [N, T]
    per_token = per_token + beta * kl
    loss = masked_mean(per_token, mask, norm)
    # where the clip removes the gradient
    clipped = ((ratio < 1 - eps_low) & (A < 0)) | ((ratio > 1 + eps_high) & (A > 0))
    metrics = {
        "loss/kl": masked_mean(kl, mask, norm).item(),
        "loss/clip_frac": masked_mean(clipped.float(), mask, norm).item(),
    }
    return loss, metrics


def reg_grpo_loss(
    logp, logp_old, logp_ref, advantages, mask, group_size, beta=0.1, eps_rho=1e-4, norm="sequence", scale="paper"
):
    """Reg-GRPO (DeepVideo-R1, arXiv 2506.07464, Sec. 3.2): regress the group-normalised advantage with the
    group-normalised sequence log-ratio. How it differs from GRPO: no ratio, no clip, no min.

        rho_i  = sum_t mask * (logp - logp_old)                  log pi(y_i) / pi_old(y_i)
        A^_i   = (rho_i - mean_j rho_j) / (std_j rho_j + eps_rho)  per group, Bessel std (s below)
        loss   = mean_i w_i (A_i - A^_i)^2 + beta * KL          (KL averaged as in grpo_loss)

    scale="paper": w_i = 1, the equation as written. On the first update after sampling logp_old is logp
    itself, so rho == 0, A^ == 0 and the loss is the constant mean(A^2); its gradient is still finite:
    -(2 / (N * eps_rho)) * sum_i A_i * grad rho_i (the mean term of A^ drops out because each group's A sums
    to 0), i.e. REINFORCE on sequence log-probs, 2 |y| / eps_rho (~4e5 for 20 tokens) times GRPO's gradient:
    the KL term's share of the gradient is then ~1e-5 (`loss/kl_grad_share`) and beta does next to nothing.

    scale="grpo" (our default): w_i = sg(s_g + eps_rho) / (2 |y_i|), sg = no gradient, |y_i| the completion's
    tokens. Then dL/drho_i = -(1/N) * sum_j (A_j - A^_j)/|y_j| * (delta_ij - 1/G) - (terms through s_g, which
    vanish at rho == 0), so on the first update the gradient is exactly GRPO's (A_i / |y_i| per token, minus
    the group mean, 0 when a group's lengths are equal), and beta weighs against it as in GRPO. From the
    second update on the same rollouts the residual A - A^ takes A's place: once the log-ratios explain the
    advantages the push stops, which is what replaces GRPO's clip. The minimum of the loss is the same.

    The regression acts only when rho != 0: from the second optimizer update on the same rollouts
    (--minibatches 2, Reg-GRPO's default, or --num_iterations > 1). `reggrpo/active_frac` is 1 for an update
    whose rho was not all zero (|rho| > 1e-6); train.py averages it over a step's updates.
    """
    mask_f = mask.to(logp.dtype)
    rho = ((logp - logp_old) * mask_f).sum(1).view(-1, group_size)  # [B, G]
    spread = rho.std(1, keepdim=True) + eps_rho  # [B, 1]
    predicted = ((rho - rho.mean(1, keepdim=True)) / spread).view(-1)  # [N]
    squared = (advantages - predicted) ** 2  # [N]
    if scale == "grpo":
        weight = spread.detach().expand(-1, group_size).reshape(-1) / (2 * mask_f.sum(1).clamp(min=1))  # [N]
        squared = weight * squared
    elif scale != "paper":
        raise ValueError(f"Reg-GRPO scale must be 'paper' or 'grpo', not {scale!r}")
    mse = squared.mean()
    kl = kl_k3(logp, logp_ref) if (logp_ref is not None and beta > 0) else torch.zeros_like(logp)  # [N, T]
    kl_mean = masked_mean(kl, mask, norm)
    loss = mse + beta * kl_mean
    metrics = {
        "loss/kl": kl_mean.item(),
        "reggrpo/mse": ((advantages - predicted) ** 2).mean().item(),
        "reggrpo/rho_std": rho.std(1).mean().item(),
        "reggrpo/active_frac": float(rho.abs().max() > 1e-6),
    }
    return loss, metrics


def kl_grad_share(objective, kl_term, logp):
    """How much of the gradient the KL term carries: |d kl_term / dlogp| / (|d objective / dlogp| + |d kl_term /
    dlogp|), Frobenius norms over the log-probs [N, T], the gradient that flows back into the model. 0: beta
    does nothing; 0.5: as strong as the objective. Cheap: it differentiates with respect to logp only."""
    norms = []
    for term in (objective, kl_term):
        grad = torch.autograd.grad(term, logp, retain_graph=True, allow_unused=True)[0] if term.requires_grad else None
        norms.append(float(grad.norm()) if grad is not None else 0.0)
    return norms[1] / (norms[0] + norms[1]) if norms[0] + norms[1] > 0 else 0.0


def sft_loss(logp, mask):
    """SFT cold start (Video-R1): cross-entropy of the chain of thought + answer tokens only; prompt and
    vision tokens carry no label (Video-R1's script also trained on the prompt; we do not)."""
    return -(logp * mask).sum() / mask.sum().clamp(min=1)


# -----------------------------------------------------------------------------
# 3. Rollouts: sample a group, score it, T-GRPO's shuffled group, difficulty-aware augmentation

CORRECT = 0.1  # accuracy above which a completion counts as correct for the length reward (Video-R1's code)


@dataclass
class Group:
    """G completions of one prompt with their rewards. prompt: processor output (on device)."""

    record: dict
    prompt: object
    completion_ids: torch.Tensor  # [G, T]
    mask: torch.Tensor  # [G, T] bool: completion tokens up to and including the first end-of-turn
    texts: list
    rewards: torch.Tensor = None  # [G]
    accuracy: list = None
    format: list = None
    visual: object = None  # the frames the G completions were sampled on (DA's noisy ones included)
    augmentation: dict = None  # DA: {"kind": "easy", "mask" (or "noise"): strength} or {"kind": "hard", "hint": ...}
    temporal: dict = None  # T-GRPO: {"order": shuffled frame order, "acc_shuffled": p~, "bonus": [G]}
    mean_before: float = 0.0  # DA: the prompt's mean reward before augmentation (what DA's window records)
    order: list = None  # T-GRPO's shuffled group: the frame permutation it was sampled on
    sampler_logp: torch.Tensor = None  # [G, T] each token's log-prob as the sampler drew it (rollout/logp_gap)


def collect_rollouts(model, processor, prompts, reference, args, timing):
    """One micro-batch's rollouts, in the order the algorithms build them. This is where they differ
    before the loss:

      1. G completions of every prompt and, for T-GRPO, G~ of every video on shuffled frames,
         all in one generate call                                                  every RL algorithm
      2. rewards: accuracy + format + length reward                                  Video-R1's rewards
      3. --da: a group without a reward spread that is too easy is re-sampled on noisy frames, one too
         hard on a hint (reasoning written with the answer revealed, cut before the answer); the
         re-sampled groups (with their shuffled groups) in one more generate call       DeepVideo-R1
      4. --algo t_grpo: +alpha to correct completions if p >= mu * p~                      Video-R1
    (5. the advantages, from the final rewards, follow in rollout_tensors.)

    model: the unwrapped policy (whole, see infra.gathered_for_generation); prompts: (record, visual,
    generator) of this process's readable samples; reference: DA's mean reward over the window (None
    while it is empty: no augmentation yet). Returns (groups, stats for infra.step_metrics)."""
    stats = {"acc_ordered": [], "acc_shuffled": [], "bonus": [], "bonus_changed": [], "easy": 0, "hard": 0}
    stats.update(zero_before=0, easy_zero_after=0, hard_zero_after=0)
    G, temporal = args.num_generations, args.algo == "t_grpo"
    # 1. one generate call: the ordered groups, then the shuffled groups of the videos (images get no bonus)
    shuffles = [
        data.shuffle_frames(v, gen) if temporal and r["data_type"] == "video" else None for r, v, gen in prompts
    ]
    items = [(r, v, None) for r, v, _ in prompts] + [(r, s[0], None) for (r, _, _), s in zip(prompts, shuffles) if s]
    with infra.timed(timing, "generate"):
        sampled = sample_groups(model, processor, items, [G] * len(prompts) + [args.num_shuffled] * len(items), args)
    groups, extra = sampled[: len(prompts)], iter(sampled[len(prompts) :])
    shuffled = [next(extra) if s else None for s in shuffles]  # [B] T-GRPO's shuffled group of each prompt
    for s, shuffle in zip(shuffled, shuffles):
        if s is not None:
            s.visual, s.order = shuffle[0], shuffle[1].tolist()
    with infra.timed(timing, "score"):
        for group, (record, visual, _), s in zip(groups, prompts, shuffled):
            group.visual = visual
            score_group(group, args)
            if s is not None:
                score_group(s, args)
    # 3. DA: too easy -> noise, too hard -> hint, for the groups without a reward spread
    if args.da:
        for group in groups:
            stats["zero_before"] += bool(group.rewards.std() == 0)
            group.mean_before = group.rewards.mean().item()  # the difficulty before augmentation
        if reference is not None:
            with infra.timed(timing, "generate"):
                difficulty_augment(groups, shuffled, prompts, reference, model, processor, args, stats)
    # 4. T-GRPO's bonus, from the shuffled group sampled on the same frames (and hint) as the group trained on
    for group, s in zip(groups, shuffled):
        if s is not None:
            p, p_shuffled, bonus, changed = add_temporal_bonus(group, s, args)
            stats["acc_ordered"].append(p)
            stats["acc_shuffled"].append(p_shuffled)
            stats["bonus"].append(bonus)
            if bonus:
                stats["bonus_changed"].append(changed)
    return groups, stats


@torch.no_grad()
def sample_groups(model, processor, items, n, args):
    """n completions of each of several prompts from ONE batched generate call (model.sample: each picture
    encoded once, second_per_grid_ts exactly as the log-prob pass will use it, model.NucleusSampler drawing
    each token); items: (record, visual, hint or None); n: one count for all, or one per item. Each group
    keeps its own columns up to its longest completion."""
    prompts = [
        data.processor_inputs(processor, [data.prompt_text(processor, record, hint)], [visual]).to(model.device)
        for record, visual, hint in items
    ]
    counts = [n] * len(prompts) if isinstance(n, int) else list(n)
    ids, mask, drawn = model_lib.sample(
        model, prompts, counts, args.temperature, args.top_p, args.max_completion_length
    )
    texts = processor.batch_decode(ids.masked_fill(~mask, processor.tokenizer.pad_token_id), skip_special_tokens=True)
    groups, starts = [], np.cumsum([0] + counts)
    for i, ((record, _, _), prompt) in enumerate(zip(items, prompts)):
        rows = slice(starts[i], starts[i + 1])
        T = max(1, int(mask[rows].sum(1).max()))  # this group's longest completion
        groups.append(Group(record, prompt, ids[rows, :T], mask[rows, :T], texts[rows], sampler_logp=drawn[rows, :T]))
    return groups


def score_group(group, args):
    """Rewards of Video-R1: accuracy + format (+ length bonus). T-GRPO adds its temporal bonus later."""
    record = group.record
    answer_type = (record["solution"], record["problem_type"], args.regression_reward, args.regression_tolerance)
    group.accuracy = [rewards.accuracy_reward(t, *answer_type) for t in group.texts]
    group.format = [rewards.format_reward(t) for t in group.texts]
    if args.accuracy_needs_format:  # Video-R1 does not gate: an answer without the format still earns accuracy
        group.accuracy = [a if f == 1.0 else 0.0 for a, f in zip(group.accuracy, group.format)]
    total = [a + f for a, f in zip(group.accuracy, group.format)]
    if args.length_bonus:
        lengths = group.mask.sum(1).tolist()
        bonus = rewards.length_bonus([a > CORRECT for a in group.accuracy], lengths, args.l_min, args.l_max, args.omega)
        total = [t + b for t, b in zip(total, bonus)]
    group.rewards = torch.tensor(total, dtype=torch.float32)
    return group


def add_temporal_bonus(group, shuffled_group, args):
    """T-GRPO (Video-R1, Sec. 3.1): G~ completions sampled on randomly permuted frames (`shuffled_group`,
    scored, never trained on) measure p~; if the ordered group is at least mu times as accurate, its correct
    completions (accuracy > 0.1, as Video-R1's code) get +alpha. The shuffled group was sampled on the frames
    and hint this group was (DA's noisy frames or hint included), so that p and p~ compare the same question.
    On a group of two reward levels the bonus is an affine map of the rewards and changes no std-normalised
    advantage (rewards.temporal_bonus); the length reward makes the levels that it acts on.
    Returns (acc_ordered, acc_shuffled, bonus given, whether the bonus changed the group's advantages)."""
    bonus = rewards.temporal_bonus(group.accuracy, shuffled_group.accuracy, args.tgrpo_alpha, args.tgrpo_mu)
    p_shuffled = float(np.mean(shuffled_group.accuracy))
    group.temporal = {"order": shuffled_group.order, "acc_shuffled": p_shuffled, "bonus": bonus}
    before = group.rewards
    group.rewards = group.rewards + torch.tensor(bonus, dtype=torch.float32)
    given = any(b > 0 for b in bonus)
    changed = given and bonus_changes_advantages(before, group.rewards, args)
    return float(np.mean(group.accuracy)), p_shuffled, given, changed


def bonus_changes_advantages(rewards_before, rewards_after, args):
    """Whether one group's advantages [G] differ by more than 1e-6 with the bonus and without it. They are
    compared without eps (a group of equal rewards gets 0): eps alone moves a two-level group's advantages by
    ~eps / std (3e-5 for 0/1 rewards in a group of 4), which is not the bonus acting."""
    exact = replace(args, adv_eps=0.0)
    before, after = (torch.nan_to_num(advantages_of(r, exact), nan=0.0) for r in (rewards_before, rewards_after))
    return bool((after - before).abs().max() > 1e-6)  # nan_to_num: 0/0 (equal rewards, no eps) -> 0


# Difficulty-aware augmentation (DeepVideo-R1, Sec. 3.3), all of it: the reference is the mean reward of the last
# W samples of the run on every process (the window lives in infra.TrainState, so that checkpoints keep it; each
# group's mean before augmentation goes in after every micro-batch), da_plan decides, difficulty_augment re-samples.


def difficulty_augment(groups, shuffled, prompts, reference, model, processor, args, stats):
    """Difficulty-aware augmentation (DeepVideo-R1, Sec. 3.3) of one micro-batch, in place, in at most two
    generate calls. dR = reference - mean reward of a group (positive: harder than usual); da_plan decides.

    Too easy (dR < -threshold): re-sample on frames with a fraction of their cells masked (or Gaussian noise),
    growing with |dR|: noise of std 0.5 x 255 barely moved the tiny model's accuracy, masking did.
    Too hard (dR > threshold): sample reasoning with the answer revealed (one call for all such groups), keep
    the best-rewarded, and re-sample with its first words as a hint, cut before the answer (rewards.hint_of).
    The re-sampled groups, and under T-GRPO their shuffled groups on the same frames and hint, are one call.
    An augmented group replaces its original only when its rewards differ (unless --da_all_groups): one
    without a spread teaches nothing either, and the original is the real question."""
    G = args.num_generations
    d_rewards = [reference - g.rewards.mean().item() for g in groups]  # [B] dR of each group, before augmentation
    plans = [da_plan(d, args, bool(g.rewards.std() == 0)) for d, g in zip(d_rewards, groups)]
    hard = [i for i, (kind, _) in enumerate(plans) if kind == "hard"]
    reveal = "The correct answer is {}. Explain how to reach it."
    asked = [
        (groups[i].record, prompts[i][1], reveal.format(data.answer_of(groups[i].record["solution"]))) for i in hard
    ]
    revealed = sample_groups(model, processor, asked, G, args) if hard else []
    hints = {}
    for i, group in zip(hard, revealed):
        best = score_group(group, args).texts[int(group.rewards.argmax())]
        hints[i] = rewards.hint_of(rewards.reasoning_of(best), groups[i].record, plans[i][1])
    jobs = []  # (index, frames, hint) of the groups to re-sample
    for i, (kind, amount) in enumerate(plans):
        if kind == "easy":
            harder = data.mask_frames if args.da_easy == "mask" else data.add_frame_noise
            jobs.append((i, harder(prompts[i][1], amount, prompts[i][2]), None))
        elif kind == "hard" and hints[i]:
            jobs.append((i, prompts[i][1], hints[i]))
    if not jobs:
        return
    reshuffles = [data.shuffle_frames(v, prompts[i][2]) if shuffled[i] is not None else None for i, v, _ in jobs]
    items = [(prompts[i][0], v, h) for i, v, h in jobs]
    items += [(prompts[i][0], r[0], h) for (i, _, h), r in zip(jobs, reshuffles) if r]
    sampled = sample_groups(
        model, processor, items, [G] * len(jobs) + [args.num_shuffled] * (len(items) - len(jobs)), args
    )
    new, extra = sampled[: len(jobs)], iter(sampled[len(jobs) :])
    for (i, visual, hint), group, reshuffle in zip(jobs, new, reshuffles):
        kind, amount = plans[i]
        score_group(group, args)
        stats[kind] += 1
        stats[f"{kind}_zero_after"] += bool(group.rewards.std() == 0)
        again = next(extra) if reshuffle else None
        if group.rewards.std() == 0 and not args.da_all_groups:
            continue
        group.visual, group.mean_before = visual, groups[i].mean_before
        group.augmentation = {"kind": kind, "d_reward": d_rewards[i]} | (
            {args.da_easy: amount} if kind == "easy" else {"hint": hint}
        )
        groups[i] = group
        if again is not None:
            again.visual, again.order = reshuffle[0], reshuffle[1].tolist()
            shuffled[i] = score_group(again, args)


def da_plan(d_reward, args, zero_std=True):
    """DA's decision for a group of difficulty dR = reference - mean reward (positive: harder than usual):
    ("easy", strength) when dR < -threshold, with strength = min(noise_max, noise_scale * |dR|) (the masked
    fraction of the frames' cells, or the noise std as a fraction of 255); ("hard", hint fraction) when
    dR > threshold, with fraction = min(1, hint_scale * dR) of the best reasoning's words; (None, 0.0)
    within the threshold, for a branch --da_branches leaves out, and for a group whose rewards differ
    (zero_std False) unless --da_all_groups: it has a learning signal already, and replacing it by an
    augmented group is what raised the share of groups without one. The paper fixes only the directions
    (noise or masking for too easy, hints for too hard, both growing with |dR|)."""
    if not zero_std and not args.da_all_groups:
        return None, 0.0
    if d_reward < -args.da_threshold and args.da_branches in ("both", "easy"):
        return "easy", min(args.da_noise_max, args.da_noise_scale * abs(d_reward))
    if d_reward > args.da_threshold and args.da_branches in ("both", "hard"):
        return "hard", min(1.0, args.da_hint_scale * d_reward)
    return None, 0.0


def sft_group(processor, record, visual, device):
    """SFT example as a one-completion group: the prompt, and the target (reasoning + answer + end of turn)."""
    prompt = data.processor_inputs(processor, [data.prompt_text(processor, record)], [visual]).to(device)
    tokens = processor.tokenizer(data.sft_target(record) + "<|im_end|>", add_special_tokens=False, return_tensors="pt")
    target = tokens.input_ids.to(device)
    return Group(record, prompt, target, torch.ones_like(target, dtype=torch.bool), [])


# -----------------------------------------------------------------------------
# 4. One step: rollouts -> advantages and old / reference log-probs -> num_iterations x (loss, backward, update)


@torch.no_grad()
def rollout_tensors(groups, ref, args, accelerator, timing, policy):
    """A micro-batch's tensors: (prompt, completions) pairs, mask [N, T], advantages [N], and logp_old /
    logp_ref [N, T] taken once per rollout."""
    if not groups:
        return {"groups": [], "pairs": []}
    pairs = [(g.prompt, g.completion_ids) for g in groups]
    out = {"groups": groups, "pairs": pairs, "mask": infra.pad_stack([g.mask for g in groups], value=False)}
    if args.algo == "sft":
        return out
    rewards_ = torch.cat([g.rewards for g in groups]).to(accelerator.device)  # [N]
    out["rewards"] = rewards_
    out["advantages"] = advantages_of(rewards_, args)  # [N]
    if all(g.sampler_logp is not None for g in groups):
        out["logp_sampler"] = infra.pad_stack([g.sampler_logp for g in groups])  # [N, T]
    with infra.timed(timing, "logprob"):
        # with one update per rollout logp_old equals logp.detach(), taken in compute_loss instead
        one_update = args.num_iterations * args.minibatches == 1
        out["logp_old"] = None if one_update else policy(pairs).detach()  # [N, T]
        out["logp_ref"] = ref(pairs) if ref is not None else None  # [N, T]
    return out


def compute_loss(policy, mb, args, first=False):
    """The one place where the algorithms differ in their loss. Also measures the KL term's share of the
    gradient (the loss again with beta = 0 is the objective alone). first: the first update after sampling,
    where the policy is the sampling one and logp_old is logp exactly (a stored logp_old, from a batch of
    another shape, differs by float rounding, which Reg-GRPO's 1 / eps_rho would blow up)."""
    mask = mb["mask"]  # [N, T]
    if args.algo == "sft":
        return sft_loss(policy(mb["pairs"]), mask), {}
    metrics = {}
    if first:  # the sampling policy itself: what the trainer computes against what the sampler drew from
        logp, entropy = policy(mb["pairs"], entropy=True)  # [N, T], [N, T]
        metrics["policy/entropy"] = (entropy * mask).sum().item() / mask.sum().clamp(min=1).item()
        if mb.get("logp_sampler") is not None:
            gap = (logp.detach() - mb["logp_sampler"]).abs()[mask]  # [completion tokens]
            metrics["rollout/logp_gap_max"], metrics["rollout/logp_gap_mean"] = gap.max().item(), gap.mean().item()
    else:
        logp = policy(mb["pairs"])  # [N, T]
    logp_old = logp.detach() if first or mb["logp_old"] is None else mb["logp_old"]  # [N, T]
    A, logp_ref = mb["advantages"], mb["logp_ref"]

    def loss_with(beta):
        if args.algo == "reg_grpo":
            G, eps, scale = args.num_generations, args.rho_eps, args.reg_scale
            return reg_grpo_loss(logp, logp_old, logp_ref, A, mask, G, beta, eps, args.loss_norm, scale)
        return grpo_loss(logp, logp_old, logp_ref, A, mask, beta, args.eps_low, args.eps_high, args.loss_norm)

    loss, loss_metrics = loss_with(args.beta)
    metrics.update(loss_metrics)
    if args.beta > 0 and logp_ref is not None:
        objective = loss_with(0.0)[0]
        metrics["loss/kl_grad_share"] = kl_grad_share(objective, loss - objective, logp)
    return loss, metrics


def optimizer_updates(accelerator, policy, optimizer, scheduler, micro, args, state, timing):
    """num_iterations x minibatches optimizer updates on one step's rollouts (which stay fixed): each pass
    over them takes one update per minibatch; gradients are accumulated over a minibatch's micro-batches and
    all-reduced once, on the last. Returns the last update's loss, the loss metrics averaged over every
    update and micro-batch (so that reggrpo/active_frac is the fraction of updates where the regression
    acted), and the last grad norm."""
    seen = []  # the loss metrics of every micro-batch of every update
    for update in range(args.num_iterations * args.minibatches):
        with infra.timed(timing, "update"):
            parts = infra.minibatch(micro, update % args.minibatches, args)  # all, or the k-th of K parts
            for k, mb in enumerate(parts):
                sync = accelerator.no_sync(policy) if k < len(parts) - 1 else nullcontext()  # all-reduce on the last
                with sync:
                    loss, loss_metrics = compute_loss(policy, mb, args, first=update == 0)
                    accelerator.backward(loss / len(parts))
                seen.append(loss_metrics)
            grad_norm = infra.clip_gradients(accelerator, policy, args)  # global: the gradients are all-reduced
            infra.optimizer_step(accelerator, optimizer, loss, grad_norm, state)  # skipped when not finite
            scheduler.step()  # once per update on every process (infra.new_accelerator)
            optimizer.zero_grad(set_to_none=True)
    keys = {k for m in seen for k in m}  # the first update's diagnostics (entropy, logp gap) are in its metrics only
    merged = {k: [m[k] for m in seen if k in m] for k in sorted(keys)}
    return loss, {k: float(np.max(v) if k.endswith("_max") else np.mean(v)) for k, v in merged.items()}, grad_norm


# -----------------------------------------------------------------------------
# 5. The loop


def train(args):
    """SFT or RL on --data from --model. Each step: the rollouts of grad_accum micro-batches, then
    num_iterations optimizer updates on them. Every engineering step is one line into infra.py."""
    run = infra.setup(args)  # accelerator, seeds, the model (fp32 master weights; LoRA) and processor
    records = infra.training_records(run, args)  # --data, filtered by --problem_types
    policy = model_lib.LogProbs(run.model, args.logprob_chunk)  # (prompt, completion) pairs -> logp [N, T]
    optimizer, scheduler = infra.optimizer_and_schedule(policy, args)  # AdamW; warm-up, constant or cosine
    policy, optimizer, scheduler, ref = infra.prepare(run, policy, optimizer, scheduler, args)  # ref: pairs -> logp
    state = infra.TrainState(args.da_window, run.accelerator.num_processes)  # step, data streams, DA's window
    infra.start_or_resume(run, state, args)  # --resume: the latest checkpoint-N/; args.json, trackers
    unwrapped = run.accelerator.unwrap_model(policy).model  # what generate runs
    while state.step < args.max_steps:
        t_step, timing = time.time(), {"generate": 0.0, "score": 0.0, "logprob": 0.0, "update": 0.0}
        micro = []
        for _ in range(args.grad_accum):  # rollouts of every micro-batch first; then num_iterations updates
            with infra.rollout_context(run.accelerator, policy, args):  # sharded weights whole; autocast
                prompts, taken = infra.next_prompts(run, state, records, args)  # [(record, visual, generator)]
                if args.algo == "sft":
                    groups, stats = [sft_group(run.processor, r, v, run.accelerator.device) for r, v, _ in prompts], {}
                else:
                    reference = float(np.mean(state.window)) if args.da and state.window else None  # DA's
                    groups, stats = collect_rollouts(unwrapped, run.processor, prompts, reference, args, timing)
                micro.append(rollout_tensors(groups, ref, args, run.accelerator, timing, policy) | {"stats": stats})
            state.record(run.accelerator, [g.mean_before for g in groups], taken, args.da)  # + DA's window

        loss, loss_metrics, grad_norm = optimizer_updates(
            run.accelerator, policy, optimizer, scheduler, micro, args, state, timing
        )
        state.step += 1
        m = infra.step_metrics(micro, loss, loss_metrics, grad_norm, scheduler, timing, t_step, args, state)
        infra.end_step(run, state, m, micro, args)  # metrics.jsonl, trackers, completions.jsonl, checkpoint
    infra.finish(run, policy, state, args)  # the last checkpoint and final/
    return state


def main(argv=None):
    args = infra.command_line(parse_args, argv)  # CPU threads; a bad flag or input path: one line, not a traceback
    if args.algo != "sft" and not args.model and not args.data:
        evaluation.main_job(args, train)  # the tiny model on the synthetic benchmark: SFT, RL, evaluations
    else:
        train(args)


if __name__ == "__main__":
    main()
