"""``irtgen.truncate(spec, low, high)``: a truncation as a new spec, derived, rewritten and audited
like any user's CDF. Checked against the runtime composite ``Truncated`` (itself checked against
mpmath in tests/composite/test_truncated.py) and against the naive spec it equals."""

from __future__ import annotations

import math

import pytest
import sympy as sp
import torch

import irtgen
from irtgen.distributions import Gamma, Normal, Truncated
from irtgen.spec import SpecError
from tests.test_naive_specs import _check, _normal_cdf
from tests.user_specs import load_spec_text

SPEC = """
import sympy as sp
import irtgen

low = sp.Symbol("low", real=True)
width = sp.Symbol("width", positive=True)
TruncatedNormal = irtgen.truncate("Normal", low, low + width)

start = sp.Symbol("start", positive=True)
LeftTruncatedGamma = irtgen.truncate("Gamma", low=start, name="LeftTruncatedGamma")
"""

# quantiles of the truncated distribution; below 1e-3 the closed form F(z) - F(low) loses
# ulp/u to cancellation next to the lower bound (what Truncated's quadrature avoids)
US = [1e-3, 0.01, 0.1, 0.5, 0.9, 0.999, 1 - 1e-6]
TOL = {torch.float64: 1e-10, torch.float32: 1e-4}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    yield from load_spec_text(tmp_path_factory, "truncations", SPEC)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize(("low", "up"), [(-1, 1), (5, 6), (-6, -5), (8, 9)], ids=str)
def test_truncated_normal_spec_against_mpmath(built, low, up, dtype):
    # the same targets as the naive erf spec (tests/test_naive_specs.py)
    _check(
        built.TruncatedNormal,
        _normal_cdf,
        [0.0, 1.0, float(low), float(up - low)],
        lambda t: t[2],
        lambda t: t[2] + t[3],
        dtype,
    )


def test_truncated_normal_spec_agrees_with_the_composite(built):
    loc, scale, low, width = (torch.tensor(v, dtype=torch.float64) for v in (0.5, 2.0, 3.0, 4.0))
    spec_dist = built.TruncatedNormal(loc, scale, low, width)
    composite = Truncated(Normal(loc, scale), low, low + width)
    z = composite.icdf(torch.tensor(US, dtype=torch.float64))
    torch.testing.assert_close(spec_dist.log_prob(z), composite.log_prob(z), rtol=1e-13, atol=0)
    torch.testing.assert_close(spec_dist.cdf(z), composite.cdf(z), rtol=1e-12, atol=0)
    torch.testing.assert_close(spec_dist.icdf(spec_dist.cdf(z)), z, rtol=1e-12, atol=0)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize(
    ("concentration", "rate", "start"),
    [(3.0, 1.0, 2.0), (3.0, 1.0, 8.0), (0.5, 2.0, 0.125), (30.0, 1.0, 45.0)],
    ids=str,
)
def test_left_truncated_gamma_spec_against_the_composite(built, concentration, rate, start, dtype):
    """dz/dθ, dz/dstart, log_prob and cdf of the generated class against Truncated(Gamma) in
    float64 at the same (dtype-rounded) inputs; start = 8 and 45 cut in the right tail, where the
    rule cdf_difference takes Q(start) - Q(z) instead of P(z) - P(start)."""
    n = len(US)
    params = [
        torch.full((n,), v, dtype=dtype, requires_grad=True) for v in (concentration, rate, start)
    ]
    wide = [p.detach().double().requires_grad_() for p in params]
    composite = Truncated(Gamma(wide[0], wide[1]), wide[2], math.inf)
    z = composite.icdf(torch.tensor(US, dtype=torch.float64)).detach().to(dtype)
    z64 = z.double()
    dist = built.LeftTruncatedGamma(*params)
    got = torch.autograd.grad(dist.reparameterize(z).sum(), params)
    want = torch.autograd.grad(composite.reparameterize(z64).sum(), wide)
    for name, g, w in zip(("concentration", "rate", "start"), got, want, strict=True):
        err = ((g.double() - w).abs() / w.abs()).max().item()
        assert err <= TOL[dtype], (name, err)
    err_cdf = ((dist.cdf(z).double() - composite.cdf(z64)).abs() / composite.cdf(z64)).max()
    assert err_cdf <= TOL[dtype]
    err_lp = (dist.log_prob(z).double() - composite.log_prob(z64)).abs().max()
    assert err_lp <= TOL[dtype] * composite.log_prob(z64).abs().clamp(min=1).max()


