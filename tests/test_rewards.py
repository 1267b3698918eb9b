"""Tests for rewards.py: hand-computed tables, property tests, adversarial speed."""

import logging
import math
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import rewards
from rewards import (
    accuracy_reward,
    eval_score,
    extract_answer,
    format_reward,
    length_bonus,
    mra,
    score,
    temporal_bonus,
)

PROBLEM_TYPES = ["multiple choice", "numerical", "OCR", "free-form", "regression", "temporal grounding"]

# The regexes of Video-R1 grpo.py; rewards.py must accept exactly the same strings.
FORMAT_RE = re.compile(r"<think>.*?</think>\s*<answer>.*?</answer>", re.DOTALL)
ANSWER_RE = re.compile(r"<answer>\s*(.*?)\s*</answer>", re.DOTALL)

FEW = settings(max_examples=200, deadline=None)


def tagged(text):
    return f"<answer>{text}</answer>"


# ---------------------------------------------------------------------------
# extract_answer and format_reward
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("<answer>B</answer>", "B"),
        ("<think>x</think><answer> B </answer>", "B"),
        ("<answer>\n 1.5 \n</answer>", "1.5"),
        ("<answer>a</answer><answer>b</answer>", "a"),  # the first pair wins
        ("</answer><answer>x</answer>", "x"),
        ("<answer><answer>x</answer>", "<answer>x"),  # first opening tag
        ("<answer></answer>", ""),
        ("<answer>unclosed", ""),
        ("no tags at all", ""),
        ("", ""),
    ],
)
def test_extract_answer(text, expected):
    assert extract_answer(text) == expected


@pytest.mark.parametrize(
    "completion, expected",
    [
        ("<think>r</think><answer>B</answer>", 1.0),
        ("<think>r</think>  \n\t <answer>B</answer>", 1.0),
        ("<think>\nline 1\nline 2\n</think>\n<answer>\nB\n</answer>", 1.0),
        ("<think></think><answer></answer>", 1.0),
        ("<think></think>\u00a0\u2028<answer>x</answer>", 1.0),  # Unicode whitespace is \s
        ("<think>a</think>b</think><answer>B</answer>", 1.0),  # .*? may contain tags
        ("<think>r</think><answer>B</answer><answer>C</answer>", 1.0),
        ("hi <think>r</think><answer>B</answer>", 0.0),  # leading text
        (" <think>r</think><answer>B</answer>", 0.0),
        ("<think>r</think><answer>B</answer> ", 0.0),  # trailing whitespace
        ("<think>r</think><answer>B</answer>bye", 0.0),  # trailing text
        ("<think>r</think> so <answer>B</answer>", 0.0),  # text between the blocks
        ("<think>r</think>\u200b<answer>B</answer>", 0.0),  # zero-width space is not \s
        ("<answer>B</answer>", 0.0),
        ("<think>r</think>", 0.0),
        ("<think>r<answer>B</answer>", 0.0),
        ("<think></think><answer></answer", 0.0),
        ("<think></think><answer>", 0.0),
        ("", 0.0),
    ],
)
def test_format_reward(completion, expected):
    assert format_reward(completion) == expected
    assert format_reward(completion) == (1.0 if FORMAT_RE.fullmatch(completion) else 0.0)


# ---------------------------------------------------------------------------
# accuracy_reward, one table per problem type
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "pred, gt, expected",
    [
        ("<answer>B</answer>", "<answer>B</answer>", 1.0),
        ("<answer> B </answer>", "B", 1.0),  # bare solution is accepted
        ("<think>hmm</think><answer>B</answer>", " <answer>B</answer> ", 1.0),
        ("<answer>B. red</answer>", "<answer>B</answer>", 0.0),  # exact match only
        ("<answer>b</answer>", "<answer>B</answer>", 0.0),
        ("<answer>C</answer>", "<answer>B</answer>", 0.0),
        ("B", "<answer>B</answer>", 0.0),  # training needs the tag
    ],
)
def test_multiple_choice(pred, gt, expected):
    assert accuracy_reward(pred, gt, "multiple choice") == expected


