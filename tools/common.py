"""What several parts of bench.py share: the settings (paths, sizes, goals), the tiny model and data they run on,
and measuring a worker's peak memory (RSS) on the CPU."""

import os
import resource
from dataclasses import dataclass

import data
import model as model_lib
import train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the repository root, where bench.py is

# -----------------------------------------------------------------------------
# Settings

MODEL_DIR = os.path.join(ROOT, "data", "tiny-qwen2.5-vl")  # the same folder train.py builds on first use
SYNTH_DIR = os.path.join(ROOT, "data", "bench-synth")  # a small synthetic set of our own (videos and images)
OUT_DIR = os.path.join(ROOT, "runs", "bench")
TRL_PIN = "trl==1.16.0"  # keep in step with requirements-bench.txt


@dataclass
class Sizes:
    """What each comparison runs. `full` is the measured setting; `quick` exercises the same code in seconds."""

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
QUICK = Sizes(logprob_G=2, logprob_T=32, rollout_G=2, rollout_T=8, rollout_reps=1, step_Gs=(2, 4), step_T=4,
              step_reps=1, trl_G=2, trl_T=4, trl_warmup=1, trl_steps=1)  # fmt: skip
GOALS = {"logprob": 0.25, "rollout": 1.10, "step": 3.0, "trl_time": 0.7, "trl_memory": 1.0}


def prepare_assets():
    """The tiny model (as infra.prepare_assets builds it for train.py) and a small synthetic set with images."""
    if not os.path.isdir(MODEL_DIR):
        model_lib.build_tiny(MODEL_DIR, seed=0)
    if not os.path.isfile(os.path.join(SYNTH_DIR, "train.json")):
        data.synth(SYNTH_DIR, 12, 2, seed=0, cfg=data.SynthConfig(image_frac=0.5))
    os.makedirs(OUT_DIR, exist_ok=True)


def bench_record(kind):
    """The first synthetic record of a kind ('video' or 'image') with a multiple-choice or numerical question."""
    records, _ = data.load_records(os.path.join(SYNTH_DIR, "train.json"))
    return next(r for r in records if r["data_type"] == kind)


_processors = {}


def tiny_processor():
    """The tiny model's processor, loaded once per process (building the 151,936-token tokenizer costs
    seconds, and the processor holds no state that a measurement changes)."""
    if MODEL_DIR not in _processors:
        _processors[MODEL_DIR] = model_lib.load_processor(MODEL_DIR)
    return _processors[MODEL_DIR]


def tiny_model():
    """Fresh tiny weights (a measurement trains them), in train mode as train.py uses the policy. The
    weights may come memory-mapped from the safetensors file; reading them once makes them resident, so
    that a memory window opened afterwards does not count them.

    The generation config suppresses the vision placeholders that model.sample suppresses (a sampled
    <|image_pad|> makes the log-prob pass fail), so that comparison 2's bare generate samples under the
    same rule and gives the same tokens. TRL's GRPOTrainer suppresses the image one."""
    model = model_lib.load_model(MODEL_DIR).train()
    model.generation_config.suppress_tokens = model_lib.vision_placeholder_ids(model.config)
    for param in model.parameters():
        param.detach().sum()
    return model


def rl_args(G, T, **overrides):
    """train.py's resolved configuration for the tiny model, as `train.py --algo grpo` would run it."""
    fields = dict(algo="grpo", model=MODEL_DIR, data=os.path.join(SYNTH_DIR, "train.json"), num_generations=G,
                  max_completion_length=T, output_dir=OUT_DIR)  # fmt: skip
    return train.Args(**(fields | overrides)).resolve()


# -----------------------------------------------------------------------------
# Measuring memory and time
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
