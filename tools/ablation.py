"""
The ablation: every algorithm from the same SFT starts over several seeds, through train.py's main job, then a
table of held-out scores and the algorithms' diagnostics, and a figure.

    python bench.py ablation --seeds 0 1 2 --out runs/ablation [train.py flags, e.g. --max_steps 30]

A run whose summary.json exists is skipped: the command resumes where a stopped one ended.
"""

import argparse
import json
import os
import subprocess
import sys

import numpy as np

import eval as evaluation

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


ABLATION = [  # (row name, train.py flags): the algorithms of both papers and their baselines, at the defaults
    ("grpo", ["--algo", "grpo"]),
    ("t_grpo", ["--algo", "t_grpo"]),
    ("reg_grpo", ["--algo", "reg_grpo"]),
    # the equation as written, one update per rollout batch: REINFORCE whose KL is scaled away (reg_grpo_loss)
    ("reg_grpo+paper1", ["--algo", "reg_grpo", "--reg_scale", "paper", "--minibatches", "1"]),
    ("grpo+da", ["--algo", "grpo", "--da"]),
    ("reg_grpo+da", ["--algo", "reg_grpo", "--da"]),
    ("reg_grpo+da_easy", ["--algo", "reg_grpo", "--da", "--da_branches", "easy"]),  # DeepVideo-R1 Table 7
    ("reg_grpo+da_hard", ["--algo", "reg_grpo", "--da", "--da_branches", "hard"]),
    ("rloo", ["--algo", "grpo", "--advantage", "rloo"]),
    ("reinforce", ["--algo", "grpo", "--advantage", "reinforce"]),
]


def ablation(seeds, out, extra, rows=None):
    """SFT, GRPO, T-GRPO, Reg-GRPO (one and two updates per rollout), GRPO+DA, Reg-GRPO+DA and RLOO on the
    synthetic benchmark, every seed: each RL run is train.py's main job (the SFT cold start of a seed is
    trained once and shared), then a table of held-out scores (mean +- std over seeds) and the algorithms'
    diagnostics, and reward curves. A run whose summary.json exists is skipped: the command resumes.
    rows: the names of ABLATION's rows to run (default: all)."""
    unknown = set(rows or []) - {name for name, _ in ABLATION}
    if unknown:
        raise SystemExit(f"unknown rows {sorted(unknown)}; choose from {', '.join(name for name, _ in ABLATION)}")
    runs = {}
    for seed in seeds:
        for name, flags in ABLATION:
            if rows and name not in rows:
                continue
            run_dir = os.path.join(out, f"{name.replace('+', '-')}-seed{seed}")
            if not os.path.exists(os.path.join(run_dir, "summary.json")):
                cmd = [
                    sys.executable,
                    os.path.join(ROOT, "train.py"),
                    *flags,
                    "--seed",
                    str(seed),
                    "--output_dir",
                    run_dir,
                    *extra,
                ]
                print(" ".join(cmd), flush=True)
                subprocess.run(cmd, check=True)
            runs.setdefault(name, []).append(run_dir)
    table = ablation_table(runs) + "\n\n" + family_table(runs)
    with open(os.path.join(out, "ablation.md"), "w") as f:
        f.write(table + "\n")
    evaluation.compare([dirs[0] for dirs in runs.values()], os.path.join(out, "curves.md"))
    ablation_plot(runs, os.path.join(out, "ablation.png"))
    return table + f"\n\nfigure: {os.path.join(out, 'ablation.png')}"


def ablation_plot(runs, png):
    """The ablation in one figure: left, each row's training accuracy (reward/accuracy) by step, mean over
    seeds, as a running mean of 5 steps; right, each row's held-out RL - SFT, one dot per seed against its
    own seed's start, a bar at the mean. Returns what it drew: {row: (steps, mean accuracy, gains)}."""
    import matplotlib  # only for the figure

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    drawn = {}
    for name, dirs in runs.items():
        curves = [[json.loads(line) for line in open(os.path.join(d, "metrics.jsonl"))] for d in dirs]
        steps = min(len(c) for c in curves)  # seeds cut at the shortest run
        # [steps]
        accuracy = np.mean([[line.get("reward/accuracy", np.nan) for line in c[:steps]] for c in curves], axis=0)
        summaries = [json.load(open(os.path.join(d, "summary.json"))) for d in dirs]
        gains = [s["rl"]["overall"] - s["sft"]["overall"] for s in summaries]  # each run against its own seed's start
        drawn[name] = (list(range(1, steps + 1)), accuracy, gains)
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.2), gridspec_kw={"width_ratios": [3, 2]})
    for i, (name, (steps, accuracy, gains)) in enumerate(drawn.items()):
        window = min(5, len(accuracy))
        left.plot(
            steps[window - 1 :],
            np.convolve(accuracy, np.ones(window) / window, mode="valid"),
            label=name,
            color=f"C{i}",
        )
        right.bar(i, np.mean(gains), color=f"C{i}", alpha=0.35)
        right.scatter([i] * len(gains), gains, color=f"C{i}", s=18, zorder=3)
    seeds = max(len(dirs) for dirs in runs.values())
    left.set(
        title=f"training accuracy, mean of {seeds} seed(s), running mean of 5 steps",
        xlabel="RL step",
        ylabel="reward/accuracy",
    )
    left.legend(fontsize=8)
    right.axhline(0, color="black", linewidth=0.8)
    right.set_xticks(range(len(drawn)), list(drawn), rotation=30, ha="right", fontsize=8)
    right.set(title="held-out RL - SFT (dots: seeds, bar: mean)", ylabel="overall score change")
    fig.tight_layout()
    fig.savefig(png, dpi=90)
    plt.close(fig)
    return drawn


