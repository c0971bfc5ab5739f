"""Symbolic derivation: exact forms of the implicit gradients, numeric consistency of every derived
quantity for every built-in spec (30-digit evaluation), kinks, opaque functions, and the
stabilizing rewrites."""

from __future__ import annotations

import functools
from pathlib import Path

import mpmath
import pytest
import sympy as sp
from sympy.codegen.cfunctions import expm1, log1p

import irtgen
from irtgen.build import load_spec_file
from irtgen.derive import derive
from irtgen.functions import (
    IRTGEN_FUNCTIONS,
    log1mexp,
    log_ratio,
    ndtr,
    ndtri,
    sigmoid,
    softplus,
)
from irtgen.rewrite import stabilize

RTOL = mpmath.mpf("1e-12")
DPS = 30

SPEC_DIR = Path(irtgen.__file__).resolve().parent / "specs"
SPEC_FILES = sorted(p for p in SPEC_DIR.glob("*.py") if p.name != "__init__.py")


@functools.cache
def builtin_specs() -> dict:
    specs = {}
    for path in SPEC_FILES:
        for d in load_spec_file(path):
            specs[d.name] = d
    return specs


@functools.cache
def derived(name: str):
    return derive(builtin_specs()[name])


def by_name(d, name: str) -> sp.Symbol:
    if name == d.z.name:
        return d.z
    (p,) = [p for p in d.params if p.name == name]
    return p


# -- numeric helpers ---------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _mp_precision():
    """Compare in 40-digit arithmetic (mpmath's default context has 15 digits)."""
    with mpmath.workdps(DPS + 10):
        yield


MP_MODULES = [
    {
        "log1p": mpmath.log1p,
        "expm1": mpmath.expm1,
        **{f.__name__: f._mp for f in IRTGEN_FUNCTIONS},
    },
    "mpmath",
]


def num(expr: sp.Basic, subs: dict) -> mpmath.mpf:
    """30-digit value of expr at subs (exact rationals), as an mpmath number."""
    value = sp.N(sp.sympify(expr).subs(subs), DPS)
    assert value.is_number, f"{expr} did not evaluate at {subs}: {value}"
    assert value.is_real and value.is_finite, f"{expr} at {subs} = {value}"
    return mpmath.mpf(value)


def close(a, b, rtol=RTOL, atol=0) -> bool:
    """Relative error at most rtol; atol only where a value is exactly 0 in theory."""
    return abs(a - b) <= rtol * abs(b) + atol


def assert_close(a, b, what: str, rtol=RTOL, atol=0):
    assert close(a, b, rtol, atol), f"{what}: {mpmath.nstr(a, 20)} != {mpmath.nstr(b, 20)}"


def numeric_derivative(expr: sp.Basic, wrt: sp.Symbol, subs: dict, direction: int = 0):
    """d expr / d wrt at subs by mpmath finite differences (extra precision)."""
    others = sorted((s for s in subs if s != wrt), key=str)
    f = sp.lambdify([wrt, *others], expr, modules=MP_MODULES)
    with mpmath.workdps(DPS + 20):
        args = [mpmath.mpf(sp.N(subs[s], DPS + 20)) for s in others]
        x0 = mpmath.mpf(sp.N(subs[wrt], DPS + 20))
        return +mpmath.diff(lambda x: f(x, *args), x0, direction=direction)


# -- exact implicit gradients -------------------------------------------------------------------


def test_normal_implicit_gradient_is_exact():
    d = derived("Normal")
    z, loc, scale = d.z, by_name(d, "loc"), by_name(d, "scale")
    g_loc, g_scale = d.implicit
    assert g_loc == 1
    assert g_loc is sp.S.One
    assert sp.simplify(g_loc - 1) == 0
    assert sp.simplify(g_scale - (z - loc) / scale) == 0
    # simplified: no erf/exp/pi left over from the uncancelled quotient
    assert not g_scale.has(sp.exp, sp.erf, ndtr, sp.pi)


def test_exponential_implicit_gradient_is_exact():
    d = derived("Exponential")
    z, rate = d.z, by_name(d, "rate")
    (g,) = d.implicit
    assert sp.simplify(g - (-z / rate)) == 0
    assert g == -z / rate
    assert not g.has(sp.exp, expm1)


@pytest.mark.parametrize("name", ["Cauchy", "Gumbel", "Laplace", "Logistic", "Normal"])
def test_location_scale_families_have_exact_implicit_gradients(name):
    d = derived(name)
    z, loc, scale = d.z, by_name(d, "loc"), by_name(d, "scale")
    g_loc, g_scale = d.implicit
    assert g_loc == 1, g_loc
    assert sp.simplify(g_scale - (z - loc) / scale) == 0, g_scale
    assert not isinstance(g_scale, sp.Piecewise)  # equal pieces are merged


# -- every built-in spec: numeric consistency ---------------------------------------------------

