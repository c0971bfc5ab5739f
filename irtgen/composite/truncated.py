"""``Truncated(base, low, high)``: a generated family restricted to an interval.

For a base with CDF F, survival function S = 1 - F and density q, truncated to [a, b] (the
bounds intersected with the base's support),

    q_T(z) = q(z)/Z,    F_T(z) = (F(z) - F(a))/Z,    Z = F(b) - F(a),

and a draw solves F_T(z) = u for u ~ U(0, 1). With g(x) the base's implicit gradient dz/dθ at x
(its ``implicit_grad`` formula), r_x = q(x)/q(z) and F_T, 1 - F_T at the draw z, the implicit
gradient -(∂F_T/∂θ)/(∂F_T/∂z) is

    dz/dθ = g(z) - r_a g(a) (1 - F_T) - r_b g(b) F_T,
    dz/da = r_a (1 - F_T),    dz/db = r_b F_T,

with the terms of an end that does not cut the support (an infinite bound, or one outside the
support) equal to 0. Near an end the closed form cancels (dz/dθ vanishes at z = a); there the
equivalent form

    dz/dθ = -(1/q(z)) ∫_a^z q(x) (ℓ(x) - m) dx = (1/q(z)) ∫_z^b q(x) (ℓ(x) - m) dx,

with ℓ = ∂log q/∂θ (the ``log_prob_grad`` formula) and m = E_T[ℓ] = ∂log Z/∂θ, is evaluated by
Gauss-Legendre quadrature, which has no cancellation.

Masses. A difference F(y) - F(x) is taken from the side that does not cancel: F(y) - F(x)
below the base's median, S(x) - S(y) otherwise. Where log q varies by at most ``_SPREAD`` over
[x, y] (a narrow window, or a draw close to an end), the difference is instead ∫_x^y q by a
``_NODES``-point Gauss-Legendre rule of exp(log q), which is exact to rounding there. Masses
are carried as logarithms. Where F and S underflow float64 (below ``_UNDERFLOW``: a Normal
beyond 37σ), the masses, m and the forms above come from panels walked in log space from the
end with the larger density (``_log_integral_walk``), m and the gradient as normalised weighted
moments (a weight exp(log q - log Z) would carry the rounding of log Z, 1e-13 at -800).

Draws. u ~ U(0, 1) in float64 (from torch's generator); a first z from the base's icdf on the
non-cancelling side (where 1 - S has lost its digits, the exponential tail through a point of
known S; where the icdf misses the window, an exponential-tail or log-linear guess), then
safeguarded Newton steps on log F_T (u ≤ 1/2) or log(1 - F_T), kept inside a bracket that
starts as [a, b]. Everything runs in float64 and is rounded to the
dtype last; the draw rule (irtgen.runtime.ops.inside_support) holds for [a, b] ∩ support: a
draw is strictly inside in its dtype, and one moved there has gradient 0.

Mean and variance: quadrature in the quantile, ∫_0^1 z_T(u) du with u = sigmoid(t), by a
composite Gauss-Legendre rule in t over [-_T_MAX, _T_MAX]; differentiable through the implicit
gradients above. NaN where an infinite bound leaves a base without that moment.

torch.compile: every computation is one torch.library custom op (``irtgen::truncated``,
``irtgen::truncated_backward``, ``irtgen::truncated_sample``), opaque to the graph, with the
conventions of irtgen.runtime.library (fake implementations, draws advancing
``library.rng_token``). Eager calls run the same code through ``_TruncatedFunction``. Gradients
are first order.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, fields

import numpy as np
import torch
from torch.distributions import Distribution, constraints
from torch.library import custom_op

from irtgen.runtime import autograd, launch, library, ops
from irtgen.runtime.distribution import GeneratedDistribution
from irtgen.runtime.family import Family

__all__ = ["Truncated"]

F64 = torch.float64
_NODES = 24  # Gauss-Legendre points of a window's (or sub-window's) quadrature
_SPREAD = 2.0  # the largest variation of log q over an interval integrated by quadrature
_WALK_PANELS = 40  # panels of a far tail's quadrature (each where log q varies by _SPREAD)
_UNDERFLOW = 2.0**-1000  # masses below this come from quadrature in log space
_NEWTON_STEPS = 40  # the most safeguarded Newton steps of a draw (2 to 6 are usual)
_T_MAX, _PANELS, _PANEL_NODES = 40.0, 16, 16  # the moments' quadrature in t = logit(u)

_GL_T, _GL_W = np.polynomial.legendre.leggauss(_NODES)
_GL_FRACTION = torch.from_numpy((1.0 + _GL_T) / 2.0)  # nodes as fractions of the interval
_GL_LOG_W = torch.from_numpy(np.log(_GL_W / 2.0))  # weights of an interval of length 1


# -- the base's formulas in float64 ---------------------------------------------------------


def _f(family: Family, op: str, x: torch.Tensor, params):
    """Formula ``op`` of the base at x (params broadcast against x), in float64."""
    return ops.evaluate(family, op, (x, *params))


def _between(Fx, Sx, Fy, Sy):
    """F(y) - F(x) for x ≤ y from the side that does not cancel: the F's below the median, the
    S's otherwise (also for x below and y above the median, where neither cancels)."""
    return torch.where(Fy <= 0.5, Fy - Fx, Sx - Sy)


def _log_integral(family: Family, x0, x1, params):
    """(log ∫_x0^x1 q, spread of log q over the nodes and ends, nodes, log weights, log q at
    the nodes): the Gauss-Legendre rule along a new last dimension."""
    frac = _GL_FRACTION.to(x0.device)
    width = x1 - x0
    x = x0[..., None] + width[..., None] * frac
    logw = _GL_LOG_W.to(x0.device) + torch.log(width)[..., None]
    lq = _f(family, "log_prob", x, [p[..., None] for p in params])
    log_mass = torch.logsumexp(logw + lq, dim=-1)
    return log_mass, lq, x, logw


