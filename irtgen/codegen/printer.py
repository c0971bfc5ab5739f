"""SymPy expression -> scalar source (irtgen.scalar, for numba and Triton) or torch source.

Rules that both backends follow:

* Every subexpression without free symbols (``sqrt(2*pi)``, ``log(2)/2``) is folded to one
  float literal with 17 significant digits (shorter when the value is short, e.g. ``0.5``).
  Triton needs this: a literal inside a math call (``tl.sqrt(2.0)``) is float32 even in a float64
  kernel.
* Numeric terms of a sum are collected into one literal.
* Piecewise becomes nested ``where``; the first true condition wins, as in SymPy.
* Functions come from the table in ``irtgen.codegen.functions``; anything else raises
  ``UnsupportedFunctionError`` naming the function.

Scalar source only (the per-element formulas of generated modules, compiled by numba and by
Triton): the printer never emits ``**`` (Triton has none). Integer powers become multiplications
(``x * x``) or ``el.powi(x, n)``, ±1/2 become sqrt/rsqrt, other constant exponents
``tl.exp(c * tl.log(x))`` and symbolic exponents ``el.pow(x, e)``; logical operators are
``&``, ``|`` and ``not`` (``~`` of a bool is an integer in Python and numba). The torch source
is what the parameter-only properties (mean, variance, entropy) are printed in: autograd
differentiates them.
"""

from __future__ import annotations

import math

import sympy as sp
from sympy.logic.boolalg import BooleanFalse, BooleanTrue

from irtgen.codegen.functions import (
    BINARY_CHAINS,
    FUNCTIONS,
    PART_FUNCTIONS,
    UnsupportedFunctionError,
)

# Precedence levels of the emitted Python.
_ATOM, _POW, _UNARY, _MUL, _ADD, _CMP, _AND, _OR = 100, 60, 55, 50, 40, 30, 20, 10


def float_literal(value: float) -> str:
    """A Python float literal that reproduces ``value`` exactly."""
    value = float(value)
    if math.isinf(value) or math.isnan(value):
        raise ValueError("non-finite values are printed by the backend")
    short = repr(value)
    digits = len(short.replace("-", "").replace(".", "").split("e")[0].strip("0"))
    text = short if digits <= 6 else format(value, ".17g")
    if "." not in text and "e" not in text and "inf" not in text and "nan" not in text:
        text += ".0"
    return text


