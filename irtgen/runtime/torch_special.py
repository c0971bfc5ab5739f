"""Special functions of the torch path: incomplete gamma and beta with their ratio functions,
and log_ndtr. Generated modules see this module as ``ts``; the algorithms live in
``torch_gamma`` and ``torch_beta`` (the same algorithms as the Triton device functions)."""

from __future__ import annotations

import math

import torch

from irtgen.runtime.torch_beta import (
    betainc,
    betainc_da_ratio,
    betainc_db_ratio,
    betaln,
    log_beta_density,
)
from irtgen.runtime.torch_gamma import (
    gammainc,
    gammainc_da_ratio,
    gammaincc,
    log_gamma_density,
)
from irtgen.runtime.torch_math import log1pmx, ndtr

__all__ = [
    "betainc",
    "betainc_da_ratio",
    "betainc_db_ratio",
    "betaln",
    "log_beta_density",
    "gammainc",
    "gammainc_da_ratio",
    "gammaincc",
    "log_gamma_density",
    "log_ndtr",
    "student_t_cdf",
    "student_t_ddf_ratio",
]

_SQRT1_2 = 1.0 / math.sqrt(2.0)


def log_ndtr(x: torch.Tensor) -> torch.Tensor:
    """log Φ(x): for x < -1, log(erfcx(-x/√2)/2) - x²/2 (no underflow of Φ); else log1p(-Φ(-x))."""
    lower = torch.log(0.5 * torch.special.erfcx(-x * _SQRT1_2)) - 0.5 * x * x
    upper = torch.log1p(-ndtr(-x))
    return torch.where(x < -1.0, lower, upper)


def _student_t_xy(df: torch.Tensor, t: torch.Tensor):
    """x = df/(df + t²) and y = t²/(df + t²), each without cancellation or inf/inf."""
    t2 = t * t
    return 1.0 / (1.0 + t2 / df), 1.0 / (1.0 + df / t2)


