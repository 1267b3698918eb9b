"""
Benchmarks of the RL loop on the built-in tiny Qwen2.5-VL: a plain script that prints numbers and asserts
nothing (like nanoGPT's bench.py).

    python bench.py              # four comparisons side by side, one table (~5-10 min on 2 CPU cores)
    python bench.py --quick      # the same at toy sizes (the smoke test's run, under a minute)
    python bench.py memory       # memory plan for Qwen2.5-VL-3B / 7B on GPUs, from their published configs
    python bench.py gpu          # on a GPU machine: every algorithm on a random Qwen2.5-VL-3B, times, memory vs plan
    python bench.py decode       # seconds to load 16 frames from a 90-frame and a 1,800-frame video
    python bench.py profile      # where a main-job SFT and RL step's time goes, and the LM head's floor
    python bench.py ablation --seeds 0 1 2 --out runs/ablation [train.py flags]   # every algorithm x seeds
    python bench.py groups --model runs/sft-cold-start-225x8-seed0/final --data data/synth/train.json --limit 96
                                 # G rollouts per record as RL draws them: how many groups would carry a learning signal

The comparisons, each measured in the same run on the same machine:
  1. log-prob pass peak memory: model.py's chunked pass (what train.py trains with) vs the naive
     full-vocabulary fp32 log-softmax, forward + backward, G = 8 completions of 512 tokens, V = 151,936;
  2. rollout time: train.py's sample_groups + score_group vs a bare sampling model.generate;
  3. step time (rollout, reference log-probs, loss, backward, optimizer step) at G = 4 and G = 16;
  4. one GRPO step on image prompts against TRL's GRPOTrainer (pip install -r requirements-bench.txt).

Every measurement runs in a fresh subprocess (`python bench.py worker NAME JSON`), so that one variant's
freed memory and warm caches never flatter the next. Generated files go under data/ and runs/bench/.

This file is the command line; the parts live in tools/: ablation.py (every algorithm over seeds through
train.py's main job: table and figure), common.py (settings, the tiny model and data, measuring
memory), compare.py (the workers and the table), gpu.py (the memory plan and the GPU check), profiling.py (groups,
decode, profile).
"""

import json
import os
import sys

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before the imports below load huggingface_hub, which reads it once
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # the repository root: `tools` and train.py & co.

from tools.ablation import main as ablation_cli
from tools.common import FULL, QUICK
from tools.compare import WORKERS, run_all
from tools.gpu import gpu_check, memory_plan
from tools.profiling import decode_bench, groups_cli, profile


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
    elif argv[:1] == ["ablation"]:
        ablation_cli(argv[1:])
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
