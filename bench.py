"""
Benchmarks of the RL loop on the built-in tiny Qwen2.5-VL: a plain script that prints numbers and asserts
nothing (like nanoGPT's bench.py).

    python bench.py              # four comparisons side by side, one table (~5-10 min on 2 CPU cores)
    python bench.py --quick      # the same at toy sizes (the smoke test's run, under a minute)
    python bench.py memory       # memory plan for Qwen2.5-VL-3B / 7B on GPUs, from their published configs
    python bench.py gpu          # on a GPU machine: every algorithm on a random Qwen2.5-VL-3B, times, memory vs the plan
    python bench.py decode       # seconds to load 16 frames from a 90-frame and a 1,800-frame video
    python bench.py profile      # where a main-job SFT and RL step's time goes, and the LM head's floor
    python bench.py groups --model runs/sft-cold-start-225x8-seed0/final --data data/synth/train.json --limit 96
                                 # G rollouts per record as RL draws them: how many groups would carry a learning signal

The comparisons, each measured in the same run on the same machine:
  1. log-prob pass peak memory: model.py's chunked pass (what train.py trains with) vs the naive
     full-vocabulary fp32 log-softmax, forward + backward, G = 8 completions of 512 tokens, V = 151,936;
  2. rollout time: train.py's sample_group + score_group vs a bare sampling model.generate;
  3. step time (rollout, reference log-probs, loss, backward, optimizer step) at G = 4 and G = 16;
  4. one GRPO step on image prompts against TRL's GRPOTrainer (pip install -r requirements-bench.txt).

Every measurement runs in a fresh subprocess (`python bench.py worker NAME JSON`), so that one variant's
freed memory and warm caches never flatter the next. Generated files go under data/ and runs/bench/.

Sections: 1. settings  2. measuring memory and time  3. workers  4. the table  5. the memory plan  6. the GPU check
7. learning signal (groups)  8. CLI
"""

import dataclasses
import json
import os
import resource
import subprocess
import sys
import time
from dataclasses import dataclass

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, ROOT)

# -----------------------------------------------------------------------------
# 1. Settings

MODEL_DIR = os.path.join(ROOT, "data", "tiny-qwen2.5-vl")  # the same folder train.py builds on first use
SYNTH_DIR = os.path.join(ROOT, "data", "bench-synth")  # a small synthetic set of our own (videos and images)
OUT_DIR = os.path.join(ROOT, "runs", "bench")
TRL_PIN = "trl==1.16.0"  # keep in step with requirements-bench.txt


@dataclass
class Sizes:
    """What each comparison runs. `full` is the issue's setting; `quick` exercises the same code in seconds."""

    logprob_G: int = 8  # 1: completions in the log-prob pass
    logprob_T: int = 512  # 1: tokens per completion
    rollout_G: int = 8  # 2: train.py's default group size
    rollout_T: int = 64  # 2: the tiny model's default completion length
    rollout_reps: int = 5  # 2: timed pairs after one warm-up pair
    step_Gs: tuple = (4, 16)  # 3: the two group sizes compared
    step_T: int = 64  # 3
    step_reps: int = 3  # 3: timed steps per G after one warm-up step each
    trl_G: int = 4  # 4: the settings of the TRL anchor measured earlier on this machine (5.5 s/step)
    trl_T: int = 32  # 4
    trl_warmup: int = 1  # 4: steps run but not timed
    trl_steps: int = 5  # 4: timed steps
    image_pixels: int = 56 * 56  # 4: image prompts resized to 56x56 for both trainers
    beta: float = 0.04  # 3, 4: KL weight (train.py's GRPO default), so both load a reference model
    learning_rate: float = 1e-4  # 3, 4: train.py's RL default for the tiny model


FULL = Sizes()
QUICK = Sizes(logprob_G=2, logprob_T=32, rollout_G=2, rollout_T=8, rollout_reps=1, step_Gs=(2, 4), step_T=4, step_reps=1,
              trl_G=2, trl_T=4, trl_warmup=1, trl_steps=1)  # fmt: skip
GOALS = {"logprob": 0.25, "rollout": 1.10, "step": 3.0, "trl_time": 0.7, "trl_memory": 1.0}


def prepare_assets():
    """The tiny model (as train.py's prepare_assets builds it) and a small synthetic set with images."""
    import data
    import model as model_lib

    if not os.path.isdir(MODEL_DIR):
        model_lib.build_tiny(MODEL_DIR, seed=0)
    if not os.path.isfile(os.path.join(SYNTH_DIR, "train.json")):
        data.synth(SYNTH_DIR, 12, 2, seed=0, cfg=data.SynthConfig(image_frac=0.5))
    os.makedirs(OUT_DIR, exist_ok=True)


def bench_record(kind):
    """The first synthetic record of a kind ('video' or 'image') with a multiple-choice or numerical question."""
    import data

    records, _ = data.load_records(os.path.join(SYNTH_DIR, "train.json"))
    return next(r for r in records if r["data_type"] == kind)


_processors = {}


def tiny_processor():
    """The tiny model's processor, loaded once per process (building the 151,936-token tokenizer costs
    seconds, and the processor holds no state that a measurement changes)."""
    import model as model_lib

    if MODEL_DIR not in _processors:
        _processors[MODEL_DIR] = model_lib.load_processor(MODEL_DIR)
    return _processors[MODEL_DIR]


def tiny_model():
    """Fresh tiny weights (a measurement trains them), in train mode as train.py uses the policy. The
    weights may come memory-mapped from the safetensors file; reading them once makes them resident, so
    that a memory window opened afterwards does not count them.

    The generation config suppresses the vision placeholders that train.sample_group suppresses (a sampled
    <|image_pad|> makes the log-prob pass fail), so that comparison 2's bare generate samples under the
    same rule and gives the same tokens. TRL's GRPOTrainer suppresses the image one."""
    import model as model_lib

    model = model_lib.load_model(MODEL_DIR).train()
    model.generation_config.suppress_tokens = model_lib.vision_placeholder_ids(model.config)
    for param in model.parameters():
        param.detach().sum()
    return model


def rl_args(G, T, **overrides):
    """train.py's resolved configuration for the tiny model, as `train.py --algo grpo` would run it."""
    import train

    fields = dict(algo="grpo", model=MODEL_DIR, data=os.path.join(SYNTH_DIR, "train.json"), num_generations=G,
                  max_completion_length=T, output_dir=OUT_DIR)  # fmt: skip
    return train.Args(**(fields | overrides)).resolve()


# -----------------------------------------------------------------------------
# 2. Measuring memory and time
#
# Peak memory on CPU is the process's resident set. Linux keeps its high-water mark (VmHWM, the same number
# as getrusage's ru_maxrss) and lets a process reset it to the current RSS by writing "5" to
# /proc/self/clear_refs. A worker loads what it needs, resets the mark, runs the measured code, and reports
# peak RSS minus the RSS at the reset: the memory that code added on top of what was already resident.
# Where the reset is not allowed, the mark covers the whole process life and the baseline RSS is still
# subtracted (an upper bound; never hit on this machine). Large tensors are mmap'd by the allocator and
# returned on free, so RSS follows live tensors closely.


def rss_kib(field="VmRSS"):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kibibytes on Linux


