"""Scaling paths on the CPU: two real processes through configs/ddp.yaml (T-GRPO and Reg-GRPO), the configs
themselves, generation from an FSDP2-sharded policy on two processes (torch directly: accelerate runs FSDP only
on GPUs), and LoRA (only adapters train, the reference is the base with adapters off, final/ loads)."""

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
from conftest import ENV, ROOT, metrics, rl_args, run
from safetensors.torch import load_file

import infra
import model as M
import train

# No --cpu here: with it accelerate runs ONE process whatever --num_processes says. torchrun starts the two
# processes; ACCELERATE_USE_CPU makes them use the CPU with the gloo backend (there is no GPU).
DDP = [
    sys.executable,
    "-m",
    "accelerate.commands.launch",
    "--config_file",
    os.path.join(ROOT, "configs", "ddp.yaml"),
    "--num_processes",
    "2",
    "--main_process_port",
    "0",
]
DDP_ENV = {**ENV, "ACCELERATE_USE_CPU": "1"}


def test_configs_load_with_accelerate():
    from accelerate.commands.config.config_args import load_config_from_file

    engines = {}
    for name in ("single", "ddp", "fsdp", "zero2", "zero3"):
        config = load_config_from_file(os.path.join(ROOT, "configs", f"{name}.yaml"))
        engines[name] = str(config.distributed_type).split(".")[-1]
        if name == "fsdp":
            assert config.fsdp_config["fsdp_version"] == 2
        if name.startswith("zero"):
            assert config.deepspeed_config["zero_stage"] == int(name[-1])
    assert engines == {"single": "NO", "ddp": "MULTI_GPU", "fsdp": "FSDP", "zero2": "DEEPSPEED", "zero3": "DEEPSPEED"}


def _data_position(run_dir, step):
    """The data position saved in a checkpoint: prompts consumed by all processes together."""
    state = json.load(open(os.path.join(run_dir, f"checkpoint-{step}", "train_state.json")))
    return state["position"]


