"""Special functions for Triton kernels: lgamma, digamma, incomplete gamma and beta with their
ratio functions, and log_ndtr -- all built from tl primitives, so they run in the interpreter
and compile for the GPU. Generated modules see this module as ``tls``; the algorithms live in
``triton_gamma`` and ``triton_beta``. This module imports Triton."""

from __future__ import annotations

import triton
import triton.language as tl

from irtgen.runtime import triton_math as tlm
from irtgen.runtime.triton_beta import (  # noqa: F401 - re-exported for generated kernels
    betainc,
    betainc_da_ratio,
    betainc_db_ratio,
    betaln,
    log_beta_density,
)
from irtgen.runtime.triton_gamma import (  # noqa: F401
    digamma,
    gammainc,
    gammainc_da_ratio,
    gammaincc,
    lgamma,
    log_gamma_density,
)


@triton.jit
def log_ndtr(x):
    """log Φ(x): for x < -1, log(erfcx(-x/√2)/2) - x²/2 (no underflow of Φ); else log1p(-Φ(-x))."""
    t = tl.maximum(-x * 0.70710678118654752, 0.5)
    lower = tl.log(0.5 * tlm.erfcx_pos(t)) - 0.5 * x * x
    upper = tlm.log1p(-tlm.ndtr(-x))
    return tl.where(x < -1.0, lower, upper)


@triton.jit
def _student_t_xy(df, t):
    """x = df/(df + t²) and y = t²/(df + t²), each without cancellation or inf/inf."""
    t2 = t * t
    return 1.0 / (1.0 + t2 / df), 1.0 / (1.0 + df / t2)


@triton.jit
def student_t_cdf(df, t):
    """F(t) = I_x(df/2, 1/2)/2 for t < 0, 1 - I_x(df/2, 1/2)/2 otherwise (x = df/(df + t²))."""
    d = df.to(tl.float64)
    t64 = t.to(tl.float64)
    x, y = _student_t_xy(d, t64)
    half = 0.5 * betainc(0.5 * d, 0.5 + 0.0 * d, x, y)
    return tl.where(t64 < 0.0, half, 1.0 - half).to(t.dtype)


# Student-t's dz/ddf at large df: the integrals of torch_special (see the comment there),
# R = (1/q(t)) int_0^t q g ds for |t| <= 3 (Gauss-Legendre) and -(1/q(t)) int_|t|^inf q g ds
# beyond (Gauss-Laguerre after r = (df+1)/2 [log1p(s^2/df) - log1p(t^2/df)]).


@triton.jit
def _ddf_c(nu):
    """c(df) = [psi((df+1)/2) - psi(df/2) - 1/df]/2 by its asymptotic series in h = 2/df:
    torch_special._PSI_HALF_SERIES, Horner in h^2."""
    h2 = (2.0 / nu) * (2.0 / nu)
    acc = h2 * 0.166656494140625 - 0.0421752929687500
    acc = acc * h2 + 0.0151367187500000
    acc = acc * h2 - 0.00830078125000000
    acc = acc * h2 + 0.00781250000000000
    acc = acc * h2 - 0.0156250000000000
    acc = acc * h2 + 0.125
    return 0.5 * acc * h2


@triton.jit
def _ddf_g(nu, c, s):
    """g(s) = d log q(s)/ddf = c + log1pmx(-v)/2 + v/(2 df), v = s^2/(df + s^2); past s^2 = df,
    log1pmx(-v) = v - log1p(w) + log(df) - 2 log(s) with w = df/s^2 (no overflow)."""
    s2 = s * s
    v_near = s2 / (nu + s2)
    w = nu / s2
    v_far = 1.0 / (1.0 + w)
    near = c + 0.5 * tlm.log1pmx(-tl.minimum(v_near, 0.5)) + v_near / (2.0 * nu)
    far_log = v_far - tlm.log1p(w) + tl.log(nu) - 2.0 * tl.log(s)
    far = c + 0.5 * far_log + v_far / (2.0 * nu)
    return tl.where(s2 <= nu, near, far)


@triton.jit
def _ddf_bulk_term(nu, tau, c, p):
    """q(tau p)/q(tau) g(tau p) = exp(-(df+1)/2 log1p(-t^2 (1-p)(1+p)/(df+t^2))) g(tau p)."""
    scale = tau * tau / (nu + tau * tau)
    log_ratio = -0.5 * (nu + 1.0) * tlm.log1p(-scale * ((1.0 - p) * (1.0 + p)))
    return tl.exp(log_ratio) * _ddf_g(nu, c, tau * p)


@triton.jit
def _ddf_tail_term(nu, tau, c, r):
    """g(s) (s + df/s) at s = tau sqrt(1 + (1 + df/tau^2) expm1(2 r/(df + 1)))."""
    s = tau * tl.sqrt(1.0 + (1.0 + nu / (tau * tau)) * tlm.expm1(2.0 * r / (nu + 1.0)))
    return _ddf_g(nu, c, s) * (s + nu / s)


