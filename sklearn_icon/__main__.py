"""``python -m sklearn_icon``: embed the bundled digits and compare with TSNE."""

import argparse
import time


def main(argv=None):
    """Embed scikit-learn's digits with IConEmbedding, beside ``sklearn.manifold.TSNE``.

    Prints wall time, 10-NN accuracy of the 2-D embedding (5-fold) and
    trustworthiness for both.

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments; ``sys.argv`` when None.
    """
    from sklearn.datasets import load_digits
    from sklearn.manifold import TSNE, trustworthiness
    from sklearn.model_selection import cross_val_score
    from sklearn.neighbors import KNeighborsClassifier

    from sklearn_icon import IConEmbedding

    parser = argparse.ArgumentParser(prog="python -m sklearn_icon", description=main.__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--no-compare", action="store_true", help="skip sklearn's TSNE")
    args = parser.parse_args(argv)

    X, y = load_digits(return_X_y=True)
    models = [("IConEmbedding", IConEmbedding(random_state=0, device=args.device, verbose=1))]
    if not args.no_compare:
        models.append(("sklearn TSNE", TSNE(random_state=0)))
    print(f"digits: {X.shape[0]} samples, {X.shape[1]} features")
    rows = []
    for name, model in models:
        print(f"fitting {name} ...", flush=True)
        tic = time.perf_counter()
        embedding = model.fit_transform(X)
        seconds = time.perf_counter() - tic
        accuracy = cross_val_score(KNeighborsClassifier(n_neighbors=10), embedding, y, cv=5).mean()
        trust = trustworthiness(X, embedding, n_neighbors=10)
        rows.append((name, seconds, accuracy, trust, model.kl_divergence_))
    print(f"\n{'method':<16}{'time (s)':>10}{'10-NN acc':>11}{'trust(10)':>11}{'KL':>8}")
    for name, seconds, accuracy, trust, kl in rows:
        print(f"{name:<16}{seconds:>10.2f}{accuracy:>11.4f}{trust:>11.4f}{kl:>8.4f}")


if __name__ == "__main__":
    main()
