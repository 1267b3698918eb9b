"""Looking inside training before and while it runs: how many groups would carry a learning signal
(`python bench.py groups`), video decoding time (`python bench.py decode`), and where a main-job SFT and RL step's
time goes (`python bench.py profile`)."""

import argparse
import dataclasses
import glob
import json
import os
import sys
import time

import av
import numpy as np
import torch
from tqdm import tqdm

import data
import infra
import model as model_lib
import train
from tools.common import OUT_DIR, ROOT

# -----------------------------------------------------------------------------
# Learning signal before training: `python bench.py groups` (how many groups would carry a gradient)


def group_stats(groups):
    """groups: (key, rewards, accuracies) per prompt, one value per completion. Per key and over all:
    the fraction of groups whose rewards are all equal (zero advantage: GRPO learns nothing from them),
    all correct, all wrong (accuracy above / at most train.CORRECT, as the length bonus counts it), and
    the mean accuracy."""
    table = {}
    for key, rewards_, accuracies in groups:
        for name in (key, "all"):
            t = table.setdefault(name, {"groups": 0, "zero_std": 0, "all_correct": 0, "all_wrong": 0, "accuracy": 0.0})
            t["groups"] += 1
            t["zero_std"] += int(max(rewards_) == min(rewards_))
            t["all_correct"] += int(min(accuracies) > train.CORRECT)
            t["all_wrong"] += int(max(accuracies) <= train.CORRECT)
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
    ).resolve()
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
        f"| {args.model}, G = {args.num_generations}, T = {args.temperature}, top-p {args.top_p} "
        "| groups | zero std | all correct | all wrong | accuracy |"
    )
    print("|---|---|---|---|---|---|")
    for key, t in stats.items():
        if t["groups"]:
            print(
                f"| {key} | {t['groups']} | {t['zero_std_frac']:.3f} | {t['all_correct_frac']:.3f} "
                f"| {t['all_wrong_frac']:.3f} | {t['accuracy']:.3f} |"
            )
    print(json.dumps(stats))


def groups_cli(argv):
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
    parser = argparse.ArgumentParser(prog="bench.py profile", description=profile.__doc__.split("\n\n")[0])
    parser.add_argument(
        "--steps", type=int, default=3, help="steps of each stage; the first is a warm-up and not counted"
    )
    parser.add_argument(
        "--model",
        default="",
        help="the RL stage's start; default: the main job's cached SFT start (runs/sft-cold-start-*/final), "
        "else the random tiny model",
    )
    parser.add_argument(
        "--batch_size", type=int, default=8, help="prompts per step (the main job's 8; smaller only for a smoke run)"
    )
    parser.add_argument("--max_new_tokens", type=int, default=64, help="completion length (the main job's 64)")
    parser.add_argument(
        "--glibc_malloc",
        action="store_true",
        help="leave glibc's allocator as it is (the main job sets it with infra.keep_freed_memory): "
        "the time that setting saves",
    )
    opts = parser.parse_args(argv)
    kept = not opts.glibc_malloc and infra.keep_freed_memory("cpu")
    # data/tiny-qwen2.5-vl and data/synth, as the main job
    tiny, data_path = infra.prepare_assets(train.parse_args(["--algo", "reg_grpo"]))
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
        accelerator = infra.new_accelerator(args)
        model, processor = model_lib.load(start, dtype=torch.float32, freeze_vision=args.freeze_vision)
        model.train()
        policy = model_lib.LogProbs(model, args.logprob_chunk)
        optimizer, scheduler = infra.optimizer_and_schedule(policy, args)
        policy, optimizer, scheduler = accelerator.prepare(policy, optimizer, scheduler)
        unwrapped = accelerator.unwrap_model(policy).model
        ref = (
            infra.reference_logprobs(accelerator, policy, None, lambda: model_lib.load_model(start), args)
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
        state = infra.TrainState(args.da_window)
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
                    infra.record_at(records, step * args.batch_size + j, args.seed) for j in range(args.batch_size)
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
            f"| {stage} LM head forward: {tokens:,.0f} rows x 151,936, {flops / 1e12:.3f} TFLOP "
            f"| {floor:.2f} as 256-row fp32 matmuls | {floor / step_s:.0%} |"
        )
    print(
        f"\n{opts.steps - 1} step(s) timed per stage after a warm-up; RL from {results[-1][6]}; "
        f"torch threads {torch.get_num_threads()}; freed memory "
        + ("kept by the allocator (infra.keep_freed_memory)" if kept else "returned to the kernel (glibc default)")
    )
