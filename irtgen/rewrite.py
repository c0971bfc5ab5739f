"""Numerically safer rewrites of derived expressions.

Each rule looks at one node and returns a replacement or None. ``stabilize`` applies them bottom-up
until nothing changes. Rules only ever replace a formula by an equal one that loses less precision
in floating point:

=============================  ======================================  ============================
pattern                        becomes                                 why
=============================  ======================================  ============================
``c - c*exp(x)``               ``-c*expm1(x)``                         1 - e^x cancels for x ~ 0
``a - a*exp(x)`` (symbolic a)  ``-a*expm1(x)``                         same, after factor_terms
``c - c*b**e`` (symbolic e)    ``-c*expm1(e*log(b))``                  same, b**e = exp(e log b)
``log(1 + x)``                 ``log1p(x)``                            1 + x rounds away small x
``log(a**e * b**-e)`` (a, b>0)  ``e*log(a/b)``                         a**e overflows or underflows
``log(-expm1(x))``             ``log1mexp(x)``                         both regimes of log(1 - e^x)
``log1p(-exp(x))``             ``log1mexp(x)``
``log1p(exp(x))``              ``softplus(x)``                         e^x overflows for large x
``c + c*erf(a)``               ``2*c*ndtr(sqrt(2)*a)``                 1 + erf(a) cancels for a << 0
``c - c*erf(a)``               ``2*c*ndtr(-sqrt(2)*a)``
``erfinv(y)``                  ``ndtri((1 + y)/2)/sqrt(2)``            keeps the tail of (1 + y)/2
``(1 + exp(t))**-k``           ``sigmoid(-t)**k``                      e^t overflows for large t
``exp(t)*sigmoid(-t)**k``      ``sigmoid(t)*sigmoid(-t)**(k-1)``       inf*0 for large t
``c - c*sigmoid(x)``           ``c*sigmoid(-x)``                       1 - s cancels as s -> 1
``log(sigmoid(x))``            ``-softplus(-x)``
``log(a/b)`` (a, b symbolic)   ``log_ratio(a, b)``                     log1p((a - b)/b) when a ~ b
``c - c*gammainc(a, x)``       ``c*gammaincc(a, x)``                   1 - P cancels as P -> 1
``c - c*gammaincc(a, x)``      ``c*gammainc(a, x)``
``c - c*betainc(a, b, x, y)``  ``c*betainc(b, a, y, x)``               I_x(a,b) = 1 - I_y(b,a)
``c - c*ndtr(x)``              ``c*ndtr(-x)``
``c - c*student_t_cdf(n, t)``  ``c*student_t_cdf(n, -t)``
=============================  ======================================  ============================
"""

from __future__ import annotations

from collections.abc import Callable

import sympy as sp
from sympy.codegen.cfunctions import expm1, log1p

from irtgen.functions import (
    betainc,
    gammainc,
    gammaincc,
    log1mexp,
    log_ratio,
    ndtr,
    ndtri,
    sigmoid,
    softplus,
    student_t_cdf,
)


def _as_exp_argument(f: sp.Expr) -> sp.Expr | None:
    """x if f is exp(x) or a power b**e with a symbolic exponent (= exp(e*log(b)))."""
    if isinstance(f, sp.exp):
        return f.args[0]
    if isinstance(f, sp.Pow) and not f.exp.is_number:
        return f.exp * sp.log(f.base)
    return None


def _split_add(node: sp.Add):
    const, terms = node.as_coeff_add()
    return const, list(terms)


def _one_minus_exp(node: sp.Basic):
    if not isinstance(node, sp.Add):
        return None
    c, terms = _split_add(node)
    if c == 0:
        # a - a*exp(t): take out the common factor and look again
        factored = sp.factor_terms(node)
        if isinstance(factored, sp.Mul):
            for i, f in enumerate(factored.args):
                inner = _one_minus_exp(f) if isinstance(f, sp.Add) else None
                if inner is not None:
                    rest = factored.args[:i] + factored.args[i + 1 :]
                    return sp.Mul(*rest) * inner
        return None
    for i, t in enumerate(terms):
        coef, f = t.as_coeff_Mul()
        x = _as_exp_argument(f)
        if x is not None and coef == -c:
            rest = terms[:i] + terms[i + 1 :]
            return -c * expm1(x) + sp.Add(*rest)
    return None


def _constant_plus_term(node: sp.Basic, rewrite) -> sp.Basic | None:
    """For node = c + coef*f + rest (c a nonzero number): rewrite(c, coef, f) gives a
    replacement for c + coef*f, or None to look at the next term."""
    if not isinstance(node, sp.Add):
        return None
    c, terms = _split_add(node)
    if c == 0:
        return None
    for i, t in enumerate(terms):
        coef, f = t.as_coeff_Mul()
        new = rewrite(c, coef, f)
        if new is not None:
            return new + sp.Add(*terms[:i], *terms[i + 1 :])
    return None


def _erf_to_ndtr(node: sp.Basic):
    def rewrite(c, coef, f):
        if isinstance(f, sp.erf) and coef in (c, -c):
            sign = 1 if coef == c else -1
            return 2 * c * ndtr(sign * sp.sqrt(2) * f.args[0])
        return None

    return _constant_plus_term(node, rewrite)


