"""
RL fine-tuning of Qwen2.5-VL on video: SFT cold start, GRPO, T-GRPO, Reg-GRPO, difficulty-aware augmentation.

    accelerate launch train.py --algo reg_grpo                      # built-in tiny model + synthetic videos
    accelerate launch train.py --algo t_grpo --model Qwen/Qwen2.5-VL-3B-Instruct --data Video-R1-260k.json
    python train.py --help

Sections, top to bottom:
  1. configuration: one dataclass, a help string per field, defaults from the papers
  2. advantages and losses: pure functions of tensors, the algorithms side by side
  3. rollouts: sampling G completions per prompt, rewards, T-GRPO's shuffled group, DA
  4. the training loop on accelerate: data order, updates, metrics, checkpoints, resume
Shapes: B prompts, G completions per prompt, N = B*G sequences, T completion tokens, V vocabulary.
"""

import json
import math
import os
import random
import re
import shutil
import sys
import time
from collections import deque
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, fields
from functools import lru_cache

import numpy as np
import torch

import data
import rewards

# -----------------------------------------------------------------------------
# 1. Configuration

TINY_MODEL_DIR = "data/tiny-qwen2.5-vl"  # the built-in tiny model, built on first use
SYNTH_DIR = "data/synth"  # the synthetic benchmark, generated on first use
# The main job's benchmark: one temporal and two static families, objects half the frame wide, 2,400
# training samples so that SFT never repeats one. Measured (docs/EXPERIMENTS.md, "What made the SFT start see"): with 600 samples
# seen four times and 35%-wide objects, 300 SFT steps leave the tiny model answering one colour to every
# colour question; with these settings its held-out score is 0.64-0.76 and it uses its video. (A 200-step
# start with 50 RL steps was tried and is worse: docs/EXPERIMENTS.md, "Superseded".)
# `size` squares are 20, 50 or 80% of the frame wide, and SFT runs 225 steps: with any whole width from 20
# to 80 the tiny model's `size` answers were blind guesses and RL on them lost ground, and 300 steps on
# three widths left no room for RL (docs/EXPERIMENTS.md, "Other attempts at `size`" and "The main job over nine seeds").
MAIN_JOB_FAMILIES = ("color", "approach", "size")
MAIN_JOB_OBJECT_SIZE = 0.5
MAIN_JOB_SIZE_PERCENTS = "20,50,80"
MAIN_JOB_SFT_STEPS = 225
ALL_FAMILIES = data.SynthConfig().families
TINY_HIDDEN_SIZE = 128  # model.TINY_HIDDEN, repeated so that `python train.py --help` stays fast


