"""Monotonic alignment search against brute force on small matrices."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import dsp


def brute_force(logp: np.ndarray) -> tuple[float, np.ndarray]:
    n, t = logp.shape
    best = (-np.inf, None)
    for cuts in itertools.combinations(range(1, t), n - 1):
        d = np.diff((0, *cuts, t))
        idx = np.repeat(np.arange(n), d)
        score = logp[idx, np.arange(t)].sum()
        if score > best[0]:
            best = (score, d)
    return best


@given(n=st.integers(1, 5), extra=st.integers(0, 5), seed=st.integers(0, 10_000))
def test_mas_finds_the_best_path(n, extra, seed):
    logp = np.random.default_rng(seed).standard_normal((n, n + extra))
    d = dsp.monotonic_alignment(logp)
    assert d.sum() == n + extra and (d >= 1).all()
    idx = np.repeat(np.arange(n), d)
    score = logp[idx, np.arange(n + extra)].sum()
    assert score == pytest.approx(brute_force(logp)[0])


def test_mas_recovers_a_planted_alignment():
    true = np.array([3, 1, 7, 2, 5])
    idx = np.repeat(np.arange(5), true)
    logp = np.full((5, true.sum()), -10.0)
    logp[idx, np.arange(true.sum())] = 0.0
    np.testing.assert_array_equal(dsp.monotonic_alignment(logp), true)


def test_mas_refuses_too_few_frames():
    with pytest.raises(ValueError, match="3 tokens cannot align to 2 frames"):
        dsp.monotonic_alignment(np.zeros((3, 2)))