@pytest.mark.parametrize(
    "pred, gt, expected",
    [
        ("42", "42", 1.0),
        ("-7", "-7", 1.0),
        ("3.14159", "3.14", 1.0),  # both round to 3.14
        # 3.145 is stored as 3.14500000000000001776..., so round(3.145, 2) == 3.15.
        ("3.145", "3.14", 0.0),
        ("3.145", "3.15", 1.0),
        # 2.675 is stored as 2.67499999999999982236..., so round(2.675, 2) == 2.67.
        ("2.675", "2.68", 0.0),
        ("2.675", "2.67", 1.0),
        ("3", "3.0", 0.0),  # decimal point on one side only
        ("3.0", "3", 0.0),
        ("1,000", "1000", 0.0),  # a comma counts as a decimal mark too
        ("1,000", "1,000.0", 1.0),  # both "have a decimal", both parse to 1000
        ("1,234.5", "1234.50", 1.0),
        ("1e3", "1000", 1.0),  # neither has "." nor ",", 1e3 == 1000
        (" 5 ", "5", 1.0),
        ("1_000", "1000", 0.0),  # underscores are rejected
        ("3 apples", "3", 0.0),
        ("three", "3", 0.0),
        ("", "3", 0.0),
        ("inf", "inf", 0.0),  # Video-R1 gives 1.0 (inf == inf)
        ("nan", "nan", 0.0),
        ("1e309", "1e309", 0.0),  # overflows to inf
    ],
)
def test_numerical(pred, gt, expected):
    assert accuracy_reward(tagged(pred), tagged(gt), "numerical") == expected


@pytest.mark.parametrize(
    "pred, gt, expected",
    [
        ("the cat sat down", "the cat sat down", 1.0),
        ("the cat sit down", "the cat sat down", 0.75),  # 1 substitution / 4 words
        ("a b c", "a b", 0.5),  # 1 insertion / 2 words
        ("a b", "a b c d", 0.5),  # 2 deletions / 4 words
        ("b a", "a b", 0.0),  # 2 substitutions / 2 words
        ("a b c d e", "a b", 0.0),  # WER 1.5, clipped
        ("  the   cat ", "the cat", 1.0),  # split on any whitespace
        ("The Cat", "the cat", 0.0),  # case-sensitive, as Video-R1
        ("", "a", 0.0),
        ("", "", 1.0),  # empty reference
        ("a", "", 0.0),
    ],
)
def test_ocr(pred, gt, expected):
    assert accuracy_reward(tagged(pred), tagged(gt), "OCR") == pytest.approx(expected)


@pytest.mark.parametrize(
    "pred, gt, expected",
    [
        ("the cat sat on the mat", "the cat sat on the mat", 1.0),
        ("dog barks", "the cat", 0.0),
        # ROUGE-1: 5 of 6 words shared -> 5/6. ROUGE-2: the-cat, on-the, the-mat of
        # 5 bigrams -> 3/5. ROUGE-L: LCS "the cat on the mat" -> 5/6.
        # Mean: (5/6 + 3/5 + 5/6) / 3 = 34/45.
        ("the cat lay on the mat", "the cat sat on the mat", 34 / 45),
        ("Cats running!", "cat run", 1.0),  # lowercased, punctuation dropped, stemmed
        ("", "the cat", 0.0),
    ],
)
def test_free_form(pred, gt, expected):
    assert accuracy_reward(tagged(pred), tagged(gt), "free-form") == pytest.approx(expected)


@pytest.mark.parametrize(
    "pred, gt, expected",
    [
        ("10", "10", 1.0),
        ("8", "10", 0.8),
        ("12", "10", 0.8),
        ("7.5", "10", 0.75),
        ("25", "10", 0.0),  # relative error 1.5, capped at 1
        ("-10", "10", 0.0),
        ("1,000", "1000", 1.0),  # no decimal rule for regression
        ("0", "0", 1.0),  # Video-R1 gives 0 here (1e-9 / 1e-9 = 1)
        ("0.1", "0", 0.0),
        ("nan", "10", 0.0),  # Video-R1 gives 1.0: max(0.0, nan) is 0.0
        ("inf", "10", 0.0),
        ("-inf", "10", 0.0),
        ("1e309", "10", 0.0),
        ("1e308", "-1e308", 0.0),  # the difference overflows to inf
        ("ten", "10", 0.0),
        ("", "10", 0.0),
    ],
)
def test_regression(pred, gt, expected):
    assert accuracy_reward(tagged(pred), tagged(gt), "regression") == pytest.approx(expected)


