"""The named rewrite rules (irtgen.rewrite.RULES), one table row per case: the input as a string,
the form ``stabilize`` gives (compared as SymPy expressions), the rules that fire; the rewritten
form equals the input at 30 digits where the input is well-conditioned, and at a point where the
input cancels, overflows or underflows in float64 the rewritten form evaluated in float64
(irtgen's scalar functions, numba-compiled) is accurate against the input at 50 digits."""

from __future__ import annotations

import math
import re
import warnings

import numpy as np
import pytest
import sympy as sp

import irtgen.functions as F
from irtgen.codegen.functions import FUNCTIONS
from irtgen.rewrite import RULE_NAMES, RULES, stabilize
from irtgen.scalar import beta, elementary, gamma, student_t

x, y, z, lo, m = sp.symbols("x y z lo m", real=True)
w, a, b, s = sp.symbols("w a b s", positive=True)
NAMES = {
    **{c.__name__: c for c in F.IRTGEN_FUNCTIONS},
    "expm1": F.expm1,
    "log1p": F.log1p,
    **{str(v): v for v in (x, y, z, lo, m, w, a, b, s)},
}
F_WINDOW = "exp(log_ndtr_diff(y, w) - log_ndtr_diff(y, w + a))"  # P([y, y+w] | [y, y+w+a])

