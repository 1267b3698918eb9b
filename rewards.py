"""Rule-based rewards for RL fine-tuning of video LLMs.

Everything here is a plain function on strings and lists of numbers, so it can
be read, tested and reused without torch. There are three kinds of function:

* Training rewards, scored per completion: `accuracy_reward` (one rule per
  `problem_type`) and `format_reward` (the `<think>...</think><answer>...</answer>`
  template). `score` bundles both for logging.
* Evaluation scores: `eval_score`, and `mra` (mean relative accuracy), the
  VSI-Bench metric for regression questions.
* Group bonuses, computed over the G completions sampled for one prompt:
  `length_bonus` and `temporal_bonus` (T-GRPO), both from Video-R1.
* DA's hint (DeepVideo-R1): `hint_of` cuts a completion's reasoning before
  it names the answer.

The rules follow Video-R1 (github tulerfeng/Video-R1, reward functions in
src/r1-v/src/open_r1/grpo.py, bonuses in .../trainer/grpo_trainer.py, evaluation
in src/eval_bench.py). Where we deliberately differ, the function's docstring
says so. In short:

* non-finite numbers ("nan", "inf", "1e309") always earn 0 (in Video-R1 a
  regression answer "nan" earns 1.0, and "inf" vs "inf" earns 1.0);
* regression drops Video-R1's 1e-9 smoothing, so an exact answer earns exactly
  1.0 and a ground truth of 0 is handled explicitly;
* answers are located with str.find instead of regexes that backtrack for
  minutes on adversarial completions (the same strings match);
* ROUGE and WER inputs are truncated so that a huge completion stays cheap;
* MRA thresholds are compared in exact rational arithmetic.

Model output is untrusted: every reward accepts any string and returns a finite
float in its range. Misuse by the caller (lists of different lengths) raises.
"""

import functools
import logging
import math
import re
from fractions import Fraction

logger = logging.getLogger(__name__)

# ROUGE-L and word-level edit distance are O(n*m) in pure Python. Answers in
# the training data are a sentence or a few; a 200 KB completion must not
# stall the trainer, so only this much of each text is compared (a fraction
# of a second even when both texts are that long).
MAX_ROUGE_CHARS = 1000
MAX_WER_WORDS = 500


# ---------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------


def _find_answer(text: str) -> str | None:
    """Content of the first <answer>...</answer> pair, stripped; None if absent.

    Same result as Video-R1's `re.search(r'<answer>\\s*(.*?)\\s*</answer>', text,
    re.DOTALL).group(1).strip()`. That regex takes minutes on "<answer>" * 30000
    (each opening tag restarts a scan to the end of the text), so we use
    str.find: the leftmost match starts at the first "<answer>" and the lazy
    `.*?` stops at the first "</answer>" after it. Both \\s and str.strip use
    Python's Unicode whitespace, so the stripped contents agree too.
    """
    start = text.find("<answer>")
    if start == -1:
        return None
    start += len("<answer>")
    end = text.find("</answer>", start)
    if end == -1:
        return None
    return text[start:end].strip()


def extract_answer(text: str) -> str:
    """The first <answer>...</answer> content, stripped; "" if there is none.

    Source: Video-R1 grpo.py `extract_answer`. See `_find_answer` for why this
    is not a regex.
    """
    answer = _find_answer(text)
    return "" if answer is None else answer


def _reference_answer(solution: str) -> str:
    # Datasets store solutions as "<answer>B</answer>"; accept a bare "B" too.
    answer = _find_answer(solution)
    return solution.strip() if answer is None else answer


def _parse_number(text: str) -> float | None:
    """float(text) after removing commas ("1,234.5" -> 1234.5); None on failure.

    Source: Video-R1 `normalize_number`. Deviations: non-finite values are
    rejected (float() happily returns nan for "nan" and inf for "inf" or
    "1e309", and those broke Video-R1's comparisons), and so are underscores,
    which float() accepts as in Python literals ("1_000") but which are not a
    way people write numbers. float() also strips whitespace and accepts
    scientific notation ("1e3"); a trailing unit ("3 apples") is rejected.
    """
    if "_" in text:
        return None
    try:
        value = float(text.replace(",", ""))
    except ValueError:
        return None
    return value if math.isfinite(value) else None