def reset_peak():
    """Start a new peak-RSS window; returns the RSS (KiB) it starts from."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    return rss_kib()


def peak_mib_since(baseline_kib):
    return (rss_kib("VmHWM") - baseline_kib) / 1024


# -----------------------------------------------------------------------------
# 3. Workers: each runs in a fresh process and reports one JSON result


def worker_logprob(variant, G, T):
    """Comparison 1. Forward + backward of per-token log-probs of G random completions of T tokens after a
    video prompt: model.py's LogProbs (video encoded once, LM head in checkpointed chunks) or the naive
    path (G copies of the prompt, logits at every position, fp32 log_softmax, gather)."""
    import torch

    import data
    import model as model_lib

    model, processor = tiny_model(), tiny_processor()
    record, budget = bench_record("video"), processor.video_processor.size
    visual = data.load_visual(record, 4, budget["shortest_edge"], budget["longest_edge"])
    text = data.prompt_text(processor, record)
    completions = torch.randint(
        0, model_lib.NUM_BPE_TOKENS, (G, T), generator=torch.Generator().manual_seed(0)
    )  # [G, T]
    if variant == "ours":
        prompt = data.processor_inputs(processor, [text], [visual])
        policy = model_lib.LogProbs(model)  # the chunk size train.py uses (--logprob_chunk 256)
    else:
        batch = data.processor_inputs(processor, [text] * G, [visual] * G)
        P = batch["input_ids"].shape[1]
        ids = torch.cat([batch["input_ids"], completions], 1)  # [G, P+T]
        token_types = torch.cat([batch["mm_token_type_ids"], torch.zeros_like(completions)], 1)  # [G, P+T]
        extra = {k: v for k, v in batch.items() if k not in ("input_ids", "attention_mask", "mm_token_type_ids")}
    baseline = reset_peak()
    t0 = time.perf_counter()
    if variant == "ours":
        logp = policy([(prompt, completions)])  # [G, T]
    else:
        logits = model(
            input_ids=ids, attention_mask=torch.ones_like(ids), mm_token_type_ids=token_types, use_cache=False, **extra
        ).logits  # [G, P+T, V]
        logp = (
            torch.log_softmax(logits[:, P - 1 : P + T - 1].float(), -1).gather(-1, completions[..., None]).squeeze(-1)
        )  # [G, T]
        del logits
    logp.mean().backward()
    seconds = time.perf_counter() - t0
    peak = peak_mib_since(baseline)
    grads = {name: p.grad for name, p in model.named_parameters() if p.grad is not None}
    torch.save({"logp": logp.detach(), "grads": grads}, os.path.join(OUT_DIR, f"logprob-{variant}.pt"))
    return {"peak_mib": peak, "seconds": seconds}


def worker_rollout(G, T, reps):
    """Comparison 2. Our rollout (train.sample_group: prompt text, processor, generate, end-of-turn mask,
    decode; then train.score_group: rewards) vs a bare model.generate(do_sample=True) on the same processor
    inputs, with the same seed before each call. The two draw from the same temperature + top-p distribution
    with different random numbers (model.NucleusSampler), so their tokens differ. Video decoding is data
    loading and is in neither. Pairs alternate which side runs first; the first pair is a warm-up."""
    import torch

    import data
    import train

    model, processor = tiny_model(), tiny_processor()
    args = rl_args(G, T)
    record, budget = bench_record("video"), processor.video_processor.size
    visual = data.load_visual(record, args.num_frames, budget["shortest_edge"], budget["longest_edge"])
    inputs = data.processor_inputs(processor, [data.prompt_text(processor, record)], [visual])
    P = inputs["input_ids"].shape[1]

    def ours(seed):
        torch.manual_seed(seed)
        t0 = time.perf_counter()
        group = train.score_group(train.sample_group(model, processor, record, visual, G, args), args)
        return time.perf_counter() - t0, group.completion_ids

    def bare(seed):
        torch.manual_seed(seed)
        t0 = time.perf_counter()
        with torch.no_grad():
            out = model.generate(**inputs, do_sample=True, temperature=args.temperature, top_p=args.top_p, top_k=0,
                                 max_new_tokens=T, num_return_sequences=G, use_cache=True)  # fmt: skip
        return time.perf_counter() - t0, out[:, P:]

    model.eval()
    times, lengths = {"ours": [], "bare": []}, []
    for rep in range(reps + 1):
        order = [("ours", ours), ("bare", bare)] if rep % 2 == 0 else [("bare", bare), ("ours", ours)]
        ids = {}
        for name, fn in order:
            seconds, ids[name] = fn(seed=1000 + rep)
            if rep > 0:
                times[name].append(seconds)
        lengths.append(ids["ours"].shape[1])
    return {"ours_s": sum(times["ours"]) / reps, "bare_s": sum(times["bare"]) / reps, "new_tokens": max(lengths)}  # fmt: skip


class OurTrainer:
    """train.py's set-up for one process (policy, frozen reference, AdamW, constant schedule, accelerate),
    and `step`: one prompt through train.py's own rollout and update functions (batch_size 1, grad_accum 1)."""

    def __init__(self, args, pixels=None):
        import torch

        import model as model_lib
        import train

        self.accelerator = train.new_accelerator(args)
        torch.manual_seed(0)  # sampling seed (TRL's side: GRPOConfig(seed=0))
        model, self.processor, self.pixels = tiny_model(), tiny_processor(), pixels
        policy = model_lib.LogProbs(model, args.logprob_chunk)
        optimizer, scheduler = train.optimizer_and_schedule(policy, args)
        self.policy, self.optimizer, self.scheduler = self.accelerator.prepare(policy, optimizer, scheduler)
        self.ref = train.reference_logprobs(
            self.accelerator, self.policy, None, lambda: model_lib.load_model(MODEL_DIR), args
        )  # None when beta is 0
        self.model = self.accelerator.unwrap_model(self.policy).model
        self.state = train.TrainState(args.da_window)

    def step(self, record, args):
        """One rollout + update; returns (seconds, mean completion length)."""
        import torch

        import data
        import train

        t0 = time.perf_counter()
        size = (
            self.processor.video_processor.size
            if record["data_type"] == "video"
            else self.processor.image_processor.size
        )
        budget = (self.pixels, self.pixels) if self.pixels else (size["shortest_edge"], size["longest_edge"])
        visual = data.load_visual(record, args.num_frames, *budget)
        timing = {"generate": 0.0, "score": 0.0, "logprob": 0.0, "update": 0.0}
        groups, _ = train.collect_rollouts(
            self.model, self.processor, [(record, visual, torch.Generator().manual_seed(0))], None, args, timing
        )
        mb = train.rollout_tensors(groups, self.ref, args, self.accelerator, timing, self.policy)
        train.optimizer_updates(
            self.accelerator, self.policy, self.optimizer, self.scheduler, [mb], args, self.state, timing
        )
        return time.perf_counter() - t0, groups[0].mask.sum(1).float().mean().item()


def worker_step(Gs, T, reps):
    """Comparison 3. Full training steps on one video prompt at each G in Gs (one trainer, the steps of the
    two sizes interleaved so that any drift in machine load hits both); one warm-up step per size."""
    args = {G: rl_args(G, T) for G in Gs}
    trainer = OurTrainer(args[Gs[0]])
    record = bench_record("video")
    times, lengths = {G: [] for G in Gs}, {G: [] for G in Gs}
    for rep in range(reps + 1):
        for G in Gs if rep % 2 == 0 else Gs[::-1]:
            seconds, length = trainer.step(record, args[G])
            if rep > 0:
                times[G].append(seconds)
                lengths[G].append(length)
    return {str(G): {"step_s": sum(times[G]) / reps, "mean_length": sum(lengths[G]) / reps} for G in Gs}


def image_prompt(pixels):
    """The image record and its picture resized to the budget exactly as our data path does it."""
    import data

    record = bench_record("image")
    return record, data.load_visual(record, 2, pixels, pixels)


