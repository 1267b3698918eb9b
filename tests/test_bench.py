"""bench.py smoke test: `--quick` prints every row of the table (comparison 4 runs when trl is installed and
says it was skipped, and how to install it, when not), and `memory` prints the memory plan. The numbers of
--quick mean nothing (toy sizes, one process); the parameter counts of the plan are checked exactly."""

import importlib.util
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def bench(*args, timeout=900):  # generous: --quick needs ~50 s of CPU, but a loaded machine stretched it to minutes
    out = subprocess.run(
        [sys.executable, os.path.join(ROOT, "bench.py"), *args],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert out.returncode == 0, f"STDOUT:\n{out.stdout[-3000:]}\nSTDERR:\n{out.stderr[-3000:]}"
    return out.stdout


def test_quick_prints_every_row():
    text = bench("--quick")
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    assert rows[0].startswith("| figure | ours | baseline | ratio | goal | met? |")
    for prefix in (
        "| 1. log-prob pass peak memory",
        "| 1b. max abs diff of per-token log-probs",
        "| 2. rollout time",
        "| 3. step time",
    ):
        row = next((r for r in rows if r.startswith(prefix)), None)
        assert row is not None and "failed" not in row, f"{prefix!r} missing or failed:\n{text}"
    if importlib.util.find_spec("trl") is None:
        assert any(r.startswith("| 4. GRPO step vs TRL") and "skipped" in r for r in rows), text
        assert "SKIPPED: trl is not installed" in text and "pip install -r requirements-bench.txt" in text
    else:
        assert any(r.startswith("| 4a. GRPO step time") for r in rows) and any(
            r.startswith("| 4b. GRPO peak memory") for r in rows
        ), text
    assert "new tokens per completion; both sides sample the same distribution" in text


def test_memory_plan_prints_both_models_and_settings():
    text = bench("memory")
    assert (
        text.count("| item | 3B ZeRO-3 8x80GB | 3B ZeRO-3 8x80GB GC | 3B LoRA 1x24GB") == 2
    )  # default and Video-R1 pixels
    for row in ("| parameters (B) | 3.75 |", "| video tokens per row | 6,144 |", "| video tokens per row | 1,024 |",
                "| **total, ours (update)** |", "| log-prob head, naive |", "| fits in the GPU (ours / naive) |",
                "| **total during rollouts** |",
                "| weights (full: fp32 master, sharded; LoRA: bf16 frozen base) | 1.7 |"):  # fmt: skip
        assert row in text, row
    assert "Assumptions:" in text


@pytest.mark.parametrize("name", ["3B", "7B"])
def test_plan_parameter_counts_match_the_architecture(name):
    """The plan's closed-form count equals the parameters of Qwen2_5_VLForConditionalGeneration built (on the
    meta device, no memory) from the same published sizes."""
    import torch
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    sys.path.insert(0, ROOT)
    from tools import gpu

    c, v = gpu.CONFIGS[name], gpu.VISION
    config = Qwen2_5_VLConfig(
        text_config=dict(vocab_size=c["vocab"], hidden_size=c["hidden"], intermediate_size=c["inter"],
                         num_hidden_layers=c["layers"], num_attention_heads=c["heads"],
                         num_key_value_heads=c["kv_heads"], tie_word_embeddings=c["tied"],
                         rope_parameters={"rope_type": "default", "mrope_section": [16, 24, 24], "rope_theta": 1e6}),
        vision_config=dict(depth=v["depth"], hidden_size=v["width"], intermediate_size=v["inter"], num_heads=16,
                           out_hidden_size=c["hidden"], patch_size=v["patch"], temporal_patch_size=v["temporal"],
                           spatial_merge_size=v["merge"]),
        tie_word_embeddings=c["tied"],
    )  # fmt: skip
    with torch.device("meta"):
        model = Qwen2_5_VLForConditionalGeneration(config)
    assert sum(p.numel() for p in model.parameters()) == sum(gpu.param_counts(c))


def test_gpu_check_scaled_down_runs_every_algorithm():
    """`bench.py gpu --scaled_down`: the GPU check's own script at the tiny model's sizes on the CPU. Every
    algorithm runs train.py's rollout and update functions and moves its trainable weights."""
    text = bench("gpu", "--scaled_down", "--steps", "1")
    rows = {
        line.split(" | ")[0][2:]: line
        for line in text.splitlines()
        if line.startswith("| ") and not line.startswith("| algorithm")
    }
    assert set(rows) - {"---|---|---|---|---|---|---|---|"} == {"sft", "grpo", "t_grpo", "reg_grpo", "grpo+lora"}, text
    for name in ("sft", "grpo", "t_grpo", "reg_grpo"):
        moved = rows[name].split(" | ")[-1]
        n, total = moved.split(" (")[0].split(" / ")
        assert n == total and int(n) > 0, rows[name]  # full fine-tuning: every trainable tensor moved
    assert "compute float32 over fp32 master weights, gradient checkpointing, vision encoder frozen" in text


def test_gpu_check_without_a_gpu_says_so():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    out = subprocess.run(
        [sys.executable, os.path.join(ROOT, "bench.py"), "gpu"],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode != 0 and "no CUDA GPU here" in out.stderr and "--scaled_down" in out.stderr, out.stderr[
        -2000:
    ]


def test_gpu_check_model_and_plan_agree_with_the_published_3b():
    """bench.py gpu's model (model.tiny_config at QWEN25_VL_3B's sizes, on the meta device) has the plan's parameter
    count, and with the vision encoder frozen as train.py freezes it, the plan's trainable count; the plan's
    one-GPU rows are 4 bytes per weight, 4 per trainable gradient, 8 per trainable AdamW moment pair."""
    import torch
    from transformers import Qwen2_5_VLForConditionalGeneration

    sys.path.insert(0, ROOT)
    import model as M
    from tools import gpu

    with torch.device("meta"):
        model = Qwen2_5_VLForConditionalGeneration(M.tiny_config(**gpu.QWEN25_VL_3B))
    M.configure_training(model, freeze_vision=True)
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert total == sum(gpu.param_counts(gpu.CONFIGS["3B"])) == 3_754_622_976
    merger = (
        1280 + 5120 * 5120 + 5120 + 5120 * 2048 + 2048
    )  # norm of width 1280, 2x2 merged patches -> MLP -> hidden 2048
    vision = gpu.param_counts(gpu.CONFIGS["3B"])[2]
    assert trainable == total - (vision - merger)
    plan = gpu.plan("3B", "full", True, gpus=1, frozen_vision=True, max_pixels=128 * 28 * 28)
    assert (plan["weights"], plan["grads"], plan["optimizer"], plan["casts"]) == (
        4 * total,
        4 * trainable,
        8 * trainable,
        2 * trainable,
    )
    assert plan["reference"] == 2 * total and plan["gathered"] == 0 and plan["vision_act"] == 0


def test_group_stats_by_hand():
    sys.path.insert(0, ROOT)
    from tools import profiling

    rows = [
        ("color", [2.0, 2.0, 2.0, 2.0], [1.0, 1.0, 1.0, 1.0]),  # all right: zero std
        ("color", [1.0, 2.0, 1.0, 1.0], [0.0, 1.0, 0.0, 0.0]),  # one right: a signal
        # equal partial credit: zero std, and 0.5 counts as correct (accuracy > train.CORRECT = 0.1, Video-R1's)
        ("size", [1.5, 1.5, 1.5, 1.5], [0.5, 0.5, 0.5, 0.5]),
        ("size", [0.0, 1.9, 1.8, 1.0], [0.0, 0.9, 0.8, 0.0]),  # graded, format broken in the first
    ]
    stats = profiling.group_stats(rows)
    assert stats["color"] == {
        "groups": 2,
        "zero_std_frac": 0.5,
        "all_correct_frac": 0.5,
        "all_wrong_frac": 0.0,
        "accuracy": 0.625,
    }
    assert stats["size"] == {
        "groups": 2,
        "zero_std_frac": 0.5,
        "all_correct_frac": 0.5,
        "all_wrong_frac": 0.0,
        "accuracy": 0.4625,
    }
    assert stats["all"] == {
        "groups": 4,
        "zero_std_frac": 0.5,
        "all_correct_frac": 0.5,
        "all_wrong_frac": 0.0,
        "accuracy": 0.5437,
    }


def test_groups_on_the_tiny_model(tiny_dir, synth_dir, tmp_path):
    from test_eval import _five_records_and_a_missing_video

    data_path = _five_records_and_a_missing_video(synth_dir, "train", tmp_path)
    out = bench(
        "groups", "--model", str(tiny_dir), "--data", str(data_path), "--max_new_tokens", "8", "--batch_size", "3"
    )
    stats = json.loads(out.strip().splitlines()[-1])
    assert stats["all"]["groups"] == 5 and stats["all"]["unreadable"] == 1  # the missing video is counted, not scored
    assert sum(t["groups"] for k, t in stats.items() if k != "all") == 5


def test_decode_benchmark_prints_both_videos():
    text = bench("decode")
    assert "| 90 frames |" in text and "| 1,800 frames |" in text and "ratio 1,800 / 90:" in text


def test_profile_prints_the_breakdown_and_the_floor():
    """`bench.py profile` at toy sizes: every part of the SFT and RL steps, and the LM head's floor."""
    text = bench("profile", "--steps", "2", "--batch_size", "2", "--max_new_tokens", "4")
    for row in (
        "| **sft step** |",
        "| **reg_grpo step** |",
        "| reg_grpo generate: transformer |",
        "| reg_grpo generate: sampling |",
        "| reg_grpo update: backward + optimizer |",
        "| reg_grpo rollout log-probs: LM head |",
        "LM head forward:",
    ):
        assert row in text, (row, text[-3000:])