# points shared by the location-scale families
LOC_SCALE_POINTS = [
    {"loc": "0.3", "scale": "1.7", "z": "-1.2"},
    {"loc": "-2", "scale": "0.4", "z": "-1.1"},
    {"loc": "1.5", "scale": "3", "z": "9.25"},
]

# (param values, z) by name; values are exact decimals. "kink" marks points where derivatives
# in z and loc are one-sided (finite differences are skipped there).
POINTS = {
    "Cauchy": LOC_SCALE_POINTS,
    "Exponential": [
        {"rate": "0.7", "z": "0.4"},
        {"rate": "2.5", "z": "1.9"},
        {"rate": "0.05", "z": "30"},
    ],
    "Gumbel": LOC_SCALE_POINTS,
    "Kumaraswamy": [
        {"concentration1": "0.6", "concentration0": "2.5", "z": "0.3"},
        {"concentration1": "3", "concentration0": "0.7", "z": "0.85"},
        {"concentration1": "1.7", "concentration0": "1.3", "z": "0.05"},
    ],
    "Laplace": [*LOC_SCALE_POINTS, {"loc": "0.3", "scale": "1.7", "z": "0.3", "kink": True}],
    "Logistic": LOC_SCALE_POINTS,
    "Normal": LOC_SCALE_POINTS,
    "Weibull": [
        {"scale": "1.5", "concentration": "0.7", "z": "0.4"},
        {"scale": "0.5", "concentration": "3.2", "z": "0.6"},
        {"scale": "2", "concentration": "1.3", "z": "5"},
    ],
    "LogNormal": [
        {"loc": "0.3", "scale": "1.7", "z": "0.2"},
        {"loc": "-2", "scale": "0.4", "z": "0.15"},
        {"loc": "1.5", "scale": "3", "z": "9.25"},
    ],
    "HalfNormal": [{"scale": "1.7", "z": "0.2"}, {"scale": "0.4", "z": "1.1"}],
    "Gamma": [
        {"concentration": "0.6", "rate": "2.5", "z": "0.3"},
        {"concentration": "3", "rate": "0.7", "z": "5.5"},
        {"concentration": "40", "rate": "1.3", "z": "31.5"},
    ],
    "Chi2": [{"df": "0.6", "z": "0.3"}, {"df": "5", "z": "7.5"}],
    "InverseGamma": [
        {"concentration": "0.6", "rate": "2.5", "z": "0.3"},
        {"concentration": "3", "rate": "0.7", "z": "5.5"},
    ],
    "Beta": [
        {"concentration1": "0.6", "concentration0": "2.5", "z": "0.3"},
        {"concentration1": "3", "concentration0": "0.7", "z": "0.85"},
    ],
    "StudentT": [
        {"df": "0.6", "loc": "0.3", "scale": "1.7", "z": "-1.2"},
        {"df": "5", "loc": "-2", "scale": "0.4", "z": "-1.1"},
        {"df": "30", "loc": "1.5", "scale": "3", "z": "9.25"},
    ],
}

SPEC_NAMES = sorted(POINTS)


def test_points_cover_every_builtin_spec():
    assert sorted(builtin_specs()) == SPEC_NAMES


def points(name: str, smooth_only: bool = False):
    d = derived(name)
    out = []
    for row in POINTS[name]:
        if smooth_only and row.get("kink"):
            continue
        out.append({by_name(d, k): sp.Rational(v) for k, v in row.items() if k != "kink"})
    return d, out


@pytest.mark.parametrize("name", SPEC_NAMES)
def test_points_are_inside_constraints_and_support(name):
    d, pts = points(name)
    spec = builtin_specs()[name]
    for subs in pts:
        for p, c in zip(d.params, spec.constraints.values(), strict=True):
            assert c.interval.contains(subs[p]) == sp.true
        lo, hi = d.support_lo.subs(subs), d.support_hi.subs(subs)
        assert lo < subs[d.z] < hi


@pytest.mark.parametrize("name", SPEC_NAMES)
def test_derived_cdf_equals_spec_cdf(name):
    d, pts = points(name)
    spec = builtin_specs()[name]
    to_spec = {new: old for new, old in zip(d.params, spec.params, strict=True)}
    to_spec[d.z] = spec.variable
    for subs in pts:
        spec_subs = {to_spec[k]: v for k, v in subs.items()}
        assert_close(num(d.cdf, subs), num(spec.cdf, spec_subs), f"cdf at {subs}")


@pytest.mark.parametrize("name", SPEC_NAMES)
def test_sf_is_one_minus_cdf(name):
    d, pts = points(name)
    for subs in pts:
        assert_close(num(d.sf, subs), 1 - num(d.cdf, subs), f"sf at {subs}")


@pytest.mark.parametrize("name", SPEC_NAMES)
def test_pdf_is_derivative_of_cdf(name):
    d, pts = points(name, smooth_only=True)
    for subs in pts:
        dF = numeric_derivative(d.cdf, d.z, subs)
        assert_close(num(d.pdf, subs), dF, f"pdf at {subs}")


