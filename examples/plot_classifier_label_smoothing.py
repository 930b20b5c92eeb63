"""
Label smoothing is debiasing: IConClassifier with alpha
=======================================================

Debiasing the class-indicator ``p`` by ``alpha`` is label smoothing: the
classifier is trained towards ``1 - alpha + alpha / C`` for the true class.
The histogram of the largest predicted probability on held-out digits shows
the calmer predictions; the accuracy drops by less than a point.
"""

import matplotlib.pyplot as plt
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from sklearn_icon import IConClassifier

X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, stratify=y, random_state=0)

figure, ax = plt.subplots(figsize=(6, 4))
for alpha in (0.0, 0.2):
    model = IConClassifier(alpha=alpha, random_state=0).fit(X_train, y_train)
    confidence = model.predict_proba(X_test).max(axis=1)
    ax.hist(confidence, bins=30, alpha=0.6, label=f"alpha={alpha}: accuracy {model.score(X_test, y_test):.3f}")
ax.set_xlabel("largest predicted probability")
ax.set_ylabel("held-out digits")
ax.legend()
plt.show()
