"""
The ablation: every algorithm from the same SFT starts over several seeds, through train.py's main job, then a
table of held-out scores and the algorithms' diagnostics, and a figure.

    python bench.py ablation --seeds 0 1 2 --out runs/ablation [train.py flags, e.g. --max_steps 30]

A run whose summary.json exists is skipped, and one cut off after a checkpoint continues from it: the command
resumes where a stopped one ended.
"""

import argparse
import json
import os
import subprocess
import sys

import numpy as np

import eval as evaluation
import infra

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


def ablation(seeds, out, extra, rows=None, report_only=False):
    """SFT, GRPO, T-GRPO, Reg-GRPO (one and two updates per rollout), GRPO+DA, Reg-GRPO+DA, DA's branches, RLOO
    and REINFORCE on the synthetic benchmark, every seed: each RL run is train.py's main job (the SFT cold start
    of a seed is trained once and shared), then the tables (paired differences from GRPO; means and the
    algorithms' diagnostics; families) and the figure. A run whose summary.json exists is skipped: the command
    resumes. rows: the names of ABLATION's rows to run (default: all). report_only: train nothing, report the
    finished runs of those seeds and rows."""
    unknown = set(rows or []) - {name for name, _ in ABLATION}
    if unknown:
        raise SystemExit(f"unknown rows {sorted(unknown)}; choose from {', '.join(name for name, _ in ABLATION)}")
    runs = {}
    for seed in seeds:
        for name, flags in ABLATION:
            if rows and name not in rows:
                continue
            run_dir = os.path.join(out, f"{name.replace('+', '-')}-seed{seed}")
            done = os.path.exists(os.path.join(run_dir, "summary.json"))
            if not done and report_only:
                continue
            if not done:
                cmd = row_command(flags, seed, run_dir, extra)
                print(" ".join(cmd), flush=True)
                subprocess.run(cmd, check=True)
            runs.setdefault(name, []).append(run_dir)
    if not runs:
        raise SystemExit(f"no finished runs under {out} for seeds {seeds}")
    table = "\n\n".join([paired_table(runs), ablation_table(runs), family_table(runs)])
    with open(os.path.join(out, "ablation.md"), "w") as f:
        f.write(table + "\n")
    evaluation.compare([dirs[0] for dirs in runs.values()], os.path.join(out, "curves.md"))
    ablation_plot(runs, os.path.join(out, "ablation.png"))
    return table + f"\n\nfigure: {os.path.join(out, 'ablation.png')}"


def row_command(flags, seed, run_dir, extra):
    """train.py's command for one row and seed. A run cut off after writing a checkpoint (its final one is written
    before the held-out evaluation) continues with --resume; train.py refuses to start afresh over a checkpoint."""
    cmd = [sys.executable, os.path.join(ROOT, "train.py"), *flags, "--seed", str(seed), "--output_dir", run_dir, *extra]
    return cmd + ["--resume"] if infra.latest_checkpoint(run_dir) else cmd


# Student's t: the two-sided 95% quantile t_0.975 by degrees of freedom (any statistics table); 1.96 beyond 30
T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131]
T975 += [2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042]


def paired(values, base):
    """The paired difference of two rows, seed by seed: values and base map seed -> score, and only the seeds
    both have count. Returns n, mean, sd (Bessel), the 95% t-interval mean +- t_0.975(n-1) * sd / sqrt(n),
    the seeds up and down, and the seeds needed to detect a difference of 0.05 at this sd (two-sided 5%, power
    80%, normal approximation: ((1.960 + 0.842) * sd / 0.05)^2)."""
    seeds = sorted(set(values) & set(base))
    d = np.array([values[s] - base[s] for s in seeds], dtype=float)
    n = len(d)
    if n == 0:
        return None
    mean = float(d.mean())
    sd = float(d.std(ddof=1)) if n > 1 else float("nan")
    half = (T975[n - 2] if n - 1 <= len(T975) else 1.960) * sd / np.sqrt(n) if n > 1 else float("nan")
    needed = int(np.ceil(((1.960 + 0.842) * sd / 0.05) ** 2)) if n > 1 else None
    return {
        "n": n,
        "mean": mean,
        "sd": sd,
        "low": float(mean - half),
        "high": float(mean + half),
        "up": int((d > 0).sum()),
        "down": int((d < 0).sum()),
        "seeds_for_0.05": needed,
        "diffs": d.tolist(),
    }


