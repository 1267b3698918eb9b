"""train.py end to end on the tiny model: every --algo (and --da) through `accelerate launch`, and a run killed
with SIGKILL then resumed ending with the same weights as an uninterrupted one."""

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import ENV, LAUNCH, ROOT, SFT_STEPS, metrics, rl_args, run
from safetensors.torch import load_file

import eval as evaluation
import infra
import model as M
import train


def test_sft_runs_learns_and_saves(warm):
    from transformers import Qwen2_5_VLForConditionalGeneration

    sft_dir, _ = warm
    m = metrics(sft_dir)
    assert [x["step"] for x in m] == list(range(1, SFT_STEPS + 1))
    assert m[-1]["loss/total"] < 0.5 * m[0]["loss/total"]
    assert os.path.isdir(os.path.join(sft_dir, "checkpoint-20")) and os.path.isdir(
        os.path.join(sft_dir, f"checkpoint-{SFT_STEPS}")
    )
    saved = json.load(open(os.path.join(sft_dir, "args.json")))
    assert saved["algo"] == "sft" and saved["learning_rate"] == 2e-3 and saved["num_frames"] == 4
    Qwen2_5_VLForConditionalGeneration.from_pretrained(os.path.join(sft_dir, "final"))


COMMON = [
    "reward/mean",
    "reward/std",
    "reward/accuracy",
    "reward/format",
    "adv/zero_std_frac",
    "loss/total",
    "loss/kl",
    "completions/mean_length",
    "time/step_s",
    "lr",
    "step",
]


@pytest.mark.parametrize(
    "algo,extra,keys",
    [
        ("grpo", ["--beta", "0.04", "--advantage", "rloo"], ["loss/clip_frac"]),
        ("t_grpo", [], ["tgrpo/acc_ordered", "tgrpo/acc_shuffled", "tgrpo/bonus_frac", "tgrpo/adv_changed_frac"]),
        (
            "reg_grpo",
            ["--batch_size", "4", "--beta", "0.1"],
            ["reggrpo/rho_std", "reggrpo/mse", "reggrpo/active_frac", "loss/kl_grad_share"],
        ),
        (
            "reg_grpo",
            # --da_all_groups: every group is augmented after the first step and replaced, so the page shows it
            ["--da", "--da_all_groups", "--da_window", "2", "--da_threshold", "0.0", "--batch_size", "4"],
            [
                "da/easy_frac",
                "da/hard_frac",
                "da/zero_std_before",
                "da/zero_std_after",
                "da/easy_zero_std_after",
                "da/hard_zero_std_after",
            ],
        ),
    ],
)
def test_rl_algorithms_through_accelerate_launch(warm, tmp_path, algo, extra, keys):
    out = str(tmp_path / algo)
    run(
        LAUNCH
        + ["--num_processes", "1"]
        + rl_args(warm, out, algo, "--max_steps", "2", "--log_completions_steps", "1", *extra)
    )
    m = metrics(out)
    assert len(m) == 2
    for key in COMMON + keys:
        assert all(key in row and row[key] == row[key] for row in m), key  # present and not NaN
    assert os.path.isfile(os.path.join(out, "final", "model.safetensors"))
    assert os.path.getsize(os.path.join(out, "completions.jsonl")) > 0
    _check_rollout_page(out, algo, "--da" in extra)
    if algo == "t_grpo":
        assert all(0 <= row["tgrpo/acc_shuffled"] <= 1 and 0 <= row["tgrpo/adv_changed_frac"] <= 1 for row in m)
    # Reg-GRPO's default: two updates a step, each on half the groups; the first has rho == 0, the second
    # not (its rollouts were sampled before the first update moved the policy)
    if algo == "reg_grpo" and "--da" not in extra:
        assert json.load(open(os.path.join(out, "args.json")))["minibatches"] == 2
        assert any(row["adv/zero_std_frac"] < 1 for row in m), (
            "no group had a learning signal: the test would prove nothing"
        )
        active = [row["reggrpo/active_frac"] for row in m]
        assert set(active) <= {0.0, 0.5} and 0.5 in active, active
    if "rloo" in extra:
        assert json.load(open(os.path.join(out, "args.json")))["advantage"] == "rloo"
    if "--da" in extra:  # threshold 0: after the first step every group is augmented one way or the other
        assert m[1]["da/easy_frac"] + m[1]["da/hard_frac"] > 0


