r"""
Evaluation: run a model on Video-R1-format benchmarks, rescore saved outputs, compare training runs.

    python eval.py run --model runs/reg_grpo-seed0/final --data data/synth/test.json --out runs/eval
    python eval.py run --model Qwen/Qwen2.5-VL-3B-Instruct --out runs/eval-3b \
        --data eval_mvbench.json eval_videomme.json
    python eval.py run --model runs/reg_grpo-seed0/final --data data/synth/test.json --out runs/eval --blind
    python eval.py score runs/eval/test.json
    python eval.py compare runs/grpo-seed0 runs/reg_grpo-seed0 --out runs/compare.md
    python eval.py view runs/reg_grpo-seed0            # -> runs/reg_grpo-seed0/rollouts.html
    python eval.py view runs/eval/test.json            # -> runs/eval/test.html

Scores come from rewards.eval_score: accuracy per answer type, MRA for regression, and (as Video-R1's
evaluation does) a completion without <answer> tags is scored on its whole text.
"""

import argparse
import hashlib
import json
import os
import random
import shutil
import sys
import time
import zlib
from collections import Counter
from dataclasses import replace

import numpy as np
import torch

import data
import infra
import model as model_lib
import rewards

# -----------------------------------------------------------------------------
# Metrics


def summarize(results, unreadable=0):
    """Metrics of scored records: `accuracy` (mean score over non-regression records), `mra` (mean over
    regression records), `overall` (mean score over all), and the same split by problem_type,
    question_family and temporal vs static when the records say so."""

    def mean(rows):
        return round(float(np.mean([r["score"] for r in rows])), 4) if rows else None

    metrics = {
        "n": len(results),
        "unreadable": unreadable,
        "overall": mean(results),
        "accuracy": mean([r for r in results if r["problem_type"] != "regression"]),
        "mra": mean([r for r in results if r["problem_type"] == "regression"]),
    }
    for key in ("problem_type", "question_family", "data_source"):
        values = sorted({str(r[key]) for r in results if key in r})
        if values:
            metrics[f"by_{key}"] = {
                v: {
                    "score": mean([r for r in results if str(r.get(key)) == v]),
                    "n": sum(str(r.get(key)) == v for r in results),
                }
                for v in values
            }
    if any("temporal" in r for r in results):
        metrics["temporal"] = mean([r for r in results if r.get("temporal")])
        metrics["static"] = mean([r for r in results if "temporal" in r and not r["temporal"]])
    return metrics


def score_record(record, output):
    score = rewards.eval_score(output, record["solution"], record["problem_type"])
    return {
        "output": output,
        "prediction": rewards.extract_answer(output) or output.strip()[:200],
        "score": score,
        "correct": score >= 0.5,
    }


# -----------------------------------------------------------------------------
# Running a model


def blind_donors(records, seed=0, pool=None):
    """For `--blind`: every record's key -> another record whose picture or video it is shown instead.

    The donor is of the same data type and, where the file has more than one record of it, the same
    question family (else problem type), so the visuals look alike but say nothing about this record's
    answer. Within each such set the assignment is a seeded cyclic shift of a random order: nobody gets
    its own visual. A record alone in its set borrows from the other records of its data type; one with
    no other record of its data type at all cannot be blinded, which is an error. Donors come from
    `pool` (default: the records themselves), e.g. the whole file when only its first records are scored.
    """
    pool = records if pool is None else pool

    def kind(r):
        return (r["data_type"], str(r.get("question_family", r["problem_type"])))

    groups = {}
    for r in pool:
        groups.setdefault(kind(r), []).append(r)
    donors = {}
    for key, members in sorted(groups.items()):
        if len(members) == 1:
            others = [r for r in pool if r["data_type"] == key[0] and r is not members[0]]
            if not others:
                raise ValueError(
                    f"--blind: record {_key(members[0])} ({members[0].get('_file', '?')}) is the only {key[0]}; "
                    "it has no other visual to be shown"
                )
            donors[_key(members[0])] = random.Random(f"{seed}:{_key(members[0])}").choice(others)
            continue
        order = sorted(members, key=_key)
        random.Random(f"{seed}:{key}").shuffle(order)
        for i, r in enumerate(order):
            donors[_key(r)] = order[(i + 1) % len(order)]
    wanted = {_key(r) for r in records}
    return {k: v for k, v in donors.items() if k in wanted}