def _log_integral_walk(family: Family, start, stop, params, ref=None, m=None):
    """log ∫ q between ``start`` (finite, where q is the larger) and ``stop`` (may be
    infinite), for far tails whose masses F and S underflow: panels walked from ``start``, each
    as wide as ``_SPREAD``/|d log q/dx| at its start (log q varies by about _SPREAD over it),
    each integrated by the Gauss-Legendre rule. With q log-concave in the tail the panels cover
    a fall of log q by at least 2 _WALK_PANELS, beyond which the rest is below rounding.

    With ``ref`` and ``m`` (one tensor a parameter), also [∫ exp(log q - ref) (ℓ - m) dx]
    over the parameters, ℓ = ∂log q/∂θ (the centred moments of the implicit gradient), and
    ∫ exp(log q - ref) dx by the same weights, to normalise with: exp(total - ref) would carry
    the rounding of ref (1e-13 at log q = -800)."""
    direction = torch.where(stop >= start, 1.0, -1.0)
    x = start
    total = torch.full_like(start, -math.inf)
    moments = None if ref is None else [torch.zeros_like(start) for _ in m]
    norm = torch.zeros_like(start)
    for _ in range(_WALK_PANELS):
        slope = _f(family, "log_prob_grad", x, params)[0].abs()
        remaining = (stop - x).abs()
        width = torch.where(slope > 0, _SPREAD / slope, math.inf)
        width = torch.minimum(torch.nan_to_num(width, nan=0.0), remaining)
        x_next = x + direction * width
        lm, lq, nodes, logw = _log_integral(
            family, torch.minimum(x, x_next), torch.maximum(x, x_next), params
        )
        some = width > 0
        total = torch.logaddexp(total, torch.where(some, lm, -math.inf))
        if moments is not None:
            weights = torch.where(some[..., None], torch.exp(logw + lq - ref[..., None]), 0.0)
            norm += weights.sum(-1)
            ell = _f(family, "log_prob_grad", nodes, [p[..., None] for p in params])[1:]
            for acc, li, mi in zip(moments, ell, m, strict=True):
                acc += torch.where(some[..., None], weights * (li - mi[..., None]), 0.0).sum(-1)
        x = x_next
    return total if moments is None else (total, moments, norm)


def _walk(family: Family, x0, x1, l0, l1, params, ref=None, m=None):
    """_log_integral_walk over [x0, x1] from the end with the larger log q (l0, l1)."""
    first = l0 >= l1
    return _log_integral_walk(
        family, torch.where(first, x0, x1), torch.where(first, x1, x0), params, ref, m
    )


def _spread(lq, *ends):
    """max - min of log q over the nodes and the ends (NaN where any is not finite)."""
    allq = torch.cat([lq, *(e[..., None] for e in ends)], dim=-1)
    return allq.amax(-1) - allq.amin(-1)


def _ratio(x, log_x, y, log_y):
    """x/y, from the linear values where both are normal numbers (a difference of two large
    logarithms loses their absolute rounding error, ~1e-14 at log q = -50), else from the
    logarithms."""
    tiny = torch.finfo(F64).tiny * 2.0**60
    linear = (x > tiny) & (y > tiny) & torch.isfinite(x) & torch.isfinite(y)
    return torch.where(linear, x / torch.where(linear, y, 1.0), torch.exp(log_x - log_y))


@dataclass
class _Window:
    """The truncation window per element (1-D tensors of one length, float64): the ends
    a = max(low, support's lower end), b = min(high, upper end), whether each cuts the support,
    log q, F and S at them (those of the support's ends where they do not cut), log Z, whether
    the whole window is integrated by quadrature, and m = ∂log Z/∂θ (one tensor a parameter)."""

    a: torch.Tensor
    b: torch.Tensor
    cut_a: torch.Tensor
    cut_b: torch.Tensor
    la: torch.Tensor
    lb: torch.Tensor
    Fa: torch.Tensor
    Sa: torch.Tensor
    Fb: torch.Tensor
    Sb: torch.Tensor
    log_z: torch.Tensor
    short: torch.Tensor
    m: list
    pa: torch.Tensor  # q(a), q(b) (0 at an end that does not cut)
    pb: torch.Tensor
    ea: torch.Tensor  # q(a)/Z, q(b)/Z
    eb: torch.Tensor
    far: torch.Tensor  # masses below float64's range (_log_integral_walk)

    def take(self, idx) -> _Window:
        values = {}
        for f in fields(self):
            v = getattr(self, f.name)
            values[f.name] = [t[idx] for t in v] if isinstance(v, list) else v[idx]
        return _Window(**values)


