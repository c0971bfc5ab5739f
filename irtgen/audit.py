"""The build's accuracy audit: every generated formula against mpmath, in float64 and float32.

For one family, ``audit(derivation, module)`` evaluates the generated code (the module's
``@scalar`` formulas, run by the Python interpreter on NumPy scalars: irtgen.compilers.python_tl)
and compares it with the derived formulas evaluated by mpmath at ``DPS`` digits, at

* the parameter values of the build diagnostics (irtgen.diagnostics: spread over each
  parameter's constraint, from tiny to huge scales and shapes), thinned to ``COMBOS``, and
* at each, the values at the quantiles ``QUANTILES`` (1e-12 ... 1 - 1e-12), found by inverting
  the CDF at ``DPS`` digits (the lower tail through log F, the upper through log S).

Every input is rounded to the audited dtype first and the reference is taken at that exact
binary value, so an error is the formula's own, not the rounding of its input. The formulas:
cdf, sf, log_prob, icdf (at the quantile u itself), dz/dθ and ∂log q/∂θ for every parameter θ.

Error measure: |got - ref| / |ref| (relative error), with |ref| taken as at least the smallest
normal number of the dtype (a subnormal result has fewer significant bits), and for log_prob as
at least 1 (so where |log q| < 1 it is the error of log q itself, that is the relative error of
q). Where the reference is 0 the error is |got| / tiny. A result that is NaN, or infinite where
the reference is finite in the dtype's range, has error inf.

float32 is audited as Triton computes it on a GPU: formulas with special functions and numeric
inversions in float64 from float32 inputs, rounded at the end; the others in float32 throughout.
(The CPU kernels compute every formula in float64: their float32 error is the rounding of the
float64 result, no larger than the float64 error plus 6e-8.)

Where a formula is ill-conditioned in its inputs (next to a zero crossing of the result: z·(log z
- loc)/scale where log z = loc), no floating-point evaluation does better than the rounding of the
inputs allows; the error is then measured against that: relative to max(|f|, Σ_i |x_i ∂f/∂x_i|)
(``_sensitivities``), at the points whose plain relative error exceeds ``ILL_CONDITIONED`` ulps.

A reference that loses digits to cancellation at ``DPS`` digits is caught where it matters: at
those points the reference is recomputed at twice the precision until two agree.
"""

from __future__ import annotations

import itertools
import math
import statistics
import time
from dataclasses import dataclass, field

import mpmath
import numpy as np
import sympy as sp

DPS = 50
QUANTILES = (1e-12, 1e-6, 1e-3, 0.1, 0.5, 0.9, 0.999, 1 - 1e-6, 1 - 1e-12)
COMBOS = 8
DTYPES = {"float64": np.float64, "float32": np.float32}
# errors above this many ulps get a reference at higher precision (float64) and are measured
# against the sensitivity of the formula to its inputs (_sensitivities)
ILL_CONDITIONED = 16
MAX_DPS = 400


class AuditFailure(Exception):
    """A formula is less accurate than the family's tolerance; the message says where."""


@dataclass
class Worst:
    """The point where one formula is least accurate in one dtype."""

    error: float
    formula: str
    params: tuple  # (name, value) pairs, the values as audited (rounded to the dtype)
    at: str  # "z = ..." or "u = ..."
    got: float
    ref: float

    def where(self) -> str:
        ps = ", ".join(f"{n} = {_num(v)}" for n, v in self.params)
        return f"{self.formula} at {ps}, {self.at}"


@dataclass
class FormulaErrors:
    errors: dict = field(default_factory=lambda: {k: [] for k in DTYPES})
    worst: dict = field(default_factory=dict)  # dtype -> Worst

    def add(self, dtype: str, w: Worst) -> None:
        self.errors[dtype].append(w.error)
        if dtype not in self.worst or not w.error <= self.worst[dtype].error:
            self.worst[dtype] = w

    def max(self, dtype: str) -> float:
        return max(self.errors[dtype], default=0.0)

    def median(self, dtype: str) -> float:
        e = self.errors[dtype]
        return statistics.median(e) if e else 0.0