# (input, expected, rules that fire, a well-conditioned point, a point where the input fails in
# float64 (None: no such point), relative tolerance of the float64 rewritten form there)
CASES = [
    (
        "erf(x) - erf(y)",
        "2*ndtr_diff(sqrt(2)*y, sqrt(2)*(x - y))",
        {"ndtr_difference"},
        {x: 0.3, y: -0.4},
        {x: 4.6, y: 4.5},
        1e-13,
    ),
    (
        "erf(x) + erf(y)",
        "2*ndtr_diff(-sqrt(2)*y, sqrt(2)*(x + y))",
        {"ndtr_difference"},
        {x: 0.3, y: 0.4},
        {x: -4.5, y: 4.6},
        1e-13,
    ),
    (
        "erf(y + w) - erf(y)",
        "2*exp(log_ndtr_diff(sqrt(2)*y, sqrt(2)*w))",
        {"ndtr_difference"},
        {y: -0.2, w: 0.9},
        {y: 4.5, w: 0.1},
        1e-13,
    ),
    (
        "erf(y) - erf(y + w)",  # d of known negative sign
        "-2*exp(log_ndtr_diff(sqrt(2)*y, sqrt(2)*w))",
        {"ndtr_difference"},
        {y: -0.2, w: 0.9},
        {y: 4.5, w: 0.1},
        1e-13,
    ),
    (
        "erfc(y) - erfc(y + w)",
        "2*exp(log_ndtr_diff(sqrt(2)*y, sqrt(2)*w))",
        {"ndtr_difference"},
        {y: -0.2, w: 0.9},
        {y: -4.5, w: 0.1},
        1e-13,
    ),
    (
        "ndtr(x) - ndtr(y)",
        "ndtr_diff(y, x - y)",
        {"ndtr_difference"},
        {x: 1.3, y: -0.4},
        {x: 8.5, y: 8.0},
        1e-13,
    ),
    (  # z - lo >= 0 is known (the support of a truncated normal): the log form
        "(erf((z - m)/(sqrt(2)*s)) - erf((lo - m)/(sqrt(2)*s)))/2",
        "exp(log_ndtr_diff((lo - m)/s, (z - lo)/s))",
        {"ndtr_difference"},
        {z: 0.5, lo: -0.3, m: 0.1, s: 1.5},
        {z: 5.6, lo: 5.5, m: 0.0, s: 1.0},
        1e-13,
    ),
    (
        f"1 - {F_WINDOW}",
        "exp(log_ndtr_diff(y + w, a) - log_ndtr_diff(y, w + a))",
        {"window_survival", "exp_product"},
        {y: -0.5, w: 1.0, a: 0.7},
        {y: 0.0, w: 10.0, a: 1.0},
        1e-13,
    ),
    (
        f"log1p(-{F_WINDOW})",
        "log_ndtr_diff(y + w, a) - log_ndtr_diff(y, w + a)",
        {"log_complement", "exp_product"},
        {y: -0.5, w: 1.0, a: 0.7},
        {y: 0.0, w: 10.0, a: 1.0},
        1e-13,
    ),
    (
        f"exp(x) - exp(x)*{F_WINDOW}",
        "exp(x + log_ndtr_diff(y + w, a) - log_ndtr_diff(y, w + a))",
        {"window_difference", "exp_product"},
        {x: 0.3, y: -0.5, w: 1.0, a: 0.7},
        {x: 0.0, y: 0.0, w: 10.0, a: 1.0},
        1e-13,
    ),
    (
        "exp(x**2)*exp(-y**2)",
        "exp((x - y)*(x + y))",
        {"exp_product"},
        {x: 0.3, y: 0.4},
        {x: 30.0, y: 30.001},
        1e-12,
    ),
    (
        "exp((2*s**2*log_ndtr_diff(y, w) + x**2 - y**2)/(2*s**2))",
        "exp(log_ndtr_diff(y, w) + (x - y)*(x + y)/(2*s**2))",
        {"exp_exponent"},
        {x: 0.3, y: 0.4, w: 1.0, s: 2.0},
        None,
        None,
    ),
    (
        "exp(x)*(exp(y) + 2*exp(-x))",
        "exp(x + y) + 2",
        {"exp_distribute", "exp_product"},
        {x: 0.3, y: 0.4},
        {x: 800.0, y: -790.0},
        1e-14,
    ),
    (
        "exp(x**2/2) - exp(x**2/2 + w)",
        "-exp_expm1(x**2/2, w)",
        {"exp_difference", "exp_times_expm1"},
        {x: 0.3, w: 0.4},
        {x: 1.0, w: 1e-10},
        1e-14,
    ),
    (
        "y*exp(x)*expm1(-x)",
        "-y*expm1(x)",
        {"exp_expm1"},
        {x: 0.3, y: 0.4},
        {x: -800.0, y: 0.5},  # 0*inf as written
        1e-15,
    ),
    (
        "z*exp(x)*ndtr(y) - lo*exp(x)*ndtr(y)",
        "(z - lo)*exp(x)*ndtr(y)",
        {"collect"},
        {x: 0.3, y: 0.4, z: 1.5, lo: 0.2},
        {x: 0.3, y: 0.4, z: 1e8 + 1.0, lo: 1e8 - 1.0},
        1e-15,
    ),
    (  # x - a e^((x - a)(x + a)/2) for x = (z - m)/s, a = (lo - m)/s: 0 at z = lo
        "(z - m)/s - (lo - m)*exp((z - lo)*(z + lo - 2*m)/(2*s**2))/s",
        "(z - lo)/s - (lo - m)*expm1((z - lo)*(z + lo - 2*m)/(2*s**2))/s",
        {"collect"},
        {z: 0.5, lo: -0.3, m: 0.1, s: 1.5},
        {z: 5.0 + 1e-9, lo: 5.0, m: 0.0, s: 1.0},
        1e-14,
    ),
    (
        "w - w*exp(x) + y",
        "-w*expm1(x) + y",
        {"collect"},
        {x: 0.3, y: 0.4, w: 2.0},
        {x: 1e-12, y: 0.0, w: 2.0},
        1e-15,
    ),
    (
        "log1p(-gammainc(a, x))",
        "log(gammaincc(a, x))",
        {"log_complement"},
        {a: 1.5, x: 0.4},
        None,  # the incomplete gamma's float64 form is tested with its own module
        None,
    ),
    (
        "exp(x)*expm1(y)",
        "exp_expm1(x, y)",
        {"exp_times_expm1"},
        {x: 0.3, y: 0.4},
        {x: -800.0, y: 790.0},  # 0*inf as written
        1e-14,
    ),
    (
        "1/2 + atan(x)/pi",
        "atan_cdf(x)",
        {"atan_cdf"},
        {x: 0.3},
        {x: -1e9},  # pi/2 + atan(x) keeps 7 of 16 digits
        1e-14,
    ),
    (
        "1/2 - atan(x)/pi",
        "atan_cdf(-x)",
        {"atan_cdf"},
        {x: 0.3},
        {x: 1e9},
        1e-14,
    ),
    (
        "tan(pi*(x - 1/2))",
        "-cotpi(x)",
        {"tan_half_pi"},
        {x: 0.3},
        {x: 1e-12},  # pi*(x - 1/2) rounds x's digits away
        1e-14,
    ),
    (
        "erfinv(2*x - 1)",
        "sqrt(2)*ndtri(x)/2",
        {"erfinv"},
        {x: 0.3},
        {x: 1e-20},  # 2x - 1 rounds to -1
        1e-14,
    ),
    (
        "erfinv(x)",  # not of the form 2u - 1: erfinv keeps small x itself
        "erfinv(x)",
        set(),
        {x: 0.3},
        None,
        None,
    ),
    (
        "log(ndtr(x))",
        "log_ndtr(x)",
        {"log_ndtr"},
        {x: 0.3},
        {x: -40.0},
        1e-14,
    ),
    (
        "log(exp(x) + 2*exp(y))",
        "logaddexp(y + log(2), x)",
        {"logsumexp"},
        {x: 0.3, y: 0.4},
        {x: 1000.0, y: 999.0},
        1e-15,
    ),
    (
        "gammainc(a, x) - gammainc(a, y)",
        "Piecewise((gammainc(a, x) - gammainc(a, y), gammainc(a, y) <= 1/2),"
        " (gammaincc(a, y) - gammaincc(a, x), True))",
        {"cdf_difference"},
        {a: 1.5, x: 0.7, y: 0.3},
        {a: 2.0, x: 60.0, y: 50.0},
        1e-13,
    ),
    (
        "student_t_cdf(a, x) - student_t_cdf(a, y)",
        "Piecewise((student_t_cdf(a, x) - student_t_cdf(a, y), student_t_cdf(a, y) <= 1/2),"
        " (student_t_cdf(a, -y) - student_t_cdf(a, -x), True))",
        {"cdf_difference"},
        {a: 3.0, x: 0.7, y: -0.3},
        {a: 3.0, x: 1e5, y: 1e4},
        1e-13,
    ),
    (
        "sigmoid(x) - sigmoid(y)",
        "Piecewise((sigmoid(x) - sigmoid(y), sigmoid(y) <= 1/2),"
        " (sigmoid(-y) - sigmoid(-x), True))",
        {"cdf_difference"},
        {x: 0.7, y: -0.3},
        {x: 40.0, y: 39.0},
        1e-14,
    ),
    (
        "(w*expm1(a*b) - b*expm1(a*w))/(a*expm1(a*w))",  # a truncated exponential's dz/drate
        "(w*exp_expm1(-a*(w - b), -a*b)/expm1(-a*w) - b)/a",
        {"expm1_ratio", "exp_times_expm1"},
        {a: 1.5, w: 2.0, b: 0.5},
        {a: 30.0, w: 30.0, b: 0.5},
        1e-14,
    ),
    (
        "1 - expm1(-a*b)/expm1(-a*w)",  # its survival function next to the upper end w
        "exp_expm1(-a*b, -a*(w - b))/expm1(-a*w)",
        {"expm1_complement", "exp_times_expm1"},
        {a: 1.5, w: 2.0, b: 0.5},
        {a: 1.0, w: 30.0, b: 29.999999},
        1e-14,
    ),
    (
        "log(expm1(a*w))",
        "a*w + log1mexp(-a*w)",
        {"log1mexp"},
        {a: 1.5, w: 2.0},
        {a: 30.0, w: 30.0},
        1e-15,
    ),
    (
        "w*exp(a*w)/expm1(a*w)",
        "-w/expm1(-a*w)",
        {"exp_over_expm1"},
        {a: 1.5, w: 2.0},
        {a: 30.0, w: 30.0},
        1e-15,
    ),
    (
        "log(1/(1 - w))",
        "-log1p(-w)",
        {"log_powers", "log1p"},
        {w: 0.3},
        {w: 1e-12},
        1e-15,
    ),
    (
        "gamma(a)*gamma(b)/gamma(a + b)",
        "exp(betaln(a, b))",
        {"gamma_ratio"},
        {a: 1.5, b: 2.5},
        {a: 200.0, b: 0.5},
        1e-13,
    ),
    (
        "gamma(a + 2)/gamma(a)",
        "a*(a + 1)",
        {"gamma_ratio"},
        {a: 1.5},
        {a: 200.0},
        1e-15,
    ),
]


