"""
The engineering behind train.py. A first reading can skip this file: train.py holds the algorithms and the
loop, and calls each piece here in one line.

What lives here is what makes the same loop run on one CPU and on many GPUs, resume exactly, and survive bad
data; none of it changes what an algorithm computes:
  1. the main job's assets: the built-in tiny model and the synthetic benchmark (the job itself: eval.main_job)
  2. a run: accelerator and precision, loading the model, the reference model, DeepSpeed's settings
  3. data: each process's stream of the seeded order, unreadable samples, lock-step across processes
  4. sharded weights whole for generation (FSDP2, DeepSpeed ZeRO-3)
  5. checkpoints, resume, the final model
  6. logging: metrics.jsonl, trackers, completions.jsonl, the progress bar
  7. the command line: the defaults filled in, input checks, CPU threads under `accelerate launch`
"""

import argparse
import ctypes
import json
import math
import os
import random
import re
import shutil
import sys
import time
from collections import deque
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, fields
from functools import lru_cache

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import DistributedType
from tqdm import tqdm

import data
import model as model_lib

# -----------------------------------------------------------------------------
# 1. The built-in tiny model and the synthetic benchmark of the main job (eval.main_job)

TINY_MODEL_DIR = "data/tiny-qwen2.5-vl"  # the built-in tiny model, built on first use
SYNTH_DIR = "data/synth"  # the synthetic benchmark, generated on first use
# The main job's benchmark: one temporal and two static families, objects half the frame wide, `size` squares
# 20, 50 or 80% wide, 2,400 training samples so that SFT never repeats one, and a 300-step SFT start: the settings
# under which the start uses its video and leaves RL room (docs/EXPERIMENTS.md, "What made the SFT start see",
# "Other attempts at `size`" and "The main job at 300 SFT steps").
MAIN_JOB_FAMILIES = ("color", "approach", "size")
MAIN_JOB_OBJECT_SIZE = 0.5
MAIN_JOB_SIZE_PERCENTS = "20,50,80"
MAIN_JOB_SFT_STEPS = 300
ALL_FAMILIES = data.SynthConfig().families


def prepare_assets(args):
    """The built-in tiny model and the synthetic benchmark, built once when no --model / --data is given."""
    if args.tiny and not os.path.isdir(TINY_MODEL_DIR):
        model_lib.build_tiny(TINY_MODEL_DIR, seed=0)
    if not args.data:
        wanted = synth_config(args)
        if os.path.isfile(os.path.join(SYNTH_DIR, "train.json")):
            remedy = f"delete {SYNTH_DIR} to regenerate it"
            check_synth_config(os.path.join(SYNTH_DIR, "synth_config.json"), wanted, remedy)
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
            f"--synth_families {args.synth_families!r}: unknown or no families {unknown}; "
            f"choose from {', '.join(ALL_FAMILIES)}"
        )
    percents = data.parse_percents(args.synth_size_percents)
    config = data.SynthConfig(
        families=families, size=args.synth_size, size_percents=percents, afterthoughts=args.synth_afterthoughts
    )
    return data.synth_settings(args.synth_train, args.synth_test, 0, config)


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


# -----------------------------------------------------------------------------
# 2. A run: accelerator, precision, model, reference


@dataclass
class Run:
    """What train() holds for the length of a run, beside the policy, optimizer and training state."""

    accelerator: Accelerator
    model: torch.nn.Module  # the model whose weights train (with LoRA: the base with the adapters inside)
    processor: object
    peft_model: object  # LoRA's wrapper around `model`, or None
    model_path: str
    data_path: str
    min_pixels: int  # the processor's pixel budget per frame
    max_pixels: int
    context: int  # the model's context in tokens: prompts that do not fit are refused (data.check_prompt_length)
    metrics_path: str = ""
    bar: tqdm = None


def setup(args):
    """The accelerator, seeds, assets, and the model: fp32 master weights (LoRA: a base in the compute dtype
    with fp32 adapters), vision tower frozen or not, train mode (which turns activation checkpointing on)."""
    report_to = [t for t in args.report_to.split(",") if t] or None
    accelerator = new_accelerator(args, log_with=report_to, project_dir=args.output_dir)
    keep_freed_memory(accelerator.device)  # on a CPU: no page faults for every large tensor
    seed_everything(args.seed + accelerator.process_index)
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
        targets = args.lora_targets or model_lib.LLM_LORA_TARGETS
        peft_model = model_lib.add_lora(model, args.lora_r, args.lora_alpha, args.lora_dropout, targets, model_path)
        model = peft_model.get_base_model()  # the same modules, LoRA layers inside: what LogProbs and generate run
    model.train()  # from_pretrained leaves eval mode; train mode turns activation checkpointing on
    if accelerator.is_main_process:
        trained = next(p.dtype for p in model.parameters() if p.requires_grad)
        print(
            f"precision: {str(compute).removeprefix('torch.')} compute "
            f"(autocast {'on' if accelerator.native_amp else 'off'}), "
            f"trainable weights and AdamW state {str(trained).removeprefix('torch.')}"
            + (", fp16 gradient scaler" if accelerator.scaler is not None else "")
        )
    budget = processor.video_processor.size
    return Run(
        accelerator,
        model,
        processor,
        peft_model,
        model_path,
        data_path,
        budget["shortest_edge"],
        budget["longest_edge"],
        model_lib.context_length(model),
    )


