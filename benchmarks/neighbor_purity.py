"""Why raw MNIST pixels embed worse than their PCA-50: the neighbours behind ``p``, not the search.

For 2,000 random MNIST points, the share of their 90 (t-SNE's ``3 * 30``)
and 10 nearest neighbours that carry the point's own label, searched
exactly in the 784 pixels and in the first 50 principal components, and
the recall of pynndescent's approximate search (what ``neighbors="auto"``
runs on the pixels) against the exact pixel neighbours.

Usage::

    python benchmarks/neighbor_purity.py
"""

import time

import numpy as np
import torch
from bench_embedding import load_mnist
from sklearn.decomposition import PCA

#: Neighbours of t-SNE's p at perplexity 30.
N_NEIGHBORS = 90
N_QUERIES = 2000


def exact_neighbors(Z, queries, block=500):
    """The ``N_NEIGHBORS`` nearest rows of ``Z`` (Euclidean) to each query row, the query itself left out."""
    data = torch.as_tensor(Z)
    squared_norms = (data * data).sum(1)
    found = []
    for start in range(0, len(queries), block):
        chosen = torch.as_tensor(queries[start : start + block])
        scores = squared_norms[None, :] - 2.0 * data[chosen] @ data.T
        scores[torch.arange(len(chosen)), chosen] = float("inf")
        found.append(torch.topk(scores, N_NEIGHBORS, largest=False).indices.numpy())
    return np.concatenate(found)


def purity(y, queries, neighbors):
    """Share of the 90 and of the 10 nearest that have the query's label."""
    same = y[neighbors] == y[queries][:, None]
    return same.mean(), same[:, :10].mean()


def main():
    X, y = load_mnist()
    X = X.astype(np.float32)
    queries = np.random.RandomState(0).choice(len(X), N_QUERIES, replace=False)
    print("| neighbours of 2,000 MNIST points | same label, 90 nearest | same label, 10 nearest | seconds |")
    print("|---|---|---|---|")
    tic = time.perf_counter()
    pixels = exact_neighbors(X, queries)
    print(f"| exact, 784 pixels | {purity(y, queries, pixels)[0]:.4f} | {purity(y, queries, pixels)[1]:.4f} "
          f"| {time.perf_counter() - tic:.1f} |", flush=True)
    tic = time.perf_counter()
    reduced = PCA(50, random_state=0).fit_transform(X).astype(np.float32)
    components = exact_neighbors(reduced, queries)
    print(f"| exact, 50 principal components (PCA included) | {purity(y, queries, components)[0]:.4f} "
          f"| {purity(y, queries, components)[1]:.4f} | {time.perf_counter() - tic:.1f} |", flush=True)
    from pynndescent import NNDescent

    tic = time.perf_counter()
    graph = NNDescent(X, n_neighbors=N_NEIGHBORS + 1, random_state=0).neighbor_graph[0][queries]
    seconds = time.perf_counter() - tic
    approximate = np.array([[j for j in row if j != q][:N_NEIGHBORS] for row, q in zip(graph, queries)])
    recall = np.mean([len(set(a) & set(b)) / N_NEIGHBORS for a, b in zip(approximate, pixels)])
    print(f"| pynndescent, 784 pixels (all 70,000 points) | {purity(y, queries, approximate)[0]:.4f} "
          f"| {purity(y, queries, approximate)[1]:.4f} | {seconds:.1f} |")
    print(f"\nRecall of pynndescent's 90 neighbours against the exact ones: {recall:.4f}")


if __name__ == "__main__":
    main()
