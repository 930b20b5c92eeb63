"""Pure-torch engine of sklearn-icon: kernels, the I-Con loss, mappers, optimisers.

Nothing in this package imports scikit-learn.
"""
