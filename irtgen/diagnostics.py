"""Build-time numeric diagnostics: is the derived distribution a distribution?

``check(derivation)`` evaluates the derived formulas with mpmath (30 significant digits) at
parameter values spread over each parameter's constraint and at points across the support, and
raises ``SpecError`` naming the offending values when

* the **support** is not a non-empty interval for some allowed parameter values: its ends must be
  real numbers with lower < upper for *every* combination of values the constraints allow (each
  parameter is constrained on its own, so ``Interval(a, b)`` with two ``real`` parameters is
  rejected; write ``Interval(a, a + w)`` with ``w`` positive instead);
* the **density** dF/dz is clearly negative (the CDF decreases) at some z in the support;
* the **CDF does not tend to 0 and 1** at the lower and upper end of the support (numerically at
  the end, then approaching it; a time-boxed SymPy ``limit`` where the numbers cannot decide);
* a given **icdf does not invert the CDF**: F(icdf(u)) differs from u by more than 1e-6.

The formulas are the derived ones, after irtgen's rewrites (irtgen.rewrite), with irtgen's
functions evaluated by their mpmath references (irtgen.codegen.functions): a spec written with
cancelling differences (Φ(z) - Φ(low) through erf, 220 standard deviations out) is checked as the
generated code computes it, through log_ndtr_diff, whose reference adds the digits the difference
cancels. Raising the working precision instead would need hundreds of digits for such points, and
would check a formula that the generated code never evaluates.

Parameter values per constraint: positive-type half lines ``c + (0.01, 0.3, 1, 3, 30)``, the
real line ``(-10, -1.5, 0, 0.7, 10)``, finite intervals at 1, 20, 50, 80 and 99 % of their width
(the support check also takes the closed ends of a constraint). With several parameters the
combinations are thinned to at most ``MAX_COMBOS``, evenly over the full grid. Checks never
fail on a value that cannot be evaluated (NaN, complex, an exception): they only report what they
can show.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import mpmath
import sympy as sp

from irtgen.spec import SpecError
from irtgen.timelimit import Timeout as _Timeout
from irtgen.timelimit import time_limit as _time_limit

DPS = 30  # working precision of the checks (decimal digits)
CONFIRM_DPS = 60  # a negative density is confirmed at this precision (not rounding)
MAX_COMBOS = 40  # parameter combinations per check at most
ICDF_COMBOS = 16
HALF_LINE_OFFSETS = (1e-2, 0.3, 1.0, 3.0, 30.0)
REAL_POINTS = (-10.0, -1.5, 0.0, 0.7, 10.0)
INTERVAL_FRACTIONS = (0.01, 0.2, 0.5, 0.8, 0.99)
ICDF_US = (0.01, 0.2, 0.5, 0.8, 0.99)
ICDF_TOL = 1e-6
END_TOL = 1e-9
NEGATIVE_REL_TOL = 1e-9  # a negative density must exceed this fraction of the largest one
LIMIT_SECONDS = 2.0  # time box of one symbolic limit
CHECK_SECONDS = 30.0  # time box of all checks of one distribution


# -- numeric evaluation --------------------------------------------------------------------------


def _safe_exp(x):
    """mpmath's exp, except that |x| > 1e12 gives 0 or inf at once: mpmath would otherwise
    try to build the result to full precision (exp(-exp(1e16)) is a MemoryError)."""
    if isinstance(x, mpmath.mpf) and abs(x) > 1e12:
        return mpmath.inf if x > 0 else mpmath.mpf(0)
    return mpmath.exp(x)


def _nan_guarded(fn: Callable) -> Callable:
    """fn, but NaN for a NaN argument: mpmath's series never converge on one (betainc loops)."""

    def guarded(*args):
        for a in args:
            if isinstance(a, mpmath.mpc) or (isinstance(a, mpmath.mpf) and mpmath.isnan(a)):
                return mpmath.nan
        return fn(*args)

    return guarded


def _namespace() -> dict:
    from irtgen.codegen.functions import FUNCTIONS

    ns = {
        cls.__name__: _nan_guarded(impl.reference)
        for cls, impl in FUNCTIONS.items()
        if impl.reference
    }
    ns["exp"] = _nan_guarded(_safe_exp)
    return ns