def _parse(text: str) -> sp.Expr:
    return sp.sympify(text, locals=NAMES)


_MODULES = {"el": elementary, "st": student_t, "ga": gamma, "be": beta}


def _float64_namespace() -> dict:
    """Each function as the generated code computes it in float64: irtgen's scalar functions,
    IEEE exp/log/lgamma with overflow to inf."""

    def guard(fn):
        def call(*args):
            try:
                return fn(*(float(v) for v in args))
            except OverflowError:
                return math.inf
            except ValueError:
                return math.nan

        return call

    ns = {
        "exp": lambda v: float(np.exp(np.float64(v))),
        "log": lambda v: float(np.log(np.float64(v))),
        "erf": guard(math.erf),
        "erfc": guard(math.erfc),
        "gamma": guard(math.gamma),
        "loggamma": guard(math.lgamma),
    }
    for cls, impl in FUNCTIONS.items():
        found = re.fullmatch(r"(el|st|ga|be)\.(\w+)\(\{0\}(, \{\d\})*\)", impl.scalar or "")
        if found:
            ns[cls.__name__] = guard(getattr(_MODULES[found[1]], found[2]))
    return ns


def _float64(expr: sp.Expr, point: dict) -> float:
    fn = sp.lambdify(list(point), expr, modules=[_float64_namespace(), "math"])
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return float(fn(*point.values()))
        except (ZeroDivisionError, OverflowError, ValueError):
            return math.nan