def worker_grpo_ours(G, T, warmup, steps, pixels, beta, learning_rate):
    """Comparison 4, our side: train.py's GRPO step on an image prompt. Memory: peak RSS over loading the
    policy and the reference model, building the optimizer and running every step, minus the RSS after
    the imports (the TRL side is measured the same way)."""
    import accelerate  # noqa: F401  (every import before the baseline, as on the TRL side)
    import torch  # noqa: F401
    import transformers  # noqa: F401

    import data  # noqa: F401
    import model  # noqa: F401
    import train  # noqa: F401

    baseline = reset_peak()
    args = rl_args(G, T, beta=beta, learning_rate=learning_rate)
    trainer = OurTrainer(args, pixels=pixels)
    record, _ = image_prompt(pixels)
    times, lengths = [], []
    for i in range(warmup + steps):
        seconds, length = trainer.step(record, args)
        if i >= warmup:
            times.append(seconds)
            lengths.append(length)
    return {"step_s": sum(times) / steps, "peak_mib": peak_mib_since(baseline), "mean_length": sum(lengths) / steps}


def worker_grpo_trl(G, T, warmup, steps, pixels, beta, learning_rate):
    """Comparison 4, TRL's side: GRPOTrainer with the settings of our step (one prompt of G completions per
    optimizer step, T new tokens, temperature 1.0, top-p 0.95, same beta, AdamW at the same constant
    learning rate, no weight decay, clipping at 1.0, per-sequence loss normalisation as ours, fp32, no
    gradient checkpointing), the same image pixels, prompt text and rewards. A step is timed from the end
    of the previous step to the end of this one (data loading included, as on our side)."""
    import torch  # noqa: F401
    import transformers  # noqa: F401
    from datasets import Dataset
    from PIL import Image
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    import data
    import model  # noqa: F401  (as on our side)
    import rewards

    baseline = reset_peak()
    record, visual = image_prompt(pixels)
    picture = Image.fromarray(visual.frames[0].permute(1, 2, 0).numpy())  # the very pixels our side gets
    row = {
        "prompt": data.build_messages(record),
        "image": picture,
        "solution": record["solution"],
        "problem_type": record["problem_type"],
    }
    dataset = Dataset.from_list([row] * (warmup + steps))

    def reward(completions, solution, problem_type, **kwargs):  # train.score_group's accuracy + format
        texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
        return [
            rewards.accuracy_reward(t, s, p) + rewards.format_reward(t)
            for t, s, p in zip(texts, solution, problem_type)
        ]

    class StepClock(TrainerCallback):
        def __init__(self):
            self.marks, self.lengths = [], []

        def on_train_begin(self, args, state, control, **kwargs):
            self.marks.append(time.perf_counter())

        def on_step_end(self, args, state, control, **kwargs):
            self.marks.append(time.perf_counter())

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "completions/mean_length" in logs:
                self.lengths.append(logs["completions/mean_length"])

    config = GRPOConfig(
        output_dir=os.path.join(OUT_DIR, "trl"), per_device_train_batch_size=G, gradient_accumulation_steps=1,
        num_generations=G, max_completion_length=T, temperature=1.0, top_p=0.95, top_k=0, beta=beta,
        learning_rate=learning_rate, lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0, max_grad_norm=1.0,
        optim="adamw_torch", loss_type="grpo", scale_rewards="group", num_iterations=1, max_steps=warmup + steps,
        gradient_checkpointing=False, bf16=False, use_cpu=True, logging_steps=1, save_strategy="no", report_to="none",
        disable_tqdm=True, shuffle_dataset=False, dataloader_num_workers=0, seed=0,
    )  # fmt: skip
    processor = tiny_processor()  # model.load_processor: left padding, the tiny model's pixel budgets
    clock = StepClock()
    trainer = GRPOTrainer(model=MODEL_DIR, reward_funcs=reward, args=config, train_dataset=dataset,
                          processing_class=processor, callbacks=[clock])  # fmt: skip
    trainer.train()
    times = [b - a for a, b in zip(clock.marks, clock.marks[1:])][warmup:]
    measured = clock.lengths[warmup:] or clock.lengths
    return {"step_s": sum(times) / len(times), "peak_mib": peak_mib_since(baseline),
            "mean_length": sum(measured) / len(measured) if measured else float("nan"), "trl": __import__("trl").__version__}  # fmt: skip


WORKERS = {
    "logprob": worker_logprob,
    "rollout": worker_rollout,
    "step": worker_step,
    "grpo_ours": worker_grpo_ours,
    "grpo_trl": worker_grpo_trl,
}


# -----------------------------------------------------------------------------
# 4. Running the workers and printing the table


def run_worker(name, in_process=False, **kwargs):
    """Run one worker in a fresh interpreter; its result dict, or {'error': ...} with the tail of its stderr.
    in_process (--quick only): call it here instead, saving the ~10 s of imports and tokenizer per worker;
    its memory window then starts from whatever earlier workers left resident."""
    if in_process:
        import contextlib
        import gc
        import io

        gc.collect()
        t0 = time.perf_counter()
        try:
            with contextlib.redirect_stdout(
                io.StringIO()
            ):  # TRL prints its logs; a subprocess's stdout is not shown either
                result = WORKERS[name](**kwargs)
        except Exception as e:  # report, as a failed subprocess would be
            return {"error": f"{name} worker raised {type(e).__name__}: {e}"}
        return result | {"wall_s": time.perf_counter() - t0}
    cmd = [sys.executable, os.path.abspath(__file__), "worker", name, json.dumps(kwargs)]
    t0, cpu0 = time.perf_counter(), children_cpu_s()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"{name} worker exited {proc.returncode}: {tail}"}
    result = json.loads(lines[-1][len("RESULT ") :])
    return result | {"wall_s": time.perf_counter() - t0, "cpu_s": children_cpu_s() - cpu0}


def children_cpu_s():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def trl_available():
    try:
        import trl  # noqa: F401
    except ImportError:
        return False
    return True


def compare_logprobs():
    """Max abs difference of the two log-prob passes' results and gradients (saved by the workers)."""
    import torch

    ours, naive = (torch.load(os.path.join(OUT_DIR, f"logprob-{v}.pt")) for v in ("ours", "naive"))
    logp_diff = (ours["logp"] - naive["logp"]).abs().max().item()
    grad_diff = max((ours["grads"][k] - naive["grads"][k]).abs().max().item() for k in ours["grads"])
    grad_scale = max(g.abs().max().item() for g in naive["grads"].values())
    return logp_diff, grad_diff, grad_scale


def row(figure, ours, baseline, ratio, goal, met):
    return f"| {figure} | {ours} | {baseline} | {ratio} | {goal} | {met} |"