def _compile(expr: sp.Basic, symbols: Sequence[sp.Symbol]) -> Callable | None:
    """An mpmath function of ``symbols``; None if the expression cannot be compiled."""
    try:
        return sp.lambdify(list(symbols), expr, modules=[_namespace(), "mpmath"])
    except Exception:  # noqa: BLE001 - an expression the printer cannot handle: no check
        return None


def _real(value):
    """``value`` as an mpf (possibly ±inf), or None when it is not a real number."""
    try:
        if isinstance(value, mpmath.mpc):
            if value.imag != 0 and abs(value.imag) > 1e-25 * abs(value.real):
                return None
            value = value.real
        value = mpmath.mpf(value)
    except (TypeError, ValueError):
        return None
    return None if mpmath.isnan(value) else value


def _call(fn: Callable, args: Sequence, dps: int = DPS):
    """fn(*args) evaluated at ``dps`` digits as a real mpf, or None where it is not one."""
    with mpmath.workdps(dps):
        try:
            return _real(fn(*(mpmath.mpf(a) for a in args)))
        except (ArithmeticError, ValueError, TypeError, MemoryError, RecursionError):
            return None
        except mpmath.libmp.NoConvergence:
            return None


def _fmt(x) -> str:
    x = float(x)
    if x in (float("inf"), float("-inf")):
        return "oo" if x > 0 else "-oo"
    return f"{x:.6g}"


def _is_complex(fn: Callable, args: Sequence) -> bool:
    """Whether fn(*args) is a number with a non-negligible imaginary part."""
    with mpmath.workdps(DPS):
        try:
            v = fn(*(mpmath.mpf(a) for a in args))
        except Exception:  # noqa: BLE001 - not evaluable is not "complex"
            return False
    return isinstance(v, mpmath.mpc) and abs(v.imag) > 1e-25 * abs(v.real)


# -- parameter values ----------------------------------------------------------------------------


def constraint_points(interval: sp.Interval, closed_ends: bool = False) -> list[float]:
    """Values spread over a constraint's interval (its closed ends too, with closed_ends)."""
    a, b = interval.start, interval.end
    if a == -sp.oo and b == sp.oo:
        pts = list(REAL_POINTS)
    elif b == sp.oo:
        pts = [float(a) + o for o in HALF_LINE_OFFSETS]
    elif a == -sp.oo:
        pts = [float(b) - o for o in HALF_LINE_OFFSETS]
    else:
        pts = [float(a) + (float(b) - float(a)) * f for f in INTERVAL_FRACTIONS]
    if closed_ends:
        if a != -sp.oo and not interval.left_open:
            pts.insert(0, float(a))
        if b != sp.oo and not interval.right_open:
            pts.append(float(b))
    return pts


def _thin(combos: list, limit: int) -> list:
    if len(combos) <= limit:
        return combos
    n = len(combos)
    return [combos[round(i * (n - 1) / (limit - 1))] for i in range(limit)]


def _describe(params, theta) -> str:
    return ", ".join(f"{p} = {_fmt(v)}" for p, v in zip(params, theta, strict=True))


# -- the checks ----------------------------------------------------------------------------------


