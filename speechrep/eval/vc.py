"""Voice-conversion scoring: who speaks (speaker verification) and what is said (phones).

Scorers are trained in the project but independently of the conversion models:

- a speaker-verification encoder (:mod:`speechrep.models.speaker`, model ``speaker_tdnn``,
  trained with ``speechrep train``) gives embeddings; converted speech is compared by
  cosine with the centroid of every speaker's utterances in the pairs file (sources and
  targets): *target accuracy* is how often the target speaker is the nearest centroid,
  *source rate* how often the source speaker is, and the EER treats (converted, target
  speaker) as target trials and (converted, any other speaker) as non-target trials;
- a CTC phone recogniser (:mod:`speechrep.models.phone_ctc`, trained with ``speechrep
  train``, egs/synth/vc/conf/phone_ctc.yaml) decodes converted and resynthesised speech; the phone
  error rate (PER) is measured against the source's phone sequence (``phones`` column);

and two signal measures, against the ``reference`` column of the pairs (the target
speaker reading the source text) when present, else against the source:

- MCD: mel-cepstral distortion in dB, ``(10 / ln 10) * sqrt(2 * sum_d (c_d - c'_d)^2)``
  over cepstral coefficients 1..24 (orthonormal DCT-II of the VC log-mel, natural-log
  magnitude), averaged over the DTW path between the two utterances; the DCT scaling
  differs from SPTK mel-cepstra, so compare values within the project only;
- log-F0 correlation and RMSE (in cents) over DTW-aligned frames voiced in both
  (:func:`speechrep.models.pitch.estimate_f0`, the tracker of the models).

Judges that never saw the project's corpus (pretrained on real speech: a GE2E speaker
encoder, an en-us recogniser) are in :mod:`speechrep.eval.judges`; ``speechrep eval vc
--judges`` runs them, these, or both.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from speechrep.data.ctm import SILENCE_PHONES
from speechrep.errors import CheckpointError, ConfigError, DataError

__all__ = [
    "equal_error_rate",
    "edit_distance",
    "phone_error_rate",
    "mel_cepstrum",
    "dtw_path",
    "mel_cepstral_distortion",
    "f0_metrics",
    "speaker_scores",
    "evaluate_vc",
    "format_vc_table",
    "format_by_target",
    "SILENCE_PHONES",
]

_MCD_CONST = 10.0 / math.log(10.0) * math.sqrt(2.0)


# ----------------------------------------------------------------------------- metrics
def equal_error_rate(scores: np.ndarray, labels: np.ndarray) -> float:
    """Equal error rate of verification trials.

    Parameters
    ----------
    scores : ``(trials,)`` higher = more likely the same speaker.
    labels : ``(trials,)`` 1 for target trials, 0 for non-target trials (both present).

    Returns
    -------
    float
        The rate in [0, 1] where false acceptance equals false rejection, linearly
        interpolated between the two thresholds around the crossing.
    """
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels).astype(bool)
    n_tar, n_non = int(labels.sum()), int((~labels).sum())
    if n_tar == 0 or n_non == 0:
        raise ValueError("EER needs both target and non-target trials")
    order = np.argsort(-scores, kind="stable")
    lab = labels[order]
    # threshold after the k highest scores (k = 0..N): accept those k
    far = np.concatenate([[0.0], np.cumsum(~lab) / n_non])
    frr = np.concatenate([[1.0], 1.0 - np.cumsum(lab) / n_tar])
    # only thresholds between distinct scores are reachable
    distinct = np.concatenate([[True], np.diff(scores[order]) != 0, [True]])[1:]
    keep = np.concatenate([[True], distinct])
    far, frr = far[keep], frr[keep]
    diff = frr - far  # decreasing from 1 to -1
    i = int(np.flatnonzero(diff <= 0)[0])
    if diff[i] == 0 or i == 0:
        return float(far[i])
    # interpolate between thresholds i-1 and i where frr - far changes sign
    t = diff[i - 1] / (diff[i - 1] - diff[i])
    return float(far[i - 1] + t * (far[i] - far[i - 1]))


def edit_distance(ref: Sequence[str], hyp: Sequence[str]) -> int:
    """Levenshtein distance (substitutions + deletions + insertions) of two sequences."""
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1]


def phone_error_rate(refs: Sequence[Sequence[str]], hyps: Sequence[Sequence[str]]) -> float:
    """Total edit distance over total reference length (corpus-level PER, in [0, inf))."""
    total = sum(len(r) for r in refs)
    if total == 0:
        raise ValueError("phone error rate needs non-empty references")
    return sum(edit_distance(r, h) for r, h in zip(refs, hyps, strict=True)) / total


def mel_cepstrum(log_mel: np.ndarray, *, order: int = 24) -> np.ndarray:
    """Cepstral coefficients 1..``order`` of a log-mel spectrogram.

    Parameters
    ----------
    log_mel : ``(frames, n_mels)`` natural-log mel magnitudes.

    Returns
    -------
    np.ndarray
        ``(frames, order)`` float64 (orthonormal DCT-II; c0, the energy, is left out).
    """
    from scipy.fft import dct

    return dct(np.asarray(log_mel, dtype=np.float64), type=2, norm="ortho", axis=1)[:, 1 : order + 1]


def dtw_path(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Minimum-cost monotonic alignment of two feature sequences (Euclidean frame cost).

    Parameters
    ----------
    x : ``(n, dim)``; y : ``(m, dim)``.

    Returns
    -------
    np.ndarray
        ``(path_length, 2)`` int pairs ``(i, j)`` from ``(0, 0)`` to ``(n - 1, m - 1)``.
    """
    import librosa

    _, wp = librosa.sequence.dtw(X=np.asarray(x).T, Y=np.asarray(y).T, metric="euclidean")
    return np.ascontiguousarray(wp[::-1])


