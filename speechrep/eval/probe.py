"""Linear probes: how much speaker and phone information a representation exposes.

Both probes are multinomial logistic regressions on standardised inputs, trained and
tested on disjoint utterances (a seeded split), and report the accuracy of predicting
the training set's most frequent class as chance. A speaker probe far above chance on
a content representation means speaker leakage.
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


def _fit_score(x_train, y_train, x_test, y_test, *, seed: int) -> dict[str, float | int]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    y_train, y_test = np.asarray(y_train), np.asarray(y_test)
    classes, counts = np.unique(y_train, return_counts=True)
    chance = float(np.mean(y_test == classes[np.argmax(counts)]))
    if len(classes) < 2:
        return {"accuracy": chance, "chance": chance, "num_train": len(y_train), "num_test": len(y_test)}
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500, random_state=seed))
    model.fit(x_train, y_train)
    return {
        "accuracy": float(model.score(x_test, y_test)),
        "chance": chance,
        "num_train": int(len(y_train)),
        "num_test": int(len(y_test)),
        "num_classes": int(len(classes)),
    }


def speaker_probe(
    features: Mapping[str, np.ndarray],
    utt2spk: Mapping[str, str],
    *,
    test_fraction: float = 0.25,
    seed: int = 0,
) -> dict[str, float | int] | None:
    """Speaker accuracy of a linear probe on mean-pooled utterance features.

    Parameters
    ----------
    features : utt -> ``(num_frames, dim)``.
    utt2spk : utt -> speaker.

    Returns
    -------
    ``{"accuracy", "chance", "num_train", "num_test", "num_classes"}``, or None when no
    speaker has two utterances (nothing to test on).
    """
    train, test = split_utterances({u: utt2spk[u] for u in features}, test_fraction=test_fraction, seed=seed)
    if not test:
        return None

    def pooled(utts):
        return np.stack([np.asarray(features[u], np.float64).mean(0) for u in utts])

    return _fit_score(
        pooled(train), [utt2spk[u] for u in train], pooled(test), [utt2spk[u] for u in test], seed=seed
    )


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
    As :func:`speaker_probe`; None with fewer than two utterances.
    """
    train, test = split_utterances({u: "" for u in features}, test_fraction=test_fraction, seed=seed, per_speaker=False)
    if not test or not train:
        return None
    rng = np.random.default_rng([seed, 2])

    def frames(utts):
        xs, ys = [], []
        for u in utts:
            keep = [i for i, lab in enumerate(labels[u]) if lab is not None]
            xs.append(np.asarray(features[u], np.float64)[keep])
            ys.extend(labels[u][i] for i in keep)
        x, y = np.concatenate(xs), np.array(ys)
        if len(y) > max_frames:
            pick = np.sort(rng.choice(len(y), size=max_frames, replace=False))
            x, y = x[pick], y[pick]
        return x, y

    x_train, y_train = frames(train)
    x_test, y_test = frames(test)
    if len(y_train) == 0 or len(y_test) == 0:
        return None
    return _fit_score(x_train, y_train, x_test, y_test, seed=seed)
