"""irtgen's Triton special functions (tl primitives only) against mpmath, in the interpreter,
float64 and float32, across both tails."""

from __future__ import annotations

import mpmath as mp
import numpy as np
import pytest
import torch

from tests import triton_math_kernel as K

# (name, mpmath reference, float64 test points, float64 tolerance)
FUNCTIONS = [
    (
        "log1p",
        mp.log1p,
        np.r_[-np.logspace(-300, -1e-9, 60) * 0.999, np.logspace(-300, 300, 80)],
        4e-16,
    ),
    ("expm1", mp.expm1, np.r_[-np.logspace(-300, 2.8, 60), np.logspace(-300, 2.85, 60)], 4e-16),
    ("log1mexp", lambda x: mp.log(-mp.expm1(x)), -np.logspace(-300, 2.8, 100), 4e-16),
    ("softplus", lambda x: mp.log1p(mp.exp(x)), np.linspace(-700, 700, 301), 4e-16),
    ("sigmoid", lambda x: 1 / (1 + mp.exp(-x)), np.linspace(-700, 700, 301), 4e-16),
    ("erfc", mp.erfc, np.linspace(-6, 26.5, 400), 2e-15),
    ("ndtr", mp.ncdf, np.linspace(-37.5, 9, 400), 2e-15),
    (
        "ndtri",
        None,
        np.r_[
            np.logspace(-300, -0.31, 200),
            1 - np.logspace(-16, -0.31, 100),
            np.linspace(0.01, 0.99, 50),
        ],
        2e-15,
    ),
    (
        "atan",
        mp.atan,
        np.r_[np.linspace(-3, 3, 101), np.logspace(-300, 300, 60), -np.logspace(-300, 300, 60)],
        4e-16,
    ),
    ("tanh", mp.tanh, np.r_[np.linspace(-20, 20, 101), np.logspace(-300, -1, 40)], 4e-16),
    ("asinh", mp.asinh, np.r_[np.linspace(-20, 20, 101), np.logspace(-300, 300, 60)], 4e-16),
    ("sinh", mp.sinh, np.r_[np.linspace(-700, 700, 101), np.logspace(-300, -1, 40)], 4e-16),
    (
        "log_ratio_1",
        lambda x: mp.log(x),
        np.r_[np.linspace(0.5, 1.5, 101), np.logspace(-300, 300, 60)],
        4e-16,
    ),
]


def _ndtri_ref(p):
    if p == 0.5:
        return mp.mpf(0)
    q = p if p < 0.5 else 1 - p
    y = mp.findroot(lambda t: mp.log(mp.ncdf(-t)) - mp.log(q), mp.sqrt(-2 * mp.log(q)))
    return -y if p < 0.5 else y


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("name,ref,xs,tol64", FUNCTIONS, ids=[f[0] for f in FUNCTIONS])
def test_special_function_accuracy(name, ref, xs, tol64, dtype):
    ref = ref or _ndtri_ref
    x = torch.tensor(xs, dtype=dtype)
    tiny = torch.finfo(dtype).tiny
    x = x[torch.isfinite(x) & ((x.abs() > tiny) | (x == 0))]
    out = K.apply(name, x)
    limit = torch.finfo(dtype).max
    worst = 0.0
    with mp.workdps(40):
        for xv, ov in zip(x.tolist(), out.tolist(), strict=True):
            r = ref(mp.mpf(xv))
            if r == 0 or abs(r) < tiny or abs(r) > limit:
                continue
            worst = max(worst, float(abs((mp.mpf(ov) - r) / r)))
    tol = tol64 if dtype == torch.float64 else 4e-7
    assert worst <= tol, f"{name}: max relative error {worst:.2e}"
