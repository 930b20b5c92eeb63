"""
Debiasing: the alpha sweep
==========================

Debiasing mixes the supervisory distribution with the uniform one,
``p~ = (1 - alpha) p + alpha / N`` (section 3.3 of the I-Con paper): every
pair of points becomes a little attractive, as if each "negative" had some
chance of being a neighbour after all. In an embedding this pulls the
clusters of the digits closer together; in a clustering it changes which
partition the loss prefers. Both sweeps below run on scikit-learn's digits.
"""

import matplotlib.pyplot as plt
from sklearn.datasets import load_digits
from sklearn.model_selection import cross_val_score
from sklearn.neighbors import KNeighborsClassifier

from sklearn_icon import IConClustering, IConEmbedding
from sklearn_icon.metrics import clustering_accuracy

X, y = load_digits(return_X_y=True)

# %%
# Embeddings: t-SNE (``alpha=0``) and two debiased variants. The title gives
# the 10-NN accuracy of each embedding (5-fold).
alphas = [0.0, 0.2, 0.5]
figure, axes = plt.subplots(1, len(alphas), figsize=(15, 5))
for ax, alpha in zip(axes, alphas):
    embedding = IConEmbedding(alpha=alpha, max_iter=500, random_state=0).fit_transform(X)
    accuracy = cross_val_score(KNeighborsClassifier(10), embedding, y, cv=5).mean()
    ax.scatter(embedding[:, 0], embedding[:, 1], c=y, cmap="tab10", s=3)
    ax.set_title(f"alpha={alpha}: 10-NN accuracy {accuracy:.3f}")
    ax.set_xticks([])
    ax.set_yticks([])
plt.show()

# %%
# Clusterings: the Hungarian accuracy of IConClustering for each ``alpha``
# (and the same on ``q``, ``alpha_q``, as the paper recommends), on
# mini-batches of 512 anchors, which sample the uniform part of ``p~``
# instead of visiting every pair.
alphas = [0.0, 0.2, 0.6]
scores = {"alpha": [], "alpha = alpha_q": []}
for alpha in alphas:
    for name, alpha_q in [("alpha", 0.0), ("alpha = alpha_q", alpha)]:
        model = IConClustering(n_clusters=10, alpha=alpha, alpha_q=alpha_q, batch_size=512, random_state=0)
        scores[name].append(clustering_accuracy(y, model.fit_predict(X)))

figure, ax = plt.subplots(figsize=(6, 4))
for name, values in scores.items():
    ax.plot(alphas, values, marker="o", label=name)
ax.set_xlabel("debiasing weight")
ax.set_ylabel("Hungarian accuracy on digits")
ax.legend()
plt.show()

# %%
# The accuracies behind the plot.
for name, values in scores.items():
    print(name, dict(zip(alphas, [round(value, 3) for value in values])))