@pytest.mark.parametrize("name", SPEC_NAMES)
def test_log_pdf_is_log_of_pdf(name):
    d, pts = points(name)
    for subs in pts:
        assert_close(num(d.log_pdf, subs), mpmath.log(num(d.pdf, subs)), f"log_pdf at {subs}")


@pytest.mark.parametrize("name", SPEC_NAMES)
def test_inv_pdf_is_reciprocal(name):
    d, pts = points(name)
    for subs in pts:
        assert_close(num(d.inv_pdf, subs), 1 / num(d.pdf, subs), f"inv_pdf at {subs}")


@pytest.mark.parametrize("name", SPEC_NAMES)
def test_dlog_pdf_dz_is_derivative(name):
    d, pts = points(name, smooth_only=True)
    for subs in pts:
        expected = numeric_derivative(d.log_pdf, d.z, subs)
        assert_close(num(d.dlog_pdf_dz, subs), expected, f"dlog_pdf_dz at {subs}")


@pytest.mark.parametrize("name", SPEC_NAMES)
def test_dcdf_is_derivative_in_each_parameter(name):
    d, pts = points(name, smooth_only=True)
    for subs in pts:
        for p, dF in zip(d.params, d.dcdf, strict=True):
            expected = numeric_derivative(d.cdf, p, subs)
            assert_close(num(dF, subs), expected, f"dF/d{p} at {subs}")


@pytest.mark.parametrize("name", SPEC_NAMES)
def test_implicit_is_minus_dcdf_over_pdf(name):
    d, pts = points(name)
    for subs in pts:
        q = num(d.pdf, subs)
        for p, g, dF in zip(d.params, d.implicit, d.dcdf, strict=True):
            assert_close(num(g, subs), -num(dF, subs) / q, f"dz/d{p} at {subs}")


@pytest.mark.parametrize("name", SPEC_NAMES)
def test_implicit_is_numeric_implicit_derivative(name):
    """dz/dθ from finite differences of F in θ and z, independently of the derived dcdf/pdf."""
    d, pts = points(name, smooth_only=True)
    for subs in pts:
        q = numeric_derivative(d.cdf, d.z, subs)
        for p, g in zip(d.params, d.implicit, strict=True):
            expected = -numeric_derivative(d.cdf, p, subs) / q
            assert_close(num(g, subs), expected, f"dz/d{p} at {subs}")


@pytest.mark.parametrize("name", SPEC_NAMES)
def test_dlog_pdf_is_derivative_in_each_parameter(name):
    d, pts = points(name, smooth_only=True)
    for subs in pts:
        for p, dl in zip(d.params, d.dlog_pdf, strict=True):
            expected = numeric_derivative(d.log_pdf, p, subs)
            assert_close(num(dl, subs), expected, f"dlog_pdf/d{p} at {subs}")


@pytest.mark.parametrize("name", [n for n in SPEC_NAMES if builtin_specs()[n].icdf is not None])
def test_icdf_inverts_cdf(name):
    d, pts = points(name)
    for subs in pts:
        theta = {k: v for k, v in subs.items() if k != d.z}
        for uv in ("0.1", "0.5", "0.93"):
            zv = sp.N(d.icdf.subs({**theta, d.u: sp.Rational(uv)}), DPS + 10)
            assert_close(num(d.cdf, {**theta, d.z: zv}), mpmath.mpf(uv), f"cdf(icdf({uv}))")


@pytest.mark.parametrize("name", SPEC_NAMES)
def test_no_unevaluated_or_singular_pieces(name):
    d = derived(name)
    exprs = [d.cdf, d.sf, d.pdf, d.inv_pdf, d.log_pdf, d.dlog_pdf_dz, *d.dcdf, *d.dlog_pdf]
    exprs += d.implicit
    for e in exprs:
        assert not e.atoms(sp.Derivative, sp.Subs, sp.DiracDelta, sp.Heaviside), e
        # Abs / sign / Max / Min are rewritten into pieces before differentiating
        assert not e.has(sp.Abs, sp.sign, sp.Max, sp.Min), e


@pytest.mark.parametrize("name", [n for n in SPEC_NAMES if n != "Gumbel"])
def test_log_pdf_is_a_sum_of_logs(name):
    """log q is expanded, so it does not go through exp (which underflows in the tails)."""
    d = derived(name)
    assert not d.log_pdf.has(sp.exp), d.log_pdf


# -- Laplace: the kink at z == loc ---------------------------------------------------------------


def _first_true(pw: sp.Basic, subs: dict) -> int:
    if not isinstance(pw, sp.Piecewise):
        return 0
    for i, (_, c) in enumerate(pw.args):
        if bool(c.subs(subs)):
            return i
    raise AssertionError(f"no condition of {pw} holds at {subs}")


