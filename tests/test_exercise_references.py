"""The exercises' reference solutions (tests/exercise_references.py) meet the numbers of the students' tests
(tests/test_exercises.py), and the numbers catch the wrong solutions students write: so that the exercises stay
checked in the default suite, which leaves the students' file out."""

import exercise_references as ref
import pytest
import test_exercises as ex
import torch


def test_references_meet_the_exercises_numbers():
    ex.check_gspo(ref.gspo_loss)
    ex.check_dynamic_sampling(ref.informative_groups)
    ex.check_near_count(ref.near_count_reward)
    ex.check_kl_k2(ref.kl_k2)


def _gspo_with(ratio, clip):
    def loss(logp, logp_old, advantages, mask, eps=0.2):
        m = mask.to(logp.dtype)
        s = ratio(logp, logp_old, m)
        return -clip(s, advantages, 0.2 if eps is None else eps).mean()

    return loss


def _mean_ratio(logp, logp_old, m):
    return torch.exp(((logp - logp_old) * m).sum(1) / m.sum(1))


def _min_clip(s, a, eps):
    return torch.min(s * a, torch.clamp(s, 1 - eps, 1 + eps) * a)


WRONG_GSPO = {
    "clip without min": _gspo_with(_mean_ratio, lambda s, a, eps: torch.clamp(s, 1 - eps, 1 + eps) * a),
    "eps hard-coded": _gspo_with(_mean_ratio, lambda s, a, eps: _min_clip(s, a, 0.2)),
    "detached ratio": _gspo_with(lambda lp, lo, m: _mean_ratio(lp.detach(), lo, m), _min_clip),
    "logp_old unmasked": _gspo_with(lambda lp, lo, m: torch.exp((lp * m).sum(1) / m.sum(1) - lo.mean(1)), _min_clip),
    "token mean over the padded length": _gspo_with(lambda lp, lo, m: torch.exp(((lp - lo) * m).mean(1)), _min_clip),
}


@pytest.mark.parametrize("mistake", list(WRONG_GSPO))
def test_the_gspo_numbers_catch_a_wrong_solution(mistake):
    with pytest.raises(AssertionError):
        ex.check_gspo(WRONG_GSPO[mistake])


WRONG_FILTERS = {
    "some right, some wrong": lambda r, g: (r.view(-1, g) == r.max()).any(1) & (r.view(-1, g) < r.max()).any(1),
    "not all 0 and not all 2": lambda r, g: ~((r.view(-1, g) == 0).all(1) | (r.view(-1, g) == 2).all(1)),
    "group size 4 hard-coded": lambda r, g: r.view(-1, 4).std(1) > 0,
}


@pytest.mark.parametrize("mistake", list(WRONG_FILTERS))
def test_the_dynamic_sampling_numbers_catch_a_wrong_filter(mistake):
    with pytest.raises((AssertionError, RuntimeError)):  # RuntimeError: a [24] tensor seen as groups of 4
        ex.check_dynamic_sampling(WRONG_FILTERS[mistake])
