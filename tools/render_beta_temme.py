"""Compute the Maclaurin tables of Temme's expansion of the incomplete beta function and render
the two unrolled sums of irtgen/scalar/beta.py from them.

    python tools/render_beta_temme.py   # prints the two scalar functions _temme_g and _temme_l

With x = mu + mu (1 - mu) V(xi) solving mu log(x/mu) + (1-mu) log((1-x)/(1-mu)) =
-mu (1 - mu) xi^2/2 (DLMF 8.18), the expansion needs the Maclaurin coefficients in xi of
h(xi) = xi/V(xi) and l(xi) = h(xi) log(1 + (1 - mu) V(xi)). V follows exactly from the ODE
V V' = xi (1 + nu V - mu (1 - mu) V^2), nu = 1 - 2 mu, V ~ xi; the coefficient of xi^n is a
polynomial in nu (mu (1 - mu) = (1 - nu^2)/4), computed here in exact rational arithmetic and
rounded to double. The terms of the expansion are G_k[j] = m_kj h_(j+1+2k) and
L_k[j] = m_kj l_(j+1+2k) with m_kj = prod_(i<k) (j + 2 + 2i), which is what repeated
integration by parts, F_(k+1) = d/dxi ((F_k - F_k(0))/xi), does to a power series. Terms kept
(TEMME_G_TERMS, TEMME_L_TERMS): each omitted one is below 1e-17 of the result for
ab/(a+b) >= 2000, |xi| <= 0.1 and every mu.

A scalar function cannot loop over a table of float constants (Triton would round a float
global to float32), so the sums are written out with inline literals; this script writes them
in well under a second, and tests/scalar/test_beta.py checks that irtgen/scalar/beta.py holds
its output.
"""

from __future__ import annotations

from fractions import Fraction

# Terms kept, per k: G_k[j] for j < TEMME_G_TERMS[k], L_k[j] for j < TEMME_L_TERMS[k] (L_0 is
# evaluated in closed form).
TEMME_G_TERMS = (10, 8, 6, 3)
TEMME_L_TERMS = (0, 9, 7, 4, 1)


def _add(p, q):
    r = [Fraction(0)] * max(len(p), len(q))
    for i, c in enumerate(p):
        r[i] += c
    for i, c in enumerate(q):
        r[i] += c
    return r


def _mul(p, q):
    r = [Fraction(0)] * (len(p) + len(q) - 1) if p and q else []
    for i, c in enumerate(p):
        for j, e in enumerate(q):
            r[i + j] += c * e
    return r


def _scale(p, c):
    return [c * e for e in p]


def exact_tables(n_max: int):
    """(h, l): the Maclaurin coefficients of xi^0 .. xi^n_max of h and l, each a polynomial in
    nu (exact rationals, lowest power first)."""

    def series_mul(s, t):
        r = [[] for _ in range(n_max + 1)]
        for i, c in enumerate(s[: n_max + 1]):
            for j, e in enumerate(t[: n_max + 1 - i]):
                r[i + j] = _add(r[i + j], _mul(c, e))
        return r

    nu, s2 = [Fraction(0), Fraction(1)], [Fraction(1, 4), Fraction(0), Fraction(-1, 4)]
    q = [[], [Fraction(1)]]  # V = sum q_j xi^j
    for n in range(2, n_max + 3):
        acc = _mul(nu, q[n - 1])
        for i in range(1, n - 1):
            acc = _add(acc, _scale(_mul(s2, _mul(q[i], q[n - 1 - i])), Fraction(-1)))
        for i in range(2, n):
            acc = _add(acc, _scale(_mul(q[i], q[n + 1 - i]), Fraction(-(n + 1 - i))))
        q.append(_scale(acc, Fraction(1, n + 1)))
    h = [[Fraction(1)]]  # 1 / sum_j q_(j+1) xi^j
    for n in range(1, n_max + 1):
        acc = []
        for j in range(1, n + 1):
            acc = _add(acc, _mul(q[j + 1], h[n - j]))
        h.append(_scale(acc, Fraction(-1)))
    u = [[]] + [_mul([Fraction(1, 2), Fraction(1, 2)], c) for c in q[1 : n_max + 1]]
    log_series, power = [[] for _ in range(n_max + 1)], [[Fraction(1)]] + [[]] * n_max
    for k in range(1, n_max + 1):
        power = series_mul(power, u)
        log_series = [
            _add(p, _scale(c, Fraction((-1) ** (k + 1), k)))
            for p, c in zip(log_series, power, strict=True)
        ]
    return h, series_mul(h, log_series)