@pytest.mark.parametrize(
    "completion, gt, expected",
    [
        ("<answer>9</answer>", "10", 0.8),  # error 0.10 < 1 - theta for theta 0.50..0.85: 8 of 10 (relative: 0.9)
        ("<answer>10</answer>", "10", 1.0),
        ("<answer>14</answer>", "10", 0.2),  # error 0.40: theta 0.50, 0.55 (relative: 0.6)
        ("<answer>16</answer>", "10", 0.0),  # error 0.60: no threshold (relative: 0.4)
        ("9", "10", 0.0),  # training rewards need the tags, unlike eval_score
        ("<answer>nine</answer>", "10", 0.0),
    ],
)
def test_regression_reward_mra(completion, gt, expected):
    assert accuracy_reward(completion, tagged(gt), "regression", regression="mra") == pytest.approx(expected)
    # other types unchanged
    assert accuracy_reward("<answer>B</answer>", "<answer>B</answer>", "multiple choice", regression="mra") == 1.0


@pytest.mark.parametrize(
    "completion, gt, tolerance, expected",
    [
        ("<answer>12</answer>", "10", 0.2, 1.0),  # error exactly 0.2: inside (<=)
        ("<answer>8</answer>", "10", 0.2, 1.0),
        ("<answer>12.5</answer>", "10", 0.2, 0.0),  # error 0.25
        ("<answer>33</answer>", "30", 0.1, 1.0),  # 3 <= 0.1 * 30 exactly (in floats 0.1 * 30 is 3.0000000000000004)
        ("<answer>27</answer>", "30", 0.1, 1.0),
        ("<answer>26.9</answer>", "30", 0.1, 0.0),
        ("<answer>0</answer>", "0", 0.2, 1.0),
        ("<answer>0.1</answer>", "0", 0.2, 0.0),
        ("<answer>B</answer>", "10", 0.2, 0.0),  # not a number
        ("12", "10", 0.2, 0.0),  # training rewards need the tags
    ],
)
def test_regression_reward_within(completion, gt, tolerance, expected):
    assert accuracy_reward(completion, tagged(gt), "regression", regression="within", tolerance=tolerance) == expected
    # other types unchanged
    assert accuracy_reward("<answer>B</answer>", "<answer>B</answer>", "multiple choice", regression="within") == 1.0


def test_regression_reward_must_be_known():
    with pytest.raises(ValueError, match="'relative', 'mra', 'within'"):
        accuracy_reward("<answer>9</answer>", "<answer>10</answer>", "regression", regression="mse")


def test_regression_nan_is_the_video_r1_bug():
    # What Video-R1's formula does with a "nan" answer, for the record:
    rel_diff = (abs(float("nan") - 10.0) + 1e-9) / (abs(10.0) + 1e-9)
    assert 1 - min(1.0, max(0.0, rel_diff)) == 1.0
    assert accuracy_reward(tagged("nan"), tagged("10"), "regression") == 0.0


@pytest.mark.parametrize(
    "pred, gt, expected",
    [
        ("[1.5, 4]", "[1.5, 4]", 1.0),
        ("1.5, 4", "[1.5, 4.0]", 1.0),
        ("1.5 - 4", "[1.5, 4]", 1.0),
        ("(1.5 to 4)", "[1.5, 4]", 1.0),
        ("[0, 10]", "[5, 15]", 1 / 3),  # 5 shared / 15 covered
        ("[2, 4]", "[0, 4]", 0.5),
        ("[1, 2]", "[0, 10]", 0.1),
        ("[0, 2]", "[3, 5]", 0.0),  # disjoint
        ("[0, 3]", "[3, 5]", 0.0),  # touching
        ("[3, 3]", "[3, 3]", 1.0),  # identical points
        ("[3, 3]", "[0, 6]", 0.0),
        ("[5, 1]", "[1, 5]", 0.0),  # end before start
        ("[-1, 2]", "[0, 2]", 0.0),  # negative times are not accepted
        ("[1, 2, 3]", "[1, 2]", 0.0),
        ("1.5", "[1.5, 4]", 0.0),
        ("from 1 to 4", "[1, 4]", 0.0),
        ("[0, " + "9" * 400 + "]", "[0, 4]", 0.0),  # overflows to inf
    ],
)
def test_temporal_grounding(pred, gt, expected):
    assert accuracy_reward(tagged(pred), tagged(gt), "temporal grounding") == pytest.approx(expected)