class _Page(__import__("html.parser").parser.HTMLParser):
    """Collects what the rollout page shows: groups, completion rows with their reward and advantage cells, images."""

    def __init__(self):
        super().__init__()
        self.groups, self.rows, self.images, self.cell, self.text = 0, [], [], None, ""

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        classes = (attrs.get("class") or "").split()
        if tag == "div" and "group" in classes:
            self.groups += 1
        if tag == "tr" and "completion" in classes:
            self.rows.append({})
        if tag == "td" and self.rows and classes and classes[0] in ("reward", "adv"):
            self.cell, self.text = classes[0], ""
        if tag == "img":
            self.images.append(attrs["src"])

    def handle_data(self, data):
        if self.cell:
            self.text += data

    def handle_endtag(self, tag):
        if tag == "td" and self.cell:
            self.rows[-1][self.cell] = float(self.text)
            self.cell = None


def _check_rollout_page(run_dir, algo, da):
    """`eval.py view RUN_DIR`: one block per logged group, one row per completion whose reward and advantage are
    the logged ones, and decodable frame thumbnails (T-GRPO: a second, shuffled strip)."""
    import base64
    import io

    from PIL import Image

    out = run([sys.executable, "eval.py", "view", run_dir])
    assert "rollouts.html" in out.stdout
    logged = [json.loads(line) for line in open(os.path.join(run_dir, "completions.jsonl"))]
    page = _Page()
    page.feed(open(os.path.join(run_dir, "rollouts.html")).read())
    per_step = min(2, json.load(open(os.path.join(run_dir, "args.json")))["batch_size"])  # infra.LOGGED_GROUPS a step
    assert page.groups == len(logged) == 2 * per_step and {row["step"] for row in logged} == {1, 2}
    expected = [(r, a) for row in logged for r, a in zip(row["rewards"], row["advantages"])]
    assert len(page.rows) == len(expected) == sum(len(row["completions"]) for row in logged)
    for shown, (reward, advantage) in zip(page.rows, expected):
        assert shown["reward"] == pytest.approx(reward, abs=1e-3) and shown["adv"] == pytest.approx(advantage, abs=1e-3)
    frames = sum(len(row["frames"]) for row in logged) + sum(len(row["frames"]) for row in logged if row["temporal"])
    assert len(page.images) == frames > 0
    for src in page.images:
        assert Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).size[1] == 64
    if algo == "t_grpo":
        assert any(row["temporal"] for row in logged)
    if da:
        assert any(row["augmentation"] for row in logged)
    m = {row["step"]: row for row in metrics(run_dir)}
    for row in logged:  # the logged advantages are the step's: their group mean is 0 for GRPO's estimator
        assert abs(sum(row["advantages"])) < 1e-4 and row["step"] in m


def _weights(run_dir):
    return load_file(os.path.join(run_dir, "final", "model.safetensors"))