@dataclass
class AuditReport:
    family: str
    formulas: dict  # name -> FormulaErrors, in table order
    points: int  # (parameter, quantile) points audited, both dtypes together
    combos: int
    seconds: float
    tolerance: dict = field(default_factory=dict)  # dtype -> max error allowed
    # every point: (dtype, parameter values, z, u, {formula: (got, reference, scale)}), the
    # error of a formula being |got - reference| / scale (tools/accuracy_report.py evaluates
    # the kernels at these points)
    samples: list = field(default_factory=list, repr=False)
    search: list = field(default_factory=list)  # irtgen.search.Choice, where the build searched
    cached: bool = False  # taken from the build's cache (irtgen.build), not measured again

    def worst(self, dtype: str) -> Worst | None:
        ws = [f.worst[dtype] for f in self.formulas.values() if dtype in f.worst]
        return max(ws, key=lambda w: w.error if not math.isnan(w.error) else math.inf, default=None)

    def line(self) -> str:
        """One line: the worst relative error per dtype and where, and what the audit cost."""
        parts = []
        for dt in DTYPES:
            w = self.worst(dt)
            if w is not None:
                parts.append(f"{dt} {_err(w.error)} ({w.where()})")
        text = f"audit: {'; '.join(parts) or 'nothing to audit'}; {self.points} points, " + (
            "cached" if self.cached else f"{self.seconds:.2f} s"
        )
        if self.search:
            text += "; search: " + ", ".join(
                f"{c.formula} {'from the ' + c.form if c.form != 'as derived' else 'as derived'}"
                f" (error/tolerance {_err(c.before)} -> {_err(c.after)}, {c.tried} forms tried)"
                for c in self.search
            )
        return text

    def table(self) -> list[str]:
        """The accuracy table: one row per formula, max / median relative error per dtype."""
        width = max(len(n) for n in self.formulas) if self.formulas else 8
        rows = [
            f"{'formula':<{width}}  {'float64 max / median':<22}  float32 max / median",
        ]
        for name, fe in self.formulas.items():
            cells = [f"{_err(fe.max(dt))} / {_err(fe.median(dt))}" for dt in DTYPES]
            rows.append(f"{name:<{width}}  {cells[0]:<22}  {cells[1]}")
        return rows

    def failures(self) -> list[tuple[str, Worst]]:
        out = []
        for dt, tol in self.tolerance.items():
            for fe in self.formulas.values():
                w = fe.worst.get(dt)
                if w is not None and not w.error <= tol:
                    out.append((dt, w))
        return out

    def check(self) -> None:
        """Raise AuditFailure naming each formula above the tolerance, its worst point."""
        bad = self.failures()
        if bad:
            lines = [
                f"{w.formula} has relative error {_err(w.error)} in {dt} (tolerance "
                f"{_err(self.tolerance[dt])}) at {w.where().split(' at ', 1)[1]}: got "
                f"{_num(w.got)}, mpmath gives {_num(w.ref)}"
                for dt, w in bad
            ]
            tried = sum(c.tried for c in self.search)
            if tried:
                lines.append(f"{tried} alternative forms tried (irtgen.search), none within it")
            raise AuditFailure(f"{self.family}: " + "; ".join(lines))


def _err(e: float) -> str:
    if math.isnan(e) or math.isinf(e):
        return "inf"
    # below 1e-30 the difference is the 50-digit reference's own rounding: the values agree
    return "0" if e < 1e-30 else f"{e:.1e}"


def _num(v) -> str:
    v = float(v)
    return (
        repr(v) if math.isfinite(v) else ("nan" if math.isnan(v) else ("inf" if v > 0 else "-inf"))
    )


def parse_tolerance(value, what: str = "max_error") -> dict:
    """A tolerance as given in a spec (``max_error=``) or on the command line: a number (for
    float64), a pair ``(float64, float32)``, a dict by dtype name, or the text ``"1e-10"`` /
    ``"1e-10,1e-4"``. Returns {dtype: tolerance}."""
    if value is None:
        return {}
    if isinstance(value, str):
        parts = [p.strip() for p in value.split(",")]
        if not 1 <= len(parts) <= 2:
            raise ValueError(f"{what} takes F64 or F64,F32, got {value!r}")
        try:
            value = tuple(float(p) for p in parts)
        except ValueError:
            raise ValueError(f"{what} takes numbers, got {value!r}") from None
    if isinstance(value, int | float):
        value = (value,)
    if isinstance(value, tuple | list):
        if not 1 <= len(value) <= 2:
            raise ValueError(
                f"max_error takes one or two numbers (float64, float32), got {value!r}"
            )
        value = dict(zip(DTYPES, value, strict=False))
    if not isinstance(value, dict) or set(value) - set(DTYPES):
        raise ValueError(
            f"{what} must be a number, a (float64, float32) pair or a dict with keys "
            f"'float64'/'float32', got {value!r}"
        )
    out = {}
    for k, v in value.items():
        if isinstance(v, bool) or not isinstance(v, int | float) or not v > 0:
            raise ValueError(f"{what}[{k!r}] must be a positive number, got {v!r}")
        out[k] = float(v)
    return out