def _window(family: Family, low, high, params) -> _Window:
    """The window of flat float64 bounds and parameters."""
    slo, shi = ops.evaluate(family, "support", tuple(params))
    cut_a, cut_b = low > slo, high < shi
    a, b = torch.maximum(low, slo), torch.minimum(high, shi)
    ninf = torch.tensor(-math.inf, dtype=F64, device=a.device)
    la = torch.where(cut_a, _f(family, "log_prob", a, params), ninf)
    lb = torch.where(cut_b, _f(family, "log_prob", b, params), ninf)
    Fa = torch.where(cut_a, _f(family, "cdf", a, params), 0.0)
    Sa = torch.where(cut_a, _f(family, "sf", a, params), 1.0)
    Fb = torch.where(cut_b, _f(family, "cdf", b, params), 1.0)
    Sb = torch.where(cut_b, _f(family, "sf", b, params), 0.0)
    z_lin = _between(Fa, Sa, Fb, Sb)
    log_z = torch.log(z_lin)
    far = z_lin < _UNDERFLOW
    if bool(far.any()):
        idx = far.nonzero().squeeze(-1)
        ps = [p[idx] for p in params]
        log_z[idx] = _walk(family, a[idx], b[idx], la[idx], lb[idx], ps)
    pa = torch.where(cut_a, _f(family, "pdf", a, params), 0.0)
    pb = torch.where(cut_b, _f(family, "pdf", b, params), 0.0)
    # m = ∂log Z/∂θ = (q(a) g(a) - q(b) g(b))/Z, g the base's dz/dθ
    ga = _f(family, "implicit_grad", a, params)[1:]
    gb = _f(family, "implicit_grad", b, params)[1:]
    ea, eb = _ratio(pa, la, z_lin, log_z), _ratio(pb, lb, z_lin, log_z)
    m = [
        torch.where(cut_a, ea * gai, 0.0) - torch.where(cut_b, eb * gbi, 0.0)
        for gai, gbi in zip(ga, gb, strict=True)
    ]
    # far tails: q(a)/Z carries the rounding of log q(a) (1e-13 at log q = -800), which the
    # cancellation of ℓ - m magnifies; E_T[ℓ] as a weighted mean of ℓ by quadrature does not
    # (where an uncut end is infinite, so that no end of the support moves with θ)
    far = far & (cut_a | torch.isinf(a)) & (cut_b | torch.isinf(b))
    if bool(far.any()):
        idx = far.nonzero().squeeze(-1)
        ps = [p[idx] for p in params]
        zeros = [torch.zeros_like(idx, dtype=F64) for _ in m]
        _, moments, norm = _walk(family, a[idx], b[idx], la[idx], lb[idx], ps, log_z[idx], zeros)
        for mi, moment in zip(m, moments, strict=True):
            mi[idx] = moment / norm
    short = torch.zeros_like(cut_a)
    near = cut_a & cut_b & ((la - lb).abs() <= _SPREAD)
    if bool(near.any()):
        idx = near.nonzero().squeeze(-1)
        ps = [p[idx] for p in params]
        lz_q, lq, x, logw = _log_integral(family, a[idx], b[idx], ps)
        ok = _spread(lq, la[idx], lb[idx]) <= _SPREAD
        sel = idx[ok]
        short[sel] = True
        log_z[sel] = lz_q[ok]
        # E_T[ℓ] by the same rule
        weights = torch.softmax(logw + lq, dim=-1)[ok]
        ell = _f(family, "log_prob_grad", x[ok], [p[ok][..., None] for p in ps])[1:]
        for mi, li in zip(m, ell, strict=True):
            mi[sel] = (weights * li).sum(-1)
        ea[sel] = torch.exp(la[sel] - log_z[sel])
        eb[sel] = torch.exp(lb[sel] - log_z[sel])
    far = far & ~short
    return _Window(a, b, cut_a, cut_b, la, lb, Fa, Sa, Fb, Sb, log_z, short, m, pa, pb, ea, eb, far)


@dataclass
class _At:
    """Quantities at points z inside a window: log q(z), log P(a < X ≤ z), log P(z < X ≤ b),
    and where each of the two was integrated by quadrature."""

    lz: torch.Tensor
    lpa: torch.Tensor
    lpb: torch.Tensor
    short_a: torch.Tensor
    short_b: torch.Tensor


def _at(family: Family, w: _Window, z, params) -> _At:
    lz = _f(family, "log_prob", z, params)
    Fz, Sz = _f(family, "cdf", z, params), _f(family, "sf", z, params)
    lpa = torch.log(_between(w.Fa, w.Sa, Fz, Sz).clamp(min=0.0))
    lpb = torch.log(_between(Fz, Sz, w.Fb, w.Sb).clamp(min=0.0))
    short_a, short_b = torch.zeros_like(w.cut_a), torch.zeros_like(w.cut_b)
    for end, lend, cut, lp, short in (
        (w.a, w.la, w.cut_a, lpa, short_a),
        (w.b, w.lb, w.cut_b, lpb, short_b),
    ):
        near = cut & ((lend - lz).abs() <= _SPREAD)
        if not bool(near.any()):
            continue
        idx = near.nonzero().squeeze(-1)
        ps = [p[idx] for p in params]
        x0, x1 = (end[idx], z[idx]) if end is w.a else (z[idx], end[idx])
        lm, lq, _, _ = _log_integral(family, x0, x1, ps)
        ok = _spread(lq, lend[idx], lz[idx]) <= _SPREAD
        lp[idx[ok]] = lm[ok]
        short[idx[ok]] = True
    # far tails: masses below float64's range, from quadrature in log space
    for x0, x1, l0, l1, lp, short in (
        (w.a, z, w.la, lz, lpa, short_a),
        (z, w.b, lz, w.lb, lpb, short_b),
    ):
        far = (lp < math.log(_UNDERFLOW)) & ~short & (x1 > x0)
        if bool(far.any()):
            idx = far.nonzero().squeeze(-1)
            ps = [p[idx] for p in params]
            lp[idx] = _walk(family, x0[idx], x1[idx], l0[idx], l1[idx], ps)
    return _At(lz, lpa, lpb, short_a, short_b)


def _fractions(w: _Window, at: _At):
    """(F_T, 1 - F_T), each from the smaller of the two masses."""
    lf, lc = at.lpa - w.log_z, at.lpb - w.log_z
    from_a = at.lpa <= at.lpb
    ft = torch.where(from_a, torch.exp(lf), -torch.expm1(lc))
    cft = torch.where(from_a, -torch.expm1(lf), torch.exp(lc))
    return ft.clamp(0.0, 1.0), cft.clamp(0.0, 1.0)


