"""Data-parallel training over ``torch.distributed``: one process's share of each global batch."""

import torch
import torch.distributed as dist

from .optim import given_gradient


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

    def rows(self, anchors, neighbors):
        """This process's anchors and neighbours, in that order."""
        part = slice(self.rank * self.local, (self.rank + 1) * self.local)
        return torch.cat([anchors[part], neighbors[part]])

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
