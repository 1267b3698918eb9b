"""eval.py: rescoring against hand-computed metrics, a run on the tiny model with resume, and compare."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import data
import eval as evaluation
import model as model_lib
import tools.ablation as ablation_lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {**os.environ, "HF_HUB_OFFLINE": "1"}


def _cli(*args):
    out = subprocess.run(
        [sys.executable, "eval.py", *args], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    return out.stdout


def test_score_by_hand(tmp_path):
    rows = [  # Video-R1's results layout: output, solution, problem_type
        # 1
        {
            "problem_type": "multiple choice",
            "solution": "<answer>B</answer>",
            "output": "<think>x</think><answer>B</answer>",
        },
        {"problem_type": "multiple choice", "solution": "<answer>B</answer>", "output": "<answer>C</answer>"},  # 0
        # no tags: whole text -> 1
        {"problem_type": "multiple choice", "solution": "<answer>A</answer>", "output": " A "},
        # decimal mismatch -> 0
        {"problem_type": "numerical", "solution": "<answer>3</answer>", "output": "<answer>3.0</answer>"},
        # rel. error 0.05 -> MRA 0.9
        {"problem_type": "regression", "solution": "<answer>10</answer>", "output": "<answer>9.5</answer>"},
        {"problem_type": "regression", "solution": "<answer>10</answer>", "output": "<answer>nan</answer>"},  # -> 0
    ]
    path = tmp_path / "video_r1_results.json"
    path.write_text(json.dumps({"results": rows}))
    metrics = json.loads(_cli("score", str(path)).strip().splitlines()[-1])
    assert metrics["accuracy"] == pytest.approx(2 / 4)
    assert metrics["mra"] == pytest.approx(0.9 / 2)
    assert metrics["overall"] == pytest.approx((2 + 0.9) / 6, abs=1e-4)
    assert metrics["by_problem_type"]["multiple choice"] == {"score": pytest.approx(2 / 3, abs=1e-4), "n": 3}


def test_summarize_splits_temporal_and_families():
    results = [
        {"problem_type": "multiple choice", "score": s, "temporal": t, "question_family": f}
        for s, t, f in [(1.0, True, "direction"), (0.0, True, "order"), (1.0, False, "color"), (1.0, False, "color")]
    ]
    m = evaluation.summarize(results, unreadable=2)
    assert (m["temporal"], m["static"], m["unreadable"]) == (0.5, 1.0, 2)
    assert m["by_question_family"]["color"] == {"score": 1.0, "n": 2}


def _five_records_and_a_missing_video(synth_dir, split, tmp_path):
    """small.json: five records of a synthetic split (absolute paths) and a sixth whose video is missing."""
    records = json.load(open(os.path.join(synth_dir, f"{split}.json")))[:5]
    for r in records:
        r["path"] = os.path.join(synth_dir, r["path"])
    records.append(dict(records[0], problem_id="missing", path=str(tmp_path / "missing.mp4")))
    data_path = tmp_path / "small.json"
    data_path.write_text(json.dumps(records))
    return data_path


def test_run_on_the_tiny_model_and_resume(tiny_dir, synth_dir, tmp_path):
    data_path = _five_records_and_a_missing_video(synth_dir, "test", tmp_path)
    args = [
        "run",
        "--model",
        str(tiny_dir),
        "--data",
        str(data_path),
        "--out",
        str(tmp_path / "out"),
        "--num_frames",
        "4",
        "--max_new_tokens",
        "8",
        "--batch_size",
        "3",
    ]
    _cli(*args)
    first = json.load(open(tmp_path / "out" / "small.json"))
    assert len(first["results"]) == 5 and first["metrics"]["unreadable"] == 1 and first["metrics"]["n"] == 5
    for row in first["results"]:
        assert {"output", "prediction", "score", "correct", "problem_id", "solution", "temporal"} <= set(row)
    assert "temporal" in first["metrics"] and "by_question_family" in first["metrics"]
    again = _cli(*args)  # everything already scored: nothing is regenerated
    assert "5 records already scored" in again
    assert json.load(open(tmp_path / "out" / "small.json"))["results"] == first["results"]
    _cli(*args, "--shuffled")
    assert len(json.load(open(tmp_path / "out" / "small_shuffled.json"))["results"]) == 5
    _cli(*args, "--blind")
    assert len(json.load(open(tmp_path / "out" / "small_blind.json"))["results"]) == 5
    _check_eval_page(tmp_path / "out" / "small.json", first)


def test_run_keeps_duplicate_ids_refuses_another_runs_results_and_answers_without_video(tiny_dir, synth_dir, tmp_path):
    """Two records sharing a problem_id are two results (a second run once cut 6 rows to 1); a results file is
    continued only by a run on the same data file (by hash), model and settings (two test.json files were once
    merged, n 8 -> 13); --no_video asks the questions alone."""
    records = json.load(open(os.path.join(synth_dir, "test.json")))[:3]
    for r in records:
        r["path"] = os.path.join(synth_dir, r["path"])
    records.append(dict(records[1]))  # the same problem_id twice
    first, second = tmp_path / "a" / "test.json", tmp_path / "b" / "test.json"
    for path, rows in ((first, records), (second, records[:2])):
        os.makedirs(path.parent)
        path.write_text(json.dumps(rows))

    def run(data_path, *extra):
        cmd = ["eval.py", "run", "--model", str(tiny_dir), "--data", str(data_path), "--out", str(tmp_path / "out")]
        cmd += ["--num_frames", "4", "--batch_size", "4", "--no_video", *extra]
        return subprocess.run([sys.executable, *cmd], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600)

    out = run(first, "--max_new_tokens", "4")
    assert out.returncode == 0 and f"duplicate problem_id {records[1]['problem_id']}" in out.stderr, out.stderr
    saved = json.load(open(tmp_path / "out" / "test_no_video.json"))
    assert len(saved["results"]) == 4 and saved["metrics"]["n"] == 4 and saved["decoding"]["no_video"] is True
    assert "4 records already scored" in run(first, "--max_new_tokens", "4").stdout
    for data_path, tokens, differ in ((second, "4", "data, data_sha256"), (first, "5", "decoding")):
        out = run(data_path, "--max_new_tokens", tokens)
        assert out.returncode == 1 and f"holds results of another run ({differ} differ" in out.stderr, out.stderr
    assert (
        json.load(open(tmp_path / "out" / "test_no_video.json"))["results"] == saved["results"]
    )  # none merged or lost


def _check_eval_page(results_path, saved):
    """`eval.py view EVAL.json`: one block per record with its family and right/wrong for the filters, its answer,
    and the frames it was evaluated on as decodable thumbnails (4 per video, 1 per image)."""
    import base64
    import io
    from html.parser import HTMLParser

    from PIL import Image

    out = _cli("view", str(results_path))
    assert "small.html" in out
    found = {"records": [], "images": []}

    class Page(HTMLParser):
        def handle_starttag(self, tag, attrs):
            attrs = dict(attrs)
            if tag == "div" and attrs.get("class") == "record":
                found["records"].append((attrs["data-family"], attrs["data-ok"]))
            if tag == "img":
                found["images"].append(attrs["src"])

    Page().feed(open(str(results_path).replace(".json", ".html")).read())
    rows = saved["results"]
    assert found["records"] == [(r["question_family"], "right" if r["score"] >= 0.5 else "wrong") for r in rows]
    assert len(found["images"]) == sum(4 if r["data_type"] == "video" else 1 for r in rows)
    for src in found["images"]:
        Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).load()


def test_blind_donors_are_other_records_of_the_same_kind():
    def rec(i, family, data_type="video"):
        return {
            "problem_id": f"r{i}",
            "question_family": family,
            "data_type": data_type,
            "problem_type": "multiple choice",
        }

    records = [
        rec(0, "color"),
        rec(1, "color"),
        rec(2, "color"),
        rec(3, "direction"),
        rec(4, "direction"),
        rec(5, "size"),
        rec(6, "color", "image"),
        rec(7, "shape", "image"),
    ]
    donors = evaluation.blind_donors(records, seed=0)
    assert set(donors) == {f"r{i}" for i in range(8)}
    for r in records:
        d = donors[r["problem_id"]]
        assert d is not r and d["data_type"] == r["data_type"]
        if r["question_family"] in ("color", "direction") and r["data_type"] == "video":  # two or more of them
            assert d["question_family"] == r["question_family"]
    assert sorted(donors[f"r{i}"]["problem_id"] for i in range(3)) == ["r0", "r1", "r2"]  # a permutation of the three
    assert {k: v["problem_id"] for k, v in evaluation.blind_donors(records, seed=0).items()} == {
        k: v["problem_id"] for k, v in donors.items()
    }
    with pytest.raises(ValueError, match="r9.*only image"):
        evaluation.blind_donors([rec(8, "color"), rec(9, "color", "image")])
    # scoring only the first records, donors may come from the rest of the file
    few = evaluation.blind_donors(records[5:7], pool=records)
    assert set(few) == {"r5", "r6"} and few["r6"]["problem_id"] == "r7"


def test_blind_run_shows_another_records_video(tiny_dir, synth_dir, tmp_path, monkeypatch):
    records, _ = data.load_records(os.path.join(synth_dir, "test.json"))
    records = records[:6]
    shown = []
    load_visual = data.load_visual
    monkeypatch.setattr(data, "load_visual", lambda r, *a: shown.append(r["problem_id"]) or load_visual(r, *a))
    model, processor = model_lib.load(str(tiny_dir))
    size = processor.video_processor.size
    donors = evaluation.blind_donors(records)
    results, errors = evaluation.evaluate(
        model,
        processor,
        records,
        num_frames=4,
        min_pixels=size["shortest_edge"],
        max_pixels=size["longest_edge"],
        max_new_tokens=2,
        batch_size=3,
        donors=donors,
        progress=False,
    )
    assert not errors and len(results) == 6
    assert shown == [donors[r["problem_id"]]["problem_id"] for r in records]
    assert all(s != r["problem_id"] for s, r in zip(shown, records))


def test_compare_two_runs(tmp_path):
    for name, rewards in (("a", [0.1, 0.5, 0.9]), ("b", [0.2, 0.2, 0.4])):
        os.makedirs(tmp_path / name)
        with open(tmp_path / name / "metrics.jsonl", "w") as f:
            for step, r in enumerate(rewards, 1):
                f.write(
                    json.dumps({"step": step, "reward/mean": r, "reward/accuracy": r / 2, "time/step_s": 1.5}) + "\n"
                )
    out = _cli("compare", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "cmp.md"))
    assert "| a | 3 | 0.900 | 0.450 |  | 4.500 |" in out
    assert os.path.getsize(tmp_path / "cmp.png") > 1000


def test_ablation_table_means_and_stds(tmp_path):
    runs = {}
    for name, scores in (
        ("grpo", [0.4, 0.6]),
        ("t_grpo", [0.5, 0.5]),
        ("grpo+da", [0.3, 0.5]),
        ("reg_grpo+iter2", [0.2, 0.4]),
    ):
        for seed, score in enumerate(scores):
            d = tmp_path / f"{name}-{seed}"
            os.makedirs(d)
            json.dump(
                {
                    "sft": {"overall": 0.2 + 0.1 * seed, "temporal": 0.1, "static": 0.3},
                    "rl": {"overall": score, "temporal": score - 0.1, "static": score + 0.1},
                },
                open(d / "summary.json", "w"),
            )
            with open(d / "metrics.jsonl", "w") as f:
                for zero, before, after, ordered, shuffled, changed in (
                    (0.5, 0.5, 0.25, 0.6, 0.4, 0.0),
                    (0.25, 0.75, 0.25, 0.4, 0.4, 0.5),
                ):
                    f.write(
                        json.dumps(
                            {
                                "adv/zero_std_frac": zero,
                                "da/zero_std_before": before,
                                "da/zero_std_after": after,
                                "tgrpo/acc_ordered": ordered,
                                "tgrpo/acc_shuffled": shuffled,
                                "tgrpo/adv_changed_frac": changed,
                                "reggrpo/active_frac": 0.5,
                            }
                        )
                        + "\n"
                    )
            runs.setdefault(name, []).append(str(d))
    table = ablation_lib.ablation_table(runs)
    # sample std of two values a, b: |a - b| / sqrt(2), so 0.1 apart -> 0.071, 0.2 apart -> 0.141
    assert "| SFT (start of every run) | 2 | 0.250 ± 0.071 | - |" in table
    # grpo: RL 0.4, 0.6 against SFT 0.2, 0.3 -> gains 0.2, 0.3
    assert (
        "| SFT + grpo | 2 | 0.500 ± 0.141 | 0.250 ± 0.071 (2 of 2) | 0.400 ± 0.141 | 0.600 ± 0.141 | "
        "0.375 ± 0.000 | - | - | - |" in table
    )
    # ordered - shuffled
    assert "| SFT + t_grpo | 2 | 0.500 ± 0.000 | 0.250 ± 0.071 (2 of 2) |" in table and "| 0.100 ± 0.000 |" in table
    assert "| SFT + grpo+da | 2 | 0.400 ± 0.141 | 0.150 ± 0.071 (2 of 2) |" in table  # 0.3 - 0.2, 0.5 - 0.3
    assert "0.625 ± 0.000 -> 0.250 ± 0.000" in table  # DA: vanishing advantage before -> after
    # T-GRPO: the gap, then its bonus changed a quarter of the groups
    assert "| 0.100 ± 0.000 | 0.250 ± 0.000 | - |" in table
    # Reg-GRPO, 2 updates: the regression acts on half of them
    assert table.splitlines()[-1].endswith("| - | - | 0.500 ± 0.000 | - | - |")  # no KL share or step time logged
    # a row that has fewer seeds (an ablation still running) does not shrink the SFT row to its seeds
    partial = ablation_lib.ablation_table({"grpo": runs["grpo"][:1], "t_grpo": runs["t_grpo"]})
    assert "| SFT (start of every run) | 2 | 0.250 ± 0.071 | - |" in partial
    assert "| SFT + grpo | 1 | 0.400 ± - |" in partial


def test_ablation_plot_means_over_seeds_and_paired_differences(tmp_path):
    """The figure's numbers: training accuracy averaged over seeds step by step (cut at the shortest run),
    held-out differences from GRPO of the same seed (GRPO itself: from its own start)."""
    runs = {}
    for name, accuracies, (sft, rl) in (
        ("grpo", ([0.2, 0.4, 0.6], [0.4, 0.6]), ([0.5, 0.7], [0.6, 0.6])),
        ("rloo", ([0.5, 0.5], [0.1, 0.3]), ([0.5, 0.7], [0.5, 0.9])),
    ):
        for seed, accuracy in enumerate(accuracies):
            d = tmp_path / f"{name}-{seed}"
            os.makedirs(d)
            json.dump({"sft": {"overall": sft[seed]}, "rl": {"overall": rl[seed]}}, open(d / "summary.json", "w"))
            with open(d / "metrics.jsonl", "w") as f:
                f.writelines(json.dumps({"step": k + 1, "reward/accuracy": a}) + "\n" for k, a in enumerate(accuracy))
            runs.setdefault(name, []).append(str(d))
    drawn = ablation_lib.ablation_plot(runs, str(tmp_path / "ablation.png"))
    steps, accuracy, gains = drawn["grpo"]  # the baseline: against its own start
    assert steps == [1, 2] and np.allclose(accuracy, [0.3, 0.5]) and np.allclose(gains, [0.1, -0.1])
    # rloo against grpo of the same seed: 0.5 - 0.6, 0.9 - 0.6
    assert np.allclose(drawn["rloo"][1], [0.3, 0.4]) and np.allclose(drawn["rloo"][2], [-0.1, 0.3])
    assert os.path.getsize(tmp_path / "ablation.png") > 5000


def _bench(*args):
    out = subprocess.run([sys.executable, "bench.py", *args], cwd=ROOT, env=ENV, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    return out.stdout


def _finished_runs(out, table):
    """Run folders as the ablation leaves them: {row: {seed: (sft, rl overall, temporal, static)}}."""
    for name, by_seed in table.items():
        for seed, (sft, rl, temporal, static) in by_seed.items():
            d = out / f"{name.replace('+', '-')}-seed{seed}"
            os.makedirs(d)
            summary = {
                "seed": seed,
                "sft": {"overall": sft},
                "rl": {"overall": rl, "temporal": temporal, "static": static},
            }
            json.dump(summary, open(d / "summary.json", "w"))
            with open(d / "metrics.jsonl", "w") as f:
                f.write(json.dumps({"step": 1, "reward/accuracy": rl, "loss/kl_grad_share": 0.02, "time/step_s": 4.0}))


def test_paired_differences_by_hand():
    """Three seeds, computed on paper: differences 0.1, 0.0, 0.2 -> mean 0.1, sd 0.1, standard error
    0.1 / sqrt(3) = 0.057735, t_0.975(2) = 4.303: interval 0.1 +- 0.248433 = [-0.148, +0.348]; 2 up, 0 down
    (a tie is neither); seeds to detect 0.05: ((1.960 + 0.842) * 0.1 / 0.05)^2 = 31.4 -> 32."""
    p = ablation_lib.paired({0: 0.6, 1: 0.5, 2: 0.9, 7: 0.1}, {0: 0.5, 1: 0.5, 2: 0.7})  # seed 7: no pair
    assert p["n"] == 3 and abs(p["mean"] - 0.1) < 1e-12 and abs(p["sd"] - 0.1) < 1e-12
    assert abs(p["low"] + 0.148433) < 1e-5 and abs(p["high"] - 0.348433) < 1e-5
    assert (p["up"], p["down"], p["seeds_for_0.05"]) == (2, 0, 32)
    assert ablation_lib.paired_cell(p) == "+0.100 [-0.148, +0.348] 2/0"
    # five seeds, all up by 0.1 +- 0.01: t_0.975(4) = 2.776 keeps the interval off 0
    q = ablation_lib.paired(
        {s: 0.5 + d for s, d in enumerate([0.09, 0.1, 0.11, 0.1, 0.1])}, dict.fromkeys(range(5), 0.5)
    )
    assert abs(q["high"] - q["low"] - 2 * 2.776 * q["sd"] / 5**0.5) < 1e-9
    assert ablation_lib.paired_cell(q).endswith("* 5/0")


def test_ablation_report_from_finished_runs(tmp_path):
    """`bench.py ablation --report` trains nothing: the paired table from the run folders alone, rows paired
    with GRPO by seed (seed 2 of t_grpo is missing, so its difference has two seeds)."""
    _finished_runs(
        tmp_path,
        {
            "grpo": {0: (0.5, 0.6, 0.5, 0.7), 1: (0.4, 0.5, 0.4, 0.6), 2: (0.3, 0.7, 0.6, 0.8)},
            "t_grpo": {0: (0.5, 0.7, 0.7, 0.7), 1: (0.4, 0.4, 0.4, 0.4)},
        },
    )
    out = _bench("ablation", "--seeds", "0", "1", "2", "--out", str(tmp_path), "--rows", "grpo", "t_grpo", "--report")
    lines = out.splitlines()
    # grpo: RL - SFT = 0.1, 0.1, 0.4 -> mean 0.2, sd 0.173205, t(2) 4.303: +-0.430318
    assert "| grpo | 3 | +0.200 [-0.230, +0.630] 3/0 | - | - | - | - | - |" in lines
    # t_grpo - SFT: 0.2, 0.0; - grpo: 0.1, -0.1 -> mean 0, sd 0.141421, t(1) 12.706: +-1.270600; temporal 0.2,
    # 0.0 (a tie is neither up nor down); static 0.0, -0.2
    row = "| t_grpo | 2 | +0.100 [-1.171, +1.371] 1/0 | +0.000 [-1.271, +1.271] 1/1 | +0.100 [-1.171, +1.371] 1/0 |"
    assert any(line.startswith(row) for line in lines), out
    assert "| -0.100 [-1.371, +1.171] 0/1 | 0.141 | 63 |" in out  # ((2.802 * 0.141421 / 0.05)^2 = 62.8
    assert "| SFT + t_grpo | 2 |" in out and "| 0.020 ± 0.000 | 4.000 ± 0.000 |" in out  # KL share, s / step
    assert os.path.getsize(tmp_path / "ablation.png") > 5000 and os.path.isfile(tmp_path / "ablation.md")
    assert not os.path.exists(tmp_path / "grpo-seed3")


def test_ablation_continues_a_row_cut_off_after_its_checkpoint(tmp_path):
    """A row killed during its final evaluation has checkpoint-60 and no summary.json: train.py refuses to start
    afresh over it, so the ablation passes --resume; a row with no checkpoint starts as it was."""
    run_dir = tmp_path / "grpo-seed0"
    fresh = ablation_lib.row_command(["--algo", "grpo"], 0, str(run_dir), ["--max_steps", "60"])
    assert fresh[-6:] == ["--seed", "0", "--output_dir", str(run_dir), "--max_steps", "60"]
    os.makedirs(run_dir / "checkpoint-60")
    cut = ablation_lib.row_command(["--algo", "grpo"], 0, str(run_dir), ["--max_steps", "60"])
    assert cut == fresh + ["--resume"]


def test_main_job_continues_an_sft_start_cut_off_after_its_checkpoint(tmp_path, monkeypatch):
    """The cached SFT start's folder holds checkpoint-300 but no final/ when the job was killed between the two:
    the next main job resumes it instead of stopping on train.py's refusal to start afresh over a checkpoint."""
    import train

    monkeypatch.chdir(tmp_path)
    args = train.parse_args(["--algo", "reg_grpo"])
    assert not evaluation.main_job_sft_args(args).resume
    os.makedirs(os.path.join(evaluation.main_job_sft_args(args).output_dir, "checkpoint-300"))
    assert evaluation.main_job_sft_args(args).resume