# Two unsigned decimal numbers, optionally bracketed: "[1.5, 4]", "1.5 - 4",
# "(2 to 7.25)". Unsigned because times in a video are never negative. Each
# part is followed by something it cannot match, so fullmatch stays linear.
_NUMBER = r"(\d+(?:\.\d*)?|\.\d+)"
_INTERVAL = re.compile(rf"[\[(]?\s*{_NUMBER}\s*(?:,|-|–|to)\s*{_NUMBER}\s*[\])]?")


def _parse_interval(text: str) -> tuple[float, float] | None:
    match = _INTERVAL.fullmatch(text)
    if match is None:
        return None
    start, end = float(match.group(1)), float(match.group(2))
    # A 400-digit number parses to inf; an interval must also run forwards.
    if not (math.isfinite(start) and math.isfinite(end)) or end < start:
        return None
    return start, end


# ---------------------------------------------------------------------------
# One rule per problem type: (predicted answer, reference answer) -> [0, 1]
# ---------------------------------------------------------------------------


def _multiple_choice(pred: str, gt: str) -> float:
    # Exact match, as Video-R1. "B. red" vs "B" earns 0: the prompt asks for
    # the option letter only, and being strict rewards following it.
    return 1.0 if pred.strip() == gt.strip() else 0.0


def _numerical(pred: str, gt: str) -> float:
    # Video-R1's rule: "3" and "3.0" disagree, because writing a decimal
    # point (or a thousands comma) when the answer is an integer, or the
    # reverse, counts as a wrong format. Then compare to 2 decimals.
    gt_has_decimal = "." in gt or "," in gt
    pred_has_decimal = "." in pred or "," in pred
    if gt_has_decimal != pred_has_decimal:
        return 0.0
    pred_value, gt_value = _parse_number(pred), _parse_number(gt)
    if pred_value is None or gt_value is None:
        return 0.0
    return 1.0 if round(pred_value, 2) == round(gt_value, 2) else 0.0


def _word_edit_distance(ref: list[str], hyp: list[str]) -> int:
    # Levenshtein distance over words, keeping only the previous DP row:
    # row[j] = edits to turn the first i reference words into hyp[:j].
    row = list(range(len(hyp) + 1))
    for i, ref_word in enumerate(ref, start=1):
        diagonal, row[0] = row[0], i
        for j, hyp_word in enumerate(hyp, start=1):
            substitute = diagonal + (ref_word != hyp_word)
            diagonal = row[j]
            row[j] = min(substitute, row[j] + 1, row[j - 1] + 1)  # sub, del, ins
    return row[-1]


def _ocr(pred: str, gt: str) -> float:
    """1 - WER, clipped to [0, 1]. Source: Video-R1 grpo.py `wer`.

    Case-sensitive and split on whitespace, exactly as Video-R1 (we chose not
    to lowercase: the reward should be the one the paper trained with).
    Deviations: only the first MAX_WER_WORDS words of each side are compared,
    and an empty reference is scored 1.0/0.0 explicitly (Video-R1 gets the
    same numbers from its max(1, m) denominator).
    """
    ref, hyp = gt.split(), pred.split()
    if not ref:
        return 1.0 if not hyp else 0.0
    # The distance is at least the length difference, so when that alone
    # reaches len(ref), WER >= 1 and the reward is 0: skip the O(n*m) table.
    if abs(len(hyp) - len(ref)) >= len(ref):
        return 0.0
    ref, hyp = ref[:MAX_WER_WORDS], hyp[:MAX_WER_WORDS]
    wer = _word_edit_distance(ref, hyp) / len(ref)
    return max(0.0, min(1.0, 1.0 - wer))