def mel_cepstral_distortion(a: np.ndarray, b: np.ndarray, *, path: np.ndarray | None = None) -> float:
    """Mean mel-cepstral distortion in dB between cepstra ``(n, d)`` and ``(m, d)``.

    Frames are paired by ``path`` (default: the DTW path of the two cepstra).
    """
    if path is None:
        path = dtw_path(a, b)
    diff = a[path[:, 0]] - b[path[:, 1]]
    return float(np.mean(_MCD_CONST * np.sqrt((diff**2).sum(axis=1))))


def f0_metrics(f0_a: np.ndarray, f0_b: np.ndarray, path: np.ndarray) -> dict[str, float]:
    """Log-F0 agreement of two F0 tracks (Hz, NaN = unvoiced) paired by ``path``.

    Returns
    -------
    dict
        ``logf0_corr`` (Pearson correlation of log F0; NaN when undefined),
        ``logf0_rmse_cents`` (RMS difference in cents) and ``voiced_pairs`` (frames used).
    """
    i = np.clip(path[:, 0], 0, len(f0_a) - 1)
    j = np.clip(path[:, 1], 0, len(f0_b) - 1)
    a, b = f0_a[i], f0_b[j]
    both = np.isfinite(a) & np.isfinite(b) & (a > 0) & (b > 0)
    if not both.any():
        return {"logf0_corr": float("nan"), "logf0_rmse_cents": float("nan"), "voiced_pairs": 0}
    la, lb = np.log(a[both]), np.log(b[both])
    corr = float(np.corrcoef(la, lb)[0, 1]) if both.sum() > 1 and la.std() > 0 and lb.std() > 0 else float("nan")
    rmse = float(np.sqrt(np.mean((1200.0 / math.log(2.0) * (la - lb)) ** 2)))
    return {"logf0_corr": corr, "logf0_rmse_cents": rmse, "voiced_pairs": int(both.sum())}


