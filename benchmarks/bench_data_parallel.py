"""Throughput of data-parallel mini-batch training against the number of processes.

Fits a parametric ``IConEmbedding(mapper="mlp", batch_size=...)`` with
``distributed=True`` in 1, 2, ... processes (``gloo``, loopback only, one
thread each) on the same data and global batch, and prints the training
steps per second: the time of a ``max_iter=N`` fit minus that of a
``max_iter=1`` fit (which builds ``p``), over ``N - 1`` steps, after one
untimed warm-up fit. On a GPU
machine launch the same estimator with ``torchrun --nproc-per-node=G``
and the ``nccl`` backend instead.

Usage::

    python benchmarks/bench_data_parallel.py --processes 1 2
    python benchmarks/bench_data_parallel.py --no-mnist --batch-size 512
"""

import argparse
import os
import socket
import tempfile
import time

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from bench_embedding import benchmark_datasets, machine

from sklearn_icon import IConEmbedding


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, world_size, port, X, params, n_steps, out):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size)
    try:
        seconds = []
        # The first fit pays one-time costs (threads, allocator, imports): untimed.
        for max_iter in (1, 1, n_steps + 1):
            dist.barrier()
            tic = time.perf_counter()
            IConEmbedding(distributed=True, max_iter=max_iter, **params).fit(X)
            dist.barrier()
            seconds.append(time.perf_counter() - tic)
        if rank == 0:
            np.save(out, np.array(seconds[1:]))
    finally:
        dist.destroy_process_group()


def steps_per_second(X, processes, params, n_steps):
    """Training steps per second of one fit spread over ``processes`` processes."""
    with tempfile.TemporaryDirectory() as folder:
        out = os.path.join(folder, "seconds.npy")
        mp.spawn(_worker, args=(processes, _free_port(), X, params, n_steps, out), nprocs=processes, join=True)
        build, total = np.load(out)
    return n_steps / (total - build)


def main():
    """Print one Markdown row per number of processes."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--no-mnist", action="store_true")
    args = parser.parse_args()
    name, X, _ = benchmark_datasets([10000], mnist=not args.no_mnist)[-1]
    X = np.ascontiguousarray(X, dtype=np.float32)
    params = dict(mapper="mlp", batch_size=args.batch_size, random_state=0, device="cpu")
    print(f"Machine: {machine()}; {name}, global batch {args.batch_size} anchors, {args.steps} steps\n")
    print("| processes | steps / s | anchors / s | speed-up |")
    print("|---|---|---|---|", flush=True)
    base = None
    for processes in args.processes:
        rate = steps_per_second(X, processes, params, args.steps)
        base = base or rate
        print(f"| {processes} | {rate:.1f} | {rate * args.batch_size:.0f} | {rate / base:.2f} |", flush=True)


if __name__ == "__main__":
    main()