@dataclass
class Args:
    algo: str = field(
        default="grpo",
        metadata={"help": "sft | grpo | t_grpo | reg_grpo", "choices": ["sft", "grpo", "t_grpo", "reg_grpo"]},
    )
    da: bool = field(
        default=False, metadata={"help": "difficulty-aware augmentation (DeepVideo-R1) on top of any RL algo"}
    )
    model: str = field(
        default="",
        metadata={
            "help": f"hub id or folder of a Qwen2.5-VL checkpoint; empty: the built-in tiny model ({TINY_MODEL_DIR})"
        },
    )
    data: str = field(
        default="",
        metadata={
            "help": f"Video-R1 JSON/JSONL training file; empty: the synthetic benchmark ({SYNTH_DIR}/train.json)"
        },
    )
    output_dir: str = field(default="", metadata={"help": "run folder; empty: runs/<algo>[-da]-seed<seed>"})
    seed: int = field(
        default=0, metadata={"help": "seeds python, numpy and torch (offset per process); in the run name"}
    )
    max_steps: int = field(
        default=0,
        metadata={
            "help": "rollout steps (each: grad_accum micro-batches, then num_iterations optimizer updates); 0: 60 for the tiny model, 50 otherwise"
        },
    )
    batch_size: int = field(
        default=0,
        metadata={
            "help": "prompts per process per micro-batch; 0: 8 for the tiny model, 1 otherwise (Video-R1: 1 per GPU)"
        },
    )
    grad_accum: int = field(default=1, metadata={"help": "micro-batches per optimizer update"})
    num_generations: int = field(
        default=0,
        metadata={
            "help": "G: completions per prompt (GRPO group size); 0: 4 for the tiny model, 8 otherwise (Video-R1, DeepVideo-R1)"
        },
    )
    num_shuffled: int = field(
        default=0, metadata={"help": "T-GRPO: completions on shuffled frames per video prompt; 0: G/2 (Video-R1)"}
    )
    max_completion_length: int = field(
        default=0, metadata={"help": "max new tokens per completion; 0: 64 for the tiny model, 768 otherwise"}
    )
    temperature: float = field(default=1.0, metadata={"help": "sampling temperature for rollouts"})
    top_p: float = field(default=0.95, metadata={"help": "nucleus sampling for rollouts"})
    learning_rate: float = field(
        default=0.0,
        metadata={
            "help": "AdamW learning rate; 0: 1e-3 (SFT) / 1e-4 (RL) for the tiny model, 1e-5 (SFT) / 1e-6 (RL) otherwise"
        },
    )
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay"})
    warmup_steps: int = field(default=0, metadata={"help": "linear warm-up of the learning rate, in optimizer updates"})
    lr_schedule: str = field(
        default="constant", metadata={"help": "constant | cosine (after warm-up)", "choices": ["constant", "cosine"]}
    )
    max_grad_norm: float = field(default=1.0, metadata={"help": "gradient clipping by global norm; 0 disables"})
    num_iterations: int = field(
        default=1,
        metadata={
            "help": "optimizer updates per rollout (mu in GRPO); >1 makes the clip and Reg-GRPO's regression bite"
        },
    )
    beta: float = field(
        default=-1.0,
        metadata={
            "help": "KL weight; -1: 0.04 for grpo/t_grpo (Video-R1), 0.1 for reg_grpo (DeepVideo-R1). 0 drops the reference model"
        },
    )
    eps_low: float = field(default=0.2, metadata={"help": "GRPO ratio clip below 1"})
    eps_high: float = field(default=0.2, metadata={"help": "GRPO ratio clip above 1 (DAPO uses 0.28)"})
    loss_norm: str = field(
        default="sequence",
        metadata={
            "help": "sequence: mean over each sequence's tokens then over sequences (GRPO, Video-R1); token: over all tokens of the batch (DAPO)",
            "choices": ["sequence", "token"],
        },
    )
    advantage: str = field(
        default="grpo",
        metadata={
            "help": "advantage estimator: grpo = group-normalised (see --adv_norm); rloo = R minus the mean of the group's other G-1 rewards (Ahmadian et al. 2024); reinforce = R minus the mean reward of the process's micro-batch (train.reinforce_advantages). DeepVideo-R1 compares all three",
            "choices": ["grpo", "rloo", "reinforce"],
        },
    )
    adv_eps: float = field(default=1e-4, metadata={"help": "eps in (R - mean) / (std + eps)"})
    adv_norm: str = field(
        default="std",
        metadata={
            "help": "std: A = (R - mean) / (std + eps) per group (GRPO, Video-R1, DeepVideo-R1); none: A = R - mean (Dr. GRPO), so groups with a small reward spread weigh less",
            "choices": ["std", "none"],
        },
    )
    rho_eps: float = field(
        default=1e-4, metadata={"help": "Reg-GRPO: eps in the normalisation of the sequence log-ratios"}
    )
    tgrpo_alpha: float = field(default=0.3, metadata={"help": "T-GRPO: bonus for correct ordered completions"})
    tgrpo_mu: float = field(
        default=1.0,
        metadata={
            "help": "T-GRPO: bonus only when p_ordered >= mu * p_shuffled. 1.0: Video-R1's paper (v4, Eq. 1), which its maintainers called right (tulerfeng/Video-R1 issue 74, 'should be 1.0'); their code uses 0.8"
        },
    )
    regression_reward: str = field(
        default="relative",
        metadata={
            "help": "regression answers' training reward: relative = 1 - |pred - gt| / |gt| (Video-R1); mra = the evaluation's mean relative accuracy; within = 1 if |pred - gt| / |gt| <= regression_tolerance else 0",
            "choices": list(rewards.REGRESSION_REWARDS),
        },
    )
    regression_tolerance: float = field(
        default=0.2, metadata={"help": "relative error up to which --regression_reward within counts an answer right"}
    )
    length_bonus: bool = field(
        default=False,
        metadata={"help": "Video-R1's length bonus: +omega to correct completions with length in [l_min, l_max]"},
    )
    l_min: int = field(default=320, metadata={"help": "length bonus lower bound, tokens (Video-R1, 3B)"})
    l_max: int = field(default=512, metadata={"help": "length bonus upper bound, tokens"})
    omega: float = field(default=0.2, metadata={"help": "length bonus value"})
    da_window: int = field(
        default=100,
        metadata={
            "help": "DA: number of recent samples whose mean reward is the difficulty reference (DeepVideo-R1: 100)"
        },
    )
    da_threshold: float = field(
        default=0.1,
        metadata={
            "help": "DA: |reference - mean reward| above which a sample counts as too easy / too hard (ours: DeepVideo-R1 gives no constant)"
        },
    )
    da_noise_scale: float = field(
        default=0.5,
        metadata={
            "help": "DA: frame noise std (fraction of 255) per unit of |dR| for too-easy samples (ours: the paper gives no constant)"
        },
    )
    da_noise_max: float = field(default=0.5, metadata={"help": "DA: cap on the frame noise std (ours)"})
    da_hint_scale: float = field(
        default=1.0,
        metadata={
            "help": "DA: fraction of the best reasoning given as a hint per unit of dR for too-hard samples (ours)"
        },
    )
    num_frames: int = field(
        default=0, metadata={"help": "frames sampled per video; 0: 4 for the tiny model, 16 otherwise (both papers)"}
    )
    min_pixels: int = field(
        default=0, metadata={"help": "min pixels per frame/image; 0: the model's processor default"}
    )
    max_pixels: int = field(
        default=0,
        metadata={
            "help": "max pixels per frame/image; 0: the processor default (tiny) or 128*28*28 (real checkpoints)"
        },
    )
    freeze_vision: bool = field(
        default=None,
        metadata={
            "help": "freeze the vision encoder (the patch merger still trains); default: frozen for RL (DeepVideo-R1 freezes it; docs/EXPERIMENTS.md, 'Freezing the vision tower in RL'), trained for SFT"
        },
    )
    gradient_checkpointing: bool = field(
        default=False, metadata={"help": "recompute activations in the backward pass to save memory"}
    )
    lora_r: int = field(
        default=0,
        metadata={
            "help": "LoRA rank (peft); 0: train the full weights. With LoRA only the adapters train (vision tower and merger frozen) and the reference model is the base with adapters off"
        },
    )
    lora_alpha: float = field(
        default=32.0, metadata={"help": "LoRA scale numerator: the adapter's update is multiplied by alpha / r"}
    )
    lora_dropout: float = field(default=0.0, metadata={"help": "dropout on the LoRA branch's input"})
    lora_targets: str = field(
        default="",
        metadata={
            "help": "regular expression over full module names to adapt; empty: q/k/v/o/gate/up/down projections of the language model only (model.LLM_LORA_TARGETS), never the vision tower"
        },
    )
    lora_merge: bool = field(
        default=True,
        metadata={
            "help": "LoRA: final/ holds the merged full model; --no-lora_merge: only the adapter (+ processor), which eval.py and model.load also read"
        },
    )
    dtype: str = field(
        default="auto",
        metadata={
            "help": "compute dtype of the matmuls, through accelerate's mixed precision (autocast); weights and AdamW state stay fp32 whatever it is (README, 'Precision, the schedule and checkpoints'). auto: bf16 on a GPU that has it, fp32 otherwise; fp16 adds accelerate's gradient scaler",
            "choices": ["auto", "bf16", "fp16", "fp32"],
        },
    )
    logprob_chunk: int = field(default=256, metadata={"help": "tokens per chunk of the LM-head log-softmax"})
    save_steps: int = field(
        default=0, metadata={"help": "write a checkpoint every K steps (and at the end); 0: only at the end"}
    )
    resume: bool = field(default=False, metadata={"help": "continue from the latest checkpoint in output_dir"})
    report_to: str = field(
        default="",
        metadata={
            "help": "accelerate trackers, comma-separated: tensorboard, wandb, ... (metrics.jsonl is always written)"
        },
    )
    log_completions_steps: int = field(
        default=10,
        metadata={
            "help": "write 2 whole groups (frames, completions, rewards, advantages) to completions.jsonl every K steps, for `eval.py view RUN_DIR`; 0: never"
        },
    )
    problem_types: str = field(
        default="",
        metadata={
            "help": "train only on records of these problem types (comma-separated, e.g. 'multiple choice'); empty or 'all': every type. In the main job it applies to the RL stage; the SFT start trains on everything"
        },
    )
    strict_data: bool = field(
        default=False, metadata={"help": "stop at the first unreadable sample instead of skipping it"}
    )
    sft_steps: int = field(
        default=MAIN_JOB_SFT_STEPS,
        metadata={"help": "main job (no --model, no --data): SFT cold-start steps before RL (cached under runs/)"},
    )
    sft_batch_size: int = field(default=8, metadata={"help": "main job: prompts per SFT step"})
    eval_limit: int = field(
        default=0, metadata={"help": "main job: evaluate on the first N held-out records only; 0: all"}
    )
    synth_train: int = field(
        default=2400,
        metadata={"help": f"training samples of the synthetic benchmark when it is generated ({SYNTH_DIR})"},
    )
    synth_test: int = field(
        default=200, metadata={"help": "held-out samples of the synthetic benchmark when it is generated"}
    )
    synth_families: str = field(
        default=",".join(MAIN_JOB_FAMILIES),
        metadata={
            "help": f"question families of the synthetic benchmark when it is generated (comma-separated, from {', '.join(ALL_FAMILIES)})"
        },
    )
    synth_size: float = field(
        default=MAIN_JOB_OBJECT_SIZE,
        metadata={"help": "object size of the synthetic benchmark (fraction of the frame's side) when it is generated"},
    )
    synth_size_percents: str = field(
        default=MAIN_JOB_SIZE_PERCENTS,
        metadata={
            "help": 'widths (percent of the frame) a `size` question\'s square may have when the benchmark is generated; "": any whole number from 20 to 80 (docs/EXPERIMENTS.md, "Other attempts at `size`")'
        },
    )

    @property
    def tiny(self):
        """The built-in tiny model, or a checkpoint trained from it (e.g. an SFT run's final/): its
        small defaults (frames, lengths, learning rates) apply; any other model gets the papers'. A LoRA
        adapter folder (no config.json) is judged by the base it names."""
        if not self.model:
            return True
        import model as model_lib  # not at the top: `python train.py --help` stays fast

        config_path = os.path.join(model_lib.lora_base(self.model) or self.model, "config.json")
        if not os.path.isfile(config_path):
            return False
        with open(config_path) as f:
            config = json.load(f)
        return config.get("text_config", config).get("hidden_size") == TINY_HIDDEN_SIZE

    def resolve(self):
        """Fill the 'auto' values (0 / -1 / empty) once, so the saved config says what actually ran."""
        tiny = self.tiny  # reads the model's config.json: once
        self.beta = (0.1 if self.algo == "reg_grpo" else 0.04) if self.beta < 0 else self.beta
        self.freeze_vision = self.algo != "sft" if self.freeze_vision is None else self.freeze_vision
        if self.algo == "sft":
            self.beta, self.da = 0.0, False
        self.max_completion_length = self.max_completion_length or (64 if tiny else 768)
        self.num_frames = self.num_frames or (data.TINY_NUM_FRAMES if tiny else data.PAPER_NUM_FRAMES)
        self.max_pixels = self.max_pixels or (0 if tiny else data.PAPER_MAX_PIXELS)
        # The tiny model's RL budget on a CPU: 8 prompts x G = 4 a step rather than 1 x 8. Measured from the
        # main job's SFT start (docs/EXPERIMENTS.md, "What made the SFT start see"): with 1 or 4 prompts a step the update mostly moves
        # the answer priors and held-out accuracy falls; 8 prompts of 4 completions cost the same as 4 of 8.
        # 60 steps with the vision encoder frozen beat 30 (docs/EXPERIMENTS.md, "Freezing the vision tower in RL").
        self.max_steps = self.max_steps or (60 if tiny else 50)
        self.batch_size = self.batch_size or (8 if tiny else 1)
        self.num_generations = self.num_generations or (4 if tiny else 8)
        self.num_shuffled = self.num_shuffled or max(1, self.num_generations // 2)
        if not self.learning_rate:
            self.learning_rate = (
                (1e-3 if self.algo == "sft" else 1e-4) if tiny else (1e-5 if self.algo == "sft" else 1e-6)
            )
        self.output_dir = self.output_dir or f"runs/{self.algo}{'-da' if self.da else ''}-seed{self.seed}"
        if self.num_frames % 2:
            raise ValueError("--num_frames must be even: Qwen2.5-VL merges frames in pairs (temporal patch 2)")
        if self.algo != "sft" and self.num_generations < 2:
            raise ValueError("--num_generations must be >= 2: group advantages need a group")
        return self


def parse_args(argv=None):
    import argparse

    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0].strip(), formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    for f in fields(Args):
        if f.type is bool or f.type == "bool":
            parser.add_argument(
                f"--{f.name}", action=argparse.BooleanOptionalAction, default=f.default, help=f.metadata["help"]
            )
        else:
            kind = {"int": int, "float": float, "str": str}.get(f.type, f.type) if isinstance(f.type, str) else f.type
            parser.add_argument(
                f"--{f.name}", type=kind, default=f.default, help=f.metadata["help"], choices=f.metadata.get("choices")
            )
    return Args(**vars(parser.parse_args(argv))).resolve()


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
    clipped = ((ratio < 1 - eps_low) & (A < 0)) | (
        (ratio > 1 + eps_high) & (A > 0)
    )  # where the clip removes the gradient
    metrics = {
        "loss/kl": masked_mean(kl, mask, norm).item(),
        "loss/clip_frac": masked_mean(clipped.float(), mask, norm).item(),
    }
    return loss, metrics