def _log_of_powers(arg: sp.Basic) -> sp.Basic | None:
    """log of a power or a product of powers of positive bases, as exponent * log: powers with
    opposite exponents pair up, log(a**e * b**-e) = e*log(a/b), so that the log_ratio rule can
    take log(a/b) where a ~ b. None unless some exponent is symbolic (then the log of the power
    itself overflows or underflows long before e*log(b) does)."""
    factors = arg.args if isinstance(arg, sp.Mul) else (arg,)
    if not all(f.is_positive for f in factors):
        return None
    powers = [f.as_base_exp() for f in factors]
    if all(e.is_number for _, e in powers) or not all(e.is_real for _, e in powers):
        return None
    groups: dict[sp.Basic, tuple[sp.Basic, list, list]] = {}  # expanded e -> (e, num, den)
    for b, e in powers:
        key = sp.expand(e)
        flip = key not in groups and sp.expand(-e) in groups
        _, num, den = groups.setdefault(sp.expand(-e) if flip else key, (e, [], []))
        (den if flip else num).append(b)
    return sp.Add(*(e * sp.log(sp.Mul(*num) / sp.Mul(*den)) for e, num, den in groups.values()))


def _log_rules(node: sp.Basic):
    if not isinstance(node, sp.log):
        return None
    (arg,) = node.args
    split = _log_of_powers(arg)
    if split is not None:
        return split
    if isinstance(arg, sp.Add):
        c, terms = _split_add(arg)
        if c == 1:
            return log1p(sp.Add(*terms))
    coef, f = arg.as_coeff_Mul()
    if coef == -1 and isinstance(f, expm1):
        return log1mexp(f.args[0])
    if isinstance(arg, sp.Mul):
        num, den = arg.as_numer_denom()
        if not num.is_number and not den.is_number and den != 1:
            return log_ratio(num, den)
    return None


def _log1p_rules(node: sp.Basic):
    if not isinstance(node, log1p):
        return None
    (arg,) = node.args
    coef, f = arg.as_coeff_Mul()
    x = _as_exp_argument(f)
    if x is None:
        return None
    if coef == -1:
        return log1mexp(x)
    if coef == 1:
        return softplus(x)
    return None


def _erfinv_rule(node: sp.Basic):
    if isinstance(node, sp.erfinv):
        (y,) = node.args
        return ndtri(sp.expand((1 + y) / 2)) / sp.sqrt(2)
    return None


def _sigmoid_rules(node: sp.Basic):
    if isinstance(node, sp.Pow) and node.exp.is_integer and node.exp.is_negative:
        base = node.base
        if isinstance(base, sp.Add):
            c, terms = _split_add(base)
            if c == 1 and len(terms) == 1:
                coef, f = terms[0].as_coeff_Mul()
                t = _as_exp_argument(f)
                if t is not None and coef == 1:
                    return sigmoid(-t) ** (-node.exp)
    if isinstance(node, sp.Mul):
        factors = list(node.args)
        for i, f in enumerate(factors):
            t = _as_exp_argument(f)
            if t is None:
                continue
            for j, g in enumerate(factors):
                base, k = (g.base, g.exp) if isinstance(g, sp.Pow) else (g, sp.S.One)
                if (
                    isinstance(base, sigmoid)
                    and k.is_integer
                    and k.is_positive
                    and sp.expand(base.args[0] + t) == 0
                ):
                    rest = [h for m, h in enumerate(factors) if m not in (i, j)]
                    return sigmoid(t) * base ** (k - 1) * sp.Mul(*rest)
    if isinstance(node, sp.log) and isinstance(node.args[0], sigmoid):
        return -softplus(-node.args[0].args[0])
    return None


# f -> 1 - f, computed directly
COMPLEMENTS: dict[type, Callable[..., sp.Expr]] = {
    gammainc: lambda a, x: gammaincc(a, x),
    gammaincc: lambda a, x: gammainc(a, x),
    betainc: lambda a, b, x, y: betainc(b, a, y, x),
    ndtr: lambda x: ndtr(-x),
    sigmoid: lambda x: sigmoid(-x),
    student_t_cdf: lambda df, t: student_t_cdf(df, -t),
}


def _complement_rules(node: sp.Basic):
    def rewrite(c, coef, f):
        if coef == -c and type(f) in COMPLEMENTS:
            return c * COMPLEMENTS[type(f)](*f.args)
        return None

    return _constant_plus_term(node, rewrite)


RULES: tuple[Callable[[sp.Basic], sp.Basic | None], ...] = (
    _one_minus_exp,
    _erf_to_ndtr,
    _log_rules,
    _log1p_rules,
    _erfinv_rule,
    _sigmoid_rules,
    _complement_rules,
)


def stabilize(expr: sp.Basic, _depth: int = 0) -> sp.Basic:
    """Apply every rule bottom-up until none fires."""
    if _depth > 50:  # a rule cycle would be a bug; fail loudly rather than loop
        raise RuntimeError(f"rewrite rules do not terminate on {expr}")
    if expr.is_Atom:
        return expr
    if isinstance(expr, sp.Piecewise):
        return sp.Piecewise(*((stabilize(e, _depth), c) for e, c in expr.args), evaluate=False)
    if isinstance(expr, (sp.core.relational.Relational, sp.logic.boolalg.Boolean)):
        return expr.func(*(stabilize(a, _depth) for a in expr.args))
    node = expr.func(*(stabilize(a, _depth) for a in expr.args))
    for rule in RULES:
        new = rule(node)
        if new is not None and new != node:
            return stabilize(new, _depth + 1)
    return node