def run_all(sizes, quick):
    import torch

    def yes(ok):  # the goals are for the full sizes; --quick only shows that every path runs
        return "n/a (--quick)" if quick else ("yes" if ok else "**no**")

    prepare_assets()
    t_start = time.perf_counter()
    lines = ["| figure | ours | baseline | ratio | goal | met? |", "|---|---|---|---|---|---|"]
    notes, spent = [], []

    def measure(name, in_process, **kwargs):  # run_worker, noting each worker's time
        result = run_worker(name, in_process, **kwargs)
        label = name + (f" {kwargs['variant']}" if "variant" in kwargs else "")
        spent.append(
            f"{label} {result.get('wall_s', float('nan')):.0f} s"
            + (f" (CPU {result['cpu_s']:.0f} s)" if "cpu_s" in result else "")
        )
        return result

    # 1. log-prob pass memory
    G, T = sizes.logprob_G, sizes.logprob_T
    res = {v: measure("logprob", quick, variant=v, G=G, T=T) for v in ("ours", "naive")}
    if any("error" in r for r in res.values()):
        lines.append(
            row(f"1. log-prob pass peak memory (G={G}, T={T})", "-", "-", "-", f"<= {GOALS['logprob']}", "failed")
        )
        notes += [r["error"] for r in res.values() if "error" in r]
    else:
        ratio = res["ours"]["peak_mib"] / res["naive"]["peak_mib"]
        lines.append(row(f"1. log-prob pass peak memory, fwd+bwd (G={G}, T={T}, V=151,936)", f"{res['ours']['peak_mib']:.0f} MiB",
                         f"{res['naive']['peak_mib']:.0f} MiB (naive fp32 log_softmax)", f"{ratio:.3f}", f"<= {GOALS['logprob']}", yes(ratio <= GOALS["logprob"])))  # fmt: skip
        logp_diff, grad_diff, grad_scale = compare_logprobs()
        lines.append(
            row(
                "1b. max abs diff of per-token log-probs", f"{logp_diff:.2e}", "", "", "<= 1e-5", yes(logp_diff <= 1e-5)
            )
        )
        lines.append(
            row(
                "1c. max abs diff of parameter gradients",
                f"{grad_diff:.2e}",
                f"(largest gradient {grad_scale:.2e})",
                "",
                "reported",
                "",
            )
        )
        notes.append(f"1: pass time {res['ours']['seconds']:.1f} s (ours) vs {res['naive']['seconds']:.1f} s (naive)")

    # 2. rollout overhead
    G, T = sizes.rollout_G, sizes.rollout_T
    r = measure("rollout", quick, G=G, T=T, reps=sizes.rollout_reps)
    if "error" in r:
        lines.append(
            row(f"2. rollout time (G={G}, {T} new tokens)", "-", "-", "-", f"<= {GOALS['rollout']}x", "failed")
        )
        notes.append(r["error"])
    else:
        ratio = r["ours_s"] / r["bare_s"]
        lines.append(row(f"2. rollout time, video prompt (G={G}, {T} new tokens, mean of {sizes.rollout_reps})", f"{r['ours_s']:.2f} s",
                         f"{r['bare_s']:.2f} s (bare generate)", f"{ratio:.3f}x", f"<= {GOALS['rollout']}x", yes(ratio <= GOALS["rollout"])))  # fmt: skip
        notes.append(
            f"2: up to {r['new_tokens']} new tokens per completion; both sides sample the same distribution with different "
            "random numbers (tests/test_model.py::test_nucleus_sampler_draws_from_the_nucleus_distribution)"
        )

    # 3. step time vs G
    Gs, T = sizes.step_Gs, sizes.step_T
    r = measure("step", quick, Gs=list(Gs), T=T, reps=sizes.step_reps)
    if "error" in r:
        lines.append(row(f"3. step time G={Gs[1]} / G={Gs[0]}", "-", "-", "-", f"<= {GOALS['step']}", "failed"))
        notes.append(r["error"])
    else:
        small, large = r[str(Gs[0])], r[str(Gs[1])]
        ratio = large["step_s"] / small["step_s"]
        lines.append(row(f"3. step time, video prompt, G={Gs[1]} vs G={Gs[0]} ({T} new tokens, mean of {sizes.step_reps})",
                         f"{large['step_s']:.2f} s", f"{small['step_s']:.2f} s", f"{ratio:.2f}", f"<= {GOALS['step']:.0f}", yes(ratio <= GOALS["step"])))  # fmt: skip
        notes.append(
            f"3: mean completion length {large['mean_length']:.1f} (G={Gs[1]}), {small['mean_length']:.1f} (G={Gs[0]}) tokens"
        )

    # 4. against TRL
    kw = dict(G=sizes.trl_G, T=sizes.trl_T, warmup=sizes.trl_warmup, steps=sizes.trl_steps, pixels=sizes.image_pixels,
              beta=sizes.beta, learning_rate=sizes.learning_rate)  # fmt: skip
    settings = (f"G={kw['G']}, {kw['T']} new tokens, 56x56 image, beta {kw['beta']}, AdamW lr {kw['learning_rate']}, fp32, "
                f"{kw['warmup']} warm-up step(s) excluded, mean of {kw['steps']}")  # fmt: skip
    if not trl_available():
        lines.append(row("4. GRPO step vs TRL GRPOTrainer", "-", "-", "-", "<= 0.7x time, <= 1.0x memory", "skipped"))
        notes.append(
            f"4: SKIPPED: trl is not installed. Install the pinned version with `pip install -r requirements-bench.txt` ({TRL_PIN})."
        )
    else:
        ours, trl = measure("grpo_ours", quick, **kw), measure("grpo_trl", quick, **kw)
        if "error" in ours or "error" in trl:
            lines.append(
                row("4. GRPO step vs TRL GRPOTrainer", "-", "-", "-", "<= 0.7x time, <= 1.0x memory", "failed")
            )
            notes += [x["error"] for x in (ours, trl) if "error" in x]
        else:
            t_ratio, m_ratio = ours["step_s"] / trl["step_s"], ours["peak_mib"] / trl["peak_mib"]
            lines.append(row(f"4a. GRPO step time, image prompt, vs TRL {trl['trl']} GRPOTrainer", f"{ours['step_s']:.2f} s",
                             f"{trl['step_s']:.2f} s", f"{t_ratio:.2f}x", f"<= {GOALS['trl_time']}x", yes(t_ratio <= GOALS["trl_time"])))  # fmt: skip
            lines.append(row("4b. GRPO peak memory above the imports", f"{ours['peak_mib']:.0f} MiB", f"{trl['peak_mib']:.0f} MiB",
                             f"{m_ratio:.2f}x", f"<= {GOALS['trl_memory']}x", yes(m_ratio <= GOALS["trl_memory"])))  # fmt: skip
            notes.append(
                f"4: {settings}; mean completion length {ours['mean_length']:.1f} (ours), {trl['mean_length']:.1f} (TRL) tokens"
            )

    print(f"\nbench.py{' --quick' if quick else ''}: tiny Qwen2.5-VL ({MODEL_DIR}), torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {os.cpu_count()} CPUs\n")  # fmt: skip
    print("\n".join(lines))
    print("\nFootnotes:")
    if quick:
        print("- --quick: toy sizes, every worker in this one process: the numbers only show that each path runs.")
    print(
        "- Peak memory: each variant in a fresh process; peak RSS (VmHWM, reset through /proc/self/clear_refs) minus the RSS"
    )
    print(
        "  when the window opened: after loading model and inputs for 1, after the imports (so weights, reference model,"
    )
    print("  optimizer and activations count) for 4.")
    print("- 2: ours = train.sample_group (prompt, processor, generate, mask, decode) + train.score_group (rewards);")
    print(
        "  the baseline is model.generate on ready processor inputs with the same seed. Video decoding is in neither."
    )
    print(
        "- 3, 4: ours = train.py's step (rollout, reference log-probs, loss, backward, clipping, AdamW step), one prompt."
    )
    for note in notes:
        print(f"- {note}")
    print(f"- wall time per worker: {', '.join(spent)}")
    print(f"\ntotal wall time {time.perf_counter() - t_start:.0f} s")