# -- the reference ---------------------------------------------------------------------------


class _Reference:
    """mpmath forms of the derived formulas of one derivation."""

    def __init__(self, d):
        from irtgen.diagnostics import _namespace

        ns = [_namespace(), "mpmath"]
        self.z = d.z
        self.params = list(d.params)
        args = [d.z, *self.params]
        self.outputs = [d.cdf, d.sf, d.log_pdf, *d.implicit, *d.dlog_pdf]
        self.all = sp.lambdify(args, self.outputs, modules=ns, cse=True)
        self.cdf = sp.lambdify(args, d.cdf, modules=ns)
        self.sf = sp.lambdify(args, d.sf, modules=ns)
        self.pdf = sp.lambdify(args, d.pdf, modules=ns)
        self.lo = sp.lambdify(self.params, d.support_lo, modules=ns)
        self.hi = sp.lambdify(self.params, d.support_hi, modules=ns)

    def values(self, z, theta, dps: int = DPS, exact: bool = False) -> list | None:
        """The formulas at (z, theta): floats, or with ``exact`` mpf values taken as they are."""
        conv = (lambda v: v) if exact else (lambda v: mpmath.mpf(float(v)))
        with mpmath.workdps(dps):
            try:
                out = self.all(conv(z), *(conv(t) for t in theta))
            except (ArithmeticError, ValueError, TypeError, mpmath.libmp.NoConvergence):
                return None
            return [_real(v) for v in out]

    def density(self, z, theta):
        with mpmath.workdps(DPS):
            try:
                return _real(self.pdf(mpmath.mpf(float(z)), *(mpmath.mpf(float(t)) for t in theta)))
            except (ArithmeticError, ValueError, TypeError, mpmath.libmp.NoConvergence):
                return None

    def support(self, theta):
        with mpmath.workdps(DPS):
            try:
                lo = _real(self.lo(*(mpmath.mpf(float(t)) for t in theta)))
                hi = _real(self.hi(*(mpmath.mpf(float(t)) for t in theta)))
            except (ArithmeticError, ValueError, TypeError):
                return None
        return None if lo is None or hi is None else (lo, hi)

    def invert(self, u, theta, ends, guess=None):
        """z with F(z) = u to DPS digits (u an exact binary value in (0, 1)), or None: Newton
        steps on log F(z) = log u (log S(z) = log(1 - u) above the median) from ``guess`` (the
        generated icdf's value), checked to have converged; else a bracketing search."""
        with mpmath.workdps(DPS + 10):
            u = mpmath.mpf(float(u))
            th = [mpmath.mpf(float(t)) for t in theta]
            lower = u <= 0.5
            fn, target = (self.cdf, mpmath.log(u)) if lower else (self.sf, mpmath.log(1 - u))
            sign = 1 if lower else -1  # log F rises with z, log S falls

            def g(x):
                try:
                    v = _real(fn(x, *th))
                except (ArithmeticError, ValueError, TypeError, mpmath.libmp.NoConvergence):
                    return None
                if v is None or v < 0:
                    return None
                return sign * ((mpmath.log(v) if v > 0 else -mpmath.inf) - target), v

            lo, hi = ends
            if guess is not None and math.isfinite(guess) and lo < guess < hi:
                z = self._newton(g, th, mpmath.mpf(guess), lo, hi)
                if z is not None:
                    return z
            # a bracketing search to float64 precision, then Newton steps from there
            g0 = lambda x: (g(x) or (None,))[0]  # noqa: E731
            z = self._bisect(g0, lo, hi, digits=17)
            if z is None:
                return None
            return self._newton(g, th, z, lo, hi) or self._bisect(g0, lo, hi, DPS + 2)

    def _newton(self, g, th, z, lo, hi):
        tol = mpmath.mpf(10) ** (-DPS - 2)
        for _ in range(12):
            gv = g(z)
            if gv is None or not mpmath.isfinite(gv[0]) or gv[1] == 0:
                return None
            val, f = gv
            try:
                q = _real(self.pdf(z, *th))
            except (ArithmeticError, ValueError, TypeError, mpmath.libmp.NoConvergence):
                return None
            if q is None or not q > 0:
                return None
            step = val * f / q  # g / g' with g' = q / F (or q / S)
            new = z - step
            if not lo < new < hi:
                return None
            if abs(step) <= tol * max(abs(new), mpmath.mpf(10) ** -300):
                return new
            z = new
        return None

    def _bisect(self, g, lo, hi, digits: int):
        a, b = _bracket(g, lo, hi)
        if a is None:
            return None
        ga, gb = g(a), g(b)
        if ga is None or gb is None:
            return None
        # Illinois (regula falsi with the value of an end kept twice in a row halved) where
        # _split bisects arithmetically and the values are finite; _split's point otherwise
        wa, wb = ga, gb  # the values the secant uses
        last = 0
        for _ in range(2000):
            if b - a <= mpmath.mpf(10) ** (-digits) * max(abs(a), abs(b), mpmath.mpf(1e-300)):
                break
            m = _split(a, b, ga, gb)
            if m == (a + b) / 2 and mpmath.isfinite(wa) and mpmath.isfinite(wb) and wa != wb:
                x = (a * wb - b * wa) / (wb - wa)
                if a < x < b:
                    m = x
            gm = g(m)
            if gm is None:
                return None
            if gm == 0:
                return m
            if (gm < 0) == (ga < 0):
                a, ga, wa = m, gm, gm
                if last == -1:
                    wb = wb / 2
                last = -1
            else:
                b, gb, wb = m, gm, gm
                if last == 1:
                    wa = wa / 2
                last = 1
        return (a + b) / 2