def reg_grpo_loss(logp, logp_old, logp_ref, advantages, mask, group_size, beta=0.1, eps_rho=1e-4, norm="sequence"):
    """Reg-GRPO (DeepVideo-R1, arXiv 2506.07464, Sec. 3.2): regress the group-normalised advantage with the
    group-normalised sequence log-ratio. How it differs from GRPO: no ratio, no clip, no min.

        rho_i  = sum_t mask * (logp - logp_old)                  log pi(y_i) / pi_old(y_i)
        A^_i   = (rho_i - mean_j rho_j) / (std_j rho_j + eps_rho)  per group, Bessel std
        loss   = mean_i (A_i - A^_i)^2 + beta * KL              (KL averaged as in grpo_loss)

    With one update per rollout (--num_iterations 1) this is not a regression. On the first update after
    sampling logp_old is logp itself, so rho == 0 exactly, A^ == 0 and the loss is the constant mean(A^2);
    its gradient is still finite: -(2 / (N * eps_rho)) * sum_i A_i * grad rho_i, N = B*G the rows averaged
    (the mean term of A^ drops out because each group's A sums to 0, as GRPO's and RLOO's do), i.e.
    REINFORCE on sequence log-probs with a scale of 2e4 / N that Adam and gradient clipping absorb. Beside
    that scale the KL term's gradient is ~1e-4 of the total, so beta does next to nothing. The regression,
    which DeepVideo-R1 credits for needing no clip, acts only from the second update on the same rollouts
    (num_iterations > 1). `reggrpo/active_frac` is 1 for an update whose rho was not all zero (|rho| > 1e-6);
    train.py averages it over a step's updates.
    """
    mask_f = mask.to(logp.dtype)
    rho = ((logp - logp_old) * mask_f).sum(1).view(-1, group_size)  # [B, G]
    predicted = ((rho - rho.mean(1, keepdim=True)) / (rho.std(1, keepdim=True) + eps_rho)).view(-1)  # [N]
    mse = ((advantages - predicted) ** 2).mean()
    kl = kl_k3(logp, logp_ref) if (logp_ref is not None and beta > 0) else torch.zeros_like(logp)  # [N, T]
    kl_mean = masked_mean(kl, mask, norm)
    loss = mse + beta * kl_mean
    metrics = {
        "loss/kl": kl_mean.item(),
        "reggrpo/mse": mse.item(),
        "reggrpo/rho_std": rho.std(1).mean().item(),
        "reggrpo/active_frac": float(rho.abs().max() > 1e-6),
    }
    return loss, metrics


def sft_loss(logp, mask):
    """SFT cold start (Video-R1): cross-entropy of the chain of thought + answer tokens only; prompt and
    vision tokens carry no label (Video-R1's script also trained on the prompt; we do not)."""
    return -(logp * mask).sum() / mask.sum().clamp(min=1)


# -----------------------------------------------------------------------------
# 3. Rollouts: sample a group, score it, T-GRPO's shuffled group, difficulty-aware augmentation

CORRECT = 0.5  # accuracy above which a completion counts as correct for the length bonus


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
    augmentation: dict = None  # DA: {"kind": "easy", "noise_std": s} or {"kind": "hard", "hint": text}
    temporal: dict = None  # T-GRPO: {"order": shuffled frame order, "acc_shuffled": p~, "bonus": [G]}


def completion_mask(ids, eos_ids):
    """True up to and including the first end-of-turn token of each row of ids [G, T]."""
    is_eos = torch.isin(ids, eos_ids).long()  # [G, T]
    return (is_eos.cumsum(1) - is_eos) == 0  # [G, T] no eos strictly before this position


@torch.no_grad()
def sample_groups(model, processor, items, n, args):
    """n completions of each of several prompts from ONE batched generate call; items: (record, visual,
    hint or None). Each picture is encoded once and its features shared by its n rows
    (model.stacked_prompts), second_per_grid_ts goes in exactly as the log-prob pass will use it, and
    model.NucleusSampler draws each token (generate itself runs greedy). Rows of finished completions
    are padded until the longest is done; each group keeps its own columns up to its longest completion."""
    import model as model_lib

    prompts = [
        data.processor_inputs(processor, [data.prompt_text(processor, record, hint)], [visual]).to(model.device)
        for record, visual, hint in items
    ]
    was_training = model.training
    model.eval()
    inputs = model_lib.stacked_prompts(model, prompts, [n] * len(prompts))
    eos = model.generation_config.eos_token_id
    eos_ids = torch.tensor(eos if isinstance(eos, list) else [eos], device=model.device)
    # temperature + top-p, drawn without the full-vocabulary multinomial and without sorting finished rows
    sampler = model_lib.NucleusSampler(
        args.temperature, args.top_p, prompt_length=inputs["input_ids"].shape[1], eos_ids=eos_ids
    )
    with model_lib.own_generation_config(
        model
    ):  # no penalty or top-k of the checkpoint's: the rollouts are the policy's own samples
        out = model.generate(
            **inputs,
            do_sample=False,
            logits_processor=[sampler],
            suppress_tokens=model_lib.vision_placeholder_ids(model.config),
            max_new_tokens=args.max_completion_length,
            use_cache=True,
            synced_gpus=False,
        )  # weights are whole here (model.gathered_for_generation): no lockstep with other processes
    model.train(was_training)
    ids = out[:, inputs["input_ids"].shape[1] :]  # [len(items) * n, T]
    mask = completion_mask(ids, eos_ids)  # [len(items) * n, T]
    texts = processor.batch_decode(ids.masked_fill(~mask, processor.tokenizer.pad_token_id), skip_special_tokens=True)
    groups = []
    for i, ((record, _, _), prompt) in enumerate(zip(items, prompts)):
        rows = slice(i * n, (i + 1) * n)
        length = max(1, int(mask[rows].sum(1).max()))  # this group's longest completion
        groups.append(Group(record, prompt, ids[rows, :length], mask[rows, :length], texts[rows]))
    return groups


def sample_group(model, processor, record, visual, n, args, hint=None):
    """n completions of one prompt (see sample_groups)."""
    return sample_groups(model, processor, [(record, visual, hint)], n, args)[0]


def score_group(group, args):
    """Rewards of Video-R1: accuracy + format (+ length bonus). T-GRPO adds its temporal bonus later."""
    record = group.record
    group.accuracy = [
        rewards.accuracy_reward(
            t, record["solution"], record["problem_type"], args.regression_reward, args.regression_tolerance
        )
        for t in group.texts
    ]
    group.format = [rewards.format_reward(t) for t in group.texts]
    total = [a + f for a, f in zip(group.accuracy, group.format)]
    if args.length_bonus:
        lengths = group.mask.sum(1).tolist()
        bonus = rewards.length_bonus([a > CORRECT for a in group.accuracy], lengths, args.l_min, args.l_max, args.omega)
        total = [t + b for t, b in zip(total, bonus)]
    group.rewards = torch.tensor(total, dtype=torch.float32)
    return group


def add_temporal_bonus(group, model, processor, visual, args, generator, hint=None):
    """T-GRPO (Video-R1, Sec. 3.1): sample G~ completions on randomly permuted frames; if the ordered group
    is at least mu times as accurate, correct ordered completions get +alpha. The shuffled completions only
    measure p~; they are never trained on. `visual` and `hint` are those the ordered group was sampled
    with (DA's noisy frames or hint included), so that p and p~ compare the same question.

    The bonus can change nothing: with std-normalised advantages, a group whose rewards take two values
    (right or wrong, the format always 1) gets the same advantages with or without it, because adding
    alpha to the correct ones is an affine map of the rewards (up to eps). It acts on groups of three or
    more reward levels (graded answers, varying format, the length bonus) or without the std
    (--adv_norm none, rloo, reinforce); see rewards.temporal_bonus.
    Returns (acc_ordered, acc_shuffled, bonus given, whether the bonus changed the group's advantages)."""
    shuffled, order = data.shuffle_frames(visual, generator)
    shuffled_group = score_group(
        sample_group(model, processor, group.record, shuffled, args.num_shuffled, args, hint=hint), args
    )
    bonus = rewards.temporal_bonus(group.accuracy, shuffled_group.accuracy, args.tgrpo_alpha, args.tgrpo_mu)
    group.temporal = {"order": order.tolist(), "acc_shuffled": float(np.mean(shuffled_group.accuracy)), "bonus": bonus}
    before = group.rewards
    group.rewards = group.rewards + torch.tensor(bonus, dtype=torch.float32)
    given = any(b > 0 for b in bonus)
    changed = given and bonus_changes_advantages(before, group.rewards, args)
    return float(np.mean(group.accuracy)), float(np.mean(shuffled_group.accuracy)), given, changed


def bonus_changes_advantages(rewards_before, rewards_after, args):
    """Whether one group's advantages [G] differ by more than 1e-6 with the bonus and without it. They are
    compared without eps (a group of equal rewards gets 0): eps alone moves a two-level group's advantages by
    ~eps / std (3e-5 for 0/1 rewards in a group of 4), which is not the bonus acting."""
    exact = Args(**{**asdict(args), "adv_eps": 0.0})
    before, after = (
        torch.nan_to_num(advantages_of(r, exact), nan=0.0) for r in (rewards_before, rewards_after)
    )  # 0/0 -> 0
    return bool((after - before).abs().max() > 1e-6)


def reasoning_of(text):
    """The text inside <think>...</think> (or before <answer> when the tag is missing)."""
    start, end = text.find("<think>"), text.find("</think>")
    if start != -1 and end > start:
        return text[start + len("<think>") : end].strip()
    return text.split("<answer>")[0].strip()