def evaluate(
    model,
    processor,
    records,
    *,
    num_frames,
    min_pixels,
    max_pixels,
    max_new_tokens,
    batch_size=8,
    shuffled=False,
    donors=None,
    no_video=False,
    sample=False,
    temperature=1.0,
    top_p=0.95,
    seed=0,
    done=None,
    on_batch=None,
    progress=True,
):
    """Generate and score an answer for every record. Returns (results, unreadable errors).

    Greedy decoding by default (the papers sample with a low temperature; `sample=True` for that). With
    `shuffled`, every video's frames are permuted (seeded per record): the ordered-vs-shuffled gap of
    temporal questions measures how much the model uses frame order. `donors` (from `blind_donors`, for
    --blind) maps a record's key to the record whose visual is shown instead: a model that scores as
    well blind as it does with the right visuals is not using them. `no_video`: the question alone, without
    its video or image: how much of the benchmark the text answers. `done` maps result keys (`_result_key`) to results
    already computed (resume); `on_batch(results)` is called after each batch (to save progress).
    """
    from tqdm import tqdm

    done = dict(done or {})
    donors = donors or {}
    todo = [r for r in records if _result_key(r) not in done]
    results, errors = list(done.values()), []
    bar = tqdm(total=len(records), initial=len(done), desc="eval", disable=not progress, file=sys.stderr)
    context = model_lib.context_length(model)
    model.eval()
    for start in range(0, len(todo), batch_size):
        batch, visuals = [], []
        for record in todo[start : start + batch_size]:
            try:
                visual = None
                if not no_video:
                    visual = data.load_visual(donors.get(_key(record), record), num_frames, min_pixels, max_pixels)
                data.check_prompt_length(processor, record, visual, context, max_new_tokens)
            except data.SampleError as e:
                errors.append(e)
                shown_for = f" (the visual shown to {_key(record)})" if _key(record) in donors else ""
                print(f"unreadable, not scored: {e}{shown_for}", file=sys.stderr)
                continue
            if shuffled and visual is not None and visual.kind == "video":
                # crc32, not hash(): Python salts string hashes per process, and the permutation must repeat
                visual, _ = data.shuffle_frames(
                    visual, torch.Generator().manual_seed(zlib.crc32(f"{seed}:{_key(record)}".encode()))
                )
            batch.append(record)
            visuals.append(visual)
        if batch:
            prompts = [data.prompt_text(processor, r, visual=not no_video) for r in batch]
            inputs = data.processor_inputs(processor, prompts, visuals).to(model.device)
            # decoding as the flags say, not as generation_config.json
            with torch.no_grad(), model_lib.own_generation_config(model):
                out = model.generate(
                    **inputs,
                    max_new_tokens=max_new_tokens,
                    do_sample=sample,
                    **(
                        {"temperature": temperature, "top_p": top_p, "top_k": 0}
                        if sample
                        else {"temperature": None, "top_p": None, "top_k": None}
                    ),
                )
            texts = processor.batch_decode(out[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
            for record, text in zip(batch, texts):
                row = (
                    {k: v for k, v in record.items() if not k.startswith("_")}
                    | {"index": record["_index"]}
                    | score_record(record, text)
                )
                results.append(row)
        bar.update(len(todo[start : start + batch_size]))
        if on_batch:
            on_batch(results)
    bar.close()
    return results, errors


def _key(record):
    """A record's name (blind donors, shuffle seeds): its problem_id, else its position in the file."""
    return str(data.record_id(record, record.get("_index", record.get("index"))))


def _result_key(record):
    """The resume key of a loaded record or of a saved result: its name and its position in the file, so that
    two records sharing a problem_id are two results."""
    return f"{_key(record)}@{record.get('_index', record.get('index'))}"


def file_sha256(path):
    """The data file's content hash: a results file is continued only on the file that began it."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_json(path, obj):
    """Write atomically: a crash never leaves a half-written results file."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1)
    os.replace(tmp, path)


def training_args(model_path):
    """(train.py's args.json for this model, its path): in the model folder (a run's final/) or the run folder
    above it; (None, None) for a checkpoint that train.py did not write."""
    if not os.path.isdir(model_path):
        return None, None
    for folder in (model_path, os.path.dirname(os.path.abspath(model_path))):
        path = os.path.join(folder, "args.json")
        if os.path.isfile(path):
            with open(path) as f:
                return json.load(f), path
    return None, None


def view_settings(args):
    """Frames and pixel budget for `run`: the flags when given; else what train.py trained this model with;
    else the papers' (16 frames, max 128*28*28 pixels) or, for the tiny model, its own (4 frames, its
    processor's budget). Returns (num_frames, min_pixels or None, max_pixels or None, where they came from)."""
    trained, path = training_args(args.model)
    if trained is not None:
        frames, lo, hi, source = (
            trained["num_frames"],
            trained.get("min_pixels") or None,
            trained.get("max_pixels") or None,
            path,
        )
    else:
        config = os.path.join(args.model, "config.json")
        tiny = (
            os.path.isfile(config)
            and json.load(open(config)).get("text_config", {}).get("hidden_size") == model_lib.TINY_HIDDEN
        )
        frames, lo, hi = (
            (data.TINY_NUM_FRAMES, None, None) if tiny else (data.PAPER_NUM_FRAMES, None, data.PAPER_MAX_PIXELS)
        )
        source = "the tiny model's defaults" if tiny else "the papers' defaults (no args.json from train.py)"
    given = [name for name in ("num_frames", "min_pixels", "max_pixels") if getattr(args, name) is not None]
    if given:
        source += f"; {', '.join('--' + n for n in given)} from the command line"

    def pick(flag, default):
        # a flag of 0: the processor's own
        return default if flag is None else (flag or None)

    return pick(args.num_frames, frames) or frames, pick(args.min_pixels, lo), pick(args.max_pixels, hi), source


def run(args):
    num_frames, min_pixels, max_pixels, source = view_settings(args)
    model, processor = model_lib.load(args.model, dtype=args.dtype, max_pixels=max_pixels, min_pixels=min_pixels)
    infra.keep_freed_memory(model.device)
    size = processor.video_processor.size
    settings = {"num_frames": num_frames, "min_pixels": size["shortest_edge"], "max_pixels": size["longest_edge"]}
    print(
        f"{num_frames} frames per video, {size['shortest_edge']}..{size['longest_edge']} pixels per frame ({source}); "
        + ("sampling at temperature 1, top-p 0.95" if args.sample else "greedy decoding")
        + f", up to {args.max_new_tokens} new tokens (the checkpoint's generation_config.json is not applied)"
    )
    os.makedirs(args.out, exist_ok=True)
    all_metrics = {}
    for path in args.data:
        records, bad = data.load_records(path)
        for e in bad:
            print(f"bad record, not scored: {e}", file=sys.stderr)
        name = (
            os.path.splitext(os.path.basename(path))[0]
            + ("_shuffled" if args.shuffled else "")
            + ("_blind" if args.blind else "")
            + ("_no_video" if args.no_video else "")
        )
        out_path = os.path.join(args.out, name + ".json")
        # what a results file must share with this run to be continued by it
        made_by = {"model": args.model, "data": path, "data_sha256": file_sha256(path), "settings": settings}
        decoding = ("max_new_tokens", "sample", "seed", "shuffled", "blind", "no_video")
        made_by["decoding"] = {k: getattr(args, k) for k in decoding}
        ids = Counter(str(r["problem_id"]) for r in records if "problem_id" in r)
        duplicates = sorted(k for k, n in ids.items() if n > 1)
        if duplicates:
            print(
                f"{path}: duplicate problem_id {', '.join(duplicates[:5])}: each record is kept and scored, "
                "keyed by its position too",
                file=sys.stderr,
            )
        done = {}
        if os.path.exists(out_path):  # resume: keep what a previous run of the same settings already scored
            saved = json.load(open(out_path))
            differ = [k for k in made_by if saved.get(k) != made_by[k]]
            if differ:
                raise SystemExit(
                    f"{out_path} holds results of another run ({', '.join(differ)} differ: "
                    + "; ".join(f"{k} {saved.get(k)!r} there, {made_by[k]!r} now" for k in differ)
                    + "): choose another --out, or delete the file to start again"
                )
            done = {_result_key(r): r for r in saved["results"]}
            print(f"{out_path}: {len(done)} records already scored, continuing")
        t0 = time.time()

        def save(results):
            return write_json(out_path, made_by | {"results": results, "metrics": summarize(results, len(bad))})

        results, errors = evaluate(
            model,
            processor,
            records,
            num_frames=num_frames,
            min_pixels=size["shortest_edge"],
            max_pixels=size["longest_edge"],
            max_new_tokens=args.max_new_tokens,
            batch_size=args.batch_size,
            shuffled=args.shuffled,
            donors=blind_donors(records, args.seed) if args.blind else None,
            no_video=args.no_video,
            sample=args.sample,
            seed=args.seed,
            done=done,
            on_batch=save,
        )
        metrics = summarize(results, len(bad) + len(errors))
        metrics["seconds"] = round(time.time() - t0, 1)
        write_json(out_path, made_by | {"results": results, "metrics": metrics})
        all_metrics[name] = metrics
        print(
            f"{name}: overall {metrics['overall']}  accuracy {metrics['accuracy']}  mra {metrics['mra']}  "
            f"n {metrics['n']}  unreadable {metrics['unreadable']}  -> {out_path}"
        )
    print(json.dumps(all_metrics))


# -----------------------------------------------------------------------------
# The main job: `accelerate launch train.py --algo reg_grpo` with no --model and no --data


def main_job(args, train):
    """Tiny model + synthetic data -> SFT cold start (cached) -> held-out eval -> RL -> held-out eval ->
    before/after table and summary.json in the run folder. `train` is train.train, passed in so that imports
    run one way (train imports eval)."""
    t_start = time.time()
    accelerator = infra.new_accelerator(args)
    with accelerator.main_process_first():
        infra.prepare_assets(args)
    stages = {}
    sft_args = main_job_sft_args(args)
    sft_final = os.path.join(sft_args.output_dir, "final")
    t0 = time.time()
    sft_data_config = os.path.join(sft_args.output_dir, "synth_config.json")
    if os.path.isdir(sft_final):
        infra.check_synth_config(
            sft_data_config, infra.synth_config(args), f"delete {sft_args.output_dir} to train it again"
        )
        if accelerator.is_main_process:
            print(f"SFT cold start: reusing {sft_final}")
    else:
        train(sft_args)
        if accelerator.is_main_process:  # which benchmark the cached start was trained on
            shutil.copyfile(os.path.join(infra.SYNTH_DIR, "synth_config.json"), sft_data_config)
    stages["sft_s"] = round(time.time() - t0, 1)
    test_path = os.path.join(infra.SYNTH_DIR, "test.json")
    t0 = time.time()
    cached = {name: os.path.join(sft_args.output_dir, f"{name}.json") for name in HELD_OUT_PASSES}
    if all(os.path.exists(c) and json.load(open(c)).get("eval_limit") == args.eval_limit for c in cached.values()):
        before = {name: json.load(open(c))["metrics"] for name, c in cached.items()}  # the same model and split: once
    else:
        before = held_out_eval(sft_final, args, test_path, accelerator)
    stages["eval_sft_s"] = round(time.time() - t0, 1)
    t0 = time.time()
    # RL on every family unless --problem_types says otherwise. Measured on the three-width benchmark
    # (docs/EXPERIMENTS.md, "The main job over nine seeds"): RL on multiple choice alone let the `size` answers
    # drift (MRA down on 3 of 4 seeds); RL on every family raised `size` too.
    train(replace(args, model=sft_final, data=os.path.join(infra.SYNTH_DIR, "train.json")))
    stages["rl_s"] = round(time.time() - t0, 1)
    page = None
    if accelerator.is_main_process and os.path.isfile(os.path.join(args.output_dir, "completions.jsonl")):
        page = rollouts_page(args.output_dir)
    t0 = time.time()
    after = held_out_eval(os.path.join(args.output_dir, "final"), args, test_path, accelerator)
    stages["eval_rl_s"] = round(time.time() - t0, 1)
    if accelerator.is_main_process:
        summary = {
            "algo": args.algo + ("+da" if args.da else ""),
            "seed": args.seed,
            "sft_accuracy": before["eval_test"]["overall"],
            "rl_accuracy": after["eval_test"]["overall"],
            "sft_blind_accuracy": (before["eval_test_blind"] or {}).get("overall"),
            "rl_blind_accuracy": (after["eval_test_blind"] or {}).get("overall"),
            "sft_no_video_accuracy": before["eval_test_no_video"]["overall"],
            "rl_no_video_accuracy": after["eval_test_no_video"]["overall"],
            "sft": before["eval_test"],
            "rl": after["eval_test"],
            "sft_blind": before["eval_test_blind"],
            "rl_blind": after["eval_test_blind"],
            "sft_no_video": before["eval_test_no_video"],
            "rl_no_video": after["eval_test_no_video"],
            "wall_time_s": round(time.time() - t_start, 1),
            "stages": stages,
            "sft_checkpoint": sft_final,
            "test_file": test_path,
        }
        with open(os.path.join(args.output_dir, "summary.json"), "w") as f:
            json.dump(summary, f, indent=1)
        print(before_after_table(before, after, args))
        print(
            f"wall time {summary['wall_time_s']} s ({stages}); summary: {os.path.join(args.output_dir, 'summary.json')}"
            + (f"; rollouts to look at: {page}" if page else "")
        )


def main_job_sft_args(args):
    """The main job's SFT cold start: every problem type, the SFT defaults, full weights. The tiny model's
    vision tower starts random, so --freeze_vision and --lora_r (which freezes it too) apply to the RL
    stage only; a frozen random vision tower would leave the start blind. A start cut off after its last
    checkpoint, before final/ was written, continues from it (train.py refuses to start afresh over one)."""
    output_dir = f"runs/sft-cold-start-{args.sft_steps}x{args.sft_batch_size}-seed{args.seed}"
    return replace(
        args,
        algo="sft",
        da=False,
        max_steps=args.sft_steps,
        batch_size=args.sft_batch_size,
        learning_rate=0.0,
        beta=-1.0,
        problem_types="",
        output_dir=output_dir,
        save_steps=0,
        resume=infra.latest_checkpoint(output_dir) is not None,
        freeze_vision=False,
        lora_r=0,
    ).resolve()


HELD_OUT_PASSES = ("eval_test", "eval_test_blind", "eval_test_no_video")  # own video, another's, none


def held_out_eval(model_dir, args, test_path, accelerator):
    """Greedy held-out evaluation of a saved model (main process; the others wait): with each record's own
    video, with another record's (eval.py's --blind) and with none (--no_video). Returns {pass: metrics} for
    HELD_OUT_PASSES (the blind pass None when the split cannot be blinded); the other processes get Nones."""
    metrics = dict.fromkeys(HELD_OUT_PASSES)
    if accelerator.is_main_process:
        model, processor = model_lib.load(model_dir, device=accelerator.device)
        everything, _ = data.load_records(test_path)
        records = everything[: args.eval_limit] if args.eval_limit else everything
        size = processor.video_processor.size
        passes = [("eval_test", {}), ("eval_test_no_video", {"no_video": True})]
        try:
            passes.insert(1, ("eval_test_blind", {"donors": blind_donors(records, pool=everything)}))
        except ValueError as e:  # e.g. a test split with a single image: it has no other image to be shown
            print(f"no blind evaluation: {e}", file=sys.stderr)
        for name, how in passes:
            results, errors = evaluate(
                model,
                processor,
                records,
                num_frames=args.num_frames,
                min_pixels=size["shortest_edge"],
                max_pixels=size["longest_edge"],
                max_new_tokens=args.max_completion_length,
                batch_size=16,
                **how,
            )
            metrics[name] = summarize(results, len(errors))
            write_json(
                os.path.join(os.path.dirname(model_dir), f"{name}.json"),
                {"model": model_dir, "eval_limit": args.eval_limit, "results": results, "metrics": metrics[name]},
            )
    accelerator.wait_for_everyone()
    return metrics


def before_after_table(before, after, args):
    """Markdown: held-out scores of the SFT start and the RL model ({pass: metrics} of held_out_eval), overall,
    by kind and family, and overall with another record's video and with none (a model that scores as well
    blind does not use its input; the text-only row is what the questions alone give away)."""
    others = {"eval_test_blind": "another record's video (blind)", "eval_test_no_video": "no video (text only)"}
    before, after, passes = before["eval_test"], after["eval_test"], (before, after)
    rows = [
        ("overall (score)", "overall"),
        ("accuracy (non-regression)", "accuracy"),
        ("MRA (regression)", "mra"),
        ("temporal questions", "temporal"),
        ("static questions", "static"),
    ]

    def fmt(v):
        return "-" if v is None else f"{v:.3f}"

    lines = [
        f"| held-out ({before['n']} records) | SFT | SFT + {args.algo}{'+da' if args.da else ''} |",
        "|---|---|---|",
    ]
    lines += [f"| {name} | {fmt(before.get(key))} | {fmt(after.get(key))} |" for name, key in rows]
    for name, said in others.items():
        b, a = (fmt((p.get(name) or {}).get("overall")) for p in passes)
        lines.append(f"| overall, {said} | {b} | {a} |")
    for family in before.get("by_question_family", {}):
        b, a = before["by_question_family"][family], after["by_question_family"].get(family, {})
        lines.append(f"| family: {family} (n={b['n']}) | {fmt(b['score'])} | {fmt(a.get('score'))} |")
    return "\n".join(lines)


# -----------------------------------------------------------------------------
# Rescoring and comparing


def score_file(path):
    """Rescore a results file (ours, or Video-R1's {"results": [...]} with output/solution/problem_type)."""
    obj = json.load(open(path))
    rows = obj["results"] if isinstance(obj, dict) else obj
    results = [dict(r) | score_record(r, r.get("output", "")) for r in rows]
    return summarize(results)


def compare(run_dirs, out_path):
    """A markdown table of each run's final metrics (and summary.json when there is one) and a PNG of its
    reward and accuracy curves from metrics.jsonl."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, curves = [], {}
    for run_dir in run_dirs:
        lines = [json.loads(line) for line in open(os.path.join(run_dir, "metrics.jsonl"))]
        curves[run_dir] = lines
        summary_path = os.path.join(run_dir, "summary.json")
        summary = json.load(open(summary_path)) if os.path.exists(summary_path) else {}
        last = lines[-1] if lines else {}
        wall = sum(line.get("time/step_s", 0) for line in lines)
        rows.append(
            (
                os.path.basename(os.path.normpath(run_dir)),
                len(lines),
                last.get("reward/mean"),
                last.get("reward/accuracy"),
                summary.get("rl_accuracy", summary.get("accuracy")),
                round(wall, 1),
            )
        )

    def fmt(v):
        return "" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))

    table = [
        "| run | steps | final reward/mean | final reward/accuracy | held-out score | train wall time (s) |",
        "|---|---|---|---|---|---|",
    ]
    table += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for run_dir, lines in curves.items():
        steps = [line["step"] for line in lines]
        for ax, key in zip(axes, ("reward/mean", "reward/accuracy")):
            values = [line.get(key, np.nan) for line in lines]
            window = max(1, len(values) // 20)  # a running mean keeps the curves readable
            smooth = np.convolve(values, np.ones(window) / window, mode="valid")
            ax.plot(steps[window - 1 :], smooth, label=os.path.basename(os.path.normpath(run_dir)))
            ax.set_title(key)
            ax.set_xlabel("step")
    axes[0].legend(fontsize=8)
    png = os.path.splitext(out_path)[0] + ".png"
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    with open(out_path, "w") as f:
        f.write("\n".join(table) + f"\n\n![reward curves]({os.path.basename(png)})\n")
    return "\n".join(table), png


# -----------------------------------------------------------------------------
# Pages to look at: a training run's rollouts, an evaluation's answers (one self-contained HTML file each)

PAGE_STYLE = """body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;max-width:1400px}
h2{margin:1.4em 0 .3em;border-bottom:2px solid #444}.metrics{color:#555;font-size:12px}
.group,.record{border:1px solid #ccc;border-radius:6px;padding:.6em;margin:.8em 0}
.frames img{height:64px;margin-right:3px;border:1px solid #999;image-rendering:pixelated}
.label{font-size:12px;color:#555}table{border-collapse:collapse;width:100%;margin-top:.4em}
td,th{border:1px solid #ddd;padding:3px 6px;vertical-align:top;font-size:12px}th{background:#f3f3f3}
td.text{white-space:pre-wrap;font-family:ui-monospace,monospace;width:100%}td.num,th.num{width:1%;white-space:nowrap;text-align:right}
tr.pos td.adv{background:#d9f2d9}tr.neg td.adv{background:#f6d5d5}.right{color:#1a7f1a}.wrong{color:#b22}"""


def _frames_html(frames, order=None, caption=""):
    """A strip of base64 PNG thumbnails, optionally in another order (T-GRPO's shuffled frames)."""
    import html

    shown = [frames[i] for i in order] if order else frames
    imgs = "".join(
        f'<img src="data:image/png;base64,{f}" alt="frame {i}">' for i, f in zip(order or range(len(frames)), shown)
    )
    return f'<div class="frames"><span class="label">{html.escape(caption)}</span><br>{imgs}</div>'


def _question_html(row):
    import html

    options = "".join(f"<br>{html.escape(o)}" for o in row.get("options") or [])
    return (
        f"<div><b>{html.escape(str(row.get('problem_id')))}</b> ({html.escape(row['problem_type'])}, "
        f"{html.escape(str(row.get('question_family') or row['data_type']))}): {html.escape(row['problem'])}{options}"
        f'<br><span class="label">solution</span> {html.escape(row["solution"])}</div>'
    )


def rollouts_page(run_dir):
    """RUN_DIR/rollouts.html from completions.jsonl (train.log_completions) and metrics.jsonl: per logged step
    its metrics, then each logged group: frames, the shuffled order and DA's noise or hint when used, the
    question, and the G completions with accuracy, format, temporal bonus, total reward and advantage."""
    import html

    logged = [json.loads(line) for line in open(os.path.join(run_dir, "completions.jsonl"))]
    metrics_path = os.path.join(run_dir, "metrics.jsonl")
    metrics = {m["step"]: m for m in map(json.loads, open(metrics_path))} if os.path.exists(metrics_path) else {}
    shown = (
        "reward/mean",
        "reward/accuracy",
        "reward/format",
        "adv/zero_std_frac",
        "loss/total",
        "loss/kl",
        "tgrpo/bonus_frac",
        "tgrpo/adv_changed_frac",
        "reggrpo/active_frac",
        "da/easy_frac",
        "da/hard_frac",
        "completions/mean_length",
        "time/step_s",
    )
    parts = [
        f"<!doctype html><meta charset=utf-8><title>rollouts: {html.escape(run_dir)}</title>"
        f"<style>{PAGE_STYLE}</style>",
        f"<h1>Rollouts of {html.escape(os.path.basename(os.path.normpath(run_dir)))}</h1>",
        f'<p class="label">{len(logged)} groups from {html.escape(run_dir)}/completions.jsonl; '
        "advantages as trained on (green positive, red negative). "
        "A group whose rewards are all equal has zero advantages: it teaches nothing.</p>",
    ]
    for step in sorted({row["step"] for row in logged}):
        m = metrics.get(step, {})
        summary = " · ".join(f"{k} {m[k]:.3g}" for k in shown if k in m)
        parts.append(f'<h2 id="step-{step}">step {step}</h2><div class="metrics">{html.escape(summary)}</div>')
        for row in (r for r in logged if r["step"] == step):
            aug, temporal = row.get("augmentation") or {}, row.get("temporal")
            caption = "frames, in order"
            if aug.get("kind") == "easy":
                strength = (
                    f"{aug['mask']:.0%} of the cells masked"
                    if "mask" in aug
                    else f"noise std {aug.get('noise', aug.get('noise_std', 0.0)):.2f} of 255"
                )
                caption = f"frames made harder by DA (too easy: dR {aug['d_reward']:+.2f}, {strength})"
            block = ['<div class="group">', _question_html(row), _frames_html(row["frames"], caption=caption)]
            if temporal:
                block.append(
                    _frames_html(
                        row["frames"],
                        temporal["order"],
                        f"T-GRPO's shuffled order {temporal['order']}: "
                        f"accuracy {np.mean(row['accuracy']):.2f} ordered, {temporal['acc_shuffled']:.2f} shuffled",
                    )
                )
            if aug.get("kind") == "hard":
                block.append(
                    f'<div class="label">DA hint (too hard: dR {aug["d_reward"]:+.2f}): '
                    f"{html.escape(aug['hint'])}</div>"
                )
            bonus = (temporal or {}).get("bonus") or [0.0] * len(row["completions"])
            block.append(
                '<table><tr><th class="num">#</th><th>completion</th>'
                + "".join(
                    f'<th class="num">{h}</th>' for h in ("accuracy", "format", "temporal bonus", "reward", "advantage")
                )
                + "</tr>"
            )
            for i, (text, acc, fmt, b, r, a) in enumerate(
                zip(row["completions"], row["accuracy"], row["format"], bonus, row["rewards"], row["advantages"])
            ):
                sign = "pos" if a > 1e-9 else ("neg" if a < -1e-9 else "")
                block.append(
                    f'<tr class="completion {sign}"><td class="num">{i}</td>'
                    f'<td class="text">{html.escape(text)}</td><td class="num">{acc:.3g}</td>'
                    f'<td class="num">{fmt:.3g}</td><td class="num">{b:.3g}</td>'
                    f'<td class="reward num">{r:.4g}</td><td class="adv num">{a:.4g}</td></tr>'
                )
            block.append("</table></div>")
            parts.append("".join(block))
    out = os.path.join(run_dir, "rollouts.html")
    with open(out, "w") as f:
        f.write("\n".join(parts))
    return out


def eval_page(results_path):
    """EVAL.html next to an `eval.py run` output: per record its frames, the question, the answer and its score,
    with selects to show one family or only right / wrong answers."""
    import html

    saved = json.load(open(results_path))
    settings = saved.get("settings")  # written with "data" by `run`: the frames are shown as the model saw them
    base = os.path.dirname(os.path.abspath(saved["data"])) if saved.get("data") and settings else None
    families = sorted({str(r.get("question_family") or r.get("problem_type")) for r in saved["results"]})
    options = "".join(f"<option>{html.escape(f)}</option>" for f in families)
    flat_metrics = {k: v for k, v in saved["metrics"].items() if not isinstance(v, dict)}
    parts = [
        f"<!doctype html><meta charset=utf-8><title>{html.escape(results_path)}</title><style>{PAGE_STYLE}</style>",
        f"<h1>{html.escape(os.path.basename(results_path))}: {html.escape(str(saved.get('model')))}</h1>",
        f'<p class="metrics">{html.escape(json.dumps(flat_metrics))}</p>',
        f'<p>family <select id="fam" onchange="show()"><option value="">all</option>{options}</select> answers '
        '<select id="ok" onchange="show()"><option value="">all</option><option value="right">right</option>'
        '<option value="wrong">wrong</option></select></p>',
        "<script>function show(){var f=document.getElementById('fam').value,o=document.getElementById('ok').value;"
        "document.querySelectorAll('.record').forEach(function(d){d.style.display=((!f||d.dataset.family==f)&&(!o||d.dataset.ok==o))?'':'none'})}</script>",
    ]
    for row in saved["results"]:
        frames_html = (
            '<div class="label">(no frames: the results file names no data file and settings; it predates them)</div>'
        )
        if base is not None:
            record = {**row, "_media": data.media_path(row, base), "_index": row.get("index")}
            try:
                visual = data.load_visual(
                    record, settings["num_frames"], settings["min_pixels"], settings["max_pixels"]
                )
                frames_html = _frames_html(
                    data.thumbnails(visual.frames), caption=f"{visual.frames.shape[0]} frames as the model saw them"
                )
            except data.SampleError as e:
                frames_html = f'<div class="label">{html.escape(str(e))}</div>'
        ok = "right" if row["score"] >= 0.5 else "wrong"
        family = str(row.get("question_family") or row.get("problem_type"))
        parts.append(
            f'<div class="record" data-family="{html.escape(family)}" data-ok="{ok}">{_question_html(row)}{frames_html}'
            f'<div class="text {ok}"><span class="label">answer</span> {html.escape(row["output"])}</div>'
            f'<div class="label">score {row["score"]:.3g}</div></div>'
        )
    out = os.path.splitext(results_path)[0] + ".html"
    with open(out, "w") as f:
        f.write("\n".join(parts))
    return out


def view(path):
    """`eval.py view RUN_DIR` -> RUN_DIR/rollouts.html; `eval.py view EVAL.json` -> EVAL.html."""
    if os.path.isdir(path):
        if not os.path.isfile(os.path.join(path, "completions.jsonl")):
            raise SystemExit(
                f"{path}: no completions.jsonl (train.py writes it every --log_completions_steps steps of RL)"
            )
        return rollouts_page(path)
    if not os.path.isfile(path):
        raise SystemExit(f"{path}: neither a run folder nor an eval.py run results file")
    return eval_page(path)


def at_least(low):
    """An argparse type: an int >= low, else a one-line usage error."""

    def parse(text):
        value = int(text)
        if value < low:
            raise argparse.ArgumentTypeError(f"{value}: must be at least {low}")
        return value

    return parse


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0].strip(), formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="generate and score answers", formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    r.add_argument("--model", required=True, help="hub id or folder (a run's final/ works)")
    r.add_argument("--data", nargs="+", required=True, help="Video-R1-format JSON/JSONL files")
    r.add_argument("--out", required=True, help="folder for one <name>.json per input")
    r.add_argument("--batch_size", type=at_least(1), default=8, help="prompts per generate call")
    r.add_argument(
        "--num_frames",
        type=at_least(2),
        default=None,
        help="frames per video; default: what train.py trained the model with "
        "(args.json in the model folder or the run folder above it), else 16 (the papers; the tiny model: 4)",
    )
    r.add_argument(
        "--min_pixels",
        type=at_least(0),
        default=None,
        help="min pixels per frame; default: as --num_frames (else the processor's); 0: the processor's",
    )
    r.add_argument(
        "--max_pixels",
        type=at_least(0),
        default=None,
        help="max pixels per frame; default: as --num_frames (else 128*28*28, Video-R1; "
        "the tiny model: its processor's); 0: the processor's",
    )
    r.add_argument("--max_new_tokens", type=at_least(1), default=1024, help="tokens to generate per answer")
    r.add_argument(
        "--shuffled", action="store_true", help="permute every video's frames (seeded): ordered-vs-shuffled gap"
    )
    r.add_argument(
        "--blind",
        action="store_true",
        help="ask every question about another record's visual (same family): does the model use what it sees?",
    )
    r.add_argument(
        "--no_video",
        action="store_true",
        help="ask every question without its video or image (text only): how much does the text alone answer?",
    )
    r.add_argument(
        "--sample", action="store_true", help="sample (temperature 1, top-p 0.95) instead of greedy decoding"
    )
    r.add_argument("--seed", type=int, default=0, help="seed of the frame permutations and of --blind's assignment")
    r.add_argument("--dtype", default=None, help="bf16 | fp16 | fp32 (default: bf16 on GPU, fp32 on CPU)")
    v = sub.add_parser(
        "view",
        help="write a page to look at: RUN_DIR -> RUN_DIR/rollouts.html (frames, G completions, rewards, "
        "advantages per logged step); EVAL.json (from run) -> EVAL.html (frames, answer, score per record)",
    )
    v.add_argument("path", help="a training run folder (with completions.jsonl) or an `eval.py run` results file")
    s = sub.add_parser("score", help="rescore a results file; the metrics are the last line")
    s.add_argument("file")
    c = sub.add_parser("compare", help="table and reward curves of training runs")
    c.add_argument("runs", nargs="+", help="run folders (with metrics.jsonl)")
    c.add_argument("--out", required=True, help="markdown file; the PNG goes next to it")
    args = parser.parse_args(argv)
    if args.command == "run":
        run(args)
    elif args.command == "view":
        out = view(args.path)
        print(f"wrote {out} ({os.path.getsize(out) / 1024:.0f} KiB)")

    elif args.command == "score":
        print(json.dumps(score_file(args.file)))
    else:
        table, png = compare(args.runs, args.out)
        print(table)
        print(f"wrote {args.out} and {png}")


if __name__ == "__main__":
    main()
