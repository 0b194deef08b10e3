"""Tests for check_power_law_fit: correct fits pass, typical mistakes get their own hint."""

from __future__ import annotations

import torch
from check_results import failed, text

from utils.checks import check_power_law_fit
from utils.scaling import fit_log_linear


def fit(n, loss, E):
    x, y = n.log(), (loss - E).log()
    xc = x - x.mean()
    slope = (xc * (y - y.mean())).sum() / (xc**2).sum()
    return torch.stack([torch.exp(y.mean() - slope * x.mean()), -slope])


def fit_with_utils(n, loss, E):
    result = fit_log_linear(n.numpy(), loss.numpy(), E)
    return torch.tensor([result.A, result.alpha], dtype=loss.dtype)


def fit_polyfit(n, loss, E):  # another correct route: torch.linalg.lstsq on [1, log n]
    design = torch.stack([torch.ones_like(n), n.log()], 1)
    b, s = torch.linalg.lstsq(design, (loss - E).log().unsqueeze(1)).solution.squeeze(1)
    return torch.stack([b.exp(), -s])


def test_correct_fits_pass():
    for fn in (fit, fit_with_utils, fit_polyfit):
        result = check_power_law_fit(fn)
        assert result.passed, text(result)


def test_forgot_to_subtract_e():
    failed(check_power_law_fit(lambda n, loss, E: fit(n, loss, 0.0)),
           "E = 1.5", "Subtract E")


def test_sign_of_alpha():
    failed(check_power_law_fit(lambda n, loss, E: fit(n, loss, E) * torch.tensor([1.0, -1.0],
                                                                                dtype=loss.dtype)),
           "minus the slope")


def test_log_of_a_returned():
    def wrong(n, loss, E):
        out = fit(n, loss, E)
        return torch.stack([out[0].log(), out[1]])
    failed(check_power_law_fit(wrong), "exponential")


def test_swapped_order():
    failed(check_power_law_fit(lambda n, loss, E: fit(n, loss, E).flip(0)), "A first")


def test_log10_intercept():
    def wrong(n, loss, E):
        x, y = n.log10(), (loss - E).log10()
        xc = x - x.mean()
        slope = (xc * (y - y.mean())).sum() / (xc**2).sum()
        return torch.stack([torch.exp(y.mean() - slope * x.mean()), -slope])
    failed(check_power_law_fit(wrong), "natural logs")


def test_only_alpha_returned():
    failed(check_power_law_fit(lambda n, loss, E: fit(n, loss, E)[1]), "Wrong shape",
           "torch.stack")


def test_wrong_dtype():
    failed(check_power_law_fit(lambda n, loss, E: fit(n.double(), loss.double(), E)),
           "float32 input", "dtype")


def test_none_exception_nan_and_in_place():
    failed(check_power_law_fit(lambda n, loss, E: None), "returned None")
    failed(check_power_law_fit(lambda n, loss, E: n.reshape(3, 2) @ loss), "RuntimeError")
    failed(check_power_law_fit(lambda n, loss, E: fit(n, loss, E) * float("nan")), "NaN")

    def in_place(n, loss, E):
        loss -= E
        return fit(n, loss, 0.0)
    failed(check_power_law_fit(in_place), "in place")


def test_stub_and_non_callable():
    def stub(n, loss, E):
        raise NotImplementedError("write your fit here")
    failed(check_power_law_fit(stub), "NotImplementedError")
    failed(check_power_law_fit(3))