def _implicit(family: Family, w: _Window, z, params, at: _At):
    """([dz/dθ per parameter], dz/da, dz/db) at z (see the module docstring)."""
    ft, cft = _fractions(w, at)
    pz = _f(family, "pdf", z, params)
    ra = torch.where(w.cut_a, _ratio(w.pa, w.la, pz, at.lz), 0.0)
    rb = torch.where(w.cut_b, _ratio(w.pb, w.lb, pz, at.lz), 0.0)
    gz = _f(family, "implicit_grad", z, params)[1:]
    ga = _f(family, "implicit_grad", w.a, params)[1:]
    gb = _f(family, "implicit_grad", w.b, params)[1:]
    dtheta = [
        gzi - torch.where(w.cut_a, ra * gai * cft, 0.0) - torch.where(w.cut_b, rb * gbi * ft, 0.0)
        for gzi, gai, gbi in zip(gz, ga, gb, strict=True)
    ]
    # near an end: the quadrature form, without cancellation
    use_a = at.short_a & ((at.lpa <= at.lpb) | ~at.short_b)
    use_b = at.short_b & ~use_a
    for use, sign in ((use_a, -1.0), (use_b, 1.0)):
        if not bool(use.any()):
            continue
        idx = use.nonzero().squeeze(-1)
        ps = [p[idx] for p in params]
        x0, x1 = (w.a[idx], z[idx]) if sign < 0 else (z[idx], w.b[idx])
        _, lq, x, logw = _log_integral(family, x0, x1, ps)
        scale = torch.exp(logw + lq - at.lz[idx][..., None])
        ell = _f(family, "log_prob_grad", x, [p[..., None] for p in ps])[1:]
        for d, li, mi in zip(dtheta, ell, w.m, strict=True):
            d[idx] = sign * (scale * (li - mi[idx][..., None])).sum(-1)
    # far tails: the same forms by the walk (the closed form's terms carry the rounding of
    # log q, ~1e-13 at log q = -800, and cancel)
    far = w.far & ~(use_a | use_b)
    if bool(far.any()):
        valid_a = w.cut_a | torch.isinf(w.a)
        valid_b = w.cut_b | torch.isinf(w.b)
        side_a = valid_a & ((at.lpa <= at.lpb) | ~valid_b)
        for use, sign in ((far & side_a, -1.0), (far & ~side_a & valid_b, 1.0)):
            if not bool(use.any()):
                continue
            idx = use.nonzero().squeeze(-1)
            ps = [p[idx] for p in params]
            zi, lzi = z[idx], at.lz[idx]
            x0, x1 = (w.a[idx], zi) if sign < 0 else (zi, w.b[idx])
            l0, l1 = (w.la[idx], lzi) if sign < 0 else (lzi, w.lb[idx])
            _, moments, _ = _walk(family, x0, x1, l0, l1, ps, lzi, [mi[idx] for mi in w.m])
            for d, mom in zip(dtheta, moments, strict=True):
                d[idx] = sign * mom
    return dtheta, ra * cft, rb * ft


def _solve(family: Family, w: _Window, u, v, params):
    """z with F_T(z) = u (v = 1 - u, given so that either can be tiny), float64, flat."""
    log_tu, log_tv = torch.log(u) + w.log_z, torch.log(v) + w.log_z
    lower = u <= v
    z_mass = torch.exp(w.log_z)
    pf = w.Fa + u * z_mass  # the target of F, accurate below the median
    ps_ = w.Sb + v * z_mass  # the target of S, accurate above it
    p = torch.where(pf <= 0.5, pf, 1.0 - ps_)
    z = _f(family, "icdf", p, params)
    span = w.b - w.a
    finite = torch.isfinite(w.a) & torch.isfinite(w.b)
    # where that icdf is out of reach: exponential tails for a half-infinite window; for a
    # finite one, the quantile of the density with log q linear between the ends
    tail_a = w.a - torch.log(v) / w.ea
    tail_b = w.b + torch.log(u) / w.eb
    slope = (w.lb - w.la) / span
    rise = slope * span
    flat = ~(rise.abs() > 1e-8)
    slope = torch.where(flat, 1.0, slope)
    from_a = w.a + torch.log1p(u * torch.expm1(rise)) / slope
    from_b = w.b + torch.log1p(v * torch.expm1(-rise)) / slope
    linear = torch.where(flat, w.a + u * span, torch.where(rise <= 0, from_a, from_b))
    guess = torch.where(finite, linear, torch.where(torch.isfinite(w.a), tail_a, tail_b))
    # 1 - S keeps about -log10(S) fewer digits: below S = 2^-26, the guess is the exponential
    # tail through a point x0 where S is known: a, or the icdf of 1 - 2^-26 where a is below
    tail = (pf > 0.5) & (ps_ < 2.0**-26)
    if bool(tail.any()):
        x0 = _f(family, "icdf", torch.full_like(u, 1.0 - 2.0**-26), params)
        x0 = torch.where(w.cut_a & (w.a > x0), w.a, x0)
        s0 = _f(family, "sf", x0, params)
        hazard = _f(family, "pdf", x0, params) / s0
        z = torch.where(tail, x0 + (torch.log(s0) - torch.log(ps_)) / hazard, z)
    bad = ~((z > w.a) & (z < w.b))
    z = torch.where(bad, guess, z)
    bad = ~((z > w.a) & (z < w.b))
    z = torch.where(bad & finite, w.a + 0.5 * span, z)
    z = torch.where(torch.isnan(z), torch.zeros_like(z), z)
    lo, hi = w.a.clone(), w.b.clone()
    active = torch.arange(z.numel(), device=z.device)
    eps = torch.finfo(F64).eps
    for _ in range(_NEWTON_STEPS):
        if active.numel() == 0:
            break
        wa, za = w.take(active), z[active]
        pa = [p[active] for p in params]
        at = _at(family, wa, za, pa)
        low_a = lower[active]
        h = torch.where(low_a, at.lpa - log_tu[active], at.lpb - log_tv[active])
        slope = torch.where(low_a, torch.exp(at.lz - at.lpa), -torch.exp(at.lz - at.lpb))
        small = torch.where(low_a, h < 0, h > 0)  # z lies below the root
        loa = torch.where(small, za, lo[active])
        hia = torch.where(small, hi[active], za)
        zn = torch.where(h == 0, za, za - h / slope)
        out = ~((zn >= loa) & (zn <= hia))
        step = torch.maximum(za.abs(), torch.ones_like(za))
        bis = torch.where(
            torch.isfinite(loa) & torch.isfinite(hia),
            loa + 0.5 * (hia - loa),
            torch.where(torch.isfinite(hia), za - step, za + step),
        )
        zn = torch.where(out, bis, zn)
        # converged: F_T(z) is u to the accuracy of the masses (the step just taken is below
        # their noise), or the step or the bracket is down to rounding
        target = torch.where(low_a, log_tu[active], log_tv[active])
        done = (h.abs() <= 8 * eps * (1 + target.abs())) | ((zn - za).abs() <= 2 * eps * za.abs())
        done = done | (hia - loa <= 2 * eps * torch.maximum(loa.abs(), hia.abs()))
        z[active], lo[active], hi[active] = zn, loa, hia
        active = active[~done]
    return z


# -- the operations ---------------------------------------------------------------------------


