"""``validate_args=True`` on generated distributions, as torch.distributions does it.

Parameters outside their constraints (NaN included) raise ValueError at construction; values
outside the support raise ValueError in ``log_prob``, ``cdf`` and ``reparameterize``, and values
outside [0, 1] in ``icdf``. The support is the one the spec declared, ends included or excluded
as written, also where it depends on the parameters.
"""

from __future__ import annotations

import math
import textwrap

import pytest
import torch

import irtgen
from irtgen.distributions import Beta, Gamma, Normal, StudentT

NAN, INF = math.nan, math.inf
F64 = torch.float64


def t(x) -> torch.Tensor:
    return torch.as_tensor(x, dtype=F64)


# class, valid parameters, [(parameter index, bad value)], values inside, values outside
BUILTINS = {
    "Normal": (
        Normal,
        (0.5, 2.0),
        [(1, -1.0), (1, 0.0), (0, NAN), (1, NAN)],
        [-30.0, 0.0, 0.5, 1e3],
        [NAN],
    ),
    "Gamma": (
        Gamma,
        (2.0, 1.5),
        [(0, 0.0), (0, -1.0), (1, -2.0), (0, NAN), (1, NAN)],
        [0.0, 1e-6, 0.5, 40.0],  # [0, oo), as torch declares it: 0 is inside
        [-1.0, -1e-300, NAN],
    ),
    "Beta": (
        Beta,
        (2.0, 3.0),
        [(0, 0.0), (1, -1.0), (0, NAN), (1, NAN)],
        [0.0, 0.25, 1.0],  # [0, 1]: both ends inside
        [-0.1, 1.1, NAN],
    ),
    "StudentT": (
        StudentT,
        (3.0, -1.0, 2.0),
        [(0, 0.0), (0, -1.0), (2, 0.0), (1, NAN), (0, NAN)],
        [-100.0, -1.0, 7.0],
        [NAN],
    ),
}


def _params(base, index=None, value=None):
    params = [t(v) for v in base]
    if index is not None:
        params[index] = t(value)
    return params


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_bad_parameters_raise(name):
    cls, base, bad, _, _ = BUILTINS[name]
    cls(*_params(base), validate_args=True)  # the valid ones construct
    for index, value in bad:
        pname = cls.family.param_names[index]
        with pytest.raises(ValueError, match=rf"parameter {pname}\b"):
            cls(*_params(base, index, value), validate_args=True)
        cls(*_params(base, index, value), validate_args=False)  # not checked: no error


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_one_bad_element_in_a_batch_raises(name):
    cls, base, bad, _, _ = BUILTINS[name]
    index, value = bad[0]
    params = _params(base)
    params[index] = torch.stack([params[index], params[index], t(value)])
    with pytest.raises(ValueError, match="to satisfy the constraint"):
        cls(*params, validate_args=True)


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_values_outside_the_support_raise(name):
    cls, base, _, inside, outside = BUILTINS[name]
    d = cls(*_params(base), validate_args=True)
    lp = d.log_prob(t(inside))  # no error; -inf where the density is 0 (Beta(2, 3) at 0, 1)
    assert not bool(torch.isnan(lp).any()) and bool((lp < INF).all()), lp
    c = d.cdf(t(inside))
    assert bool(((c >= 0) & (c <= 1)).all()), c
    for value in outside:
        for method in (d.log_prob, d.cdf, d.reparameterize):
            with pytest.raises(ValueError, match="within the support"):
                method(t(value))
        # one bad element among good ones
        with pytest.raises(ValueError, match="within the support"):
            d.log_prob(t([*inside, value]))
    # without validation, the same values give the documented results
    loose = cls(*_params(base), validate_args=False)
    for value in outside:
        if math.isnan(value):  # -inf (outside a bounded support) or NaN: never a density
            assert not bool(torch.isfinite(loose.log_prob(t(value))))
        else:
            assert float(loose.log_prob(t(value))) == -INF
            assert float(loose.cdf(t(value))) in (0.0, 1.0)


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_icdf_outside_unit_interval_raises(name):
    cls, base, _, _, _ = BUILTINS[name]
    d = cls(*_params(base), validate_args=True)
    for u in (-0.1, 1.5, NAN):
        with pytest.raises(ValueError, match=r"\[0, 1\]"):
            d.icdf(t([0.5, u]))


def test_expand_keeps_validation():
    d = Gamma(t(2.0), t(1.0), validate_args=True).expand((3,))
    assert d.batch_shape == (3,)
    with pytest.raises(ValueError, match="within the support"):
        d.log_prob(t([1.0, -1.0, 2.0]))
    assert bool(
        torch.isinf(
            Gamma(t(2.0), t(1.0), validate_args=False).expand((3,)).log_prob(t([1.0, -1.0, 2.0]))[1]
        )
    )


