"""The structure of latent codes: how well a k-NN classifier reads the classes from them, how separated the
classes are (silhouette), and a 2-D t-SNE embedding for the figure."""

from __future__ import annotations

import os

import numpy as np

from .stored import stored_evaluation

__all__ = ["class_means", "knn_accuracy", "silhouette", "tsne_embed"]



def class_means(codes: np.ndarray, labels) -> np.ndarray:
    """The mean code of each class, (C, D) float64, for classes 0 .. C-1 (each present) of ``labels`` (N,)."""
    codes, labels = np.asarray(codes, dtype=np.float64), np.asarray(labels).reshape(-1)
    if codes.ndim != 2 or len(codes) != len(labels):
        raise ValueError(f"need codes (N, D) and labels (N,), got shapes {codes.shape} and {labels.shape}")
    missing = [c for c in range(int(labels.max()) + 1) if not (labels == c).any()]
    if missing:
        raise ValueError(f"no codes of class(es) {missing}: every class needs codes")
    return np.stack([codes[labels == c].mean(0) for c in range(int(labels.max()) + 1)])


def knn_accuracy(z_train: np.ndarray, y_train: np.ndarray, z_test: np.ndarray, y_test: np.ndarray,
                 k: int = 5) -> float:
    """Test accuracy of a k-nearest-neighbour classifier (Euclidean) fitted on the training codes."""
    from sklearn.neighbors import KNeighborsClassifier

    return float(KNeighborsClassifier(n_neighbors=k).fit(z_train, y_train).score(z_test, y_test))


def silhouette(z: np.ndarray, y: np.ndarray, sample_size: int | None = None, seed: int = 0) -> float:
    """Mean silhouette coefficient of the classes in latent space (Euclidean), in [-1, 1]; on a random
    subset of ``sample_size`` codes when given (the full computation is O(N^2))."""
    from sklearn.metrics import silhouette_score

    return float(silhouette_score(z, y, sample_size=sample_size, random_state=seed))


@stored_evaluation
def tsne_embed(z: np.ndarray, seed: int = 0, pca_dims: int = 50, *, perplexity: float = 30.0,
               method: str = "auto", n_jobs: int | None = None) -> np.ndarray:
    """2-D t-SNE embedding (N, 2) float64 of codes (N, D), with openTSNE (Policar et al., 2024): PCA to
    ``pca_dims`` first when D is larger (denoises and speeds up t-SNE, as van der Maaten & Hinton, 2008,
    recommend), then ``openTSNE.TSNE`` with PCA initialization, ``perplexity`` and ``random_state=seed``.
    ``perplexity`` must be below N. ``method``: "fft" (Linderman et al., 2019), "bh" (Barnes-Hut) or "auto"
    (openTSNE's rule: Barnes-Hut below 10,000 points). ``n_jobs``: threads; None takes OMP_NUM_THREADS when
    set, else all cores. Why openTSNE, and its timings against scikit-learn: bench/README.md.

    The same seed gives the same output, bit for bit, whatever ``n_jobs``: from 1,000 points on, the approximate
    nearest neighbours (Annoy) are built on one thread, because Annoy's trees depend on the number of threads
    that build them; the rest of openTSNE gives identical results on any number of threads."""

    import openTSNE
    from sklearn.decomposition import PCA

    z = np.asarray(z, dtype=np.float64)
    if z.ndim != 2 or len(z) < 2 or z.shape[1] < 1:
        raise ValueError(f"z must be (N, D) with N >= 2 codes, got shape {z.shape}")
    n = len(z)
    if not 0 < perplexity < n:
        raise ValueError(f"perplexity must be positive and below N = {n}, got {perplexity}")
    if method not in ("auto", "fft", "bh"):
        raise ValueError(f"method must be 'auto', 'fft' or 'bh', got {method!r}")
    if n_jobs is None:
        omp = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
        n_jobs = int(omp) if omp.isdigit() and int(omp) > 0 else os.cpu_count() or 1
    if z.shape[1] > pca_dims:
        z = PCA(n_components=min(pca_dims, n), random_state=seed).fit_transform(z)
    neighbors = "exact"  # openTSNE's own choice below 1,000 points
    if n >= 1000:  # Annoy with the k and seed openTSNE would use, but on one thread
        k = min(n - 1, int(3 * min(perplexity, (n - 1) / 3)))
        neighbors = openTSNE.nearest_neighbors.Annoy(z, k, n_jobs=1, random_state=seed)
    embedding = openTSNE.TSNE(n_components=2, perplexity=perplexity, initialization="pca", neighbors=neighbors,
                              negative_gradient_method=method, n_jobs=n_jobs, random_state=seed).fit(z)
    return np.array(embedding, dtype=np.float64)  # a plain array: not holding openTSNE's affinities