def _prepared(family: Family, value, low, high, params, batch_shape):
    """(out shape, flat value, window, flat params) at out = value's shape ⊕ batch shape."""
    batch_shape = torch.Size(batch_shape)
    out_shape, _ = launch.out_shapes(value.shape, batch_shape)
    wide = [t.detach().to(F64).expand(batch_shape).reshape(-1) for t in (low, high, *params)]
    w = _window(family, wide[0], wide[1], wide[2:])
    view = tuple(batch_shape)

    def broadcast(t):
        return t.reshape(view).expand(out_shape).reshape(-1)

    wf = _Window(
        **{
            f.name: (
                [broadcast(t) for t in getattr(w, f.name)]
                if isinstance(getattr(w, f.name), list)
                else broadcast(getattr(w, f.name))
            )
            for f in fields(w)
        }
    )
    flat_params = [broadcast(p) for p in wide[2:]]
    x = value.detach().to(F64).expand(out_shape).reshape(-1)
    return out_shape, x, wf, flat_params


def _result_dtype(*tensors):
    return launch.compute_dtype(*tensors)[1]


def _forward(family: Family, op: str, value, low, high, params, batch_shape):
    """Op ``op`` of the truncated family: "log_mass" (log Z, of the batch shape; value unused),
    "cdf", "icdf", "icdf_logit" (icdf of sigmoid(value)), "reparameterize" (value itself)."""
    dtype = _result_dtype(value, low, high, *params)
    batch_shape = torch.Size(batch_shape)
    if op == "reparameterize":
        out_shape, _ = launch.out_shapes(value.shape, batch_shape)
        return value.expand(out_shape).to(dtype).clone()
    if op == "log_mass":
        wide = [t.detach().to(F64).expand(batch_shape).reshape(-1) for t in (low, high, *params)]
        w = _window(family, wide[0], wide[1], wide[2:])
        return w.log_z.reshape(batch_shape).to(dtype)
    out_shape, x, w, ps = _prepared(family, value, low, high, params, batch_shape)
    if op == "cdf":
        inside = (x > w.a) & (x < w.b)
        xc = torch.where(inside, x, w.a + 0.5 * (w.b - w.a))
        xc = torch.where(torch.isfinite(xc), xc, torch.zeros_like(xc))
        ft, _ = _fractions(w, _at(family, w, xc, ps))
        out = torch.where(inside, ft, torch.where(x >= w.b, 1.0, 0.0))
        out = torch.where(torch.isnan(x), x, out)
        return out.reshape(out_shape).to(dtype)
    if op == "icdf":
        u, v = x, 1.0 - x
    else:  # icdf_logit
        u, v = torch.sigmoid(x), torch.sigmoid(-x)
    z = _solve(family, w, u, v, ps)
    z = torch.where(u <= 0, w.a, torch.where(v <= 0, w.b, z))
    z = torch.where((u < 0) | (v < 0) | torch.isnan(u), math.nan, z)
    return z.reshape(out_shape).to(dtype)


def interior(low, high, family: Family, params, batch_shape, dtype):
    """(lo, hi): the smallest and largest numbers of ``dtype`` strictly inside [low, high] ∩
    the base's support (the draw rule's ends), of the batch shape."""
    slo, shi = ops.support_interior(family, params, batch_shape, dtype)
    up = torch.tensor(math.inf, dtype=dtype, device=slo.device)
    lo = torch.maximum(torch.nextafter(low.to(dtype).expand(batch_shape), up), slo)
    hi = torch.minimum(torch.nextafter(high.to(dtype).expand(batch_shape), -up), shi)
    return lo, hi


def _sample(family: Family, low, high, params, shape, batch_shape, generator=None):
    """Draws of ``shape`` (sample_shape + batch_shape), no gradient."""
    shape, batch_shape = torch.Size(shape), torch.Size(batch_shape)
    dtype = _result_dtype(low, high, *params)
    device = low.device
    u = torch.rand(shape, dtype=F64, device=device, generator=generator)
    u = u.clamp(min=2.0**-60)  # never 0; 1 - u never 0 (torch.rand < 1)
    _, x, w, ps = _prepared(family, u, low, high, params, batch_shape)
    z = _solve(family, w, x, 1.0 - x, ps).reshape(shape).to(dtype)
    lo, hi = interior(low, high, family, params, batch_shape, dtype)
    z = torch.where(torch.isnan(z), z, torch.minimum(torch.maximum(z, lo), hi))
    return z


def _backward(
    family: Family, op: str, value, at_out, grad, low, high, params, batch_shape, needs, drawn
):
    """[grad of value, of low, of high, of each parameter] of sum(grad * op(...)); None where
    ``needs`` is False. ``at_out``: the op's output (icdf's z)."""
    batch_shape = torch.Size(batch_shape)
    dtype = _result_dtype(value, low, high, *params)
    n_p = len(params)
    result = [None] * (3 + n_p)
    if not any(needs):
        return result
    if op == "log_mass":
        wide = [t.detach().to(F64).expand(batch_shape).reshape(-1) for t in (low, high, *params)]
        w = _window(family, wide[0], wide[1], wide[2:])
        g = grad.to(F64).expand(batch_shape).reshape(-1)
        keep = g != 0
        terms = [
            None,
            -torch.where(w.cut_a, w.ea, 0.0),
            torch.where(w.cut_b, w.eb, 0.0),
            *w.m,
        ]
        for i, (t, need) in enumerate(zip(terms, needs, strict=True)):
            if need and t is not None:
                v = torch.where(keep, g * t, 0.0).reshape(batch_shape)
                result[i] = v.to(dtype)
        return result
    point = at_out if op in ("icdf", "icdf_logit") else value
    out_shape, z, w, ps = _prepared(family, point, low, high, params, batch_shape)
    g = grad.to(F64).expand(out_shape).reshape(-1)
    inside = (z >= w.a) & (z <= w.b)
    if drawn:  # a draw moved by the draw rule is a constant
        lo, hi = interior(low, high, family, params, batch_shape, point.dtype)
        zr = point.expand(out_shape)
        moved = (zr == lo) | (zr == hi)
        inside = inside & ~moved.reshape(-1)
    keep = inside & (g != 0)
    zs = torch.where(keep, z, w.a + 0.5 * (w.b - w.a))
    zs = torch.where(torch.isfinite(zs), zs, torch.zeros_like(zs))
    at = _at(family, w, zs, ps)
    dtheta, da, db = _implicit(family, w, zs, ps, at)
    dvalue = None
    if op == "cdf":  # ∂F_T = -(q(x)/Z) dz(x)
        dens = torch.exp(at.lz - w.log_z)
        dtheta, da, db = [-dens * d for d in dtheta], -dens * da, -dens * db
        dvalue = dens
    elif op == "icdf":
        dvalue = torch.exp(w.log_z - at.lz)
    elif op == "icdf_logit":
        xv = value.detach().to(F64).expand(out_shape).reshape(-1)
        dvalue = torch.exp(w.log_z - at.lz) * torch.sigmoid(xv) * torch.sigmoid(-xv)
    terms = [dvalue, da, db, *dtheta]
    shapes = [value.shape, batch_shape, batch_shape, *([batch_shape] * n_p)]
    for i, (t, need, shape) in enumerate(zip(terms, needs, shapes, strict=True)):
        if not need or t is None:
            continue
        v = torch.where(keep, g * t, 0.0).reshape(out_shape)
        result[i] = launch.reduce_to(v, torch.Size(shape)).to(dtype)
    return result