def training_records(run, args):
    """The records of --data (bad ones reported and skipped), filtered by --problem_types."""
    try:
        records, bad = data.load_records(run.data_path, strict=args.strict_data)
    except (OSError, UnicodeDecodeError, ValueError) as e:  # unreadable, not JSON, a JSON object of another shape
        usage_error(f"--data {run.data_path}: {e}")
    kept = records
    filtered = args.problem_types not in ("", "all")
    if filtered:
        wanted = {t.strip() for t in args.problem_types.split(",")}
        kept = [r for r in records if r["problem_type"] in wanted]
    if run.accelerator.is_main_process:
        for e in bad:
            print(f"skipping bad record: {e}", file=sys.stderr)
        chosen = f", {len(kept)} of them of problem type {args.problem_types}" if filtered else ""
        print(f"{len(records)} records from {run.data_path} ({len(bad)} bad, skipped){chosen}")
    if not kept:
        found = sorted({r["problem_type"] for r in records})
        of_type = f" of problem type {args.problem_types} (it has: {', '.join(found)})" if records else ""
        raise SystemExit(f"no usable records in {run.data_path}" + of_type)
    return kept


def prepare(run, policy, optimizer, scheduler, args):
    """accelerate's prepare (DDP, FSDP or DeepSpeed wrapping) and the frozen reference log-prob function."""
    configure_deepspeed(run.accelerator, args)
    policy, optimizer, scheduler = run.accelerator.prepare(policy, optimizer, scheduler)
    device = run.accelerator.device

    def load_reference():  # the starting checkpoint in the compute dtype: it never steps, so no fp32 masters
        return model_lib.load_model(run.model_path, dtype=compute_dtype(args), device=device)

    ref = reference_logprobs(run.accelerator, policy, run.peft_model, load_reference, args)
    return policy, optimizer, scheduler, ref


def reference_logprobs(accelerator, policy, peft_model, load_reference, args):
    """The frozen reference policy pi_ref as a log-prob function groups -> [N, T], or None when beta is 0.
    load_reference() returns the reference model.

    LoRA: the policy itself with its adapters switched off, i.e. the starting weights; no second copy.
    DeepSpeed ZeRO-3: a copy in its own ZeRO-3 engine (sharded like the policy, eval mode, no optimizer).
    One process, DDP, ZeRO-2, FSDP: a full frozen copy on every process (under FSDP it is not sharded:
    use LoRA when that copy does not fit).
    """
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
        import deepspeed  # optional (pip install deepspeed): imported only when a ZeRO-3 config asks for it

        config = {k: v for k, v in plugin.deepspeed_config.items() if k not in ("optimizer", "scheduler")}
        ref = deepspeed.initialize(model=ref, config=config)[0]
        ref.eval()
    return ref