def _split(a, b, ga, gb):
    """The midpoint of (a, b), geometric where the bracket spans orders of magnitude."""
    if a > 0 and b > 1e3 * a:
        return mpmath.sqrt(a * b)
    if b < 0 and a < 1e3 * b:
        return -mpmath.sqrt(a * b)
    return (a + b) / 2


def _bracket(g, lo, hi):
    """(a, b) inside (lo, hi) with g(a) < 0 < g(b) (g increasing), or (None, None)."""
    fin_lo, fin_hi = mpmath.isfinite(lo), mpmath.isfinite(hi)
    if fin_lo and fin_hi:
        w = hi - lo
        a, b = lo + w * mpmath.mpf(2) ** -200, hi - w * mpmath.mpf(2) ** -200
        cands_a = [lo + w * mpmath.mpf(10) ** -k for k in (1, 3, 10, 30, 60)]
        cands_b = [hi - w * mpmath.mpf(10) ** -k for k in (1, 3, 10, 30, 60)]
    else:
        x0 = lo + 1 if fin_lo else (hi - 1 if fin_hi else mpmath.mpf(0))
        near = [mpmath.mpf(10) ** -k for k in (1, 3, 10, 30, 100, 300)]
        far = [mpmath.mpf(10) ** k for k in (0, 1, 2, 4, 8, 16, 32, 64, 128, 308)]
        cands_a = [lo + s for s in near] if fin_lo else [x0 - s for s in far]
        cands_b = [hi - s for s in near] if fin_hi else [x0 + s for s in far]
        a = b = x0
    a = _first(g, [a, *cands_a] if fin_lo and fin_hi else cands_a, negative=True)
    b = _first(g, [b, *cands_b] if fin_lo and fin_hi else cands_b, negative=False)
    if a is None or b is None or not a < b:
        return None, None
    return a, b


def _first(g, cands, negative: bool):
    for x in cands:
        v = g(x)
        if v is not None and (v < 0 if negative else v > 0):
            return x
    return None


def _real(v):
    if isinstance(v, mpmath.mpc):
        if v.imag != 0 and abs(v.imag) > mpmath.mpf(10) ** (-DPS + 5) * abs(v.real):
            return None
        v = v.real
    try:
        v = mpmath.mpf(v)
    except (TypeError, ValueError):
        return None
    return None if mpmath.isnan(v) else v


# -- the generated code ----------------------------------------------------------------------


