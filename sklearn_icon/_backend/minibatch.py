"""Mini-batch I-Con for parametric embeddings: sampled neighbours, in-batch negatives.

Each step draws anchors ``i`` uniformly, one neighbour ``j ~ p(.|i)`` of each
(a step of :class:`~sklearn_icon._backend.cluster.WalkSampler`), and
normalises each anchor's ``q(.|i)`` over the batch's other points, anchors
and neighbours alike. The anchor's loss, ``-log q(j|i)``, is then an
unbiased sample of the cross-entropy part of ``KL(p(.|i) || q_batch(.|i))``:
InfoNCE with the learned kernel as its critic, which for the Cauchy kernel
is the parametric, negative-sampling form of t-SNE. Memory and time per step
depend on the batch only, never on ``n``.
"""

import math

import torch
import torch.distributed as dist

from .learned import log_kernel_matrix, mix_uniform
from .optim import given_gradient


class SampledNeighbourLoss:
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

    def __call__(self, anchors, candidates, anchor_index, neighbour_index, exaggeration=1.0, n_anchors_total=None):
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
        per_anchor = -(1.0 - self.alpha) * log_q[rows, neighbour_index]
        if self.alpha > 0:
            others = torch.where(torch.isinf(log_q), torch.zeros_like(log_q), log_q)
            per_anchor = per_anchor - self.alpha * others.sum(1) / (k - 1)
        total = float(m if n_anchors_total is None else n_anchors_total)
        loss = per_anchor.sum() / total
        if exaggeration != 1.0:
            with torch.no_grad():
                # The kernel's share of q~ at each pair (1 without alpha_q).
                share = (log_q_plain + math.log1p(-self.alpha_q) - log_q)[rows, neighbour_index].exp()
            attraction = -(1.0 - self.alpha) * (share * log_k[rows, neighbour_index]).sum() / total
            # Zero in value, the extra attraction in gradient: the value stays the plain loss.
            loss = loss + (exaggeration - 1.0) * (attraction - attraction.detach())
        return loss


class ProcessGroupShard:
    """One process's share of a data-parallel mini-batch step over ``torch.distributed``.

    Every process draws the same global batch (their generators must be
    seeded alike) and embeds its slice of the anchors and of their neighbours. The
    embeddings are all-gathered, so each anchor's ``q`` is normalised over
    the whole global batch, in-batch negatives from every process, and the
    loss is exactly the single-process loss of that batch. Its gradient is
    assembled with ``all_reduce`` only (which every backend has, gloo
    included): the gradient with respect to all gathered embeddings is
    summed over processes, each process back-propagates its own rows, and
    the parameter gradients are summed, so every process takes the same
    Adam step as one process would on the global batch.

    Parameters
    ----------
    batch_size : int
        Global number of anchors per step; a multiple of the world size.
    device : torch.device
        Where the training tensors live (CUDA for ``nccl``, which moves
        nothing else).
    group : ProcessGroup or None, default=None
        None for the default group.
    """

    def __init__(self, batch_size, device, group=None):
        self.group, self.device = group, torch.device(device)
        self.world, self.rank = dist.get_world_size(group), dist.get_rank(group)
        self.local = batch_size // self.world

    def broadcast_module(self, module):
        """Start every process from the first one's parameters."""
        with torch.no_grad():
            for tensor in list(module.parameters()) + list(module.buffers()):
                dist.broadcast(tensor, src=dist.get_global_rank(self.group, 0) if self.group else 0, group=self.group)

    def rows(self, anchors, neighbours):
        """This process's anchors and neighbours, in that order."""
        part = slice(self.rank * self.local, (self.rank + 1) * self.local)
        return torch.cat([anchors[part], neighbours[part]])

    def loss(self, mapper, inputs, loss, exaggeration, n_anchors_total):
        """This process's share of one global batch's loss, differentiable in its own embeddings.

        The embeddings of every process are all-gathered and the gradient
        with respect to all of them summed over processes; the returned
        scalar's value is this process's share of the loss, and its
        gradient with respect to this process's embeddings is their rows of
        that sum, so ``backward`` then :meth:`reduce_gradients` give every
        process the single-process gradient.
        """
        Y_local = mapper(inputs)
        gathered = [torch.empty_like(Y_local) for _ in range(self.world)]
        dist.all_gather(gathered, Y_local.detach().contiguous(), group=self.group)
        candidates = torch.cat(gathered).requires_grad_(True)
        start = self.rank * 2 * self.local
        anchor_index = torch.arange(start, start + self.local, device=inputs.device)
        share = loss(
            candidates[anchor_index], candidates, anchor_index, anchor_index + self.local, exaggeration,
            n_anchors_total=n_anchors_total,
        )
        (grad,) = torch.autograd.grad(share, candidates)
        dist.all_reduce(grad, group=self.group)
        return given_gradient(Y_local, share.detach(), grad[start : start + 2 * self.local])

    def reduce_gradients(self, parameters):
        """Sum the parameter gradients over processes, after each backward pass."""
        for parameter in parameters:
            if parameter.grad is not None:
                dist.all_reduce(parameter.grad, group=self.group)

    def total(self, value):
        """The sum over processes of a scalar."""
        tensor = torch.tensor([float(value)], dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor, group=self.group)
        return float(tensor)
