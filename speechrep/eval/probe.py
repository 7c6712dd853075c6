"""Linear probes: how much speaker and phone information a representation exposes.

Both probes are multinomial logistic regressions on standardised inputs, trained and
tested on disjoint utterances (a seeded split), and report the accuracy of predicting
the training set's most frequent class as chance. A speaker probe far above chance on
a content representation means speaker leakage.

The speaker probe reads each utterance's mean *and* standard deviation per dimension.
Means alone say nothing about mean-normalised features (every mean is zero), and a
linear probe of single frames is no better: when every speaker's frames have the same
mean, the convex logistic loss is minimal at zero weights. Features must not be
normalised with per-speaker statistics of the test set (the MFCC baseline is not): a
speaker's utterance means then sum to zero, so held-out means point away from the
speaker's training means and the probe scores below chance.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

__all__ = ["speaker_probe", "phone_probe", "split_utterances"]


def split_utterances(
    utt2spk: Mapping[str, str], *, test_fraction: float = 0.25, seed: int = 0, per_speaker: bool = True
) -> tuple[list[str], list[str]]:
    """Seeded train/test split of utterances.

    With ``per_speaker`` every speaker with at least two utterances gives
    ``max(1, round(test_fraction * n))`` of them to the test set (speakers with one
    utterance stay in training), so a speaker probe can recognise test speakers.
    Otherwise the split ignores speakers.
    """
    rng = np.random.default_rng(seed)
    train, test = [], []
    groups: dict[str, list[str]] = {}
    for utt in sorted(utt2spk):
        groups.setdefault(utt2spk[utt] if per_speaker else "", []).append(utt)
    for _, utts in sorted(groups.items()):
        utts = [utts[i] for i in rng.permutation(len(utts))]
        n_test = max(1, round(test_fraction * len(utts))) if len(utts) >= 2 else 0
        test.extend(utts[:n_test])
        train.extend(utts[n_test:])
    return sorted(train), sorted(test)


def _sample_frames(
    features: Mapping[str, np.ndarray],
    labels: Mapping[str, Sequence[str | None]],
    utts: Sequence[str],
    *,
    max_frames: int | None,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Labelled frames of ``utts`` (``None`` labels skipped), seeded subsample to ``max_frames``.

    Returns ``x`` ``(num_frames, dim)`` float64 and ``y`` ``(num_frames,)``.
    """
    xs, ys = [], []
    for u in utts:
        keep = [i for i, lab in enumerate(labels[u]) if lab is not None]
        xs.append(np.asarray(features[u], np.float64)[keep])
        ys.extend(labels[u][i] for i in keep)
    x, y = np.concatenate(xs), np.array(ys)
    if max_frames is not None and len(y) > max_frames:
        pick = np.sort(rng.choice(len(y), size=max_frames, replace=False))
        x, y = x[pick], y[pick]
    return x, y


def _fit(x_train: np.ndarray, y_train: np.ndarray, *, seed: int):
    """Standardise + multinomial logistic regression; None with fewer than two classes."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if len(np.unique(y_train)) < 2:
        return None
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=500, random_state=seed)).fit(x_train, y_train)


def _chance(y_train: np.ndarray, y_test: np.ndarray) -> float:
    """Accuracy on ``y_test`` of always answering the most frequent training class."""
    classes, counts = np.unique(y_train, return_counts=True)
    return float(np.mean(np.asarray(y_test) == classes[np.argmax(counts)]))


def speaker_probe(
    features: Mapping[str, np.ndarray],
    utt2spk: Mapping[str, str],
    *,
    test_fraction: float = 0.25,
    seed: int = 0,
) -> dict[str, float | int] | None:
    """Speaker accuracy of a linear probe on pooled utterance statistics.

    Each utterance becomes the mean and the standard deviation of every dimension over
    its frames (statistics pooling, as in x-vectors); dimensions constant over the
    training utterances up to rounding (spread below ``1e-4`` of the largest) are dropped,
    e.g. the means of mean-normalised features. Test utterances come from the training
    speakers (a per-speaker split, :func:`split_utterances`).

    Parameters
    ----------
    features : utt -> ``(num_frames, dim)``; a ``(1, dim)`` summary per utterance (e.g.
        a unit histogram) is used as it is.
    utt2spk : utt -> speaker.

    Returns
    -------
    ``{"accuracy", "chance", "num_train", "num_test", "num_classes"}`` (``num_*`` count
    utterances), or None when no speaker has two utterances (nothing to test on).
    """
    train, test = split_utterances({u: utt2spk[u] for u in features}, test_fraction=test_fraction, seed=seed)
    if not test:
        return None

    def pooled(utts: list[str]) -> np.ndarray:  # (num_utts, 2 * dim)
        stats = [np.asarray(features[u], np.float64) for u in utts]
        return np.stack([np.concatenate([x.mean(0), x.std(0)]) for x in stats])

    x_train, x_test = pooled(train), pooled(test)
    spread = x_train.std(0)
    keep = spread > 1e-4 * spread.max() if spread.max() > 0 else np.ones(len(spread), bool)
    y_train, y_test = np.array([utt2spk[u] for u in train]), np.array([utt2spk[u] for u in test])
    out: dict[str, float | int] = {"chance": _chance(y_train, y_test), "num_train": len(train), "num_test": len(test)}
    model = _fit(x_train[:, keep], y_train, seed=seed)
    if model is None:
        return {"accuracy": out["chance"], **out}
    return {"accuracy": float(model.score(x_test[:, keep], y_test)), **out, "num_classes": int(len(model.classes_))}


def phone_probe(
    features: Mapping[str, np.ndarray],
    labels: Mapping[str, Sequence[str | None]],
    *,
    test_fraction: float = 0.25,
    seed: int = 0,
    max_frames: int = 20000,
) -> dict[str, float | int] | None:
    """Frame-wise phone accuracy of a linear probe, tested on held-out utterances.

    Parameters
    ----------
    features : utt -> ``(num_frames, dim)``.
    labels : utt -> phone of each frame (``None`` frames are skipped).
    max_frames : training and test frames are each subsampled (seeded) to at most this.

    Returns
    -------
    ``{"accuracy", "chance", "num_train", "num_test", "num_classes"}`` (``num_*`` count
    frames); None with fewer than two utterances.
    """
    train, test = split_utterances({u: "" for u in features}, test_fraction=test_fraction, seed=seed, per_speaker=False)
    if not test or not train:
        return None
    rng = np.random.default_rng([seed, 2])
    x_train, y_train = _sample_frames(features, labels, train, max_frames=max_frames, rng=rng)
    x_test, y_test = _sample_frames(features, labels, test, max_frames=max_frames, rng=rng)
    if len(y_train) == 0 or len(y_test) == 0:
        return None
    chance = _chance(y_train, y_test)
    out: dict[str, float | int] = {"chance": chance, "num_train": int(len(y_train)), "num_test": int(len(y_test))}
    model = _fit(x_train, y_train, seed=seed)
    if model is None:
        return {"accuracy": chance, **out}
    return {"accuracy": float(model.score(x_test, y_test)), **out, "num_classes": int(len(model.classes_))}
