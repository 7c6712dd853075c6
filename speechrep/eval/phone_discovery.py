"""Phone-discovery evaluation in one call: ABX, unit quality, boundaries, bitrate, probes.

:func:`evaluate_representation` computes every metric that applies to in-memory
features or units; :func:`run_phone_discovery` loads files, checks them, evaluates and
writes one JSON document (metrics, input hashes, configuration, versions);
:func:`run_baseline` does the same for MFCC and filter-bank features computed from a
data directory, the reference line of every result.

ABX modes: by default the items are built on the fly from the alignment (no item file):
each spans a whole triphone, previous phone's start to next phone's end (not the centre
phone only; ``abx.level: phone`` gives centre-only items), and A, B and X share their
context. ``abx.context: any`` is the phone-only mode (context ignored). A ZeroSpeech
``.item`` file (``items``) replaces the on-the-fly items.

The JSON keeps ZeroSpeech's names where they exist: ``"abx": {"within": .., "across": ..}``
holds ABX error rates in percent (as ZeroSpeech reports them); every other metric is a
fraction in [0, 1] unless its name says otherwise (``bitrate`` in bits per second).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping

import numpy as np

from speechrep.errors import DataError
from speechrep.eval.inputs import (
    DEFAULT_FRAME_TOLERANCE,
    FrameTimes,
    check_frame_counts,
    check_utterances,
    find_frame_times,
    find_utt2spk,
    load_features,
    load_units,
)
from speechrep.eval.items import DEFAULT_SILENCES, ItemSet, make_items, read_items

__all__ = [
    "AbxConfig",
    "ProbeConfig",
    "PhoneDiscoveryConfig",
    "evaluate_representation",
    "run_phone_discovery",
    "run_baseline",
    "baseline_features",
]


@dataclass
class AbxConfig:
    """ABX options (see :mod:`speechrep.eval.abx`)."""

    enabled: bool = True
    #: frame distance; None: "cosine" for features, "onehot" for units
    distance: Literal["cosine", "kl", "onehot", "edit"] | None = None
    #: "within": A, B, X share their context (ZeroSpeech); "any": phone-only ABX
    context: Literal["within", "any"] = "within"
    #: items built on the fly from the alignment (no item file given): the whole
    #: triphone ("triphone", ZeroSpeech) or the centre phone only ("phone")
    level: Literal["triphone", "phone"] = "triphone"
    speaker_modes: list[str] = field(default_factory=lambda: ["within", "across"])
    #: ZeroSpeech 2021 subsampling; None for both = exact mode
    max_size_group: int | None = 10
    max_x_across: int | None = 5
    seed: int = 0
    #: drop the last frame of every item, as the Libri-Light script does (compatibility)
    drop_last_frame: bool = False


@dataclass
class ProbeConfig:
    """Linear speaker and phone probes (see :mod:`speechrep.eval.probe`)."""

    enabled: bool = True
    test_fraction: float = 0.25
    max_frames: int = 20000
    seed: int = 0


@dataclass
class PhoneDiscoveryConfig:
    """Everything that changes the numbers; saved in the output JSON."""

    #: seconds between frames and centre of frame 0; None: read from the feature config
    frame_shift: float | None = None
    frame_offset: float | None = None
    #: frames the feature count may differ from the alignment's length (padding conventions)
    frame_tolerance: int = DEFAULT_FRAME_TOLERANCE
    #: number of codes of discrete units; None: largest unit + 1
    codebook_size: int | None = None
    boundary_tolerance: float = 0.02
    silences: list[str] = field(default_factory=lambda: sorted(DEFAULT_SILENCES))
    #: numba threads for ABX; None keeps numba's default
    threads: int | None = None
    abx: AbxConfig = field(default_factory=AbxConfig)
    probes: ProbeConfig = field(default_factory=ProbeConfig)


def evaluate_representation(
    frames: Mapping[str, np.ndarray],
    alignments: Mapping[str, list[tuple[float, float, str]]] | None,
    utt2spk: Mapping[str, str],
    *,
    times: FrameTimes,
    discrete: bool,
    items: ItemSet | None = None,
    config: PhoneDiscoveryConfig | None = None,
    frames_path: str | Path = "<frames>",
    ali_path: str | Path = "<alignment>",
    items_path: str | Path = "<items>",
    progress: bool = False,
) -> dict[str, Any]:
    """All metrics that apply to ``frames``.

    Parameters
    ----------
    frames : utt -> ``(num_frames, dim)`` features, or ``(num_frames,)`` units when
        ``discrete``.
    alignments : utt -> time-sorted ``[(start, end, phone)]`` (``read_ctm``), or None for
        speech without a phone alignment (another language, real speech): the speaker
        probe alone.
    utt2spk : utt -> speaker.
    times : frame centre times.
    items : ABX items; None builds them from ``alignments`` (``config.abx.level``).
    frames_path, ali_path, items_path : names used in error messages.

    Returns
    -------
    ``{"abx", "probes"}`` and, for units, ``"units"``, ``"codebook"``, ``"bitrate"``,
    ``"segmentation"``; without ``alignments``, ``{"probes": {"speaker_probe"}}``.

    Raises
    ------
    DataError
        Utterances that differ between frames and alignment, frame counts off by more
        than ``config.frame_tolerance``, utterances without a speaker, no ABX item.
    """
    from speechrep.data.ctm import frame_labels

    config = config or PhoneDiscoveryConfig()
    if alignments is None:
        _check_speakers(frames, utt2spk)
        return {"probes": {"speaker_probe": _speaker_probe(frames, utt2spk, discrete, config)}}
    check_utterances(frames, alignments, frames_path=frames_path, ali_path=ali_path)
    check_frame_counts(
        {u: len(x) for u, x in frames.items()}, alignments, times, frames_path=frames_path, tolerance=config.frame_tolerance
    )
    _check_speakers(frames, utt2spk)
    labels = {
        u: frame_labels(alignments[u], num_frames=len(x), frame_shift=times.frame_shift, frame_offset=times.frame_offset)
        for u, x in frames.items()
    }
    metrics: dict[str, Any] = {}
    if config.abx.enabled:
        metrics["abx"] = _abx(frames, alignments, utt2spk, times, discrete, items, config, items_path, progress)
    if discrete:
        from speechrep.eval.bitrate import bitrate
        from speechrep.eval.segmentation import boundary_scores, phone_boundaries, unit_boundaries
        from speechrep.eval.units import codebook_usage, contingency_table, unit_quality

        table, _, _ = contingency_table(labels, frames)
        metrics["units"] = unit_quality(table)
        metrics["codebook"] = codebook_usage(frames.values(), codebook_size=config.codebook_size)
        metrics["bitrate"] = bitrate(frames, frame_shift=times.frame_shift)
        metrics["segmentation"] = boundary_scores(
            {u: phone_boundaries(alignments[u]) for u in frames},
            {u: unit_boundaries(x, times) for u, x in frames.items()},
            tolerance=config.boundary_tolerance,
        )
    if config.probes.enabled:
        metrics["probes"] = _probes(frames, labels, utt2spk, discrete, config)
    return metrics


def _abx(frames, alignments, utt2spk, times, discrete, items, config, items_path, progress) -> dict[str, Any]:
    from speechrep.eval.abx import abx_errors, prepare_abx_items

    cfg = config.abx
    distance = cfg.distance or ("onehot" if discrete else "cosine")
    if items is None:
        items = make_items(alignments, utt2spk, level=cfg.level, silences=config.silences)
        items_path = f"<items from alignment, level {cfg.level}>"
    data = prepare_abx_items(
        frames,
        items,
        times,
        distance=distance,
        context=cfg.context,
        drop_last_frame=cfg.drop_last_frame,
        source=str(items_path),
    )
    errors = abx_errors(
        data,
        speaker_modes=tuple(cfg.speaker_modes),
        max_size_group=cfg.max_size_group,
        max_x_across=cfg.max_x_across,
        seed=cfg.seed,
        threads=config.threads,
        progress=progress,
    )
    out: dict[str, Any] = {mode: None if e is None else 100.0 * e for mode, e in errors.items()}
    out.update(
        distance=distance,
        context=cfg.context,
        num_items=len(items),
        num_items_used=int(len(data.starts)),
        num_items_clipped=data.num_clipped,
        num_items_empty=data.num_empty,
        exact=cfg.max_size_group is None and cfg.max_x_across is None,
    )
    return out


def _check_items_need_ali(ali: str | Path | None, items: str | Path | None) -> None:
    if ali is None and items is not None:
        raise DataError("ABX items are scored against a phone alignment: give --ali too", path=items, field="--items")


def _check_speakers(frames: Mapping[str, np.ndarray], utt2spk: Mapping[str, str]) -> None:
    no_speaker = sorted(u for u in frames if u not in utt2spk)
    if no_speaker:
        raise DataError(f"{len(no_speaker)} utterance(s) have no speaker, e.g. {no_speaker[0]}", field="utt2spk")


def _speaker_probe(frames, utt2spk, discrete, config) -> dict[str, Any]:
    from speechrep.eval.probe import speaker_probe

    cfg = config.probes
    if discrete:  # units: the probe reads each utterance's unit histogram
        size = config.codebook_size or 1 + max(int(x.max()) for x in frames.values())
        frames = {u: (np.bincount(x, minlength=size) / len(x))[None, :] for u, x in frames.items()}
    return speaker_probe(frames, utt2spk, test_fraction=cfg.test_fraction, seed=cfg.seed)


def _probes(frames, labels, utt2spk, discrete, config) -> dict[str, Any]:
    from speechrep.eval.probe import phone_probe

    cfg = config.probes
    if discrete:  # the phone probe would only restate the purities above
        return {"speaker_probe": _speaker_probe(frames, utt2spk, discrete, config)}
    return {
        "speaker_probe": _speaker_probe(frames, utt2spk, discrete, config),
        "phone_probe": phone_probe(
            frames, labels, test_fraction=cfg.test_fraction, seed=cfg.seed, max_frames=cfg.max_frames
        ),
    }


def run_phone_discovery(
    inputs: str | Path,
    ali: str | Path | None,
    *,
    kind: Literal["features", "units"],
    out: str | Path,
    utt2spk: str | Path | None = None,
    items: str | Path | None = None,
    config: PhoneDiscoveryConfig | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Evaluate features or units stored on disk and write one JSON report.

    Parameters
    ----------
    inputs : features (``.scp``/``.ark``/``.npy`` directory) or units (text file
        ``utt u1 u2 ...``, ``.scp``/``.ark``, ``.npy`` directory).
    ali : phone CTM; None: the speaker probe alone (needs ``utt2spk``).
    kind : ``"features"`` or ``"units"``.
    out : the JSON file to write (atomically).
    utt2spk : speakers; default ``utt2spk`` beside the CTM.
    items : a ZeroSpeech ``.item`` file; default: items built from the CTM.

    Returns
    -------
    The report written to ``out``: the metrics of :func:`evaluate_representation` plus
    ``"kind"``, ``"frame_times"``, ``"inputs"`` (paths and SHA-1), ``"config"`` and
    ``"versions"``.
    """
    from speechrep.data.ctm import read_ctm
    from speechrep.data.kaldi_dir import read_kaldi_map
    from speechrep.eval.report import input_record, versions, write_report

    if kind not in ("features", "units"):
        raise DataError(f"kind must be 'features' or 'units', got {kind!r}", field="kind")
    config = config or PhoneDiscoveryConfig()
    _check_items_need_ali(ali, items)
    spk_path = find_utt2spk(ali, utt2spk)
    times = find_frame_times(inputs, frame_shift=config.frame_shift, frame_offset=config.frame_offset)
    discrete = kind == "units"
    frames = load_units(inputs, codebook_size=config.codebook_size) if discrete else load_features(inputs)
    alignments = read_ctm(ali) if ali is not None else None
    item_set = read_items(items) if items is not None else None
    metrics = evaluate_representation(
        frames,
        alignments,
        read_kaldi_map(spk_path),
        times=times,
        discrete=discrete,
        items=item_set,
        config=config,
        frames_path=inputs,
        ali_path=ali or "<no alignment>",
        items_path=items or "<items>",
        progress=progress,
    )
    report = {
        **metrics,
        "kind": kind,
        "frame_times": dataclasses.asdict(times),
        "inputs": {
            kind: input_record(inputs),
            "alignment": input_record(ali),
            "utt2spk": input_record(spk_path),
            "items": input_record(items),
        },
        "config": dataclasses.asdict(config),
        "versions": versions(),
    }
    write_report(out, report)
    return report


