"""Exponential-family form, derived from the spec (irtgen.derive.exponential_family) and emitted
as torch's ``ExponentialFamily`` interface (_natural_params, _log_normalizer,
_mean_carrier_measure): which families have it, that it is log q, that it agrees with torch's, and
that torch's Bregman entropy and KL built on it equal the closed forms."""

from __future__ import annotations

import functools
import math
import textwrap
from pathlib import Path

import mpmath
import pytest
import sympy as sp
import torch
import torch.distributions as td
from torch.distributions import ExponentialFamily
from torch.distributions.kl import _dispatch_kl, _kl_expfamily_expfamily

import irtgen
import irtgen.distributions as ird
import irtgen.kl
from irtgen.build import load_spec_file
from irtgen.derive import derive
from tests.user_specs import load_spec_text

SPEC_DIR = Path(irtgen.__file__).resolve().parent / "specs"
SPEC_FILES = sorted(p for p in SPEC_DIR.glob("*.py") if p.name != "__init__.py")

# built-ins whose log density is Σ η_i(θ) T_i(z) − A(η) with carrier measure 1; Chi2 is one as a
# Gamma (its parent); every other built-in is not (see test_not_exponential_families_and_why)
EXPONENTIAL = {"Normal", "Gamma", "Beta", "Exponential", "InverseGamma", "LogNormal", "HalfNormal"}
F64 = torch.float64


@functools.cache
def builtin_specs() -> dict:
    return {d.name: d for path in SPEC_FILES for d in load_spec_file(path)}


@functools.cache
def derived(name: str):
    return derive(builtin_specs()[name])


def _t(*values):
    return torch.tensor(values, dtype=F64)


# parameter batches (small and large shapes, both signs of a location) and points of the support
CASES = {
    "Normal": (dict(loc=_t(0.3, -1.2, 4.0), scale=_t(1.7, 0.2, 30.0)), _t(-2.0, 0.1, 5.0)),
    "Gamma": (dict(concentration=_t(2.5, 0.03, 400.0), rate=_t(0.8, 3.0, 0.1)), _t(0.4, 1e-3, 9.0)),
    "Beta": (
        dict(concentration1=_t(2.5, 0.3, 70.0), concentration0=_t(0.7, 3.0, 0.5)),
        _t(0.2, 0.5, 0.97),
    ),
    "Exponential": (dict(rate=_t(0.8, 3.0, 0.01)), _t(0.4, 1e-3, 90.0)),
    "InverseGamma": (
        dict(concentration=_t(2.5, 0.3, 40.0), rate=_t(0.8, 3.0, 0.1)),
        _t(0.4, 2.0, 1e-2),
    ),
    "LogNormal": (dict(loc=_t(0.3, -1.2, 4.0), scale=_t(1.7, 0.2, 3.0)), _t(0.4, 0.3, 60.0)),
    "HalfNormal": (dict(scale=_t(1.7, 0.2, 30.0)), _t(0.4, 0.1, 20.0)),
    "Chi2": (dict(df=_t(0.8, 3.0, 110.0)), _t(0.4, 2.0, 100.0)),
}


def _pair(name):
    params, _ = CASES[name]
    return getattr(ird, name)(**params), getattr(td, name)(**params)


def _close(got, want, rtol=1e-12):
    torch.testing.assert_close(got, want, rtol=rtol, atol=rtol)


# -- the derivation ---------------------------------------------------------------------------


def test_which_builtins_are_exponential_families():
    found = {n for n in builtin_specs() if derived(n).exponential_family is not None}
    assert found == EXPONENTIAL
    for name in builtin_specs():
        cls = getattr(ird, name)
        assert issubclass(cls, ExponentialFamily) == (name in EXPONENTIAL | {"Chi2"}), name


@pytest.mark.parametrize("name", sorted(EXPONENTIAL))
def test_form_is_the_log_density(name):
    """Σ η_i(θ) T_i(z) − A(η(θ)) is the derived log q, at 30 digits on points of our own."""
    d = derived(name)
    form = d.exponential_family
    params, zs = CASES[name]
    expr = sum(
        (e * t for e, t in zip(form.natural_params, form.statistics, strict=True)), sp.S.Zero
    ) - form.log_normalizer.xreplace(dict(zip(form.eta, form.natural_params, strict=True)))
    with mpmath.workdps(30):
        for k in range(len(zs)):
            subs = {p: sp.Float(params[p.name][k].item(), 30) for p in d.params}
            subs[d.z] = sp.Float(zs[k].item(), 30)
            got, want = expr.evalf(30, subs=subs), d.log_pdf.evalf(30, subs=subs)
            assert abs(got - want) <= 1e-20 * (1 + abs(want)), (name, k, got, want)