def _laplace_expected(side: int, loc, scale, z) -> dict:
    """Closed forms on side +1 (z > loc) or -1 (z < loc), continued to z == loc."""
    x = z - loc
    ax = side * x  # |x| on that side
    pdf = sp.exp(-ax / scale) / (2 * scale)
    cdf = 1 - sp.exp(-x / scale) / 2 if side > 0 else sp.exp(x / scale) / 2
    return {
        "cdf": cdf,
        "sf": 1 - cdf,
        "pdf": pdf,
        "inv_pdf": 1 / pdf,
        "log_pdf": -ax / scale - sp.log(2 * scale),
        "dlog_pdf_dz": -side / scale,
        "dcdf": [-pdf, -x / scale * pdf],
        "dlog_pdf": [side / scale, -1 / scale + ax / scale**2],
        "implicit": [sp.S.One, x / scale],
    }


def _laplace_values(d, subs) -> dict:
    return {
        "cdf": num(d.cdf, subs),
        "sf": num(d.sf, subs),
        "pdf": num(d.pdf, subs),
        "inv_pdf": num(d.inv_pdf, subs),
        "log_pdf": num(d.log_pdf, subs),
        "dlog_pdf_dz": num(d.dlog_pdf_dz, subs),
        "dcdf": [num(e, subs) for e in d.dcdf],
        "dlog_pdf": [num(e, subs) for e in d.dlog_pdf],
        "implicit": [num(e, subs) for e in d.implicit],
    }


def _compare(got: dict, expected: dict, subs: dict, where: str):
    for key, exp in expected.items():
        g = got[key]
        if isinstance(exp, list):
            for i, (gi, ei) in enumerate(zip(g, exp, strict=True)):
                assert_close(gi, num(ei, subs), f"Laplace {key}[{i}] {where}")
        else:
            assert_close(g, num(exp, subs), f"Laplace {key} {where}")


def test_laplace_cdf_is_piecewise():
    d = derived("Laplace")
    assert isinstance(d.cdf, sp.Piecewise)
    assert len(d.cdf.args) == 2
    assert d.cdf.args[-1][1] == sp.true


@pytest.mark.parametrize("offset", ["-2.5", "-0.75", "-0.001", "0.001", "0.75", "2.5"])
def test_laplace_both_sides_of_the_kink(offset):
    d = derived("Laplace")
    loc, scale = by_name(d, "loc"), by_name(d, "scale")
    theta = {loc: sp.Rational("0.3"), scale: sp.Rational("1.7")}
    subs = {**theta, d.z: theta[loc] + sp.Rational(offset)}
    side = 1 if sp.Rational(offset) > 0 else -1
    expected = _laplace_expected(side, loc, scale, d.z)
    _compare(_laplace_values(d, subs), expected, subs, f"at z - loc = {offset}")


@pytest.mark.parametrize("theta", [("0.3", "1.7"), ("-2", "0.4"), ("0", "1")])
def test_laplace_at_the_kink(theta):
    d = derived("Laplace")
    loc, scale = by_name(d, "loc"), by_name(d, "scale")
    theta = {loc: sp.Rational(theta[0]), scale: sp.Rational(theta[1])}
    at = {**theta, d.z: theta[loc]}
    got = _laplace_values(d, at)  # num() asserts every value is finite and real

    # the convention: the piece whose condition holds at the kink (the first true one) applies;
    # find which side of the kink that piece belongs to
    kink_piece = _first_true(d.pdf, at)
    delta = sp.Rational(1, 4)
    sides = [
        s for s in (-1, 1) if _first_true(d.pdf, {**at, d.z: at[d.z] + s * delta}) == kink_piece
    ]
    assert len(sides) == 1, sides
    (side,) = sides

    # every quantity takes that side's closed form at the kink, the discontinuous ones included
    _compare(got, _laplace_expected(side, loc, scale, d.z), at, f"at the kink (side {side})")

    # values that are continuous at the kink are the same from either side
    other = _laplace_expected(-side, loc, scale, d.z)
    for key in ("cdf", "sf", "pdf", "inv_pdf", "log_pdf"):
        assert_close(got[key], num(other[key], at), f"{key} continuity at the kink")
    assert_close(got["pdf"], 1 / (2 * num(scale, theta)), "pdf at the kink")
    assert got["implicit"] == [1, 0]
    # and the discontinuous ones agree with each other: log q depends on z - loc only
    assert_close(got["dlog_pdf"][0], -got["dlog_pdf_dz"], "d log q/d loc = -d log q/dz at kink")
    assert_close(abs(got["dlog_pdf_dz"]), 1 / num(scale, theta), "|d log q/dz| at the kink")


# -- kinks from Abs / sign / Max / Min / Heaviside ---------------------------------------------

_z = sp.Symbol("z", real=True)
_loc = sp.Symbol("loc", real=True)
_zeta = sp.Symbol("zeta", real=True)  # sorts after z: the canonical kink condition flips
_scale = sp.Symbol("scale", positive=True)
_rate = sp.Symbol("rate", positive=True)


def _kink_spec(name, cdf, params, support):
    return irtgen.Distribution(name=name, variable=_z, params=params, support=support, cdf=cdf)


