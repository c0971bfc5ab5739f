"""Spec validation: bad declarations fail at construction with a message that names the
distribution and the offending thing; good ones construct and expose their parsed pieces."""

from __future__ import annotations

import pytest
import sympy as sp
import torch
from torch.distributions import constraints

import irtgen
from irtgen.constraints import parse_constraint, support_constraint_source
from irtgen.spec import RESERVED_NAMES, snake_case

z, u, v = sp.symbols("z u v", real=True)
loc = sp.Symbol("loc", real=True)
scale = sp.Symbol("scale", positive=True)
bogus = sp.Symbol("bogus", real=True)

NAME = "Gadget"  # distinctive: every error message must carry it


def _logistic_cdf(zz=z, mu=loc, s=scale):
    return 1 / (1 + sp.exp(-(zz - mu) / s))


def _variates():
    import irtgen.variates

    return irtgen.variates


def make(**overrides) -> irtgen.Distribution:
    """A valid Logistic-like spec named ``Gadget``, with some fields replaced."""
    kwargs = dict(
        name=NAME,
        variable=z,
        params={loc: "real", scale: "positive"},
        support=sp.Interval(-sp.oo, sp.oo),
        cdf=_logistic_cdf(),
        icdf=sp.Lambda(u, loc + scale * (sp.log(u) - sp.log(1 - u))),
    )
    kwargs.update(overrides)
    return irtgen.Distribution(**kwargs)


def _params_named(name: str, constraint: str = "positive"):
    """Params {loc, scale, <name>} and a cdf in which all three appear."""
    extra = sp.Symbol(name, positive=True)
    cdf = _logistic_cdf() ** extra
    return {loc: "real", scale: "positive", extra: constraint}, cdf


# -- the baseline is valid --------------------------------------------------------------------


def test_valid_spec_constructs():
    d = make()
    assert d.name == NAME
    assert d.param_names == ["loc", "scale"]
    assert list(d.constraints) == [loc, scale]
    assert d.constraints[loc].torch_source == "constraints.real"
    assert d.constraints[scale].torch_source == "constraints.positive"
    assert d.constraints[scale].assumptions == {"positive": True}
    assert d.snake_name == "gadget"
    assert NAME in repr(d)


def test_defaults_become_keyword_arguments():
    d = make(defaults={loc: 0, scale: 1})
    assert d.defaults == {loc: 0.0, scale: 1.0}
    from irtgen.codegen.module import render_module
    from irtgen.derive import derive

    assert "def __init__(self, loc=0.0, scale=1.0, validate_args=None)" in render_module(
        derive(d), "spec.py", "irtgen build spec.py"
    )


def test_sampler_is_kept():
    d = make(sampler=loc + scale * _variates().standard_normal())
    assert d.sampler.has(_variates().standard_normal)


def test_python_numbers_are_accepted_for_moments():
    d = make(mean=0, variance=scale**2 * sp.pi**2 / 3)
    assert isinstance(d.mean, sp.Basic)
    assert d.mean == 0


# -- bad specs --------------------------------------------------------------------------------


def _dupe_params():
    # two distinct Symbols that share a name (different assumptions)
    loc2 = sp.Symbol("loc")
    return {loc: "real", loc2: "real", scale: "positive"}


STRAY_CDF = 1 / (1 + sp.exp(-(z - loc) / (scale * bogus)))