@pytest.mark.parametrize(
    "name, why",
    [
        ("Laplace", "piecewise density (|z - loc|)"),
        ("Weibull", "(z/scale)**concentration: statistic depends on a parameter"),
        ("StudentT", "log(1 + (z - loc)**2/(df scale**2)) does not separate"),
        ("Cauchy", "log(scale**2 + (z - loc)**2) does not separate"),
        ("Kumaraswamy", "log(1 - z**concentration1) does not separate"),
        ("Gumbel", "exp(-(z - loc)/scale) does not separate"),
        ("Logistic", "log(1 + exp(-(z - loc)/scale)) does not separate"),
        ("Chi2", "has a parent (Gamma): it is what its parent is"),
    ],
)
def test_not_exponential_families_and_why(name, why):
    assert derived(name).exponential_family is None, why


Z = sp.Symbol("z", real=True)
S, R, M = sp.symbols("s r m", positive=True)
V = sp.Symbol("v", real=True)


def _spec(name, params, support, cdf):
    return irtgen.Distribution(name=name, variable=Z, params=params, support=support, cdf=cdf)


def _scale_squared(params):
    (v,) = params
    cdf = (1 + sp.erf(Z / ((1 + v**2) * sp.sqrt(2)))) / 2
    return _spec("ScaleSquared", params, sp.Interval(-sp.oo, sp.oo), cdf)


def test_rejections_of_user_families():
    """Families that are not of the form, each for another reason."""
    # Rayleigh: log q = log z − 2 log s − z²/(2s²); log z has no parameter in its coefficient,
    # so h(z) = z is not constant
    rayleigh = _spec(
        "Rayleigh", {S: "positive"}, sp.Interval(0, sp.oo), 1 - sp.exp(-(Z**2) / (2 * S**2))
    )
    # Normal(m, m): statistics z and z², one parameter (a curved family)
    curved = _spec(
        "Curved",
        {M: "positive"},
        sp.Interval(-sp.oo, sp.oo),
        (1 + sp.erf((Z - M) / (M * sp.sqrt(2)))) / 2,
    )
    # log q = log r − r z + r² is of the form, but the support [r, oo) depends on r
    shifted = _spec("Shifted", {R: "positive"}, sp.Interval(R, sp.oo), 1 - sp.exp(-R * (Z - R)))
    # a scale 1 + v²: η = -1/(2(1 + v²)²) has two solutions v = ±... for a real v
    two_roots = _scale_squared({V: "real"})
    for spec in (rayleigh, curved, shifted, two_roots):
        assert derive(spec).exponential_family is None, spec.name
    # where only the rule in question changes, the form is found: one solution for v > 0, ...
    assert derive(_scale_squared({M: "positive"})).exponential_family is not None
    # ... and the exponential with a fixed support
    fixed = derive(_spec("Fixed", {R: "positive"}, sp.Interval(0, sp.oo), 1 - sp.exp(-R * Z)))
    assert fixed.exponential_family is not None
    assert fixed.exponential_family.statistics == [fixed.z]


def test_user_family_form_is_solved_for_the_parameters():
    """A scale parametrization, η = −1/s: A(η) = log s = −log(−η) after solving for s."""
    form = derive(
        _spec("ExpScale", {S: "positive"}, sp.Interval(0, sp.oo), 1 - sp.exp(-Z / S))
    ).exponential_family
    (eta,) = form.eta
    assert eta.is_negative
    assert sp.simplify(form.natural_params[0] + 1 / sp.Symbol("s", positive=True)) == 0
    assert sp.simplify(form.log_normalizer + sp.log(-eta)) == 0


# -- the generated classes against torch -----------------------------------------------------


@pytest.mark.parametrize("name", ["Normal", "Gamma", "Exponential", "Chi2", "Beta"])
def test_natural_params_and_log_normalizer_are_torchs(name):
    ours, theirs = _pair(name)
    shift = (
        1.0 if name == "Beta" else 0.0
    )  # torch's Beta: T = (log z, log(1 - z)) with h = 1/(z(1-z))
    for a, b in zip(ours._natural_params, theirs._natural_params, strict=True):
        assert a.shape == ours.batch_shape
        _close(a + shift, b)
    _close(
        ours._log_normalizer(*ours._natural_params), theirs._log_normalizer(*theirs._natural_params)
    )
    assert ours._mean_carrier_measure == 0


@pytest.mark.parametrize("name", sorted(CASES))
def test_bregman_entropy_is_the_closed_form_and_torchs(name):
    ours, theirs = _pair(name)
    bregman = ExponentialFamily.entropy(ours)
    _close(bregman, ours.entropy())
    _close(bregman, theirs.entropy())


@pytest.mark.parametrize("name", sorted(EXPONENTIAL))
def test_generated_statistics_give_torchs_log_prob(name):
    """log q(z) = Σ η_i T_i(z) − A(η) with the generated torch functions, against torch's log_prob
    (no irtgen kernel involved)."""
    ours, theirs = _pair(name)
    _, zs = CASES[name]
    module = __import__(type(ours).__module__, fromlist=["x"])
    eta = ours._natural_params
    form = sum(e * t for e, t in zip(eta, module.sufficient_statistics_torch(zs), strict=True))
    _close(form - ours._log_normalizer(*eta), theirs.log_prob(zs))