# -- torch.library custom ops (torch.compile) and the eager autograd function ----------------


@custom_op("irtgen::truncated", mutates_args=())
def _op(
    family: str,
    op: str,
    value: torch.Tensor,
    low: torch.Tensor,
    high: torch.Tensor,
    params: list[torch.Tensor],
    batch_shape: list[int],
    drawn: bool,
) -> torch.Tensor:
    """_forward's op ``op``; ``drawn``: value is a draw of ``irtgen::truncated_sample``."""
    return _forward(library.family_of(family), op, value, low, high, params, batch_shape)


@_op.register_fake
def _(family, op, value, low, high, params, batch_shape, drawn):
    dtype = _result_dtype(value, low, high, *params)
    if op == "log_mass":
        return low.new_empty(batch_shape, dtype=dtype)
    out_shape, _ = launch.out_shapes(value.shape, torch.Size(batch_shape))
    return value.new_empty(out_shape, dtype=dtype)


@custom_op("irtgen::truncated_backward", mutates_args=())
def _backward_op(
    family: str,
    op: str,
    value: torch.Tensor,
    at: torch.Tensor,
    grad: torch.Tensor,
    low: torch.Tensor,
    high: torch.Tensor,
    params: list[torch.Tensor],
    batch_shape: list[int],
    needs: list[bool],
    drawn: bool,
) -> list[torch.Tensor]:
    """[grad of value, low, high, *params] (_backward), an empty tensor where not needed."""
    out = _backward(
        library.family_of(family),
        op,
        value,
        at,
        grad,
        low,
        high,
        params,
        batch_shape,
        needs,
        drawn,
    )
    return [o if o is not None else value.new_empty(0) for o in out]


@_backward_op.register_fake
def _(family, op, value, at, grad, low, high, params, batch_shape, needs, drawn):
    dtype = _result_dtype(value, low, high, *params)
    shapes = [value.shape] + [batch_shape] * (2 + len(params))
    return [
        value.new_empty(s if n else (0,), dtype=dtype) for s, n in zip(shapes, needs, strict=True)
    ]


def _setup_op(ctx, inputs, output):
    family, op, value, low, high, params, batch_shape, drawn = inputs
    ctx.family, ctx.op, ctx.batch_shape, ctx.drawn = family, op, batch_shape, drawn
    need_value = value.requires_grad and op not in ("reparameterize", "log_mass")
    ctx.needs = [need_value, low.requires_grad, high.requires_grad] + [
        p.requires_grad for p in params
    ]
    ctx.save_for_backward(value, output, low, high, *params)


def _backward_of_op(ctx, grad):
    value, at, low, high, *params = ctx.saved_tensors
    out = _backward_op(
        ctx.family,
        ctx.op,
        value,
        at,
        grad,
        low,
        high,
        params,
        ctx.batch_shape,
        ctx.needs,
        ctx.drawn,
    )
    g = [o if n else None for o, n in zip(out, ctx.needs, strict=True)]
    no_shape = None if len(ctx.batch_shape) else []
    return None, None, g[0], g[1], g[2], g[3:], no_shape, None


_op.register_autograd(_backward_of_op, setup_context=_setup_op)
_op.register_vmap(functools.partial(autograd.vmap_by_loop, _op))
_backward_op.register_vmap(functools.partial(autograd.vmap_by_loop, _backward_op))


@custom_op(
    "irtgen::truncated_sample", mutates_args=("token",), tags=(torch.Tag.nondeterministic_seeded,)
)
def _sample_op(
    family: str,
    low: torch.Tensor,
    high: torch.Tensor,
    params: list[torch.Tensor],
    shape: list[int],
    batch_shape: list[int],
    token: torch.Tensor,
) -> torch.Tensor:
    """Draws (no gradient) from the device's generator; ``token`` (library.rng_token) is
    incremented."""
    token.add_(1)
    return _sample(library.family_of(family), low, high, params, shape, batch_shape)


@_sample_op.register_fake
def _(family, low, high, params, shape, batch_shape, token):
    return low.new_empty(shape, dtype=_result_dtype(low, high, *params))


@_sample_op.register_vmap
def _(info, in_dims, family, low, high, params, shape, batch_shape, token):
    return autograd.vmap_draw(
        _sample_op,
        info,
        in_dims,
        low.device,
        None,
        family,
        low,
        high,
        params,
        shape,
        batch_shape,
        token,
    )


class _TruncatedBackward(torch.autograd.Function):
    """_backward as a function, so that torch.func's transforms unwrap its inputs before the
    kernels read them: [grad of value, low, high, *params], an empty tensor where ``needs`` is
    False. First order: its own backward refuses."""

    @staticmethod
    def forward(family, op, batch_shape, needs, drawn, value, at, grad, low, high, *params):
        out = _backward(family, op, value, at, grad, low, high, params, batch_shape, needs, drawn)
        return tuple(o if o is not None else value.new_empty(0) for o in out)

    @staticmethod
    def setup_context(ctx, inputs, output):
        pass

    @staticmethod
    def backward(ctx, *grads):
        raise RuntimeError("irtgen: Truncated's gradients are first order")

    @staticmethod
    def vmap(info, in_dims, *args):
        return autograd.vmap_by_loop(_TruncatedBackward.apply, info, in_dims, *args)