def test_family_table_means_over_seeds(tmp_path):
    def fam(c):
        return {"color": {"score": c, "n": 31}, "size": {"score": 0.4, "n": 32}}

    runs = {}
    for name, colour in (("grpo", [0.5, 0.7]), ("reg_grpo", [0.25, 0.25])):
        for seed, score in enumerate(colour):
            d = tmp_path / f"{name}-{seed}"
            os.makedirs(d)
            json.dump(
                {"sft": {"by_question_family": fam(0.2 + 0.2 * seed)}, "rl": {"by_question_family": fam(score)}},
                open(d / "summary.json", "w"),
            )
            runs.setdefault(name, []).append(str(d))
    table = ablation_lib.family_table(runs).splitlines()
    assert table[0] == "| family (n) | SFT | SFT + grpo | SFT + reg_grpo |"
    assert table[2] == "| color (31) | 0.300 | 0.600 | 0.250 |"  # SFT: (0.2 + 0.4) / 2; grpo: (0.5 + 0.7) / 2
    assert table[3] == "| size (32) | 0.400 | 0.400 | 0.400 |"


def test_run_takes_frames_and_pixels_from_the_training_run(warm, tmp_path):
    """A run's final/ is evaluated with the frames and pixel budget train.py used (its args.json), said at the start
    and saved with the results; a flag still wins, and a folder without args.json gets the tiny model's defaults."""
    import argparse
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(os.path.join(warm[0], "final"), run_dir / "final")
    os.remove(run_dir / "final" / "args.json")
    trained = json.load(open(os.path.join(warm[0], "args.json")))
    # the run folder's copy
    json.dump({**trained, "num_frames": 2, "max_pixels": 56 * 56}, open(run_dir / "args.json", "w"))
    records = json.load(open(warm[1]))
    small = tmp_path / "one.json"
    json.dump([r for r in records if r["data_type"] == "video"][:1], open(small, "w"))
    out = _cli(
        "run",
        "--model",
        str(run_dir / "final"),
        "--data",
        str(small),
        "--out",
        str(tmp_path / "a"),
        "--max_new_tokens",
        "2",
    )
    assert f"2 frames per video, 3136..3136 pixels per frame ({run_dir / 'args.json'})" in out, out
    assert json.load(open(tmp_path / "a" / "one.json"))["settings"] == {
        "num_frames": 2,
        "min_pixels": 3136,
        "max_pixels": 3136,
    }

    def flags(**kw):
        return argparse.Namespace(
            **{"model": str(run_dir / "final"), "num_frames": None, "min_pixels": None, "max_pixels": None, **kw}
        )

    frames, lo, hi, source = evaluation.view_settings(flags(num_frames=4))
    assert (frames, lo, hi) == (4, None, 3136) and source.endswith("; --num_frames from the command line")
    os.remove(run_dir / "args.json")
    assert evaluation.view_settings(flags()) == (4, None, None, "the tiny model's defaults")
    big = tmp_path / "big"
    big.mkdir()
    (big / "config.json").write_text(json.dumps({"text_config": {"hidden_size": 2048}}))
    # the papers' for a real checkpoint
    assert evaluation.view_settings(flags(model=str(big)))[:3] == (16, None, 128 * 28 * 28)
    assert os.path.isfile(os.path.join(warm[0], "final", "args.json"))  # train.py writes it into final/ too