def difficulty_augment(group, visual, reference, model, processor, args, generator):
    """Difficulty-aware augmentation (DeepVideo-R1, Sec. 3.3). dR = reference - mean reward of the group.

    Too easy (dR < -threshold): Gaussian noise on every frame, std = min(max, scale * |dR|), re-sample.
    Too hard (dR > threshold): reveal the answer, sample reasoning, keep the best-rewarded one, and give
    the first min(1, scale * dR) of its words as a hint; re-sample (see da_plan). Returns (group to train
    on, kind or None, the frames and the hint it was sampled with). Within the threshold the group is kept.
    """
    d_reward = reference - group.rewards.mean().item()
    kind, amount = da_plan(d_reward, args)
    if kind == "easy":
        noisy = data.add_frame_noise(visual, amount, generator)
        easier = score_group(sample_group(model, processor, group.record, noisy, args.num_generations, args), args)
        easier.augmentation = {"kind": "easy", "noise_std": amount, "d_reward": d_reward}
        return easier, "easy", noisy, None
    if kind == "hard":
        answer = data.answer_of(group.record["solution"])
        revealed = sample_group(
            model,
            processor,
            group.record,
            visual,
            args.num_generations,
            args,
            hint=f"The correct answer is {answer}. Explain how to reach it.",
        )
        score_group(revealed, args)
        best = revealed.texts[int(revealed.rewards.argmax())]
        hint = hint_prefix(reasoning_of(best), amount)
        if hint:
            hinted = score_group(
                sample_group(model, processor, group.record, visual, args.num_generations, args, hint=hint), args
            )
            hinted.augmentation = {"kind": "hard", "hint": hint, "d_reward": d_reward}
            return hinted, "hard", visual, hint
    return group, None, visual, None


def da_plan(d_reward, args):
    """DA's decision for a group of difficulty dR = reference - mean reward (positive: harder than usual):
    ("easy", noise std) when dR < -threshold, with std = min(noise_max, noise_scale * |dR|) (a fraction of
    255); ("hard", hint fraction) when dR > threshold, with fraction = min(1, hint_scale * dR) of the best
    reasoning's words; (None, 0.0) within the threshold. The paper fixes only the directions (noise for
    too easy, hints for too hard, both growing with |dR|); the threshold and the scales are ours."""
    if d_reward < -args.da_threshold:
        return "easy", min(args.da_noise_max, args.da_noise_scale * abs(d_reward))
    if d_reward > args.da_threshold:
        return "hard", min(1.0, args.da_hint_scale * d_reward)
    return None, 0.0


def hint_prefix(reasoning, fraction):
    """The first ceil(fraction * words) words of a reasoning text."""
    words = reasoning.split()
    return " ".join(words[: math.ceil(fraction * len(words))])


def sft_group(processor, record, visual, device):
    """SFT example as a one-completion group: the prompt, and the target (reasoning + answer + end of turn)."""
    prompt = data.processor_inputs(processor, [data.prompt_text(processor, record)], [visual]).to(device)
    target = processor.tokenizer(
        data.sft_target(record) + "<|im_end|>", add_special_tokens=False, return_tensors="pt"
    ).input_ids.to(device)
    return Group(record, prompt, target, torch.ones_like(target, dtype=torch.bool), [])


# -----------------------------------------------------------------------------
# 4. The training loop


class TrainState:
    """What a checkpoint needs beyond model, optimizer, scheduler and RNG (which accelerate saves):
    the step, the data position, DA's reward window, and counters.

    Every field is the same on every process, so the main process's copy in a checkpoint resumes all of
    them exactly (accelerate saves registered objects from the main process only). DA's window is global
    for that reason: after each micro-batch every process gathers the mean rewards of all processes'
    groups (in data order), as DeepVideo-R1's "the last W samples" reads, rather than W samples of its own
    shard. `skipped` counts the unreadable samples of all processes likewise.

    Data positions: process r reads its own stream, stream_position(r, k) for k = 0, 1, ...: in every block of
    batch_size x processes positions of the seeded order, the batch_size after r * batch_size. `taken[r]` is
    how far process r has read its stream; an unreadable sample makes it read one further, so every process
    trains on batch_size readable samples every micro-batch (the same forwards and collectives on all) and
    a resumed run reads exactly where the killed one stopped. `position` is the sum: positions read in all."""

    def __init__(self, window, world=1):
        self.step, self.skipped, self.nonfinite = 0, 0, 0
        self.window = deque(maxlen=window)
        self.taken = [0] * world

    @property
    def position(self):
        return sum(self.taken)

    def state_dict(self):
        return {
            "step": self.step,
            "position": self.position,
            "skipped": self.skipped,
            "nonfinite": self.nonfinite,
            "window": list(self.window),
            "taken": list(self.taken),
        }

    def load_state_dict(self, state):
        self.step, self.skipped, self.nonfinite = state["step"], state["skipped"], state["nonfinite"]
        self.window.clear()
        self.window.extend(state["window"])
        if len(state.get("taken", [])) != len(self.taken):
            raise SystemExit(
                f"the checkpoint was written by {len(state.get('taken', []))} processes, this run has {len(self.taken)}: "
                "resume with as many processes as the run had (each reads its own stream of the data)"
            )
        self.taken = list(state["taken"])

    @staticmethod
    def check_readable(accelerator, found, wanted):
        """Before a micro-batch's rollouts (every process calls it: a collective): stop every process together
        when one found fewer than `wanted` readable samples, rather than let the others wait for it."""
        short = accelerator.gather(torch.tensor([int(found < wanted)], device=accelerator.device)).cpu()  # [world]
        if short.any():
            raise SystemExit(
                f"process(es) {short.nonzero().view(-1).tolist()} found fewer than {wanted} readable samples in the next "
                f"{READ_ATTEMPTS * wanted} records of their data streams: check the file with `python data.py check FILE`"
            )

    def record(self, accelerator, mean_rewards, taken, da):
        """Fold one micro-batch of every process into the counters and (da) DA's window. mean_rewards: this
        process's [batch_size] group means before augmentation, in data order; taken: how far it has now read
        its stream. Every process calls it once per micro-batch (a collective)."""
        device = accelerator.device
        everyone = accelerator.gather(
            torch.tensor(mean_rewards, dtype=torch.float32, device=device)
        ).cpu()  # [world * batch_size]
        counts = accelerator.gather(torch.tensor([taken], dtype=torch.long, device=device)).cpu()  # [world]
        self.skipped += int(counts.sum()) - sum(self.taken) - len(everyone)  # read minus trained on, all processes
        self.taken = counts.tolist()
        if da:
            self.window.extend(everyone.tolist())


READ_ATTEMPTS = (
    20  # a micro-batch gives up after 20 x batch_size records of a process's stream without batch_size readable ones
)


def stream_position(rank, k, batch_size, world):
    """The k-th data position of process `rank`'s stream (see TrainState)."""
    block, offset = divmod(k, batch_size)
    return block * batch_size * world + rank * batch_size + offset


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def prepare_assets(args):
    """The built-in tiny model and the synthetic benchmark, built once when no --model / --data is given."""
    import model as model_lib

    if args.tiny and not os.path.isdir(TINY_MODEL_DIR):
        model_lib.build_tiny(TINY_MODEL_DIR, seed=0)
    if not args.data:
        wanted = synth_config(args)
        if os.path.isfile(os.path.join(SYNTH_DIR, "train.json")):
            check_synth_config(
                os.path.join(SYNTH_DIR, "synth_config.json"), wanted, f"delete {SYNTH_DIR} to regenerate it"
            )
        else:
            cfg = data.SynthConfig(**{k: v for k, v in wanted.items() if k in data.SynthConfig.__dataclass_fields__})
            data.synth(SYNTH_DIR, args.synth_train, args.synth_test, seed=0, cfg=cfg)
    return args.model or TINY_MODEL_DIR, args.data or os.path.join(SYNTH_DIR, "train.json")


def synth_config(args):
    """What data.synth writes to synth_config.json for the main job's benchmark."""
    families = tuple(f.strip() for f in args.synth_families.split(",") if f.strip())
    unknown = sorted(set(families) - set(ALL_FAMILIES))
    if unknown or not families:
        raise ValueError(
            f"--synth_families {args.synth_families!r}: unknown or no families {unknown}; choose from {', '.join(ALL_FAMILIES)}"
        )
    percents = data.parse_percents(args.synth_size_percents)
    return data.synth_settings(
        args.synth_train,
        args.synth_test,
        0,
        data.SynthConfig(families=families, size=args.synth_size, size_percents=percents),
    )


def check_synth_config(path, wanted, remedy):
    """A cached benchmark, or a model trained on one, is reused only if it was made with the same settings."""
    have = json.load(open(path)) if os.path.isfile(path) else None
    wanted = json.loads(json.dumps(wanted))  # as it reads back from the file (tuples become lists)
    if have is not None:  # a file written before a setting existed was made with that setting's default
        have = {**json.loads(json.dumps(data.SynthConfig().__dict__)), **have}
    if have != wanted:
        diff = (
            "no synth_config.json"
            if have is None
            else ", ".join(f"{k}: {have.get(k)!r} there, {v!r} asked" for k, v in wanted.items() if have.get(k) != v)
        )
        raise SystemExit(f"{path}: made with other benchmark settings ({diff}); {remedy}")


@lru_cache(maxsize=2)
def epoch_order(num_records, seed, epoch):
    """The seeded permutation of the data set for one epoch (computed once per epoch, not per sample)."""
    return np.random.default_rng([seed, epoch]).permutation(num_records)


def record_at(records, position, seed):
    """The record at a global data position: a fresh seeded permutation of the data set every epoch."""
    epoch, offset = divmod(position, len(records))
    return records[int(epoch_order(len(records), seed, epoch)[offset])]