def run_baseline(
    data_dir: str | Path,
    ali: str | Path | None,
    *,
    out: str | Path,
    items: str | Path | None = None,
    config: PhoneDiscoveryConfig | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Evaluate MFCC and filter-bank features of a data directory; write one JSON report.

    The features are those of :func:`baseline_features`. Frame ``i`` is centred at
    ``0.0125 + 0.01 i`` s.

    Returns
    -------
    ``{"baselines": {"mfcc": metrics, "fbank": metrics}, "inputs", "config", "versions",
    "frame_times"}``, also written to ``out``.
    """
    from speechrep.data.ctm import read_ctm
    from speechrep.data.kaldi_dir import DataDir
    from speechrep.eval.report import input_record, versions, write_report

    config = config or PhoneDiscoveryConfig()
    times = FrameTimes(0.01, 0.0125)
    _check_items_need_ali(ali, items)
    dd = DataDir.load(data_dir)
    alignments = read_ctm(ali) if ali is not None else None  # None: the speaker probe alone
    item_set = read_items(items) if items is not None else None
    feats = baseline_features(data_dir, progress=progress)
    baselines = {}
    for name, per_utt in feats.items():
        baselines[name] = evaluate_representation(
            per_utt,
            alignments,
            dd.utt2spk,
            times=times,
            discrete=False,
            items=item_set,
            config=config,
            frames_path=f"{data_dir} ({name})",
            ali_path=ali or "<no alignment>",
            items_path=items or "<items>",
            progress=progress,
        )
    report = {
        "baselines": baselines,
        "frame_times": dataclasses.asdict(times),
        "inputs": {
            "wav.scp": input_record(Path(data_dir) / "wav.scp"),
            "alignment": input_record(ali),
            "utt2spk": input_record(Path(data_dir) / "utt2spk"),
            "items": input_record(items),
        },
        "config": dataclasses.asdict(config),
        "versions": versions(),
    }
    write_report(out, report)
    return report


def baseline_features(data_dir: str | Path, *, progress: bool = False) -> dict[str, dict[str, np.ndarray]]:
    """MFCC and filter-bank features of every utterance of a data directory.

    Kaldi's features, computed on the fly (25 ms windows, 10 ms shift, snip_edges, no
    dither): ``mfcc`` = 13 MFCCs + deltas + delta-deltas (39 dims), ``fbank`` = 40 log
    mel filter banks, both with per-utterance mean normalisation (Kaldi's ``apply-cmvn``
    without ``utt2spk``). Normalising per speaker instead would use the test set's
    speaker labels: each speaker's utterance means would then sum to zero, so a speaker
    probe trained on some of a speaker's utterances would be pushed away from the others.

    Parameters
    ----------
    data_dir : Kaldi data directory (``wav.scp``, ``utt2spk``, ...).
    progress : show a progress bar.

    Returns
    -------
    ``{"mfcc": {utt: (num_frames, 39)}, "fbank": {utt: (num_frames, 40)}}``, float32.
    """
    from speechrep.utils.progress import progress_bar

    from speechrep.data.audio import iter_audio
    from speechrep.data.kaldi_dir import DataDir
    from speechrep.features import accumulate_cmvn_stats, add_deltas, apply_cmvn, fbank, mfcc

    dd = DataDir.load(data_dir)
    feats: dict[str, dict[str, np.ndarray]] = {"mfcc": {}, "fbank": {}}
    for utt, wave in progress_bar(iter_audio(dd), total=len(dd.utts), desc="features", enabled=progress, leave=False):
        feats["mfcc"][utt] = add_deltas(mfcc(wave, dither=0.0))
        feats["fbank"][utt] = fbank(wave, dither=0.0, num_mel_bins=40)
    for per_utt in feats.values():
        stats = accumulate_cmvn_stats(per_utt.items())
        per_utt.update({u: apply_cmvn(x, stats[u]) for u, x in per_utt.items()})
    return feats
