"""
Neighbour propagation: the walk-length sweep
============================================

IConClustering's supervisory distribution is a k-NN graph widened by walks:
``p~ ∝ P + P^2 + ... + P^(1 + n_walk_steps)`` (section 4 of the I-Con
paper). Walks connect points of one cluster that are not direct
neighbours; too long a walk starts to connect clusters too. The Hungarian
accuracy on the digits for each walk length, for two seeds, on mini-batches
of 512 anchors (each step draws one neighbour per anchor by a random walk,
so longer walks cost no more per step).
"""

import time

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits

from sklearn_icon import IConClustering
from sklearn_icon.metrics import clustering_accuracy

X, y = load_digits(return_X_y=True)

steps = [0, 1, 2, 3]
seeds = [0, 1]
accuracy = np.zeros((len(steps), len(seeds)))
for row, n_walk_steps in enumerate(steps):
    tic = time.perf_counter()
    for column, seed in enumerate(seeds):
        model = IConClustering(n_clusters=10, n_walk_steps=n_walk_steps, batch_size=512, random_state=seed)
        accuracy[row, column] = clustering_accuracy(y, model.fit_predict(X))
    print(f"n_walk_steps={n_walk_steps}: accuracy {accuracy[row].round(3)} ({time.perf_counter() - tic:.1f} s)")

figure, ax = plt.subplots(figsize=(6, 4))
for column, seed in enumerate(seeds):
    ax.plot(steps, accuracy[:, column], marker="o", label=f"random_state={seed}")
ax.set_xticks(steps)
ax.set_xlabel("n_walk_steps")
ax.set_ylabel("Hungarian accuracy on digits")
ax.legend()
plt.show()