def _mean_statistics(name, d):
    """E[T(z)] in closed form, the statistics in the generated order."""
    dg = torch.digamma
    if name == "Normal":
        return d.mean, d.mean**2 + d.variance
    if name == "Gamma":
        return dg(d.concentration) - torch.log(d.rate), d.concentration / d.rate
    if name == "Beta":
        total = dg(d.concentration1 + d.concentration0)
        return dg(d.concentration1) - total, dg(d.concentration0) - total
    if name == "Exponential":
        return (1 / d.rate,)
    if name == "InverseGamma":
        return torch.log(d.rate) - dg(d.concentration), d.concentration / d.rate
    if name == "LogNormal":
        return d.loc, d.loc**2 + d.scale**2
    if name == "HalfNormal":
        return (d.scale**2,)
    raise KeyError(name)


@pytest.mark.parametrize("name", sorted(EXPONENTIAL))
def test_gradient_of_log_normalizer_is_mean_statistic(name):
    ours, _ = _pair(name)
    eta = [e.detach().requires_grad_() for e in ours._natural_params]
    grads = torch.autograd.grad(ours._log_normalizer(*eta).sum(), eta)
    for g, want in zip(grads, _mean_statistics(name, ours), strict=True):
        _close(g, want, rtol=1e-11)


@pytest.mark.parametrize("name", sorted(CASES))
def test_kl_keeps_the_registered_closed_form(name):
    """kl_divergence between two irtgen members dispatches to irtgen.kl's registration (torch's
    closed form), not to torch's Bregman fallback for ExponentialFamily pairs; the Bregman value
    agrees with it."""
    cls = getattr(ird, name)
    assert _dispatch_kl(cls, cls) is irtgen.kl._kl
    params, _ = CASES[name]
    p = cls(**params)
    q = cls(**{k: v.flip(0) * 1.3 for k, v in params.items()})
    closed = td.kl_divergence(p, q)
    assert torch.equal(
        closed, td.kl_divergence(getattr(td, name)(**params), irtgen.kl._as_torch(q))
    )
    _close(_kl_expfamily_expfamily(p, q), closed, rtol=1e-10)


def test_expand_and_scalar_parameters_keep_batch_shape():
    d = ird.Normal(torch.tensor(0.5, dtype=F64), _t(1.0, 2.0, 3.0)).expand((4, 3))
    assert all(e.shape == (4, 3) for e in d._natural_params)
    assert ExponentialFamily.entropy(d).shape == (4, 3)
    e = ird.Exponential(torch.tensor(2.0, dtype=F64))
    (eta,) = e._natural_params
    assert eta.shape == () and eta.item() == -2.0


# -- a user family: entropy and KL come from the form alone ----------------------------------

USER_SPEC = textwrap.dedent(
    """
    import sympy as sp
    import irtgen

    z = sp.Symbol("z", real=True)
    s, tau = sp.symbols("s tau", positive=True)
    m = sp.Symbol("m", real=True)

    ExpScale = irtgen.Distribution(
        name="ExpScale", variable=z, params={s: "positive"},
        support=sp.Interval(0, sp.oo), cdf=1 - sp.exp(-z / s))
    PrecisionNormal = irtgen.Distribution(
        name="PrecisionNormal", variable=z, params={m: "real", tau: "positive"},
        support=sp.Interval(-sp.oo, sp.oo), cdf=(1 + sp.erf((z - m) * sp.sqrt(tau / 2))) / 2)
    """
)


@pytest.fixture(scope="module")
def user(tmp_path_factory):
    yield from load_spec_text(tmp_path_factory, "user_ef", USER_SPEC)


def test_user_families_are_exponential_families(user):
    for cls in (user.ExpScale, user.PrecisionNormal):
        assert issubclass(cls, ExponentialFamily)


def test_user_family_entropy_and_kl_from_the_form(user):
    """No entropy in the spec and no KL registered: both come from torch's Bregman formulas on the
    derived η and A, and equal the closed forms."""
    s1, s2 = _t(0.3, 2.0, 50.0), _t(1.1, 0.7, 3.0)
    p, q = user.ExpScale(s1), user.ExpScale(s2)
    _close(p.entropy(), 1 + torch.log(s1))
    _close(td.kl_divergence(p, q), torch.log(s2 / s1) + s1 / s2 - 1)

    m1, t1, m2, t2 = _t(0.3, -2.0, 5.0), _t(0.5, 4.0, 100.0), _t(1.0, 0.0, -3.0), _t(2.0, 0.1, 1.0)
    p, q = user.PrecisionNormal(m1, t1), user.PrecisionNormal(m2, t2)
    _close(p.entropy(), 0.5 * torch.log(2 * math.pi * math.e / t1))
    want = 0.5 * (torch.log(t1 / t2) + t2 / t1 + t2 * (m1 - m2) ** 2 - 1)
    _close(td.kl_divergence(p, q), want)
    _close(
        td.kl_divergence(p, q), td.kl_divergence(td.Normal(m1, t1**-0.5), td.Normal(m2, t2**-0.5))
    )