def _relative(got: float, ref) -> float:
    if not math.isfinite(got):
        return math.inf
    return abs(got - float(ref)) / abs(float(ref))


@pytest.mark.parametrize(("text", "expected", "rules", "good", "bad", "tol"), CASES)
def test_rule(text, expected, rules, good, bad, tol):
    expr = _parse(text)
    fired: set[str] = set()
    out = stabilize(expr, fired, nonnegative=[z - lo])
    assert out == _parse(expected), out
    assert fired == rules
    assert stabilize(out, nonnegative=[z - lo]) == out  # a fixed point
    # equal where the input is well-conditioned
    ref = expr.evalf(30, subs=good)
    assert abs(out.evalf(30, subs=good) - ref) <= 1e-25 * abs(ref)
    if bad is None:
        return
    # where the input fails in float64, the rewritten form does not
    exact = expr.evalf(50, subs={k: sp.Float(v, 50) for k, v in bad.items()})
    assert _relative(_float64(expr, bad), exact) > 1e3 * tol, "the input does not fail here"
    assert _relative(_float64(out, bad), exact) <= tol


def test_unknown_sign_keeps_the_signed_difference():
    """Φ(x) - Φ(y) with x - y of unknown sign: ndtr_diff, negative where x < y."""
    out = stabilize(_parse("erf(x) - erf(y)"))
    assert out.has(F.ndtr_diff) and not out.has(F.log_ndtr_diff)
    for px, py in ((0.3, -0.4), (-0.4, 0.3), (5.0, 4.9), (4.9, 5.0)):
        want = (sp.erf(sp.Float(px, 50)) - sp.erf(sp.Float(py, 50))).evalf(50)
        assert _relative(_float64(out, {x: px, y: py}), want) < 1e-13


def test_rules_are_named_documented_and_reported():
    assert len(set(RULE_NAMES)) == len(RULES)
    for rule in RULES:
        assert re.fullmatch(r"[a-z0-9_]+", rule.name) and rule.doc and "\n" not in rule.doc
    fired: set[str] = set()
    stabilize(sp.log(1 - sp.exp(x)), fired)
    assert fired == {"one_minus_exp", "log1mexp"}
    only: set[str] = set()  # a subset of the rules, by name
    assert stabilize(sp.log(1 - sp.exp(x)), only, rules=["log1p"]) == F.log1p(-sp.exp(x))
    assert only == {"log1p"}


def test_log_ndtr_diff_against_mpmath():
    """The scalar log_ndtr_diff in each of its regimes: narrow windows (quadrature) in the
    centre and 40 sd out, either tail, straddling 0, wide and empty windows."""
    f = student_t.log_ndtr_diff
    for y0, d in [
        (-0.3, 0.5),
        (0.2, 1e-9),
        (-40.0, 0.04),
        (39.0, 0.03),
        (-6.0, 1.0),
        (5.0, 1.0),
        (5.5, 0.1),
        (-1.0, 2.0),
        (-8.0, 16.0),
        (3.0, 30.0),
        (-30.0, 60.0),
    ]:
        want = F.log_ndtr_diff(sp.Float(y0, 50), sp.Float(d, 50)).evalf(40)
        got = f(y0, d)
        assert abs(got - float(want)) <= 4e-16 * max(1.0, abs(float(want))), (y0, d, got)
    assert f(1.0, 0.0) == -math.inf
    assert f(-2.0, math.inf) == pytest.approx(math.log(float(sp.erfc(-sp.sqrt(2)).evalf()) / 2))


def test_logaddexp_edges():
    f = elementary.logaddexp
    assert f(1000.0, 1000.0) == pytest.approx(1000.0 + math.log(2), rel=1e-16)
    assert f(-math.inf, -math.inf) == -math.inf
    assert f(math.inf, math.inf) == math.inf
    assert f(-math.inf, 2.0) == 2.0
