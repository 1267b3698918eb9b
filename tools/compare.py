"""bench.py's four comparisons (`python bench.py`, `--quick`): the workers that each measure one thing in a
fresh process (`python bench.py worker NAME JSON`), running them, and the table against the baselines and TRL."""

import contextlib
import gc
import io
import json
import os
import resource
import subprocess
import sys
import time

import torch
from PIL import Image
from transformers import TrainerCallback

import data
import infra
import model as model_lib
import rewards
import train
from tools.common import (
    GOALS,
    MODEL_DIR,
    OUT_DIR,
    ROOT,
    TRL_PIN,
    bench_record,
    peak_mib_since,
    prepare_assets,
    reset_peak,
    rl_args,
    tiny_model,
    tiny_processor,
)

# -----------------------------------------------------------------------------
# Workers: each runs in a fresh process and reports one JSON result


def worker_logprob(variant, G, T):
    """Comparison 1. Forward + backward of per-token log-probs of G random completions of T tokens after a
    video prompt: model.py's LogProbs (video encoded once, LM head in checkpointed chunks) or the naive
    path (G copies of the prompt, logits at every position, fp32 log_softmax, gather)."""
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
    """Comparison 2. Our rollout (train.sample_groups: prompt text, processor, generate, end-of-turn mask,
    decode; then train.score_group: rewards) vs a bare model.generate(do_sample=True) on the same processor
    inputs, with the same seed before each call. The two draw from the same temperature + top-p distribution
    with different random numbers (model.NucleusSampler), so their tokens differ. Video decoding is data
    loading and is in neither. Pairs alternate which side runs first; the first pair is a warm-up."""
    model, processor = tiny_model(), tiny_processor()
    args = rl_args(G, T)
    record, budget = bench_record("video"), processor.video_processor.size
    visual = data.load_visual(record, args.num_frames, budget["shortest_edge"], budget["longest_edge"])
    inputs = data.processor_inputs(processor, [data.prompt_text(processor, record)], [visual])
    P = inputs["input_ids"].shape[1]

    def ours(seed):
        torch.manual_seed(seed)
        t0 = time.perf_counter()
        group = train.score_group(train.sample_groups(model, processor, [(record, visual, None)], G, args)[0], args)
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
    return {"ours_s": sum(times["ours"]) / reps, "bare_s": sum(times["bare"]) / reps, "new_tokens": max(lengths)}


class OurTrainer:
    """train.py's set-up for one process (policy, frozen reference, AdamW, constant schedule, accelerate),
    and `step`: one prompt through train.py's own rollout and update functions (batch_size 1, grad_accum 1)."""

    def __init__(self, args, pixels=None):
        self.accelerator = infra.new_accelerator(args)
        torch.manual_seed(0)  # sampling seed (TRL's side: GRPOConfig(seed=0))
        model, self.processor, self.pixels = tiny_model(), tiny_processor(), pixels
        policy = model_lib.LogProbs(model, args.logprob_chunk)
        optimizer, scheduler = infra.optimizer_and_schedule(policy, args)
        self.policy, self.optimizer, self.scheduler = self.accelerator.prepare(policy, optimizer, scheduler)
        self.ref = infra.reference_logprobs(
            self.accelerator, self.policy, None, lambda: model_lib.load_model(MODEL_DIR), args
        )  # None when beta is 0
        self.model = self.accelerator.unwrap_model(self.policy).model
        self.state = infra.TrainState(args.da_window)

    def step(self, record, args):
        """One rollout + update; returns (seconds, mean completion length)."""
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
    record = bench_record("image")
    return record, data.load_visual(record, 2, pixels, pixels)


def worker_grpo_ours(G, T, warmup, steps, pixels, beta, learning_rate):
    """Comparison 4, our side: train.py's GRPO step on an image prompt. Memory: peak RSS over loading the
    policy and the reference model, building the optimizer and running every step, minus the RSS after
    the imports (the TRL side is measured the same way)."""
    baseline = reset_peak()  # after every import (this module's, at the top), as on the TRL side
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
    # trl and datasets are optional (requirements-bench.txt), so imported here; still before the baseline
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

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
    return {
        "step_s": sum(times) / len(times),
        "peak_mib": peak_mib_since(baseline),
        "mean_length": sum(measured) / len(measured) if measured else float("nan"),
        "trl": __import__("trl").__version__,
    }


WORKERS = {
    "logprob": worker_logprob,
    "rollout": worker_rollout,
    "step": worker_step,
    "grpo_ours": worker_grpo_ours,
    "grpo_trl": worker_grpo_trl,
}


# -----------------------------------------------------------------------------
# Running the workers and printing the table


def run_worker(name, in_process=False, **kwargs):
    """Run one worker in a fresh interpreter; its result dict, or {'error': ...} with the tail of its stderr.
    in_process (--quick only): call it here instead, saving the ~10 s of imports and tokenizer per worker;
    its memory window then starts from whatever earlier workers left resident."""
    if in_process:
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
    cmd = [sys.executable, os.path.join(ROOT, "bench.py"), "worker", name, json.dumps(kwargs)]
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
        import trl  # noqa: F401  (optional: requirements-bench.txt)
    except ImportError:
        return False
    return True