def test_shape_mismatch_raises():
    d = Normal(torch.zeros(3, dtype=F64), t(1.0), validate_args=True)
    with pytest.raises(ValueError, match="not broadcastable"):
        d.log_prob(torch.zeros(4, dtype=F64))


def test_default_follows_torch(monkeypatch):
    monkeypatch.setattr(torch.distributions.Distribution, "_validate_args", True)
    with pytest.raises(ValueError):
        Normal(t(0.0), t(-1.0))
    with pytest.raises(ValueError):
        Gamma(t(1.0), t(1.0)).log_prob(t(-1.0))
    monkeypatch.setattr(torch.distributions.Distribution, "_validate_args", False)
    Normal(t(0.0), t(-1.0))
    assert float(Gamma(t(1.0), t(1.0)).log_prob(t(-1.0))) == -INF


# -- user families: supports that depend on parameters, closed and open ends -----------------

USER_SPEC = textwrap.dedent(
    """
    import sympy as sp
    import irtgen

    z, u = sp.symbols("z u", real=True)
    m, a, rate = sp.symbols("m a rate", positive=True)
    hi = sp.Symbol("hi", real=True)

    Pareto = irtgen.Distribution(
        name="Pareto", variable=z, params={m: "positive", a: "positive"},
        support=sp.Interval(m, sp.oo), cdf=1 - (m / z) ** a,
        icdf=sp.Lambda(u, m * (1 - u) ** (-1 / a)))
    NegExp = irtgen.Distribution(
        name="NegExp", variable=z, params={rate: "positive"},
        support=sp.Interval(-sp.oo, 0), cdf=sp.exp(rate * z))
    NegExpAt = irtgen.Distribution(
        name="NegExpAt", variable=z, params={hi: "real", rate: "positive"},
        support=sp.Interval(-sp.oo, hi), cdf=sp.exp(rate * (z - hi)))
    PowerLopen = irtgen.Distribution(
        name="PowerLopen", variable=z, params={a: "positive"},
        support=sp.Interval.Lopen(0, 1), cdf=z ** a)
    """
)


@pytest.fixture(scope="module")
def user(tmp_path_factory):
    root = tmp_path_factory.mktemp("validation")
    spec = root / "user_spec.py"
    spec.write_text(USER_SPEC)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("IRTGEN_CACHE_DIR", str(root / "cache"))
        return irtgen.load(spec)


def test_parameter_dependent_support(user):
    Pareto = user.Pareto
    d = Pareto(t([1.0, 5.0]), t(3.0), validate_args=True)
    assert bool(torch.isfinite(d.log_prob(t([1.0, 5.0]))).all())  # closed at m
    assert bool(torch.isfinite(d.log_prob(t([2.0, 6.0]))).all())
    for bad in ([2.0, 4.0], [0.5, 6.0], [NAN, 6.0]):
        with pytest.raises(ValueError, match="within the support"):
            d.log_prob(t(bad))
        with pytest.raises(ValueError, match="within the support"):
            d.cdf(t(bad))
    with pytest.raises(ValueError, match="within the support"):
        d.log_prob(t(4.0))  # broadcast: 4 is below m = 5 in the second batch element
    for m, a in ((-1.0, 3.0), (0.0, 3.0), (NAN, 3.0), (2.0, NAN), (2.0, -1.0)):
        with pytest.raises(ValueError, match="to satisfy the constraint"):
            Pareto(t(m), t(a), validate_args=True)
    loose = Pareto(t(2.0), t(3.0), validate_args=False)
    assert float(loose.log_prob(t(1.0))) == -INF and float(loose.cdf(t(1.0))) == 0.0


def test_closed_upper_end_is_inside(user):
    """Interval(-oo, 0) includes 0, although torch's nearest constraint (less_than) does not."""
    d = user.NegExp(t(2.0), validate_args=True)
    assert float(d.log_prob(t(0.0))) == pytest.approx(math.log(2.0))
    assert float(d.cdf(t(0.0))) == 1.0
    for bad in (1e-9, 1.0, NAN):
        with pytest.raises(ValueError, match="within the support"):
            d.log_prob(t(bad))
    d = user.NegExpAt(t([1.0, -3.0]), t(2.0), validate_args=True)
    assert bool(torch.isfinite(d.log_prob(t([1.0, -3.0]))).all())
    with pytest.raises(ValueError, match="within the support"):
        d.cdf(t([1.0, -2.5]))


def test_open_lower_end_is_outside(user):
    """Interval.Lopen(0, 1) excludes 0, although torch's interval(0, 1) includes it."""
    d = user.PowerLopen(t(2.0), validate_args=True)
    assert float(d.log_prob(t(1.0))) == pytest.approx(math.log(2.0))
    with pytest.raises(ValueError, match="within the support"):
        d.log_prob(t(0.0))
    with pytest.raises(ValueError, match="within the support"):
        d.cdf(t(-0.5))
