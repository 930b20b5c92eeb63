"""Learned kernels q: how the learned neighbor distribution is formed from the model's output.

:mod:`.distance` compares embeddings (Student-t, Gaussian, cosine),
:mod:`.cluster` compares soft cluster assignments ("share a cluster"),
:mod:`.prototypes` compares features with one prototype per class.
"""