def latest_checkpoint(output_dir):
    steps = (
        [
            int(d.split("-")[1])
            for d in os.listdir(output_dir)
            if d.startswith("checkpoint-") and d.split("-")[1].isdigit()
        ]
        if os.path.isdir(output_dir)
        else []
    )
    return os.path.join(output_dir, f"checkpoint-{max(steps)}") if steps else None


def save_checkpoint(accelerator, args, step):
    """accelerate's save_state (model, optimizer, scheduler, RNG of every process, TrainState) into a
    temporary folder, renamed into place once complete, so a kill never leaves half a checkpoint."""
    final = os.path.join(args.output_dir, f"checkpoint-{step}")
    tmp = final + ".tmp"
    if accelerator.is_main_process and os.path.exists(tmp):
        shutil.rmtree(tmp)
    accelerator.wait_for_everyone()
    accelerator.save_state(tmp)
    if accelerator.is_main_process:
        with open(os.path.join(tmp, "args.json"), "w") as f:
            json.dump(asdict(args), f, indent=1)
        if os.path.exists(final):  # an older run's checkpoint of the same step
            shutil.rmtree(final)
        os.replace(tmp, final)
    accelerator.wait_for_everyone()


def save_final(accelerator, policy, processor, args, peft_model=None):
    """The trained model in Hugging Face format (from_pretrained / eval.py), written atomically. With LoRA:
    the merged model, or with --no-lora_merge the adapter alone (model.load reads both)."""
    import model as model_lib

    accelerator.wait_for_everyone()
    model = accelerator.unwrap_model(policy).model
    state = accelerator.get_state_dict(policy)  # whole on the main process under every engine
    if accelerator.is_main_process:
        final, tmp = os.path.join(args.output_dir, "final"), os.path.join(args.output_dir, "final.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        state = {k.removeprefix("model."): v for k, v in state.items()}
        if peft_model is None:
            model.save_pretrained(tmp, state_dict=state)
        else:
            model_lib.save_lora(peft_model, state, tmp, merge=args.lora_merge)
        processor.save_pretrained(tmp)
        with open(
            os.path.join(tmp, "args.json"), "w"
        ) as f:  # how it was trained: eval.py run takes its frames and pixels from here
            json.dump(asdict(args), f, indent=1)
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
    accelerator.wait_for_everyone()


def configure_deepspeed(accelerator, args):
    """DeepSpeed reads the micro-batch size from a DataLoader, and we have none; it also clips and
    accumulates gradients itself, stepping inside accelerator.backward. We pass it our clip, and refuse
    --grad_accum > 1 (our loop accumulates by hand, which DeepSpeed would turn into one step per
    micro-batch): raise --batch_size instead."""
    plugin = accelerator.state.deepspeed_plugin
    if plugin is None:
        return
    if args.grad_accum != 1:
        raise SystemExit("DeepSpeed: use --grad_accum 1 (raise --batch_size for more prompts per update)")
    plugin.deepspeed_config["train_micro_batch_size_per_gpu"] = args.batch_size
    plugin.deepspeed_config["gradient_accumulation_steps"] = 1
    plugin.deepspeed_config["gradient_clipping"] = args.max_grad_norm


def reference_logprobs(accelerator, policy, peft_model, load_reference, args):
    """The frozen reference policy pi_ref as a log-prob function groups -> [N, T], or None when beta is 0.
    load_reference() returns the reference model (train() loads the starting checkpoint in the compute
    dtype: it never steps, so it needs no fp32 master weights).

    LoRA: the policy itself with its adapters switched off, i.e. the starting weights; no second copy.
    DeepSpeed ZeRO-3: a copy in its own ZeRO-3 engine (sharded like the policy, eval mode, no optimizer).
    One process, DDP, ZeRO-2, FSDP: a full frozen copy on every process (under FSDP it is not sharded:
    use LoRA when that copy does not fit).
    """
    import model as model_lib

    if args.beta == 0:
        return None
    if peft_model is not None:
        logprobs = accelerator.unwrap_model(policy)  # called outside DDP's wrapper: a no-grad pass syncs nothing

        def base_logprobs(groups):
            with peft_model.disable_adapter():
                return logprobs(groups)

        return base_logprobs
    ref = model_lib.LogProbs(load_reference(), args.logprob_chunk)
    ref.eval().requires_grad_(False)
    plugin = accelerator.state.deepspeed_plugin
    if plugin is not None and plugin.zero_stage == 3:
        import deepspeed

        config = {k: v for k, v in plugin.deepspeed_config.items() if k not in ("optimizer", "scheduler")}
        ref = deepspeed.initialize(model=ref, config=config)[0]
        ref.eval()
    return ref


MIXED_PRECISION = {torch.float32: "no", torch.bfloat16: "bf16", torch.float16: "fp16"}  # accelerate's names


def compute_dtype(args):
    """The dtype the matmuls run in (--dtype): auto is bf16 on a GPU that has it, fp32 elsewhere."""
    if args.dtype == "auto":
        return torch.bfloat16 if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else torch.float32
    if (
        args.dtype == "fp16" and not torch.cuda.is_available()
    ):  # accelerate's fp16 gradient scaler is for accelerators only
        raise SystemExit(
            "--dtype fp16 needs a GPU (accelerate's fp16 loss scaling does not run on the CPU); use --dtype bf16 or fp32 here"
        )
    return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[args.dtype]


def new_accelerator(args, **kwargs):
    """The Accelerator of every run, with the two settings that keep the GPU path honest:

    - mixed precision from --dtype: the weights and AdamW state stay fp32 (the master weights) and
      autocast runs the matmuls in bf16/fp16. AdamW updating bf16 weights in place loses every step
      smaller than bf16's spacing (|w| ~ 0.02: ~1e-4; an lr-1e-6 step: ~1e-6), so nearly all of them:
      measured on the tiny model, 3 SFT steps at lr 1e-6 in pure bf16 moved the weights 0.023x as far as
      in fp32 (tests/test_train.py). fp16 also gets accelerate's gradient scaler. The argument overrides
      an accelerate config's mixed_precision, so --dtype is the one place that decides.
    - step_scheduler_with_optimizer=False: accelerate's prepared scheduler otherwise steps the schedule
      once per process at every call (it assumes a data loader that shrank N-fold); this loop has none
      and counts optimizer updates itself, so on 8 GPUs a warm-up would end 8 times early.
    """
    from accelerate import Accelerator

    return Accelerator(
        mixed_precision=MIXED_PRECISION[compute_dtype(args)], step_scheduler_with_optimizer=False, **kwargs
    )


def optimizer_and_schedule(policy, args):
    """AdamW over the trainable parameters, and the learning-rate schedule per optimizer update: linear
    warm-up over --warmup_steps, then constant or cosine to 0 at the last update."""
    optimizer = torch.optim.AdamW(
        [p for p in policy.parameters() if p.requires_grad], lr=args.learning_rate, weight_decay=args.weight_decay
    )
    total_updates = args.max_steps * args.num_iterations

    def lr_factor(update):
        if update < args.warmup_steps:
            return (update + 1) / args.warmup_steps
        if args.lr_schedule == "cosine":
            return 0.5 * (
                1 + math.cos(math.pi * (update - args.warmup_steps) / max(1, total_updates - args.warmup_steps))
            )
        return 1.0

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)


def collect_rollouts(model, processor, prompts, reference, args, timing):
    """One micro-batch's rollouts, in the order the algorithms build them. This is where they differ
    before the loss:

      1. sample G completions of every prompt, in one generate call                every RL algorithm
      2. rewards: accuracy + format (+ length bonus)                                 Video-R1's rewards
      3. --da: too easy -> re-sample on noisy frames, too hard -> on a reasoning hint    DeepVideo-R1
      4. --algo t_grpo: G~ completions on shuffled frames (DA's frames / hint included);
         +alpha to correct completions if p >= mu * p~                                    Video-R1
    (5. the advantages, from the final rewards, follow in rollout_tensors.)

    model: the unwrapped policy (whole, see model.gathered_for_generation); prompts: (record, visual,
    generator) of this process's readable samples; reference: DA's mean reward over the window (None
    while it is empty: no augmentation yet). Returns (groups, stats for step_metrics)."""
    stats = {
        "acc_ordered": [],
        "acc_shuffled": [],
        "bonus": [],
        "bonus_changed": [],
        "easy": 0,
        "hard": 0,
        "zero_before": 0,
    }
    t0 = time.time()
    groups = (
        sample_groups(model, processor, [(r, v, None) for r, v, _ in prompts], args.num_generations, args)
        if prompts
        else []
    )
    timing["generate"] += time.time() - t0
    for i, (group, (record, visual, generator)) in enumerate(zip(groups, prompts)):
        t0 = time.time()
        group.visual = visual
        score_group(group, args)
        timing["score"] += time.time() - t0
        if args.da:
            stats["zero_before"] += bool(group.rewards.std() == 0)
            group.mean_before = (
                group.rewards.mean().item()
            )  # what the window records: the difficulty before augmentation
            hint = None
            if reference is not None:
                t0 = time.time()
                augmented, kind, visual, hint = difficulty_augment(
                    group, visual, reference, model, processor, args, generator
                )
                augmented.mean_before, augmented.visual = group.mean_before, visual
                groups[i] = group = augmented
                timing["generate"] += time.time() - t0
                if kind:
                    stats[kind] += 1
        if args.algo == "t_grpo" and record["data_type"] == "video":  # images get no temporal bonus
            t0 = time.time()
            p, p_shuffled, bonus, changed = add_temporal_bonus(
                group, model, processor, visual, args, generator, hint if args.da else None
            )
            timing["generate"] += time.time() - t0
            stats["acc_ordered"].append(p)
            stats["acc_shuffled"].append(p_shuffled)
            stats["bonus"].append(bonus)
            if bonus:
                stats["bonus_changed"].append(changed)
    return groups, stats