@functools.cache
def _rouge_scorer():
    # Imported on first use: rouge_score pulls in nltk, which is slow to
    # import and not needed by the other problem types.
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)


def _free_form(pred: str, gt: str) -> float:
    """Mean of ROUGE-1, ROUGE-2 and ROUGE-L F-measures, clipped to [0, 1].

    Source: Video-R1 grpo.py `compute_rouge_score`. rouge_score lowercases,
    drops non-alphanumeric characters and stems, so "Cats!" matches "cat".
    Deviation: each text is cut to MAX_ROUGE_CHARS characters first (ROUGE-L
    is quadratic), and the scorer is built once instead of per call.
    """
    scores = _rouge_scorer().score(gt[:MAX_ROUGE_CHARS], pred[:MAX_ROUGE_CHARS])
    mean = (scores["rouge1"].fmeasure + scores["rouge2"].fmeasure + scores["rougeL"].fmeasure) / 3
    return max(0.0, min(1.0, mean))


def _regression(pred: str, gt: str) -> float:
    """1 - min(1, |pred - gt| / |gt|). Source: Video-R1 grpo.py.

    Deviations: Video-R1 computes (|pred - gt| + 1e-9) / (|gt| + 1e-9), which
    gives an exact answer slightly less than 1, and an exact answer of 0 a
    reward of 0. We drop the smoothing and define gt == 0 as 1 if pred == 0
    else 0. And "nan" earns 0 here: in Video-R1 the relative error is nan,
    max(0.0, nan) returns 0.0, and the reward comes out as 1.0.
    """
    pred_value, gt_value = _parse_number(pred), _parse_number(gt)
    if pred_value is None or gt_value is None:
        return 0.0
    if gt_value == 0:
        return 1.0 if pred_value == 0 else 0.0
    # May overflow to inf for huge values; min() then caps it at 1.
    relative_error = abs(pred_value - gt_value) / abs(gt_value)
    return 1.0 - min(1.0, relative_error)


def _regression_within(pred: str, gt: str, tolerance: float) -> float:
    """1.0 if |pred - gt| / |gt| <= tolerance, else 0.0: a right-or-wrong
    regression reward, like the other answer types'. Ours, not Video-R1's.

    Why: a graded reward almost never gives a group of G completions equal
    rewards, so after group normalisation a group whose answers differ by a
    point or two pushes the update as hard as a multiple-choice group with one
    right answer, in a direction that is mostly sampling noise. With this
    reward such a group carries no signal, and an answer that is far off or no
    number at all is still pushed down. gt == 0: 1 only for pred == 0.
    Measured on the main job (docs/EXPERIMENTS.md, "The main job on a second build"): it did
    not help; with a tolerance relative to gt, a large answer is right for more
    sizes than a small one, and RL learned that prior.
    """
    pred_value, gt_value = _parse_number(pred), _parse_number(gt)
    if pred_value is None or gt_value is None:
        return 0.0
    if gt_value == 0:
        return 1.0 if pred_value == 0 else 0.0
    # exact fractions, as in `mra`: in floats 0.1 * 30 is 3.0000000000000004, moving the boundary
    error, allowed = abs(Fraction(pred_value) - Fraction(gt_value)), Fraction(str(tolerance)) * abs(Fraction(gt_value))
    return 1.0 if error <= allowed else 0.0


def _temporal_grounding(pred: str, gt: str) -> float:
    """IoU of two [start, end] intervals in seconds.

    Not in Video-R1's grpo.py: this is the usual temporal IoU of temporal
    grounding benchmarks (e.g. Charades-STA). Zero-length intervals are valid;
    two identical ones have IoU 1 (their union is empty, so we special-case it).
    """
    pred_span, gt_span = _parse_interval(pred), _parse_interval(gt)
    if pred_span is None or gt_span is None:
        return 0.0
    (p_start, p_end), (g_start, g_end) = pred_span, gt_span
    intersection = max(0.0, min(p_end, g_end) - max(p_start, g_start))
    union = max(p_end, g_end) - min(p_start, g_start)
    if union == 0:
        return 1.0  # both intervals are the same single point
    return max(0.0, min(1.0, intersection / union))


