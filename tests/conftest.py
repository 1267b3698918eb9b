"""Shared fixtures: a small synthetic data set, the tiny model, and a short SFT run of it, built once per test
session. Nothing is downloaded."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory):
    import data

    out = str(tmp_path_factory.mktemp("synth"))
    data.synth(out, 28, 12, seed=3, cfg=data.SynthConfig(image_frac=0.2))
    return out


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "benchmark: slow measurements that print numbers; run with `pytest -m benchmark`"
    )


def pytest_collection_modifyitems(config, items):
    """Benchmarks run only when asked for with -m benchmark, so the default suite stays fast. The students'
    exercises (tests/test_exercises.py) fail until written: they run only when that file is named."""
    if not any("test_exercises" in str(arg) for arg in config.args):
        students = [item for item in items if item.path.name == "test_exercises.py"]
        if students:
            config.hook.pytest_deselected(items=students)
            items[:] = [item for item in items if item.path.name != "test_exercises.py"]
    if "benchmark" in (config.getoption("-m") or ""):
        return
    skip = pytest.mark.skip(reason="benchmark: run with -m benchmark")
    for item in items:
        if "benchmark" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    """The built-in tiny Qwen2.5-VL (seed 0), written once per session."""
    import model

    return model.build_tiny(tmp_path_factory.mktemp("tiny") / "qwen-tiny", seed=0)


# train.py through `accelerate launch` in a subprocess (test_train.py, test_scale.py)
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}
# --cpu makes accelerate use its simple launcher: ONE process whatever --num_processes says. Runs of several
# processes go through a config file instead (test_scale.py).
LAUNCH = [
    sys.executable,
    "-m",
    "accelerate.commands.launch",
    "--cpu",
    "--num_machines",
    "1",
    "--mixed_precision",
    "no",
    "--dynamo_backend",
    "no",
]
SFT_STEPS = 40


def run(cmd, timeout=600):
    out = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"{' '.join(cmd)}\nSTDOUT:\n{out.stdout[-3000:]}\nSTDERR:\n{out.stderr[-5000:]}"
    return out


def metrics(run_dir):
    return [json.loads(line) for line in open(os.path.join(run_dir, "metrics.jsonl"))]


@pytest.fixture(scope="session")
def warm(tiny_dir, synth_dir, tmp_path_factory):
    """An SFT run (also the SFT smoke test) on the synthetic set with a one-word chain of thought, so that
    in a few dozen steps the tiny model writes the <think>/<answer> format and RL rewards vary."""
    tmp = tmp_path_factory.mktemp("train")
    records = json.load(open(os.path.join(synth_dir, "train.json")))
    for r in records:
        r["process"] = "<think>ok</think>"
        r["path"] = os.path.join(synth_dir, r["path"])
    data_path = str(tmp / "short.json")
    json.dump(records, open(data_path, "w"))
    out = str(tmp / "sft")
    run(
        LAUNCH
        + [
            "--num_processes",
            "1",
            "train.py",
            "--algo",
            "sft",
            "--model",
            str(tiny_dir),
            "--data",
            data_path,
            "--output_dir",
            out,
            "--max_steps",
            str(SFT_STEPS),
            "--batch_size",
            "4",
            "--learning_rate",
            "2e-3",
            "--save_steps",
            "20",
        ]
    )
    return out, data_path


def rl_args(warm, out, algo, *extra):
    sft_dir, data_path = warm
    return [
        "train.py",
        "--algo",
        algo,
        "--model",
        os.path.join(sft_dir, "final"),
        "--data",
        data_path,
        "--output_dir",
        out,
        "--num_generations",
        "4",
        "--batch_size",
        "1",
        "--max_completion_length",
        "16",
        "--learning_rate",
        "1e-3",
        "--num_frames",
        "4",
        "--seed",
        "1",
        *extra,
    ]