def optimizer_updates(accelerator, policy, optimizer, scheduler, micro, args, state, timing):
    """num_iterations optimizer updates on one step's micro-batches (the rollouts stay fixed); gradients
    are accumulated over the micro-batches and all-reduced once, on the last. Returns the last update's
    loss and grad norm, and the loss metrics averaged over every update and micro-batch (so that
    reggrpo/active_frac is the fraction of updates where the regression acted)."""
    seen = []  # the loss metrics of every micro-batch of every update
    for _ in range(args.num_iterations):
        t0 = time.time()
        for k, mb in enumerate(micro):
            sync = accelerator.no_sync(policy) if k < len(micro) - 1 else nullcontext()  # all-reduce once, on the last
            with sync:
                loss, loss_metrics = compute_loss(policy, mb, args)
                accelerator.backward(loss / len(micro))
            seen.append(loss_metrics)
        grad_norm = (
            accelerator.clip_grad_norm_(policy.parameters(), args.max_grad_norm)
            if args.max_grad_norm > 0
            else _grad_norm(policy)
        )
        grad_norm = float(grad_norm)  # global: gradients are all-reduced, so every process takes the same branch below
        if accelerator.scaler is not None:  # fp16: the scaler skips an overflowing update itself and lowers its scale
            optimizer.step()
            if optimizer.step_was_skipped and accelerator.is_main_process:
                print(
                    f"step {state.step}: fp16 gradient overflow, update skipped (loss scale now {accelerator.scaler.get_scale():g})",
                    file=sys.stderr,
                )
        elif math.isfinite(loss.item()) and math.isfinite(grad_norm):
            optimizer.step()
            state.nonfinite = 0
        else:
            state.nonfinite += 1
            if accelerator.is_main_process:
                print(
                    f"step {state.step}: non-finite loss or gradient, update skipped ({state.nonfinite} in a row)",
                    file=sys.stderr,
                )
            if state.nonfinite >= 5:
                raise SystemExit("5 non-finite updates in a row: lower the learning rate or check the data; stopping")
        scheduler.step()  # once per update on every process (new_accelerator: step_scheduler_with_optimizer=False)
        optimizer.zero_grad(set_to_none=True)
        timing["update"] += time.time() - t0
    return (
        loss,
        {k: float(np.mean([m[k] for m in seen])) for k in seen[-1]},
        grad_norm,
    )  # every micro-batch reports the same keys


def train(args):
    from tqdm import tqdm

    import model as model_lib

    accelerator = new_accelerator(
        args, log_with=[t for t in args.report_to.split(",") if t] or None, project_dir=args.output_dir
    )
    rank, world = accelerator.process_index, accelerator.num_processes
    model_lib.keep_freed_memory(
        accelerator.device
    )  # on a CPU: no page faults for every large tensor (model.keep_freed_memory)
    seed_everything(args.seed + rank)
    with accelerator.main_process_first():
        model_path, data_path = prepare_assets(args)
    os.makedirs(args.output_dir, exist_ok=True)
    compute = compute_dtype(args)
    # Trainable weights are fp32 master weights (new_accelerator). With LoRA the base never steps, so under
    # bf16/fp16 compute it is held in that dtype (half the memory); peft keeps the adapters in fp32.
    weights = compute if args.lora_r else torch.float32
    model, processor = model_lib.load(
        model_path,
        dtype=weights,
        device=accelerator.device,
        gradient_checkpointing=args.gradient_checkpointing,
        freeze_vision=args.freeze_vision,
        min_pixels=args.min_pixels or None,
        max_pixels=args.max_pixels or None,
    )
    peft_model = None
    if args.lora_r:  # adapters on the language model; the base weights freeze (see model.add_lora)
        peft_model = model_lib.add_lora(
            model,
            args.lora_r,
            args.lora_alpha,
            args.lora_dropout,
            args.lora_targets or model_lib.LLM_LORA_TARGETS,
            model_path,
        )
        model = peft_model.get_base_model()  # the same modules, LoRA layers inside: what LogProbs and generate run
    model.train()  # from_pretrained leaves eval mode; train mode turns activation checkpointing on
    if accelerator.is_main_process:
        print(
            f"precision: {str(compute).removeprefix('torch.')} compute (autocast {'on' if accelerator.native_amp else 'off'}), "
            f"trainable weights and AdamW state {str(next(p.dtype for p in model.parameters() if p.requires_grad)).removeprefix('torch.')}"
            + (", fp16 gradient scaler" if accelerator.scaler is not None else "")
        )
    budget = processor.video_processor.size
    min_pixels, max_pixels = budget["shortest_edge"], budget["longest_edge"]
    try:
        records, bad = data.load_records(data_path, strict=args.strict_data)
    except (OSError, UnicodeDecodeError, ValueError) as e:  # unreadable, not JSON, a JSON object of another shape
        usage_error(f"--data {data_path}: {e}")
    kept = records
    filtered = args.problem_types not in ("", "all")
    if filtered:
        wanted = {t.strip() for t in args.problem_types.split(",")}
        kept = [r for r in records if r["problem_type"] in wanted]
    if accelerator.is_main_process:
        for e in bad:
            print(f"skipping bad record: {e}", file=sys.stderr)
        chosen = f", {len(kept)} of them of problem type {args.problem_types}" if filtered else ""
        print(f"{len(records)} records from {data_path} ({len(bad)} bad, skipped){chosen}")
    if not kept:
        found = sorted({r["problem_type"] for r in records})
        raise SystemExit(
            f"no usable records in {data_path}"
            + (f" of problem type {args.problem_types} (it has: {', '.join(found)})" if records else "")
        )
    records = kept

    policy = model_lib.LogProbs(model, args.logprob_chunk)
    optimizer, scheduler = optimizer_and_schedule(policy, args)
    configure_deepspeed(accelerator, args)
    policy, optimizer, scheduler = accelerator.prepare(policy, optimizer, scheduler)
    ref = reference_logprobs(
        accelerator,
        policy,
        peft_model,
        lambda: model_lib.load_model(model_path, dtype=compute, device=accelerator.device),
        args,
    )
    state = TrainState(args.da_window, world)
    accelerator.register_for_checkpointing(state)
    metrics_path = os.path.join(args.output_dir, "metrics.jsonl")
    if args.resume and (ckpt := latest_checkpoint(args.output_dir)):
        accelerator.load_state(ckpt)
        if accelerator.is_main_process:
            print(f"resumed from {ckpt} at step {state.step}")
            for path in (
                metrics_path,
                os.path.join(args.output_dir, "completions.jsonl"),
            ):  # drop lines logged after that checkpoint by the killed run
                if os.path.exists(path):
                    lines = [line for line in open(path) if json.loads(line)["step"] <= state.step]
                    open(path, "w").writelines(lines)
    elif accelerator.is_main_process:
        for name in ("metrics.jsonl", "completions.jsonl"):
            if os.path.exists(os.path.join(args.output_dir, name)):
                os.remove(os.path.join(args.output_dir, name))
    if accelerator.is_main_process:
        with open(os.path.join(args.output_dir, "args.json"), "w") as f:
            json.dump(asdict(args), f, indent=1)
    accelerator.init_trackers(os.path.basename(os.path.normpath(args.output_dir)), config=asdict(args))

    unwrapped = accelerator.unwrap_model(policy).model
    bar = tqdm(total=args.max_steps, initial=state.step, desc=args.algo, disable=not accelerator.is_main_process)
    while state.step < args.max_steps:
        t_step, timing = time.time(), {"generate": 0.0, "score": 0.0, "logprob": 0.0, "update": 0.0}
        micro = []
        for _ in range(args.grad_accum):  # rollouts of every micro-batch first; then num_iterations updates on them
            # FSDP / ZeRO-3: the policy's weights whole for this micro-batch's sampling (model.gathered_for_generation);
            # autocast: sampling and the rollout log-probs in the compute dtype, as the training forward
            gathered = model_lib.gathered_for_generation(accelerator, policy) if args.algo != "sft" else nullcontext()
            with gathered, accelerator.autocast():
                prompts, k = (
                    [],
                    state.taken[rank],
                )  # (record, visual, generator) of batch_size readable samples of this process's stream
                while len(prompts) < args.batch_size and k < state.taken[rank] + READ_ATTEMPTS * args.batch_size:
                    position = stream_position(rank, k, args.batch_size, world)
                    k += 1
                    record = record_at(records, position, args.seed)
                    generator = torch.Generator().manual_seed(hash((args.seed, position)) % 2**63)  # shuffles and noise
                    try:
                        visual = data.load_visual(record, args.num_frames, min_pixels, max_pixels)
                    except data.SampleError as e:
                        if args.strict_data:
                            raise
                        print(
                            f"process {rank}: skipping unreadable sample (the next of its stream instead): {e}",
                            file=sys.stderr,
                        )
                        continue
                    prompts.append((record, visual, generator))
                TrainState.check_readable(accelerator, len(prompts), args.batch_size)
                if args.algo == "sft":
                    groups, stats = (
                        [sft_group(processor, record, visual, accelerator.device) for record, visual, _ in prompts],
                        {},
                    )
                else:
                    reference = float(np.mean(state.window)) if args.da and state.window else None
                    groups, stats = collect_rollouts(unwrapped, processor, prompts, reference, args, timing)
                micro.append(rollout_tensors(groups, ref, args, accelerator, timing, policy) | {"stats": stats})
            state.record(accelerator, [getattr(g, "mean_before", 0.0) for g in groups], k, args.da)

        loss, loss_metrics, grad_norm = optimizer_updates(
            accelerator, policy, optimizer, scheduler, micro, args, state, timing
        )
        state.step += 1

        m = step_metrics(micro, loss, loss_metrics, grad_norm, scheduler, timing, t_step, args, state)
        m = {
            k: v.item()
            for k, v in zip(m, accelerator.reduce(torch.tensor(list(m.values()), device=accelerator.device), "mean"))
        }
        m["step"] = state.step
        if accelerator.is_main_process:
            with open(metrics_path, "a") as f:
                f.write(json.dumps(m) + "\n")
            if args.log_completions_steps and state.step % args.log_completions_steps == 0 and args.algo != "sft":
                log_completions(micro, args, state.step)
        accelerator.log(m, step=state.step)
        bar.set_postfix(
            {"reward": f"{m.get('reward/mean', -m['loss/total']):.3f}"}
            if args.algo != "sft"
            else {"loss": f"{m['loss/total']:.3f}"}
        )
        bar.update(1)
        if args.save_steps and state.step % args.save_steps == 0 and state.step < args.max_steps:
            save_checkpoint(accelerator, args, state.step)
    bar.close()
    save_checkpoint(accelerator, args, state.step)
    save_final(accelerator, policy, processor, args, peft_model)
    accelerator.end_training()
    return state