def test_imports_run_one_way():
    """No import circle among the project's files, and no import of the project's own modules inside a function:
    each file imports only files earlier in this order, at its top."""
    import ast
    import glob

    tools = sorted(
        os.path.relpath(p, ROOT)[:-3].replace(os.sep, ".") for p in glob.glob(os.path.join(ROOT, "tools", "*.py"))
    )
    order = ["rewards", "data", "model", "infra", "eval", "train", *tools, "bench"]
    project = set(order) | {"tools"}
    for i, name in enumerate(order):
        tree = ast.parse(open(os.path.join(ROOT, name.replace(".", os.sep) + ".py")).read())
        imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        imported |= {
            f"{n.module}.{a.name}"
            for n in ast.walk(tree)
            if isinstance(n, ast.ImportFrom) and n.module
            for a in n.names
        }
        later = imported & set(order[i:])
        assert not later, f"{name}.py imports {sorted(later)}"
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                inner = [a.name for n in ast.walk(node) if isinstance(n, ast.Import) for a in n.names]
                inner += [n.module for n in ast.walk(node) if isinstance(n, ast.ImportFrom) and n.module]
                own = [m for m in inner if m.split(".")[0] in project]
                assert not own, f"{name}.py: {node.name} imports {own} inside the function"


def test_readme_commands_exist():
    """Every `python X.py [subcommand]` and `accelerate launch ... train.py` the README names answers --help."""
    import re

    readme = open(os.path.join(ROOT, "README.md")).read()
    named = set(re.findall(r"python (\w+\.py)(?: ([a-z][a-z_]+))?", readme))
    assert ("train.py", "") in named or "accelerate launch train.py" in readme
    named |= {("train.py", "")}
    assert {
        ("eval.py", "run"),
        ("eval.py", "view"),
        ("bench.py", "ablation"),
        ("bench.py", "gpu"),
        ("bench.py", "memory"),
    } <= named, sorted(named)
    for script, sub in sorted(named):
        # no flags: they run at once; the script's help names them
        if script == "bench.py" and sub in ("memory", "decode"):
            assert f"python bench.py {sub}" in open(os.path.join(ROOT, "bench.py")).read().split('"""')[1]
            sub = ""
        out = subprocess.run(
            [sys.executable, script, *([sub] if sub else []), "--help"],
            cwd=ROOT,
            env=ENV,
            capture_output=True,
            text=True,
            timeout=120,
        )
        text = out.stdout + out.stderr
        # bench.py's help is its docstring
        helped = "usage" in text.lower() or (script == "bench.py" and not sub and "python bench.py gpu" in text)
        assert out.returncode == 0 and helped, f"{script} {sub} --help: {text[-500:]}"