BAD_CASES = [
    ("stray-symbol-in-cdf", dict(cdf=STRAY_CDF), ["bogus", "cdf"]),
    (
        "stray-symbol-named-like-param-but-different",
        # 'scale' without assumptions is a different Symbol than the declared positive 'scale'
        dict(cdf=_logistic_cdf(s=sp.Symbol("scale"))),
        ["scale", "cdf", "neither"],
    ),
    ("cdf-lambda", dict(cdf=lambda x: 1 - sp.exp(-x)), ["cdf", "SymPy expression", "function"]),
    ("cdf-string", dict(cdf="1/(1 + exp(-(z - loc)/scale))"), ["cdf", "SymPy expression", "str"]),
    ("cdf-none", dict(cdf=None), ["cdf", "SymPy expression", "NoneType"]),
    ("support-finiteset", dict(support=sp.FiniteSet(0, 1)), ["support", "Interval", "FiniteSet"]),
    ("support-tuple", dict(support=(-sp.oo, sp.oo)), ["support", "Interval", "tuple"]),
    ("support-union", dict(support=sp.Interval(-2, -1) | sp.Interval(1, 2)), ["support", "Union"]),
    # sympy turns a degenerate Interval into a FiniteSet / EmptySet at construction
    ("support-point", dict(support=sp.Interval(1, 1)), ["support", "Interval", "FiniteSet"]),
    ("support-empty", dict(support=sp.Interval(2, 1)), ["support", "Interval", "EmptySet"]),
    (
        "support-stray-symbol",
        dict(support=sp.Interval(bogus, sp.oo)),
        ["bogus", "support"],
    ),
    (
        "unknown-constraint",
        dict(params={loc: "real", scale: "postive"}),
        ["scale", "unknown constraint", "postive"],
    ),
    (
        "constraint-not-a-string",
        dict(params={loc: "real", scale: constraints.positive}),
        ["scale", "constraint must be a string"],
    ),
    (
        "constraint-bad-arity",
        dict(params={loc: "real", scale: "interval(0)"}),
        ["scale", "interval(0)", "2 numeric argument"],
    ),
    (
        "constraint-non-numeric-arg",
        dict(params={loc: "real", scale: "greater_than(a)"}),
        ["scale", "greater_than(a)", "numbers"],
    ),
    (
        "constraint-empty",
        dict(params={loc: "real", scale: "interval(1, 0)"}),
        ["scale", "interval(1, 0)", "no value"],
    ),
    (
        "param-not-in-cdf",
        dict(
            params={loc: "real", scale: "positive", sp.Symbol("shape", positive=True): "positive"}
        ),
        ["shape", "do not appear in the cdf"],
    ),
    (
        "cdf-without-variable",
        dict(cdf=1 / (1 + sp.exp(-loc / scale))),
        ["does not depend on the variable z"],
    ),
    (
        "icdf-plain-expression",
        dict(icdf=loc + scale * (sp.log(u) - sp.log(1 - u))),
        ["icdf", "Lambda of one variable"],
    ),
    (
        "icdf-python-function",
        dict(icdf=lambda p: loc + scale * sp.log(p / (1 - p))),
        ["icdf", "Lambda of one variable"],
    ),
    (
        "icdf-two-variables",
        dict(icdf=sp.Lambda((u, v), loc + scale * (sp.log(u) - sp.log(v)))),
        ["icdf", "Lambda of one variable"],
    ),
    (
        "icdf-stray-symbol",
        dict(icdf=sp.Lambda(u, loc + bogus * (sp.log(u) - sp.log(1 - u)))),
        ["bogus", "icdf"],
    ),
    (
        "icdf-variable-is-a-parameter",
        dict(icdf=sp.Lambda(loc, scale * (sp.log(loc) - sp.log(1 - loc)))),
        ["icdf", "loc", "fresh symbol"],
    ),
    (
        "stray-symbol-in-mean",
        dict(mean=loc + bogus),
        ["bogus", "mean"],
    ),
    (
        "mean-not-sympy",
        dict(mean="loc"),
        ["mean", "SymPy expression", "str"],
    ),
    ("variable-not-symbol", dict(variable="z"), ["variable", "Symbol", "str"]),
    ("params-empty", dict(params={}), ["params", "non-empty"]),
    ("params-not-dict", dict(params=[loc, scale]), ["params", "non-empty dict"]),
    ("param-key-not-symbol", dict(params={"loc": "real", scale: "positive"}), ["'loc'", "Symbol"]),
    ("param-is-the-variable", dict(params={loc: "real", z: "real"}), ["z", "variable"]),
    (
        "param-shares-the-variable-name",
        dict(params={loc: "real", scale: "positive", sp.Symbol("z", positive=True): "positive"}),
        ["z", "variable"],
    ),
    ("duplicate-param-names", dict(params=_dupe_params()), ["duplicate parameter names", "loc"]),
    (
        "icdf-uses-the-variable",
        dict(icdf=sp.Lambda(u, z + scale * (sp.log(u) - sp.log(1 - u)))),
        ["z", "icdf", "neither"],
    ),
    ("sampler-draws-nothing", dict(sampler=loc + scale), ["sampler draws nothing", "variates"]),
    (
        "sampler-stray-symbol",
        dict(sampler=loc + bogus * _variates().standard_normal()),
        ["bogus", "sampler", "neither"],
    ),
    ("sampler-not-sympy", dict(sampler="loc"), ["sampler", "SymPy expression"]),
    ("default-not-a-param", dict(defaults={bogus: 1.0}), ["default", "bogus", "not a parameter"]),
    ("default-not-trailing", dict(defaults={loc: 0.0}), ["defaults must come last"]),
    ("default-violates", dict(defaults={scale: -1.0}), ["default -1.0", "scale", "positive"]),
    ("default-not-number", dict(defaults={scale: "one"}), ["default for scale", "number"]),
]