def ablation_table(runs):
    """Markdown: held-out overall / temporal / static (mean +- std over seeds), vanishing-advantage
    fraction (before/after DA), T-GRPO's ordered-minus-shuffled training accuracy and the fraction of its
    bonused groups whose advantages the bonus changed, Reg-GRPO's fraction of updates where the regression
    acted (each a mean over the run's steps, then mean +- std over seeds)."""

    def stat(values):
        values = [v for v in values if v is not None]
        return f"{np.mean(values):.3f} ± {np.std(values):.3f}" if values else "-"

    def mean_metric(run_dir, key):
        rows = [json.loads(line) for line in open(os.path.join(run_dir, "metrics.jsonl"))]
        values = [r[key] for r in rows if key in r]
        return float(np.mean(values)) if values else None

    lines = [
        "| run | seeds | held-out overall | RL - SFT, same seed (seeds up) | temporal | static | zero-std groups | "
        "T-GRPO ordered - shuffled | T-GRPO bonus changed advantages | Reg-GRPO regression active |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    summaries = {name: [json.load(open(os.path.join(d, "summary.json"))) for d in dirs] for name, dirs in runs.items()}
    first = next(iter(summaries.values()))
    lines.append(
        f"| SFT (start of every run) | {len(first)} | {stat([s['sft']['overall'] for s in first])} | - | "
        f"{stat([s['sft'].get('temporal') for s in first])} | {stat([s['sft'].get('static') for s in first])} | "
        "- | - | - | - |"
    )
    for name, dirs in runs.items():
        s = summaries[name]
        if "+da" in name:
            before = stat([mean_metric(d, "da/zero_std_before") for d in dirs])
            after = stat([mean_metric(d, "da/zero_std_after") for d in dirs])
            zero = f"{before} -> {after}"
        else:
            zero = stat([mean_metric(d, "adv/zero_std_frac") for d in dirs])
        tgrpo = name.startswith("t_grpo")
        gap = (
            stat([mean_metric(d, "tgrpo/acc_ordered") - mean_metric(d, "tgrpo/acc_shuffled") for d in dirs])
            if tgrpo
            else "-"
        )
        changed = stat([mean_metric(d, "tgrpo/adv_changed_frac") for d in dirs]) if tgrpo else "-"
        active = stat([mean_metric(d, "reggrpo/active_frac") for d in dirs]) if name.startswith("reg_grpo") else "-"
        # paired: each run against its own seed's SFT start
        gain = [x["rl"]["overall"] - x["sft"]["overall"] for x in s]
        lines.append(
            f"| SFT + {name} | {len(dirs)} | {stat([x['rl']['overall'] for x in s])} | "
            f"{stat(gain)} ({sum(g > 0 for g in gain)} of {len(gain)}) | "
            f"{stat([x['rl'].get('temporal') for x in s])} | "
            f"{stat([x['rl'].get('static') for x in s])} | {zero} | {gap} | {changed} | {active} |"
        )
    return "\n".join(lines)


def family_table(runs):
    """Markdown: held-out score per question family (accuracy; MRA for regression), mean over seeds, for the
    SFT start and every run, with the family's number of test records."""
    summaries = {name: [json.load(open(os.path.join(d, "summary.json"))) for d in dirs] for name, dirs in runs.items()}
    first = next(iter(summaries.values()))
    families = sorted({f for s in first for f in s["sft"].get("by_question_family", {})})
    if not families:
        return ""

    def mean(results, family):
        values = [
            r["by_question_family"][family]["score"] for r in results if family in r.get("by_question_family", {})
        ]
        return f"{np.mean(values):.3f}" if values else "-"

    n = {f: first[0]["sft"]["by_question_family"][f]["n"] for f in families}
    lines = [
        "| family (n) | SFT | " + " | ".join(f"SFT + {name}" for name in summaries) + " |",
        "|---" * (len(summaries) + 2) + "|",
    ]
    for f in families:
        cells = [mean([s["sft"] for s in first], f)] + [
            mean([s["rl"] for s in summaries[name]], f) for name in summaries
        ]
        lines.append(f"| {f} ({n[f]}) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="bench.py ablation", description=__doc__.split("\n\n")[0].strip())
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds (each has its own SFT start)")
    parser.add_argument("--out", default="runs/ablation", help="folder of the runs, ablation.md and the figures")
    parser.add_argument("--rows", nargs="+", help=f"rows to run (default all): {', '.join(n for n, _ in ABLATION)}")
    args, extra = parser.parse_known_args(argv)  # the rest goes to every train.py run
    print(ablation(args.seeds, args.out, extra, args.rows))
