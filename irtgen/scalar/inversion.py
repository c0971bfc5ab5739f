"""Numeric inversion of a CDF, written once and specialised on a family's formulas.

For a spec without a closed-form icdf, z = F^-1(u) solves g(z) = 0 with

    g(z) = F(z) - u            for u <= 1/2
    g(z) = (1 - u) - S(z)      for u >  1/2   (S = 1 - F derived symbolically; 1 - u is exact)

so both tails are solved in the function that carries their precision. Steps:

1. Bracket: finite support ends are bracket ends; an infinite side is searched by steps of
   1, 2, 4, 16, 256, ... (each the square of the last, the factor at most 1e10) from a start
   point inside the support until g changes sign; the geometric bisection of step 2 then takes
   a wide bracket apart in a few steps.
2. Safeguarded Newton (Numerical Recipes' rtsafe): a Newton step z - g/q is taken when it lands
   inside the bracket and is less than half the step before last; otherwise bisect. Bisection is
   geometric when the bracket spans more than a factor 4 on one side of zero (so scales from
   1e-300 to 1e300 take tens of steps, not thousands) and tests 0 first when it straddles zero.
3. Stop when g = 0, the step is below 4 eps |z| (float64 eps: every backend inverts in float64),
   the bracket is that narrow, or no float lies strictly inside it. An element that does not
   converge in MAX_ITER steps is NaN.

``invert`` calls the globals CDF, SF, PDF and SUPPORT; ``specialize`` binds them to a family's
formulas and returns the family's ``icdf(u, *params)``.
"""

from __future__ import annotations

from irtgen.scalar.source import ScalarFunction, scalar, tl

MAX_BRACKET_STEPS = 2100  # more than the ~40 steps that span the float64 range
MAX_ITER = 300

CDF = None
SF = None
PDF = None
SUPPORT = None


@scalar
def bisection_point(a, b):
    """Midpoint; geometric when [a, b] spans more than a factor 4 on one side of 0; 0 if it
    straddles 0."""
    out = 0.5 * a + 0.5 * b
    if (a < 0.0) and (b > 0.0):
        out = 0.0 * a
    elif (a >= 0.0) and (b > 4.0 * tl.maximum(a, 2.2250738585072014e-308)):
        out = tl.sqrt(tl.maximum(a, 2.2250738585072014e-308)) * tl.sqrt(b)
    elif (b <= 0.0) and (-a > 4.0 * tl.maximum(-b, 2.2250738585072014e-308)):
        out = -tl.sqrt(tl.maximum(-b, 2.2250738585072014e-308)) * tl.sqrt(-a)
    return out


@scalar
def residual(x, u, lower, p):
    """g = F - u in the lower half, (1 - u) - S in the upper half: increasing, root at F^-1(u)."""
    if lower:
        g = CDF(x, *p) - u
    else:
        g = (1.0 - u) - SF(x, *p)
    return g


@scalar
def invert(u, p):
    """F^-1(u) for u in (0, 1), parameters ``p`` (a tuple); NaN where it does not converge."""
    lo, hi = SUPPORT(*p)
    x = 0.0 * u + float("nan")
    if (u > 0.0) and (u < 1.0):
        lower = u <= 0.5
        flo = lo > -float("inf")
        fhi = hi < float("inf")
        if flo and fhi:
            x0 = 0.5 * lo + 0.5 * hi
        elif flo:
            x0 = lo + 1.0
        elif fhi:
            x0 = hi - 1.0
        else:
            x0 = 0.0 * u
        g0 = residual(x0, u, lower, p)
        up = g0 < 0.0
        a = tl.where(up, x0, lo)
        b = tl.where(up, hi, x0)
        # 1. bracket an infinite side by steps 1, 2, 4, ... from x0
        need = (g0 == g0) and ((up and not fhi) or ((not up) and not flo))
        step = 1.0 + 0.0 * u
        it = 0
        while need and (it < MAX_BRACKET_STEPS):
            t = tl.where(up, x0 + step, x0 - step)
            gt = residual(t, u, lower, p)
            crossed = tl.where(up, gt >= 0.0, gt <= 0.0)
            if up != crossed:
                a = t
            else:
                b = t
            # 1, 2, 4, 16, 256, ...: squared (at most x1e10) to cross the float64 range in ~40
            # steps where a heavy tail puts the root at 1e300
            # (capped at 2^1023, the last step before the float64 range ends)
            last = step >= 8.98846567431158e307
            step = tl.minimum(step * tl.minimum(tl.maximum(step, 2.0), 1e10), 8.98846567431158e307)
            need = (not crossed) and (not last)
            it += 1
        # 2. safeguarded Newton (rtsafe)
        x = bisection_point(a, b)
        dx = b - a
        dx_old = dx
        active = (a > -float("inf")) and (b < float("inf"))
        it = 0
        while active and (it < MAX_ITER):
            gx = residual(x, u, lower, p)
            qx = PDF(x, *p)
            if gx < 0.0:
                a = x
            if gx > 0.0:
                b = x
            newton = x - gx / qx
            ok = (newton > a) and (newton < b) and (2.0 * tl.abs(gx) <= tl.abs(dx_old * qx))
            mid = bisection_point(a, b)
            xn = tl.where(ok, newton, mid)
            conv = (
                (gx == 0.0)
                or (tl.abs(xn - x) <= 8.8817841970012523e-16 * tl.abs(xn))
                or (b - a <= 8.8817841970012523e-16 * tl.maximum(tl.abs(a), tl.abs(b)))
                or (mid == a)
                or (mid == b)
            )
            dx_old = dx
            dx = xn - x
            if gx != 0.0:
                x = xn
            active = not conv
            it += 1
        if active or not ((a > -float("inf")) and (b < float("inf"))):
            x = 0.0 * u + float("nan")
    return x


@scalar
def icdf_numeric(u, *p):
    """F^-1(u) with the support conventions: 0 and 1 map to the ends of the support, values
    outside [0, 1] to NaN."""
    lo, hi = SUPPORT(*p)
    return tl.where(
        (u < 0.0) | (u > 1.0),
        float("nan"),
        tl.where(u <= 0.0, lo, tl.where(u >= 1.0, hi, invert(u, p))),
    )


def specialize(tag: str, cdf, sf, pdf, support) -> ScalarFunction:
    """A family's ``icdf(u, *params)``: this module's functions with CDF, SF, PDF and SUPPORT
    bound to the family's formulas (``tag``, the family's module name, keys the compiled
    forms)."""
    from irtgen.compilers.bind import code_hash

    bindings = {"CDF": cdf, "SF": sf, "PDF": pdf, "SUPPORT": support}
    return icdf_numeric.specialize(f"{tag}.{code_hash(cdf, sf, pdf, support)}", bindings)