def _grad_norm(policy):
    norms = [p.grad.norm() for p in policy.parameters() if p.grad is not None]
    return torch.stack(norms).norm() if norms else torch.tensor(0.0)


def pad_stack(tensors, value=0):
    """[G_i, T_i] tensors -> one [sum G_i, max T_i] tensor, right-padded with `value`."""
    T = max(t.shape[1] for t in tensors)
    return torch.cat([torch.nn.functional.pad(t, (0, T - t.shape[1]), value=value) for t in tensors])


@torch.no_grad()
def rollout_tensors(groups, ref, args, accelerator, timing, policy):
    """A micro-batch's tensors: (prompt, completions) pairs, mask [N, T], advantages [N], and logp_old /
    logp_ref [N, T] taken once per rollout."""
    if not groups:
        return {"groups": [], "pairs": []}
    pairs = [(g.prompt, g.completion_ids) for g in groups]
    out = {"groups": groups, "pairs": pairs, "mask": pad_stack([g.mask for g in groups], value=False)}
    if args.algo == "sft":
        return out
    rewards_ = torch.cat([g.rewards for g in groups]).to(accelerator.device)  # [N]
    out["rewards"] = rewards_
    out["advantages"] = advantages_of(rewards_, args)  # [N]
    t0 = time.time()
    out["logp_old"] = (
        policy(pairs).detach() if args.num_iterations > 1 else None
    )  # [N, T]; with one update it equals logp.detach()
    out["logp_ref"] = ref(pairs) if ref is not None else None  # [N, T]
    timing["logprob"] += time.time() - t0
    return out


def compute_loss(policy, mb, args):
    """The one place where the algorithms differ in their loss."""
    logp = policy(mb["pairs"])  # [N, T]
    mask = mb["mask"]  # [N, T]
    if args.algo == "sft":
        loss = sft_loss(logp, mask)
        return loss, {}
    logp_old = mb["logp_old"] if mb["logp_old"] is not None else logp.detach()  # [N, T]
    if args.algo == "reg_grpo":
        return reg_grpo_loss(
            logp,
            logp_old,
            mb["logp_ref"],
            mb["advantages"],
            mask,
            args.num_generations,
            args.beta,
            args.rho_eps,
            args.loss_norm,
        )
    return grpo_loss(
        logp, logp_old, mb["logp_ref"], mb["advantages"], mask, args.beta, args.eps_low, args.eps_high, args.loss_norm
    )


def step_metrics(micro, loss, loss_metrics, grad_norm, scheduler, timing, t_step, args, state):
    """Grouped metric names, explained in the README."""
    groups = [g for mb in micro for g in mb["groups"]]
    m = {
        "loss/total": loss.item(),
        "grad_norm": grad_norm,
        "lr": scheduler.get_last_lr()[0],
        "data/skipped": float(state.skipped),
    }
    m.update({k: v for k, v in loss_metrics.items()})
    # every process must report the same keys (they are averaged across processes): a process whose
    # samples were all unreadable reports zeros
    m["completions/mean_length"] = float(torch.cat([g.mask.sum(1) for g in groups]).float().mean()) if groups else 0.0
    if args.algo != "sft":
        groups = groups or [
            Group(None, None, None, torch.zeros(1, 1, dtype=torch.bool), [], torch.zeros(2), [0.0], [0.0])
        ]
        r = torch.cat([g.rewards for g in groups])
        m["reward/mean"] = r.mean().item()
        m["reward/std"] = torch.stack([g.rewards.std() for g in groups]).mean().item()
        m["reward/accuracy"] = float(np.mean([a for g in groups for a in g.accuracy]))
        m["reward/format"] = float(np.mean([f for g in groups for f in g.format]))
        m["adv/zero_std_frac"] = float(np.mean([bool(g.rewards.std() == 0) for g in groups]))
        stats = [mb["stats"] for mb in micro]
        if args.algo == "t_grpo":
            ordered = [p for s in stats for p in s["acc_ordered"]]
            m["tgrpo/acc_ordered"] = float(np.mean(ordered)) if ordered else 0.0
            m["tgrpo/acc_shuffled"] = float(np.mean([p for s in stats for p in s["acc_shuffled"]])) if ordered else 0.0
            m["tgrpo/bonus_frac"] = float(np.mean([b for s in stats for b in s["bonus"]])) if ordered else 0.0
            changed = [c for s in stats for c in s["bonus_changed"]]
            m["tgrpo/adv_changed_frac"] = float(np.mean(changed)) if changed else 0.0
        if args.da:
            m["da/easy_frac"] = sum(s.get("easy", 0) for s in stats) / len(groups)
            m["da/hard_frac"] = sum(s.get("hard", 0) for s in stats) / len(groups)
            m["da/zero_std_before"] = sum(s["zero_before"] for s in stats) / len(groups)
            m["da/zero_std_after"] = m["adv/zero_std_frac"]
    m.update({f"time/{k}_s": v for k, v in timing.items()})
    m["time/step_s"] = time.time() - t_step
    return m


LOGGED_GROUPS = 2  # groups per logged step in completions.jsonl (what eval.py view shows)


def log_completions(micro, args, step):
    """The first LOGGED_GROUPS groups of the step, whole, to completions.jsonl: the question, thumbnails of
    the frames the completions were sampled on (DA's noisy frames included), T-GRPO's shuffled order and
    bonus, DA's noise or hint, and per completion its text, accuracy, format, total reward and advantage.
    `python eval.py view RUN_DIR` turns the file into a page."""
    with open(os.path.join(args.output_dir, "completions.jsonl"), "a") as f:
        logged = 0
        for mb in micro:
            for k, g in enumerate(mb["groups"]):
                if logged == LOGGED_GROUPS:
                    return
                n = len(g.texts)
                f.write(
                    json.dumps(
                        {
                            "step": step,
                            "problem_id": g.record.get("problem_id"),
                            "problem": g.record["problem"],
                            "options": g.record.get("options") or [],
                            "problem_type": g.record["problem_type"],
                            "data_type": g.record["data_type"],
                            "solution": g.record["solution"],
                            "question_family": g.record.get("question_family"),
                            "algo": args.algo + ("+da" if args.da else ""),
                            "frames": data.thumbnails(g.visual.frames) if g.visual is not None else [],
                            "augmentation": g.augmentation,
                            "temporal": g.temporal,
                            "completions": g.texts,
                            "accuracy": g.accuracy,
                            "format": g.format,
                            "rewards": g.rewards.tolist(),
                            "advantages": mb["advantages"][k * n : (k + 1) * n].tolist(),
                        }
                    )
                    + "\n"
                )
                logged += 1


# -----------------------------------------------------------------------------
# 5. The main job: `accelerate launch train.py --algo reg_grpo` with no --model and no --data


def held_out_eval(model_dir, args, test_path, accelerator):
    """Greedy held-out evaluation of a saved model (main process; the others wait), with each record's
    own video and with another record's (eval.py's --blind). Returns the two metrics dicts."""
    import eval as evaluation
    import model as model_lib

    metrics = None
    if accelerator.is_main_process:
        model, processor = model_lib.load(model_dir, device=accelerator.device)
        everything, _ = data.load_records(test_path)
        records = everything[: args.eval_limit] if args.eval_limit else everything
        size = processor.video_processor.size
        try:
            donors = evaluation.blind_donors(records, pool=everything)
        except ValueError as e:  # e.g. a test split with a single image: it has no other image to be shown
            print(f"no blind evaluation: {e}", file=sys.stderr)
            donors = None
        metrics = {"eval_test": None, "eval_test_blind": None}
        for name, shown in [("eval_test", None)] + ([("eval_test_blind", donors)] if donors is not None else []):
            results, errors = evaluation.evaluate(
                model,
                processor,
                records,
                num_frames=args.num_frames,
                min_pixels=size["shortest_edge"],
                max_pixels=size["longest_edge"],
                max_new_tokens=args.max_completion_length,
                batch_size=16,
                donors=shown,
            )
            metrics[name] = evaluation.summarize(results, len(errors))
            evaluation.write_json(
                os.path.join(os.path.dirname(model_dir), f"{name}.json"),
                {"model": model_dir, "eval_limit": args.eval_limit, "results": results, "metrics": metrics[name]},
            )
    accelerator.wait_for_everyone()
    return (metrics["eval_test"], metrics["eval_test_blind"]) if metrics else (None, None)


