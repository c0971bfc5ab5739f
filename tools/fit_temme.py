"""Compute the coefficient tables of irtgen's gamma-function special functions.

Running this script rewrites ``irtgen/scalar/gamma_tables.py``: the tables unrolled by Horner's
rule into ``@scalar`` functions (irtgen.scalar.source) for irtgen.scalar.gamma, the coefficients
as literals (a scalar function cannot loop over a table of float constants: Triton would round a
float global to float32). Computing them takes about a second.

    python tools/fit_temme.py

tests/scalar/test_gamma.py checks that the committed module is what ``render`` returns.

What is computed, all from the mathematical definitions:

* Temme's uniform expansion of Q(a, x) (DLMF 8.12): with lambda = x/a, mu = lambda - 1 and
  eta^2/2 = mu - log(lambda), the Maclaurin coefficients of c_k(eta), k < TEMME_TERMS. The
  series mu(eta) follows exactly (rational arithmetic) from the ODE mu mu' = eta (1 + mu) that
  eta^2/2 = mu - log(1 + mu) implies; then c_0 = 1/mu - 1/eta and
  c_k = c_{k-1}'(eta)/eta + (-1)^k g_k/mu (DLMF 8.12.9-10), g_k the coefficients of
  Gamma*(a) ~ sum g_k a^-k (DLMF 5.11.3). The poles cancel exactly; each series is cut where
  its terms stay below 1e-19 a_min^k for |eta| <= ETA_MAX.
* lgamma(x) = (x - 1) h1(x) on [0.5, 1.5] and (x - 2) h2(x) on [1.5, 2.5], digamma(x) =
  (x - x0) g(x) on [1, 2] (x0 the positive root of digamma): h1, h2, g as Chebyshev fits in
  s = 2 (x - mid) at 50 digits. Writing the zero as an exact factor keeps relative accuracy
  next to it.
* The Stirling series of stirlerr(x) = lgamma(x) - (x - 1/2) log x + x - log(2 pi)/2 and the
  asymptotic series of digamma(x) - log x + 1/(2x), for x >= 10.
"""

from __future__ import annotations

import sys
from fractions import Fraction
from pathlib import Path

import mpmath as mp

mp.mp.dps = 50
OUT = Path(__file__).resolve().parent.parent / "irtgen" / "scalar" / "gamma_tables.py"

TEMME_TERMS = 12  # c_0 .. c_11: the first omitted term is below 1e-17 of the sum at a = 20
TEMME_A_MIN = 20.0  # smallest a the expansion is used for
ETA_MAX = 0.5  # largest |eta| used: |x - a| <= 0.4 a gives |eta| <= 0.471
STIRLING_TERMS = 9  # enough for x >= 10


def _bernoulli(n: int) -> Fraction:
    p, q = mp.bernfrac(n)
    return Fraction(int(p), int(q))


def _mu_of_eta(m: int) -> list[Fraction]:
    """Maclaurin coefficients of mu(eta) up to eta^m, from mu mu' = eta (1 + mu), mu ~ eta."""
    al = [Fraction(0), Fraction(1)]
    for n in range(2, m + 1):
        s = al[n - 1] - sum((n + 1 - j) * al[j] * al[n + 1 - j] for j in range(2, n))
        al.append(s / (n + 1))
    return al


def _reciprocal(w: list[Fraction], m: int) -> list[Fraction]:
    r = [1 / w[0]]
    for n in range(1, m + 1):
        r.append(-sum(w[j] * r[n - j] for j in range(1, min(n, len(w) - 1) + 1)) / w[0])
    return r