KINK_SPECS = [
    # (id, spec, kink location, param values)
    (
        "abs",
        _kink_spec(
            "AbsCdf",
            (1 + (_z - _loc) / (_scale + sp.Abs(_z - _loc))) / 2,
            {_loc: "real", _scale: "positive"},
            sp.Interval(-sp.oo, sp.oo),
        ),
        _loc,
        {"loc": "0.3", "scale": "1.7"},
    ),
    (
        "sign-abs-zeta",
        _kink_spec(
            "SignCdf",
            sp.Rational(1, 2)
            + sp.sign(_z - _zeta) * (1 - sp.exp(-sp.Abs(_z - _zeta) / _scale)) / 2,
            {_zeta: "real", _scale: "positive"},
            sp.Interval(-sp.oo, sp.oo),
        ),
        _zeta,
        {"zeta": "-0.6", "scale": "0.8"},
    ),
    (
        "heaviside",
        _kink_spec(
            "HeavisideCdf",
            sp.Heaviside(_z - _loc) * (1 - sp.exp(-(_z - _loc) / _scale) / 2)
            + sp.Heaviside(_loc - _z) * sp.exp((_z - _loc) / _scale) / 2,
            {_loc: "real", _scale: "positive"},
            sp.Interval(-sp.oo, sp.oo),
        ),
        _loc,
        {"loc": "1.1", "scale": "0.5"},
    ),
    (
        "max",
        _kink_spec(
            "MaxCdf",
            1 - sp.exp(-_rate * sp.Max(_z, _z**2)),
            {_rate: "positive"},
            sp.Interval.open(0, sp.oo),
        ),
        sp.S.One,
        {"rate": "0.9"},
    ),
    (
        "min",
        _kink_spec(
            "MinCdf",
            1 - sp.exp(-_rate * sp.Min(2 * _z, _z + 1)),
            {_rate: "positive"},
            sp.Interval.open(0, sp.oo),
        ),
        sp.S.One,
        {"rate": "1.3"},
    ),
]


def _all_derived(d) -> dict:
    out = {
        "cdf": d.cdf,
        "sf": d.sf,
        "pdf": d.pdf,
        "inv_pdf": d.inv_pdf,
        "log_pdf": d.log_pdf,
        "dlog_pdf_dz": d.dlog_pdf_dz,
    }
    for p, a, b, c in zip(d.params, d.dcdf, d.dlog_pdf, d.implicit, strict=True):
        out[f"dcdf[{p}]"] = a
        out[f"dlog_pdf[{p}]"] = b
        out[f"implicit[{p}]"] = c
    return out


@functools.cache
def _derive_kink(case_id):
    (spec,) = [s for i, s, _, _ in KINK_SPECS if i == case_id]
    return derive(spec)


def _kink_subs(case_id):
    (row,) = [(s, k, v) for i, s, k, v in KINK_SPECS if i == case_id]
    spec, kink, values = row
    d = _derive_kink(case_id)
    theta = {by_name(d, k): sp.Rational(v) for k, v in values.items()}
    spec_theta = {p: sp.Rational(values[p.name]) for p in spec.params}
    kink_value = sp.sympify(kink).subs(spec_theta)
    return spec, d, theta, spec_theta, kink_value


KINK_IDS = [c[0] for c in KINK_SPECS]


@pytest.mark.parametrize("case_id", KINK_IDS)
def test_kink_cdf_derives_without_dirac_delta(case_id):
    d = _derive_kink(case_id)
    for what, e in _all_derived(d).items():
        assert not e.atoms(sp.DiracDelta, sp.Derivative, sp.Subs, sp.Heaviside), (what, e)
        assert not e.has(sp.Abs, sp.sign, sp.Max, sp.Min), (what, e)
    assert isinstance(d.pdf, sp.Piecewise)


@pytest.mark.parametrize("case_id", KINK_IDS)
@pytest.mark.parametrize("offset", ["-0.25", "-0.001", "0", "0.001", "0.25"])
def test_kink_values_are_finite_and_match_the_spec(case_id, offset):
    spec, d, theta, spec_theta, kink = _kink_subs(case_id)
    zv = kink + sp.Rational(offset)
    subs = {**theta, d.z: zv}
    for e in _all_derived(d).values():
        num(e, subs)  # asserts a finite real value
    # the derived cdf is the spec's cdf (evaluated with SymPy's own Abs, sign, Max, ...)
    spec_subs = {**spec_theta, spec.variable: zv}
    assert_close(num(d.cdf, subs), num(spec.cdf, spec_subs), "cdf vs spec")
    assert_close(num(d.sf, subs), 1 - num(spec.cdf, spec_subs), "sf vs spec")
    # the density is a derivative of the spec's cdf: two-sided away from the kink, and at the
    # kink one of the one-sided derivatives
    if offset == "0":
        one_sided = [numeric_derivative(spec.cdf, spec.variable, spec_subs, s) for s in (-1, 1)]
        q = num(d.pdf, subs)
        assert any(close(q, v) for v in one_sided), (q, one_sided)
    else:
        dF = numeric_derivative(spec.cdf, spec.variable, spec_subs)
        assert_close(num(d.pdf, subs), dF, "pdf vs d(spec cdf)/dz")


