"""GPUs: the memory plan of Qwen2.5-VL-3B / 7B training from their published configs (`python bench.py memory`),
and the GPU check (`python bench.py gpu`): every algorithm for a few steps on a random Qwen2.5-VL-3B, its step
times and peak memory against the plan."""

import argparse
import copy
import gc
import os
import time

import numpy as np
import torch
from transformers import Qwen2_5_VLForConditionalGeneration

import data
import infra
import model as model_lib
import train
from tools.common import OUT_DIR

# -----------------------------------------------------------------------------
# The memory plan for real checkpoints
#
# Facts from the published config.json of Qwen/Qwen2.5-VL-3B-Instruct and Qwen/Qwen2.5-VL-7B-Instruct on the
# Hugging Face hub (3B: hidden_size 2048, intermediate_size 11008, 36 layers, 16 heads / 2 KV heads,
# vocab_size 151936, tie_word_embeddings true, vision out_hidden_size 2048; 7B: hidden_size 3584,
# intermediate_size 18944, 28 layers, 28 heads / 4 KV heads, vocab_size 152064, untied lm_head, vision
# out_hidden_size 3584; both: vision depth 32, width 1280, intermediate 3420, 16 heads, patch 14, temporal
# patch 2, 2x2 merger, full attention at blocks 7/15/23/31, head_dim 128, q/k/v biases, no o_proj bias).
# Pixel budgets from transformers 5.23's Qwen2VLVideoProcessor: size {"shortest_edge": 128*28*28,
# "longest_edge": 768*28*28}, i.e. 128 to 768 merged tokens per temporal patch of 2 frames.

CONFIGS = {
    "3B": dict(hidden=2048, inter=11008, layers=36, heads=16, kv_heads=2, vocab=151936, tied=True),
    "7B": dict(hidden=3584, inter=18944, layers=28, heads=28, kv_heads=4, vocab=152064, tied=False),
}
VISION = dict(depth=32, width=1280, inter=3420, patch=14, temporal=2, merge=2)
GiB = 1024**3