def tables() -> tuple[list[list[float]], list[list[float]]]:
    """(H, L): entry n is the coefficient of xi^n as a polynomial in nu, lowest power first,
    rounded to double, trailing zeros dropped; as far as the kept terms reach."""
    n_max = max(
        max(j + 1 + 2 * k for k, n in enumerate(TEMME_G_TERMS) for j in range(n)),
        max(j + 1 + 2 * k for k, n in enumerate(TEMME_L_TERMS) for j in range(n)),
    )
    out = []
    for exact in exact_tables(n_max):
        table = []
        for coeffs in exact:
            values = [float(c) for c in coeffs]
            while values and values[-1] == 0.0:
                values.pop()
            table.append(values)
        out.append(table)
    return out[0], out[1]


def lit(c):
    return repr(float(c))


def poly_lines(name, coeffs, var2, odd_var=None):
    cs = list(coeffs)
    while cs and cs[-1] == 0.0:
        cs.pop()
    if len(cs) == 1:
        if odd_var:
            return [f"{name} = {odd_var} * {lit(cs[0])}"]
        return [f"{name} = {var2} * 0.0 + {lit(cs[0])}"]

    def add(c):
        return f"+ {lit(c)}" if c >= 0 else f"- {lit(-c)}"

    lines = [f"{name} = {var2} * {lit(cs[-1])} {add(cs[-2])}"]
    for c in cs[-3::-1]:
        lines.append(f"{name} = {name} * {var2} {add(c)}")
    if odd_var:
        lines.append(f"{name} = {name} * {odd_var}")
    return lines


def mult(k, j):
    m = 1
    for i in range(k):
        m *= j + 2 + 2 * i
    return m


def render() -> str:
    """The source of _temme_g and _temme_l."""
    H, L = tables()  # noqa: N806
    GT = TEMME_G_TERMS  # noqa: N806
    LT = TEMME_L_TERMS  # noqa: N806
    out = [
        "@scalar",
        "def _temme_g(xi, nu, z):",
        '    """sum_k z^(k+1) sum_j G_k[j] xi^j with G_k[j] = m_kj h_(j+1+2k)(nu), the table h of',
        '    tools/render_beta_temme.py unrolled (a scalar function cannot loop over a float table)."""',
        "    nu2 = nu * nu",
    ]
    for n in sorted({j + 1 + 2 * k for k in range(len(GT)) for j in range(GT[k])}):
        c = list(H[n])
        if n % 2 == 0:
            out += ["    " + line for line in poly_lines(f"h{n}", c[0::2], "nu2")]
        else:
            out += ["    " + line for line in poly_lines(f"h{n}", c[1::2], "nu2", "nu")]
    first = True
    for k in range(len(GT) - 1, -1, -1):
        js = list(range(GT[k] - 1, -1, -1))
        out.append(f"    s = h{js[0] + 1 + 2 * k} * {mult(k, js[0])}.0")
        for j in js[1:]:
            out.append(f"    s = s * xi + h{j + 1 + 2 * k} * {mult(k, j)}.0")
        out.append("    sg = s * z" if first else "    sg = (sg + s) * z")
        first = False
    out.append("    return sg")
    out += [
        "",
        "",
        "@scalar",
        "def _temme_l(xi, nu, z):",
        '    """sum_(k>=1) z^k sum_j L_k[j] xi^j, L_k[j] = m_kj l_(j+1+2k)(nu), and its mirror image',
        "    L_b(xi; nu) = -L_a(-xi; -nu): the table l of tools/render_beta_temme.py unrolled, split into",
        '    even and odd parts in nu."""',
        "    nu2 = nu * nu",
    ]
    for n in sorted({j + 1 + 2 * k for k in range(1, len(LT)) for j in range(LT[k])}):
        c = list(L[n])
        out += ["    " + line for line in poly_lines(f"le{n}", c[0::2], "nu2")]
        out += ["    " + line for line in poly_lines(f"lo{n}", c[1::2], "nu2", "nu")]
    first = True
    for k in range(len(LT) - 1, 0, -1):
        js = list(range(LT[k] - 1, -1, -1))
        for i, j in enumerate(js):
            n = j + 1 + 2 * k
            mb = (-1.0 if j % 2 == 0 else 1.0) * mult(k, j)
            if i == 0:
                out.append(f"    ta = (le{n} + lo{n}) * {mult(k, j)}.0")
                out.append(f"    tb = (le{n} - lo{n}) * {mb}")
            else:
                out.append(f"    ta = ta * xi + (le{n} + lo{n}) * {mult(k, j)}.0")
                out.append(f"    tb = tb * xi + (le{n} - lo{n}) * {mb}")
        out.append("    sa = ta * z" if first else "    sa = (sa + ta) * z")
        out.append("    sb = tb * z" if first else "    sb = (sb + tb) * z")
        first = False
    out.append("    return sa, sb")
    return "\n".join(out)


if __name__ == "__main__":
    print(render())