_RULES = {
    "multiple choice": _multiple_choice,
    "numerical": _numerical,
    "OCR": _ocr,
    "free-form": _free_form,
    "regression": _regression,
    "temporal grounding": _temporal_grounding,
}

_warned_problem_types: set[str] = set()


def _unknown_problem_type(problem_type: str) -> float:
    # Warn once per type: a typo in a dataset would otherwise flood the log
    # with one line per completion while silently rewarding nothing.
    if problem_type not in _warned_problem_types:
        _warned_problem_types.add(problem_type)
        logger.warning("unknown problem_type %r: accuracy reward is 0", problem_type)
    return 0.0


# ---------------------------------------------------------------------------
# Public rewards and scores
# ---------------------------------------------------------------------------


def accuracy_reward(
    completion: str, solution: str, problem_type: str, regression: str = "relative", tolerance: float = 0.2
) -> float:
    """Training reward in [0, 1] for one completion. Source: Video-R1 grpo.py.

    The answer is the first <answer>...</answer> of the completion ("" if none,
    which earns 0 for every type). The solution may be tagged or bare.
    Unknown problem types earn 0 and are logged once. regression="relative"
    is Video-R1's 1 - relative error; "mra" rewards a regression answer with
    the evaluation's metric instead (`mra`); "within" gives 1 when the
    relative error is at most `tolerance`, else 0 (`_regression_within`).
    All three read the answer only inside the tags.
    """
    if regression not in REGRESSION_REWARDS:
        raise ValueError(
            f"regression reward must be one of {', '.join(map(repr, REGRESSION_REWARDS))}, not {regression!r}"
        )
    rule = REGRESSION_REWARDS[regression] if problem_type == "regression" else _RULES.get(problem_type)
    if regression == "within" and problem_type == "regression":
        rule = functools.partial(rule, tolerance=tolerance)
    if rule is None:
        return _unknown_problem_type(problem_type)
    return rule(extract_answer(completion), _reference_answer(solution))


# 0.50, 0.55, ..., 0.95 as exact fractions: 0.5 + 0.05 * i in floats drifts.
_MRA_THRESHOLDS = [Fraction(1, 2) + Fraction(1, 20) * i for i in range(10)]


def mra(pred: float, target: float) -> float:
    """Mean relative accuracy: the fraction of thresholds θ in {0.50, 0.55, ...,
    0.95} with |pred - target| / |target| < 1 - θ.

    Source: VSI-Bench (Yang et al., "Thinking in Space"), as used in Video-R1
    src/eval_bench.py. Deviation: Video-R1 builds the thresholds with float32
    torch.arange and adds 1e-8 to |target|, and rounding error moves the
    boundaries (in float64 too, 1 - 0.95 is 0.050000000000000044): there,
    pred 9.5 for target 10 (error exactly 0.05) scores 1.0 instead of 0.9,
    and pred 9 scores 0.9 instead of 0.8. We compare exact fractions: the
    thresholds and the error of the given floats. target == 0 scores 1 if
    pred == 0 else 0 (as Video-R1 in effect); non-finite inputs score 0.
    """
    if not (math.isfinite(pred) and math.isfinite(target)):
        return 0.0
    if target == 0:
        return 1.0 if pred == 0 else 0.0
    relative_error = abs(Fraction(pred) - Fraction(target)) / abs(Fraction(target))
    hits = sum(relative_error < 1 - theta for theta in _MRA_THRESHOLDS)
    return hits / len(_MRA_THRESHOLDS)


def _regression_mra(pred: str, gt: str) -> float:
    """`mra` of two answer strings; 0 when either is not a number."""
    pred_value, gt_value = _parse_number(pred), _parse_number(gt)
    if pred_value is None or gt_value is None:
        return 0.0
    return mra(pred_value, gt_value)