def configure_deepspeed(accelerator, args):
    """DeepSpeed reads the micro-batch size from a DataLoader, and we have none; it also clips and
    accumulates gradients itself, stepping inside accelerator.backward. We pass it our clip, and refuse more
    than one micro-batch per update (our loop accumulates by hand, which DeepSpeed would turn into one step
    per micro-batch): raise --batch_size instead."""
    plugin = accelerator.state.deepspeed_plugin
    if plugin is None:
        return
    whole = args.grad_accum % args.minibatches == 0  # each update on whole micro-batches (train.minibatch)
    if (args.grad_accum // args.minibatches if whole else args.grad_accum) != 1:
        raise SystemExit(
            "DeepSpeed: one micro-batch per optimizer update: --grad_accum 1, or equal to --minibatches "
            "(raise --batch_size for more prompts per update)"
        )
    plugin.deepspeed_config["train_micro_batch_size_per_gpu"] = args.batch_size
    plugin.deepspeed_config["gradient_accumulation_steps"] = 1
    plugin.deepspeed_config["gradient_clipping"] = args.max_grad_norm


MIXED_PRECISION = {torch.float32: "no", torch.bfloat16: "bf16", torch.float16: "fp16"}  # accelerate's names


def compute_dtype(args):
    """The dtype the matmuls run in (--dtype): auto is bf16 on a GPU that has it, fp32 elsewhere."""
    if args.dtype == "auto":
        return torch.bfloat16 if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else torch.float32
    if args.dtype == "fp16" and not torch.cuda.is_available():  # accelerate's fp16 gradient scaler: accelerators only
        raise SystemExit(
            "--dtype fp16 needs a GPU (accelerate's fp16 loss scaling does not run on the CPU); "
            "use --dtype bf16 or fp32 here"
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
    precision = MIXED_PRECISION[compute_dtype(args)]
    return Accelerator(mixed_precision=precision, step_scheduler_with_optimizer=False, **kwargs)


# glibc's malloc.h; the trim threshold is a C int, so at most 2 GiB
M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
KEEP_FREED_BYTES = 1 << 30


def keep_freed_memory(device) -> bool:
    """On a CPU under glibc, make freed tensor memory go back to the allocator instead of to the kernel.

    glibc's malloc serves every block larger than its mmap threshold (32 MiB at most) with fresh pages from
    mmap and unmaps them on free. Training the tiny model allocates such blocks constantly: a 256-row chunk
    of LM-head logits is 256 x 151,936 x 4 B = 156 MB, the head's weight gradient 78 MB, and AdamW's
    temporaries as much again. Every page of every one of them is then faulted in and zeroed by the kernel
    at first touch: `bench.py profile` counted 7.0M page faults and 19 s of system time beside 41 s of
    user time, and the RL step went from 5.9 s to 3.4 s with this setting (README, "Speed"). With mmap
    off, large blocks come from the heap and stay there after free (up to KEEP_FREED_BYTES at its top),
    so the next step reuses them; the price is that the process keeps its peak memory (+0.3 GiB in the profile).
    Nothing computed changes: only where the bytes live. Only on the CPU (a GPU run's host memory
    would keep the peak of loading a checkpoint) and only on Linux with glibc; returns whether it was
    applied. Process-wide and idempotent."""
    if torch.device(device).type != "cpu" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")  # glibc's name; musl and others have no such library, or no effect
    except OSError:
        return False
    return bool(libc.mallopt(M_MMAP_MAX, 0)) and bool(libc.mallopt(M_TRIM_THRESHOLD, KEEP_FREED_BYTES))


def optimizer_and_schedule(policy, args):
    """AdamW over the trainable parameters, and the learning-rate schedule per optimizer update: linear
    warm-up over --warmup_steps, then constant or cosine to 0 at the last update."""
    trainable = [p for p in policy.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=args.learning_rate, weight_decay=args.weight_decay)
    total_updates = args.max_steps * args.num_iterations * args.minibatches

    def lr_factor(update):
        if update < args.warmup_steps:
            return (update + 1) / args.warmup_steps
        if args.lr_schedule == "cosine":
            progress = (update - args.warmup_steps) / max(1, total_updates - args.warmup_steps)
            return 0.5 * (1 + math.cos(math.pi * progress))
        return 1.0

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)


@contextmanager
def timed(timing, key):
    """Adds the block's wall time to timing[key] (the step's time/..._s metrics)."""
    t0 = time.time()
    yield
    timing[key] += time.time() - t0


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def clip_gradients(accelerator, policy, args):
    """Clip by global norm to --max_grad_norm (0: no clipping); returns the norm before clipping, a float."""
    if args.max_grad_norm > 0:
        return float(accelerator.clip_grad_norm_(policy.parameters(), args.max_grad_norm))
    norms = [p.grad.norm() for p in policy.parameters() if p.grad is not None]
    return float(torch.stack(norms).norm()) if norms else 0.0


def optimizer_step(accelerator, optimizer, loss, grad_norm, state):
    """optimizer.step(), unless the loss or gradient is not finite: then the update is skipped and said, and
    five in a row stop the run. grad_norm is global (gradients are all-reduced), so every process takes the
    same branch. Under fp16 accelerate's scaler skips an overflowing update itself and lowers its scale."""
    if accelerator.scaler is not None:
        optimizer.step()
        if optimizer.step_was_skipped and accelerator.is_main_process:
            scale = accelerator.scaler.get_scale()
            print(
                f"step {state.step}: fp16 gradient overflow, update skipped (loss scale now {scale:g})", file=sys.stderr
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


def minibatch(micro, k, args):
    """The k-th of --minibatches parts of a step's rollouts: whole micro-batches when their number divides,
    else the k-th slice of every micro-batch's groups (columns cut to the slice's longest completion)."""
    K, G = args.minibatches, args.num_generations
    if K == 1:
        return micro
    if len(micro) % K == 0:
        n = len(micro) // K
        return micro[k * n : (k + 1) * n]
    parts = []
    for mb in micro:
        B = len(mb["groups"])
        groups = mb["groups"][k * B // K : (k + 1) * B // K]
        rows, T = slice(k * B // K * G, (k + 1) * B // K * G), max(g.completion_ids.shape[1] for g in groups)
        part = {"groups": groups, "pairs": mb["pairs"][k * B // K : (k + 1) * B // K], "stats": mb.get("stats")}
        part["mask"] = mb["mask"][rows, :T]
        for key in ("rewards", "advantages"):
            part[key] = mb[key][rows]
        for key in ("logp_old", "logp_ref", "logp_sampler"):
            part[key] = mb[key][rows, :T] if mb.get(key) is not None else None
        parts.append(part)
    return parts


def pad_stack(tensors, value=0):
    """[G_i, T_i] tensors -> one [sum G_i, max T_i] tensor, right-padded with `value`."""
    T = max(t.shape[1] for t in tensors)
    return torch.cat([torch.nn.functional.pad(t, (0, T - t.shape[1]), value=value) for t in tensors])


# -----------------------------------------------------------------------------
# 3. Data: each process's stream of the seeded order


class TrainState:
    """What a checkpoint needs beyond model, optimizer, scheduler and RNG (which accelerate saves):
    the step, the data position, DA's reward window, and counters.

    Every field is the same on every process, so the main process's copy in a checkpoint resumes all of
    them exactly (the main process writes it to each checkpoint as train_state.json). DA's window is global
    for that reason: after each micro-batch every process gathers the mean rewards of all processes'
    groups (in data order), as DeepVideo-R1's "the last W samples" reads, rather than W samples of its own
    shard. `skipped` counts the unreadable samples of all processes likewise.

    Data positions: process r reads its own stream, stream_position(r, k) for k = 0, 1, ...: in every block
    of batch_size x processes positions of the seeded order, the batch_size after r * batch_size. `taken[r]`
    is how far process r has read its stream; an unreadable sample makes it read one further, so every process
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
                f"the checkpoint was written by {len(state.get('taken', []))} processes, this run has "
                f"{len(self.taken)}: resume with as many processes as the run had (each reads its own stream)"
            )
        self.taken = list(state["taken"])

    @staticmethod
    def check_readable(accelerator, found, wanted):
        """Before a micro-batch's rollouts (every process calls it: a collective): stop every process together
        when one found fewer than `wanted` readable samples, rather than let the others wait for it."""
        short = accelerator.gather(torch.tensor([int(found < wanted)], device=accelerator.device)).cpu()  # [world]
        if short.any():
            raise SystemExit(
                f"process(es) {short.nonzero().view(-1).tolist()} found fewer than {wanted} readable samples in "
                f"the next {READ_ATTEMPTS * wanted} records of their data streams: "
                "check the file with `python data.py check FILE`"
            )

    def record(self, accelerator, mean_rewards, taken, da):
        """Fold one micro-batch of every process into the counters and (da) DA's window. mean_rewards: this
        process's [batch_size] group means before augmentation, in data order; taken: how far it has now read
        its stream. Every process calls it once per micro-batch (a collective)."""
        device = accelerator.device
        rewards = torch.tensor(mean_rewards, dtype=torch.float32, device=device)
        everyone = accelerator.gather(rewards).cpu()  # [world * batch_size]
        counts = accelerator.gather(torch.tensor([taken], dtype=torch.long, device=device)).cpu()  # [world]
        self.skipped += int(counts.sum()) - sum(self.taken) - len(everyone)  # read minus trained on, all processes
        self.taken = counts.tolist()
        if da:
            self.window.extend(everyone.tolist())


READ_ATTEMPTS = 20  # a micro-batch gives up after 20 x batch_size records of a stream without batch_size readable


def stream_position(rank, k, batch_size, world):
    """The k-th data position of process `rank`'s stream (see TrainState)."""
    block, offset = divmod(k, batch_size)
    return block * batch_size * world + rank * batch_size + offset


@lru_cache(maxsize=2)
def epoch_order(num_records, seed, epoch):
    """The seeded permutation of the data set for one epoch (computed once per epoch, not per sample)."""
    return np.random.default_rng([seed, epoch]).permutation(num_records)


def record_at(records, position, seed):
    """The record at a global data position: a fresh seeded permutation of the data set every epoch."""
    epoch, offset = divmod(position, len(records))
    return records[int(epoch_order(len(records), seed, epoch)[offset])]


def next_prompts(run, state, records, args):
    """batch_size readable samples of this process's stream, as (record, visual, generator), and how far the
    stream has now been read. An unreadable sample (missing or corrupt video) is said and the next one taken
    (--strict_data: raised); a process that finds too few stops every process (TrainState.check_readable).
    Each sample's generator (T-GRPO's shuffles, DA's noise) is seeded by its data position."""
    rank, world = run.accelerator.process_index, run.accelerator.num_processes
    prompts, k = [], state.taken[rank]
    while len(prompts) < args.batch_size and k < state.taken[rank] + READ_ATTEMPTS * args.batch_size:
        position = stream_position(rank, k, args.batch_size, world)
        k += 1
        record = record_at(records, position, args.seed)
        generator = torch.Generator().manual_seed(hash((args.seed, position)) % 2**63)
        try:
            visual = data.load_visual(record, args.num_frames, run.min_pixels, run.max_pixels)
            data.check_prompt_length(run.processor, record, visual, run.context, args.max_completion_length)
        except data.SampleError as e:
            if args.strict_data:
                raise
            print(f"process {rank}: skipping unreadable sample (the next of its stream instead): {e}", file=sys.stderr)
            continue
        prompts.append((record, visual, generator))
    TrainState.check_readable(run.accelerator, len(prompts), args.batch_size)
    return prompts, k


# -----------------------------------------------------------------------------
# 4. Sharded weights whole for generation


@contextmanager
def rollout_context(accelerator, policy, args):
    """Around a micro-batch's rollouts: the policy's weights whole (FSDP2 / ZeRO-3, see
    gathered_for_generation) and autocast, so that sampling and the rollout log-probs run in the compute dtype
    as the training forward does."""
    gathered = gathered_for_generation(accelerator, policy) if args.algo != "sft" else nullcontext()
    with gathered, accelerator.autocast():
        yield


@contextmanager
def gathered_for_generation(accelerator, policy):
    """Every parameter of the policy whole on this process, and no engine hook in its forward, for the
    length of the block: each process then samples as many times as its own prompts need (T-GRPO's
    shuffled group and DA's re-sampling differ per process), and no generate step waits on another
    process. Gathering once per rollout also beats gathering layer by layer at every generated token.

    DDP and ZeRO-1/2 keep whole parameters on every process: nothing to do. FSDP2 (fully_shard) and
    DeepSpeed ZeRO-3 split them; this gathers them and holds the engine's per-layer hooks off. The
    gathered policy costs the memory of one full copy of the weights while the block runs.
    """
    zero3 = (
        accelerator.distributed_type == DistributedType.DEEPSPEED and accelerator.state.deepspeed_plugin.zero_stage == 3
    )
    if accelerator.distributed_type == DistributedType.FSDP:
        with _fsdp2_unsharded(accelerator, policy):
            yield
    elif zero3:
        with _zero3_gathered(policy):
            yield
    else:
        yield


@contextmanager
def _fsdp2_unsharded(accelerator, policy):
    from torch.distributed.fsdp import FSDPModule

    if accelerator.state.fsdp_plugin.fsdp_version != 2:
        raise ValueError("FSDP1 is not supported for generation here: use fsdp_version: 2 (configs/fsdp.yaml)")
    sharded = [m for m in policy.modules() if isinstance(m, FSDPModule)]
    # FSDP2 calls the first module to run forward its root; generate enters at a decoder layer, so the
    # root (the LogProbs wrapper) is initialised as such first (a private call: FSDP2 has no public one).
    policy._get_fsdp_state()._lazy_init()
    # Each module's own resharding setting, put back afterwards: the root keeps its parameters after forward
    # (FSDP2 sets it so at initialisation), the layers reshard; one value for all would change the root's.
    # FSDP2 has no getter, so its private fields are saved and restored as they were.
    saved = {
        m: (
            m._get_fsdp_state()._auto_reshard_after_forward,
            [g.post_forward_mesh_info for g in m._get_fsdp_state()._fsdp_param_groups],
        )
        for m in sharded
    }
    for module in sharded:
        module.set_reshard_after_forward(False, recurse=False)  # stay whole across generate's many forwards
        module.unshard()
    try:
        yield
    finally:
        for module in sharded:
            module.reshard()
            state = module._get_fsdp_state()
            state._auto_reshard_after_forward, infos = saved[module]
            for group, info in zip(state._fsdp_param_groups, infos):
                group.post_forward_mesh_info = info


@contextmanager
def _zero3_gathered(engine):
    # DeepSpeed's own context: gather every parameter once and lift ZeRO-3's per-module fetch/release
    # hooks, which would otherwise re-partition each layer after its forward and re-gather it at the next.
    from deepspeed.runtime.zero.stage3 import unwrap_model_for_generation  # optional: only under ZeRO-3

    with unwrap_model_for_generation(engine):
        yield


# -----------------------------------------------------------------------------
# 5. Checkpoints, resume, the final model


STATE_FILE = "train_state.json"  # TrainState as JSON: resuming reads numbers, it never unpickles (runs no code)
# flags a resumed run may change: how long it runs and what it logs; any other must be the checkpoint's
# (and where: a checkpoint copied into a new folder resumes there)
RESUME_MAY_CHANGE = {"max_steps", "save_steps", "resume", "report_to", "log_completions_steps", "output_dir"}
RESUME_MAY_CHANGE |= {"strict_data", "eval_limit"}


def start_or_resume(run, state, args):
    """With --resume load the latest checkpoint-N/ (refusing one made with other settings) and drop the metrics
    the killed run logged after it; without it refuse a folder that holds an earlier run's checkpoints, else
    start the run's logs afresh; write args.json; start the trackers and the progress bar."""
    accelerator = run.accelerator
    run.metrics_path = os.path.join(args.output_dir, "metrics.jsonl")
    logs = [run.metrics_path, os.path.join(args.output_dir, "completions.jsonl")]
    ckpt = latest_checkpoint(args.output_dir)
    if args.resume and ckpt:
        check_resumable(ckpt, args, accelerator.process_index)
        accelerator.load_state(ckpt)  # model, optimizer, scheduler, RNG (accelerate loads these weights-only)
        state.load_state_dict(json.load(open(os.path.join(ckpt, STATE_FILE))))
        if accelerator.is_main_process:
            print(f"resumed from {ckpt} at step {state.step}")
            for path in logs:  # drop lines logged after that checkpoint by the killed run
                if os.path.exists(path):
                    kept = logged_until(path, state.step)  # read before the file is opened for writing
                    open(path, "w").writelines(kept)
    elif ckpt:
        raise SystemExit(
            f"{args.output_dir} holds {os.path.basename(ckpt)} of an earlier run: --resume continues it; another "
            "--output_dir (or deleting the folder) starts afresh"
        )
    elif accelerator.is_main_process:
        for path in logs:
            if os.path.exists(path):
                os.remove(path)
    if accelerator.is_main_process:
        with open(os.path.join(args.output_dir, "args.json"), "w") as f:
            json.dump(asdict(args), f, indent=1)
    accelerator.init_trackers(os.path.basename(os.path.normpath(args.output_dir)), config=asdict(args))
    disable = not accelerator.is_main_process
    run.bar = tqdm(total=args.max_steps, initial=state.step, desc=args.algo, disable=disable)


def check_resumable(ckpt, args, process_index=0):
    """Stop before resuming a checkpoint that another configuration wrote (args.json would then misstate what
    ran), one without its training state as JSON, and warn when this process's RNG state is missing."""
    if not os.path.isfile(os.path.join(ckpt, STATE_FILE)):
        pickled = os.path.isfile(os.path.join(ckpt, "custom_checkpoint_0.pkl"))
        raise SystemExit(
            f"{ckpt}: no {STATE_FILE}"
            + (" (written by an earlier version as a pickle, which resuming would have to unpickle)" if pickled else "")
            + "; it cannot be resumed: start afresh in another --output_dir"
        )
    saved_path = os.path.join(ckpt, "args.json")
    saved = json.load(open(saved_path)) if os.path.isfile(saved_path) else {}
    now = json.loads(json.dumps(asdict(args)))
    changed = [k for k in now if k not in RESUME_MAY_CHANGE and k in saved and saved[k] != now[k]]
    if changed:
        diff = ", ".join(f"--{k} {saved[k]!r} there, {now[k]!r} now" for k in changed)
        raise SystemExit(f"{ckpt} was written with other settings ({diff}): resume with the run's own flags")
    if not os.path.isfile(os.path.join(ckpt, f"random_states_{process_index}.pkl")):
        print(
            f"warning: {ckpt} has no random_states_{process_index}.pkl: the run resumes with fresh random "
            "numbers, not exactly where it stopped",
            file=sys.stderr,
        )


def logged_until(path, step):
    """The lines of a metrics or completions log up to `step`. A last line cut by the kill is dropped (it was
    being written after the checkpoint); any other line that is not JSON stops the run, naming it."""
    lines = open(path).readlines()
    kept = []
    for i, line in enumerate(lines, 1):
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            if i == len(lines):
                print(f"warning: {path} line {i} was cut off by the kill; dropped", file=sys.stderr)
                break
            raise SystemExit(f"{path} line {i} is not JSON ({e}): repair or delete that line, then resume") from None
        if row["step"] <= step:
            kept.append(line)
    return kept


def latest_checkpoint(output_dir):
    if not os.path.isdir(output_dir):
        return None
    names = [d for d in os.listdir(output_dir) if d.startswith("checkpoint-") and d.split("-")[1].isdigit()]
    steps = [int(d.split("-")[1]) for d in names]
    return os.path.join(output_dir, f"checkpoint-{max(steps)}") if steps else None


def save_checkpoint(accelerator, args, state):
    """accelerate's save_state (model, optimizer, scheduler, RNG of every process) and the TrainState as JSON
    into a temporary folder, renamed into place once complete, so a kill never leaves half a checkpoint."""
    final = os.path.join(args.output_dir, f"checkpoint-{state.step}")
    tmp = final + ".tmp"
    if accelerator.is_main_process and os.path.exists(tmp):
        shutil.rmtree(tmp)
    accelerator.wait_for_everyone()
    accelerator.save_state(tmp)
    if accelerator.is_main_process:
        with open(os.path.join(tmp, "args.json"), "w") as f:
            json.dump(asdict(args), f, indent=1)
        with open(os.path.join(tmp, STATE_FILE), "w") as f:
            json.dump(state.state_dict(), f)
        if os.path.exists(final):  # an older run's checkpoint of the same step
            shutil.rmtree(final)
        os.replace(tmp, final)
    accelerator.wait_for_everyone()


def save_final(accelerator, policy, processor, args, peft_model=None):
    """The trained model in Hugging Face format (from_pretrained / eval.py), written atomically. With LoRA:
    the merged model, or with --no-lora_merge the adapter alone (model.load reads both)."""
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
        with open(os.path.join(tmp, "args.json"), "w") as f:  # how it was trained: eval.py run reads its frames
            json.dump(asdict(args), f, indent=1)
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
    accelerator.wait_for_everyone()


def finish(run, policy, state, args):
    """The last checkpoint, the final model, the trackers closed."""
    run.bar.close()
    save_checkpoint(run.accelerator, args, state)
    save_final(run.accelerator, policy, run.processor, args, run.peft_model)
    run.accelerator.end_training()


# -----------------------------------------------------------------------------
# 6. Logging


def end_step(run, state, metrics, micro, args):
    """After each step: the metrics averaged over processes into metrics.jsonl and the trackers, whole groups
    into completions.jsonl every --log_completions_steps, the progress bar, and a checkpoint every
    --save_steps."""
    accelerator = run.accelerator
    values = accelerator.reduce(torch.tensor(list(metrics.values()), device=accelerator.device), "mean")
    m = {k: v.item() for k, v in zip(metrics, values)}
    m["step"] = state.step
    if accelerator.is_main_process:
        with open(run.metrics_path, "a") as f:
            f.write(json.dumps(m) + "\n")
        if args.log_completions_steps and state.step % args.log_completions_steps == 0 and args.algo != "sft":
            log_completions(micro, args, state.step)
    accelerator.log(m, step=state.step)
    shown = {"loss": f"{m['loss/total']:.3f}"} if args.algo == "sft" else {"reward": f"{m['reward/mean']:.3f}"}
    run.bar.set_postfix(shown)
    run.bar.update(1)
    if args.save_steps and state.step % args.save_steps == 0 and state.step < args.max_steps:
        save_checkpoint(accelerator, args, state)


def step_metrics(micro, loss, loss_metrics, grad_norm, scheduler, timing, t_step, args, state):
    """The step's metrics (train.train logs them), grouped names explained in the README. Every process reports
    the same keys (they are averaged across processes): a process whose samples were all unreadable reports 0s."""
    groups = [g for mb in micro for g in mb["groups"]]
    m = {"loss/total": loss.item(), "grad_norm": grad_norm, "lr": scheduler.get_last_lr()[0]}
    m["data/skipped"] = float(state.skipped)
    m.update(loss_metrics)
    m["completions/mean_length"] = float(torch.cat([g.mask.sum(1) for g in groups]).float().mean()) if groups else 0.0
    if args.algo != "sft":
        rewards = [g.rewards for g in groups] or [torch.zeros(2)]  # [G] each; a process without samples: zeros
        n = len(rewards)
        m["reward/mean"] = torch.cat(rewards).mean().item()
        m["reward/std"] = torch.stack([r.std() for r in rewards]).mean().item()
        m["reward/accuracy"] = float(np.mean([a for g in groups for a in g.accuracy] or [0.0]))
        m["reward/format"] = float(np.mean([f for g in groups for f in g.format] or [0.0]))
        m["adv/zero_std_frac"] = float(np.mean([bool(r.std() == 0) for r in rewards]))
        stats = [mb["stats"] for mb in micro]
        if args.algo == "t_grpo":
            ordered = [p for s in stats for p in s["acc_ordered"]]
            m["tgrpo/acc_ordered"] = float(np.mean(ordered)) if ordered else 0.0
            m["tgrpo/acc_shuffled"] = float(np.mean([p for s in stats for p in s["acc_shuffled"]])) if ordered else 0.0
            m["tgrpo/bonus_frac"] = float(np.mean([b for s in stats for b in s["bonus"]])) if ordered else 0.0
            changed = [c for s in stats for c in s["bonus_changed"]]
            m["tgrpo/adv_changed_frac"] = float(np.mean(changed)) if changed else 0.0
        if args.da:
            m["da/easy_frac"] = sum(s.get("easy", 0) for s in stats) / n
            m["da/hard_frac"] = sum(s.get("hard", 0) for s in stats) / n
            m["da/zero_std_before"] = sum(s["zero_before"] for s in stats) / n
            m["da/easy_zero_std_after"] = sum(s.get("easy_zero_after", 0) for s in stats) / n
            m["da/hard_zero_std_after"] = sum(s.get("hard_zero_after", 0) for s in stats) / n
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
                row = {
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
                f.write(json.dumps(row) + "\n")
                logged += 1


# -----------------------------------------------------------------------------
# 7. The command line


def parse_dataclass(cls, argv, description):
    """An instance of the dataclass `cls` from the command line: a flag per field, with the field's help and
    choices; booleans get --name / --no-name."""
    formatter = argparse.ArgumentDefaultsHelpFormatter
    parser = argparse.ArgumentParser(description=description, formatter_class=formatter)
    for f in fields(cls):
        help, choices = f.metadata["help"], f.metadata["choices"]
        if f.type is bool:
            parser.add_argument(f"--{f.name}", action=argparse.BooleanOptionalAction, default=f.default, help=help)
        else:
            parser.add_argument(f"--{f.name}", type=f.type, default=f.default, help=help, choices=choices)
    return cls(**vars(parser.parse_args(argv)))


def resolve_defaults(args):
    """train.Args with its 'auto' values (0 / -1 / empty) filled, once, so that the saved config says what actually
    ran: each field's help says what its 0 means. The reasons are in the comments here, the README's settings
    table and docs/EXPERIMENTS.md."""
    tiny = args.tiny  # reads the model's config.json: once
    args.beta = (0.1 if args.algo == "reg_grpo" else 0.04) if args.beta < 0 else args.beta
    args.freeze_vision = args.algo != "sft" if args.freeze_vision is None else args.freeze_vision
    if args.algo == "sft":
        args.beta, args.da = 0.0, False
    args.max_completion_length = args.max_completion_length or (64 if tiny else 768)
    args.num_frames = args.num_frames or (data.TINY_NUM_FRAMES if tiny else data.PAPER_NUM_FRAMES)
    args.max_pixels = args.max_pixels or (0 if tiny else data.PAPER_MAX_PIXELS)
    # The tiny model's RL budget on a CPU: 8 prompts x G = 4 a step rather than 1 x 8 (the same cost; with
    # 1 or 4 prompts held-out accuracy fell), 60 steps with the vision encoder frozen (docs/EXPERIMENTS.md)
    args.max_steps = args.max_steps or (60 if tiny else 50)
    args.batch_size = args.batch_size or (8 if tiny else 1)
    args.num_generations = args.num_generations or (4 if tiny else 8)
    args.num_shuffled = args.num_shuffled or max(1, args.num_generations // 2)
    # Video-R1's optimiser (run_grpo_video.sh) for real checkpoints; the tiny model keeps what its main
    # job was measured with (docs/EXPERIMENTS.md): a constant rate, no weight decay, clipping at 1
    args.weight_decay = (0.0 if tiny else 0.01) if args.weight_decay < 0 else args.weight_decay
    args.lr_schedule = args.lr_schedule or ("constant" if tiny else "cosine")
    args.max_grad_norm = (1.0 if tiny else 5.0) if args.max_grad_norm < 0 else args.max_grad_norm
    # The length reward is part of the reward every RL row is trained on, so that rows differ only in their
    # mechanism (Video-R1's GRPO and T-GRPO runs differ only in --temporal; DeepVideo-R1 states none: use
    # --no-length_bonus). The tiny model's window is Video-R1's scaled from 768 to 64 tokens (0.42-0.67 of
    # the limit); its SFT reasoning ends with afterthoughts of 0-13 tokens: its completions run 16-35 tokens
    args.length_bonus = args.algo != "sft" if args.length_bonus is None else args.length_bonus
    args.l_min, args.l_max = args.l_min or (27 if tiny else 320), args.l_max or (43 if tiny else 512)
    # Reg-GRPO's regression acts only once rho != 0: two updates per rollout batch, each on half its
    # groups, so that the second is off-policy (no extra forward: a quarter more step time, not double)
    args.minibatches = args.minibatches or (2 if args.algo == "reg_grpo" else 1)
    args.grad_accum = args.grad_accum or (2 if args.algo == "reg_grpo" and not tiny else 1)
    if args.algo == "sft":
        args.minibatches = 1
    groups_split = args.batch_size % args.minibatches == 0 or args.grad_accum % args.minibatches == 0
    if not groups_split:
        raise ValueError(
            f"--minibatches {args.minibatches} must divide --batch_size or --grad_accum (Reg-GRPO's regression "
            "needs a second update on the same rollouts; --minibatches 1 runs it as a scaled REINFORCE)"
        )
    if not args.learning_rate:
        sft = args.algo == "sft"
        args.learning_rate = (1e-3 if sft else 1e-4) if tiny else (1e-5 if sft else 1e-6)
    args.output_dir = args.output_dir or f"runs/{args.algo}{'-da' if args.da else ''}-seed{args.seed}"
    check_numbers(args)  # one-line errors for numbers no run can use
    if args.num_frames % 2:
        raise ValueError("--num_frames must be even: Qwen2.5-VL merges frames in pairs (temporal patch 2)")
    if args.algo != "sft" and args.num_generations < 2:
        raise ValueError("--num_generations must be >= 2: group advantages need a group")
    return args


def check_numbers(args):
    """One-line errors for numbers no run can use (after the defaults are filled: 0 / -1 mean "default")."""
    at_least_1 = ["batch_size", "max_steps", "grad_accum", "num_generations", "num_iterations", "minibatches"]
    at_least_1 += ["max_completion_length", "num_frames", "num_shuffled", "da_window", "logprob_chunk"]
    at_least_1 += ["sft_steps", "sft_batch_size", "synth_train", "synth_test"]
    at_least_0 = ["beta", "weight_decay", "max_grad_norm", "warmup_steps", "save_steps", "eval_limit", "lora_r"]
    at_least_0 += ["min_pixels", "max_pixels", "omega", "da_noise_scale", "da_noise_max", "da_hint_scale"]
    for name in at_least_1:
        if getattr(args, name) < 1:
            raise ValueError(f"--{name} {getattr(args, name)}: must be at least 1")
    for name in at_least_0:
        if getattr(args, name) < 0:
            raise ValueError(f"--{name} {getattr(args, name)}: must be at least 0")
    if not (args.learning_rate > 0 and args.temperature > 0 and 0 < args.top_p <= 1):
        raise ValueError("--learning_rate and --temperature must be above 0, --top_p in (0, 1]")
    if not 0 <= args.synth_afterthoughts <= 1 or args.l_min > args.l_max:
        raise ValueError("--synth_afterthoughts must be a share in [0, 1] and --l_min at most --l_max")


def is_tiny(model):
    """Whether --model is the built-in tiny model (empty) or a checkpoint trained from it (e.g. an SFT run's
    final/), judged by its hidden size; a LoRA adapter folder (no config.json) by the base it names. Any
    other model gets the papers' defaults."""
    if not model:
        return True
    config_path = os.path.join(model_lib.lora_base(model) or model, "config.json")
    if not os.path.isfile(config_path):
        return False
    with open(config_path) as f:
        config = json.load(f)
    return config.get("text_config", config).get("hidden_size") == model_lib.TINY_HIDDEN


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


def set_cpu_threads():
    """launcher_cpu_threads applied, and said."""
    import psutil  # accelerate's own dependency

    cores = psutil.cpu_count(logical=False) or os.cpu_count() or 1
    threads = launcher_cpu_threads(os.environ, torch.cuda.is_available(), cores)
    if threads:
        torch.set_num_threads(threads)
        print(
            "accelerate launch without --cpu set OMP_NUM_THREADS=1 on this machine without a GPU; using "
            f"{threads} threads, as `accelerate launch --cpu` would (--cpu --num_cpu_threads_per_process N chooses)",
            file=sys.stderr,
        )


def command_line(parse_args, argv=None):
    """train.py's command line: CPU threads set (set_cpu_threads), the flags parsed and resolved, --model and
    --data checked before anything loads; a value no run can use ends the program with one line."""
    set_cpu_threads()  # `accelerate launch` without --cpu on a machine without a GPU gives 1 thread
    try:
        args = parse_args(argv)
    except ValueError as e:  # a flag out of range: one line, not a traceback
        raise SystemExit(f"train.py: error: {e}") from None
    check_inputs(args)
    return args


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
                "(with config.json, or a LoRA adapter's adapter_config.json) or a hub id such as "
                "Qwen/Qwen2.5-VL-3B-Instruct"
            )
    elif model and not any(os.path.isfile(os.path.join(model, f)) for f in ("config.json", "adapter_config.json")):
        usage_error(
            f"--model {model}: the folder has no config.json (nor adapter_config.json), so it is no Hugging Face "
            "checkpoint; a run's model is in its final/ folder"
        )
    if args.data and not os.path.isfile(args.data):
        usage_error(
            f"--data {args.data}: no such file; give a Video-R1 JSON or JSONL file "
            "(`python data.py check FILE` validates one)"
        )