@pytest.mark.parametrize("overrides, needles", [pytest.param(o, n, id=i) for i, o, n in BAD_CASES])
def test_bad_spec_raises_spec_error(overrides, needles):
    with pytest.raises(irtgen.SpecError) as info:
        make(**overrides)
    message = str(info.value)
    assert message.startswith(f"{NAME}: "), message
    for needle in needles:
        assert needle in message, f"{needle!r} not in {message!r}"


def test_spec_error_is_a_value_error():
    assert issubclass(irtgen.SpecError, ValueError)
    with pytest.raises(ValueError):
        make(cdf="not sympy")


@pytest.mark.parametrize(
    "pname", ["mean", "sample", "rsample", "log_prob", "variance", "support", "tl", "self"]
)
def test_reserved_parameter_names(pname):
    assert pname in RESERVED_NAMES
    params, cdf = _params_named(pname)
    with pytest.raises(irtgen.SpecError) as info:
        make(params=params, cdf=cdf)
    message = str(info.value)
    assert message.startswith(f"{NAME}: ")
    assert repr(pname) in message and "reserved" in message


@pytest.mark.parametrize("pname", ["x_ptr", "scale_ptr", "out_ptr"])
def test_parameter_names_ending_in_ptr(pname):
    params, cdf = _params_named(pname)
    with pytest.raises(irtgen.SpecError) as info:
        make(params=params, cdf=cdf)
    message = str(info.value)
    assert message.startswith(f"{NAME}: ")
    assert repr(pname) in message and "_ptr" in message


@pytest.mark.parametrize("pname", ["_hidden", "lambda", "not-ok", "class"])
def test_parameter_names_must_be_identifiers(pname):
    params, cdf = _params_named(pname)
    with pytest.raises(irtgen.SpecError) as info:
        make(params=params, cdf=cdf)
    message = str(info.value)
    assert message.startswith(f"{NAME}: ")
    assert repr(pname) in message


@pytest.mark.parametrize("pname", ["ptr", "ptr_x", "sampler", "means", "rate"])
def test_near_miss_parameter_names_are_fine(pname):
    params, cdf = _params_named(pname)
    d = make(params=params, cdf=cdf)
    assert d.param_names == ["loc", "scale", pname]


@pytest.mark.parametrize("bad", ["1Bad", "my-dist", "Gad get", "class", "", "_Private", "dist.x"])
def test_invalid_class_name(bad):
    with pytest.raises(irtgen.SpecError) as info:
        make(name=bad)
    message = str(info.value)
    assert "name" in message
    if bad:
        # the message is labelled with the (bad) name and quotes it
        assert message.startswith(f"{bad}: ")
        if not bad.startswith("_"):
            assert repr(bad) in message