# The training rewards a regression answer can get (accuracy_reward's `regression`); train.py's choices.
REGRESSION_REWARDS = {"relative": _regression, "mra": _regression_mra, "within": _regression_within}


def eval_score(completion: str, solution: str, problem_type: str) -> float:
    """Evaluation score in [0, 1]. Source: Video-R1 src/eval_bench.py `reward_fn`.

    Same rules as `accuracy_reward`, except that regression is scored with
    `mra`, and a completion without an <answer>...</answer> pair is scored on
    its whole stripped text (a model that just says "B" still gets credit).
    Deviations: Video-R1 falls back to the whole text whenever the extracted
    answer is empty, so "<answer></answer>" is compared as that literal text;
    here it is the empty answer. Video-R1's evaluation scores OCR and
    free-form as 0; here they use the training rules (WER, ROUGE).
    """
    answer = _find_answer(completion)
    pred = completion.strip() if answer is None else answer
    gt = _reference_answer(solution)
    if problem_type == "regression":
        return _regression_mra(pred, gt)
    rule = _RULES.get(problem_type)
    if rule is None:
        return _unknown_problem_type(problem_type)
    return rule(pred, gt)


def format_reward(completion: str) -> float:
    """1.0 if the whole completion is <think>...</think> <answer>...</answer>.

    Source: Video-R1 grpo.py, `re.fullmatch(r"<think>.*?</think>\\s*<answer>.*?
    </answer>", completion, re.DOTALL)`. We accept exactly the same strings
    without the regex, which needs tens of seconds on a 200 KB completion such
    as "<think>" + "</think><answer>" * 12000: for every "</think>" it rescans
    the rest of the text for "</answer>".

    Reading the regex: the text must start with "<think>" and end with
    "</answer>", and some "</think>" after the opening tag must be followed by
    optional whitespace and then "<answer>", with room left for the final
    "</answer>". Everything else (even more tags) can sit inside the `.*?`s.
    """
    if not (completion.startswith("<think>") and completion.endswith("</answer>")):
        return 0.0
    # "<answer>" must end no later than where the final "</answer>" starts.
    last_answer_start = len(completion) - len("</answer>") - len("<answer>")
    close_think = completion.find("</think>", len("<think>"))
    while close_think != -1:
        i = close_think + len("</think>")
        while i < len(completion) and completion[i].isspace():  # same set as \s
            i += 1
        # Later "</think>"s only lead to later positions, so we can stop here.
        if i > last_answer_start:
            return 0.0
        if completion.startswith("<answer>", i):
            return 1.0
        # The whitespace we skipped cannot contain "</think>", so searching
        # on from i visits each character once: linear time overall.
        close_think = completion.find("</think>", i)
    return 0.0


def score(completion: str, solution: str, problem_type: str) -> dict[str, float]:
    """The reward parts for one completion, kept separate for logging."""
    return {
        "accuracy": accuracy_reward(completion, solution, problem_type),
        "format": format_reward(completion),
    }


# ---------------------------------------------------------------------------
# Group bonuses (one prompt, G sampled completions)
# ---------------------------------------------------------------------------


def length_bonus(correct: list[bool], lengths: list[int], l_min: int, l_max: int, omega: float = 0.2) -> list[float]:
    """`omega` for each correct completion with l_min <= length <= l_max tokens,
    but only if more than one completion of the group is correct; else 0.

    Source: Video-R1 paper and grpo_trainer.py (`len_control`: omega 0.2,
    320..512 tokens). There, "correct" means accuracy reward > 0.1; here the
    caller decides.
    """
    if len(correct) != len(lengths):
        raise ValueError(f"got {len(correct)} correctness flags for {len(lengths)} lengths")
    if sum(correct) <= 1:
        return [0.0] * len(correct)
    return [omega if ok and l_min <= length <= l_max else 0.0 for ok, length in zip(correct, lengths)]