@pytest.mark.parametrize("algo", ["t_grpo", "reg_grpo"])
def test_two_processes_through_the_ddp_config(warm, tmp_path, algo):
    out = str(tmp_path / algo)
    # Reg-GRPO: two micro-batches, one optimizer update on each (its default --minibatches 2)
    accum = ["--grad_accum", "2"] if algo == "reg_grpo" else []
    cmd = DDP + rl_args(
        warm, out, algo, "--max_steps", "2", "--num_generations", "2", "--max_completion_length", "8", *accum
    )
    result = subprocess.run(cmd, cwd=ROOT, env=DDP_ENV, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    assert [row["step"] for row in metrics(out)] == [1, 2]
    micro = 2 if algo == "reg_grpo" else 1
    assert _data_position(out, 2) == 2 * 2 * micro  # 2 steps x 1 prompt x 2 processes: both processes took part
    if algo == "reg_grpo":  # the second update's rollouts were sampled before the first: rho != 0 there
        assert all(row["reggrpo/active_frac"] in (0.0, 0.5) for row in metrics(out))
    assert os.path.isfile(os.path.join(out, "final", "model.safetensors"))


def test_learning_rate_schedule_is_the_same_on_two_processes(tiny_dir, synth_dir, tmp_path):
    """One scheduler step per optimizer update whatever the number of processes: accelerate's prepared
    scheduler stepped once per process, so with a 4-update warm-up step 1 logged 0.75x the base rate
    on 2 processes instead of 0.5x."""
    common = [
        "train.py",
        "--algo",
        "sft",
        "--model",
        str(tiny_dir),
        "--data",
        os.path.join(synth_dir, "train.json"),
        "--max_steps",
        "4",
        "--batch_size",
        "1",
        "--learning_rate",
        "1e-3",
        "--warmup_steps",
        "4",
        "--lr_schedule",
        "cosine",
    ]
    run([sys.executable] + common + ["--output_dir", str(tmp_path / "one")])
    two = str(tmp_path / "two")
    result = subprocess.run(
        DDP + common + ["--output_dir", two], cwd=ROOT, env=DDP_ENV, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    one_lr, two_lr = [row["lr"] for row in metrics(tmp_path / "one")], [row["lr"] for row in metrics(two)]
    assert one_lr == pytest.approx([0.5e-3, 0.75e-3, 1e-3, 1e-3]) and _data_position(two, 4) == 4 * 2
    assert two_lr == pytest.approx(one_lr)


def test_two_process_da_run_resumes_exactly(warm, tmp_path):
    """DA's reward window is one global window, the same on every process, so the main process's checkpoint
    resumes both. The killed run is its checkpoint-2 (all that survives a kill), resumed in a new folder; it
    must end with the uninterrupted run's weights. With per-process windows, process 1 resumed with process
    0's window and augmented differently."""
    args = rl_args(
        warm,
        "",
        "grpo",
        "--da",
        # every group augmented and kept, whatever its rewards (a threshold of -1 makes every one too easy: masked
        # frames), so that the window and the masks' random numbers must resume exactly
        "--da_all_groups",
        "--da_window",
        "6",
        "--da_threshold",
        "-1.0",
        "--max_steps",
        "4",
        "--save_steps",
        "2",
        "--batch_size",
        "2",
    )

    def launch(out, *extra):
        return subprocess.run(
            DDP + [a if a else out for a in args] + list(extra),
            cwd=ROOT,
            env=DDP_ENV,
            capture_output=True,
            text=True,
            timeout=900,
        )

    full, cut = str(tmp_path / "full"), str(tmp_path / "cut")
    result = launch(full)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    m = metrics(full)
    assert all(row["da/easy_frac"] + row["da/hard_frac"] > 0 for row in m[1:]), (
        "no group augmented: the test would prove nothing"
    )
    os.makedirs(cut)
    shutil.copytree(os.path.join(full, "checkpoint-2"), os.path.join(cut, "checkpoint-2"))
    # the resumed run drops steps 3 and 4
    shutil.copy(os.path.join(full, "metrics.jsonl"), os.path.join(cut, "metrics.jsonl"))
    window = json.load(open(os.path.join(cut, "checkpoint-2", "train_state.json")))["window"]
    assert len(window) == 6  # 2 steps x 2 prompts x 2 processes, the last 6
    result = launch(cut, "--resume")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    end, resumed = (
        load_file(os.path.join(full, "final", "model.safetensors")),
        load_file(os.path.join(cut, "final", "model.safetensors")),
    )
    start = load_file(os.path.join(warm[0], "final", "model.safetensors"))
    assert any(not torch.equal(start[k], end[k]) for k in end), "the policy never changed: the test would prove nothing"
    for k in end:
        assert torch.allclose(resumed[k], end[k], atol=1e-6), k
    assert [row["reward/mean"] for row in metrics(cut)] == [row["reward/mean"] for row in m]


def test_a_corrupt_video_read_by_process_1_never_hangs_two_processes(warm, tmp_path):
    """batch_size 1 on 2 processes, and the video process 1 reads first is corrupt: process 1 reports the record by
    id and takes the next sample of its own stream, both processes train on one readable sample every step (the
    same forwards, the same metric keys), and the run finishes. Before, process 1 skipped the forward and the
    gradient all-reduce waited for it forever."""
    sft_dir, data_path = warm
    records = json.load(open(data_path))
    loaded, _ = train.data.load_records(data_path)
    victim = infra.record_at(loaded, infra.stream_position(1, 0, 1, 2), 1)  # process 1's first sample (seed 1, rl_args)
    broken = []
    for r in records:
        r = dict(r)
        if r["problem_id"] == victim["problem_id"]:
            bad = tmp_path / "corrupt.mp4"
            bad.write_bytes(b"not a video" * 100)
            r["path"] = str(bad)
            assert r["data_type"] == "video"
        broken.append(r)
    broken_path = str(tmp_path / "broken.json")
    json.dump(broken, open(broken_path, "w"))
    out = str(tmp_path / "fault")
    cmd = DDP + [
        a if a != data_path else broken_path
        for a in rl_args(warm, out, "grpo", "--max_steps", "2", "--max_completion_length", "8")
    ]
    result = subprocess.run(cmd, cwd=ROOT, env=DDP_ENV, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    assert (
        f"process 1: skipping unreadable sample (the next of its stream instead): problem_id={victim['problem_id']}"
        in result.stderr
    )
    m = metrics(out)
    assert [row["step"] for row in m] == [1, 2] and m[-1]["data/skipped"] == 1
    state = json.load(open(os.path.join(out, "checkpoint-2", "train_state.json")))
    assert state["taken"] == [2, 3] and state["position"] == 5  # process 1 read one further than it trained on


def test_lora_reference_is_the_base_model(tiny_dir):
    """With the adapters on, log-probs move; inside disable_adapter() they are the base model's, bit for bit."""
    base, _ = M.load(tiny_dir)
    prompt = {
        "input_ids": torch.tensor([[M.IM_START_ID, 9707, 1879]]),
        "attention_mask": torch.ones(1, 3, dtype=torch.long),
    }
    completions = torch.tensor([[11, 22, 33], [44, 55, 66]])
    with torch.no_grad():
        expected = M.group_logprobs(base, prompt, completions)  # [2, 3]
    peft_model = M.add_lora(base, r=4, alpha=8, base_name_or_path=str(tiny_dir))
    adapted = [n for n, p in peft_model.named_parameters() if p.requires_grad]
    assert adapted and all("lora_" in n and "language_model" in n for n in adapted)  # nothing of the vision tower
    assert len(adapted) == 2 * 7 * 4  # A and B of q/k/v/o/gate/up/down in each of the 4 layers
    for n, p in peft_model.named_parameters():
        if "lora_B" in n:
            torch.nn.init.normal_(p, std=0.5)  # as if trained (peft starts B at zero)
    policy = peft_model.get_base_model()
    with torch.no_grad():
        adapted_logp = M.group_logprobs(policy, prompt, completions)
        with peft_model.disable_adapter():
            ref_logp = M.group_logprobs(policy, prompt, completions)
    assert not torch.allclose(adapted_logp, expected, atol=1e-3)
    assert torch.equal(ref_logp, expected)


def test_lora_run_trains_only_adapters_and_final_loads(warm, tmp_path):
    out = str(tmp_path / "lora")
    run(
        [sys.executable]
        + rl_args(
            warm,
            out,
            "grpo",
            "--max_steps",
            "2",
            "--batch_size",
            "4",
            "--beta",
            "0.04",
            "--lora_r",
            "4",
            "--no-lora_merge",
        )
    )
    assert any(row["grad_norm"] > 0 for row in metrics(out)), (
        "every group had equal rewards: the test would prove nothing"
    )
    start = M.load_model(os.path.join(warm[0], "final")).state_dict()  # in-memory names, as in the checkpoint below
    # the LogProbs wrapper's state: model.<...>
    trained = load_file(os.path.join(out, "checkpoint-2", "model.safetensors"))
    lora = {k: v for k, v in trained.items() if "lora_" in k}
    assert lora and any(v.abs().sum() > 0 for k, v in lora.items() if "lora_B" in k)  # B starts at zero: it moved
    base = {
        key.removeprefix("model.").replace(".base_layer", ""): value
        for key, value in trained.items()
        if "lora_" not in key
    }
    compared = [key for key in base if key in start]  # (a tied lm_head may be stored under either name)
    assert len(compared) >= len(start) - 1
    for key in compared:  # every base weight, the vision tower's included, is where it started
        assert torch.equal(base[key], start[key]), key
    final = os.path.join(out, "final")
    config = json.load(open(os.path.join(final, "adapter_config.json")))
    assert not os.path.exists(os.path.join(final, "config.json")) and os.path.isabs(config["base_model_name_or_path"])
    assert [row["step"] for row in metrics(out)] == [1, 2] and all(row["loss/kl"] >= 0 for row in metrics(out))

    records = json.load(open(warm[1]))[:2]
    small = str(tmp_path / "two.json")
    json.dump(records, open(small, "w"))
    run(
        [
            sys.executable,
            "eval.py",
            "run",
            "--model",
            final,
            "--data",
            small,
            "--out",
            str(tmp_path / "eval"),
            "--num_frames",
            "4",
            "--max_new_tokens",
            "4",
        ]
    )
    assert json.load(open(tmp_path / "eval" / "two.json"))["metrics"]["n"] == 2


def test_lora_merged_and_adapter_folders_load_to_the_same_model(tiny_dir, tmp_path):
    base, _ = M.load(tiny_dir)
    peft_model = M.add_lora(base, r=2, alpha=4, base_name_or_path=str(tiny_dir))
    for n, p in peft_model.named_parameters():
        if "lora_B" in n:
            torch.nn.init.normal_(p, std=0.5)
    state = peft_model.get_base_model().state_dict()
    M.save_lora(peft_model, state, str(tmp_path / "adapter"), merge=False)
    M.save_lora(peft_model, state, str(tmp_path / "merged"), merge=True)
    assert os.path.isfile(tmp_path / "adapter" / "adapter_config.json") and os.path.isfile(
        tmp_path / "merged" / "config.json"
    )
    ids = torch.tensor([[M.IM_START_ID, 9707, 1879, 11, 22]])
    with torch.no_grad():
        from_adapter = M.load_model(str(tmp_path / "adapter"))(input_ids=ids).logits
        from_merged = M.load_model(str(tmp_path / "merged"))(input_ids=ids).logits
        live = peft_model.get_base_model()(input_ids=ids).logits
    assert torch.allclose(from_adapter, live, atol=1e-5) and torch.allclose(from_merged, live, atol=1e-5)


def test_merged_lora_state_by_hand():
    """W + (alpha / r) * B @ A per adapted layer; the bias and every other weight as they were."""
    state = {
        "q.base_layer.weight": torch.tensor([[1.0, 0.0], [0.0, 1.0]]),
        "q.base_layer.bias": torch.tensor([0.5, 0.5]),
        "q.lora_A.default.weight": torch.tensor([[1.0, 2.0]]),
        "q.lora_B.default.weight": torch.tensor([[1.0], [0.0]]),
        "norm.weight": torch.tensor([3.0]),
    }
    merged = M.merged_lora_state(state, scaling=2.0)
    assert set(merged) == {"q.weight", "q.bias", "norm.weight"}
    assert torch.equal(merged["q.weight"], torch.tensor([[3.0, 4.0], [0.0, 1.0]]))  # [[1 + 2*1, 0 + 2*2], [0, 1]]
    assert torch.equal(merged["q.bias"], torch.tensor([0.5, 0.5])) and torch.equal(
        merged["norm.weight"], torch.tensor([3.0])
    )


def test_merged_lora_save_needs_no_base_reload_under_zero3(tiny_dir, tmp_path, monkeypatch):
    """Under DeepSpeed ZeRO-3, from_pretrained enters zero.Init, a collective: the main process merging LoRA by
    reloading the base would wait for processes that wait for it. With the ZeRO-3 check switched on, save_lora
    must merge without loading anything, and the merged folder must be the live model."""
    import transformers.integrations

    base, _ = M.load(tiny_dir)
    peft_model = M.add_lora(base, r=2, alpha=4, base_name_or_path=str(tiny_dir))
    for n, p in peft_model.named_parameters():
        if "lora_B" in n:
            torch.nn.init.normal_(p, std=0.5)
    ids = torch.tensor([[M.IM_START_ID, 9707, 1879, 11, 22]])
    with torch.no_grad():
        live = peft_model.get_base_model()(input_ids=ids).logits
    state = peft_model.get_base_model().state_dict()

    def no_loading(*args, **kwargs):
        raise AssertionError("save_lora loaded a model (under ZeRO-3 that is a collective)")

    monkeypatch.setattr(transformers.integrations, "is_deepspeed_zero3_enabled", lambda: True)
    monkeypatch.setattr(M, "load_model", no_loading)
    monkeypatch.setattr(M.Qwen2_5_VLForConditionalGeneration, "from_pretrained", no_loading)
    M.save_lora(peft_model, state, str(tmp_path / "merged"), merge=True)
    monkeypatch.undo()
    with torch.no_grad():
        merged = M.load_model(str(tmp_path / "merged"))(input_ids=ids).logits
    assert torch.allclose(merged, live, atol=1e-5)


def test_generation_from_an_fsdp2_sharded_policy(tiny_dir):
    """Two gloo processes shard the tiny model with fully_shard as configs/fsdp.yaml does; inside
    infra.gathered_for_generation each samples as often as it likes (here 1 and 2 times) and gets the
    unsharded model's tokens; a training forward and backward through the root work afterwards."""
    import socket

    with socket.socket() as probe:  # a free port (torchrun's static rendezvous does not take 0)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        str(port),
        __file__,
        str(tiny_dir),
    ]
    result = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    assert sorted(line for line in result.stdout.splitlines() if line.startswith("fsdp2 ok")) == [
        "fsdp2 ok rank 0",
        "fsdp2 ok rank 1",
    ]


def _fsdp2_worker(tiny_dir):
    import types

    import torch.distributed as dist
    from accelerate.utils import DistributedType
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard
    from torch.distributed.tensor import DTensor

    dist.init_process_group("gloo")
    rank, mesh = dist.get_rank(), init_device_mesh("cpu", (dist.get_world_size(),))
    base, _ = M.load(tiny_dir)
    ids = torch.tensor([[M.IM_START_ID, 9707, 1879, 11]])

    def generate():
        return base.generate(
            input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=3, do_sample=False, synced_gpus=False
        )

    expected = generate()
    policy = M.LogProbs(base)
    for layer in [*base.model.language_model.layers, *base.model.visual.blocks]:  # fsdp.yaml's wrap policy
        fully_shard(layer, mesh=mesh)
    fully_shard(policy, mesh=mesh)
    # what the helper reads
    accelerator = types.SimpleNamespace(
        distributed_type=DistributedType.FSDP,
        state=types.SimpleNamespace(fsdp_plugin=types.SimpleNamespace(fsdp_version=2, reshard_after_forward=True)),
    )
    policy._get_fsdp_state()._lazy_init()  # as the first training forward would: the root then keeps its parameters

    def resharding():
        return [
            [g.post_forward_mesh_info is not None for g in m._get_fsdp_state()._fsdp_param_groups]
            for m in policy.modules()
            if hasattr(m, "_get_fsdp_state")
        ]

    before = resharding()
    assert before[0] == [False] and before[1] == [True]  # the root (LogProbs) does not reshard, a decoder layer does
    with torch.no_grad(), infra.gathered_for_generation(accelerator, policy):
        outputs = [generate() for _ in range(1 + rank)]  # unequal counts: a collective inside would hang
    assert resharding() == before  # each module's own setting is back (the root's was once set to the layers')
    assert all(torch.equal(out, expected) for out in outputs)
    assert isinstance(base.model.language_model.layers[0].self_attn.q_proj.weight, DTensor)  # sharded again
    policy([({"input_ids": ids, "attention_mask": torch.ones_like(ids)}, torch.tensor([[5, 6, 7]]))]).sum().backward()
    # one write: print() writes the newline separately, and two ranks interleave
    sys.stdout.write(f"fsdp2 ok rank {rank}\n")
    sys.stdout.flush()
    dist.destroy_process_group()


if __name__ == "__main__":  # the worker of test_generation_from_an_fsdp2_sharded_policy, under torchrun
    _fsdp2_worker(sys.argv[1])
