"""Distribution declarations: what a user writes in a spec file, validated on construction.

A spec is an ordinary Python file that creates ``irtgen.Distribution`` objects at top level::

    Kumaraswamy = irtgen.Distribution(
        name="Kumaraswamy", variable=z, params={a: "positive", b: "positive"},
        support=sp.Interval(0, 1), cdf=1 - (1 - z**a)**b,
        icdf=sp.Lambda(u, (1 - (1 - u)**(1/b))**(1/a)),
    )

Everything that can be checked without deriving is checked here, so a mistake surfaces where the
user wrote it, with the distribution's name and the offending symbol in the message.
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass, field

import sympy as sp

from irtgen.constraints import Constraint, parse_constraint


class SpecError(ValueError):
    """A distribution spec is invalid; the message says which distribution and what is wrong."""


# Attributes of torch.distributions.Distribution and of generated classes: a parameter named like
# one of these would shadow it.
RESERVED_NAMES = frozenset(
    """
    arg_constraints support has_rsample has_enumerate_support batch_shape event_shape
    sample rsample log_prob cdf icdf entropy mean mode variance stddev expand reparameterize
    perplexity enumerate_support sample_n validate_args param_shape torch triton tl math
    constraints self cls value sample_shape generator scalar el ga be st rnd inversion sf pdf
    log_prob_grad cdf_grad implicit_grad in_support GeneratedDistribution Family FAMILY
    """.split()
)


def snake_case(name: str) -> str:
    """``StudentT`` -> ``student_t``, ``LogNormal`` -> ``log_normal``, ``Chi2`` -> ``chi2``."""
    s = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name)
    s = re.sub(r"(?<=[A-Z])([A-Z][a-z])", r"_\1", s)
    return s.lower()


@dataclass
class Distribution:
    """A univariate distribution declared by its CDF.

    Args:
        name: class name of the generated distribution (a Python identifier, e.g. ``"Gumbel"``).
        variable: the SymPy symbol the CDF is a function of.
        params: ordered ``{symbol: constraint name}``; constraint names are torch's
            (``"real"``, ``"positive"``, ``"unit_interval"``, ``"greater_than(1)"``, ...).
        support: a SymPy ``Interval``; its ends may depend on the parameters.
        cdf: the CDF F(variable; params) as a SymPy expression, valid on the support.
        icdf: optional closed-form inverse, ``sp.Lambda(u, expr)``; without it ``icdf`` (and
            sampling, when there is no ``sampler``) uses numeric inversion of the CDF.
        sampler: optional formula for drawing samples from the primitives of
            ``irtgen.variates`` (e.g. ``standard_gamma(a) / rate``); used for sampling instead
            of the icdf. Gradients of samples still come from the CDF alone.
        defaults: optional ``{symbol: number}`` default values for trailing parameters (as
            torch's ``StudentT(df, loc=0.0, scale=1.0)``).
        mean, variance, entropy: optional closed forms in the parameters, exposed as properties.
        parent: optional ``(name, {parameter name: expression})``: the generated class subclasses
            the built-in ``name`` (irtgen.distributions) and has that class's parameters as
            properties, e.g. Chi2 as ``("Gamma", {"concentration": df / 2, "rate": 1 / 2})``,
            as torch's Chi2 is a Gamma; ``isinstance`` checks against the parent then hold.
        mode: optional closed form of the mode (the maximum of the density) in the parameters;
            without it the build solves d log q/dz = 0 where that is a polynomial equation of
            degree at most 2 in the variable (the root clamped to the support).
        doc: optional one-paragraph description for the generated class docstring.
        max_error: optional tolerance of the build's accuracy audit (irtgen.audit): a number
            (the largest relative error allowed in float64), a pair (float64, float32) or a
            dict ``{"float64": ..., "float32": ...}``. A formula less accurate than this
            against mpmath fails the build, naming the formula, parameters and value.
    """

    name: str
    variable: sp.Symbol
    params: dict
    support: sp.Interval
    cdf: sp.Expr
    icdf: sp.Lambda | None = None
    sampler: sp.Expr | None = None
    defaults: dict | None = None
    mean: sp.Expr | None = None
    variance: sp.Expr | None = None
    entropy: sp.Expr | None = None
    mode: sp.Expr | None = None
    parent: tuple | None = None
    doc: str | None = None
    max_error: object = None
    constraints: dict = field(init=False, repr=False)
    source_file: str | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self._check_name()
        self._check_variable_and_params()
        self._check_expressions()
        self._check_max_error()

    # -- validation ---------------------------------------------------------------------------

    def _fail(self, message: str) -> SpecError:
        label = self.name if isinstance(self.name, str) else "<unnamed>"
        return SpecError(f"{label}: {message}")

    def _check_name(self) -> None:
        if (
            not isinstance(self.name, str)
            or not self.name.isidentifier()
            or keyword.iskeyword(self.name)
        ):
            raise self._fail(f"name must be a Python identifier, got {self.name!r}")
        if self.name.startswith("_"):
            raise self._fail("name must not start with an underscore")

    def _check_variable_and_params(self) -> None:
        if not isinstance(self.variable, sp.Symbol):
            raise self._fail(f"variable must be a SymPy Symbol, got {type(self.variable).__name__}")
        if not isinstance(self.params, dict) or not self.params:
            raise self._fail("params must be a non-empty dict {Symbol: constraint name}")
        parsed: dict[sp.Symbol, Constraint] = {}
        for sym, cname in self.params.items():
            if not isinstance(sym, sp.Symbol):
                raise self._fail(f"parameter keys must be SymPy Symbols, got {sym!r}")
            pname = sym.name
            if not pname.isidentifier() or keyword.iskeyword(pname) or pname.startswith("_"):
                raise self._fail(
                    f"parameter name {pname!r} must be a Python identifier without a leading "
                    "underscore (it becomes an attribute and an argument of generated code)"
                )
            if pname.endswith("_ptr"):
                raise self._fail(
                    f"parameter name {pname!r} must not end in '_ptr' (kernel pointer names)"
                )
            if pname in RESERVED_NAMES:
                raise self._fail(
                    f"parameter name {pname!r} is reserved (it would shadow a Distribution "
                    "attribute or a name used by generated code)"
                )
            if sym == self.variable:
                raise self._fail(f"{pname} is both the variable and a parameter")
            try:
                parsed[sym] = parse_constraint(cname)
            except (ValueError, TypeError) as err:
                raise self._fail(f"parameter {pname}: {err}") from None
        names = [s.name for s in parsed]
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise self._fail(f"duplicate parameter names: {', '.join(sorted(dupes))}")
        if self.variable.name in names:
            raise self._fail(f"the variable {self.variable.name} is also a parameter name")
        if not self.variable.name.isidentifier() or keyword.iskeyword(self.variable.name):
            raise self._fail(f"variable name {self.variable.name!r} must be a Python identifier")
        self.constraints = parsed

    def _check_sympy(self, what: str, expr) -> sp.Expr:
        if isinstance(expr, (int, float)):
            return sp.sympify(expr)
        if not isinstance(expr, sp.Basic):
            raise self._fail(
                f"{what} must be a SymPy expression, got {type(expr).__name__} ({expr!r}); "
                "build it from sympy symbols and functions (sp.exp, sp.log, sp.erf, ...)"
            )
        return expr

    def _check_free(self, what: str, expr: sp.Basic, allowed: set) -> None:
        stray = sorted((s for s in expr.free_symbols if s not in allowed), key=str)
        if stray:
            allowed_names = ", ".join(sorted(str(s) for s in allowed))
            raise self._fail(
                f"symbol(s) {', '.join(map(str, stray))} in the {what} are neither the variable "
                f"nor declared parameters (allowed here: {allowed_names})"
            )

    def _check_max_error(self) -> None:
        if self.max_error is None:
            return
        from irtgen.audit import parse_tolerance

        try:
            parse_tolerance(self.max_error)
        except ValueError as err:
            raise self._fail(str(err)) from None

    def _check_expressions(self) -> None:
        params = set(self.params)
        z = self.variable

        self.cdf = self._check_sympy("cdf", self.cdf)
        self._check_free("cdf", self.cdf, params | {z})
        if z not in self.cdf.free_symbols:
            raise self._fail(f"the cdf does not depend on the variable {z}")
        unused = [p.name for p in self.params if p not in self.cdf.free_symbols]
        if unused:
            raise self._fail(
                f"parameter(s) {', '.join(unused)} do not appear in the cdf, so they would "
                "have no effect and no gradient"
            )

        if not isinstance(self.support, sp.Interval):
            raise self._fail(
                f"support must be a SymPy Interval (e.g. sp.Interval(0, sp.oo)), got "
                f"{type(self.support).__name__}: {self.support!r}"
            )
        self._check_free("support", self.support, params)
        if self.support.is_empty or self.support.measure == 0:
            raise self._fail(f"support {self.support} is empty or a single point")

        if self.icdf is not None:
            if not isinstance(self.icdf, sp.Lambda) or len(self.icdf.variables) != 1:
                raise self._fail(
                    "icdf must be a SymPy Lambda of one variable, e.g. sp.Lambda(u, expr)"
                )
            (u,) = self.icdf.variables
            self._check_free("icdf", self.icdf.expr, params | {u})
            if u in params or u == z:
                raise self._fail(f"the icdf's variable {u} must be a fresh symbol")

        if self.sampler is not None:
            from irtgen.variates import Variate

            self.sampler = self._check_sympy("sampler", self.sampler)
            self._check_free("sampler", self.sampler, params)
            if not self.sampler.atoms(Variate):
                raise self._fail(
                    "the sampler draws nothing: build it from irtgen.variates primitives "
                    "(standard_normal, standard_gamma, beta_variate, student_t_variate)"
                )

        if self.defaults is not None:
            self._check_defaults()

        if self.parent is not None:
            self._check_parent(params)

        for what in ("mean", "variance", "entropy", "mode"):
            expr = getattr(self, what)
            if expr is not None:
                expr = self._check_sympy(what, expr)
                self._check_free(what, expr, params)
                setattr(self, what, expr)

    def _check_parent(self, params) -> None:
        ok = (
            isinstance(self.parent, tuple)
            and len(self.parent) == 2
            and isinstance(self.parent[0], str)
            and isinstance(self.parent[1], dict)
        )
        if not ok:
            raise self._fail(
                "parent must be (name of a built-in, {its parameter name: expression})"
            )
        name, mapping = self.parent
        exprs = {}
        for pname, expr in mapping.items():
            expr = self._check_sympy(f"parent parameter {pname}", sp.sympify(expr))
            self._check_free(f"parent parameter {pname}", expr, params)
            exprs[str(pname)] = expr
        self.parent = (name, exprs)

    def _check_defaults(self) -> None:
        if not isinstance(self.defaults, dict):
            raise self._fail("defaults must be a dict {parameter symbol: number}")
        order = list(self.params)
        for sym, value in self.defaults.items():
            if sym not in self.params:
                raise self._fail(f"default given for {sym}, which is not a parameter")
            try:
                number = float(value)
            except (TypeError, ValueError):
                raise self._fail(f"default for {sym} must be a number, got {value!r}") from None
            if not self.constraints[sym].interval.contains(sp.Float(number)):
                raise self._fail(
                    f"default {number} for {sym} violates its constraint "
                    f"{self.constraints[sym].name}"
                )
        first = min(order.index(s) for s in self.defaults)
        if any(s not in self.defaults for s in order[first:]):
            raise self._fail("parameters with defaults must come last (as in a Python signature)")
        self.defaults = {s: float(self.defaults[s]) for s in order if s in self.defaults}

    # -- conveniences -------------------------------------------------------------------------

    @property
    def snake_name(self) -> str:
        """Module name of the generated file (``StudentT`` -> ``student_t``)."""
        return snake_case(self.name)

    @property
    def param_names(self) -> list[str]:
        return [s.name for s in self.params]

    def __repr__(self) -> str:  # short: specs print in error messages and notebooks
        params = ", ".join(f"{s}: {c.name}" for s, c in self.constraints.items())
        return f"irtgen.Distribution({self.name}, {self.variable} ∈ {self.support}, {params})"