class _Checker:
    def __init__(self, d):
        self.d = d
        self.name = d.name
        self.params = list(d.params)
        self.constraints = [d.spec.constraints[p] for p in d.spec.params]
        self.z = d.z
        self.lo_fn = _compile(d.support_lo, self.params)
        self.hi_fn = _compile(d.support_hi, self.params)
        columns = [constraint_points(c.interval) for c in self.constraints]
        self.combos = _thin(list(itertools.product(*columns)), MAX_COMBOS)
        self._supports: dict[tuple, tuple] = {}

    def fail(self, message: str) -> SpecError:
        return SpecError(f"{self.name}: {message}")

    def allowed(self) -> str:
        return ", ".join(
            f"{p}: {c.name}" for p, c in zip(self.params, self.constraints, strict=True)
        )

    def support_at(self, theta) -> tuple | None:
        """(lo, hi) as mpf at theta, or None where either end is not a real number."""
        if theta not in self._supports:
            lo = _call(self.lo_fn, theta) if self.lo_fn else None
            hi = _call(self.hi_fn, theta) if self.hi_fn else None
            self._supports[theta] = None if lo is None or hi is None else (lo, hi)
        return self._supports[theta]

    # f. the support against the constraints ---------------------------------------------------

    def check_support(self) -> None:
        d = self.d
        used = d.support_lo.free_symbols | d.support_hi.free_symbols
        if not used:
            return
        if self.lo_fn is None or self.hi_fn is None:
            return
        columns = [
            constraint_points(c.interval, closed_ends=True) if p in used else [None]
            for p, c in zip(self.params, self.constraints, strict=True)
        ]
        names = [p for p in self.params if p in used]
        support = d.spec.support
        for combo in itertools.product(*columns):
            theta = tuple(1.0 if v is None else v for v in combo)  # unused: any value
            shown = [v for v in combo if v is not None]
            lo = _call(self.lo_fn, theta)
            hi = _call(self.hi_fn, theta)
            for end, value, expr in (("lower", lo, d.support_lo), ("upper", hi, d.support_hi)):
                if value is None:
                    raise self.fail(
                        f"the {end} end {expr} of the support {support} is not a real number "
                        f"for {_describe(names, shown)}, values its constraints allow "
                        f"({self.allowed()})"
                    )
            if not lo < hi:
                raise self.fail(
                    f"the support {support} is empty for {_describe(names, shown)} (lower end "
                    f"{_fmt(lo)} is not below upper end {_fmt(hi)}), values its constraints allow "
                    f"({self.allowed()}); the support must be a non-empty interval for every "
                    "allowed parameter value (e.g. give the upper end as the lower end plus a "
                    "positive parameter)"
                )

    # points in the support --------------------------------------------------------------------

    def z_points(self, theta) -> list:
        ends = self.support_at(theta)
        if ends is None:
            return []
        lo, hi = ends
        if mpmath.isinf(lo) and mpmath.isinf(hi):
            base = [0.0]
            for x in (0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 1e3, 1e6):
                base += [-x, x]
            pts = [mpmath.mpf(x) for x in base]
            for v, c in zip(theta, self.constraints, strict=True):  # around locations
                if c.interval.start == -sp.oo:
                    pts += [mpmath.mpf(v) + o for o in (-0.1, 0.1)]
        elif mpmath.isinf(hi):
            offs = (1e-6, 1e-3, 0.01, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 1e3, 1e6)
            pts = [lo + o for o in offs]
        elif mpmath.isinf(lo):
            offs = (1e-6, 1e-3, 0.01, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 1e3, 1e6)
            pts = [hi - o for o in offs]
        else:
            w = hi - lo
            fracs = (1e-6, 1e-3, 0.02, 0.1, 0.25, 0.5, 0.75, 0.9, 0.98, 0.999, 1 - 1e-6)
            pts = [lo + w * f for f in fracs]
        for v in theta:  # at and just around parameter values: kinks of piecewise cdfs
            v = mpmath.mpf(v)
            step = 1e-3 * max(1, abs(v))
            pts += [v - step, v, v + step]
        return sorted({x for x in pts if lo < x < hi})

    # a. a density that is negative somewhere -----------------------------------------------------

    def check_density(self) -> None:
        pdf = _compile(self.d.pdf, [self.z, *self.params])
        if pdf is None:
            return
        # a piecewise cdf can also decrease by a jump where its pieces meet: compare values too
        jumps = self.d.cdf.has(sp.Piecewise, sp.floor, sp.ceiling)
        cdf = _compile(self.d.cdf, [self.z, *self.params]) if jumps else None
        for theta in self.combos:
            points = self.z_points(theta)
            if cdf is not None:
                self._check_increasing(cdf, theta, points)
            values = []
            for x in points:
                q = _call(pdf, (x, *theta))
                if q is not None:
                    values.append((x, q))
            finite = [abs(q) for _, q in values if mpmath.isfinite(q)]
            if not finite:
                continue
            scale = max(finite)
            for x, q in values:
                if not (q < 0 and -q > NEGATIVE_REL_TOL * scale):
                    continue
                confirm = _call(pdf, (x, *theta), CONFIRM_DPS)
                if confirm is None or not confirm < 0 or abs(confirm - q) > 1e-6 * abs(confirm):
                    continue  # rounding, not a property of the formula
                raise self.fail(
                    f"the density dF/d{self.z} is negative ({_fmt(confirm)}) at {self.z} = "
                    f"{_fmt(x)} for {_describe(self.params, theta)}, values its constraints allow "
                    f"({self.allowed()}): the cdf decreases there, so it is not a CDF for all "
                    "allowed parameter values"
                )

    def _check_increasing(self, cdf, theta, points) -> None:
        """F at increasing points must not decrease (beyond rounding)."""
        values = [(x, _call(cdf, (x, *theta))) for x in points]
        values = [(x, f) for x, f in values if f is not None and mpmath.isfinite(f)]
        for (x0, f0), (x1, f1) in itertools.pairwise(values):
            if f1 >= f0 - END_TOL * (1 + abs(f0)):
                continue
            g0 = _call(cdf, (x0, *theta), CONFIRM_DPS)
            g1 = _call(cdf, (x1, *theta), CONFIRM_DPS)
            if g0 is None or g1 is None or not g1 < g0 - END_TOL * (1 + abs(g0)):
                continue
            raise self.fail(
                f"the cdf decreases from {_fmt(g0)} at {self.z} = {_fmt(x0)} to {_fmt(g1)} at "
                f"{self.z} = {_fmt(x1)} for {_describe(self.params, theta)}, values its "
                f"constraints allow ({self.allowed()}): its pieces do not join into a CDF"
            )

    # b. the cdf at the ends of the support ---------------------------------------------------

    def check_limits(self) -> None:
        cdf = _compile(self.d.cdf, [self.z, *self.params])
        if cdf is None:
            return
        symbolic: dict[str, object] = {}
        for theta in self.combos:
            ends = self.support_at(theta)
            if ends is None:
                continue
            for which, end, target in (("lower", ends[0], 0), ("upper", ends[1], 1)):
                verdict, value = self._numeric_end(cdf, theta, ends, which)
                if verdict == "ok":
                    continue
                if verdict == "undecided":  # the numbers cannot decide: ask SymPy (time-boxed)
                    if which not in symbolic:
                        symbolic[which] = self._symbolic_limit(which)
                    value = _evaluate_limit(symbolic[which], self.params, theta)
                    if value is None or abs(value - target) <= END_TOL:
                        continue
                raise self.fail(
                    f"the cdf tends to {_fmt(value)} at the {which} end of the support "
                    f"({self.z} -> {_fmt(end)}), not {target}, for "
                    f"{_describe(self.params, theta)}: a CDF rises from 0 at the lower end to 1 "
                    f"at the upper end (check the support {self.d.spec.support} and the "
                    "normalisation)"
                )

    def _numeric_end(self, cdf, theta, ends, which):
        """("ok", None), ("wrong", the limit) where the numbers show a wrong one, or
        ("undecided", None)."""
        lo, hi = ends
        end = lo if which == "lower" else hi
        target = 0 if which == "lower" else 1
        exact = _call(cdf, (end, *theta))
        if exact is not None and mpmath.isfinite(exact) and abs(exact - target) <= END_TOL:
            return "ok", None
        # approach the end
        if mpmath.isinf(end):
            other = hi if which == "lower" else lo
            base = other if mpmath.isfinite(other) else mpmath.mpf(0)
            sign = -1 if which == "lower" else 1
            near = [base + sign * mpmath.mpf(10) ** k for k in (3, 6, 12, 24)]
        else:
            width = (hi - lo) if mpmath.isfinite(hi - lo) else mpmath.mpf(1)
            sign = 1 if which == "lower" else -1
            near = [end + sign * width * mpmath.mpf(10) ** -k for k in (6, 12, 24)]
        vals = [_call(cdf, (x, *theta), CONFIRM_DPS) for x in near]
        if any(v is None or not mpmath.isfinite(v) for v in vals[-2:]):
            if exact is not None and mpmath.isinf(exact):
                return "wrong", exact  # e.g. F(-oo) = -oo: the cdf is unbounded there
            return "undecided", None
        last, before = vals[-1], vals[-2]
        if abs(last - target) <= END_TOL:
            return "ok", None
        settled = abs(last - before) <= END_TOL * (1 + abs(last))
        if exact is not None and mpmath.isfinite(exact):
            # F at the end agrees with F close to it: that is the limit
            if abs(last - exact) <= 1e-6 * (1 + abs(exact)):
                return "wrong", exact
            return "undecided", None
        if settled and abs(last - target) > 1e-6:
            return "wrong", last
        return "undecided", None

    def _symbolic_limit(self, which):
        """limit of the cdf (SymPy's functions, as the spec wrote them) at an end, or None."""
        d = self.d
        to_new = {s: p for s, p in zip(d.spec.params, self.params, strict=True)}
        to_new[d.spec.variable] = self.z
        cdf = d.spec.cdf.xreplace(to_new)
        end = d.support_lo if which == "lower" else d.support_hi
        direction = "+" if which == "lower" else "-"
        try:
            with _time_limit(LIMIT_SECONDS) as armed:
                if not armed:
                    return None
                result = sp.limit(cdf, self.z, end, direction)
        except _Timeout:
            return None
        except Exception:  # noqa: BLE001 - SymPy could not do it: no verdict
            return None
        if result.has(sp.Limit) or result.has(sp.AccumBounds):
            return None
        return result

    # e. icdf against cdf ------------------------------------------------------------------------

    def check_icdf(self) -> None:
        d = self.d
        if d.icdf is None:
            return
        icdf = _compile(d.icdf, [d.u, *self.params])
        cdf = _compile(d.cdf, [self.z, *self.params])
        if icdf is None or cdf is None:
            return
        for theta in _thin(self.combos, ICDF_COMBOS):
            ends = self.support_at(theta)
            if ends is None:
                continue
            lo, hi = ends
            for u in ICDF_US:
                x = _call(icdf, (u, *theta))
                if x is None:
                    if _is_complex(icdf, (u, *theta)):
                        raise self.fail(
                            f"the icdf is not a real number at u = {u} for "
                            f"{_describe(self.params, theta)}"
                        )
                    continue  # not evaluable here (an exception, NaN): no verdict
                if x < lo or x > hi:
                    precise = _call(icdf, (u, *theta), CONFIRM_DPS * 2)
                    if precise is not None and (precise < lo or precise > hi):
                        raise self.fail(
                            f"the icdf does not invert the cdf: icdf({u}) = {_fmt(precise)} lies "
                            f"outside the support [{_fmt(lo)}, {_fmt(hi)}] for "
                            f"{_describe(self.params, theta)}"
                        )
                    continue
                f = _call(cdf, (x, *theta))
                if f is None or abs(f - u) <= ICDF_TOL:
                    continue
                # again with more digits: icdf(u) may lie closer to an end than 30 digits tell
                # (Kumaraswamy(0.01, 0.01) puts u = 0.8 within 1e-68 of 1)
                x = _call(icdf, (u, *theta), CONFIRM_DPS * 2)
                if x is None or x <= lo or x >= hi:
                    continue  # at an end to working precision: cannot tell
                f = _call(cdf, (x, *theta), CONFIRM_DPS * 2)
                if f is not None and abs(f - u) > ICDF_TOL:
                    raise self.fail(
                        f"the icdf does not invert the cdf: at u = {u} for "
                        f"{_describe(self.params, theta)}, icdf(u) = {_fmt(x)} and "
                        f"F(icdf(u)) = {_fmt(f)}, not {u}"
                    )


def _evaluate_limit(result, params, theta):
    if result is None:
        return None
    try:
        value = result.subs(dict(zip(params, theta, strict=True)))
        if value in (sp.oo, -sp.oo):
            return mpmath.inf if value == sp.oo else -mpmath.inf
        value = complex(value.evalf(20))
    except (TypeError, ValueError, AttributeError):
        return None
    if value.imag != 0 or value.real != value.real:
        return None
    return mpmath.mpf(value.real)


# -- entry point ---------------------------------------------------------------------------------


def check(derivation) -> None:
    """Run every numeric check on a derivation; raise SpecError on the first problem found.

    The checks stop without a verdict after ``CHECK_SECONDS`` (in the main thread, where an
    alarm can interrupt them): a slow special function must not hold up a build.
    """
    checker = _Checker(derivation)
    try:
        with _time_limit(CHECK_SECONDS):
            checker.check_support()
            checker.check_density()
            checker.check_limits()
            checker.check_icdf()
    except _Timeout:
        return