def test_unknown_problem_type_is_zero_and_logged_once(caplog):
    with caplog.at_level(logging.WARNING, logger="rewards"):
        for _ in range(3):
            assert accuracy_reward(tagged("B"), tagged("B"), "no such type (test)") == 0.0
            assert eval_score("B", tagged("B"), "no such type (test)") == 0.0
    assert len([r for r in caplog.records if "no such type (test)" in r.getMessage()]) == 1


def test_score_returns_the_parts():
    completion = "<think>r</think><answer>B</answer>"
    assert score(completion, tagged("B"), "multiple choice") == {"accuracy": 1.0, "format": 1.0}
    assert score("<answer>B</answer>", tagged("C"), "multiple choice") == {"accuracy": 0.0, "format": 0.0}


# ---------------------------------------------------------------------------
# Evaluation: mra and eval_score
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "pred, target, expected",
    [
        (10, 10, 1.0),
        (10.4, 10, 1.0),  # error 0.04 < 0.05, the strictest threshold
        # Error exactly 0.05: passes 1 - θ for θ = 0.50 .. 0.90, not 0.05 < 0.05.
        (9.5, 10, 0.9),
        (9, 10, 0.8),  # error 0.1: thresholds 0.50 .. 0.85
        (11, 10, 0.8),
        (5.5, 10, 0.1),  # error 0.45 < 0.5 only
        (5, 10, 0.0),
        (-10, 10, 0.0),
        (-9.5, -10, 0.9),
        (0, 0, 1.0),
        (0.001, 0, 0.0),
        (math.nan, 10, 0.0),
        (10, math.inf, 0.0),
        (math.inf, math.inf, 0.0),
    ],
)
def test_mra(pred, target, expected):
    assert mra(pred, target) == pytest.approx(expected)


def test_mra_naive_float_thresholds_miscount():
    # Why rewards.py uses fractions: with float thresholds 1 - 0.95 is
    # 0.050000000000000044, so an error of exactly 0.05 passes all ten.
    naive = [0.5 + 0.05 * i for i in range(10)]
    assert sum(abs(9.5 - 10) / 10 < 1 - t for t in naive) == 10
    assert mra(9.5, 10) == 0.9


@pytest.mark.parametrize(
    "completion, solution, problem_type, expected",
    [
        (tagged("9.5"), tagged("10"), "regression", 0.9),
        ("9.5", tagged("10"), "regression", 0.9),  # no tag: whole text
        ("  9.5 \n", "10", "regression", 0.9),
        ("about 9.5", tagged("10"), "regression", 0.0),
        (tagged("nan"), tagged("10"), "regression", 0.0),
        ("B", tagged("B"), "multiple choice", 1.0),
        ("  B \n", tagged("B"), "multiple choice", 1.0),
        ("<think>so B</think> B", tagged("B"), "multiple choice", 0.0),
        ("<answer></answer>", tagged("B"), "multiple choice", 0.0),
        ("3.14", tagged("3.14"), "numerical", 1.0),
        ("3", tagged("3.0"), "numerical", 0.0),
        ("the cat sit down", tagged("the cat sat down"), "OCR", 0.75),
        ("[0, 10]", tagged("[5, 15]"), "temporal grounding", 1 / 3),
    ],
)
def test_eval_score(completion, solution, problem_type, expected):
    assert eval_score(completion, solution, problem_type) == pytest.approx(expected)


# ---------------------------------------------------------------------------
# Group bonuses
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "correct, lengths, expected",
    [
        ([True, True, False], [320, 512, 400], [0.2, 0.2, 0.0]),
        ([True, True, True, True], [319, 320, 512, 513], [0.0, 0.2, 0.2, 0.0]),
        ([True, False, False], [400, 400, 400], [0.0, 0.0, 0.0]),  # one correct: none
        ([False, False], [400, 400], [0.0, 0.0]),
        ([], [], []),
    ],
)
def test_length_bonus(correct, lengths, expected):
    assert length_bonus(correct, lengths, l_min=320, l_max=512) == expected


def test_length_bonus_omega_and_mismatch():
    assert length_bonus([True, True], [5, 50], l_min=1, l_max=10, omega=0.5) == [0.5, 0.0]
    with pytest.raises(ValueError):
        length_bonus([True, True], [400], l_min=320, l_max=512)


