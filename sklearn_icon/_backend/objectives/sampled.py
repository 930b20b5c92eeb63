"""Mini-batch I-Con for parametric embeddings: sampled neighbours, in-batch negatives.

Each step draws anchors ``i`` uniformly, one neighbour ``j ~ p(.|i)`` of each
(a step of :class:`~sklearn_icon._backend.affinities.graphs.WalkSampler`), and
normalises each anchor's ``q(.|i)`` over the batch's other points, anchors
and neighbours alike. The anchor's loss, ``-log q(j|i)``, is then an
unbiased sample of the cross-entropy part of ``KL(p(.|i) || q_batch(.|i))``:
InfoNCE with the learned kernel as its critic, which for the Cauchy kernel
is the parametric, negative-sampling form of t-SNE. Memory and time per step
depend on the batch only, never on ``n``.
"""

import math

import torch

from ..divergence import mix_uniform
from ..kernels.distance import log_kernel_matrix


class SampledNeighborLoss:
    """The I-Con loss of a batch of anchors, each with one sampled neighbour.

    Parameters
    ----------
    kernel : {"student_t", "gaussian", "cosine"}
    alpha, alpha_q : float, default=0.0
        Debiasing of ``p`` (a uniform pull to every other batch point) and
        of ``q`` (mixed in log space with the uniform over the batch).
    dof, temperature : float
        Kernel parameters.
    """

    def __init__(self, kernel, alpha=0.0, alpha_q=0.0, dof=1.0, temperature=0.5):
        self.kernel, self.alpha, self.alpha_q = kernel, float(alpha), float(alpha_q)
        self.dof, self.temperature = float(dof), float(temperature)

    def __call__(self, anchors, candidates, anchor_index, neighbor_index, exaggeration=1.0, n_anchors_total=None):
        """Loss to differentiate and loss to report, for one batch.

        Parameters
        ----------
        anchors : torch.Tensor of shape (m, d)
            Embeddings of the anchors.
        candidates : torch.Tensor of shape (k, d)
            Embeddings of every point ``q(.|i)`` is normalised over; each
            anchor is among them, at ``anchor_index``, and excluded from its
            own row.
        anchor_index, neighbour_index : torch.Tensor of int, shape (m,)
            Rows of ``candidates`` holding each anchor and its neighbour.
        exaggeration : float, default=1.0
            Factor on the attraction of the data's part of ``p`` (early
            exaggeration); the reported loss is the plain one.
        n_anchors_total : int, optional
            Divide by this instead of ``m`` (the global batch when anchors
            are split across processes).

        Returns
        -------
        torch.Tensor
            Scalar: its value is the plain batch loss, its gradient the
            exaggerated loss's.
        """
        m, k = anchors.shape[0], candidates.shape[0]
        rows = torch.arange(m, device=anchors.device)
        log_k = log_kernel_matrix(anchors, self.kernel, self.dof, self.temperature, other=candidates)
        log_k = log_k.index_put((rows, anchor_index), torch.tensor(-math.inf, dtype=log_k.dtype, device=log_k.device))
        log_q_plain = torch.log_softmax(log_k, dim=1)
        log_q = log_q_plain
        if self.alpha_q > 0:
            log_q = mix_uniform(log_q_plain, self.alpha_q, 1.0 / (k - 1))
            log_q = log_q.index_put((rows, anchor_index), torch.tensor(-math.inf, dtype=log_q.dtype, device=log_q.device))
        per_anchor = -(1.0 - self.alpha) * log_q[rows, neighbor_index]
        if self.alpha > 0:
            others = torch.where(torch.isinf(log_q), torch.zeros_like(log_q), log_q)
            per_anchor = per_anchor - self.alpha * others.sum(1) / (k - 1)
        total = float(m if n_anchors_total is None else n_anchors_total)
        loss = per_anchor.sum() / total
        if exaggeration != 1.0:
            with torch.no_grad():
                # The kernel's share of q~ at each pair (1 without alpha_q).
                share = (log_q_plain + math.log1p(-self.alpha_q) - log_q)[rows, neighbor_index].exp()
            attraction = -(1.0 - self.alpha) * (share * log_k[rows, neighbor_index]).sum() / total
            # Zero in value, the extra attraction in gradient: the value stays the plain loss.
            loss = loss + (exaggeration - 1.0) * (attraction - attraction.detach())
        return loss