def compare_logprobs():
    """Max abs difference of the two log-prob passes' results and gradients (saved by the workers)."""
    ours, naive = (torch.load(os.path.join(OUT_DIR, f"logprob-{v}.pt")) for v in ("ours", "naive"))
    logp_diff = (ours["logp"] - naive["logp"]).abs().max().item()
    grad_diff = max((ours["grads"][k] - naive["grads"][k]).abs().max().item() for k in ours["grads"])
    grad_scale = max(g.abs().max().item() for g in naive["grads"].values())
    return logp_diff, grad_diff, grad_scale


def row(figure, ours, baseline, ratio, goal, met):
    return f"| {figure} | {ours} | {baseline} | {ratio} | {goal} | {met} |"


def run_all(sizes, quick):
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
        lines.append(
            row(
                f"1. log-prob pass peak memory, fwd+bwd (G={G}, T={T}, V=151,936)",
                f"{res['ours']['peak_mib']:.0f} MiB",
                f"{res['naive']['peak_mib']:.0f} MiB (naive fp32 log_softmax)",
                f"{ratio:.3f}",
                f"<= {GOALS['logprob']}",
                yes(ratio <= GOALS["logprob"]),
            )
        )
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
        lines.append(
            row(
                f"2. rollout time, video prompt (G={G}, {T} new tokens, mean of {sizes.rollout_reps})",
                f"{r['ours_s']:.2f} s",
                f"{r['bare_s']:.2f} s (bare generate)",
                f"{ratio:.3f}x",
                f"<= {GOALS['rollout']}x",
                yes(ratio <= GOALS["rollout"]),
            )
        )
        notes.append(
            f"2: up to {r['new_tokens']} new tokens per completion; both sides sample the same distribution "
            "with different random numbers "
            "(tests/test_model.py::test_nucleus_sampler_draws_from_the_nucleus_distribution)"
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
        lines.append(
            row(
                f"3. step time, video prompt, G={Gs[1]} vs G={Gs[0]} ({T} new tokens, mean of {sizes.step_reps})",
                f"{large['step_s']:.2f} s",
                f"{small['step_s']:.2f} s",
                f"{ratio:.2f}",
                f"<= {GOALS['step']:.0f}",
                yes(ratio <= GOALS["step"]),
            )
        )
        notes.append(
            f"3: mean completion length {large['mean_length']:.1f} (G={Gs[1]}), "
            f"{small['mean_length']:.1f} (G={Gs[0]}) tokens"
        )

    # 4. against TRL
    kw = dict(G=sizes.trl_G, T=sizes.trl_T, warmup=sizes.trl_warmup, steps=sizes.trl_steps,
              pixels=sizes.image_pixels, beta=sizes.beta, learning_rate=sizes.learning_rate)  # fmt: skip
    settings = (f"G={kw['G']}, {kw['T']} new tokens, 56x56 image, beta {kw['beta']}, "
                f"AdamW lr {kw['learning_rate']}, fp32, "
                f"{kw['warmup']} warm-up step(s) excluded, mean of {kw['steps']}")  # fmt: skip
    if not trl_available():
        lines.append(row("4. GRPO step vs TRL GRPOTrainer", "-", "-", "-", "<= 0.7x time, <= 1.0x memory", "skipped"))
        notes.append(
            "4: SKIPPED: trl is not installed. Install the pinned version with "
            f"`pip install -r requirements-bench.txt` ({TRL_PIN})."
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
            lines.append(
                row(
                    f"4a. GRPO step time, image prompt, vs TRL {trl['trl']} GRPOTrainer",
                    f"{ours['step_s']:.2f} s",
                    f"{trl['step_s']:.2f} s",
                    f"{t_ratio:.2f}x",
                    f"<= {GOALS['trl_time']}x",
                    yes(t_ratio <= GOALS["trl_time"]),
                )
            )
            lines.append(
                row(
                    "4b. GRPO peak memory above the imports",
                    f"{ours['peak_mib']:.0f} MiB",
                    f"{trl['peak_mib']:.0f} MiB",
                    f"{m_ratio:.2f}x",
                    f"<= {GOALS['trl_memory']}x",
                    yes(m_ratio <= GOALS["trl_memory"]),
                )
            )
            notes.append(
                f"4: {settings}; mean completion length {ours['mean_length']:.1f} (ours), "
                f"{trl['mean_length']:.1f} (TRL) tokens"
            )

    print(f"\nbench.py{' --quick' if quick else ''}: tiny Qwen2.5-VL ({MODEL_DIR}), torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {os.cpu_count()} CPUs\n")  # fmt: skip
    print("\n".join(lines))
    print("\nFootnotes:")
    if quick:
        print("- --quick: toy sizes, every worker in this one process: the numbers only show that each path runs.")
    print(
        "- Peak memory: each variant in a fresh process; peak RSS (VmHWM, reset through /proc/self/clear_refs) "
        "minus the RSS"
    )
    print(
        "  when the window opened: after loading model and inputs for 1, after the imports "
        "(so weights, reference model,"
    )
    print("  optimizer and activations count) for 4.")
    print("- 2: ours = train.sample_groups (prompt, processor, generate, mask, decode) + train.score_group (rewards);")
    print(
        "  the baseline is model.generate on ready processor inputs with the same seed. Video decoding is in neither."
    )
    print(
        "- 3, 4: ours = train.py's step (rollout, reference log-probs, loss, backward, clipping, AdamW step), "
        "one prompt."
    )
    for note in notes:
        print(f"- {note}")
    print(f"- wall time per worker: {', '.join(spent)}")
    print(f"\ntotal wall time {time.perf_counter() - t_start:.0f} s")
