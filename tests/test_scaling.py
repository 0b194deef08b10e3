"""Tests for utils.scaling: the power-law fits recover known exponents; the sweep's bookkeeping."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from utils.accounting import flops_per_token
from utils.model import GPTConfig, TinyGPT
from utils.scaling import (
    fit_log_linear,
    fit_power_law,
    loss_at_flops,
    non_embedding_parameters,
    parabola_minimum,
    power_law,
    run_sweep,
    steps_for_flops,
)
from utils.training import TrainConfig

N = np.geomspace(1e3, 1e6, 8)


def test_power_law_formula():
    assert np.allclose(power_law([1.0, 4.0], 1.0, 2.0, 0.5), [3.0, 2.0])


def test_fit_recovers_exact_parameters():
    loss = power_law(N, 1.7, 40.0, 0.34)
    fit = fit_power_law(N, loss)
    assert fit.alpha == pytest.approx(0.34, rel=1e-4)
    assert pytest.approx(1.7, rel=1e-4) == fit.E
    assert pytest.approx(40.0, rel=1e-3) == fit.A
    assert fit.rss < 1e-12 and not fit.at_bound
    assert np.allclose(fit.predict(N), loss, atol=1e-6)


def test_fit_with_noise_brackets_the_true_exponent():
    rng = np.random.default_rng(0)
    alphas, inside = [], 0
    for _ in range(40):
        loss = power_law(N, 2.0, 30.0, 0.5) + rng.normal(0, 0.003, N.shape)
        fit = fit_power_law(N, loss)
        alphas.append(fit.alpha)
        inside += abs(fit.alpha - 0.5) < 2 * fit.alpha_se
    assert np.mean(alphas) == pytest.approx(0.5, abs=0.05)
    assert inside >= 30  # roughly 95% of 2-sigma intervals contain the truth


def test_fit_matches_brute_force_least_squares():
    # independent reference: a dense grid over alpha with the linear part solved by numpy
    rng = np.random.default_rng(1)
    loss = power_law(N, 1.0, 10.0, 0.25) + rng.normal(0, 0.01, N.shape)
    def rss(a):
        design = np.stack([np.ones_like(N), N**-a], 1)
        coef = np.linalg.lstsq(design, loss, rcond=None)[0]
        return float(((design @ coef - loss) ** 2).sum())

    grid = np.linspace(0.05, 1.0, 9501)
    best = grid[int(np.argmin([rss(a) for a in grid]))]
    assert fit_power_law(N, loss).alpha == pytest.approx(best, abs=2e-4)


def test_straight_line_in_log_n_is_flagged():
    loss = 3.0 - 0.1 * np.log(N)  # no curvature: E and alpha are not identified
    assert fit_power_law(N, loss).at_bound


def test_fit_rejects_bad_input():
    with pytest.raises(ValueError):
        fit_power_law([1.0, 2.0], [1.0, 0.5])
    with pytest.raises(ValueError):
        fit_power_law([1.0, -2.0, 3.0], [1.0, 0.5, 0.2])


def test_log_linear_recovers_exponent_and_matches_polyfit():
    fit = fit_log_linear(N, power_law(N, 0.5, 7.0, 0.2), E=0.5)
    assert fit.alpha == pytest.approx(0.2, rel=1e-9) and pytest.approx(7.0, rel=1e-9) == fit.A
    assert fit.alpha_se == pytest.approx(0.0, abs=1e-9)
    rng = np.random.default_rng(2)
    loss = 5.0 * N**-0.1 * np.exp(rng.normal(0, 0.01, N.shape))
    fit = fit_log_linear(N, loss)
    slope, intercept = np.polyfit(np.log(N), np.log(loss), 1)
    assert fit.alpha == pytest.approx(-slope) and pytest.approx(math.exp(intercept)) == fit.A
    # the standard error of the slope, against numpy's covariance of the fit
    _, cov = np.polyfit(np.log(N), np.log(loss), 1, cov="unscaled")
    resid = np.log(loss) - np.polyval([slope, intercept], np.log(N))
    assert fit.alpha_se == pytest.approx(math.sqrt(cov[0, 0] * (resid**2).sum() / (len(N) - 2)))
    with pytest.raises(ValueError):
        fit_log_linear(N, loss, E=10.0)


def test_parabola_minimum():
    n = np.geomspace(100, 1e5, 7)
    loss = 2.0 + 0.3 * (np.log(n) - math.log(3000.0)) ** 2
    assert parabola_minimum(n, loss) == pytest.approx(3000.0, rel=1e-6)
    with pytest.raises(ValueError):
        parabola_minimum(n, -loss)


def test_loss_at_flops_interpolates_in_log_flops():
    row = {"curve_flops": [1e6, 1e8], "curve_loss": [4.0, 2.0]}
    assert loss_at_flops(row, 1e7) == pytest.approx(3.0)
    assert loss_at_flops(row, 1.02e8) == pytest.approx(2.0)
    assert math.isnan(loss_at_flops(row, 1e9)) and math.isnan(loss_at_flops(row, 1e5))


def test_non_embedding_parameters():
    model = TinyGPT(GPTConfig.nano(50, d_model=16, n_layers=1, n_heads=2))
    assert non_embedding_parameters(model) == model.num_parameters() - 50 * 16


def test_sweep_rows_and_flops():
    config = GPTConfig.nano(20, d_model=8, n_layers=1, n_heads=2, context_length=8)
    train_config = TrainConfig(batch_size=2, block_size=8, eval_steps=1, device="cpu",
                               warmup_steps=2)
    data = torch.arange(200) % 20
    steps = steps_for_flops(6e6, config, train_config)
    per_step = flops_per_token(config, 8) * 16
    assert abs(steps * per_step - 6e6) <= per_step / 2
    rows = run_sweep([config, config], [4, 6], data, data, train_config, n_evals=2)
    assert [r["steps"] for r in rows] == [4, 6]
    assert rows[0]["tokens"] == 4 * 16 and rows[0]["flops"] == per_step * 4
    assert rows[1]["curve_flops"] == [per_step * 3, per_step * 6]
    assert rows[1]["curve_loss"][-1] == rows[1]["val_loss"]
    # each run starts from the same seed: the first 4 steps of both runs see the same data
    assert math.isfinite(rows[0]["val_loss"])
    with pytest.raises(ValueError):
        run_sweep([config], [1, 2], data, data, train_config)