def test_draws_stay_in_the_truncated_support(built):
    torch.manual_seed(0)
    dist = built.LeftTruncatedGamma(torch.tensor(2.0), torch.tensor(1.0), torch.tensor(6.0))
    x = dist.rsample((2000,))
    assert (x > 6.0).all() and torch.isfinite(x).all()
    # the sample mean against the composite's mean (quadrature): 2000 draws, 5 standard errors
    ref = Truncated(Gamma(torch.tensor(2.0), torch.tensor(1.0)), torch.tensor(6.0), math.inf)
    assert abs(x.mean() - ref.mean).item() < 5 * ref.variance.sqrt().item() / math.sqrt(2000)


def test_module_docstring_carries_the_audit(built):
    import sys

    doc = sys.modules[type(built.TruncatedNormal(0.0, 1.0, 0.0, 1.0)).__module__].__doc__
    assert "Accuracy, as the build's audit measured it" in doc
    assert "dz/dwidth" in doc


# -- the spec itself, no build ----------------------------------------------------------------


def test_spec_shape():
    low = sp.Symbol("low", real=True)
    width = sp.Symbol("width", positive=True)
    d = irtgen.truncate("Normal", low, low + width)
    assert d.name == "TruncatedNormal"
    assert d.param_names == ["loc", "scale", "low", "width"]
    assert d.support == sp.Interval(low, low + width)
    assert d.icdf is None and d.sampler is None and d.mean is None
    z = d.variable
    at = {z: 0.3, low: -1.0, width: 2.0, sp.Symbol("loc", real=True): 0.0}
    at[sp.Symbol("scale", positive=True)] = 1.0
    phi = lambda t: (1 + math.erf(t / math.sqrt(2))) / 2  # noqa: E731
    assert float(d.cdf.subs(at)) == pytest.approx((phi(0.3) - phi(-1)) / (phi(1) - phi(-1)))
    # numeric bounds, one side: the base's own end and openness stay
    g = irtgen.truncate("Gamma", high=5)
    assert g.support == sp.Interval(0, 5) and g.param_names == ["concentration", "rate"]
    # a user's spec object, a constraint given explicitly
    t = sp.Symbol("t")
    h = irtgen.truncate(g, low=t, high=5, name="Window", params={t: "interval(0, 4)"})
    assert h.constraints[t].name == "interval(0, 4)"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"spec": "Nope"}, "no built-in distribution named 'Nope'"),
        ({"spec": 3}, "must be an irtgen.Distribution"),
        ({"spec": "Gamma", "low": sp.Symbol("a", real=True)}, "may lie outside"),
        ({"spec": "Gamma", "low": -1}, "may lie outside"),
        ({"spec": "Normal", "low": sp.Symbol("a"), "high": sp.Symbol("b")}, "cannot show"),
        ({"spec": "Normal", "low": 2, "high": 1}, "cannot show"),
        ({"spec": "Normal", "low": "x"}, "must be a number"),
        ({"spec": "Normal", "low": sp.Symbol("z", real=True)}, "variable z"),
        ({"spec": "Normal"}, "truncate nothing"),
        (
            {"spec": "Normal", "low": 0, "params": {sp.Symbol("c"): "real"}},
            "appear in no bound",
        ),
        ({"spec": "Normal", "low": sp.Symbol("c"), "params": {sp.Symbol("c"): "big"}}, "unknown"),
    ],
)
def test_bad_truncations_say_what_is_wrong(kwargs, message):
    spec = kwargs.pop("spec")
    with pytest.raises(SpecError, match=message):
        irtgen.truncate(spec, **kwargs)
