"""Variance of the two Dirichlet gradient estimators of irtgen.composite.dirichlet.

    python tools/dirichlet_variance.py            # the table (about two minutes on one core)
    python tools/dirichlet_variance.py -n 50000   # more samples per row

For each concentration vector α and test function f, N independent draws z^(n) give per-sample
estimates ∇_α f(z^(n)) of d/dα E[f(z)] (one draw per row of an (N, K) batch of identical
concentrations, so one backward pass returns all N gradients). Printed per estimator: the
per-sample variance of the estimate, averaged over the K coordinates of α; the ratio
gamma/beta (> 1: the beta estimator has the lower variance); and the largest |mean − exact|
over the coordinates in standard errors, the exact gradient being the derivative of the
closed-form expectation. Both estimators see the same draws (the same seed), so the ratio
compares the couplings, not two sets of samples.

Test functions: z_1, z_1², log z_1, and the non-separable
f(z) = Σ_k c_k z_k² + z_1 z_2 with c_k = k/K.
"""

from __future__ import annotations

import argparse

import torch

from irtgen.composite.dirichlet import ESTIMATORS, Dirichlet

CONCENTRATIONS = {
    "small": [0.1, 0.1, 0.1],
    # z_1 keeps α_1 = 0.05: with α_1 = 0.01, z_1 underflows to 0 in ~6e-4 of the draws and
    # f = log z_1 is -inf there, whatever the estimator
    "tiny": [0.05, 0.01, 0.02, 0.1],
    "one": [1.0, 1.0, 1.0],
    "large": [10.0, 10.0, 10.0],
    "huge": [100.0, 200.0, 300.0],
    "mixed": [0.1, 1.0, 10.0],
    "mixed K=6": [0.3, 3.0, 0.5, 5.0, 1.0, 30.0],
}


def _weights(k: int, like: torch.Tensor) -> torch.Tensor:
    return torch.arange(1, k + 1, dtype=like.dtype) / k


def f_value(name: str, z: torch.Tensor) -> torch.Tensor:
    """f(z) for each simplex point (last dim)."""
    if name == "z1":
        return z[..., 0]
    if name == "z1^2":
        return z[..., 0] ** 2
    if name == "log z1":
        return torch.log(z[..., 0])
    c = _weights(z.shape[-1], z)
    return (c * z * z).sum(-1) + z[..., 0] * z[..., 1]


def f_expectation(name: str, a: torch.Tensor) -> torch.Tensor:
    """E[f(z)] in closed form: E z_i = α_i/α_0, E z_i z_j = α_i (α_j + δ_ij)/(α_0 (α_0 + 1)),
    E log z_i = ψ(α_i) − ψ(α_0)."""
    a0 = a.sum()
    if name == "z1":
        return a[0] / a0
    if name == "z1^2":
        return a[0] * (a[0] + 1) / (a0 * (a0 + 1))
    if name == "log z1":
        return torch.digamma(a[0]) - torch.digamma(a0)
    c = _weights(a.shape[-1], a)
    return ((c * a * (a + 1)).sum() + a[0] * a[1]) / (a0 * (a0 + 1))


FUNCTIONS = ("z1", "z1^2", "log z1", "quad+cross")


def exact_gradient(name: str, alpha: list[float]) -> torch.Tensor:
    a = torch.tensor(alpha, dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(f_expectation(name, a), a)
    return g


def per_sample_gradients(alpha, name, estimator, n, seed) -> torch.Tensor:
    """(n, K) gradients ∇_α f(z^(n)), one draw each."""
    a = torch.tensor(alpha, dtype=torch.float64).expand(n, len(alpha)).clone().requires_grad_()
    gen = torch.Generator().manual_seed(seed)
    z = Dirichlet(a, grad=estimator).rsample(generator=gen)
    (g,) = torch.autograd.grad(f_value(name, z).sum(), a)
    return g


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=20000, help="draws per row (default 20000)")
    parser.add_argument("--seed", type=int, default=0)
    # the Beta family's torch path is many small elementwise ops: on a shared CPU, OpenMP
    # barriers between them stall (one thread was 100x faster than two on 2 busy cores)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    print(f"per-sample gradient variance, mean over coordinates; N = {args.n}, float64, CPU")
    print()
    head = (
        f"| {'alpha':<28} | {'f':<10} | {'var beta':>10} | {'var gamma':>10} "
        f"| {'gamma/beta':>10} | {'bias/SE beta':>12} | {'bias/SE gamma':>13} |"
    )
    print(head)
    print("|" + "|".join("-" * len(c) for c in head[1:-1].split("|")) + "|")
    ratios = []
    for label, alpha in CONCENTRATIONS.items():
        for name in FUNCTIONS:
            exact = exact_gradient(name, alpha)
            var, bias = {}, {}
            for est in ESTIMATORS:
                g = per_sample_gradients(alpha, name, est, args.n, args.seed)
                var[est] = g.var(0).mean().item()
                se = g.std(0) / args.n**0.5
                bias[est] = ((g.mean(0) - exact).abs() / se).max().item()
            ratio = var["gamma"] / var["beta"]
            ratios.append(ratio)
            shown = f"{label} {alpha}" if len(alpha) <= 4 else label
            print(
                f"| {shown:<28} | {name:<10} | {var['beta']:>10.3e} | {var['gamma']:>10.3e} "
                f"| {ratio:>10.2f} | {bias['beta']:>12.1f} | {bias['gamma']:>13.1f} |"
            )
    ratios.sort()
    print()
    print(
        f"gamma/beta variance ratio: min {ratios[0]:.2f}, median {ratios[len(ratios) // 2]:.2f}, "
        f"max {ratios[-1]:.2f}"
    )


if __name__ == "__main__":
    main()
