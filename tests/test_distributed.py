"""Data-parallel training with irtgen distributions: torch's DistributedDataParallel (gloo, two
processes on the CPU) averages the ranks' gradients, and the result is the gradient of the same
step computed in one process on the whole batch.

A Linear layer maps features to the parameters of an irtgen Gamma, a MixtureSameFamily of irtgen
Normals and an irtgen Beta. The loss takes draws through the implicit reparameterization (the
whole batch's draws are made once with a fixed generator; each rank reparameterizes its half with
``reparameterize(z)``, the single process uses ``rsample`` with the same generator state, so both
see the same numbers) and the log densities of the draws and of observed data. Compared in
float64: the gradients after DDP's backward on each rank against the single process's, the ranks'
own (unsynchronized) gradients differ and average to it, and one SGD step leaves identical
parameters on both ranks.
"""

from __future__ import annotations

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.distributions import Categorical

from irtgen.distributions import Beta, Gamma, MixtureSameFamily, Normal

F64 = torch.float64
WORLD = 2
N, FEATURES, K = 16, 3, 3  # batch, input features, mixture components
OUTPUTS = 2 + 3 * K + 2  # Gamma (2), mixture logits, locs, log scales (3 K), Beta (2)
LR = 0.05


def _distributions(out: torch.Tensor):
    """(Gamma, mixture of Normals, Beta) with batch shape (n,) from the layer's output (n, OUTPUTS)."""
    sp = torch.nn.functional.softplus
    gamma = Gamma(sp(out[:, 0]) + 0.2, sp(out[:, 1]) + 0.2)
    logits, loc, log_scale = out[:, 2 : 2 + 3 * K].reshape(-1, 3, K).unbind(1)
    mix = MixtureSameFamily(Categorical(logits=logits), Normal(2.0 * loc, log_scale.exp()))
    beta = Beta(sp(out[:, -2]) + 0.2, sp(out[:, -1]) + 0.2)
    return gamma, mix, beta


def _loss(gamma, mix, beta, draws, data) -> torch.Tensor:
    """Mean over the batch: a function of the draws, their log densities (an entropy-like term,
    differentiated through both the draws and the parameters) and the data's log densities."""
    zg, zm, zb = draws
    yg, ym, yb = data
    per_row = (
        (zg - 1.5).pow(2)
        + zm.pow(2) * torch.sin(zm)
        + zb * (1.0 - zb)
        + 0.1 * (gamma.log_prob(zg) + mix.log_prob(zm) + beta.log_prob(zb))
        - (gamma.log_prob(yg) + mix.log_prob(ym) + beta.log_prob(yb))
    )
    return per_row.mean()


def _problem():
    """Initial weights, features, data and the whole batch's draws, fixed by seeds."""
    torch.manual_seed(0)
    layer = torch.nn.Linear(FEATURES, OUTPUTS).to(F64)
    x = torch.randn(N, FEATURES, dtype=F64)
    data = (
        torch.rand(N, dtype=F64) * 3.0 + 0.1,
        torch.randn(N, dtype=F64),
        torch.rand(N, dtype=F64) * 0.9 + 0.05,
    )
    return layer.state_dict(), x, data


def _single_process_step(state, x, data, seed: int):
    """Draws, loss, gradients and parameters after one SGD step on the whole batch."""
    layer = torch.nn.Linear(FEATURES, OUTPUTS).to(F64)
    layer.load_state_dict(state)
    opt = torch.optim.SGD(layer.parameters(), lr=LR)
    dists = _distributions(layer(x))
    gen = torch.Generator().manual_seed(seed)
    draws = [d.rsample(generator=gen) for d in dists]
    loss = _loss(*dists, draws, data)
    loss.backward()
    grads = {n: p.grad.clone() for n, p in layer.named_parameters()}
    opt.step()
    params = {n: p.detach().clone() for n, p in layer.named_parameters()}
    return [z.detach() for z in draws], loss.detach(), grads, params


def _worker(rank: int, world: int, tmp: str, state, x, data, draws) -> None:
    """One rank: its half of the batch, the full draws' slice, DDP's averaged gradients and one
    step, saved to ``tmp/rank{rank}.pt``."""
    torch.set_num_threads(1)  # two processes on a shared CPU
    dist.init_process_group("gloo", init_method=f"file://{tmp}/store", rank=rank, world_size=world)
    try:
        rows = slice(rank * N // world, (rank + 1) * N // world)
        layer = torch.nn.Linear(FEATURES, OUTPUTS).to(F64)
        layer.load_state_dict(state)
        model = torch.nn.parallel.DistributedDataParallel(layer)
        opt = torch.optim.SGD(model.parameters(), lr=LR)
        mine = [z[rows] for z in draws]
        my_data = [y[rows] for y in data]

        def step():
            dists = _distributions(model(x[rows]))
            zs = [d.reparameterize(z) for d, z in zip(dists, mine, strict=True)]
            loss = _loss(*dists, zs, my_data)
            loss.backward()
            return loss.detach()

        with model.no_sync():  # this rank's own gradient, not averaged
            step()
        local = {n: p.grad.clone() for n, p in layer.named_parameters()}
        opt.zero_grad(set_to_none=True)
        loss = step()  # DDP all-reduces (averages) the gradients in backward
        grads = {n: p.grad.clone() for n, p in layer.named_parameters()}
        opt.step()
        params = {n: p.detach().clone() for n, p in layer.named_parameters()}
        torch.save(
            {"loss": loss, "local": local, "grads": grads, "params": params},
            os.path.join(tmp, f"rank{rank}.pt"),
        )
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not available")
def test_ddp_gradients_match_single_process(tmp_path):
    state, x, data = _problem()
    draws, loss, grads, params = _single_process_step(state, x, data, seed=1234)
    for z in draws:
        assert bool(torch.isfinite(z).all())

    mp.spawn(_worker, args=(WORLD, str(tmp_path), state, x, data, draws), nprocs=WORLD)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD)]

    # each rank's loss is the mean over its half: their average is the whole batch's
    torch.testing.assert_close(sum(r["loss"] for r in ranks) / WORLD, loss, rtol=1e-13, atol=0)
    for name, ref in grads.items():
        assert bool(torch.isfinite(ref).all()) and bool(ref.abs().sum() > 0), name
        # the halves' own gradients differ, so the agreement below needs DDP's averaging
        assert not torch.allclose(ranks[0]["local"][name], ranks[1]["local"][name]), name
        mean_local = sum(r["local"][name] for r in ranks) / WORLD
        torch.testing.assert_close(mean_local, ref, rtol=1e-12, atol=1e-14)
        for rank, r in enumerate(ranks):
            torch.testing.assert_close(
                r["grads"][name],
                ref,
                rtol=1e-12,
                atol=1e-14,
                msg=(lambda m, name=name, rank=rank: f"{name}, rank {rank}: {m}"),
            )
    # one SGD step: the same parameters on both ranks (bit for bit), and the single process's
    for name, ref in params.items():
        assert torch.equal(ranks[0]["params"][name], ranks[1]["params"][name]), name
        torch.testing.assert_close(ranks[0]["params"][name], ref, rtol=1e-13, atol=1e-15)