def param_counts(c):
    """(llm blocks, embeddings, vision tower) parameter counts of a Qwen2.5-VL config."""
    h, kv = c["hidden"], c["kv_heads"] * (c["hidden"] // c["heads"])
    attention = (h * h + h) + 2 * (h * kv + kv) + h * h  # q, k, v with bias; o without
    block = attention + 3 * h * c["inter"] + 2 * h  # SwiGLU MLP, two RMSNorms
    embeddings = c["vocab"] * h * (1 if c["tied"] else 2) + h  # + final norm
    w, vi, m = VISION["width"], VISION["inter"], VISION["merge"] ** 2
    vblock = (w * 3 * w + 3 * w) + (w * w + w) + 2 * (w * vi + vi) + (vi * w + w) + 2 * w
    vision = (
        3 * VISION["temporal"] * VISION["patch"] ** 2 * w
        + VISION["depth"] * vblock
        + w
        + (m * w) ** 2
        + m * w
        + m * w * h
        + h
    )
    return c["layers"] * block, embeddings, vision


def vision_tokens(frames, max_pixels):
    """Merged (LLM) tokens of a video at max_pixels per frame: one token per 28x28 pixels per frame pair."""
    return frames // VISION["temporal"] * (max_pixels // (VISION["patch"] * VISION["merge"]) ** 2)


ROWS = [  # (key, label) of the memory plan's table
    ("params", "parameters (B)"), ("vision_tokens", "video tokens per row"),
    ("tokens", "tokens per row (prompt + completion)"),
    ("weights", "weights (full: fp32 master, sharded; LoRA: bf16 frozen base)"),
    ("grads", "gradients (full: fp32 sharded; LoRA: fp32 adapters)"),
    ("optimizer", "AdamW m + v (full: fp32 sharded; LoRA: fp32 adapters + m + v)"),
    ("reference", "reference model (full: bf16 sharded; LoRA: adapter off)"),
    ("gathered", "ZeRO-3 / FSDP gathered parameters"),
    ("casts", "autocast's bf16 copies of the trainable weights (1 GPU, one forward)"),
    ("llm_act", "LLM activations (G rows)"), ("vision_act", "vision activations (once per group)"),
    ("head_ours", "log-prob head, ours (chunked)"), ("head_naive", "log-prob head, naive"),
    ("total_ours", "**total, ours (update)**"), ("total_naive", "total with the naive head"),
    ("kv_cache", "rollout KV cache (G rows, bf16)"), ("rollout_total", "**total during rollouts**"),
]  # fmt: skip


def plan(
    name,
    setup,
    checkpointing,
    G=8,
    frames=16,
    T=768,
    prompt_text=150,
    max_pixels=768 * 28 * 28,
    lora_rank=64,
    gpus=8,
    frozen_vision=False,
    reference=True,
):
    """Bytes per GPU of each item of one configuration (keys of ROWS); the assumptions are in `memory_plan`.
    gpus > 1: full fine-tuning shards weights, gradients, AdamW state and the reference (ZeRO-3 / FSDP);
    gpus == 1: one GPU holds everything (bench.py gpu's setting)."""
    c = CONFIGS[name]
    blocks, embeddings, vision = param_counts(c)
    P = blocks + embeddings + vision
    h, V, L = c["hidden"], c["vocab"], c["layers"]
    kv = c["kv_heads"] * (h // c["heads"])
    vt = vision_tokens(frames, max_pixels)
    S = prompt_text + vt + T  # tokens per row: every row of the group carries the whole prompt
    out = {"params": P / 1e9, "vision_tokens": vt, "tokens": S}
    w, m = VISION["width"], VISION["merge"] ** 2 * VISION["width"]
    merger = w + m * m + m + m * h + h  # RMSNorm, then the 2x2-patch MLP into the LLM's width
    frozen = (vision - merger) if frozen_vision else 0  # the ViT without its merger (train.py's --freeze_vision)
    if setup == "full":  # fp32 master weights, fp32 gradients, fp32 m and v: 16 bytes per trainable parameter
        trainable = P - frozen
        out.update(
            weights=4 * P / gpus,
            grads=4 * trainable / gpus,
            optimizer=8 * trainable / gpus,
            reference=2 * P / gpus if reference else 0,
            gathered=2 * 1e9 if gpus > 1 else 0,
            casts=2 * trainable if gpus == 1 else 0,
        )
    else:
        lora = L * lora_rank * (4 * h + 2 * (h + kv) + 3 * (h + c["inter"]))  # A and B of q, o, k, v, gate, up, down
        out.update(weights=2 * P, grads=4 * lora, optimizer=12 * lora, reference=0, gathered=0, casts=0)
    per_layer = 2 * (7 * h + 3 * kv + 4 * c["inter"]) * G * S  # bf16 elements kept per layer for the backward
    out["llm_act"] = (2 * h * G * S * L + per_layer) if checkpointing else per_layer * L
    patches = vt * VISION["merge"] ** 2
    vision_layer = 2 * (7 * VISION["width"] + 4 * VISION["inter"]) * patches
    if setup == "full" and not frozen_vision:  # the tower is trained
        out["vision_act"] = (
            (2 * VISION["width"] * patches * VISION["depth"] + vision_layer)
            if checkpointing
            else vision_layer * VISION["depth"]
        )
    else:  # frozen: nothing kept for the backward
        out["vision_act"] = 0
    out["head_ours"] = 3 * 256 * V * 4 + 2 * G * T * h
    out["head_naive"] = G * S * V * 2 + 3 * G * T * V * 4  # bf16 logits everywhere; fp32 copy, log_softmax, gradient
    common = sum(
        out[k] for k in ("weights", "grads", "optimizer", "reference", "gathered", "casts", "llm_act", "vision_act")
    )
    out["total_ours"], out["total_naive"] = common + out["head_ours"], common + out["head_naive"]
    # Rollouts: no gradients (freed by zero_grad), the KV cache of G rows, and one layer's no-grad activations of the
    # log-prob passes (old policy, reference) over all G rows
    out["kv_cache"] = G * S * L * 2 * kv * 2
    out["rollout_total"] = (
        sum(out[k] for k in ("weights", "optimizer", "reference", "gathered", "casts", "kv_cache"))
        + per_layer
        + out["head_ours"]
    )
    return out


def memory_plan():
    columns = [(name, setup, ckpt) for name in ("3B", "7B") for setup in ("full", "lora") for ckpt in (False, True)]
    budget = {"full": 80, "lora": 24}
    for pixels, label in (
        (768 * 28 * 28, "the video processor's default max_pixels 768*28*28"),
        (128 * 28 * 28, "train.py's max_pixels for real checkpoints, 128*28*28 (Video-R1)"),
    ):
        plans = [plan(n, s, k, max_pixels=pixels) for n, s, k in columns]
        header = [f"{n} {'ZeRO-3 8x80GB' if s == 'full' else 'LoRA 1x24GB'}{' GC' if k else ''}" for n, s, k in columns]
        print(f"\n### Qwen2.5-VL memory per GPU (GiB): G = 8, 16 frames at {label}, 768-token completions\n")
        print("| item | " + " | ".join(header) + " |")
        print("|---|" + "---|" * len(columns))
        for key, name in ROWS:
            if key == "params":
                cells = [f"{p[key]:.2f}" for p in plans]
            elif key in ("vision_tokens", "tokens"):
                cells = [f"{p[key]:,}" for p in plans]
            else:
                cells = [f"{p[key] / GiB:.1f}" for p in plans]
            print(f"| {name} | " + " | ".join(cells) + " |")
        fits = [f"{'yes' if p['total_ours'] / GiB <= budget[s] else 'no'} / "
                f"{'yes' if p['total_naive'] / GiB <= budget[s] else 'no'}"
                for p, (_, s, _) in zip(plans, columns)]  # fmt: skip
        print("| fits in the GPU (ours / naive) | " + " | ".join(fits) + " |")
    print("""
Assumptions:
- Parameters counted from the configs (see tools/gpu.py): 3B 3.75 B (tied 151,936 x 2048 embedding),
  7B 8.29 B (untied 152,064 x 3584 embedding and lm_head); the vision tower is 0.67 B in both.
- Full fine-tuning: train.py's precision rule, fp32 master weights, fp32 gradients and fp32 AdamW m and v (16 bytes
  per parameter), bf16 compute by autocast; sharded over 8 GPUs by FSDP2 or ZeRO-3 (DeepSpeed's bf16 mode holds
  the same 16 bytes: bf16 weights and gradients, fp32 master, m and v), plus up to 1e9 gathered bf16 parameters in
  flight. The reference model is bf16 (it never steps), sharded the same way; an unsharded bf16 copy on every
  GPU, as under DDP or FSDP, would add 2 bytes per parameter: 7.0 GiB (3B), 15.4 GiB (7B). On one GPU autocast
  also holds a bf16 copy of every trainable weight for the length of a forward (its cast cache).
- LoRA: rank 64 on q, k, v, o, gate, up, down of every LLM layer, adapters in fp32 with fp32 grads and AdamW
  moments; frozen bf16 base (train.py holds a LoRA base in the compute dtype); vision tower frozen; the reference
  model is the base with the adapter disabled.
- One prompt per GPU and micro-batch; its G = 8 rows each carry the whole prompt (150 text tokens + the video
  tokens) and the completion, in one forward as train.py's log-prob pass does. The video is encoded once.
- Activations per LLM layer and token, bf16, with a fused (flash / SDPA) attention that keeps no S x S matrix:
  7h + 3 kv_dim + 4 intermediate elements (norm inputs and outputs, q, k, v, attention output, the SwiGLU
  gate, up, activation and product). With gradient checkpointing every layer keeps only its input (h) and one
  layer is recomputed at a time. Vision blocks likewise with width 1280 and intermediate 3420, per patch.
- Log-prob head: ours keeps ~3 fp32 [256, V] buffers at a time (logits, softmax temporaries, recomputed
  gradient) plus the completion hidden states; the naive head materialises bf16 logits at every position of
  every row, then an fp32 copy of the completion positions, its log_softmax and that gradient.
- During rollouts: weights, AdamW state, reference and casts stay; gradients are freed; the KV cache is
  G x tokens x layers x 2 x kv_dim x 2 bytes, plus one layer of the no-grad log-prob passes.
- Not counted: CUDA context and allocator fragmentation (add ~10-20%), communication buffers.
""")


# -----------------------------------------------------------------------------
# The GPU check: `python bench.py gpu`, one prepared run on a machine with a GPU and no network
#
# A random-weight Qwen2.5-VL at the 3B model's published dimensions (config.json of
# Qwen/Qwen2.5-VL-3B-Instruct: hidden 2048, intermediate 11008, 36 layers, 16 heads / 2 KV heads,
# mrope_section [16, 24, 24], rope_theta 1e6, max_position_embeddings 128000, tied embeddings; vision depth 32,
# hidden 1280, intermediate 3420, 16 heads, full attention at blocks 7/15/23/31), the real tokenizer, 16-frame
# synthetic videos drawn in memory (no mp4, no PyAV) at Video-R1's training budget of 128*28*28 pixels a frame,
# G = 8, bf16 compute over fp32 master weights, gradient checkpointing, the vision encoder frozen (the merger
# trains). Each algorithm runs train.py's own rollout and update functions for a few steps.

QWEN25_VL_3B = dict(hidden_size=2048, intermediate_size=11008, num_layers=36, num_heads=16, num_kv_heads=2,
                    mrope_section=(16, 24, 24), max_position_embeddings=128000, vision_depth=32,
                    vision_hidden_size=1280, vision_heads=16, vision_intermediate_size=3420,
                    fullatt_block_indexes=(7, 15, 23, 31))  # fmt: skip
GPU_ALGOS = [
    ("sft", {}),
    ("grpo", {}),
    ("t_grpo", {}),
    ("reg_grpo", {}),
    ("grpo+lora", {"lora_r": 64, "lora_alpha": 128}),
]
# Generate calls of one step per algorithm (T-GRPO also samples G/2 shuffled rows; LoRA's extra matmuls cost
# ~30% per token), to fit the completion length into the time budget
GENERATE_CALLS = {"sft": 0, "grpo": 1, "t_grpo": 2, "reg_grpo": 1, "grpo+lora": 1.3}


def probe_rewards(group):
    """The share of even token ids among each completion's tokens [G]. A random model earns no accuracy or
    format reward, so every group's rewards would be equal, its advantages 0, and no update would move a
    weight; this reward varies within a group, so the policy-gradient path really runs."""

    even = (group.completion_ids % 2 == 0) & group.mask  # [G, T]
    return even.sum(1).float() / group.mask.sum(1).clamp(min=1)  # [G]


def gpu_prompts(n, frames, height, width, min_pixels, max_pixels, seed=0):
    """n (record, visual, generator) of the synthetic benchmark's direction family, drawn in memory."""
    cfg = data.SynthConfig(width=width, height=height, frames=frames)
    rng = np.random.default_rng(seed)
    prompts = []
    for i in range(n):
        pixels, fields, _ = data.synth_sample("direction", rng, cfg, as_image=False)
        record = {**fields, "problem_id": f"gpu-check-{i}", "data_type": "video", "_media": "(in memory)"}
        visual = data.video_visual(
            torch.from_numpy(pixels).permute(0, 3, 1, 2), cfg.fps, frames, range(frames), min_pixels, max_pixels
        )
        prompts.append((record, visual, torch.Generator().manual_seed(i)))
    return prompts


def gpu_parser():
    """`bench.py gpu`'s flags."""
    parser = argparse.ArgumentParser(
        prog="bench.py gpu",
        description="Every algorithm for a few steps on a random Qwen2.5-VL-3B (no download), "
        "with step times, peak GPU memory against `bench.py memory`'s plan, and whether the weights moved.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--steps", type=int, default=2, help="steps per algorithm (the first includes CUDA warm-up)")
    parser.add_argument(
        "--max_new_tokens",
        type=int,
        default=768,
        help="completion length (a random model never stops: every row is full length); lowered to fit --budget_s",
    )
    parser.add_argument(
        "--budget_s",
        type=float,
        default=420,
        help="seconds the whole check may take; the completion length is cut to fit it",
    )
    parser.add_argument(
        "--scaled_down",
        action="store_true",
        help="the built-in tiny model's sizes, G = 2, 8 tokens, on the CPU if there is no GPU: "
        "the script's own smoke test",
    )
    return parser


class GpuRun:
    """What every algorithm of the GPU check shares: the options, the sizes, the model config, the processor,
    the prompts and one accelerator; and building a model, its settings, and timing and measuring on the GPU
    (no-ops on the CPU)."""

    def __init__(self, opts):
        self.opts, self.t_start = opts, time.perf_counter()
        self.cuda = torch.cuda.is_available()
        if not self.cuda and not opts.scaled_down:
            raise SystemExit(
                "bench.py gpu: no CUDA GPU here. It checks a random Qwen2.5-VL-3B on one GPU (80-140 GB); "
                "`python bench.py gpu --scaled_down` runs the same script at the tiny model's sizes on the CPU"
            )
        self.device = torch.device("cuda" if self.cuda else "cpu")
        if opts.scaled_down:
            sizes = ({}, 2, min(8, opts.max_new_tokens), 4, (56, 112), (56 * 56, 56 * 112))
        else:
            sizes = (QWEN25_VL_3B, 8, opts.max_new_tokens, 16, (224, 448), (4 * 28 * 28, 128 * 28 * 28))
        self.dims, self.G, self.T, self.frames, (self.height, self.width), (self.min_pixels, self.max_pixels) = sizes
        self.config = model_lib.tiny_config(**self.dims)
        self.processor = model_lib.build_processor(min_pixels=self.min_pixels, max_pixels=self.max_pixels)
        self.prompts = gpu_prompts(opts.steps, self.frames, self.height, self.width, self.min_pixels, self.max_pixels)
        frames = self.prompts[0][1].frames
        self.video_tokens = int(frames.shape[0] // 2 * frames.shape[-2] * frames.shape[-1] // 28**2)
        self.dtype = "auto" if self.cuda else "fp32"
        self.accelerator = infra.new_accelerator(self.settings("grpo", {}, self.T))
        self.compute = infra.compute_dtype(self.settings("grpo", {}, self.T))

    def settings(self, name, extra, max_new_tokens):
        algo = name.split("+")[0]
        return train.Args(
            algo=algo,
            model="(random weights)",
            dtype=self.dtype,
            num_generations=self.G,
            num_shuffled=self.G // 2,
            max_completion_length=max_new_tokens,
            num_frames=self.frames,
            batch_size=1,
            max_steps=self.opts.steps,
            gradient_checkpointing=True,
            freeze_vision=True,
            learning_rate=1e-5 if algo == "sft" else 1e-6,
            beta=(0.1 if algo == "reg_grpo" else 0.04) if algo != "sft" else 0.0,
            output_dir=os.path.join(OUT_DIR, "gpu"),
            # one prompt a step, one update on it: Reg-GRPO's second update (its default --minibatches 2 over
            # --grad_accum 2) runs the same passes on the next prompt, so it changes neither memory nor seconds
            grad_accum=1,
            minibatches=1,
            **extra,
        ).resolve()

    def sync(self):
        if self.cuda:
            torch.cuda.synchronize()

    def peak_gib(self):
        return torch.cuda.max_memory_allocated() / GiB if self.cuda else 0.0

    def reset_peak(self):
        if self.cuda:
            torch.cuda.reset_peak_memory_stats()

    def build(self, lora):
        torch.manual_seed(0)
        with torch.device(self.device):  # fp32 random weights, as train.py holds a trained model
            model = Qwen2_5_VLForConditionalGeneration(self.config)
        model.generation_config = model_lib.generation_config()
        model_lib.configure_training(model, gradient_checkpointing=True, freeze_vision=True)
        if lora:  # train.py's rule: the frozen base in the compute dtype, fp32 adapters
            model.to(self.compute)
        return model


def gpu_check(argv):
    """`python bench.py gpu`: each of GPU_ALGOS for a few steps on the random model, a line each as it ends, then
    the table; fails when an algorithm moved no weight."""
    run = GpuRun(gpu_parser().parse_args(argv))
    cuda, G, frames = run.cuda, run.G, run.frames
    print(
        f"bench.py gpu: {torch.cuda.get_device_name() if cuda else 'CPU (scaled down)'}, torch {torch.__version__}, "
        f"compute {str(run.compute).removeprefix('torch.')} over fp32 master weights, gradient checkpointing, "
        "vision encoder frozen"
    )
    print(
        f"model: {'Qwen2.5-VL-3B dimensions' if run.dims else 'tiny dimensions'}, random weights; G = {G}, "
        f"{frames} frames of {run.height}x{run.width} "
        f"({run.video_tokens} video tokens), batch 1 prompt, {run.opts.steps} steps per algorithm",
        flush=True,
    )
    if cuda and not run.opts.scaled_down:
        fit_completion_length(run)
    plan_cache = {}
    rows = [check_algorithm(run, name, extra, plan_cache) for name, extra in GPU_ALGOS]
    print_gpu_table(run, rows)
    failed = [name for name, *_, n_moved, n_trainable, _ in rows if n_moved == 0]
    if failed:
        raise SystemExit(f"weights did not move: {', '.join(failed)}")


def fit_completion_length(run):
    """Cut run.T to the completion length that fits --budget_s: time 32 tokens of G rows first (GPU only)."""
    opts, T = run.opts, run.T
    model = run.build(False)
    args = run.settings("grpo", {}, 32)
    with torch.no_grad(), run.accelerator.autocast():
        train.sample_groups(model, run.processor, [(r, v, None) for r, v, _ in run.prompts[:1]], run.G, args)  # warm-up
        run.sync()
        t0 = time.perf_counter()
        train.sample_groups(model, run.processor, [(r, v, None) for r, v, _ in run.prompts[:1]], run.G, args)
        run.sync()
    per_token = (time.perf_counter() - t0) / 32
    del model
    gc.collect()
    torch.cuda.empty_cache()
    calls = sum(GENERATE_CALLS.values()) * opts.steps
    # ~25 s per algorithm for building, log-probs, updates
    spare = opts.budget_s - (time.perf_counter() - run.t_start) - 25 * len(GPU_ALGOS)
    fits = int(spare / (calls * per_token))
    if fits < T:
        T = max(32, fits)
    print(
        f"generation: {per_token * 1000:.1f} ms per token for {run.G} rows; {calls:g} generate calls in all "
        f"-> completions of {T} tokens"
        + (
            "" if T == opts.max_new_tokens else f" (cut from {opts.max_new_tokens} to fit --budget_s {opts.budget_s:g})"
        ),
        flush=True,
    )
    run.T = T


def check_algorithm(run, name, extra, plan_cache):
    """One algorithm of the GPU check: its steps, which trainable tensors moved, its line; its table row."""
    args = run.settings(name, extra, run.T)
    model, peft_model, policy, optimizer, scheduler, unwrapped, ref = setup_algorithm(run, args)
    trainable = {n: p.detach().clone() for n, p in unwrapped.named_parameters() if p.requires_grad}
    times, peaks = algorithm_steps(run, args, policy, optimizer, scheduler, unwrapped, ref)
    moved = {
        n: (p.detach() - trainable[n]).abs().max().item() for n, p in unwrapped.named_parameters() if n in trainable
    }
    row = report_algorithm(run, name, args, times, peaks, moved, plan_cache)
    run.accelerator.free_memory(policy, optimizer, scheduler)
    del policy, optimizer, scheduler, unwrapped, ref, model, peft_model, trainable
    gc.collect()
    if run.cuda:
        torch.cuda.empty_cache()
    return row


def setup_algorithm(run, args):
    """train.py's set-up on the random model: LoRA adapters if asked, the policy, AdamW and its schedule through
    the accelerator, and the reference (a bf16 copy; LoRA: the adapter off; SFT: none)."""
    lora = bool(args.lora_r)
    model = run.build(lora)
    peft_model = None
    if lora:
        peft_model = model_lib.add_lora(model, args.lora_r, args.lora_alpha, 0.0, model_lib.LLM_LORA_TARGETS)
        model = peft_model.get_base_model()
    model.train()
    policy = model_lib.LogProbs(model, args.logprob_chunk)
    optimizer, scheduler = infra.optimizer_and_schedule(policy, args)
    policy, optimizer, scheduler = run.accelerator.prepare(policy, optimizer, scheduler)
    unwrapped = run.accelerator.unwrap_model(policy).model
    ref = (
        infra.reference_logprobs(
            run.accelerator, policy, peft_model, lambda: copy.deepcopy(unwrapped).to(run.compute).eval(), args
        )
        if args.algo != "sft"
        else None
    )
    return model, peft_model, policy, optimizer, scheduler, unwrapped, ref


def algorithm_steps(run, args, policy, optimizer, scheduler, unwrapped, ref):
    """One step per prompt through train.py's own rollout and update functions. Returns each step's seconds
    (generate, log-probs, update), longest completion and gradient norm, and the peak GiB of rollouts and updates."""
    accelerator = run.accelerator
    state = infra.TrainState(args.da_window)
    times, peaks = [], {"rollout": 0.0, "update": 0.0}
    for record, visual, generator in run.prompts:
        timing = {"generate": 0.0, "score": 0.0, "logprob": 0.0, "update": 0.0}
        run.reset_peak()
        run.sync()
        t0 = time.perf_counter()
        with accelerator.autocast():
            if args.algo == "sft":
                groups = [train.sft_group(run.processor, record, visual, run.device)]
            else:
                groups, _ = train.collect_rollouts(
                    unwrapped, run.processor, [(record, visual, generator)], None, args, timing
                )
                for group in groups:
                    group.rewards = probe_rewards(group).cpu()
            run.sync()
            t1 = time.perf_counter()
            mb = train.rollout_tensors(groups, ref, args, accelerator, timing, policy)
            run.sync()
        t2 = time.perf_counter()
        peaks["rollout"] = max(peaks["rollout"], run.peak_gib())
        run.reset_peak()
        loss, _, grad_norm = train.optimizer_updates(
            accelerator, policy, optimizer, scheduler, [mb], args, state, timing
        )
        run.sync()
        t3 = time.perf_counter()
        peaks["update"] = max(peaks["update"], run.peak_gib())
        times.append(
            {
                "generate": t1 - t0,
                "logprob": t2 - t1,
                "update": t3 - t2,
                "tokens": int(groups[0].mask.sum(1).max()),
                "grad_norm": grad_norm,
            }
        )
    return times, peaks


def report_algorithm(run, name, args, times, peaks, moved, plan_cache):
    """Print one algorithm's line (its last step, peak memory against the plan, tensors moved); its table row."""
    lora = bool(args.lora_r)
    still = sum(1 for v in moved.values() if v == 0)
    key = ("lora" if lora else "full", args.algo != "sft")
    if key not in plan_cache:
        plan_cache[key] = (
            plan(
                "3B",
                "lora" if lora else "full",
                True,
                G=run.G if args.algo != "sft" else 1,
                frames=run.frames,
                T=run.T,
                gpus=1,
                frozen_vision=True,
                max_pixels=run.max_pixels,
                reference=args.algo != "sft",
            )
            if run.dims
            else None
        )
    predicted = plan_cache[key]
    last = times[-1]
    print(
        f"{name}: step {len(times)}: generate {last['generate']:.1f} s, log-probs {last['logprob']:.1f} s, "
        f"update {last['update']:.1f} s "
        f"(step 1: {sum(times[0][k] for k in ('generate', 'logprob', 'update')):.1f} s); "
        f"completions {last['tokens']} tokens; "
        + (
            f"peak {peaks['rollout']:.1f} GiB rollout / {peaks['update']:.1f} GiB update"
            if run.cuda
            else "peak memory: no GPU"
        )
        + (f" (plan {predicted['rollout_total'] / GiB:.1f} / {predicted['total_ours'] / GiB:.1f})" if predicted else "")
        + f"; {len(moved) - still} of {len(moved)} trainable tensors moved (max |dw| {max(moved.values()):.2e}), "
        f"grad norm {last['grad_norm']:.3g}",
        flush=True,
    )
    return (name, last, times[0], peaks, predicted, len(moved) - still, len(moved), max(moved.values()))


def print_gpu_table(run, rows):
    """The table of every algorithm's last step."""
    print(
        "\n| algorithm | generate s | log-probs s | update s | completion tokens | peak GiB rollout (plan) "
        "| peak GiB update (plan) | tensors moved |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, last, first, peaks, predicted, n_moved, n_trainable, max_dw in rows:
        plan_r = f" ({predicted['rollout_total'] / GiB:.1f})" if predicted else ""
        plan_u = f" ({predicted['total_ours'] / GiB:.1f})" if predicted else ""
        rollout, update = (f"{peaks[k]:.1f}" if run.cuda else "-" for k in ("rollout", "update"))
        print(
            f"| {name} | {last['generate']:.1f} | {last['logprob']:.1f} | {last['update']:.1f} | {last['tokens']} "
            f"| {rollout}{plan_r} | {update}{plan_u} | {n_moved} / {n_trainable} (max {max_dw:.1e}) |"
        )
    print(
        f"\nwall time {time.perf_counter() - run.t_start:.0f} s; the last step of each algorithm; "
        "rewards are bench.py's probe reward (a random model earns none)"
    )