def speaker_scores(converted: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Cosine similarities ``(n, speakers)`` of embeddings ``(n, d)`` to centroids ``(speakers, d)``."""
    c = converted / np.maximum(np.linalg.norm(converted, axis=1, keepdims=True), 1e-12)
    s = centroids / np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)
    return c @ s.T


# ----------------------------------------------------------------------------- evaluation
def _load_scorer(path: str | Path, cls_name: str, module_name: str, model_name: str):
    import importlib

    from speechrep.train.checkpoint import load_model

    cls = getattr(importlib.import_module(module_name), cls_name)  # registers the model
    model, name, _ = load_model(path)
    if not isinstance(model, cls):
        raise CheckpointError(f"holds a '{name}' model, not a '{model_name}' model", path=path)
    return model


def evaluate_vc(
    pairs: str | Path,
    converted_dir: str | Path,
    *,
    speaker_model: str | Path,
    phone_model: str | Path | Sequence[str | Path] | None = None,
    resynth_dir: str | Path | None = None,
    f0: bool = True,
    enrol_targets: int | None = None,
    seen_speakers: Iterable[str] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Score converted utterances ``converted_dir/<id>.wav`` of a pairs file.

    Parameters
    ----------
    pairs : pairs file (see :mod:`speechrep.convert`); needs ``source_speaker`` and
        ``target_speaker`` columns, and ``phones`` for the PER.
    converted_dir : directory with one ``<id>.wav`` per pair.
    speaker_model : experiment directory of a ``speaker_tdnn`` model.
    phone_model : experiment directory of a ``phone_ctc`` model, or a list of them (PER is
        skipped without one). With several, every PER is the mean of their PERs (each model
        is one measurement; recognisers of different seeds disagree by a few points on
        converted speech), and ``per_by_model`` etc. list them one by one.
    resynth_dir : ``<id>.wav`` copy-synthesised sources (vocoder without conversion), for
        the PER and MCD baseline.
    f0 : compute log-F0 measures (F0 tracking of both sides).
    enrol_targets : enrol each target speaker with only the first N targets of every pair
        (default: all of them), so that conversions made with more target utterances are
        judged against the same speaker centroids as those made with fewer.
    seen_speakers : the speakers the VC model was trained on: the pairs whose target is one
        of them (``seen``) are also scored apart from those whose target is not
        (``unseen``: zero-shot conversion), in ``by_group``.

    Returns
    -------
    dict
        ``summary`` (aggregate numbers), ``by_target`` (per target speaker: ``pairs``,
        ``target_accuracy``, ``source_rate`` and ``taken_for``, the speakers its misses were
        taken for, ``{speaker: count}``), with ``seen_speakers`` ``by_group`` (``seen`` and
        ``unseen``, when they have pairs: the speaker and phone scores of ``summary`` over
        their pairs), ``pairs`` (per-pair numbers) and ``settings``. The phone scores are
        ``per`` (converted speech), ``resynth_per`` (copy synthesis, with ``resynth_dir``)
        and ``source_per`` (the source utterances themselves: the recogniser's error on
        real speech), against the source's phones.
    """
    import torch
    from speechrep.models.pitch import estimate_f0
    from speechrep.utils.progress import progress_bar

    from speechrep.data.pairs import read_input_audio, read_pairs
    from speechrep.features.logmel import VC_MEL, log_mel

    if enrol_targets is not None and enrol_targets < 1:
        raise ConfigError(f"enrol_targets must be >= 1, got {enrol_targets}", field="--enrol-targets")
    seen_speakers = None if seen_speakers is None else set(seen_speakers)
    pair_list = read_pairs(pairs)
    missing_spk = [p.id for p in pair_list if not (p.source_speaker and p.target_speaker)]
    if missing_spk:
        raise DataError(f"pair '{missing_spk[0]}' has no source_speaker/target_speaker", path=pairs)
    converted_dir = Path(converted_dir)
    spk_model = _load_scorer(speaker_model, "SpeakerVerifier", "speechrep.models.speaker", "speaker_tdnn")
    phone_models = [] if phone_model is None else (
        [phone_model] if isinstance(phone_model, (str, Path)) else list(phone_model))
    ph_models = [_load_scorer(m, "PhoneRecognizer", "speechrep.models.phone_ctc", "phone_ctc") for m in phone_models]
    if ph_models:
        if any(p.phones is None for p in pair_list):
            raise DataError("a phone model was given but the pairs file has no 'phones' for every pair", path=pairs)
    sr = VC_MEL.sample_rate

    def read(path: str | Path, what: str) -> np.ndarray:
        return read_input_audio(path, sample_rate=sr, field_name=what)

    def as_mel(wave: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(log_mel(wave))[None]

    @torch.no_grad()
    def embed(wave: np.ndarray) -> np.ndarray:
        return spk_model.embed(as_mel(wave))[0].numpy()

    def recognise(wave: np.ndarray) -> list[list[str]]:
        """The phones of ``wave`` by every phone model."""
        mel = as_mel(wave)
        return [m.recognize(mel)[0] for m in ph_models]

    # enrolment: every distinct source/target utterance, by speaker
    enrol: dict[str, dict[str, np.ndarray]] = {}
    for p in pair_list:
        enrol.setdefault(p.source_speaker, {}).setdefault(p.source, None)
        for t in p.targets[:enrol_targets]:
            enrol.setdefault(p.target_speaker, {}).setdefault(t, None)
    speakers = sorted(enrol)
    items = [(s, u) for s in speakers for u in enrol[s]]
    for s, u in progress_bar(items, desc="enrol", unit="utt", enabled=progress):
        enrol[s][u] = embed(read(u, "enrolment"))
    centroids = np.stack([np.mean(list(enrol[s].values()), axis=0) for s in speakers])

    rows: list[dict[str, Any]] = []
    conv_emb = []
    # hypotheses by pair, then by phone model: converted, copy synthesis, source
    refs: list[list[str]] = []
    hyps: list[list[list[str]]] = []
    hyps_rs: list[list[list[str]]] = []
    hyps_src: list[list[list[str]]] = []
    src_hyps_cache: dict[str, list[list[str]]] = {}

    def per_of(ref: list[str], by_model: list[list[str]]) -> float:
        return float(np.mean([edit_distance(ref, h) for h in by_model])) / max(len(ref), 1)
    for p in progress_bar(pair_list, desc="score", unit="pair", enabled=progress):
        wave = read(converted_dir / f"{p.id}.wav", "converted")
        conv_emb.append(embed(wave))
        row: dict[str, Any] = {"id": p.id, "source_speaker": p.source_speaker, "target_speaker": p.target_speaker}
        against = p.reference or p.source
        ref_wave = read(against, "reference")
        cep_c, cep_r = mel_cepstrum(log_mel(wave)), mel_cepstrum(log_mel(ref_wave))
        path = dtw_path(cep_c, cep_r)
        row["mcd_db"] = mel_cepstral_distortion(cep_c, cep_r, path=path)
        if f0:
            row.update(f0_metrics(estimate_f0(wave), estimate_f0(ref_wave), path))
        rs_wave = None
        if resynth_dir is not None:
            rs_wave = read(Path(resynth_dir) / f"{p.id}.wav", "resynthesis")
            cep_s = mel_cepstrum(log_mel(rs_wave))
            row["resynth_mcd_db"] = mel_cepstral_distortion(cep_s, cep_r)
        if ph_models:
            ref = [x for x in p.phones if x not in SILENCE_PHONES]
            refs.append(ref)
            hyps.append(recognise(wave))
            row["per"] = per_of(ref, hyps[-1])
            if rs_wave is not None:
                hyps_rs.append(recognise(rs_wave))
                row["resynth_per"] = per_of(ref, hyps_rs[-1])
            if str(p.source) not in src_hyps_cache:
                src_wave = ref_wave if against == p.source else read(p.source, "source")
                src_hyps_cache[str(p.source)] = recognise(src_wave)
            hyps_src.append(src_hyps_cache[str(p.source)])
            row["source_per"] = per_of(ref, hyps_src[-1])
        rows.append(row)

    scores = speaker_scores(np.stack(conv_emb), centroids)  # (pairs, speakers)
    index = {s: k for k, s in enumerate(speakers)}
    tgt = np.array([index[p.target_speaker] for p in pair_list])
    src = np.array([index[p.source_speaker] for p in pair_list])
    pred = scores.argmax(1)
    labels = np.zeros_like(scores, dtype=bool)
    labels[np.arange(len(pair_list)), tgt] = True
    for k, row in enumerate(rows):
        row["predicted_speaker"] = speakers[pred[k]]
        row["target_similarity"] = float(scores[k, tgt[k]])
        row["source_similarity"] = float(scores[k, src[k]])

    def rates(idx: np.ndarray) -> dict[str, Any]:
        """Speaker and phone scores of the pairs ``idx``."""
        out: dict[str, Any] = {
            "pairs": len(idx),
            "target_accuracy": float(np.mean(pred[idx] == tgt[idx])),
            "source_rate": float(np.mean(pred[idx] == src[idx])),
            "target_similarity": float(np.mean(scores[idx, tgt[idx]])),
            "source_similarity": float(np.mean(scores[idx, src[idx]])),
            "eer": equal_error_rate(scores[idx].ravel(), labels[idx].ravel()) if len(speakers) > 1 else float("nan"),
        }
        for key, by_pair in (("per", hyps), ("resynth_per", hyps_rs), ("source_per", hyps_src)):
            if not by_pair:
                continue
            by_model = [phone_error_rate([refs[k] for k in idx], [by_pair[k][m] for k in idx])
                        for m in range(len(ph_models))]
            out[key] = float(np.mean(by_model))
            if len(ph_models) > 1:
                out[f"{key}_by_model"] = by_model
        return out

    summary: dict[str, Any] = {
        **rates(np.arange(len(pair_list))),
        "speakers": len(speakers),
        "mcd_db": float(np.mean([r["mcd_db"] for r in rows])),
        "mcd_against": "reference" if all(p.reference for p in pair_list) else "source/reference",
    }
    if f0:
        summary["logf0_corr"] = float(np.nanmean([r["logf0_corr"] for r in rows]))
        summary["logf0_rmse_cents"] = float(np.nanmean([r["logf0_rmse_cents"] for r in rows]))
    if resynth_dir is not None:
        summary["resynth_mcd_db"] = float(np.mean([r["resynth_mcd_db"] for r in rows]))
    by_group: dict[str, dict[str, Any]] = {}
    if seen_speakers is not None:
        seen = {k for k, p in enumerate(pair_list) if p.target_speaker in seen_speakers}
        for group, members in (("seen", sorted(seen)), ("unseen", sorted(set(range(len(pair_list))) - seen))):
            if members:
                by_group[group] = rates(np.array(members))
    settings = {"pairs": str(pairs), "converted": str(converted_dir), "speaker_model": str(speaker_model),
                "phone_model": [str(m) for m in phone_models] if len(phone_models) > 1 else (
                    str(phone_models[0]) if phone_models else None),
                "resynth": None if resynth_dir is None else str(resynth_dir), "enrol_targets": enrol_targets,
                "seen_speakers": None if seen_speakers is None else sorted(seen_speakers)}
    result = {"summary": summary, "by_target": _by_target(pair_list, [speakers[k] for k in pred]),
              "pairs": rows, "settings": settings}
    if seen_speakers is not None:
        result["by_group"] = by_group
    return result


def _text_table(header: list[str], body: list[list[str]]) -> str:
    """Columns padded to their widest cell, a rule under the header."""
    widths = [max(len(row[i]) for row in [header] + body) for i in range(len(header))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(row, widths)).rstrip() for row in [header] + body]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _by_target(pair_list: Sequence[Any], predicted: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Per target speaker: pairs, rate taken for the target / for the source, and the
    speakers the misses were taken for (``{speaker: count}``, most frequent first)."""
    out: dict[str, dict[str, Any]] = {}
    for spk in sorted({p.target_speaker for p in pair_list}):
        idx = [k for k, p in enumerate(pair_list) if p.target_speaker == spk]
        misses = Counter(predicted[k] for k in idx if predicted[k] != spk)
        out[spk] = {
            "pairs": len(idx),
            "target_accuracy": sum(predicted[k] == spk for k in idx) / len(idx),
            "source_rate": sum(predicted[k] == pair_list[k].source_speaker for k in idx) / len(idx),
            "taken_for": dict(misses.most_common()),
        }
    return out


def format_by_target(result: dict[str, Any]) -> str:
    """Plain-text table of :func:`evaluate_vc`'s per-target-speaker rates and misses."""
    header = ["target", "pairs", "as target", "as source", "misses taken for"]
    body = [[spk, str(r["pairs"]), f"{r['target_accuracy']:.1%}", f"{r['source_rate']:.1%}",
             " ".join(f"{s}:{n}" for s, n in r["taken_for"].items()) or "-"]
            for spk, r in result["by_target"].items()]
    return _text_table(header, body)


def format_vc_table(results: dict[str, dict[str, Any]]) -> str:
    """Plain-text table, one row per system, of ``{system: evaluate_vc(...)}``'s summaries
    (and one more per group of a result with ``by_group``: ``"<system>, seen targets"``)."""
    results = {label: r for name, res in results.items()
               for label, r in [(name, res)] + [(f"{name}, {g} targets", {"summary": v})
                                                for g, v in res.get("by_group", {}).items()]}
    cols = [("target_accuracy", "tgt acc", "{:.1%}"), ("source_rate", "src rate", "{:.1%}"),
            ("eer", "EER", "{:.1%}"), ("target_similarity", "tgt cos", "{:.3f}"), ("per", "PER", "{:.1%}"),
            ("resynth_per", "resyn PER", "{:.1%}"),
            ("source_per", "src PER", "{:.1%}"), ("mcd_db", "MCD dB", "{:.2f}"),
            ("logf0_corr", "logF0 r", "{:.3f}"), ("logf0_rmse_cents", "F0 cents", "{:.0f}")]
    used = [c for c in cols if any(c[0] in r["summary"] for r in results.values())]
    header = ["system"] + [c[1] for c in used]
    body = []
    for name, r in results.items():
        s = r["summary"]
        cells = []
        for key, _, fmt in used:
            v = s.get(key)
            cells.append("-" if v is None or (isinstance(v, float) and math.isnan(v)) else fmt.format(v))
        body.append([name] + cells)
    return _text_table(header, body)