def main_job_sft_args(args):
    """The main job's SFT cold start: every problem type, the SFT defaults, full weights. The tiny model's
    vision tower starts random, so --freeze_vision and --lora_r (which freezes it too) apply to the RL
    stage only; a frozen random vision tower would leave the start blind."""
    return Args(
        **{
            **asdict(args),
            "algo": "sft",
            "da": False,
            "max_steps": args.sft_steps,
            "batch_size": args.sft_batch_size,
            "learning_rate": 0.0,
            "beta": -1.0,
            "problem_types": "",
            "output_dir": f"runs/sft-cold-start-{args.sft_steps}x{args.sft_batch_size}-seed{args.seed}",
            "save_steps": 0,
            "resume": False,
            "freeze_vision": False,
            "lora_r": 0,
        }
    ).resolve()


def main_job(args):
    """Tiny model + synthetic data -> SFT cold start (cached) -> held-out eval -> RL -> held-out eval ->
    before/after table and summary.json in the run folder."""
    t_start = time.time()
    accelerator = new_accelerator(args)
    with accelerator.main_process_first():
        prepare_assets(args)
    stages = {}
    sft_args = main_job_sft_args(args)
    sft_final = os.path.join(sft_args.output_dir, "final")
    t0 = time.time()
    sft_data_config = os.path.join(sft_args.output_dir, "synth_config.json")
    if os.path.isdir(sft_final):
        check_synth_config(sft_data_config, synth_config(args), f"delete {sft_args.output_dir} to train it again")
        if accelerator.is_main_process:
            print(f"SFT cold start: reusing {sft_final}")
    else:
        train(sft_args)
        if accelerator.is_main_process:  # which benchmark the cached start was trained on
            shutil.copyfile(os.path.join(SYNTH_DIR, "synth_config.json"), sft_data_config)
    stages["sft_s"] = round(time.time() - t0, 1)
    test_path = os.path.join(SYNTH_DIR, "test.json")
    t0 = time.time()
    cached = [os.path.join(sft_args.output_dir, f"{name}.json") for name in ("eval_test", "eval_test_blind")]
    if all(os.path.exists(c) and json.load(open(c)).get("eval_limit") == args.eval_limit for c in cached):
        before, before_blind = (
            json.load(open(c))["metrics"] for c in cached
        )  # the same SFT model on the same split: evaluated once
    else:
        before, before_blind = held_out_eval(sft_final, args, test_path, accelerator)
    stages["eval_sft_s"] = round(time.time() - t0, 1)
    t0 = time.time()
    # RL on every family unless --problem_types says otherwise (e.g. 'multiple choice'). Measured on the
    # three-width benchmark (docs/EXPERIMENTS.md, "The main job over nine seeds"): RL on multiple choice alone let the `size`
    # answers drift (MRA down on 3 of 4 seeds); RL on every family raised `size` too. On the earlier
    # benchmark of any width, where `size` answers were blind guesses, multiple choice alone was better
    # (docs/EXPERIMENTS.md, "Why the main job trained RL on multiple choice only").
    rl_args = Args(**{**asdict(args), "model": sft_final, "data": os.path.join(SYNTH_DIR, "train.json")})
    train(rl_args)
    stages["rl_s"] = round(time.time() - t0, 1)
    page = None
    if accelerator.is_main_process and os.path.isfile(os.path.join(args.output_dir, "completions.jsonl")):
        import eval as evaluation

        page = evaluation.rollouts_page(args.output_dir)
    t0 = time.time()
    after, after_blind = held_out_eval(os.path.join(args.output_dir, "final"), args, test_path, accelerator)
    stages["eval_rl_s"] = round(time.time() - t0, 1)
    if accelerator.is_main_process:
        summary = {
            "algo": args.algo + ("+da" if args.da else ""),
            "seed": args.seed,
            "sft_accuracy": before["overall"],
            "rl_accuracy": after["overall"],
            "sft_blind_accuracy": (before_blind or {}).get("overall"),
            "rl_blind_accuracy": (after_blind or {}).get("overall"),
            "sft": before,
            "rl": after,
            "sft_blind": before_blind,
            "rl_blind": after_blind,
            "wall_time_s": round(time.time() - t_start, 1),
            "stages": stages,
            "sft_checkpoint": sft_final,
            "test_file": test_path,
        }
        with open(os.path.join(args.output_dir, "summary.json"), "w") as f:
            json.dump(summary, f, indent=1)
        print(before_after_table(before, after, args, before_blind, after_blind))
        print(
            f"wall time {summary['wall_time_s']} s ({stages}); summary: {os.path.join(args.output_dir, 'summary.json')}"
            + (f"; rollouts to look at: {page}" if page else "")
        )


def before_after_table(before, after, args, before_blind, after_blind):
    """Markdown: held-out scores of the SFT start and the RL model, overall, by kind and family, and
    overall with another record's video (a model that scores as well blind does not use its input)."""
    rows = [
        ("overall (score)", "overall"),
        ("accuracy (non-regression)", "accuracy"),
        ("MRA (regression)", "mra"),
        ("temporal questions", "temporal"),
        ("static questions", "static"),
    ]
    fmt = lambda v: "-" if v is None else f"{v:.3f}"
    lines = [
        f"| held-out ({before['n']} records) | SFT | SFT + {args.algo}{'+da' if args.da else ''} |",
        "|---|---|---|",
    ]
    lines += [f"| {name} | {fmt(before.get(key))} | {fmt(after.get(key))} |" for name, key in rows]
    lines.append(
        f"| overall, another record's video (blind) | {fmt((before_blind or {}).get('overall'))} | {fmt((after_blind or {}).get('overall'))} |"
    )
    for family in before.get("by_question_family", {}):
        b, a = before["by_question_family"][family], after["by_question_family"].get(family, {})
        lines.append(f"| family: {family} (n={b['n']}) | {fmt(b['score'])} | {fmt(a.get('score'))} |")
    return "\n".join(lines)


def launcher_cpu_threads(env, cuda_available, cores):
    """Threads this process should use instead of the one `accelerate launch` gave it, or None.

    Without --cpu and without a config file, on a machine with no GPU, accelerate 1.15 starts one process
    with OMP_NUM_THREADS=1: it sizes CPU threads only under --cpu (physical cores / processes per
    machine). A single process launched that way gets what --cpu would give it; --cpu (with
    --num_cpu_threads_per_process N to choose) and plain `python train.py` are left alone."""
    launched_without_cpu = env.get("ACCELERATE_USE_CPU") == "False" and env.get("OMP_NUM_THREADS") == "1"
    if cuda_available or not launched_without_cpu or int(env.get("WORLD_SIZE", "1")) > 1 or cores <= 1:
        return None
    return cores


def usage_error(message):
    """A bad command-line input: one line saying what, which file and what to do; exit status 2 (as argparse)."""
    print(f"train.py: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def check_inputs(args):
    """--model and --data, checked before anything loads, so that a typo reads as one line, not a traceback."""
    model = args.model
    if model and not os.path.isdir(model):
        if os.path.exists(model) or model.startswith(("/", ".", "~")) or not re.fullmatch(r"[\w.-]+/[\w.-]+", model):
            usage_error(
                f"--model {model}: no such folder, and not a hub id of the form org/name; give a checkpoint folder "
                "(with config.json, or a LoRA adapter's adapter_config.json) or a hub id such as Qwen/Qwen2.5-VL-3B-Instruct"
            )
    elif model and not any(os.path.isfile(os.path.join(model, f)) for f in ("config.json", "adapter_config.json")):
        usage_error(
            f"--model {model}: the folder has no config.json (nor adapter_config.json), so it is no Hugging Face checkpoint; "
            "a run's model is in its final/ folder"
        )
    if args.data and not os.path.isfile(args.data):
        usage_error(
            f"--data {args.data}: no such file; give a Video-R1 JSON or JSONL file (`python data.py check FILE` validates one)"
        )


def main(argv=None):
    import psutil  # accelerate's own dependency

    threads = launcher_cpu_threads(
        os.environ, torch.cuda.is_available(), psutil.cpu_count(logical=False) or os.cpu_count() or 1
    )
    if threads:
        torch.set_num_threads(threads)
        print(
            f"accelerate launch without --cpu set OMP_NUM_THREADS=1 on this machine without a GPU; using {threads} threads, "
            "as `accelerate launch --cpu` would (--cpu --num_cpu_threads_per_process N chooses)",
            file=sys.stderr,
        )
    args = parse_args(argv)
    check_inputs(args)
    if args.algo != "sft" and not args.model and not args.data:
        main_job(args)
    else:
        train(args)


if __name__ == "__main__":
    main()
