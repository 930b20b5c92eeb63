"""Metrics the I-Con paper reports."""

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.metrics.cluster import contingency_matrix
from sklearn.utils.validation import check_consistent_length, column_or_1d


def clustering_accuracy(y_true, y_pred):
    """Accuracy of a clustering under the best one-to-one map of clusters to classes.

    The map is the Hungarian assignment on the contingency table, as the
    paper and the deep-clustering literature report it. Clusters left
    without a class (more clusters than classes) count as errors.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Ground-truth classes.
    y_pred : array-like of shape (n_samples,)
        Cluster labels.

    Returns
    -------
    float
        Fraction of samples whose cluster maps to their class, in [0, 1].

    Examples
    --------
    >>> from sklearn_icon.metrics import clustering_accuracy
    >>> clustering_accuracy([0, 0, 1, 1, 2], [1, 1, 0, 0, 0])
    0.8
    """
    y_true = column_or_1d(y_true)
    y_pred = column_or_1d(y_pred)
    check_consistent_length(y_true, y_pred)
    if y_true.size == 0:
        raise ValueError("clustering_accuracy needs at least one sample.")
    table = contingency_matrix(y_true, y_pred)
    rows, cols = linear_sum_assignment(table, maximize=True)
    return float(table[rows, cols].sum() / y_true.size)


def cluster_to_class_map(y_true, y_pred):
    """The Hungarian map from cluster labels to classes, as a dict.

    Fit it on training labels and apply it to predictions on new data to
    score a clustering's generalisation.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n_samples,)

    Returns
    -------
    dict
        ``{cluster: class}`` for every matched cluster.

    Examples
    --------
    >>> from sklearn_icon.metrics import cluster_to_class_map
    >>> sorted(cluster_to_class_map(["a", "a", "b"], [1, 1, 0]).items())
    [(0, 'b'), (1, 'a')]
    """
    y_true = column_or_1d(y_true)
    y_pred = column_or_1d(y_pred)
    check_consistent_length(y_true, y_pred)
    classes, clusters = np.unique(y_true), np.unique(y_pred)
    table = contingency_matrix(y_true, y_pred)
    rows, cols = linear_sum_assignment(table, maximize=True)
    return {clusters[c].item(): classes[r].item() for r, c in zip(rows, cols)}
