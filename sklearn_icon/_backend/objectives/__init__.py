"""Objectives: the I-Con loss of each engine, with its gradient.

Every objective of a neighbor embedding follows one protocol:
``objective(Y, exaggeration, compute_loss) -> (loss, grad)`` for embeddings
``Y``, plus ``objective.loss(Y)``. ``exaggeration`` multiplies the
attraction of the data's part of ``p`` (t-SNE's early exaggeration); the
loss reported is always the plain one, and is skipped (``nan``) when
``compute_loss`` is false. :func:`~sklearn_icon._backend.optim.loss_with_gradient`
turns any of them into a differentiable scalar, so a closed-form gradient
flows through any mapper.

- :mod:`.exact`: all pairs, closed-form gradient for distance kernels.
- :mod:`.autograd`: all pairs, any kernel, by autograd (and the reference
  :func:`~.autograd.icon_loss` every faster path is tested against).
- :mod:`.fft`: sparse attraction, repulsion interpolated on a grid (FIt-SNE).
- :mod:`.sampled`: one sampled neighbor per anchor, in-batch negatives.
- :mod:`.cluster`: the cluster kernels' loss over the edges of ``p``
  (exact, c-SNE and sampled), as autograd losses of log assignments.
"""