@pytest.mark.parametrize(
    "ordered, shuffled, expected",
    [
        # p = 0.4, p~ = 0.5: p == 0.8 * p~ counts.
        ([1, 1, 0, 0, 0], [1, 0], [0.3, 0.3, 0.0, 0.0, 0.0]),
        # Here p is 0.39999999999999997 in floats and 0.8 * 0.5 is 0.4: still equal.
        # 0.1 itself is not > 0.1.
        ([0.1, 0.7], [0.5], [0.0, 0.3]),
        ([1, 0, 0, 0, 0], [1, 0], [0.0] * 5),  # 0.2 < 0.4
        ([0, 0, 0], [0, 0], [0.0] * 3),  # condition holds, nobody > 0.1
        ([0.5, 0.05], [0, 0], [0.3, 0.0]),
        ([], [1.0], []),
    ],
)
def test_temporal_bonus(ordered, shuffled, expected):  # Video-R1's code: mu = 0.8
    assert temporal_bonus(ordered, shuffled, mu=0.8) == expected


def test_temporal_bonus_default_is_the_papers_mu_of_one():
    # p = 0.4, p~ = 0.5: enough for mu 0.8 (above), not for the paper's p >= p~; p == p~ counts
    assert temporal_bonus([1, 1, 0, 0, 0], [1, 0]) == [0.0] * 5
    assert temporal_bonus([1, 0], [1, 0]) == [0.3, 0.0]


def test_temporal_bonus_parameters_and_errors():
    assert temporal_bonus([1, 0], [1, 1], alpha=0.5, mu=0.5) == [0.5, 0.0]
    assert temporal_bonus([1, 0], [1, 1], alpha=0.5, mu=0.6) == [0.0, 0.0]
    with pytest.raises(ValueError):
        temporal_bonus([1.0], [])


# ---------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------

TAG_PIECES = [
    "<think>",
    "</think>",
    "<answer>",
    "</answer>",
    "<",
    ">",
    "/",
    "think",
    "answer",
    " ",
    "\n",
    "\t",
    "\u00a0",
    "\u2028",
    "\x1c",
    "\u200b",
    "a",
    "B",
    "1",
    ".",
    ",",
    "-",
    "[",
    "]",
]
tag_soup = st.lists(st.sampled_from(TAG_PIECES), max_size=30).map("".join)
any_text = st.one_of(
    st.text(),
    st.binary().map(lambda b: b.decode("utf-8", errors="replace")),
    tag_soup,
    st.text().map(tagged),
)


@FEW
@given(completion=any_text, solution=any_text, problem_type=st.sampled_from(PROBLEM_TYPES))
def test_rewards_are_finite_and_in_range(completion, solution, problem_type):
    for value in (
        accuracy_reward(completion, solution, problem_type),
        eval_score(completion, solution, problem_type),
        format_reward(completion),
    ):
        assert math.isfinite(value) and 0.0 <= value <= 1.0


@FEW
@given(text=st.one_of(tag_soup, st.text(max_size=40)))
def test_format_reward_matches_the_regex(text):
    assert format_reward(text) == (1.0 if FORMAT_RE.fullmatch(text) else 0.0)


@FEW
@given(text=st.one_of(tag_soup, st.text(max_size=40)))
def test_extract_answer_matches_the_regex(text):
    match = ANSWER_RE.search(text)
    assert extract_answer(text) == (match.group(1).strip() if match else "")


def formattings(x):
    """Ways to write the float x: fixed point, with thousands commas, scientific, repr."""
    return [f"{x:.2f}", f"{x:,.2f}", f"{x:.6e}", repr(x), f"{x:,.4f}"]


@FEW
@given(x=st.floats(allow_nan=False, allow_infinity=False), data=st.data())
def test_numbers_formatted_many_ways(x, data):
    written = data.draw(st.sampled_from(formattings(x)))
    other = data.draw(st.sampled_from(formattings(x)))
    for problem_type in ("numerical", "regression"):
        assert accuracy_reward(tagged(written), tagged(written), problem_type) == 1.0
        value = accuracy_reward(tagged(written), tagged(other), problem_type)
        assert 0.0 <= value <= 1.0
    # Both contain a decimal point, so only the values are compared.
    assert accuracy_reward(tagged(f"{x:.2f}"), tagged(f"{x:,.2f}"), "numerical") == 1.0