def student_t_cdf(df: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """F(t) = I_x(df/2, 1/2)/2 for t < 0, 1 - I_x(df/2, 1/2)/2 otherwise (x = df/(df + t²))."""
    df, t = torch.broadcast_tensors(df, t)
    dtype = t.dtype
    df, t = df.double(), t.double()
    x, y = _student_t_xy(df, t)
    half = 0.5 * betainc(0.5 * df, torch.full_like(df, 0.5), x, y)
    return torch.where(t < 0, half, 1.0 - half).to(dtype)


# -- Student-t's dz/ddf at large df -------------------------------------------------------------
#
# The ratio R = (dF/ddf)/q(t) from the incomplete beta is a difference of two terms of size
# t/(2 df) whose sum is O(1/df^2): it would lose log10(df) digits. For df >= _DDF_QUADRATURE_DF it
# is an integral instead, R = (1/q(t)) int_0^t q(s) g(s) ds with g = d log q/ddf written without
# cancellation,
#     g(s) = c(df) + log1pmx(-v)/2 + v/(2 df),    v = s^2/(df + s^2),
#     c(df) = [psi((df+1)/2) - psi(df/2) - 1/df]/2   (an asymptotic series in 1/df),
# and, because int_0^inf q g = 0, also R = -(1/q(t)) int_|t|^inf q g ds (times sign t). For
# |t| <= 3: 16-point Gauss-Legendre on [0, |t|]. For |t| > 3: the substitution
# r = (df+1)/2 [log1p(s^2/df) - log1p(t^2/df)] turns q(s)/q(t) into e^-r, and 16-point
# Gauss-Laguerre integrates f(r) = g(s) (s + df/s)/(df + 1). Both agree with mpmath to a few ulp for
# df from 50 to 1e7 and |t| up to 1e10 (tests/special/test_student_t_functions.py).
# Tables: tools/render_student_t_quadrature.py.

_DDF_QUADRATURE_DF = 50.0
_DDF_SPLIT_T = 3.0
# psi(x + 1/2) - psi(x) - 1/(2x) = sum_k _PSI_HALF_SERIES[k] h^(2k+2), h = 1/x
_PSI_HALF_SERIES = (1 / 8, -1 / 64, 1 / 128, -17 / 2048, 31 / 2048, -691 / 16384, 5461 / 32768)

_LEGENDRE_P = (
    0.005299532504175033,
    0.02771248846338371,
    0.06718439880608412,
    0.12229779582249849,
    0.19106187779867811,
    0.2709916111713863,
    0.35919822461037054,
    0.4524937450811813,
    0.5475062549188188,
    0.6408017753896295,
    0.7290083888286137,
    0.8089381222013219,
    0.8777022041775016,
    0.9328156011939158,
    0.9722875115366163,
    0.994700467495825,
)
_LEGENDRE_W = (
    0.013576229705877048,
    0.031126761969323947,
    0.04757925584124639,
    0.06231448562776694,
    0.07479799440828837,
    0.08457825969750127,
    0.09130170752246179,
    0.09472530522753425,
    0.09472530522753425,
    0.09130170752246179,
    0.08457825969750127,
    0.07479799440828837,
    0.06231448562776694,
    0.04757925584124639,
    0.031126761969323947,
    0.013576229705877048,
)
_LAGUERRE_R = (
    0.08764941047892784,
    0.46269632891508083,
    1.141057774831227,
    2.1292836450983805,
    3.4370866338932067,
    5.078018614549768,
    7.070338535048234,
    9.438314336391938,
    12.21422336886616,
    15.441527368781617,
    19.180156856753136,
    23.515905693991908,
    28.57872974288214,
    34.58339870228662,
    41.94045264768833,
    51.70116033954332,
)
_LAGUERRE_W = (
    0.206151714957801,
    0.3310578549508842,
    0.26579577764421414,
    0.13629693429637754,
    0.04732892869412522,
    0.011299900080339454,
    0.0018490709435263109,
    0.00020427191530827845,
    1.4844586873981299e-05,
    6.828319330871199e-07,
    1.8810248410796733e-08,
    2.8623502429738814e-10,
    2.1270790332241028e-12,
    6.297967002517868e-15,
    5.050473700035513e-18,
    4.161462370372855e-22,
)


def _ddf_c(df: torch.Tensor) -> torch.Tensor:
    """c(df) = [psi((df+1)/2) - psi(df/2) - 1/df]/2 by its asymptotic series (h = 2/df <= 0.04)."""
    h2 = (2.0 / df) ** 2
    acc = torch.zeros_like(df)
    for coeff in reversed(_PSI_HALF_SERIES):
        acc = acc * h2 + coeff
    return 0.5 * acc * h2


def _ddf_g(df: torch.Tensor, c: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """g(s) = d log q(s)/ddf = c + log1pmx(-v)/2 + v/(2 df), v = s^2/(df + s^2). Past s^2 = df,
    log1pmx(-v) = v - log1p(w) + log(df) - 2 log(s) with w = df/s^2, which cannot overflow."""
    s2 = s * s
    v_near = s2 / (df + s2)
    w = df / s2
    v_far = 1.0 / (1.0 + w)
    near = c + 0.5 * log1pmx(-torch.clamp(v_near, max=0.5)) + v_near / (2.0 * df)
    far_log = v_far - torch.log1p(w) + torch.log(df) - 2.0 * torch.log(s)
    far = c + 0.5 * far_log + v_far / (2.0 * df)
    return torch.where(s2 <= df, near, far)


def _ddf_quadrature(df: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """R(df, t) for df >= _DDF_QUADRATURE_DF by the integrals above (float64)."""
    tau = t.abs()
    c = _ddf_c(df)
    # |t| <= 3: R = |t| sum_k w_k exp(-(df+1)/2 log1p(-t^2 (1-p_k)(1+p_k)/(df+t^2))) g(|t| p_k)
    bulk = torch.zeros_like(tau)
    scale = tau * tau / (df + tau * tau)
    for p, w in zip(_LEGENDRE_P, _LEGENDRE_W, strict=True):
        log_ratio = -0.5 * (df + 1.0) * torch.log1p(-scale * ((1.0 - p) * (1.0 + p)))
        bulk = bulk + w * torch.exp(log_ratio) * _ddf_g(df, c, tau * p)
    bulk = tau * bulk
    # |t| > 3: R = -sum_k w_k g(s_k) (s_k + df/s_k)/(df + 1),
    # s_k = |t| sqrt(1 + (1 + df/t^2) expm1(2 r_k/(df + 1)))
    taut = torch.clamp(tau, min=_DDF_SPLIT_T)
    tail = torch.zeros_like(tau)
    for r, w in zip(_LAGUERRE_R, _LAGUERRE_W, strict=True):
        s = taut * torch.sqrt(1.0 + (1.0 + df / (taut * taut)) * torch.expm1(2.0 * r / (df + 1.0)))
        tail = tail + w * _ddf_g(df, c, s) * (s + df / s)
    tail = -tail / (df + 1.0)
    return torch.sign(t) * torch.where(tau <= _DDF_SPLIT_T, bulk, tail)


def _ddf_beta(df: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """R(df, t) = -(A (df/t + t)/4 + t/(2 df)) with A = betainc_da_ratio(df/2, 1/2, x, 1 - x)/x,
    x = df/(df + t^2): both halves of F give this; the shared density factor has cancelled."""
    x, y = _student_t_xy(df, t)
    a_ratio = betainc_da_ratio(0.5 * df, torch.full_like(df, 0.5), x, y) / x
    out = -(a_ratio * (df / t + t) * 0.25 + t / (2.0 * df))
    return torch.where(t == 0, torch.zeros_like(out), out)


def student_t_ddf_ratio(df: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """(∂F/∂df)/(∂F/∂t) for the standard Student-t CDF: from the incomplete beta below
    df = 50, by quadrature of d log q/ddf above (no cancellation); 0 at t = 0."""
    df, t = torch.broadcast_tensors(df, t)
    dtype = t.dtype
    df, t = df.double(), t.double()
    large = df >= _DDF_QUADRATURE_DF
    out = torch.empty_like(t)
    # each element takes one path: the incomplete beta's loops run only where they are needed
    out[large] = _ddf_quadrature(df[large], t[large])
    small = ~large
    out[small] = _ddf_beta(df[small], t[small])
    return out.to(dtype)