@pytest.mark.parametrize("bad", [None, 3, b"Gadget"])
def test_non_string_class_name(bad):
    with pytest.raises(irtgen.SpecError) as info:
        make(name=bad)
    message = str(info.value)
    assert message.startswith("<unnamed>: ")
    assert repr(bad) in message


# -- names ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, snake",
    [
        ("StudentT", "student_t"),
        ("LogNormal", "log_normal"),
        ("Normal", "normal"),
        ("Chi2", "chi2"),
        ("VonMises", "von_mises"),
        ("HTTPServer", "http_server"),
        ("LKJCholesky", "lkj_cholesky"),
        ("Beta2Prime", "beta2_prime"),
        ("Kumaraswamy", "kumaraswamy"),
        ("already_snake", "already_snake"),
    ],
)
def test_snake_name(name, snake):
    assert snake_case(name) == snake
    assert make(name=name).snake_name == snake


# -- constraints ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, norm, source, interval, assumptions",
    [
        ("real", "real", "constraints.real", sp.Interval(-sp.oo, sp.oo), {"real": True}),
        (
            "positive",
            "positive",
            "constraints.positive",
            sp.Interval.open(0, sp.oo),
            {"positive": True},
        ),
        (
            " nonnegative ",
            "nonnegative",
            "constraints.nonnegative",
            sp.Interval(0, sp.oo),
            {"nonnegative": True, "real": True},
        ),
        (
            "unit_interval",
            "unit_interval",
            "constraints.unit_interval",
            sp.Interval(0, 1),
            {"nonnegative": True},
        ),
        (
            "greater_than(1)",
            "greater_than(1)",
            "constraints.greater_than(1.0)",
            sp.Interval.open(1, sp.oo),
            {"positive": True},
        ),
        (
            "greater_than( 1 )",
            "greater_than(1)",
            "constraints.greater_than(1.0)",
            sp.Interval.open(1, sp.oo),
            {"positive": True},
        ),
        (
            "greater_than(0)",
            "greater_than(0)",
            "constraints.greater_than(0.0)",
            sp.Interval.open(0, sp.oo),
            {"positive": True},
        ),
        (
            "greater_than(-2.5)",
            "greater_than(-2.5)",
            "constraints.greater_than(-2.5)",
            sp.Interval.open(sp.Rational(-5, 2), sp.oo),
            {"real": True},
        ),
        (
            "greater_than_eq(0)",
            "greater_than_eq(0)",
            "constraints.greater_than_eq(0.0)",
            sp.Interval(0, sp.oo),
            {"nonnegative": True, "real": True},
        ),
        (
            "less_than(2.5)",
            "less_than(2.5)",
            "constraints.less_than(2.5)",
            sp.Interval.open(-sp.oo, sp.Rational(5, 2)),
            {"real": True},
        ),
        (
            "interval(0, 1)",
            "interval(0, 1)",
            "constraints.interval(0.0, 1.0)",
            sp.Interval(0, 1),
            {"nonnegative": True, "real": True},
        ),
        (
            "interval(-1,1)",
            "interval(-1, 1)",
            "constraints.interval(-1.0, 1.0)",
            sp.Interval(-1, 1),
            {"real": True},
        ),
        (
            "interval(0.5, 2)",
            "interval(0.5, 2)",
            "constraints.interval(0.5, 2.0)",
            sp.Interval(sp.Rational(1, 2), 2),
            {"positive": True},
        ),
        (
            "half_open_interval(0, 1)",
            "half_open_interval(0, 1)",
            "constraints.half_open_interval(0.0, 1.0)",
            sp.Interval.Ropen(0, 1),
            {"nonnegative": True, "real": True},
        ),
    ],
)
def test_parse_constraint(text, norm, source, interval, assumptions):
    c = parse_constraint(text)
    assert c.name == norm
    assert c.torch_source == source
    assert c.interval == interval
    assert c.assumptions == assumptions
    # the source is a real torch constraint that agrees with the interval away from the ends
    torch_c = eval(source, {"constraints": constraints})
    lo, hi = interval.start, interval.end
    probes = [-1e6, -3.0, -1.0, -0.5, 0.25, 0.5, 0.75, 1.5, 3.0, 1e6]
    for x in probes:
        if x in (lo, hi):
            continue
        inside = bool(interval.contains(sp.Float(x)))
        assert bool(torch_c.check(torch.tensor(x, dtype=torch.float64))) == inside, x