def _gamma_star(k: int) -> list[Fraction]:
    """g_0..g_k of Gamma*(a) = exp(sum_j B_2j / (2j (2j - 1)) a^(1 - 2j)) = sum g_k a^-k."""
    s = [Fraction(0)] * (k + 1)
    for j in range(1, k // 2 + 2):
        if 2 * j - 1 <= k:
            s[2 * j - 1] = _bernoulli(2 * j) / (2 * j * (2 * j - 1))
    e = [Fraction(1)] + [Fraction(0)] * k
    for n in range(1, k + 1):
        e[n] = sum(i * s[i] * e[n - i] for i in range(1, n + 1)) / n
    return e


def temme_coefficients() -> list[list[float]]:
    """Maclaurin coefficients of c_k(eta), k < TEMME_TERMS, each cut to the needed degree."""
    m = 80
    mu = _mu_of_eta(m + 2)
    inv_w = _reciprocal(mu[1:], m)  # eta/mu
    g = _gamma_star(TEMME_TERMS)
    c = [inv_w[n + 1] for n in range(m - 1)]  # 1/mu - 1/eta without its cancelling poles
    series = [c]
    for k in range(1, TEMME_TERMS):
        sign = 1 if k % 2 == 0 else -1
        # the eta^-1 terms of c_{k-1}'/eta and of (-1)^k g_k / mu cancel exactly
        assert series[-1][1] + sign * g[k] * inv_w[0] == 0
        prev = series[-1]
        series.append(
            [(n + 2) * prev[n + 2] + sign * g[k] * inv_w[n + 1] for n in range(len(prev) - 2)]
        )
    out = []
    for k, coeffs in enumerate(series):
        bound = mp.mpf(10) ** -19 * mp.mpf(TEMME_A_MIN) ** k
        degree = len(coeffs) - 1
        # cut where the rest of the series (tail sum at |eta| = ETA_MAX) is below the bound
        while degree > 0:
            tail = sum(abs(float(coeffs[n])) * ETA_MAX**n for n in range(degree, len(coeffs)))
            if tail > bound:
                break
            degree -= 1
        out.append([float(v) for v in coeffs[: degree + 1]])
        if degree == len(coeffs) - 1:
            raise RuntimeError(f"c_{k}: series too short")
    return out


def _chebyshev(f, lo: float, hi: float, degree: int):
    """Monomial coefficients (highest power first) of a fit of f in s = 2 (x - mid) on [lo, hi];
    max relative error on a fine grid."""
    mid = (mp.mpf(lo) + mp.mpf(hi)) / 2
    coeffs = mp.chebyfit(lambda s: f(mid + s / 2), [-1, 1], degree + 1)
    worst = mp.mpf(0)
    for i in range(2001):
        s = -1 + mp.mpf(2 * i) / 2000
        exact = f(mid + s / 2)
        worst = max(worst, abs(mp.polyval(coeffs, s) / exact - 1))
    return [float(v) for v in coeffs], float(worst)


def _h1(x):
    return mp.loggamma(x) / (x - 1) if x != 1 else -mp.euler


def _h2(x):
    return mp.loggamma(x) / (x - 2) if x != 2 else 1 - mp.euler


DIGAMMA_ROOT = mp.findroot(mp.digamma, mp.mpf("1.4616321449683622"))


def _g(x):
    if abs(x - DIGAMMA_ROOT) < mp.mpf(10) ** -30:
        return mp.polygamma(1, DIGAMMA_ROOT)
    return mp.digamma(x) / (x - DIGAMMA_ROOT)


def _literal(c: float) -> str:
    return repr(float(c))


def _signed(c: float) -> str:
    return f"- {-c!r}" if c < 0 else f"+ {c!r}"


def _horner_lines(var: str, coeffs: list[float], out: str) -> list[str]:
    """Horner's rule for coeffs (highest power first), unrolled with literal coefficients."""
    if len(coeffs) == 1:
        return [f"    {out} = {var} * 0.0 {_signed(coeffs[0])}"]
    lines = [f"    {out} = {var} * {_literal(coeffs[0])} {_signed(coeffs[1])}"]
    lines += [f"    {out} = {out} * {var} {_signed(c)}" for c in coeffs[2:]]
    return lines


def render() -> str:
    """The text of irtgen/scalar/gamma_tables.py."""
    temme = temme_coefficients()
    for k, c in enumerate(temme):
        print(f"c_{k}: degree {len(c) - 1}", file=sys.stderr)
    h1, e1 = _chebyshev(_h1, 0.5, 1.5, 30)
    h2, e2 = _chebyshev(_h2, 1.5, 2.5, 22)
    g, eg = _chebyshev(_g, 1.0, 2.0, 24)
    print(f"h1 {e1:.1e}  h2 {e2:.1e}  g {eg:.1e}", file=sys.stderr)
    root_hi = float(DIGAMMA_ROOT)
    root_lo = float(DIGAMMA_ROOT - root_hi)
    stirling = [
        float(_bernoulli(2 * k) / (2 * k * (2 * k - 1))) for k in range(1, STIRLING_TERMS + 1)
    ]
    psi_asym = [float(_bernoulli(2 * k) / (2 * k)) for k in range(1, STIRLING_TERMS + 2)]

    lines = [
        '"""Coefficient tables of irtgen.scalar.gamma, unrolled by Horner\'s rule:',
        "Temme's c_k(eta), lgamma near 1 and 2, digamma near its root, the Stirling and digamma",
        "asymptotic series.",
        "",
        "Generated by tools/fit_temme.py -- do not edit; rerun the script instead.",
        '"""',
        "",
        "from irtgen.scalar.source import scalar",
        "",
        "",
    ]

    # c_k and c_k' by Horner with derivative in eta, then the sums over k in z = 1/a
    body = [
        "@scalar",
        "def temme_sum(eta, z):",
        '    """S = sum_k c_k(eta) z^k, dS/deta and sum_k k c_k(eta) z^k, with z = 1/a."""',
    ]
    for k, c in enumerate(temme):
        hi_first = c[::-1]
        body.append(f"    p{k} = eta * {_literal(hi_first[0])} {_signed(hi_first[1])}")
        body.append(f"    d{k} = eta * 0.0 {_signed(hi_first[0])}")
        for v in hi_first[2:]:
            body.append(f"    d{k} = d{k} * eta + p{k}")
            body.append(f"    p{k} = p{k} * eta {_signed(v)}")
    last = len(temme) - 1
    body += [f"    s = p{last}", f"    ds = d{last}", f"    ks = p{last} * {float(last)!r}"]
    for k in range(last - 1, -1, -1):
        body += [
            f"    s = s * z + p{k}",
            f"    ds = ds * z + d{k}",
            f"    ks = ks * z + p{k} * {float(k)!r}" if k else "    ks = ks * z",
        ]
    body += ["    return s, ds, ks", "", ""]
    lines += body

    for name, coeffs, what in (
        ("lgamma_h1", h1, "h1(s): lgamma(1 + s/2) = (s/2) h1(s) for |s| <= 1"),
        ("lgamma_h2", h2, "h2(s): lgamma(2 + s/2) = (s/2) h2(s) for |s| <= 1"),
        ("digamma_g", g, "g(s): digamma(1.5 + s/2) = (1.5 + s/2 - root) g(s) for |s| <= 1"),
    ):
        lines += ["@scalar", f"def {name}(s):", f'    """{what}."""']
        lines += _horner_lines("s", coeffs, "p")
        lines += ["    return p", "", ""]
    lines += [
        "@scalar",
        "def digamma_near_root(x):",
        '    """digamma(x) = (x - root) g(2x - 3) for x in [1, 2], root split in two doubles."""',
        f"    return ((x - {root_hi!r}) - {root_lo!r}) * digamma_g(2.0 * x - 3.0)",
        "",
        "",
        "@scalar",
        "def stirling_series(r):",
        '    """sum_k B_2k / (2k (2k - 1)) r^(2k - 1) with r = 1/x: stirlerr(x) for x >= 10."""',
        "    r2 = r * r",
    ]
    lines += _horner_lines("r2", stirling[::-1], "p")
    lines += ["    return p * r", "", ""]
    lines += [
        "@scalar",
        "def digamma_series(r):",
        '    """sum_k B_2k / (2k) r^(2k) with r = 1/x: log x - 1/(2x) - digamma(x) for x >= 10."""',
        "    r2 = r * r",
    ]
    lines += _horner_lines("r2", psi_asym[::-1], "p")
    lines += ["    return p * r2", ""]
    return "\n".join(lines).rstrip() + "\n"


def main() -> int:
    OUT.write_text(render())
    print(f"wrote {OUT}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
