"""
TSNE and IConEmbedding on the digits
====================================

IConEmbedding's default configuration is t-SNE's objective: the same
perplexity-calibrated ``p`` and Cauchy ``q``, optimised with t-SNE's schedule.
Both embeddings of the digits, side by side, with the KL divergence each
reaches.
"""

import matplotlib.pyplot as plt
from sklearn.datasets import load_digits
from sklearn.manifold import TSNE

from sklearn_icon import IConEmbedding

X, y = load_digits(return_X_y=True)
ours = IConEmbedding(random_state=0)
theirs = TSNE(random_state=0)
embeddings = [ours.fit_transform(X), theirs.fit_transform(X)]

figure, axes = plt.subplots(1, 2, figsize=(10, 5))
for ax, embedding, model in zip(axes, embeddings, [ours, theirs]):
    ax.scatter(embedding[:, 0], embedding[:, 1], c=y, cmap="tab10", s=3)
    ax.set_title(f"{type(model).__name__}: KL {model.kl_divergence_:.3f}")
    ax.set_xticks([])
    ax.set_yticks([])
plt.show()