class _Generated:
    """A generated module's formulas, bound for the Python interpreter."""

    def __init__(self, module):
        from irtgen.compilers import bind

        fam = next(v for v in vars(module).values() if type(v).__name__ == "Family")
        self.family = fam
        self.fn = {
            op: bind.python_function(fam.fn(op))
            for op in ("cdf", "sf", "log_prob", "icdf", "implicit_grad", "log_prob_grad")
        }

    def __call__(self, op: str, dtype: str, *args):
        t = DTYPES[dtype]
        if dtype == "float32" and self.family.wide(op):
            out = self.fn[op](*(np.float64(t(a)) for a in args))
            return tuple(t(o) for o in out) if isinstance(out, tuple) else t(out)
        return self.fn[op](*(t(a) for a in args))


def _scale(ref, dtype: str, floor) -> object:
    """What an error is relative to: max(|ref|, the dtype's smallest normal number, floor)."""
    if ref is None or not mpmath.isfinite(ref):
        return None
    return max(abs(ref), mpmath.mpf(float(np.finfo(DTYPES[dtype]).tiny)), floor)


def error(got, ref, dtype: str, scale) -> float:
    """|got - ref| / scale; 0 where there is no reference; for a reference that is infinite or
    beyond the dtype's range, 0 if got is the infinity of its sign, else inf."""
    got = float(got)
    if ref is None:
        return 0.0  # no reference here (not a real number at DPS digits): nothing to judge
    if not mpmath.isfinite(ref) or abs(ref) > np.finfo(DTYPES[dtype]).max:
        sign = 1 if ref > 0 else -1
        return 0.0 if got == sign * math.inf else math.inf
    if not math.isfinite(got):
        return math.inf
    return float(abs(mpmath.mpf(got) - ref) / scale)


def _error(got, ref, dtype: str, floor: float = 0.0) -> float:
    return error(got, ref, dtype, _scale(ref, dtype, floor))


def _rounded_inside(z, lo, hi, t):
    """z rounded to dtype t, moved inwards to lie strictly inside (lo, hi); None if none is."""
    v = t(float(z))
    lo_t, hi_t = float(lo), float(hi)
    for _ in range(4):
        if lo_t < float(v) < hi_t:
            return v
        v = np.nextafter(v, t(hi_t if float(v) <= lo_t else lo_t))
    return None


def audit(derivation, module, tolerance: dict | None = None) -> AuditReport:
    """Audit the formulas of ``module`` (the generated module of ``derivation``)."""
    from irtgen.diagnostics import MAX_COMBOS, _thin, constraint_points

    t0 = time.perf_counter()
    d = derivation
    ref = _Reference(d)
    gen = _Generated(module)
    names = [p.name for p in d.params]
    formulas = {
        n: FormulaErrors()
        for n in (
            "cdf",
            "sf",
            "log_prob",
            "icdf",
            *(f"dz/d{p}" for p in names),
            *(f"dlogq/d{p}" for p in names),
        )
    }
    constraints = [d.spec.constraints[p] for p in d.spec.params]
    columns = [constraint_points(c.interval) for c in constraints]
    combos = _thin(_thin(list(itertools.product(*columns)), MAX_COMBOS), COMBOS)
    points = 0
    samples: list = []
    with np.errstate(all="ignore"):
        for dtype, t in DTYPES.items():
            for combo in combos:
                theta = tuple(t(v) for v in combo)
                ends = ref.support(theta)
                if ends is None:
                    continue
                for q in QUANTILES:
                    u = t(q)
                    if not 0 < u < 1:
                        u = np.nextafter(t(1), t(0))
                    zi = gen("icdf", dtype, u, *theta)
                    zstar = ref.invert(u, theta, ends, float(zi))
                    if zstar is None:
                        continue
                    z = _rounded_inside(zstar, *ends, t)
                    if z is None:
                        continue
                    points += 1
                    _audit_point(ref, gen, formulas, samples, names, dtype, theta, u, zi, zstar, z)
    report = AuditReport(
        family=d.name,
        formulas=formulas,
        points=points,
        combos=len(combos),
        seconds=time.perf_counter() - t0,
        tolerance=dict(tolerance or {}),
        samples=samples,
    )
    return report