class Printer:
    """Prints one expression at a time for one backend ("scalar" or "torch").

    ``ref`` names a tensor argument whose dtype constants take when an expression (or both
    branches of a where) would otherwise be a bare Python number.
    """

    def __init__(self, backend: str, ref: str):
        if backend not in ("torch", "scalar"):
            raise ValueError(f"unknown backend {backend!r}")
        self.backend = backend
        self.ref = ref
        self.ns = "torch" if backend == "torch" else "tl"

    # -- entry points -------------------------------------------------------------------------

    def doprint(self, expr: sp.Basic) -> str:
        return self._print(sp.sympify(expr))[0]

    def output(self, expr: sp.Basic) -> str:
        """Like doprint, but a constant result becomes a tensor of ref's dtype."""
        expr = sp.sympify(expr)
        if isinstance(expr, BooleanTrue):  # e.g. "inside the support" on the whole real line
            return f"{self.ref} == {self.ref}"
        if not expr.free_symbols and not isinstance(expr, sp.Piecewise):
            return self._constant_tensor(self._number(expr)[0])
        return self.doprint(expr)

    # -- helpers ------------------------------------------------------------------------------

    def _tensor_arg(self, a: sp.Basic) -> str:
        return self._constant_tensor(self._number(a)[0]) if a.is_number else self._print(a)[0]

    def _constant_tensor(self, literal: str) -> str:
        if self.backend == "torch":
            return f"torch.full_like({self.ref}, {literal})"
        if literal.startswith("-"):
            return f"(tl.zeros_like({self.ref}) - {literal[1:]})"
        return f"(tl.zeros_like({self.ref}) + {literal})"

    def _wrap(self, printed: tuple[str, int], level: int) -> str:
        text, prec = printed
        return f"({text})" if prec <= level else text

    def _number(self, expr: sp.Basic) -> tuple[str, int]:
        if expr is sp.S.NaN:
            v = math.nan
        elif expr in (sp.oo, -sp.oo):
            v = math.inf if expr == sp.oo else -math.inf
        else:
            re, im = sp.N(expr, 30).as_real_imag()
            if im != 0 or expr.has(sp.zoo):
                raise ValueError(f"complex or undefined constant {expr} in a formula")
            v = float(re)
        if math.isnan(v):
            text = 'float("nan")' if self.backend == "scalar" else "math.nan"
            return text, _ATOM
        if math.isinf(v):
            inf = 'float("inf")' if self.backend == "scalar" else "math.inf"
            return (f"-{inf}", _UNARY) if v < 0 else (inf, _ATOM)
        lit = float_literal(v)
        return (lit, _UNARY) if lit.startswith("-") else (lit, _ATOM)

    def _call(self, template: str, args: list[sp.Basic]) -> tuple[str, int]:
        return template.format(*(self._print(a)[0] for a in args)), _ATOM

    # -- dispatch -----------------------------------------------------------------------------

    def _print(self, expr: sp.Basic) -> tuple[str, int]:
        if isinstance(expr, (BooleanTrue, BooleanFalse)):
            return ("True" if expr else "False"), _ATOM
        if isinstance(expr, sp.Symbol):
            return expr.name, _ATOM
        if expr.is_number and not isinstance(expr, sp.logic.boolalg.Boolean):
            return self._number(expr)
        if isinstance(expr, sp.Add):
            return self._print_add(expr)
        if isinstance(expr, sp.Mul):
            return self._print_mul(expr)
        if isinstance(expr, sp.Pow):
            return self._print_pow(expr.base, expr.exp)
        if isinstance(expr, sp.Piecewise):
            return self._print_piecewise(expr)
        if isinstance(expr, sp.core.relational.Relational):
            op = {"<": "<", "<=": "<=", ">": ">", ">=": ">=", "==": "==", "!=": "!="}[expr.rel_op]
            lhs = self._wrap(self._print(expr.lhs), _CMP)
            rhs = self._wrap(self._print(expr.rhs), _CMP)
            return f"{lhs} {op} {rhs}", _CMP
        if isinstance(expr, sp.And):
            return " & ".join(f"({self._print(a)[0]})" for a in expr.args), _AND
        if isinstance(expr, sp.Or):
            return " | ".join(f"({self._print(a)[0]})" for a in expr.args), _OR
        if isinstance(expr, sp.Not):
            if self.backend == "scalar":
                return f"(not ({self._print(expr.args[0])[0]}))", _ATOM
            return f"~({self._print(expr.args[0])[0]})", _UNARY
        if type(expr) in BINARY_CHAINS:
            template = getattr(BINARY_CHAINS[type(expr)], self.backend)

            def arg(a):  # torch.maximum(0.0, z) is a TypeError: constants become tensors
                return (
                    self._constant_tensor(self._number(a)[0]) if a.is_number else self._print(a)[0]
                )

            text = arg(expr.args[0])
            for a in expr.args[1:]:
                text = template.format(text, arg(a))
            return text, _ATOM
        if isinstance(expr, sp.polygamma) and expr.args[0] != 0:
            raise UnsupportedFunctionError(
                f"function polygamma of order {expr.args[0]} (in {expr}) is not supported; "
                "only polygamma(0, x) (digamma)"
            )
        if isinstance(expr, sp.Function):
            impl = FUNCTIONS.get(type(expr)) or PART_FUNCTIONS.get(type(expr))
            if impl is None or getattr(impl, self.backend) is None:
                raise UnsupportedFunctionError(
                    f"function {type(expr).__name__} (in {expr}) has no {self.backend} "
                    "implementation in irtgen's function table"
                )
            template = getattr(impl, self.backend)
            if impl.tensor_args:
                # irtgen's special functions take tensors: betaln(df/2, 1/2) gets a tensor 1/2
                return template.format(*(self._tensor_arg(a) for a in expr.args)), _ATOM
            return self._call(template, list(expr.args))
        raise UnsupportedFunctionError(f"cannot print {type(expr).__name__}: {expr}")

    def _print_add(self, expr: sp.Add) -> tuple[str, int]:
        const = sp.S.Zero
        terms = []
        for t in expr.as_ordered_terms():
            if t.is_number:
                const += t
            else:
                terms.append(t)
        parts: list[tuple[str, str]] = []  # (sign, text)
        for t in terms:
            coeff, rest = t.as_coeff_Mul()
            if coeff.is_negative:
                parts.append(("-", self._wrap(self._print(-t), _ADD)))
            else:
                parts.append(("+", self._wrap(self._print(t), _ADD - 1)))
        if const != 0:
            value = float(sp.N(const, 30))
            parts.append(("-", float_literal(-value)) if value < 0 else ("+", float_literal(value)))
        # lead with a positive term when there is one: z - loc rather than -loc + z
        first_pos = next((i for i, (sign, _) in enumerate(parts) if sign == "+"), 0)
        parts.insert(0, parts.pop(first_pos))
        sign0, text = parts[0]
        out = f"-{text}" if sign0 == "-" else text
        for sign, text in parts[1:]:
            out += f" {sign} {text}"
        return out, _ADD

    def _print_mul(self, expr: sp.Mul) -> tuple[str, int]:
        # all numeric factors (rationals, sqrt(2), pi, ...) fold into one coefficient
        numeric, others = sp.S.One, []
        for f in sp.Mul.make_args(expr):
            if f.is_number:
                numeric *= f
            else:
                others.append(f)
        coeff = float(sp.N(numeric, 30))
        if coeff < 0:
            inner = self._print_mul_positive(-coeff, others)
            # negation is exact, so -a * b needs no parentheses around a * b
            return f"-{self._wrap(inner, _MUL - 1)}", _UNARY
        return self._print_mul_positive(coeff, others)

    def _print_mul_positive(self, coeff: float, factors: list[sp.Expr]) -> tuple[str, int]:
        num, den = [], []
        for f in factors:
            if isinstance(f, sp.Pow) and f.exp.is_number and f.exp.is_negative:
                den.append(f.base if f.exp == -1 else sp.Pow(f.base, -f.exp))
            else:
                num.append(f)
        if not den and len(num) == 1 and coeff == 1:
            return self._print(num[0])
        num_text = [self._wrap(self._print(f), _MUL) for f in num]
        if coeff != 1 or not num_text:
            num_text.insert(0, float_literal(coeff))
        numerator = " * ".join(num_text)
        if not den:
            return numerator, _MUL
        den_text = [self._wrap(self._print(f), _MUL) for f in den]
        denominator = den_text[0] if len(den_text) == 1 else "(" + " * ".join(den_text) + ")"
        return f"{numerator} / {denominator}", _MUL

    def _print_pow(self, base: sp.Expr, exp: sp.Expr) -> tuple[str, int]:
        if exp.is_number:
            if exp.is_integer:
                n = int(exp)
                if n < 0:
                    pos = self._print_pow(base, sp.Integer(-n))
                    return f"1.0 / {self._wrap(pos, _MUL)}", _MUL
                return self._integer_power(base, n)
            if exp == sp.Rational(1, 2):
                return self._call(f"{self.ns}.sqrt({{0}})", [base])
            if exp == -sp.Rational(1, 2):
                return self._call(f"{self.ns}.rsqrt({{0}})", [base])
            # other constant exponent: exp(c log b); b**c with c folded
            c = self._number(exp)[0]
            b = self._print(base)[0]
            return f"{self.ns}.exp({c} * {self.ns}.log({b}))", _ATOM
        if base.is_number:
            # b**e = exp(e log b) with log b folded
            log_b = sp.log(base)
            return self._call(f"{self.ns}.exp({{0}})", [sp.Mul(exp, log_b, evaluate=False)])
        fn = "torch.pow({0}, {1})" if self.backend == "torch" else "el.pow({0}, {1})"
        return self._call(fn, [base, exp])

    def _integer_power(self, base: sp.Expr, n: int) -> tuple[str, int]:
        if n == 0:
            return self._constant_tensor("1.0"), _ATOM
        if n == 1:
            return self._print(base)
        b = self._print(base)
        if self.backend == "torch":
            return f"{self._wrap(b, _POW)}**{n}", _POW
        if isinstance(base, sp.Symbol) and n <= 3:
            return " * ".join([b[0]] * n), _MUL
        if n == 2:
            return f"el.square({b[0]})", _ATOM
        return f"el.powi({b[0]}, {n})", _ATOM

    def _print_piecewise(self, expr: sp.Piecewise) -> tuple[str, int]:
        pieces = list(expr.args)
        if pieces[-1][1] != sp.true:
            raise ValueError(f"Piecewise without a default (True) piece: {expr}")
        where = f"{self.ns}.where"
        out = self._branch(pieces[-1][0], force=all(e.is_number for e, _ in pieces))
        for e, c in reversed(pieces[:-1]):
            out = f"{where}({self._print(c)[0]}, {self._branch(e)}, {out})"
        return out, _ATOM

    def _branch(self, expr: sp.Basic, force: bool = False) -> str:
        if force and expr.is_number:
            return self._constant_tensor(self._number(expr)[0])
        return self._print(expr)[0]