def test_killed_and_resumed_run_ends_with_the_same_weights(warm, tmp_path):
    def args(out):
        return [sys.executable] + rl_args(
            warm, out, "grpo", "--max_steps", "4", "--save_steps", "2", "--batch_size", "2"
        )

    full = str(tmp_path / "full")
    run(args(full))
    start, end = load_file(os.path.join(warm[0], "final", "model.safetensors")), _weights(full)
    assert any(not torch.equal(start[k], end[k]) for k in end), "the policy never changed: the test would prove nothing"

    cut = str(tmp_path / "cut")
    proc = subprocess.Popen(args(cut), cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not os.path.isdir(os.path.join(cut, "checkpoint-2")) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not os.path.isdir(os.path.join(cut, "final")), "the run finished before it could be killed"
    run(args(cut) + ["--resume"])
    resumed = _weights(cut)
    for k in end:
        assert torch.allclose(resumed[k], end[k], atol=1e-5), k
    assert [row["step"] for row in metrics(cut)] == [1, 2, 3, 4]
    assert [row["reward/mean"] for row in metrics(cut)] == [row["reward/mean"] for row in metrics(full)]


def test_main_job_shortened(tmp_path):
    """`train.py --algo reg_grpo` with no --model/--data, every stage shrunk, in an empty folder: builds
    the tiny model and the data, SFT, evaluation, RL, evaluation, table and summary.json."""
    out = subprocess.run(
        [
            sys.executable,
            os.path.join(ROOT, "train.py"),
            "--algo",
            "reg_grpo",
            "--synth_train",
            "16",
            "--synth_test",
            "6",
            "--sft_steps",
            "2",
            "--sft_batch_size",
            "2",
            "--max_steps",
            "1",
            "--batch_size",
            "2",
            "--num_generations",
            "2",
            "--max_completion_length",
            "8",
        ],
        cwd=tmp_path,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-5000:]
    summary = json.load(open(tmp_path / "runs" / "reg_grpo-seed0" / "summary.json"))
    assert 0 <= summary["sft_accuracy"] <= 1 and 0 <= summary["rl_accuracy"] <= 1 and summary["wall_time_s"] > 0
    assert summary["sft"]["n"] == summary["rl"]["n"] == 6
    assert summary["sft_blind"]["n"] == summary["rl_blind"]["n"] == 6 and 0 <= summary["rl_blind_accuracy"] <= 1
    assert "| temporal questions |" in out.stdout and "| overall, another record's video (blind) |" in out.stdout
    assert os.path.isdir(tmp_path / "data" / "tiny-qwen2.5-vl")
    # the SFT start and (by default) RL train on every problem type, on a benchmark whose squares have three widths
    assert json.load(open(tmp_path / "runs" / "sft-cold-start-2x2-seed0" / "args.json"))["problem_types"] == ""
    assert json.load(open(tmp_path / "runs" / "reg_grpo-seed0" / "args.json"))["problem_types"] == ""
    assert json.load(open(tmp_path / "data" / "synth" / "synth_config.json"))["size_percents"] == [20, 50, 80]


def test_main_job_sft_start_trains_every_weight():
    """--freeze_vision and --lora_r in the main job reach RL, not the SFT start from random weights."""
    args = train.parse_args(
        [
            "--algo",
            "reg_grpo",
            "--freeze_vision",
            "--lora_r",
            "8",
            "--sft_steps",
            "7",
            "--problem_types",
            "all",
            "--seed",
            "3",
        ]
    )
    sft = evaluation.main_job_sft_args(args)
    assert (sft.algo, sft.freeze_vision, sft.lora_r, sft.max_steps, sft.problem_types) == ("sft", False, 0, 7, "")
    assert sft.learning_rate == 1e-3 and sft.output_dir == "runs/sft-cold-start-7x8-seed3"
    assert args.freeze_vision and args.lora_r == 8  # the RL stage keeps them


def test_vision_encoder_frozen_for_rl_and_trained_for_sft_unless_told():
    assert [train.parse_args(["--algo", a]).freeze_vision for a in ("sft", "grpo", "t_grpo", "reg_grpo")] == [
        False,
        True,
        True,
        True,
    ]
    assert train.parse_args(["--algo", "reg_grpo", "--no-freeze_vision"]).freeze_vision is False
    assert train.parse_args(["--algo", "sft", "--freeze_vision"]).freeze_vision is True
    assert evaluation.main_job_sft_args(train.parse_args(["--algo", "grpo"])).freeze_vision is False


def test_launcher_cpu_threads():
    """Only a single CPU process that accelerate launched without --cpu (so with one thread) gets more."""

    plain = {"ACCELERATE_USE_CPU": "False", "OMP_NUM_THREADS": "1"}
    assert infra.launcher_cpu_threads(plain, False, 2) == 2
    assert infra.launcher_cpu_threads(plain, True, 2) is None  # a GPU: accelerate's processes are its business
    # several processes share the cores
    assert infra.launcher_cpu_threads({**plain, "WORLD_SIZE": "2"}, False, 2) is None
    # --cpu: sized by accelerate or by the user
    assert infra.launcher_cpu_threads({**plain, "ACCELERATE_USE_CPU": "True"}, False, 2) is None
    assert infra.launcher_cpu_threads({**plain, "OMP_NUM_THREADS": "3"}, False, 8) is None
    assert infra.launcher_cpu_threads({}, False, 2) is None  # python train.py: torch's own default
    assert infra.launcher_cpu_threads(plain, False, 1) is None


def test_plain_accelerate_launch_uses_every_core_on_a_cpu_machine():
    """`accelerate launch train.py` with no config on a machine without a GPU: the process says how many threads
    it uses."""
    import psutil

    env = {k: v for k, v in ENV.items() if k not in ("OMP_NUM_THREADS", "ACCELERATE_USE_CPU")}
    out = subprocess.run(
        [sys.executable, "-m", "accelerate.commands.launch", "train.py", "--help"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    cores = psutil.cpu_count(logical=False) or 1
    if torch.cuda.is_available() or cores == 1:
        pytest.skip("nothing to adjust on this machine")
    assert f"using {cores} threads" in out.stderr, out.stderr[-2000:]


def test_problem_types_filter_names_what_the_file_has(warm, tmp_path):
    """--problem_types keeps only those records; when none is left the run stops and says what there is."""
    out = subprocess.run(
        [sys.executable] + rl_args(warm, str(tmp_path / "ocr"), "grpo", "--max_steps", "1", "--problem_types", "OCR"),
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode != 0
    message = out.stderr.strip().splitlines()[-1]
    assert (
        "no usable records in" in message
        and "of problem type OCR (it has: multiple choice, " in message
        and "regression" in message
    ), out.stderr[-2000:]


def test_main_job_refuses_a_cached_benchmark_made_with_other_settings(tmp_path):
    """A data/synth (or an SFT start trained on one) from other --synth_* settings is not silently reused."""
    args = train.parse_args(["--algo", "reg_grpo", "--synth_train", "16", "--synth_test", "6"])
    wanted = infra.synth_config(args)
    assert wanted["families"] == ("color", "approach", "size") and wanted["train"] == 16 and wanted["size"] == 0.5
    assert wanted["size_percents"] == (20, 50, 80)
    path = tmp_path / "synth_config.json"
    path.write_text(json.dumps(wanted))
    infra.check_synth_config(str(path), wanted, "delete it")  # same settings: accepted
    path.write_text(json.dumps({**wanted, "families": list(infra.ALL_FAMILIES)}))
    with pytest.raises(
        SystemExit,
        match=r"synth_config.json: made with other benchmark settings \(families: .*direction.* there, .*; delete it",
    ):
        infra.check_synth_config(str(path), wanted, "delete it")
    path.write_text(json.dumps({**wanted, "size": 0.35}))
    with pytest.raises(SystemExit, match=r"size: 0.35 there, 0.5 asked"):
        infra.check_synth_config(str(path), wanted, "delete it")
    # made before the option existed, so with any width:
    path.write_text(json.dumps({k: v for k, v in wanted.items() if k != "size_percents"}))
    with pytest.raises(SystemExit, match=r"size_percents: \[\] there, \[20, 50, 80\] asked"):
        infra.check_synth_config(str(path), wanted, "delete it")  # not today's default,
    any_width = infra.synth_config(
        train.parse_args(
            ["--algo", "reg_grpo", "--synth_train", "16", "--synth_test", "6", "--synth_size_percents", ""]
        )
    )
    infra.check_synth_config(str(path), any_width, "delete it")  # but what `--synth_size_percents ""` asks for
    with pytest.raises(SystemExit, match="no synth_config.json"):
        infra.check_synth_config(str(tmp_path / "missing.json"), wanted, "delete it")
    with pytest.raises(ValueError, match="unknown or no families"):
        infra.synth_config(train.parse_args(["--synth_families", "color,colour"]))
    with pytest.raises(ValueError, match="size percents '20,fifty'"):
        infra.synth_config(train.parse_args(["--synth_size_percents", "20,fifty"]))
    assert any_width["size_percents"] == ()


def _mean_step(start, end):
    """Mean |w_end - w_start| over every element of every weight, with the start rounded to the end's dtype
    (a run that holds bf16 weights starts from the bf16-rounded checkpoint)."""
    moved = [(end[k].float() - start[k].to(end[k].dtype).float()).abs() for k in end]
    return float(torch.cat([m.flatten() for m in moved]).mean())


def test_bf16_compute_moves_weights_as_far_as_fp32(tiny_dir, synth_dir, tmp_path):
    """--dtype bf16 is the compute dtype; the weights AdamW updates stay fp32. Pure bf16 weights lose every
    lr-1e-6 step smaller than bf16's spacing: before fp32 master weights, 3 SFT steps moved them 0.023x as
    far as an fp32 run."""
    start = load_file(os.path.join(tiny_dir, "model.safetensors"))
    steps = {}
    for dtype in ("fp32", "bf16"):
        out = str(tmp_path / dtype)
        result = run(
            [
                sys.executable,
                "train.py",
                "--algo",
                "sft",
                "--model",
                str(tiny_dir),
                "--data",
                os.path.join(synth_dir, "train.json"),
                "--output_dir",
                out,
                "--max_steps",
                "3",
                "--batch_size",
                "2",
                "--learning_rate",
                "1e-6",
                "--dtype",
                dtype,
            ]
        )
        steps[dtype] = _mean_step(start, _weights(out))
        if dtype == "bf16":
            assert (
                "precision: bfloat16 compute (autocast on), trainable weights and AdamW state float32" in result.stdout
            ), result.stdout[-2000:]
            assert all(v.dtype == torch.float32 for v in _weights(out).values())
    assert steps["fp32"] > 0
    print(f"mean |dw| after 3 steps: bf16 compute / fp32 = {steps['bf16'] / steps['fp32']:.3f}")
    assert 0.5 <= steps["bf16"] / steps["fp32"] <= 2, steps


def test_gradient_checkpointing_gives_the_same_loss_and_gradients(warm):
    """train.py's loss on one rollout, with and without --gradient_checkpointing (which must really be on)."""
    from accelerate import Accelerator

    sft_dir, data_path = warm
    args = train.parse_args(
        rl_args(warm, "unused", "reg_grpo", "--beta", "0.1", "--num_iterations", "2", "--minibatches", "1")[1:]
    )
    records, _ = train.data.load_records(data_path)
    record = next(r for r in records if r["data_type"] == "video")
    accelerator = Accelerator(cpu=True)
    results = {}
    for checkpointing in (False, True):
        model, processor = M.load(
            os.path.join(sft_dir, "final"), gradient_checkpointing=checkpointing, freeze_vision=True
        )
        model.train()
        assert model.model.language_model.gradient_checkpointing is checkpointing
        policy = M.LogProbs(model)
        size = processor.video_processor.size
        visual = train.data.load_visual(record, args.num_frames, size["shortest_edge"], size["longest_edge"])
        torch.manual_seed(0)
        groups, _ = train.collect_rollouts(
            model,
            processor,
            [(record, visual, torch.Generator().manual_seed(0))],
            None,
            args,
            {"generate": 0.0, "score": 0.0},
        )
        ref = M.LogProbs(M.load_model(os.path.join(sft_dir, "final"))).eval()
        mb = train.rollout_tensors(groups, ref, args, accelerator, {"logprob": 0.0}, policy)
        # as after an update: rho != 0, the regression acts
        mb["logp_old"] = mb["logp_old"] - 0.01 * torch.arange(mb["logp_old"].shape[1])
        loss, _ = train.compute_loss(policy, mb, args)
        loss.backward()
        results[checkpointing] = (
            loss.detach(),
            groups[0].completion_ids,
            {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None},
        )
    (loss0, ids0, grads0), (loss1, ids1, grads1) = results[False], results[True]
    assert torch.equal(ids0, ids1) and loss0 != 0
    assert torch.allclose(loss0, loss1, atol=1e-5)
    assert grads0.keys() == grads1.keys() and len(grads0) > 10
    assert any(g.abs().max() > 0 for g in grads0.values())
    for name in grads0:
        assert torch.allclose(grads0[name], grads1[name], atol=1e-5), name


def test_compute_dtype_rule():
    """--dtype names the compute dtype: auto is fp32 on the CPU (bf16 on a GPU with bf16); fp16 on the CPU is refused
    with a message, since accelerate's fp16 gradient scaler needs an accelerator."""

    def dtype(name):
        return infra.compute_dtype(train.Args(dtype=name))

    assert (dtype("bf16"), dtype("fp32")) == (torch.bfloat16, torch.float32)
    assert infra.MIXED_PRECISION[dtype("bf16")] == "bf16" and infra.MIXED_PRECISION[dtype("fp32")] == "no"
    if torch.cuda.is_available():
        pytest.skip("a GPU: auto is bf16 or fp32 by its hardware, and fp16 is allowed")
    assert dtype("auto") == torch.float32
    with pytest.raises(SystemExit, match="--dtype fp16 needs a GPU"):
        dtype("fp16")


def test_report_to_tensorboard_writes_events_that_read_back(tiny_dir, synth_dir, tmp_path):
    """--report_to tensorboard: accelerate's tracker writes event files under the run folder whose scalars are the
    metrics.jsonl values, step by step."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = str(tmp_path / "tb")
    run(
        [
            sys.executable,
            "train.py",
            "--algo",
            "sft",
            "--model",
            str(tiny_dir),
            "--data",
            os.path.join(synth_dir, "train.json"),
            "--output_dir",
            out,
            "--max_steps",
            "2",
            "--batch_size",
            "1",
            "--report_to",
            "tensorboard",
        ]
    )
    # project_dir / the run's name; the config goes to a timestamped folder below as hparams
    logdir = os.path.join(out, "tb")
    assert any(f.startswith("events.out.tfevents") for f in os.listdir(logdir)), os.listdir(logdir)
    acc = EventAccumulator(logdir)
    acc.Reload()
    assert {"loss/total", "lr", "grad_norm"} <= set(acc.Tags()["scalars"])
    logged = [(e.step, e.value) for e in acc.Scalars("loss/total")]
    assert logged == [(row["step"], pytest.approx(row["loss/total"], rel=1e-6)) for row in metrics(out)]


def test_bad_model_and_data_read_as_one_line(tiny_dir, tmp_path):
    """A wrong --model path, a folder that is no checkpoint, a missing --data file and a file that is not JSON: one line
    each on stderr (what, which file, what to do) and exit status 2, never a traceback."""
    bad_json = tmp_path / "broken.json"
    bad_json.write_text('[{"problem": "x",')
    cases = [
        (["--model", "/wrong/local/path"], "--model /wrong/local/path: no such folder, and not a hub id"),
        (["--model", str(tmp_path)], f"--model {tmp_path}: the folder has no config.json"),
        (["--model", str(tiny_dir), "--data", str(tmp_path / "missing.json")], "missing.json: no such file"),
        (
            ["--model", str(tiny_dir), "--data", str(bad_json)],
            f"--data {bad_json}: {bad_json}:1: neither a JSON list nor JSON lines",
        ),
    ]
    for flags, message in cases:
        out = subprocess.run(
            [sys.executable, "train.py", "--algo", "grpo", "--output_dir", str(tmp_path / "run"), *flags],
            cwd=ROOT,
            env=ENV,
            capture_output=True,
            text=True,
            timeout=300,
        )
        lines = out.stderr.strip().splitlines()
        assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr[-2000:]
        assert lines[-1].startswith("train.py: error: ") and message in lines[-1], lines[-1]


# --- trusting a run folder: resume, numbers ----------------------------------------------------------------


def _checkpoint(path, args, state=True, rng=True):
    os.makedirs(path)
    json.dump(dataclasses.asdict(args), open(path / "args.json", "w"))
    if state:
        json.dump(infra.TrainState(4).state_dict(), open(path / infra.STATE_FILE, "w"))
    if rng:
        (path / "random_states_0.pkl").write_bytes(b"")
    return str(path)


def test_resume_refuses_other_settings_a_pickled_state_and_warns_without_rng(tmp_path, capsys):
    """A checkpoint resumes only with the flags that wrote it (a changed learning rate would run the old one
    while args.json logs the new); the output folder and the run's length may change. A training state that
    only a pickle holds is refused (unpickling it could run code); a missing RNG file is said out loud."""
    base = ["--algo", "grpo", "--model", "unused", "--data", "a.json"]
    ckpt = _checkpoint(tmp_path / "checkpoint-2", train.parse_args(base + ["--learning_rate", "0.5"]))
    with pytest.raises(SystemExit, match=r"--learning_rate 0.5 there, 1e-06 now"):
        infra.check_resumable(ckpt, train.parse_args(base))
    with pytest.raises(SystemExit, match=r"--algo 'grpo' there, 't_grpo' now"):
        infra.check_resumable(ckpt, train.parse_args(base[2:] + ["--algo", "t_grpo", "--learning_rate", "0.5"]))
    same = train.parse_args(base + ["--learning_rate", "0.5", "--max_steps", "90", "--output_dir", "elsewhere"])
    infra.check_resumable(ckpt, same)  # longer, in another folder: fine
    assert capsys.readouterr().err == ""
    pickled = _checkpoint(tmp_path / "old" / "checkpoint-2", same, state=False)
    open(os.path.join(pickled, "custom_checkpoint_0.pkl"), "wb").close()
    with pytest.raises(SystemExit, match="pickle"):
        infra.check_resumable(pickled, same)
    no_rng = _checkpoint(tmp_path / "rng" / "checkpoint-2", same, rng=False)
    infra.check_resumable(no_rng, same)
    assert "no random_states_0.pkl" in capsys.readouterr().err


def test_resumed_logs_drop_a_cut_last_line_and_name_a_bad_one(tmp_path, capsys):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1}\n{"step": 2}\n{"step": 3}\n{"ste')
    assert infra.logged_until(str(path), 2) == ['{"step": 1}\n', '{"step": 2}\n']
    assert "line 4 was cut off" in capsys.readouterr().err
    path.write_text('{"step": 1}\nnot json\n{"step": 3}\n')
    with pytest.raises(SystemExit, match=r"metrics.jsonl line 2 is not JSON"):
        infra.logged_until(str(path), 2)


def test_numbers_out_of_range_are_one_line_errors(tmp_path):
    """--batch_size -1 once failed deep inside with `max() arg is an empty sequence`, --max_steps -1 trained
    nothing and wrote final/, eval.py --batch_size -1 evaluated nothing and exited 0."""
    for flags, said in (
        (["--batch_size", "-1"], "--batch_size -1: must be at least 1"),
        (["--max_steps", "-1"], "--max_steps -1: must be at least 1"),
        (["--num_generations", "1"], "--num_generations must be >= 2"),
        (["--top_p", "1.5"], "--top_p in (0, 1]"),
    ):
        with pytest.raises(ValueError, match=re.escape(said)):
            train.parse_args(flags)
    out = subprocess.run(
        [sys.executable, "train.py", "--batch_size", "-1", "--output_dir", str(tmp_path / "r")],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 1 and out.stderr.strip() == "train.py: error: --batch_size -1: must be at least 1"
    assert not os.path.exists(tmp_path / "r")
    out = subprocess.run(
        [
            sys.executable,
            "eval.py",
            "run",
            "--model",
            "m",
            "--data",
            "d.json",
            "--out",
            str(tmp_path),
            "--batch_size",
            "-1",
        ],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2 and "--batch_size: -1: must be at least 1" in out.stderr


def test_training_into_a_folder_with_an_earlier_runs_checkpoint_refuses(warm, tmp_path):
    """Without --resume, an output folder holding checkpoint-N of an earlier run is refused: starting afresh
    there used to delete its metrics and keep the checkpoint, which a later --resume then picked up."""
    out = tmp_path / "run"
    os.makedirs(out / "checkpoint-3")
    result = subprocess.run(
        [sys.executable] + rl_args(warm, str(out), "grpo", "--max_steps", "1"),
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 1 and "holds checkpoint-3 of an earlier run: --resume continues it" in result.stderr
    assert os.listdir(out) == ["checkpoint-3"]