def _audit_point(ref, gen, formulas, samples, names, dtype, theta, u, zi, zstar, z) -> None:
    P = len(names)
    pairs = tuple(zip(names, (float(v) for v in theta), strict=True))
    at_z = f"z = {_num(z)}"
    values = ref.values(z, theta)
    if values is None:
        return
    got = [
        gen("cdf", dtype, z, *theta),
        gen("sf", dtype, z, *theta),
        gen("log_prob", dtype, z, *theta),
        *gen("implicit_grad", dtype, z, *theta)[1:],
        *gen("log_prob_grad", dtype, z, *theta)[1:],
    ]
    labels = [
        "cdf",
        "sf",
        "log_prob",
        *(f"dz/d{p}" for p in names),
        *(f"dlogq/d{p}" for p in names),
    ]
    floors = [0.0, 0.0, 1.0] + [0.0] * (2 * P)
    labels.append("icdf")
    got.append(zi)
    values = [*values, zstar]
    floors.append(0.0)
    errs = [_error(g, r, dtype, f) for g, r, f in zip(got, values, floors, strict=True)]
    eps = float(np.finfo(DTYPES[dtype]).eps)
    if max(errs) > ILL_CONDITIONED * eps:
        if dtype == "float64":
            settled = _settled(ref, z, theta, values[:-1])
            if settled is None:
                return
            values = [*settled, zstar]
        sens = _sensitivities(ref, z, theta, values, u)
        floors = [max(f, s) for f, s in zip(floors, sens, strict=True)]
        errs = [_error(g, r, dtype, f) for g, r, f in zip(got, values, floors, strict=True)]
    record = {}
    for label, g, r, e, f in zip(labels, got, values, errs, floors, strict=True):
        at = f"u = {_num(u)}" if label == "icdf" else at_z
        formulas[label].add(dtype, Worst(e, label, pairs, at, float(g), float(r or 0)))
        record[label] = (float(g), r, _scale(r, dtype, f))
    samples.append((dtype, tuple(float(t) for t in theta), float(z), float(u), record))


def _sensitivities(ref, z, theta, values, u) -> list:
    """For each formula f, sum_i |x_i * df/dx_i| over its inputs x_i (the value z, or u for
    icdf, and the parameters): how much f moves when each input moves by its own relative
    amount. An error no larger than eps times this is the rounding of the inputs (z - loc for z
    next to loc, log z next to 1), not the formula's: the audit measures errors relative to
    max(|f|, this sum)."""
    with mpmath.workdps(DPS):
        return _sensitivities_at(ref, z, theta, values, u)


def _sensitivities_at(ref, z, theta, values, u) -> list:
    x = [mpmath.mpf(float(z)), *(mpmath.mpf(float(t)) for t in theta)]
    n_formulas = len(values) - 1
    total = [mpmath.mpf(0)] * n_formulas
    h = mpmath.mpf(10) ** -20
    for i, xi in enumerate(x):
        if xi == 0:
            continue
        step = h * abs(xi)
        up = list(x)
        dn = list(x)
        up[i] += step
        dn[i] -= step
        vu = ref.values(up[0], up[1:], exact=True)
        vd = ref.values(dn[0], dn[1:], exact=True)
        if vu is None or vd is None:
            continue
        for k in range(n_formulas):
            if vu[k] is None or vd[k] is None or not mpmath.isfinite(vu[k] - vd[k]):
                continue
            total[k] += abs(xi * (vu[k] - vd[k]) / (2 * step))
    # icdf: dz/du = 1/q and dz/dθ = the implicit gradients, at the point itself
    P = len(theta)
    q = ref.density(z, theta)
    s_icdf = mpmath.mpf(0)
    if q is not None and q > 0:
        s_icdf += abs(mpmath.mpf(float(u)) / q)
    for t, g in zip(theta, values[3 : 3 + P], strict=True):
        if g is not None and mpmath.isfinite(g):
            s_icdf += abs(mpmath.mpf(float(t)) * g)
    return [*total, s_icdf]


def _settled(ref, z, theta, values):
    """The reference at increasing precision until two successive ones agree to DPS - 10
    digits (None if they never do below MAX_DPS)."""
    dps = DPS
    prev = values
    while dps < MAX_DPS:
        dps *= 2
        new = ref.values(z, theta, dps)
        if new is None:
            return None
        if all(_agree(a, b) for a, b in zip(prev, new, strict=True)):
            return new
        prev = new
    return None


def _agree(a, b) -> bool:
    if a is None or b is None:
        return a is b
    if not (mpmath.isfinite(a) and mpmath.isfinite(b)):
        return a == b
    return abs(a - b) <= mpmath.mpf(10) ** (-(DPS - 10)) * max(abs(a), abs(b))