@pytest.mark.parametrize("case_id", KINK_IDS)
def test_kink_value_is_the_limit_from_the_first_true_side(case_id):
    _, d, theta, _, kink = _kink_subs(case_id)
    at = {**theta, d.z: kink}
    kink_piece = _first_true(d.pdf, at)
    delta = sp.Rational(1, 8)
    sides = [s for s in (-1, 1) if _first_true(d.pdf, {**at, d.z: kink + s * delta}) == kink_piece]
    assert len(sides) == 1, sides
    (side,) = sides
    near = {**theta, d.z: kink + side * sp.Rational(1, 10**40)}
    for what, e in _all_derived(d).items():
        # atol: quantities that vanish at the kink differ by O(1e-40) at the nearby point
        assert_close(
            num(e, at), num(e, near), f"{what} at the kink vs its side-{side} limit", atol=1e-30
        )


# -- functions SymPy cannot differentiate -------------------------------------------------------

_f = sp.Function("f")


@pytest.mark.parametrize(
    "cdf, params",
    [
        pytest.param(_f(_z - _loc), {_loc: "real"}, id="f(z-loc)"),
        pytest.param(_f(_z, _scale), {_scale: "positive"}, id="f(z,scale)"),
        pytest.param(_f(_z / _scale), {_scale: "positive"}, id="f(z/scale)"),
        pytest.param(_f(_z) ** _scale, {_scale: "positive"}, id="f(z)**scale"),
        pytest.param(sp.exp(-_f(_z) / _scale), {_scale: "positive"}, id="exp(-f(z)/scale)"),
        pytest.param(_loc + _f(_z), {_loc: "real"}, id="loc+f(z)"),
    ],
)
def test_opaque_function_raises_spec_error(cdf, params):
    spec = irtgen.Distribution(
        name="Opaque", variable=_z, params=params, support=sp.Interval(-sp.oo, sp.oo), cdf=cdf
    )
    with pytest.raises(irtgen.SpecError) as info:
        derive(spec)
    message = str(info.value)
    assert message.startswith("Opaque: "), message
    assert "cannot derive" in message and "f(" in message, message


# -- rewrites ------------------------------------------------------------------------------------

x = sp.Symbol("x", real=True)
n = sp.Symbol("n", negative=True)
a, b = sp.symbols("a b", positive=True)
p = sp.Symbol("p", positive=True)

REWRITES = [
    # (id, expression, function that must appear, function that must be gone, points)
    ("log1p", sp.log(1 + x), log1p, sp.log, {x: ["1e-9", "0.5", "3"]}),
    ("log1p-scaled", sp.log(1 + 3 * a * b), log1p, sp.log, {a: ["1e-7", "2"], b: ["0.5", "4"]}),
    ("expm1", 1 - sp.exp(x), expm1, sp.exp, {x: ["-3", "1e-9", "0.5"]}),
    ("expm1-scaled", 2 - 2 * sp.exp(-a * x), expm1, sp.exp, {x: ["1e-8", "2"], a: ["0.5"]}),
    ("expm1-pow", 1 - a**b, expm1, sp.Pow, {a: ["0.3", "2"], b: ["1e-6", "1.5"]}),
    ("log1mexp", sp.log(1 - sp.exp(n)), log1mexp, sp.exp, {n: ["-1e-6", "-0.5", "-40"]}),
    ("log1mexp-from-expm1", sp.log(-expm1(n)), log1mexp, expm1, {n: ["-1e-6", "-3"]}),
    ("log1mexp-from-log1p", log1p(-sp.exp(n)), log1mexp, log1p, {n: ["-1e-6", "-3"]}),
    ("softplus", sp.log(1 + sp.exp(x)), softplus, sp.exp, {x: ["-30", "0.5", "40"]}),
    ("sigmoid", 1 / (1 + sp.exp(-x)), sigmoid, sp.exp, {x: ["-30", "0.5", "40"]}),
    ("sigmoid-squared", (1 + sp.exp(x)) ** -2, sigmoid, sp.exp, {x: ["-3", "0.5", "12"]}),
    ("one-minus-sigmoid", 3 - 3 * sigmoid(x), sigmoid, None, {x: ["-3", "0.5", "25"]}),
    ("log-sigmoid", sp.log(sigmoid(x)), softplus, sigmoid, {x: ["-30", "0.5", "40"]}),
    (
        "exp-times-sigmoid",
        sp.exp(x) * sigmoid(-x) ** 2,
        sigmoid,
        sp.exp,
        {x: ["-3", "0.5", "30"]},
    ),
    ("ndtr", (1 + sp.erf(x)) / 2, ndtr, sp.erf, {x: ["-5", "0.25", "2"]}),
    ("ndtr-upper", (1 - sp.erf(x)) / 2, ndtr, sp.erf, {x: ["-2", "0.25", "5"]}),
    (
        "ndtr-normal-cdf",
        (1 + sp.erf((x - a) / (b * sp.sqrt(2)))) / 2,
        ndtr,
        sp.erf,
        {x: ["-3", "1"], a: ["0.5"], b: ["2"]},
    ),
    ("ndtri", sp.erfinv(2 * p - 1), ndtri, sp.erfinv, {p: ["1e-10", "0.3", "0.9"]}),
    ("log-ratio", sp.log(a / b), log_ratio, sp.log, {a: ["1", "3.5"], b: ["1.0000001", "0.2"]}),
    ("log-ratio-scaled", sp.log(2 * a / (3 * b)), log_ratio, sp.log, {a: ["1.5"], b: ["1", "7"]}),
]


