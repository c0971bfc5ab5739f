"""Numeric inversion of a CDF (the torch path; generated Triton kernels run the same algorithm).

For a spec without a closed-form icdf, z = F^-1(u) solves g(z) = 0 with

    g(z) = F(z) - u            for u <= 1/2
    g(z) = (1 - u) - S(z)      for u >  1/2   (S = 1 - F derived symbolically; 1 - u is exact)

so both tails are solved in the function that carries their precision. Steps:

1. Bracket: finite support ends are bracket ends; an infinite side is searched by steps of
   1, 2, 4, ... from a start point inside the support until g changes sign.
2. Safeguarded Newton (Numerical Recipes' rtsafe): a Newton step z - g/q is taken when it lands
   inside the bracket and is less than half the step before last; otherwise bisect. Bisection is
   geometric when the bracket spans more than a factor 4 on one side of zero (so scales from
   1e-300 to 1e300 take tens of steps, not thousands) and tests 0 first when it straddles zero.
3. Stop when g = 0, the step is below 4 eps |z|, the bracket is that narrow, or no float lies
   strictly inside it. Elements that do not converge in ``max_iter`` steps become NaN and a
   RuntimeWarning names how many.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch

MAX_BRACKET_STEPS = 2100  # enough doublings to span the float64 range
MAX_ITER = 300


def bisection_point(a: torch.Tensor, b: torch.Tensor, tiny: float) -> torch.Tensor:
    arith = 0.5 * a + 0.5 * b
    a_pos = torch.clamp(a, min=tiny)
    pos = (a >= 0) & (b > 4 * a_pos)
    geo_pos = torch.sqrt(a_pos) * torch.sqrt(torch.clamp(b, min=0))
    b_neg = torch.clamp(-b, min=tiny)
    neg = (b <= 0) & (-a > 4 * b_neg)
    geo_neg = -torch.sqrt(b_neg) * torch.sqrt(torch.clamp(-a, min=0))
    straddle = (a < 0) & (b > 0)
    out = torch.where(neg, geo_neg, arith)
    out = torch.where(pos, geo_pos, out)
    return torch.where(straddle, torch.zeros_like(a), out)


def invert_cdf(
    u: torch.Tensor,
    params: tuple[torch.Tensor, ...],
    cdf: Callable,
    sf: Callable,
    pdf: Callable,
    support: Callable,
    max_iter: int = MAX_ITER,
) -> torch.Tensor:
    """z with F(z; params) = u elementwise; u in (0, 1), params broadcastable against u."""
    shape = torch.broadcast_shapes(u.shape, *(p.shape for p in params))
    u = u.expand(shape).reshape(-1)
    ps = [p.expand(shape).reshape(-1) for p in params]
    finfo = torch.finfo(u.dtype)
    eps, tiny = 4 * finfo.eps, finfo.tiny

    lo, hi = support(*ps)
    lo = torch.broadcast_to(torch.as_tensor(lo, dtype=u.dtype, device=u.device), u.shape)
    hi = torch.broadcast_to(torch.as_tensor(hi, dtype=u.dtype, device=u.device), u.shape)
    lower = u <= 0.5
    one_minus_u = 1.0 - u

    def g(x, idx):
        p = [q[idx] for q in ps]
        return torch.where(lower[idx], cdf(x, *p) - u[idx], one_minus_u[idx] - sf(x, *p))

    solvable = (u > 0) & (u < 1)
    finite_lo, finite_hi = torch.isfinite(lo), torch.isfinite(hi)
    x0 = torch.where(
        finite_lo & finite_hi,
        0.5 * lo + 0.5 * hi,
        torch.where(finite_lo, lo + 1.0, torch.where(finite_hi, hi - 1.0, torch.zeros_like(u))),
    )
    all_idx = torch.arange(u.numel(), device=u.device)
    g0 = g(x0, all_idx)
    up = g0 < 0
    a = torch.where(up, x0, lo)
    b = torch.where(up, hi, x0)

    # 1. bracket the infinite sides
    need = solvable & ~torch.isnan(g0) & ((up & ~finite_hi) | (~up & ~finite_lo))
    step = torch.ones_like(u)
    for _ in range(MAX_BRACKET_STEPS):
        idx = need.nonzero().squeeze(1)
        if idx.numel() == 0:
            break
        t = torch.where(up[idx], x0[idx] + step[idx], x0[idx] - step[idx])
        gt = g(t, idx)
        crossed = torch.where(up[idx], gt >= 0, gt <= 0)
        a[idx] = torch.where(up[idx] == crossed, a[idx], t)  # up & ~crossed, or ~up & crossed
        b[idx] = torch.where(up[idx] == crossed, t, b[idx])
        step[idx] = step[idx] * 2
        need[idx] = ~crossed & torch.isfinite(step[idx] * 2)

    # 2. safeguarded Newton
    x = bisection_point(a, b, tiny)
    dx = b - a
    dx_old = dx.clone()
    active = solvable & torch.isfinite(a) & torch.isfinite(b)
    for _ in range(max_iter):
        idx = active.nonzero().squeeze(1)
        if idx.numel() == 0:
            break
        xi, ai, bi = x[idx], a[idx], b[idx]
        gx = g(xi, idx)
        qx = pdf(xi, *[p[idx] for p in ps])
        ai = torch.where(gx < 0, xi, ai)
        bi = torch.where(gx > 0, xi, bi)
        newton = xi - gx / qx
        ok = (
            torch.isfinite(newton)
            & (newton > ai)
            & (newton < bi)
            & (2 * gx.abs() <= (dx_old[idx] * qx).abs())
        )
        mid = bisection_point(ai, bi, tiny)
        xn = torch.where(ok, newton, mid)
        dx_old[idx] = dx[idx]
        dx[idx] = xn - xi
        converged = (
            (gx == 0)
            | ((xn - xi).abs() <= eps * xn.abs())
            | (bi - ai <= eps * torch.maximum(ai.abs(), bi.abs()))
            | (mid == ai)
            | (mid == bi)
        )
        x[idx] = torch.where(gx == 0, xi, xn)
        a[idx], b[idx] = ai, bi
        active[idx] = ~converged

    failed = active | (solvable & ~(torch.isfinite(a) & torch.isfinite(b)))
    if failed.any():
        warnings.warn(
            f"irtgen: numeric inversion of the CDF did not converge for {int(failed.sum())} of "
            f"{u.numel()} values; they are NaN",
            RuntimeWarning,
            stacklevel=3,
        )
        x = torch.where(failed, torch.full_like(x, float("nan")), x)
    x = torch.where(solvable, x, torch.full_like(x, float("nan")))
    return x.reshape(shape)