@FEW
@given(n=st.integers(min_value=-(10**12), max_value=10**12))
def test_integers_formatted_many_ways(n):
    for problem_type in ("numerical", "regression"):
        assert accuracy_reward(tagged(str(n)), tagged(str(n)), problem_type) == 1.0
        assert accuracy_reward(tagged(f"{n:,}"), tagged(str(n)), "regression") == 1.0
    # An integer answer written with ".0" is the wrong format.
    assert accuracy_reward(tagged(f"{n}.0"), tagged(str(n)), "numerical") == 0.0
    # The thousands comma counts as a decimal mark, as in Video-R1.
    expected = 1.0 if abs(n) < 1000 else 0.0
    assert accuracy_reward(tagged(f"{n:,}"), tagged(str(n)), "numerical") == expected


@FEW
@given(pred=st.floats(), target=st.floats())
def test_mra_is_a_multiple_of_a_tenth(pred, target):
    value = mra(pred, target)
    assert value in [i / 10 for i in range(11)]
    if math.isfinite(pred):
        assert mra(pred, pred) == 1.0


@FEW
@given(groups=st.lists(st.tuples(st.booleans(), st.integers(0, 1000)), max_size=16))
def test_length_bonus_values(groups):
    correct = [ok for ok, _ in groups]
    lengths = [length for _, length in groups]
    bonus = length_bonus(correct, lengths, l_min=320, l_max=512)
    assert len(bonus) == len(groups)
    assert all(b in (0.0, 0.2) for b in bonus)
    assert all(ok or b == 0.0 for ok, b in zip(correct, bonus))


unit = st.floats(min_value=0.0, max_value=1.0)


@FEW
@given(ordered=st.lists(unit, max_size=16), shuffled=st.lists(unit, min_size=1, max_size=16))
def test_temporal_bonus_values(ordered, shuffled):
    bonus = temporal_bonus(ordered, shuffled)
    assert len(bonus) == len(ordered)
    assert all(b in (0.0, 0.3) for b in bonus)
    assert all(acc > 0.1 or b == 0.0 for acc, b in zip(ordered, bonus))


# ---------------------------------------------------------------------------
# Adversarial inputs and imports
# ---------------------------------------------------------------------------

ADVERSARIAL = [
    "<think>" * 30000,
    "<answer>" * 30000 + "x",
    "<think></think><answer>" + "a" * 200000,
    "<think>" + "</think><answer>" * 12000,  # minutes for the plain regex
    "<think>" + "</think> <answer>" * 12000 + "x",
    "<answer>" + " " * 200000 + "x",
    "<answer>" + "a " * 100000 + "</answer>",
    "<answer>" + "a-" * 100000 + "</answer>",
    "<answer>" + "1" * 200000 + "</answer>",
    "<answer>[" + "1" * 100000 + " - " + "2" * 100000 + "]</answer>",
    "<think>" + "\u00a0" * 200000 + "</answer>",
]


@pytest.mark.parametrize("text", ADVERSARIAL, ids=range(len(ADVERSARIAL)))
def test_adversarial_inputs_are_fast(text):
    # A generous bound so the test is not a flaky timer: each call should take
    # milliseconds; minutes would mean a backtracking regex crept back in.
    short_solutions = {
        "multiple choice": "B",
        "numerical": "3.5",
        "OCR": "the cat sat down",
        "free-form": "the cat sat on the mat",
        "regression": "10",
        "temporal grounding": "[1, 4]",
    }
    for problem_type, short in short_solutions.items():
        for solution in (tagged(short), text):
            for fn in (accuracy_reward, eval_score):
                start = time.perf_counter()
                value = fn(text, solution, problem_type)
                assert time.perf_counter() - start < 2.0, (fn.__name__, problem_type)
                assert math.isfinite(value) and 0.0 <= value <= 1.0
    start = time.perf_counter()
    assert format_reward(text) in (0.0, 1.0)
    assert time.perf_counter() - start < 2.0


def test_import_needs_neither_torch_nor_rouge():
    # Import in a fresh interpreter: this test process may have loaded both.
    code = "import sys, rewards; assert 'torch' not in sys.modules; assert 'rouge_score' not in sys.modules"
    project_root = Path(rewards.__file__).resolve().parent
    subprocess.run([sys.executable, "-c", code], cwd=project_root, check=True)