@triton.jit
def _ddf_bulk_sum(nu, tau, c):
    """sum_k w_k q(tau p_k)/q(tau) g(tau p_k): torch_special._LEGENDRE_P/_W unrolled (each
    node enters as a float64 tensor: a literal passed on by itself would round to float32)."""
    zero = 0.0 * tau
    acc = 0.013576229705877048 * _ddf_bulk_term(nu, tau, c, zero + 0.005299532504175033)
    acc += 0.031126761969323947 * _ddf_bulk_term(nu, tau, c, zero + 0.02771248846338371)
    acc += 0.04757925584124639 * _ddf_bulk_term(nu, tau, c, zero + 0.06718439880608412)
    acc += 0.06231448562776694 * _ddf_bulk_term(nu, tau, c, zero + 0.12229779582249849)
    acc += 0.07479799440828837 * _ddf_bulk_term(nu, tau, c, zero + 0.19106187779867811)
    acc += 0.08457825969750127 * _ddf_bulk_term(nu, tau, c, zero + 0.2709916111713863)
    acc += 0.09130170752246179 * _ddf_bulk_term(nu, tau, c, zero + 0.35919822461037054)
    acc += 0.09472530522753425 * _ddf_bulk_term(nu, tau, c, zero + 0.4524937450811813)
    acc += 0.09472530522753425 * _ddf_bulk_term(nu, tau, c, zero + 0.5475062549188188)
    acc += 0.09130170752246179 * _ddf_bulk_term(nu, tau, c, zero + 0.6408017753896295)
    acc += 0.08457825969750127 * _ddf_bulk_term(nu, tau, c, zero + 0.7290083888286137)
    acc += 0.07479799440828837 * _ddf_bulk_term(nu, tau, c, zero + 0.8089381222013219)
    acc += 0.06231448562776694 * _ddf_bulk_term(nu, tau, c, zero + 0.8777022041775016)
    acc += 0.04757925584124639 * _ddf_bulk_term(nu, tau, c, zero + 0.9328156011939158)
    acc += 0.031126761969323947 * _ddf_bulk_term(nu, tau, c, zero + 0.9722875115366163)
    acc += 0.013576229705877048 * _ddf_bulk_term(nu, tau, c, zero + 0.994700467495825)
    return acc


@triton.jit
def _ddf_tail_sum(nu, tau, c):
    """sum_k w_k f(r_k): torch_special._LAGUERRE_R/_W unrolled."""
    zero = 0.0 * tau
    acc = 0.206151714957801 * _ddf_tail_term(nu, tau, c, zero + 0.08764941047892784)
    acc += 0.3310578549508842 * _ddf_tail_term(nu, tau, c, zero + 0.46269632891508083)
    acc += 0.26579577764421414 * _ddf_tail_term(nu, tau, c, zero + 1.141057774831227)
    acc += 0.13629693429637754 * _ddf_tail_term(nu, tau, c, zero + 2.1292836450983805)
    acc += 0.04732892869412522 * _ddf_tail_term(nu, tau, c, zero + 3.4370866338932067)
    acc += 0.011299900080339454 * _ddf_tail_term(nu, tau, c, zero + 5.078018614549768)
    acc += 0.0018490709435263109 * _ddf_tail_term(nu, tau, c, zero + 7.070338535048234)
    acc += 0.00020427191530827845 * _ddf_tail_term(nu, tau, c, zero + 9.438314336391938)
    acc += 1.4844586873981299e-05 * _ddf_tail_term(nu, tau, c, zero + 12.21422336886616)
    acc += 6.828319330871199e-07 * _ddf_tail_term(nu, tau, c, zero + 15.441527368781617)
    acc += 1.8810248410796733e-08 * _ddf_tail_term(nu, tau, c, zero + 19.180156856753136)
    acc += 2.8623502429738814e-10 * _ddf_tail_term(nu, tau, c, zero + 23.515905693991908)
    acc += 2.1270790332241028e-12 * _ddf_tail_term(nu, tau, c, zero + 28.57872974288214)
    acc += 6.297967002517868e-15 * _ddf_tail_term(nu, tau, c, zero + 34.58339870228662)
    acc += 5.050473700035513e-18 * _ddf_tail_term(nu, tau, c, zero + 41.94045264768833)
    acc += 4.161462370372855e-22 * _ddf_tail_term(nu, tau, c, zero + 51.70116033954332)
    return acc


@triton.jit
def student_t_ddf_ratio(df, t):
    """(∂F/∂df)/(∂F/∂t) for the standard Student-t CDF; 0 at t = 0. Below df = 50 from the
    incomplete beta, -(A (df/t + t)/4 + t/(2 df)) with A = betainc_da_ratio(df/2, 1/2, x, 1 - x)/x,
    x = df/(df + t²); from df = 50 on by the quadratures above (the two terms of the incomplete-beta
    form cancel to O(1/df²))."""
    d = df.to(tl.float64)
    t64 = t.to(tl.float64)
    x, y = _student_t_xy(d, t64)
    a_ratio = betainc_da_ratio(0.5 * d, 0.5 + 0.0 * d, x, y) / x
    from_beta = -(a_ratio * (d / t64 + t64) * 0.25 + t64 / (2.0 * d))
    from_beta = tl.where(t64 == 0.0, 0.0, from_beta)
    tau = tl.abs(t64)
    dq = tl.maximum(d, 50.0)
    c = _ddf_c(dq)
    bulk = tau * _ddf_bulk_sum(dq, tau, c)
    tail = -_ddf_tail_sum(dq, tl.maximum(tau, 3.0), c) / (dq + 1.0)
    quad = tl.where(tau <= 3.0, bulk, tail)
    quad = tl.where(t64 < 0.0, -quad, tl.where(t64 > 0.0, quad, 0.0))
    return tl.where(d >= 50.0, quad, from_beta).to(t.dtype)