def scores_by_seed(dirs, part="rl", key="overall"):
    """{seed: summary[part][key]} of a row's runs (the seed from summary.json, else the run's position)."""
    out = {}
    for i, d in enumerate(dirs):
        summary = json.load(open(os.path.join(d, "summary.json")))
        if (summary.get(part) or {}).get(key) is not None:
            out[summary.get("seed", i)] = summary[part][key]
    return out


def paired_cell(p):
    """'+0.012 [-0.030, +0.054] 3/2' (mean, 95% interval, seeds up / down); '*' where the interval excludes 0."""
    if p is None:
        return "-"
    if p["n"] < 2:
        return f"{p['mean']:+.3f} (1 seed) {p['up']}/{p['down']}"
    star = " *" if p["low"] > 0 or p["high"] < 0 else ""
    return f"{p['mean']:+.3f} [{p['low']:+.3f}, {p['high']:+.3f}]{star} {p['up']}/{p['down']}"


def paired_table(runs, baseline="grpo"):
    """Markdown: each row against the baseline row of the same seed (the same SFT start), overall, temporal and
    static: the mean difference, its 95% t-interval over seeds ('*': the interval excludes 0) and the seeds up /
    down; each row against its own SFT start too; the sd of the overall difference and the seeds a reader would
    need to detect 0.05 at that sd. Rows without the baseline are compared with their start only."""
    lines = [
        f"| row | seeds | RL - SFT | - {baseline}: overall | - {baseline}: temporal | - {baseline}: static | "
        "sd of the difference | seeds to detect 0.05 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    base = runs.get(baseline)
    for name, dirs in runs.items():
        rl, sft = scores_by_seed(dirs), scores_by_seed(dirs, "sft")
        cells = [paired_cell(paired(rl, sft))]
        vs = None
        for key in ("overall", "temporal", "static"):
            p = (
                None
                if base is None or name == baseline
                else paired(scores_by_seed(dirs, key=key), scores_by_seed(base, key=key))
            )
            vs = vs or p
            cells.append(paired_cell(p))
        sd = f"{vs['sd']:.3f}" if vs and vs["n"] > 1 else "-"
        need = str(vs["seeds_for_0.05"]) if vs and vs["n"] > 1 else "-"
        lines.append(f"| {name} | {len(rl)} | " + " | ".join(cells) + f" | {sd} | {need} |")
    return "\n".join(lines)


def ablation_plot(runs, png, baseline="grpo"):
    """The ablation in one figure: left, each row's training accuracy (reward/accuracy) by step, mean over
    seeds, as a running mean of 5 steps; right, each row's held-out difference from the baseline row of the
    same seed (the baseline itself: from its SFT start), one dot per seed, a bar at the mean and the 95%
    t-interval. Returns what it drew: {row: (steps, mean accuracy, paired differences by seed)}."""
    import matplotlib  # only for the figure

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    drawn, intervals = {}, {}
    for name, dirs in runs.items():
        curves = [[json.loads(line) for line in open(os.path.join(d, "metrics.jsonl"))] for d in dirs]
        steps = min(len(c) for c in curves)  # seeds cut at the shortest run
        # [steps]
        accuracy = np.mean([[line.get("reward/accuracy", np.nan) for line in c[:steps]] for c in curves], axis=0)
        against = runs[baseline] if baseline in runs and name != baseline else None
        p = paired(scores_by_seed(dirs), scores_by_seed(against) if against else scores_by_seed(dirs, "sft"))
        drawn[name] = (list(range(1, steps + 1)), accuracy, p["diffs"])
        intervals[name] = (p["low"], p["high"]) if p["n"] > 1 else None
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.2), gridspec_kw={"width_ratios": [3, 2]})
    for i, (name, (steps, accuracy, diffs)) in enumerate(drawn.items()):
        window = min(5, len(accuracy))
        smooth = np.convolve(accuracy, np.ones(window) / window, mode="valid")
        left.plot(steps[window - 1 :], smooth, label=name, color=f"C{i}")
        right.bar(i, np.mean(diffs), color=f"C{i}", alpha=0.35)
        right.scatter([i] * len(diffs), diffs, color=f"C{i}", s=18, zorder=3)
        if intervals[name]:
            low, high = intervals[name]
            right.plot([i, i], [low, high], color="black", linewidth=1.5, zorder=4)
    seeds = max(len(dirs) for dirs in runs.values())
    left.set(
        title=f"training accuracy, mean of {seeds} seed(s), running mean of 5 steps",
        xlabel="RL step",
        ylabel="reward/accuracy",
    )
    left.legend(fontsize=8)
    right.axhline(0, color="black", linewidth=0.8)
    labels = [f"{n} - SFT" if n == baseline or baseline not in runs else n for n in drawn]
    right.set_xticks(range(len(drawn)), labels, rotation=30, ha="right", fontsize=8)
    right.set(
        title=f"held-out, minus {baseline} of the same seed (dots: seeds, bar: mean, line: 95% interval)",
        ylabel="overall score difference",
    )
    right.title.set_fontsize(9)
    fig.tight_layout()
    fig.savefig(png, dpi=90)
    plt.close(fig)
    return drawn


