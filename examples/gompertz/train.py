"""Fit a user-declared Gompertz distribution to data on the CPU, by gradient descent through
rsample (implicit reparameterization gradients) and, as a cross-check, by maximum likelihood.

Run after building the spec (see README):
    irtgen build examples/gompertz/gompertz_spec.py -o examples/gompertz/build
    python examples/gompertz/train.py
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import torch

here = Path(__file__).resolve().parent
sys.path.insert(0, str(here / "build"))
try:
    from gompertz import Gompertz  # the module irtgen generated
except ImportError:
    sys.exit(
        "build the spec first: irtgen build examples/gompertz/gompertz_spec.py -o examples/gompertz/build"
    )

TRUE_ALPHA, TRUE_BETA = 0.35, 1.6
STEPS, BATCH = 400, 4096


def data(n: int, generator: torch.Generator) -> torch.Tensor:
    """Draws by the closed-form inverse, z = log(1 - log(1 - u)/alpha)/beta (independent of irtgen)."""
    u = torch.rand(n, dtype=torch.float64, generator=generator)
    return torch.log1p(-torch.log1p(-u) / TRUE_ALPHA) / TRUE_BETA


def positive(x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.softplus(x)


def fit_by_rsample(observed: torch.Tensor) -> tuple[float, float]:
    """Minimise the 1-D Wasserstein distance between model draws and data batches.

    The loss depends on the parameters only through rsample, so every update uses the implicit
    gradient dz/dθ = -(∂F/∂θ)/q that irtgen derived from the CDF.
    """
    raw = torch.tensor([0.0, 0.0], dtype=torch.float64, requires_grad=True)  # alpha = beta = 0.69
    opt = torch.optim.Adam([raw], lr=0.03)
    gen = torch.Generator().manual_seed(1)
    for step in range(1, STEPS + 1):
        alpha, beta = positive(raw)
        z = Gompertz(alpha, beta).rsample((BATCH,), generator=gen)
        idx = torch.randint(0, observed.numel(), (BATCH,), generator=gen)
        target = observed[idx]
        loss = (z.sort().values - target.sort().values).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 50 == 0 or step == 1:
            print(
                f"  step {step:4d}  W1 {loss.item():.5f}  alpha {alpha.item():.4f}  beta {beta.item():.4f}"
            )
    alpha, beta = positive(raw).tolist()
    return alpha, beta


def fit_by_likelihood(observed: torch.Tensor) -> tuple[float, float]:
    raw = torch.tensor([0.0, 0.0], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([raw], max_iter=100, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        nll = -Gompertz(*positive(raw)).log_prob(observed).mean()
        nll.backward()
        return nll

    opt.step(closure)
    alpha, beta = positive(raw).tolist()
    return alpha, beta


def main() -> None:
    torch.manual_seed(0)
    observed = data(20_000, torch.Generator().manual_seed(0))
    print(f"data: {observed.numel()} draws from Gompertz(alpha={TRUE_ALPHA}, beta={TRUE_BETA})")
    t0 = time.perf_counter()
    print("fit by gradient descent through rsample (1-D Wasserstein loss):")
    a_rs, b_rs = fit_by_rsample(observed)
    t1 = time.perf_counter()
    a_ml, b_ml = fit_by_likelihood(observed)
    t2 = time.perf_counter()

    # sampling error of the data itself: the MLE's standard errors from the Fisher information
    print()
    print(f"{'':22s}{'alpha':>10s}{'beta':>10s}")
    print(f"{'truth':22s}{TRUE_ALPHA:10.4f}{TRUE_BETA:10.4f}")
    print(
        f"{'rsample fit':22s}{a_rs:10.4f}{b_rs:10.4f}   ({t1 - t0:.1f} s, {STEPS} steps of {BATCH} draws)"
    )
    print(f"{'max. likelihood fit':22s}{a_ml:10.4f}{b_ml:10.4f}   ({t2 - t1:.1f} s, L-BFGS)")
    err = max(abs(a_rs / TRUE_ALPHA - 1), abs(b_rs / TRUE_BETA - 1))
    print(f"rsample fit within {100 * err:.1f}% of the truth (data: {observed.numel()} draws)")
    if not math.isfinite(err) or err > 0.1:
        sys.exit("fit did not converge to the truth")


if __name__ == "__main__":
    main()