class _TruncatedFunction(torch.autograd.Function):
    """``irtgen::truncated`` for eager calls (library.eager), the same code without a custom
    op's dispatch."""

    @staticmethod
    def forward(family, op, batch_shape, drawn, value, low, high, *params):
        if op == "reparameterize":
            return value.view_as(value)  # the caller broadcasts z and gives it its dtype
        return _forward(family, op, value, low, high, params, batch_shape)

    @staticmethod
    def setup_context(ctx, inputs, output):
        family, op, batch_shape, drawn, value, low, high, *params = inputs
        ctx.family, ctx.op, ctx.batch_shape, ctx.drawn = family, op, batch_shape, drawn
        need_value = op not in ("reparameterize", "log_mass")
        ctx.needs = [need_value and ctx.needs_input_grad[4], *ctx.needs_input_grad[5:]]
        ctx.save_for_backward(value, output, low, high, *params)

    @staticmethod
    def backward(ctx, grad):
        value, at, low, high, *params = ctx.saved_tensors
        out = _TruncatedBackward.apply(
            ctx.family,
            ctx.op,
            ctx.batch_shape,
            tuple(ctx.needs),
            ctx.drawn,
            value,
            at,
            grad,
            low,
            high,
            *params,
        )
        return (
            None,
            None,
            None,
            None,
            *(o if n else None for o, n in zip(out, ctx.needs, strict=True)),
        )

    @staticmethod
    def vmap(info, in_dims, *args):
        return autograd.vmap_by_loop(_TruncatedFunction.apply, info, in_dims, *args)


_Draw = autograd.without_gradient(
    lambda family, low, high, shape, batch_shape, generator, *params: _sample(
        family, low, high, params, shape, batch_shape, generator
    ),
    "TruncatedDraw",
    draws=lambda family, low, high, shape, batch_shape, generator, *params: (
        low.device,
        generator,
    ),
)


def _apply(family: Family, op, value, low, high, params, batch_shape, drawn=False):
    """Op ``op`` (_forward) with its gradients, eager or as the custom op."""
    if library.eager():
        return _TruncatedFunction.apply(
            family, op, torch.Size(batch_shape), drawn, value, low, high, *params
        )
    return _op(family.key, op, value, low, high, list(params), library.int_list(batch_shape), drawn)


# -- the distribution ---------------------------------------------------------------------------


def _moment_nodes(device):
    """(t, log weight) of the composite Gauss-Legendre rule over [-_T_MAX, _T_MAX]."""
    t, w = np.polynomial.legendre.leggauss(_PANEL_NODES)
    edges = np.linspace(-_T_MAX, _T_MAX, _PANELS + 1)
    half = (edges[1:] - edges[:-1]) / 2
    mid = (edges[1:] + edges[:-1]) / 2
    nodes = (mid[:, None] + half[:, None] * t).reshape(-1)
    weights = (half[:, None] * w).reshape(-1)
    return torch.from_numpy(nodes).to(device), torch.from_numpy(weights).to(device)


_SupportEnds = autograd.without_gradient(
    lambda family, *params: torch.stack(ops.evaluate(family, "support", params)),
    "TruncatedSupportEnds",
)


class _Within(constraints.Constraint):
    """Values in [low, high] and in the base's support (checked by its own formula, with its
    open and closed ends)."""

    is_discrete = False
    event_dim = 0

    def __init__(self, dist: Truncated):
        self._dist = dist
        self.lower_bound, self.upper_bound = dist._ends()

    def check(self, value):
        d = self._dist
        # an autograd function, so that torch.func's wrapped tensors reach the kernels unwrapped
        inside = ops._InSupport(d._core.family, d.batch_shape, value, *d._params)
        return inside & (value >= d.low) & (value <= d.high)

    def __repr__(self) -> str:
        return f"Interval(lower_bound={self.lower_bound}, upper_bound={self.upper_bound})"