# p == mu * p~ must count as ">=", but float means can land just below: for
# ordered [0.1, 0.7] and shuffled [0.5], p is 0.39999999999999997 and
# mu * p~ is 0.4. 1e-12 is far above the rounding error of a mean of numbers
# in [0, 1] and far below any difference between accuracies that matters.
_BOUNDARY_TOLERANCE = 1e-12


def temporal_bonus(
    acc_ordered: list[float], acc_shuffled: list[float], alpha: float = 0.3, mu: float = 1.0
) -> list[float]:
    """T-GRPO: `alpha` for each ordered-frame completion with accuracy > 0.1,
    if the group does at least `mu` times as well on ordered as on shuffled
    frames (p >= mu * p~, with p and p~ the mean accuracies); else 0.

    Source: Video-R1 (alpha 0.3). mu: the paper (v4, Eq. 1) says p >= p~ (mu 1);
    its grpo_trainer.py uses 0.8, which its maintainers said "should be 1.0"
    (tulerfeng/Video-R1 issue 74); train.py's --tgrpo_mu defaults to 1.

    What it can change: under std-normalised advantages nothing, for a group
    whose rewards take two values (binary accuracy, constant format): adding
    alpha to every correct completion maps the rewards affinely, R' = a R + b,
    and (R' - mean) / std' equals (R - mean) / std up to eps. It moves the
    advantages only of groups with three or more reward levels, or without
    the std (Dr. GRPO's --adv_norm none, RLOO, REINFORCE). Video-R1's
    maintainers were asked about this (tulerfeng/Video-R1 issue 51).
    Deviations: Video-R1 takes the means over the whole per-device batch in
    float32 (its scripts put one prompt per device, so that is the group); we
    take them per group in float64 and count the boundary with a 1e-12
    tolerance.
    """
    if not acc_shuffled:
        raise ValueError("temporal_bonus needs at least one shuffled-frame accuracy")
    if not acc_ordered:
        return []
    p = sum(acc_ordered) / len(acc_ordered)
    p_shuffled = sum(acc_shuffled) / len(acc_shuffled)
    if p < mu * p_shuffled - _BOUNDARY_TOLERANCE:
        return [0.0] * len(acc_ordered)
    return [alpha if acc > 0.1 else 0.0 for acc in acc_ordered]


# ---------------------------------------------------------------------------
# DA's hint (train.difficulty_augment): the start of a reasoning written with the answer revealed
# ---------------------------------------------------------------------------


def reasoning_of(text):
    """The text inside <think>...</think> (or before <answer> when the tag is missing)."""
    start, end = text.find("<think>"), text.find("</think>")
    if start != -1 and end > start:
        return text[start + len("<think>") : end].strip()
    return text.split("<answer>")[0].strip()


def hint_prefix(reasoning, fraction):
    """The first ceil(fraction * words) words of a reasoning text."""
    words = reasoning.split()
    return " ".join(words[: math.ceil(fraction * len(words))])


def hint_of(reasoning, record, fraction):
    """DA's hint: the first ceil(fraction * words) words of reasoning written with the answer revealed, cut
    before its first mention of the answer (the answer itself as a word, and for multiple choice the chosen
    option's text, or its letter followed by '.' or ')'). A hint that said "The square is green." would leave
    nothing to reason about: the hinted group came out all right, without a learning signal."""
    answer = extract_answer(record["solution"]).strip()
    patterns = [rf"(?<!\w){re.escape(answer)}(?!\w)"] if len(answer) > 1 or answer.isdigit() else []
    for option in record.get("options") or []:
        letter, _, text = str(option).partition(".")
        if letter.strip() == answer and text.strip():
            patterns += [rf"(?<!\w){re.escape(text.strip())}(?!\w)", rf"(?<!\w){re.escape(answer)}(?=[.)])"]
    cut = min([m.start() for p in patterns if (m := re.search(p, reasoning, re.IGNORECASE))] + [len(reasoning)])
    return hint_prefix(reasoning[:cut], fraction)
