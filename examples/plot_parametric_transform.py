"""
Embedding unseen points with a parametric mapper
================================================

t-SNE learns one free vector per training point, so it has nothing to apply
to new data. With ``mapper="mlp"`` IConEmbedding learns a function of the
input instead, trained on the same loss, and :meth:`~sklearn_icon.IConEmbedding.transform`
places points it has never seen. Here it is fitted on 1500 digits and the
other 297 are embedded afterwards; a 10-NN classifier trained on the
training embedding labels the unseen ones.
"""

import matplotlib.pyplot as plt
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier

from sklearn_icon import IConEmbedding

X, y = load_digits(return_X_y=True)
X_train, X_new, y_train, y_new = train_test_split(X, y, test_size=297, stratify=y, random_state=0)

model = IConEmbedding(mapper="mlp", random_state=0).fit(X_train)
train_embedding = model.embedding_
new_embedding = model.transform(X_new)

accuracy = KNeighborsClassifier(n_neighbors=10).fit(train_embedding, y_train).score(new_embedding, y_new)

figure, ax = plt.subplots(figsize=(6, 6))
ax.scatter(train_embedding[:, 0], train_embedding[:, 1], c=y_train, cmap="tab10", s=3, alpha=0.3)
ax.scatter(new_embedding[:, 0], new_embedding[:, 1], c=y_new, cmap="tab10", s=25, marker="x")
ax.set_title(f"training points (dots) and unseen points (crosses)\n10-NN accuracy on the unseen: {accuracy:.3f}")
ax.set_xticks([])
ax.set_yticks([])
plt.show()