@pytest.mark.parametrize(
    "text", ["postive", "Positive", "greater_than", "greater_than()", "between(0, 1)", ""]
)
def test_parse_constraint_rejects(text):
    with pytest.raises(ValueError) as info:
        parse_constraint(text)
    assert repr(text.strip()) in str(info.value) or repr(text) in str(info.value)


@pytest.mark.parametrize(
    "cname, source",
    [
        ("greater_than(1)", "constraints.greater_than(1.0)"),
        ("interval(0, 1)", "constraints.interval(0.0, 1.0)"),
        ("half_open_interval(-1, 2)", "constraints.half_open_interval(-1.0, 2.0)"),
        ("unit_interval", "constraints.unit_interval"),
    ],
)
def test_parameterised_constraint_in_a_spec(cname, source):
    shape = sp.Symbol("shape", positive=True)
    d = make(
        params={loc: "real", scale: "positive", shape: cname},
        cdf=_logistic_cdf() ** shape,
    )
    assert d.constraints[shape].torch_source == source
    assert d.param_names == ["loc", "scale", "shape"]


@pytest.mark.parametrize(
    "interval, source",
    [
        (sp.Interval(-sp.oo, sp.oo), "constraints.real"),
        (sp.Interval(0, sp.oo), "constraints.nonnegative"),
        (sp.Interval.open(0, sp.oo), "constraints.positive"),
        (sp.Interval.Lopen(0, sp.oo), "constraints.positive"),
        (sp.Interval(0, 1), "constraints.unit_interval"),
        (sp.Interval.open(0, 1), "constraints.interval(0.0, 1.0)"),
        (sp.Interval.Ropen(0, 1), "constraints.half_open_interval(0.0, 1.0)"),
        (sp.Interval(1, sp.oo), "constraints.greater_than_eq(1.0)"),
        (sp.Interval.open(1, sp.oo), "constraints.greater_than(1.0)"),
        (sp.Interval.open(-2, sp.oo), "constraints.greater_than(-2.0)"),
        (sp.Interval(sp.Rational(1, 2), sp.oo), "constraints.greater_than_eq(0.5)"),
        (sp.Interval(-sp.oo, 2), "constraints.less_than(2.0)"),
        (sp.Interval(-sp.oo, 0), "constraints.less_than(0.0)"),
        (sp.Interval(-1, 1), "constraints.interval(-1.0, 1.0)"),
        (sp.Interval(0, 2), "constraints.interval(0.0, 2.0)"),
        (sp.Interval(sp.pi, 4), "constraints.interval(3.141592653589793, 4.0)"),
    ],
)
def test_support_constraint_source(interval, source):
    assert support_constraint_source(interval) == source
    torch_c = eval(source, {"constraints": constraints})
    for x in [-1e6, -2.5, -1.5, -0.5, 0.5, 0.9, 1.5, 3.5, 1e6]:
        inside = bool(interval.contains(sp.Float(x)))
        assert bool(torch_c.check(torch.tensor(x, dtype=torch.float64))) == inside, x


def test_support_may_depend_on_parameters():
    low = sp.Symbol("low", real=True)
    d = make(
        params={low: "real", scale: "positive"},
        support=sp.Interval(low, sp.oo),
        cdf=1 - sp.exp(-(z - low) / scale),
        icdf=sp.Lambda(u, low - scale * sp.log(1 - u)),
    )
    assert d.support.start == low
