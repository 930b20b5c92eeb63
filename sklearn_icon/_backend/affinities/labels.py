"""Supervision from labels: classes (SupCon, cross-entropy), groups of views (InfoNCE)."""

import torch
from torch import nn

#: Unlabelled samples carry this label, as in scikit-learn's semi-supervised estimators.
UNLABELLED = -1


def shared_label_distribution(labels, dtype=torch.float64):
    """``p(j|i)`` uniform over the other samples that share ``i``'s label.

    SupCon's supervisory distribution (Theorem 6) when the labels are
    classes, InfoNCE's (Theorem 3) when they name the item each sample is a
    view of. Samples labelled :data:`UNLABELLED`, and samples alone with
    their label, get an empty row: they have no partner to be drawn.

    Parameters
    ----------
    labels : torch.Tensor of shape (n,), integer
        Label (or group id) per sample, ``-1`` for none.
    dtype : torch.dtype, default=torch.float64

    Returns
    -------
    torch.Tensor of shape (n, n), sparse COO
        Rows sum to one where the sample has a partner, to zero elsewhere.

    Examples
    --------
    >>> import torch
    >>> shared_label_distribution(torch.tensor([0, 0, 1, 1, 1, -1])).to_dense()[2]
    tensor([0.0000, 0.0000, 0.0000, 0.5000, 0.5000, 0.0000], dtype=torch.float64)
    """
    n = labels.shape[0]
    labelled = torch.nonzero(labels != UNLABELLED).flatten()
    order = labelled[torch.argsort(labels[labelled], stable=True)]
    _, sizes = torch.unique_consecutive(labels[order], return_counts=True)
    # Every ordered pair within each label's run of ``order``, without a
    # loop over labels (InfoNCE has one label per item, tens of thousands).
    # Member m of a label of size k pairs with the k members of its run, m included.
    size_of = sizes.repeat_interleave(sizes)
    run_start_of = (sizes.cumsum(0) - sizes).repeat_interleave(sizes)
    first_pair_of = size_of.cumsum(0) - size_of
    size_per_pair = size_of.repeat_interleave(size_of)
    within_run = torch.arange(size_per_pair.numel(), device=labels.device) - first_pair_of.repeat_interleave(size_of)
    rows = order.repeat_interleave(size_of)
    cols = order[run_start_of.repeat_interleave(size_of) + within_run]
    off_diagonal = rows != cols
    values = 1.0 / (size_per_pair[off_diagonal].to(dtype) - 1.0)
    indices = torch.stack([rows[off_diagonal], cols[off_diagonal]])
    return torch.sparse_coo_tensor(indices, values, (n, n), check_invariants=False).coalesce()


def mix_label_distribution(P, labels, weight):
    """``(1 - w) p_data + w p_label`` on the rows whose sample has label partners.

    Rows without a partner (unlabelled samples, singleton labels) keep
    ``p_data``: semi-supervised data use the labels they have and the
    geometry everywhere.

    Parameters
    ----------
    P : torch.Tensor of shape (n, n), dense or sparse COO
        Row-stochastic conditional ``p_data``.
    labels : torch.Tensor of shape (n,), integer
        Label or group id per sample, ``-1`` for none.
    weight : float in [0, 1]
        Weight ``w`` of the label distribution.

    Returns
    -------
    torch.Tensor of shape (n, n)
        Row-stochastic, in ``P``'s layout.
    """
    label_p = shared_label_distribution(labels, dtype=P.dtype)
    has_partner = torch.zeros(P.shape[0], dtype=P.dtype, device=P.device)
    has_partner.index_fill_(0, label_p.indices()[0].unique(), 1.0)
    data_scale = 1.0 - weight * has_partner
    if P.is_sparse:
        P = P.coalesce()
        rows = P.indices()[0]
        data = torch.sparse_coo_tensor(P.indices(), P.values() * data_scale[rows], P.shape, check_invariants=False)
        return (data + weight * label_p).coalesce()
    return P * data_scale[:, None] + weight * label_p.to_dense()


def label_distribution(class_index, n_classes, alpha=0.0, dtype=torch.float64):
    """Supervisory distribution over classes: one-hot labels smoothed by ``alpha``.

    Parameters
    ----------
    class_index : torch.Tensor of shape (n,)
        Integer class of each point, in ``[0, n_classes)``.
    n_classes : int
    alpha : float in [0, 1], default=0.0
        Debiasing: ``(1 - alpha) one_hot + alpha / n_classes``.
    dtype : torch.dtype, default=torch.float64

    Returns
    -------
    torch.Tensor of shape (n, n_classes)
        Rows sum to one.
    """
    one_hot = nn.functional.one_hot(class_index, n_classes).to(dtype)
    return (1.0 - alpha) * one_hot + alpha / n_classes
