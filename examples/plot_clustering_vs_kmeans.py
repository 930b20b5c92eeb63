"""
IConClustering, KMeans and SpectralClustering on the digits
===========================================================

KMeans assumes round clusters; SpectralClustering follows the k-NN graph
but has no ``predict``. IConClustering learns soft assignments whose
shared-cluster distribution matches a k-NN graph widened by walks, and its
linear mapper assigns new points. The three clusterings of the digits,
drawn on one IConEmbedding of them, with the Hungarian accuracy of each
against the true digits.
"""

import matplotlib.pyplot as plt
from sklearn.cluster import KMeans, SpectralClustering
from sklearn.datasets import load_digits

from sklearn_icon import IConClustering, IConEmbedding
from sklearn_icon.metrics import clustering_accuracy

X, y = load_digits(return_X_y=True)
embedding = IConEmbedding(random_state=0).fit_transform(X)

models = {
    # Mini-batches of 512 anchors keep this example fast; the exact
    # full-batch default (batch_size="auto" on 1797 points) takes ~30 s.
    "IConClustering": IConClustering(n_clusters=10, batch_size=512, random_state=0),
    "KMeans": KMeans(n_clusters=10, n_init=10, random_state=0),
    "SpectralClustering": SpectralClustering(n_clusters=10, affinity="nearest_neighbors", random_state=0),
}

figure, axes = plt.subplots(1, 3, figsize=(15, 5))
for ax, (name, model) in zip(axes, models.items()):
    labels = model.fit_predict(X)
    ax.scatter(embedding[:, 0], embedding[:, 1], c=labels, cmap="tab10", s=3)
    ax.set_title(f"{name}: accuracy {clustering_accuracy(y, labels):.3f}")
    ax.set_xticks([])
    ax.set_yticks([])
plt.show()