def _grid(points: dict):
    syms = list(points)
    grids = [[]]
    for s in syms:
        grids = [g + [(s, sp.Rational(v))] for g in grids for v in points[s]]
    return [dict(g) for g in grids]


@pytest.mark.parametrize("expr, fn, gone, pts", [pytest.param(*r[1:], id=r[0]) for r in REWRITES])
def test_stabilize_rewrites(expr, fn, gone, pts):
    out = stabilize(expr)
    assert out != expr
    assert out.has(fn), out
    if gone is not None:
        assert not out.has(gone), out
    for subs in _grid(pts):
        assert_close(num(out, subs), num(expr, subs), f"{expr} -> {out} at {subs}")
    assert stabilize(out) == out  # a fixed point


def test_stabilize_exact_forms():
    assert stabilize(sp.log(1 + x)) == log1p(x)
    assert stabilize(1 - sp.exp(x)) == -expm1(x)
    assert stabilize(sp.log(1 - sp.exp(n))) == log1mexp(n)
    assert stabilize(1 / (1 + sp.exp(-x))) == sigmoid(x)
    assert stabilize((1 + sp.erf(x)) / 2) == ndtr(sp.sqrt(2) * x)
    assert sp.simplify(stabilize(sp.erfinv(2 * p - 1)) - ndtri(p) / sp.sqrt(2)) == 0
    assert stabilize(sp.erfinv(2 * p - 1)).has(ndtri(p))
    assert stabilize(sp.log(a / b)) == log_ratio(a, b)


def test_log_of_powers_becomes_exponent_times_log():
    """log((a/b)**e) overflows as a power long before e*log(a/b) does; opposite exponents pair
    up into one log ratio (log-logistic spec: d log q/dc was -inf at z = 10, scale = 1, c = 5)."""
    e = sp.Symbol("e", positive=True)
    assert stabilize(sp.log((a / b) ** e)) == e * log_ratio(a, b)
    assert stabilize(sp.log(a ** (e * (a - b)) * b ** (e * (b - a)))) == e * (a - b) * log_ratio(
        a, b
    )
    assert stabilize(sp.log(a**e)) == e * sp.log(a)


def test_log_logistic_log_density_gradient_is_finite_far_out():
    z = sp.Symbol("z", real=True)
    scale, c = sp.symbols("scale c", positive=True)
    params = {scale: "positive", c: "positive"}
    for cdf in (1 / (1 + (z / scale) ** -c), z**c / (scale**c + z**c)):
        spec = irtgen.Distribution(
            name="LogLogistic", variable=z, params=params, support=sp.Interval(0, sp.oo), cdf=cdf
        )
        d = derive(spec)
        i = d.param_names.index("c")
        # no log of a power with a symbolic exponent: in float64 (1/10)**(5*(10**5 - 1))
        # underflows to 0 and its log is -inf
        for f in d.dlog_pdf[i].atoms(sp.log):
            for part in sp.Mul.make_args(f.args[0]):
                assert part.as_base_exp()[1].is_number, f
        for zv, want in ((10, "-2.1025390417526983"), (1e-6, "-13.615510557964274")):
            subs = {d.z: zv, by_name(d, "scale"): 1, by_name(d, "c"): 5}
            got = num(d.dlog_pdf[i], subs)
            assert abs(got - mpmath.mpf(want)) < 1e-12 * abs(mpmath.mpf(want)), (cdf, zv, got)


@pytest.mark.parametrize(
    "expr",
    [
        sp.log(x**2 + 2),  # no 1 + x pattern
        sp.log(a),
        2 - sp.exp(x),  # constants differ
        sp.erf(x) / 2 + 1,
        sp.exp(x) + 1,
        sp.log(a / 2),  # numeric denominator: plain log
        x * sp.exp(x),
    ],
)
def test_stabilize_leaves_other_forms_alone(expr):
    assert stabilize(expr) == expr


def test_stabilize_inside_piecewise_keeps_conditions():
    pw = sp.Piecewise((sp.log(1 + x), x < 1), (1 - sp.exp(x), True))
    out = stabilize(pw)
    assert isinstance(out, sp.Piecewise)
    assert out.args[0] == (log1p(x), x < 1)
    assert out.args[1] == (-expm1(x), True)


# -- numeric values of irtgen's functions (the checks above evaluate through them) ---------------


