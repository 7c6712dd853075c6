"""Random fixed-length crops of a Kaldi data directory, batched with speaker labels.

The corpus (waveforms or ``feats.scp`` matrices) is loaded once into one contiguous
array with per-utterance offsets when it fits ``memory_budget_mb``; otherwise each crop is
read from disk (only the cropped span for audio files). Crops are drawn by
:class:`~speechrep.train.sampler.CropSampler`, whose order is a pure function of ``(seed, batch index, rank)``:
resuming needs only the number of batches consumed, and ``world_size`` ranks together
see what one process with ``world_size`` times the batch would see.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np
import torch

from speechrep.errors import ConfigError, DataError
from speechrep.train.sampler import BatchSpec

if TYPE_CHECKING:
    from speechrep.data.augment import Augmenter
    from speechrep.data.kaldi_dir import DataDir
    from speechrep.train.config import DataConfig

__all__ = ["Corpus", "load_corpus", "read_speakers", "read_phone_alignments", "attach_phones", "CropDataset",
           "valid_batches", "build_augmenter", "make_loader"]


@dataclass
class Corpus:
    """Utterances of one data directory, ready to crop.

    Attributes
    ----------
    path : the data directory.
    utts : utterance ids kept (C-sorted), N of them.
    speaker : (N,) int64 speaker index of each utterance (into the experiment speaker list).
    lengths : (N,) int64 length in samples (wave) or frames (feats).
    dim : feature dimension D, or None for waveform.
    data : (total,) or (total, D) float32 tensor of all utterances back to back, or None
        when reading per crop.
    offsets : (N + 1,) int64 start of each utterance in ``data``.
    reader : ``reader(i, start, stop) -> ndarray`` reading a span of utterance i from disk
        (used when ``data`` is None).
    num_short : utterances shorter than the crop (padded or skipped, see ``short``).
    short : what was done with them: ``"pad"`` or ``"skip"``.
    phones : per utterance, a ``(K, 3)`` int64 array of its non-silence phones
        ``(start, stop, index)`` in samples, or None (see :func:`attach_phones`).
    """

    path: Path
    utts: list[str]
    speaker: np.ndarray
    lengths: np.ndarray
    dim: int | None
    data: torch.Tensor | None
    offsets: np.ndarray | None
    reader: Callable[[int, int, int], np.ndarray] | None
    num_short: int
    short: str
    phones: list[np.ndarray] | None = None

    def span(self, i: int, start: int, stop: int) -> torch.Tensor:
        """Samples/frames ``start:stop`` of utterance ``i`` (shorter at the end of it)."""
        stop = min(stop, int(self.lengths[i]))
        if self.data is not None:
            o = int(self.offsets[i])
            return self.data[o + start : o + stop]
        return torch.from_numpy(np.ascontiguousarray(self.reader(i, start, stop), dtype=np.float32))


def read_speakers(data_dirs: list[str | Path]) -> list[str]:
    """Sorted union of the speakers of ``data_dirs`` (the experiment speaker list)."""
    from speechrep.data.kaldi_dir import DataDir

    speakers: set[str] = set()
    for d in data_dirs:
        speakers.update(DataDir.load(d).utt2spk.values())
    return sorted(speakers)


def read_phone_alignments(paths: list[str | Path]) -> dict[str, list[tuple[float, float, str]]]:
    """Phone alignments of ``data.phones`` (CTM files), silences dropped, merged by utterance.

    Raises
    ------
    DataError
        A missing or malformed CTM (named with its line by :func:`speechrep.data.ctm.read_ctm`).
    """
    from speechrep.data.ctm import SILENCE_PHONES, read_ctm

    merged: dict[str, list[tuple[float, float, str]]] = {}
    for path in paths:
        for utt, segs in read_ctm(path).items():
            merged[utt] = [seg for seg in segs if seg[2] not in SILENCE_PHONES]
    return merged


def attach_phones(corpus: Corpus, alignments: dict[str, list[tuple[float, float, str]]], inventory: list[str], *,
                  sample_rate: int, field: str = "data.phones") -> None:
    """Give ``corpus`` the phones of its utterances, so that batches carry CTC targets.

    Parameters
    ----------
    corpus : a waveform corpus (:func:`load_corpus` with ``input="wave"``).
    alignments : :func:`read_phone_alignments`.
    inventory : the model's phones; a phone's index in batches is its position here.
    sample_rate : the corpus' rate (CTM times are seconds).
    field : config field named in errors.

    Raises
    ------
    DataError
        An utterance of the corpus without an alignment.
    ConfigError
        A phone that is not in ``inventory``.
    """
    from speechrep.errors import ConfigError

    index = {ph: i for i, ph in enumerate(inventory)}
    phones = []
    for utt in corpus.utts:
        if utt not in alignments:
            raise DataError(f"utterance '{utt}' of {corpus.path} has no phone alignment", field=field)
        unknown = [ph for _, _, ph in alignments[utt] if ph not in index]
        if unknown:
            raise ConfigError(f"phone '{unknown[0]}' of utterance '{utt}' is not in the model's inventory",
                              field="model.args.phones")
        phones.append(np.array([(round(a * sample_rate), round(b * sample_rate), index[ph])
                                for a, b, ph in alignments[utt]], dtype=np.int64).reshape(-1, 3))
    corpus.phones = phones


def load_corpus(
    path: str | Path,
    *,
    input: str,
    crop: int,
    speakers: list[str],
    short: str = "skip",
    sample_rate: int = 16000,
    memory_budget_mb: float = 2048.0,
    field: str = "data.train",
) -> Corpus:
    """Index (and, within the memory budget, load) a data directory for cropping.

    Parameters
    ----------
    path : Kaldi data directory (``wav.scp`` + ``utt2spk``; ``feats.scp`` for features).
    input : ``"wave"`` or ``"feats"``.
    crop : crop length in samples (wave) or frames (feats).
    speakers : experiment speaker list; speaker labels are indices into it.
    short : ``"pad"`` keeps utterances shorter than ``crop`` (zero-padded crops, true
        ``lengths``), ``"skip"`` leaves them out.
    sample_rate : waveform rate (audio is resampled to it).
    memory_budget_mb : load everything into one array when it needs at most this much.
    field : config field named in errors.

    Raises
    ------
    DataError
        Missing directory or files, unreadable audio/features, no usable utterance.
    """
    from speechrep.data.kaldi_dir import DataDir

    path = Path(path)
    if not path.is_dir():
        raise DataError("data directory not found", path=path, field=field)
    dd = DataDir.load(path)
    spk_index = {s: i for i, s in enumerate(speakers)}
    utts = dd.utts
    if not utts:
        raise DataError("no utterances in utt2spk", path=path, field=field)
    if input == "feats":
        if dd.feats_scp is None:
            raise DataError("no feats.scp (extract features first, or use data.input: wave)", path=path, field=field)
        missing = [u for u in utts if u not in dd.feats_scp]
        if missing:
            raise DataError(f"utterance '{missing[0]}' is in utt2spk but not in feats.scp", path=path / "feats.scp")
        known = dd.utt2num_frames
        reader = _feats_reader(dd.feats_scp, utts)
    else:
        known = _known_wave_lengths(dd, utts, sample_rate)
        reader = _wave_reader(dd, utts, sample_rate)
    dim = int(reader(0, 0, 1).shape[1]) if input == "feats" else None
    budget = memory_budget_mb * 2**20
    lengths = None
    if known is not None and all(u in known for u in utts):
        lengths = np.array([known[u] for u in utts], dtype=np.int64)
    arrays: list[np.ndarray] | None = []
    if lengths is not None and lengths.sum() * 4 * (dim or 1) > budget:
        arrays = None  # too big: crops are read from disk; lengths are known already
    if arrays is not None:
        # One pass over the corpus: keep the arrays while they fit, else only the lengths.
        found, used = [], 0
        for i in range(len(utts)):
            x = reader(i, 0, -1)
            if dim is not None and x.shape[1] != dim:
                raise DataError(f"features of '{utts[i]}' have dimension {x.shape[1]}, the first ones {dim}",
                                path=path / "feats.scp")
            found.append(len(x))
            used += x.size * 4
            if arrays is not None and used > budget:
                arrays = None  # keep counting lengths, drop what was loaded
            elif arrays is not None:
                arrays.append(x)
        lengths = np.array(found, dtype=np.int64)
    keep = np.ones(len(utts), dtype=bool)
    is_short = lengths < crop
    num_short = int(is_short.sum())
    if short == "skip":
        keep &= ~is_short
    if not keep.any():
        raise DataError(f"no utterance is at least data.crop={crop} long (set data.short: pad)", path=path, field=field)
    idx = np.flatnonzero(keep)
    data = offsets = None
    if arrays is not None:
        kept = [arrays[i] for i in idx]
        data = torch.from_numpy(np.concatenate(kept).astype(np.float32, copy=False))
        offsets = np.concatenate([[0], np.cumsum([len(a) for a in kept])]).astype(np.int64)
    unknown = sorted({dd.utt2spk[utts[i]] for i in idx} - set(spk_index))
    if unknown:
        raise DataError(f"speaker '{unknown[0]}' is not in the experiment's speaker list", path=path / "utt2spk")
    speaker = np.array([spk_index[dd.utt2spk[utts[i]]] for i in idx], dtype=np.int64)
    orig = idx  # the reader is indexed by position in the full utterance list
    return Corpus(
        path=path,
        utts=[utts[i] for i in idx],
        speaker=speaker,
        lengths=lengths[idx],
        dim=dim,
        data=data,
        offsets=offsets,
        reader=None if data is not None else (lambda i, a, b: reader(int(orig[i]), a, b)),
        num_short=num_short,
        short=short,
    )


def _known_wave_lengths(dd: DataDir, utts: list[str], sample_rate: int) -> dict[str, int] | None:
    # Durations from segments or utt2dur spare a pass over the audio.
    if dd.segments is not None and all(u in dd.segments for u in utts):
        return {u: int(round((dd.segments[u][2] - dd.segments[u][1]) * sample_rate)) for u in utts}
    if dd.segments is None and dd.utt2dur is not None and all(u in dd.utt2dur for u in utts):
        return {u: int(round(dd.utt2dur[u] * sample_rate)) for u in utts}
    return None


def _wave_reader(dd: DataDir, utts: list[str], sample_rate: int) -> Callable[[int, int, int], np.ndarray]:
    from speechrep.data.audio import load_audio

    def read(i: int, start: int, stop: int) -> np.ndarray:
        utt = utts[i]
        if dd.segments is not None:
            if utt not in dd.segments:
                raise DataError(f"utterance '{utt}' is in utt2spk but not in segments", path=dd.path / "segments")
            rec, t0, t1 = dd.segments[utt]
        else:
            rec, t0, t1 = utt, 0.0, None
        if rec not in dd.wav_scp:
            raise DataError(f"recording '{rec}' of utterance '{utt}' is not in wav.scp", path=dd.path / "wav.scp")
        end = t1 if stop < 0 else t0 + stop / sample_rate
        if t1 is not None and end is not None:
            end = min(end, t1)
        x = load_audio(dd.wav_scp[rec], sample_rate=sample_rate, start=t0 + start / sample_rate, end=end, name=utt)
        # Resampling a span may give a sample more or less than asked for.
        return x[: stop - start] if stop >= 0 else x

    return read


def _feats_reader(feats_scp: dict[str, str], utts: list[str]) -> Callable[[int, int, int], np.ndarray]:
    import kaldiio

    def read(i: int, start: int, stop: int) -> np.ndarray:
        try:
            x = kaldiio.load_mat(feats_scp[utts[i]])
        except Exception as e:  # kaldiio raises assorted errors for bad arks
            where = feats_scp[utts[i]]
            raise DataError(f"cannot read features of '{utts[i]}' ({where}): {e}", field="feats.scp") from None
        if x.ndim != 2:
            raise DataError(f"features of '{utts[i]}' are not a matrix (shape {x.shape})", field="feats.scp")
        return x[start:] if stop < 0 else x[start:stop]

    return read


class CropDataset(torch.utils.data.Dataset):
    """Map a :data:`BatchSpec` ``(utterance indices (B,), crop starts (B,))`` to a batch.

    The batch holds ``"wave"`` (B, crop) or ``"feats"`` (B, crop, D) float32 (zero-padded
    past the end of short utterances), ``"speaker"`` (B,) int64 and ``"lengths"`` (B,)
    int64 valid lengths.

    With ``augment`` (an :class:`~speechrep.data.augment.Augmenter`), specs carry a third
    array, the crops' stream positions (B,) (:class:`~speechrep.train.sampler.CropSampler` with ``numbered=True``),
    which seed each crop's augmentation. ``augment_side="both"``: ``"wave"`` is the
    augmented crop; ``"past"``: ``"wave"`` is the clean crop and ``"wave_aug"`` the
    augmented one.

    When the corpus has phones (:func:`attach_phones`), the batch also holds the CTC
    targets ``"phones"`` (B, U) int64 (the phones whose middle lies in each crop, ``-1``
    padding) and ``"phone_lengths"`` (B,), and it is cut to its longest crop: with a crop
    longer than the utterances, a batch is whole utterances padded to the longest of them.
    """

    def __init__(self, corpus: Corpus, *, input: str, crop: int, augment: Augmenter | None = None,
                 augment_side: str = "both"):
        self.corpus, self.key, self.crop = corpus, input, crop
        self.augment, self.augment_side = augment, augment_side

    def __len__(self) -> int:
        return len(self.corpus.utts)

    def __getitem__(self, spec: BatchSpec) -> dict[str, torch.Tensor]:
        idx, starts, *numbers = spec
        c = self.corpus
        shape = (len(idx), self.crop) if c.dim is None else (len(idx), self.crop, c.dim)
        out = torch.zeros(shape, dtype=torch.float32)
        lengths = torch.empty(len(idx), dtype=torch.int64)
        aug = torch.zeros(shape, dtype=torch.float32) if self.augment is not None else None
        for row, (i, s) in enumerate(zip(idx, starts)):
            if aug is not None:
                # a speed-up reads a longer span: moved back to stay inside the utterance
                need = self.augment.input_length(self.crop)
                s = max(0, min(int(s), int(c.lengths[i]) - need))
                x = c.span(int(i), s, s + need)
                y = torch.from_numpy(self.augment(x.numpy(), int(numbers[0][row])))[: self.crop]
                aug[row, : len(y)] = y
                x = x[: self.crop] if self.augment_side == "past" else y
            else:
                x = c.span(int(i), int(s), int(s) + self.crop)
            out[row, : len(x)] = x
            lengths[row] = len(x)
        batch = {self.key: out, "speaker": torch.from_numpy(c.speaker[idx]), "lengths": lengths}
        if aug is not None and self.augment_side == "past":
            batch["wave_aug"] = aug
        if c.phones is not None:
            targets = []
            for i, s, n in zip(idx, starts, lengths.tolist()):
                p = c.phones[int(i)]
                middle = (p[:, 0] + p[:, 1]) // 2
                targets.append(torch.from_numpy(p[(middle >= s) & (middle < s + n), 2]))
            batch[self.key] = out[:, : int(lengths.max())]
            if "wave_aug" in batch:
                batch["wave_aug"] = aug[:, : int(lengths.max())]
            batch["phones"] = torch.nn.utils.rnn.pad_sequence(targets, batch_first=True, padding_value=-1) \
                if any(len(t) for t in targets) else torch.full((len(idx), 1), -1, dtype=torch.int64)
            batch["phone_lengths"] = torch.tensor([len(t) for t in targets], dtype=torch.int64)
        return batch


def valid_batches(corpus: Corpus, *, crop: int, batch_size: int, seed: int,
                  max_batches: int | None = None) -> list[BatchSpec]:
    """Fixed validation batches: every utterance once, cropped at a seeded start.

    A last batch of a single utterance joins the one before it: objectives that contrast the
    utterances of a batch (DIM's global term, CPC's negatives from other utterances) need two.
    Ranks share the list (batch j on rank ``j % world_size``).
    """
    n = len(corpus.utts)
    rng = np.random.default_rng([seed, 2**31 - 1])
    room = np.maximum(corpus.lengths - crop, 0) + 1
    starts = (rng.random(n) * room).astype(np.int64)
    bounds = list(range(0, n, batch_size)) + [n]
    if len(bounds) > 2 and bounds[-1] - bounds[-2] == 1:
        del bounds[-2]
    specs = [(np.arange(a, b), starts[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
    return specs if max_batches is None else specs[:max_batches]


def build_augmenter(data: DataConfig, *, seed: int, source: str, accepts_past: bool) -> Augmenter | None:
    """The :class:`~speechrep.data.augment.Augmenter` of ``data.augment`` (None when empty).

    ``accepts_past``: the model reads ``batch["wave_aug"]`` (needed by ``augment_side: past``).

    Raises
    ------
    ConfigError
        ``augment_side: past`` for a model that reads only ``wave``.
    DataError
        Unreadable noise recordings.
    """
    from speechrep.data.augment import Augmenter, parse_augment

    if not data.augment:
        return None
    if data.augment_side == "past" and not accepts_past:
        raise ConfigError("past needs a model that reads the augmented crop beside the clean one (cpc, vqcpc); "
                          "use both", path=source, field="data.augment_side")
    return Augmenter(parse_augment(data.augment, sample_rate=data.sample_rate, source=source),
                     sample_rate=data.sample_rate, seed=seed)


def make_loader(dataset: CropDataset, specs, *, num_workers: int, seed: int = 0,
                pin_memory: bool = False) -> torch.utils.data.DataLoader:
    """DataLoader yielding whole batches from an iterable/sampler of batch specs.

    It draws its worker seeds from its own generator, so starting it leaves the global
    torch RNG (and thus a resumed run) untouched.
    """
    if num_workers and dataset.corpus.data is not None:
        # Workers receive a handle to the shared array instead of a copy of the corpus.
        dataset.corpus.data.share_memory_()
    return torch.utils.data.DataLoader(
        dataset, sampler=specs, batch_size=None, num_workers=num_workers, pin_memory=pin_memory,
        persistent_workers=False, generator=torch.Generator().manual_seed(seed),
    )