def ablation_table(runs):
    """Markdown: held-out overall / temporal / static (mean +- sample std over seeds; the SFT row over every seed
    of any row), vanishing-advantage
    fraction (before/after DA), T-GRPO's ordered-minus-shuffled training accuracy and the fraction of its
    bonused groups whose advantages the bonus changed, Reg-GRPO's fraction of updates where the regression
    acted, the KL term's share of the gradient and the seconds of an RL step (each a mean over the run's steps,
    then mean +- std over seeds)."""

    def stat(values):  # mean ± the sample std (Bessel's correction, as in `paired`); one value: ± -
        values = [v for v in values if v is not None]
        sd = f"{np.std(values, ddof=1):.3f}" if len(values) > 1 else "-"
        return f"{np.mean(values):.3f} ± {sd}" if values else "-"

    def gap_of(ordered, shuffled):
        return None if ordered is None or shuffled is None else ordered - shuffled

    def mean_metric(run_dir, key):
        rows = [json.loads(line) for line in open(os.path.join(run_dir, "metrics.jsonl"))]
        values = [r[key] for r in rows if key in r]
        return float(np.mean(values)) if values else None

    lines = [
        "| run | seeds | held-out overall | RL - SFT, same seed (seeds up) | temporal | static | zero-std groups | "
        "T-GRPO ordered - shuffled | T-GRPO bonus changed advantages | Reg-GRPO regression active | KL share "
        "of the gradient | RL s / step |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    summaries = {name: [json.load(open(os.path.join(d, "summary.json"))) for d in dirs] for name, dirs in runs.items()}
    starts = list({x.get("seed", i): x["sft"] for s in summaries.values() for i, x in enumerate(s)}.values())  # by seed
    lines.append(
        f"| SFT (start of every run) | {len(starts)} | {stat([s['overall'] for s in starts])} | - | "
        f"{stat([s.get('temporal') for s in starts])} | {stat([s.get('static') for s in starts])} | "
        "- | - | - | - | - | - |"
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
            stat([gap_of(mean_metric(d, "tgrpo/acc_ordered"), mean_metric(d, "tgrpo/acc_shuffled")) for d in dirs])
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
            f"{stat([x['rl'].get('static') for x in s])} | {zero} | {gap} | {changed} | {active} | "
            f"{stat([mean_metric(d, 'loss/kl_grad_share') for d in dirs])} | "
            f"{stat([mean_metric(d, 'time/step_s') for d in dirs])} |"
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
    parser.add_argument("--report", action="store_true", help="train nothing: the tables of the finished runs")
    args, extra = parser.parse_known_args(argv)  # the rest goes to every train.py run
    print(ablation(args.seeds, args.out, extra, args.rows, report_only=args.report))