def _ndtri_reference(p):
    """Inverse normal cdf by root finding on mpmath.ncdf (no 2p - 1 cancellation)."""
    p = mpmath.mpf(p)
    with mpmath.workdps(60):
        x0 = -mpmath.sqrt(-2 * mpmath.log(p)) if p < 0.5 else mpmath.mpf(0)
        return mpmath.findroot(lambda t: mpmath.log(mpmath.ncdf(t)) - mpmath.log(p), x0)


FUNCTION_VALUES = [
    # (id, sympy expression, reference computed in 60-digit mpmath)
    ("ndtr(0.3)", ndtr(sp.Rational(3, 10)), lambda: mpmath.ncdf(mpmath.mpf(3) / 10)),
    ("ndtr(-40)", ndtr(-40), lambda: mpmath.ncdf(-40)),
    ("ndtri(0.3)", ndtri(sp.Rational(3, 10)), lambda: _ndtri_reference(mpmath.mpf(3) / 10)),
    (
        "ndtri(1e-20)",
        ndtri(sp.Rational(1, 10**20)),
        lambda: _ndtri_reference(mpmath.mpf(10) ** -20),
    ),
    (
        "ndtri(1e-40)",
        ndtri(sp.Rational(1, 10**40)),
        lambda: _ndtri_reference(mpmath.mpf(10) ** -40),
    ),
    ("log1mexp(-0.5)", log1mexp(-sp.Rational(1, 2)), lambda: mpmath.log(1 - mpmath.exp(-0.5))),
    (
        "log1mexp(-1e-40)",
        log1mexp(-sp.Rational(1, 10**40)),
        lambda: mpmath.log(-mpmath.expm1(-(mpmath.mpf(10) ** -40))),
    ),
    ("log1mexp(-50)", log1mexp(-50), lambda: mpmath.log1p(-mpmath.exp(-50))),
    ("softplus(-50)", softplus(-50), lambda: mpmath.log1p(mpmath.exp(-50))),
    ("softplus(3)", softplus(3), lambda: mpmath.log1p(mpmath.exp(3))),
    ("sigmoid(-800)", sigmoid(-800), lambda: 1 / (1 + mpmath.exp(800))),
    ("sigmoid(2)", sigmoid(2), lambda: 1 / (1 + mpmath.exp(-2))),
    ("log_ratio(3, 7)", log_ratio(3, 7), lambda: mpmath.log(mpmath.mpf(3) / 7)),
    (
        "log_ratio(1+1e-40, 1)",
        log_ratio(1 + sp.Rational(1, 10**40), 1),
        lambda: mpmath.log1p(mpmath.mpf(10) ** -40),
    ),
]


@pytest.mark.parametrize(
    "expr, reference", [pytest.param(*r[1:], id=r[0]) for r in FUNCTION_VALUES]
)
def test_irtgen_functions_evaluate_to_30_digits(expr, reference):
    with mpmath.workdps(60):
        ref = reference()
    value = sp.N(expr, DPS)
    assert value.is_finite, value
    assert_close(mpmath.mpf(value), ref, f"{expr} = {value}")


@pytest.mark.parametrize("loc_name", ["loc", "zeta", "a", "m0"])
def test_kink_takes_the_right_hand_piece_whatever_the_names(loc_name):
    # SymPy orders symbols by name; the side taken at a kink must not depend on it
    z = sp.Symbol("z", real=True)
    loc = sp.Symbol(loc_name, real=True)
    scale = sp.Symbol("scale", positive=True)
    spec = irtgen.Distribution(
        name="Laplace",
        variable=z,
        params={loc: "real", scale: "positive"},
        support=sp.Interval(-sp.oo, sp.oo),
        cdf=sp.Rational(1, 2) + sp.sign(z - loc) * (1 - sp.exp(-sp.Abs(z - loc) / scale)) / 2,
    )
    d = derive(spec)
    at_kink = {d.params[0]: sp.Rational(3, 10), d.params[1]: 2, d.z: sp.Rational(3, 10)}
    # right-hand piece: log q = -log(2 scale) - (z - loc)/scale, so d log q/dz = -1/scale
    assert float(d.dlog_pdf_dz.subs(at_kink)) == -0.5


def test_max_kink_lands_on_the_density_piece():
    z = sp.Symbol("z", real=True)
    rate, shift = sp.symbols("rate shift", positive=True)
    spec = irtgen.Distribution(
        name="ShiftedExponential",
        variable=z,
        params={rate: "positive", shift: "positive"},
        support=sp.Interval(0, sp.oo),
        cdf=1 - sp.exp(-rate * sp.Max(z - shift, 0)),
    )
    d = derive(spec)
    at_kink = {d.params[0]: 3, d.params[1]: 1, d.z: 1}
    assert float(d.log_pdf.subs(at_kink)) == pytest.approx(float(sp.log(3)), rel=1e-15)
    assert float(d.implicit[1].subs(at_kink)) == 1.0  # dz/dshift = 1 on the right-hand piece
