"""Training speed: our LightGCN vs ``torch_geometric.nn.models.LightGCN``, same data, device and run.

Both train the same model (same nodes, dim, layers, batch size, Adam lr) for the same number of BPR
steps; rounds alternate between the variants so that a busy machine slows them alike, and the
median round is reported. PyG's model is driven the way ``examples/lightgcn.py`` drives it: batches
of training edges, a uniform random negative item per edge, ``model(adj, edge_label_index)`` and
``model.recommendation_loss(pos, neg, node_id=edge_label_index.unique())``, with the adjacency as

    edge_index     the example's own input (message passing over 1.6M edges on Gowalla);
    csr            a ``torch.sparse_csr`` adjacency, PyG's sparse fast path (``LGConv``
                   normalises it on every call, as it does an ``edge_index``);
    csr-prenorm    our normalised CSR with ``LGConv(normalize=False)``: PyG's fastest path.

Ours: :class:`hybrid.models.graph_models.LightGCN` trained by :func:`hybrid.models.train.train_epoch`,
including its vectorised sampler (negatives that are never known positives, drawn for all the
steps at once) and its timing.

    python benchmarks/vs_pyg.py                       # Gowalla, 10 steps per variant and round
    python benchmarks/vs_pyg.py --dataset ml-100k --data-root ../shared/data --steps 0   # full epochs
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
from torch_geometric.nn.models import LightGCN as PyGLightGCN

from hybrid.data.interactions import Interactions
from hybrid.graph.adjacency import interaction_adjacency
from hybrid.graph.samplers import NegativeSampler
from hybrid.models.graph_models import LightGCN
from hybrid.models.train import TrainConfig, make_optimizer, train_epoch

logger = logging.getLogger("vs_pyg")
PYG_VARIANTS = ("edge_index", "csr", "csr-prenorm")


def pyg_runner(train: Interactions, variant: str, args: argparse.Namespace, device: torch.device) -> Callable[[int], None]:
    """A function running ``steps`` training steps of PyG's LightGCN, as its example does."""
    n_users = train.n_users
    num_nodes = n_users + train.n_items
    users = torch.as_tensor(train.users, device=device)
    items = torch.as_tensor(train.items, device=device) + n_users
    train_edge_label_index = torch.stack([users, items])
    edge_index = torch.cat([train_edge_label_index, train_edge_label_index.flip(0)], dim=1)
    if variant == "edge_index":
        adj, kwargs = edge_index, {}
    elif variant == "csr":
        ones = torch.ones(edge_index.shape[1], device=device)
        adj = torch.sparse_coo_tensor(edge_index, ones, (num_nodes, num_nodes)).coalesce().to_sparse_csr()
        kwargs = {}
    else:
        adj, kwargs = interaction_adjacency(train, device), {"normalize": False}
    model = PyGLightGCN(num_nodes, args.dim, args.layers, **kwargs).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    generator = torch.Generator(device=device).manual_seed(args.seed)

    def run(steps: int) -> None:
        order = torch.randperm(train_edge_label_index.shape[1], device=device, generator=generator)
        for step in range(steps):
            index = order[step * args.batch_size : (step + 1) * args.batch_size]
            pos_edge_label_index = train_edge_label_index[:, index]
            neg_edge_label_index = torch.stack([
                pos_edge_label_index[0],
                torch.randint(n_users, num_nodes, (index.numel(),), device=device, generator=generator),
            ])
            edge_label_index = torch.cat([pos_edge_label_index, neg_edge_label_index], dim=1)
            optimizer.zero_grad()
            pos_rank, neg_rank = model(adj, edge_label_index).chunk(2)
            loss = model.recommendation_loss(pos_rank, neg_rank, node_id=edge_label_index.unique())
            loss.backward()
            optimizer.step()

    return run


def our_runner(train: Interactions, args: argparse.Namespace, device: torch.device) -> Callable[[int], None]:
    """A function running ``steps`` training steps of our LightGCN (sampling included)."""
    torch.manual_seed(args.seed)
    model = LightGCN(train.n_users, train.n_items, args.dim, args.layers, interaction_adjacency(train, device))
    model.to(device).train()
    config = TrainConfig(dim=args.dim, lr=args.lr, reg=1e-4, batch_size=args.batch_size)
    sampler = NegativeSampler(train, "uniform", device=device, generator=torch.Generator(device=device).manual_seed(args.seed))
    optimizer = make_optimizer(model, args.lr, device)

    def run(steps: int) -> None:
        train_epoch(model, sampler, optimizer, epoch=0, n_triples=steps * args.batch_size, config=config)

    return run


def timed(run: Callable[[int], None], steps: int, device: torch.device) -> float:
    """Seconds per step of ``steps`` steps."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    run(steps)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="gowalla", help="gowalla (default) or another hybrid.data.datasets name")
    parser.add_argument("--data", default=None, help="the data set's zip or folder")
    parser.add_argument("--data-root", default=os.environ.get("HYBRID_DATA_ROOT"))
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--steps", type=int, default=10, help="steps per variant and round; 0: a full epoch")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--variants", default=",".join(PYG_VARIANTS), help=f"PyG inputs to time: {PYG_VARIANTS}")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    from gowalla_lightgcn import DEFAULT_DATA, load_split

    if args.data is None and args.data_root is None and args.dataset == "gowalla":
        args.data = DEFAULT_DATA
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          "cpu" if args.device == "auto" else args.device)
    train, _ = load_split(args.dataset, args.data, args.data_root)
    steps_per_epoch = math.ceil(len(train) / args.batch_size)
    steps = args.steps or steps_per_epoch
    runners = {"ours": our_runner(train, args, device)}
    for variant in [v.strip() for v in args.variants.split(",") if v.strip()]:
        if variant not in PYG_VARIANTS:
            raise ValueError(f"--variants: unknown {variant!r}; choose from {PYG_VARIANTS}")
        runners[f"pyg {variant}"] = pyg_runner(train, variant, args, device)
    for run in runners.values():  # warm-up: allocator, first-call dispatch
        run(1)
    times: dict[str, list[float]] = {name: [] for name in runners}
    for round_ in range(args.rounds):
        for name, run in runners.items():
            times[name].append(timed(run, steps, device))
            logger.info("round %d %-16s %.3f s/step", round_ + 1, name, times[name][-1])
    per_step = {name: statistics.median(values) for name, values in times.items()}
    print(f"{args.dataset}: {train}, device {device}, threads {torch.get_num_threads()}, batch {args.batch_size}, "
          f"dim {args.dim}, layers {args.layers}; {steps} steps x {args.rounds} rounds per variant, "
          f"{steps_per_epoch} steps per epoch")
    print(f"{'model':18s} {'s/step':>8s} {'s/epoch':>9s} {'ours is':>9s}")
    for name, value in per_step.items():
        ratio = value / per_step["ours"]
        print(f"{name:18s} {value:8.3f} {value * steps_per_epoch:9.1f} {ratio:8.2f}x")
    return {name: float(np.round(value, 5)) for name, value in per_step.items()}


if __name__ == "__main__":
    main()