class Truncated(Distribution):
    """A generated family restricted to [low, high]: density q(z)/Z on [low, high] ∩ support,
    Z = F(high) - F(low).

    Args:
        base: a distribution generated by irtgen (irtgen.distributions' families, or one from
            ``irtgen.load`` / ``irtgen build``).
        low, high: Python numbers or tensors broadcasting with ``base.batch_shape``; either may
            be ±inf, and either may require grad.
        validate_args: check low < high (and that [low, high] meets the support) and the values
            given to ``log_prob`` and ``cdf``.

    ``rsample`` has implicit gradients to the base's parameters and to both bounds (see the
    module docstring for the formulas and how each quantity is computed); ``mean`` and
    ``variance`` come from quadrature of the quantile function.
    """

    arg_constraints: dict = {}

    def __init__(self, base, low, high, validate_args=None):
        if not isinstance(base, GeneratedDistribution):
            raise TypeError(
                "Truncated: the base must be a univariate distribution generated by irtgen "
                "(irtgen.distributions' families such as Normal or Gamma, or a family from "
                f"irtgen.load / irtgen build), not {type(base).__name__}"
            )
        p = base._params[0]
        low, high = (
            t if isinstance(t, torch.Tensor) else torch.as_tensor(t, dtype=p.dtype, device=p.device)
            for t in (low, high)
        )
        shapes = (base.batch_shape, low.shape, high.shape)
        # torch's under torch.compile (launch's is plain Python for eager calls)
        broadcast = launch.broadcast_shapes if library.eager() else torch.broadcast_shapes
        batch_shape = broadcast(*shapes)
        self.base = base
        self.low, self.high = low.expand(batch_shape), high.expand(batch_shape)
        # the base as evaluated: of the batch shape, its own validation off
        self._core = base.expand(batch_shape)
        self._core._validate_args = False
        self.has_rsample = base.has_rsample
        super().__init__(batch_shape, validate_args=validate_args)
        if self._validate_args:
            self._check_bounds()

    @property
    def _params(self):
        return self._core._params

    def _check_bounds(self) -> None:
        slo, shi = self._support_ends()
        ok = (self.low < self.high) & (self.low < shi) & (self.high > slo)
        if not torch._is_all_true(ok):  # as torch validates (also under vmap)
            raise ValueError(
                f"Expected parameter low ({type(self.low).__name__} of shape "
                f"{tuple(self.low.shape)}) of distribution {self!r} to satisfy the constraint "
                f"LessThan(upper_bound=high), with [low, high] meeting the support "
                f"{self._core.support!r}, but found invalid values:\n{self.low}"
            )

    def _support_ends(self):
        wide = [p.detach() for p in self._params]
        ends = _SupportEnds(self._core.family, *wide)
        return ends[0].to(self.low.dtype), ends[1].to(self.low.dtype)

    def _ends(self):
        slo, shi = self._support_ends()
        return torch.maximum(self.low, slo), torch.minimum(self.high, shi)

    @constraints.dependent_property(is_discrete=False, event_dim=0)
    def support(self):
        """[low, high] ∩ the base's support (``lower_bound``, ``upper_bound``: its ends)."""
        return _Within(self)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(Truncated, _instance)
        batch_shape = torch.Size(batch_shape)
        new.base = self.base
        new.low, new.high = self.low.expand(batch_shape), self.high.expand(batch_shape)
        new._core = self._core.expand(batch_shape)
        new._core._validate_args = False
        new.has_rsample = self.has_rsample
        super(Truncated, new).__init__(batch_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    def _apply(self, op, value, drawn=False):
        return _apply(
            self._core.family,
            op,
            value,
            self.low,
            self.high,
            self._params,
            self.batch_shape,
            drawn,
        )

    def _draw(self, sample_shape, generator):
        shape = self._extended_shape(torch.Size(sample_shape))
        params = [p.detach() for p in self._params]
        low, high = self.low.detach(), self.high.detach()
        family = self._core.family
        if generator is not None or library.eager():
            return _Draw(family, low, high, shape, self.batch_shape, generator, *params)
        return _sample_op(
            family.key,
            low,
            high,
            params,
            library.int_list(shape),
            library.int_list(self.batch_shape),
            library.rng_token(low.device),
        )

    def rsample(self, sample_shape=(), generator: torch.Generator | None = None):
        """Draws of shape ``sample_shape + batch_shape`` with implicit gradients to the base's
        parameters and to low and high."""
        if not self.has_rsample:
            raise NotImplementedError(f"{type(self.base).__name__} has no rsample")
        return self._apply("reparameterize", self._draw(sample_shape, generator), drawn=True)

    def sample(self, sample_shape=(), generator: torch.Generator | None = None):
        with torch.no_grad():
            return self._draw(sample_shape, generator)

    def reparameterize(self, z: torch.Tensor) -> torch.Tensor:
        """``z`` unchanged in value, with the truncated implicit gradient (z is a constant)."""
        z = self._core._value(z).detach()
        out_shape, _ = launch.out_shapes(z.shape, self.batch_shape)
        dtype = _result_dtype(z, self.low, self.high, *self._params)
        return self._apply("reparameterize", z.expand(out_shape).to(dtype))

    def _validate_sample(self, value) -> None:
        if not isinstance(value, torch.Tensor):
            raise ValueError("The value argument to log_prob must be a Tensor")  # torch's words
        actual, expected = value.size(), self._batch_shape
        for i, j in zip(reversed(actual), reversed(expected), strict=False):
            if i != 1 and j != 1 and i != j:
                raise ValueError(
                    f"Value is not broadcastable with batch_shape+event_shape: {actual} vs "
                    f"{expected}."
                )
        inside = self.support.check(value)
        if not torch._is_all_true(inside):
            raise ValueError(
                f"Expected value argument ({type(value).__name__} of shape {tuple(value.shape)}) "
                f"to be within the support ({self.support!r}) of the distribution {self!r}, "
                f"but found invalid values:\n{value}"
            )

    def log_prob(self, value):
        """log q(x) - log Z on [low, high], -inf outside."""
        if self._validate_args:
            self._validate_sample(value)
        value = self._core._value(value)
        log_q = self._core.log_prob(value)
        log_z = self._apply("log_mass", self.low)
        inside = (value >= self.low) & (value <= self.high)
        return torch.where(inside, log_q - log_z, -math.inf)

    def cdf(self, value):
        """F_T(x) = (F(x) - F(low))/Z, 0 below low and 1 above high."""
        if self._validate_args:
            self._validate_sample(value)
        return self._apply("cdf", self._core._value(value))

    def icdf(self, value):
        """The z with F_T(z) = u; gradients dz/du = Z/q(z) and those of rsample."""
        value = self._core._value(value)
        if self._validate_args and not torch._is_all_true((value >= 0) & (value <= 1)):
            raise ValueError("icdf: values must lie in [0, 1]")
        return self._apply("icdf", value)

    def _moments(self):
        """(mean, variance), by quadrature of the quantile function in t = logit(u)."""
        device = self.low.device
        t, w = _moment_nodes(device)
        shape = (t.numel(),) + (1,) * len(self.batch_shape)
        t = t.reshape(shape)
        w = (w * torch.sigmoid(t.reshape(-1)) * torch.sigmoid(-t.reshape(-1))).reshape(shape)
        z = self._apply("icdf_logit", t).to(F64)
        w = w / w.sum(0)
        mean = (w * z).sum(0)
        variance = (w * (z - mean).square()).sum(0)
        return mean, variance

    def _moment(self, which: int, name: str):
        dtype = _result_dtype(self.low, self.high, *self._params)
        value = self._moments()[which]
        try:
            base_value = getattr(self._core, name)
        except NotImplementedError:
            base_value = None
        if base_value is not None:  # an infinite side of a base without the moment
            open_side = torch.isinf(self.low) | torch.isinf(self.high)
            missing = open_side & ~torch.isfinite(base_value)
            value = torch.where(missing, math.nan, value)
        return value.to(dtype)

    @property
    def mean(self):
        """E[z], by quadrature of the quantile function (NaN where an infinite bound leaves a
        base without a mean)."""
        return self._moment(0, "mean")

    @property
    def variance(self):
        """Var[z], by the same quadrature."""
        return self._moment(1, "variance")

    def __repr__(self) -> str:
        def show(t):
            return t if t.numel() == 1 else t.size()

        return f"Truncated({self.base!r}, low: {show(self.low)}, high: {show(self.high)})"