# -----------------------------------------------------------------------------
# 5. The memory plan for real checkpoints
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
    ("params", "parameters (B)"), ("vision_tokens", "video tokens per row"), ("tokens", "tokens per row (prompt + completion)"),
    ("weights", "weights (full: fp32 master, sharded; LoRA: bf16 frozen base)"), ("grads", "gradients (full: fp32 sharded; LoRA: fp32 adapters)"),
    ("optimizer", "AdamW m + v (full: fp32 sharded; LoRA: fp32 adapters + m + v)"),
    ("reference", "reference model (full: bf16 sharded; LoRA: adapter off)"), ("gathered", "ZeRO-3 / FSDP gathered parameters"),
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
    for pixels, label in ((768 * 28 * 28, "the video processor's default max_pixels 768*28*28"),
                          (128 * 28 * 28, "train.py's max_pixels for real checkpoints, 128*28*28 (Video-R1)")):  # fmt: skip
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
        fits = [f"{'yes' if p['total_ours'] / GiB <= budget[s] else 'no'} / {'yes' if p['total_naive'] / GiB <= budget[s] else 'no'}"
                for p, (_, s, _) in zip(plans, columns)]  # fmt: skip
        print("| fits in the GPU (ours / naive) | " + " | ".join(fits) + " |")
    print("""
Assumptions:
- Parameters counted from the configs (see bench.py section 5): 3B 3.75 B (tied 151,936 x 2048 embedding),
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
# 6. The GPU check: `python bench.py gpu`, one prepared run on a machine with a GPU and no network
#
# A random-weight Qwen2.5-VL at the 3B model's published dimensions (config.json of
# Qwen/Qwen2.5-VL-3B-Instruct: hidden 2048, intermediate 11008, 36 layers, 16 heads / 2 KV heads,
# mrope_section [16, 24, 24], rope_theta 1e6, max_position_embeddings 128000, tied embeddings; vision depth 32,
# hidden 1280, intermediate 3420, 16 heads, full attention at blocks 7/15/23/31), the real tokenizer, 16-frame
# synthetic videos drawn in memory (no mp4, no PyAV) at Video-R1's training budget of 128*28*28 pixels a frame,
# G = 8, bf16 compute over fp32 master weights, gradient checkpointing, the vision encoder frozen (the merger
# trains). Each algorithm runs train.py's own rollout and update functions for a few steps.

QWEN25_VL_3B = dict(hidden_size=2048, intermediate_size=11008, num_layers=36, num_heads=16, num_kv_heads=2, mrope_section=(16, 24, 24),
                    max_position_embeddings=128000, vision_depth=32, vision_hidden_size=1280, vision_heads=16,
                    vision_intermediate_size=3420, fullatt_block_indexes=(7, 15, 23, 31))  # fmt: skip
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
    import numpy as np
    import torch

    import data

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


def gpu_check(argv):
    import argparse
    import copy
    import gc

    import torch
    from transformers import Qwen2_5_VLForConditionalGeneration

    import model as model_lib
    import train

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
        help="the built-in tiny model's sizes, G = 2, 8 tokens, on the CPU if there is no GPU: the script's own smoke test",
    )
    opts = parser.parse_args(argv)
    t_start = time.perf_counter()
    cuda = torch.cuda.is_available()
    if not cuda and not opts.scaled_down:
        raise SystemExit(
            "bench.py gpu: no CUDA GPU here. It checks a random Qwen2.5-VL-3B on one GPU (80-140 GB); "
            "`python bench.py gpu --scaled_down` runs the same script at the tiny model's sizes on the CPU"
        )
    device = torch.device("cuda" if cuda else "cpu")
    if opts.scaled_down:
        dims, G, T, frames, (height, width), (min_pixels, max_pixels) = (
            {},
            2,
            min(8, opts.max_new_tokens),
            4,
            (56, 112),
            (56 * 56, 56 * 112),
        )
    else:
        dims, G, T, frames, (height, width), (min_pixels, max_pixels) = (
            QWEN25_VL_3B,
            8,
            opts.max_new_tokens,
            16,
            (224, 448),
            (4 * 28 * 28, 128 * 28 * 28),
        )
    config = model_lib.tiny_config(**dims)
    processor = model_lib.build_processor(min_pixels=min_pixels, max_pixels=max_pixels)
    prompts = gpu_prompts(opts.steps, frames, height, width, min_pixels, max_pixels)
    video_tokens = int(
        prompts[0][1].frames.shape[0] // 2 * prompts[0][1].frames.shape[-2] * prompts[0][1].frames.shape[-1] // 28**2
    )
    dtype = "auto" if cuda else "fp32"

    def settings(name, extra, max_new_tokens):
        algo = name.split("+")[0]
        return train.Args(
            algo=algo,
            model="(random weights)",
            dtype=dtype,
            num_generations=G,
            num_shuffled=G // 2,
            max_completion_length=max_new_tokens,
            num_frames=frames,
            batch_size=1,
            max_steps=opts.steps,
            gradient_checkpointing=True,
            freeze_vision=True,
            learning_rate=1e-5 if algo == "sft" else 1e-6,
            beta=(0.1 if algo == "reg_grpo" else 0.04) if algo != "sft" else 0.0,
            output_dir=os.path.join(OUT_DIR, "gpu"),
            **extra,
        )

    accelerator = train.new_accelerator(settings("grpo", {}, T))
    compute = train.compute_dtype(settings("grpo", {}, T))

    def sync():
        if cuda:
            torch.cuda.synchronize()

    def peak_gib():
        return torch.cuda.max_memory_allocated() / GiB if cuda else 0.0

    def reset_peak():
        if cuda:
            torch.cuda.reset_peak_memory_stats()

    def build(lora):
        torch.manual_seed(0)
        with torch.device(device):
            model = Qwen2_5_VLForConditionalGeneration(config)  # fp32 random weights, as train.py holds a trained model
        model.generation_config = model_lib.generation_config()
        model_lib.configure_training(model, gradient_checkpointing=True, freeze_vision=True)
        if lora:  # train.py's rule: the frozen base in the compute dtype, fp32 adapters
            model.to(compute)
        return model

    print(
        f"bench.py gpu: {torch.cuda.get_device_name() if cuda else 'CPU (scaled down)'}, torch {torch.__version__}, "
        f"compute {str(compute).removeprefix('torch.')} over fp32 master weights, gradient checkpointing, vision encoder frozen"
    )
    print(
        f"model: {'Qwen2.5-VL-3B dimensions' if dims else 'tiny dimensions'}, random weights; G = {G}, {frames} frames of {height}x{width} "
        f"({video_tokens} video tokens), batch 1 prompt, {opts.steps} steps per algorithm",
        flush=True,
    )

    if cuda and not opts.scaled_down:  # the completion length that fits the budget: time 32 tokens of G rows first
        model = build(False)
        args = settings("grpo", {}, 32)
        with torch.no_grad(), accelerator.autocast():
            train.sample_groups(model, processor, [(r, v, None) for r, v, _ in prompts[:1]], G, args)  # warm-up
            sync()
            t0 = time.perf_counter()
            train.sample_groups(model, processor, [(r, v, None) for r, v, _ in prompts[:1]], G, args)
            sync()
        per_token = (time.perf_counter() - t0) / 32
        del model
        gc.collect()
        torch.cuda.empty_cache()
        calls = sum(GENERATE_CALLS.values()) * opts.steps
        spare = (
            opts.budget_s - (time.perf_counter() - t_start) - 25 * len(GPU_ALGOS)
        )  # ~25 s per algorithm for building, log-probs, updates
        fits = int(spare / (calls * per_token))
        if fits < T:
            T = max(32, fits)
        print(
            f"generation: {per_token * 1000:.1f} ms per token for {G} rows; {calls:g} generate calls in all -> completions of {T} tokens"
            + (
                ""
                if T == opts.max_new_tokens
                else f" (cut from {opts.max_new_tokens} to fit --budget_s {opts.budget_s:g})"
            ),
            flush=True,
        )

    plan_cache = {}
    rows = []
    for name, extra in GPU_ALGOS:
        args = settings(name, extra, T)
        lora = bool(args.lora_r)
        model = build(lora)
        peft_model = None
        if lora:
            peft_model = model_lib.add_lora(model, args.lora_r, args.lora_alpha, 0.0, model_lib.LLM_LORA_TARGETS)
            model = peft_model.get_base_model()
        model.train()
        policy = model_lib.LogProbs(model, args.logprob_chunk)
        optimizer, scheduler = train.optimizer_and_schedule(policy, args)
        policy, optimizer, scheduler = accelerator.prepare(policy, optimizer, scheduler)
        unwrapped = accelerator.unwrap_model(policy).model
        ref = (
            train.reference_logprobs(
                accelerator, policy, peft_model, lambda: copy.deepcopy(unwrapped).to(compute).eval(), args
            )
            if args.algo != "sft"
            else None
        )
        trainable = {n: p.detach().clone() for n, p in unwrapped.named_parameters() if p.requires_grad}
        state = train.TrainState(args.da_window)
        times, peaks = [], {"rollout": 0.0, "update": 0.0}
        for record, visual, generator in prompts:
            timing = {"generate": 0.0, "score": 0.0, "logprob": 0.0, "update": 0.0}
            reset_peak()
            sync()
            t0 = time.perf_counter()
            with accelerator.autocast():
                if args.algo == "sft":
                    groups = [train.sft_group(processor, record, visual, device)]
                else:
                    groups, _ = train.collect_rollouts(
                        unwrapped, processor, [(record, visual, generator)], None, args, timing
                    )
                    for group in groups:
                        group.rewards = probe_rewards(group).cpu()
                sync()
                t1 = time.perf_counter()
                mb = train.rollout_tensors(groups, ref, args, accelerator, timing, policy)
                sync()
            t2 = time.perf_counter()
            peaks["rollout"] = max(peaks["rollout"], peak_gib())
            reset_peak()
            loss, _, grad_norm = train.optimizer_updates(
                accelerator, policy, optimizer, scheduler, [mb], args, state, timing
            )
            sync()
            t3 = time.perf_counter()
            peaks["update"] = max(peaks["update"], peak_gib())
            times.append(
                {
                    "generate": t1 - t0,
                    "logprob": t2 - t1,
                    "update": t3 - t2,
                    "tokens": int(groups[0].mask.sum(1).max()),
                    "grad_norm": grad_norm,
                }
            )
        moved = {
            n: (p.detach() - trainable[n]).abs().max().item() for n, p in unwrapped.named_parameters() if n in trainable
        }
        still = sum(1 for v in moved.values() if v == 0)
        key = ("lora" if lora else "full", args.algo != "sft")
        if key not in plan_cache:
            plan_cache[key] = (
                plan(
                    "3B",
                    "lora" if lora else "full",
                    True,
                    G=G if args.algo != "sft" else 1,
                    frames=frames,
                    T=T,
                    gpus=1,
                    frozen_vision=True,
                    max_pixels=max_pixels,
                    reference=args.algo != "sft",
                )
                if dims
                else None
            )
        predicted = plan_cache[key]
        last = times[-1]
        rows.append((name, last, times[0], peaks, predicted, len(moved) - still, len(moved), max(moved.values())))
        print(
            f"{name}: step {len(times)}: generate {last['generate']:.1f} s, log-probs {last['logprob']:.1f} s, update {last['update']:.1f} s "
            f"(step 1: {sum(times[0][k] for k in ('generate', 'logprob', 'update')):.1f} s); completions {last['tokens']} tokens; "
            + (
                f"peak {peaks['rollout']:.1f} GiB rollout / {peaks['update']:.1f} GiB update"
                if cuda
                else "peak memory: no GPU"
            )
            + (
                f" (plan {predicted['rollout_total'] / GiB:.1f} / {predicted['total_ours'] / GiB:.1f})"
                if predicted
                else ""
            )
            + f"; {len(moved) - still} of {len(moved)} trainable tensors moved (max |dw| {max(moved.values()):.2e}), grad norm {last['grad_norm']:.3g}",
            flush=True,
        )
        accelerator.free_memory(policy, optimizer, scheduler)
        del policy, optimizer, scheduler, unwrapped, ref, model, peft_model, trainable, mb, groups
        gc.collect()
        if cuda:
            torch.cuda.empty_cache()

    print(
        "\n| algorithm | generate s | log-probs s | update s | completion tokens | peak GiB rollout (plan) | peak GiB update (plan) | tensors moved |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, last, first, peaks, predicted, n_moved, n_trainable, max_dw in rows:
        plan_r = f" ({predicted['rollout_total'] / GiB:.1f})" if predicted else ""
        plan_u = f" ({predicted['total_ours'] / GiB:.1f})" if predicted else ""
        rollout, update = (f"{peaks[k]:.1f}" if cuda else "-" for k in ("rollout", "update"))
        print(
            f"| {name} | {last['generate']:.1f} | {last['logprob']:.1f} | {last['update']:.1f} | {last['tokens']} | {rollout}{plan_r} | "
            f"{update}{plan_u} | {n_moved} / {n_trainable} (max {max_dw:.1e}) |"
        )
    print(
        f"\nwall time {time.perf_counter() - t_start:.0f} s; the last step of each algorithm; rewards are bench.py's probe reward (a random model earns none)"
    )
    failed = [name for name, *_, n_moved, n_trainable, _ in rows if n_moved == 0]
    if failed:
        raise SystemExit(f"weights did not move: {', '.join(failed)}")


# -----------------------------------------------------------------------------
# 7. Learning signal before training: `python bench.py groups` (how many groups would carry a gradient)


def group_stats(groups):
    """groups: (key, rewards, accuracies) per prompt, one value per completion. Per key and over all:
    the fraction of groups whose rewards are all equal (zero advantage: GRPO learns nothing from them),
    all correct, all wrong (accuracy above / at most train.CORRECT, as the length bonus counts it), and
    the mean accuracy."""
    from train import CORRECT

    table = {}
    for key, rewards_, accuracies in groups:
        for name in (key, "all"):
            t = table.setdefault(name, {"groups": 0, "zero_std": 0, "all_correct": 0, "all_wrong": 0, "accuracy": 0.0})
            t["groups"] += 1
            t["zero_std"] += int(max(rewards_) == min(rewards_))
            t["all_correct"] += int(min(accuracies) > CORRECT)
            t["all_wrong"] += int(max(accuracies) <= CORRECT)
            t["accuracy"] += sum(accuracies) / len(accuracies)
    return {
        k: {
            "groups": t["groups"],
            **{f"{name}_frac": round(t[name] / t["groups"], 4) for name in ("zero_std", "all_correct", "all_wrong")},
            "accuracy": round(t["accuracy"] / t["groups"], 4),
        }
        for k, t in table.items()
    }


def groups(args):
    """G rollouts of a model on each record, drawn and rewarded exactly as train.py's RL step does, to see
    before training how many groups would carry a learning signal, per question family (or problem type)."""
    import torch
    from tqdm import tqdm

    import data
    import model as model_lib
    import train

    model, processor = model_lib.load(args.model, dtype=args.dtype)
    size = processor.video_processor.size
    records, bad = data.load_records(args.data)
    for e in bad:
        print(f"bad record, skipped: {e}", file=sys.stderr)
    records = records[: args.limit] if args.limit else records
    settings = train.Args(
        num_generations=args.num_generations,
        temperature=args.temperature,
        top_p=args.top_p,
        max_completion_length=args.max_new_tokens,
        regression_reward=args.regression_reward,
        regression_tolerance=args.regression_tolerance,
    )
    torch.manual_seed(args.seed)
    rows, unreadable = [], 0
    for start in tqdm(range(0, len(records), args.batch_size), desc="groups"):
        items = []
        for record in records[start : start + args.batch_size]:
            try:
                items.append(
                    (
                        record,
                        data.load_visual(record, args.num_frames, size["shortest_edge"], size["longest_edge"]),
                        None,
                    )
                )
            except data.SampleError as e:
                print(f"unreadable, skipped: {e}", file=sys.stderr)
                unreadable += 1
        for group in train.sample_groups(model, processor, items, args.num_generations, settings) if items else []:
            train.score_group(group, settings)
            key = group.record.get("question_family") or group.record["problem_type"]
            rows.append((key, group.rewards.tolist(), group.accuracy))
    stats = group_stats(rows)
    stats["all"] = {**stats.get("all", {"groups": 0}), "unreadable": len(bad) + unreadable}
    print(
        f"| {args.model}, G = {args.num_generations}, T = {args.temperature}, top-p {args.top_p} | groups | zero std | all correct | all wrong | accuracy |"
    )
    print("|---|---|---|---|---|---|")
    for key, t in stats.items():
        if t["groups"]:
            print(
                f"| {key} | {t['groups']} | {t['zero_std_frac']:.3f} | {t['all_correct_frac']:.3f} | {t['all_wrong_frac']:.3f} | {t['accuracy']:.3f} |"
            )
    print(json.dumps(stats))


def groups_cli(argv):
    import argparse
    import dataclasses

    import train

    g = argparse.ArgumentParser(
        prog="bench.py groups",
        description="G rollouts per record as in RL: how many groups have a learning signal "
        "(non-zero advantage), per question family",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    g.add_argument("--model", required=True, help="hub id or folder (a run's final/ works)")
    g.add_argument("--data", required=True, help="Video-R1-format JSON/JSONL file, e.g. the training file")
    g.add_argument("--limit", type=int, default=0, help="first N records only; 0: all")
    g.add_argument(
        "--num_generations", type=int, default=4, help="G, completions per record (train.py's tiny-model default)"
    )
    rollout = {f.name: f for f in dataclasses.fields(train.Args)}  # the RL step's own defaults, not copies
    g.add_argument(
        "--temperature",
        type=float,
        default=rollout["temperature"].default,
        help="sampling temperature (train.py's default)",
    )
    g.add_argument("--top_p", type=float, default=rollout["top_p"].default, help="nucleus (train.py's default)")
    g.add_argument(
        "--regression_reward",
        choices=rollout["regression_reward"].metadata["choices"],
        default=rollout["regression_reward"].default,
        help="as train.py's flag",
    )
    g.add_argument(
        "--regression_tolerance", type=float, default=rollout["regression_tolerance"].default, help="as train.py's flag"
    )
    g.add_argument("--batch_size", type=int, default=8, help="records per generate call")
    g.add_argument(
        "--num_frames", type=int, default=4, help="frames per video (the tiny model's default; 16 for real checkpoints)"
    )
    g.add_argument("--max_new_tokens", type=int, default=64, help="tokens per completion (the tiny model's default)")
    g.add_argument("--seed", type=int, default=0, help="torch seed of the sampling")
    g.add_argument("--dtype", default=None, help="bf16 | fp16 | fp32 (default: bf16 on GPU, fp32 on CPU)")
    groups(g.parse_args(argv))


def decode_bench(reps=5):
    """`python bench.py decode`: seconds to load 16 frames (data.load_video, 112x112 frames at the tiny model's
    budget) from a 90-frame and from a 1,800-frame video of 30 fps with a keyframe every second (keyint 30, 2
    B-frames), mean of `reps` loads after one warm-up; and the frames decoded for each. Goal: ratio <= 2."""
    import av
    import numpy as np

    import data

    os.makedirs(OUT_DIR, exist_ok=True)
    rng = np.random.default_rng(0)
    results = {}
    for n in (90, 1800):
        path = os.path.join(OUT_DIR, f"decode-{n}.mp4")
        if not os.path.exists(path):
            with av.open(path, "w") as container:
                stream = container.add_stream("libx264", rate=30)
                stream.width = stream.height = 112
                stream.pix_fmt = "yuv420p"
                stream.options = {"crf": "23", "x264-params": "keyint=30:min-keyint=30:bframes=2"}
                for _ in range(n):
                    frame = np.repeat(np.repeat(rng.integers(0, 255, (14, 14, 3), dtype=np.uint8), 8, 0), 8, 1)
                    for packet in stream.encode(
                        av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
                    ):
                        container.mux(packet)
                for packet in stream.encode():
                    container.mux(packet)
        data.load_video(path, 16, 56 * 56, 112 * 112)  # warm-up
        t0 = time.perf_counter()
        for _ in range(reps):
            data.load_video(path, 16, 56 * 56, 112 * 112)
        results[n] = ((time.perf_counter() - t0) / reps, data.decode_frames(path, 16)[4])
    (short, short_n), (long, long_n) = results[90], results[1800]
    print("| video (30 fps, keyframe every 30) | load 16 frames | frames decoded |\n|---|---|---|")
    print(f"| 90 frames | {short * 1000:.1f} ms | {short_n} |\n| 1,800 frames | {long * 1000:.1f} ms | {long_n} |")
    print(f"ratio 1,800 / 90: {long / short:.2f} (goal <= 2: {'met' if long / short <= 2 else 'not met'})")


def profile(argv):
    """`python bench.py profile`: where a main-job step's time goes on this machine, SFT and RL, measured on
    train.py's own functions with the main job's settings (tiny model, data/synth, 8 prompts, G = 4, 64 tokens,
    4 frames), by timers around the parts: in generation the transformer, the LM head, sampling (NucleusSampler),
    the vision tower and everything else generate does per token; the same parts in the log-prob passes (old
    policy, reference) and in the update (whose remainder is backward + optimizer); video decoding and the
    processor. Also the LM head's FLOPs per step and their time as plain fp32 matmuls here: the floor any
    rollout on this vocabulary pays. Timers, not a profiler: they add a few microseconds a call."""
    import argparse
    import glob

    import torch

    import data
    import model as model_lib
    import train

    parser = argparse.ArgumentParser(prog="bench.py profile", description=profile.__doc__.split("\n\n")[0])
    parser.add_argument(
        "--steps", type=int, default=3, help="steps of each stage; the first is a warm-up and not counted"
    )
    parser.add_argument(
        "--model",
        default="",
        help="the RL stage's start; default: the main job's cached SFT start (runs/sft-cold-start-*/final), else the random tiny model",
    )
    parser.add_argument(
        "--batch_size", type=int, default=8, help="prompts per step (the main job's 8; smaller only for a smoke run)"
    )
    parser.add_argument("--max_new_tokens", type=int, default=64, help="completion length (the main job's 64)")
    parser.add_argument(
        "--glibc_malloc",
        action="store_true",
        help="leave glibc's allocator as it is (the main job sets it with model.keep_freed_memory): the time that setting saves",
    )
    opts = parser.parse_args(argv)
    kept = not opts.glibc_malloc and model_lib.keep_freed_memory("cpu")
    tiny, data_path = train.prepare_assets(
        train.parse_args(["--algo", "reg_grpo"])
    )  # data/tiny-qwen2.5-vl and data/synth, as the main job
    starts = sorted(glob.glob(os.path.join(ROOT, "runs", "sft-cold-start-*", "final")))
    rl_start = opts.model or next((s for s in starts if "225x8" in s), starts[0] if starts else tiny)
    records, _ = data.load_records(data_path)
    clock, where, head_tokens = {}, ["other"], {"n": 0}  # seconds per (phase, part); the phase being run

    def timed(part, fn, phase=None):
        def wrapper(*a, **k):
            if phase:
                where.append(phase)
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                key = (phase or where[-1], part)
                clock[key] = clock.get(key, 0.0) + time.perf_counter() - t0
                if phase:
                    where.pop()

        return wrapper

    results = []
    for stage, start in (("sft", tiny), ("reg_grpo", rl_start)):
        args = train.Args(
            **{
                **dataclasses.asdict(train.parse_args(["--algo", stage, "--model", start, "--data", data_path])),
                "batch_size": opts.batch_size,
                "max_completion_length": opts.max_new_tokens,
                "max_steps": opts.steps,
                "output_dir": os.path.join(OUT_DIR, "profile"),
            }
        )
        torch.manual_seed(0)
        accelerator = train.new_accelerator(args)
        model, processor = model_lib.load(start, dtype=torch.float32, freeze_vision=args.freeze_vision)
        model.train()
        policy = model_lib.LogProbs(model, args.logprob_chunk)
        optimizer, scheduler = train.optimizer_and_schedule(policy, args)
        policy, optimizer, scheduler = accelerator.prepare(policy, optimizer, scheduler)
        unwrapped = accelerator.unwrap_model(policy).model
        ref = (
            train.reference_logprobs(accelerator, policy, None, lambda: model_lib.load_model(start), args)
            if stage != "sft"
            else None
        )
        for m in [unwrapped] + ([ref.model] if ref is not None else []):
            head_forward = m.lm_head.forward

            def counted_head(hidden, head_forward=head_forward):
                head_tokens["n"] += hidden.shape[:-1].numel()
                return head_forward(hidden)

            m.lm_head.forward = timed("LM head", counted_head)
            m.model.language_model.forward = timed("transformer", m.model.language_model.forward)
            m.model.visual.forward = timed("vision tower", m.model.visual.forward)
        unwrapped.generate = timed("total", unwrapped.generate, "generate")
        saved = model_lib.NucleusSampler.__call__, data.load_visual, data.processor_inputs
        model_lib.NucleusSampler.__call__ = timed("sampling", saved[0])
        data.load_visual, data.processor_inputs = (
            timed("video decoding", saved[1], "data"),
            timed("processor", saved[2]),
        )
        log_probs, updates = (
            timed("total", train.rollout_tensors, "rollout log-probs"),
            timed("total", train.optimizer_updates, "update"),
        )
        state = train.TrainState(args.da_window)
        for step in range(opts.steps):
            if step == 1:  # after the warm-up step
                clock.clear()
                head_tokens["n"] = 0
                t_start = time.perf_counter()
            timing = {"generate": 0.0, "score": 0.0, "logprob": 0.0, "update": 0.0}
            size = processor.video_processor.size
            prompts = [
                (
                    r,
                    data.load_visual(r, args.num_frames, size["shortest_edge"], size["longest_edge"]),
                    torch.Generator().manual_seed(j),
                )
                for j, r in enumerate(
                    train.record_at(records, step * args.batch_size + j, args.seed) for j in range(args.batch_size)
                )
            ]
            if stage == "sft":
                groups = [train.sft_group(processor, r, v, accelerator.device) for r, v, _ in prompts]
            else:
                groups, _ = train.collect_rollouts(unwrapped, processor, prompts, None, args, timing)
            mb = log_probs(groups, ref, args, accelerator, timing, policy)
            updates(accelerator, policy, optimizer, scheduler, [mb], args, state, timing)
        step_s = (time.perf_counter() - t_start) / (opts.steps - 1)
        model_lib.NucleusSampler.__call__, data.load_visual, data.processor_inputs = saved
        c = {k: v / (opts.steps - 1) for k, v in clock.items()}
        parts = (
            [("prompts: vision tower (each picture once, before generate)", c[("other", "vision tower")])]
            if c.get(("other", "vision tower"))
            else []
        )
        for phase, rest in (
            ("generate", "everything else per token"),
            ("rollout log-probs", "the rest"),
            ("update", "backward + optimizer"),
        ):
            total = c.get((phase, "total"), 0.0)
            if total < 0.005:
                continue
            inner = [
                (p, c.get((phase, p), 0.0))
                for p in ("transformer", "LM head", "sampling", "vision tower")
                if c.get((phase, p))
            ]
            parts += [(f"{phase}: {p}", v) for p, v in inner] + [(f"{phase}: {rest}", total - sum(v for _, v in inner))]
        parts += [
            ("video decoding", c.get(("data", "video decoding"), 0.0)),
            ("processor (tokenise, patches)", sum(v for (ph, p), v in c.items() if p == "processor")),
        ]
        D, V = unwrapped.config.text_config.hidden_size, unwrapped.lm_head.weight.shape[0]
        tokens = head_tokens["n"] / (opts.steps - 1)
        chunk, weight = torch.randn(256, D), unwrapped.lm_head.weight.detach()
        torch.mm(chunk, weight.T)
        t0 = time.perf_counter()
        for _ in range(5):
            torch.mm(chunk, weight.T)
        floor = (
            (time.perf_counter() - t0) / 5 / 256 * tokens
        )  # forward matmuls only; backward through the head costs twice more
        results.append((stage, step_s, parts, tokens, 2 * D * V * tokens, floor, start))
        accelerator.free_memory(policy, optimizer, scheduler)
    print("| part | seconds per step | share of the step |\n|---|---|---|")
    for stage, step_s, parts, tokens, flops, floor, start in results:
        print(f"| **{stage} step** | **{step_s:.2f}** | 100% |")
        for name, seconds in parts:
            print(f"| {stage} {name} | {seconds:.2f} | {seconds / step_s:.0%} |")
        print(
            f"| {stage} LM head forward: {tokens:,.0f} rows x 151,936, {flops / 1e12:.3f} TFLOP | {floor:.2f} as 256-row fp32 matmuls | {floor / step_s:.0%} |"
        )
    print(
        f"\n{opts.steps - 1} step(s) timed per stage after a warm-up; RL from {results[-1][6]}; torch threads {torch.get_num_threads()}; "
        f"freed memory {'kept by the allocator (model.keep_freed_memory)' if kept else 'returned to the kernel (glibc default)'}"
    )


# -----------------------------------------------------------------------------
# 8. Command line


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["worker"]:  # the parent reads the last stdout line
        print("RESULT " + json.dumps(WORKERS[argv[1]](**json.loads(argv[2]))), flush=True)
    elif argv[:1] == ["memory"]:
        memory_plan()
    elif argv[:1] == ["gpu"]:
        gpu_check(argv[1:])
    elif argv[:1] == ["groups"]:
        groups_cli(argv[1:])
    elif argv[:1] == ["decode"]:
        decode_bench()
    elif argv[:1] == ["profile"]:
        profile(argv[1:])
    elif not argv or argv == ["--quick"]:
        run_all(QUICK if argv else FULL, quick=bool(argv))
    elif argv[:1] in (["-h"], ["--help"]):
        print(__doc__.strip())
    else:
        raise SystemExit(__doc__.split("\n\n")[1])


if __name__ == "__main__":
    main()
