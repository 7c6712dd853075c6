"""Voice conversion: the content of a source utterance in the voice of target utterances.

A trained voice-conversion model (:mod:`speechrep.models.vc`) maps the source log-mel and
the speaker code of the target(s) to a converted log-mel; a vocoder
(:mod:`speechrep.vocoder`) turns it into audio at the model's sample rate. Several
target utterances are averaged in speaker-code space, which gives a steadier voice than
any one of them.

Frame matching (``match_weight`` > 0, as in kNN-VC, Baas et al. 2023) then pulls each
converted log-mel frame towards real frames of the targets: the model reconstructs every
target utterance from its own content code and F0 with the target speaker code, and each
converted frame moves towards the mean of the target frames whose reconstructions are its
``match_k`` nearest. Matching in the model's output space compares like with like (the
decoder's own rendering of the voice); the frames it brings in are the target's real
spectra. More of the target's voice comes through, at a cost in phones, since a few
target utterances hold few examples of each sound.

Exaggeration (``exaggerate`` > 0) moves the target's speaker code away from the mean
code of a population of speakers (``population``, a data directory, typically the
model's training set): ``code + exaggerate * (code - population mean)``, as a caricature
exaggerates what sets a face apart from the average one. Voices that the model renders
close to one another (similar speakers, unseen ones) then come out further apart.

Inputs of any sample rate and format soundfile reads are resampled to the model's rate;
audio that is unreadable, empty, silent, sampled below :data:`speechrep.data.pairs.MIN_INPUT_RATE`, or (for
targets) shorter than the speaker encoder's minimum is refused with one clear error,
before any output is written. Outputs are written atomically: a single ``out`` as 16-bit
WAV, or FLAC when its name ends in ``.flac`` (other extensions are refused); a batch as
one directory, built under a temporary name and refused when it holds anything but an
earlier ``speechrep convert`` output (replaced only with ``force``).

Zero-shot conversion needs no conversion model: given a self-supervised feature model (or
its packaged directory, the default), :func:`load_converter` returns the kNN converter of
:mod:`speechrep.convert_knn` instead, which the same file and batch functions drive. A
packaged directory may hold its neural vocoder, used unless another is asked for.

Pairs files (batch mode) and the checks on input audio: :mod:`speechrep.data.pairs`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

import numpy as np

from speechrep.errors import CheckpointError, ConfigError, DataError
from speechrep.data.pairs import ConversionPair, read_input_audio, read_pairs

if TYPE_CHECKING:  # torch-dependent types, imported lazily at run time
    import torch

    from speechrep.convert_knn import KnnConverter
    from speechrep.models.vc import VoiceConversionModel
    from speechrep.vocoder.base import Vocoder

__all__ = [
    "Converter",
    "load_converter",
    "convert_file",
    "convert_pairs",
    "resynthesize_pairs",
]

#: soundfile format of each output extension; a name without one is written as WAV (a
#: device such as /dev/null has none).
_OUT_FORMATS = {".wav": "WAV", ".flac": "FLAC", "": "WAV"}

class Converter:
    """A loaded voice-conversion model and vocoder.

    Parameters
    ----------
    model : a trained :class:`speechrep.models.vc.VoiceConversionModel`.
    vocoder : a :class:`speechrep.vocoder.base.Vocoder` for the same log-mel definition.
    device : torch device of the model.
    match_weight, match_k : frame matching (see the module docstring): each converted
        log-mel frame moves this far (0: not at all, 1: all the way) towards the mean of the
        ``match_k`` target frames whose reconstructions by the model are nearest to it.
    exaggerate, population, population_per_speaker : exaggeration (see the module
        docstring): the target's code moves ``exaggerate`` times its distance from the
        :meth:`population_code` of data directory ``population`` (its first
        ``population_per_speaker`` utterances of each speaker), away from it.
    """

    def __init__(self, model: "VoiceConversionModel", vocoder: "Vocoder", *, device: str = "cpu",
                 match_weight: float = 0.0, match_k: int = 4, exaggerate: float = 0.0,
                 population: str | Path | None = None, population_per_speaker: int = 8):
        if vocoder.spec != model.spec:
            raise ConfigError(
                f"vocoder inverts {vocoder.spec} but the model predicts {model.spec}", field="vocoder"
            )
        self.model = model.to(device).eval()
        self.vocoder = vocoder
        self.device = device
        if not 0.0 <= match_weight <= 1.0:
            raise ConfigError(f"frame matching needs a weight in [0, 1], got {match_weight}", field="--match-weight")
        if match_k < 1:
            raise ConfigError(f"frame matching needs k >= 1, got {match_k}", field="--match-k")
        self.match_weight = match_weight
        self.match_k = match_k
        if not exaggerate >= 0.0 or (exaggerate > 0 and population is None):
            raise ConfigError(f"exaggeration needs a factor >= 0 and, above 0, a population data directory "
                              f"(--population), got {exaggerate}", field="--exaggerate")
        if population_per_speaker < 1:
            raise ConfigError(f"population_per_speaker must be >= 1, got {population_per_speaker}",
                              field="population_per_speaker")
        self.exaggerate = exaggerate
        self.population: "torch.Tensor | None" = (
            self.population_code(population, per_speaker=population_per_speaker) if exaggerate > 0 else None)

    @property
    def sample_rate(self) -> int:
        """Rate of inputs after resampling and of outputs, in Hz."""
        return self.model.spec.sample_rate

    def _mel(self, wave: np.ndarray) -> "torch.Tensor":
        import torch

        from speechrep.features.logmel import log_mel

        return torch.from_numpy(log_mel(wave, self.model.spec)).to(self.device)[None]  # (1, T, n_mels)

    def speaker_code(self, targets: Iterable[str | Path]) -> "torch.Tensor":
        """Mean speaker code ``(1, speaker_dim)`` of one or more target audio files.

        Raises
        ------
        SpeechrepError
            No target, unusable target audio (see :func:`read_input_audio`), target shorter
            than the speaker encoder's minimum, or a model without a speaker encoder.
        """
        return self.target_voice(targets)[0]

    def target_voice(self, targets: Iterable[str | Path]) -> tuple["torch.Tensor", "torch.Tensor | None"]:
        """Mean speaker code ``(1, speaker_dim)`` of target audio files and, for a model whose
        decoder reads the pitch, the mean log-F0 statistics ``(1, 2)`` of their voiced frames
        (None otherwise). Errors as :meth:`speaker_code`."""
        import torch

        from speechrep.errors import SpeechrepError

        targets = list(targets)
        if not targets:
            raise ConfigError("at least one target utterance is needed", field="target")
        codes, stats = [], []
        with torch.no_grad():
            for t in targets:
                wave = read_input_audio(t, sample_rate=self.sample_rate, field_name="target")
                mel = self._mel(wave)
                try:
                    codes.append(self.model.speaker_code(mel))
                except SpeechrepError as e:
                    raise DataError(str(e), path=t, field="target") from None
                pitch = self.model.pitch_stats(self._wave(wave))
                if pitch is not None:
                    stats.append(pitch)
        return torch.stack(codes).mean(0), (torch.stack(stats).mean(0) if stats else None)

    def population_code(self, data_dir: str | Path, *, per_speaker: int = 8) -> "torch.Tensor":
        """Mean speaker code ``(1, speaker_dim)`` of the speakers of a data directory: each
        speaker's mean over its first ``per_speaker`` utterances (C-sorted), then the mean
        over speakers, so that every voice counts the same. Utterances shorter than the
        speaker encoder's minimum are left out.

        Raises
        ------
        DataError
            An unreadable data directory or audio, or no utterance long enough.
        """
        import torch

        from speechrep.data.audio import iter_audio
        from speechrep.data.kaldi_dir import DataDir, restrict_data_dir

        dd = DataDir.load(data_dir)
        chosen = [u for spk in dd.speakers for u in sorted(dd.spk2utt[spk])[:per_speaker]]
        codes: dict[str, list[torch.Tensor]] = {}
        with torch.no_grad():
            for utt, wave in iter_audio(restrict_data_dir(dd, chosen), sample_rate=self.sample_rate):
                mel = self._mel(wave)
                if mel.shape[1] >= self.model.cfg.min_speaker_frames:
                    codes.setdefault(dd.utt2spk[utt], []).append(self.model.speaker_code(mel))
        if not codes:
            raise DataError(f"no utterance of at least {self.model.cfg.min_speaker_frames} frames for the "
                            "population's mean speaker code", path=data_dir, field="--population")
        return torch.stack([torch.cat(c).mean(0) for c in codes.values()]).mean(0, keepdim=True)

    def exaggerated(self, speaker: "torch.Tensor") -> "torch.Tensor":
        """Speaker code ``(1, speaker_dim)`` moved away from the population's by ``exaggerate``
        times their difference (unchanged without exaggeration)."""
        if self.population is None:
            return speaker
        return speaker + self.exaggerate * (speaker - self.population)

    def _wave(self, wave: np.ndarray) -> "torch.Tensor":
        import torch

        return torch.from_numpy(np.asarray(wave, dtype=np.float32)).to(self.device)[None]

    def target_frames(self, targets: Iterable[str | Path], speaker: "torch.Tensor") -> tuple["torch.Tensor", "torch.Tensor"]:
        """The frames of target audio files for frame matching: the model's reconstructions
        ``(N, n_mels)`` (each target's own content and F0 with ``speaker``, the code of
        :meth:`target_voice`) and the targets' log-mel frames ``(N, n_mels)``."""
        import torch

        keys, values = [], []
        with torch.no_grad():
            for t in targets:
                wave = read_input_audio(t, sample_rate=self.sample_rate, field_name="target")
                mel = self._mel(wave)
                keys.append(self.model.convert(mel, speaker, pitch=self.model.pitch_features(self._wave(wave)))[0])
                values.append(mel[0])
        return torch.cat(keys), torch.cat(values)

    def convert_wave(self, source: np.ndarray, speaker: "torch.Tensor", pitch_stats: "torch.Tensor | None" = None,
                     frames: tuple["torch.Tensor", "torch.Tensor"] | None = None) -> np.ndarray:
        """Convert a source wave ``(samples,)`` at :attr:`sample_rate` to speaker code ``(1, speaker_dim)``.

        ``pitch_stats``: the target's log-F0 statistics ``(1, 2)`` (:meth:`target_voice`), to
        which a model with excitation pitch input maps the source's F0; without them it keeps
        the source's F0. ``frames``: :meth:`target_frames`, matched with weight
        ``match_weight`` (required when it is above 0).

        Returns
        -------
        np.ndarray
            ``(samples',)`` float32 at :attr:`sample_rate` (a multiple of the hop, at most one hop shorter).
        """
        import torch

        from speechrep.models.frame_matching import match_frames

        with torch.no_grad():
            # None unless the decoder reads the source pitch
            pitch = self.model.pitch_features(self._wave(source), target=pitch_stats)
            mel = self.model.convert(self._mel(source), speaker, pitch=pitch)[0]  # (T, n_mels)
            if self.match_weight > 0:
                if frames is None:
                    raise ConfigError("frame matching (match_weight > 0) needs the target frames", field="frames")
                matched = match_frames(mel, *frames, self.match_k)
                mel = (1 - self.match_weight) * mel + self.match_weight * matched
        return self.vocoder.mel_to_wave(mel.cpu().numpy())

    def convert(self, source: str | Path, targets: Iterable[str | Path]) -> np.ndarray:
        """Converted wave of audio file ``source`` in the voice of audio files ``targets``."""
        targets = list(targets)
        speaker, pitch_stats = self.target_voice(targets)
        speaker = self.exaggerated(speaker)
        frames = self.target_frames(targets, speaker) if self.match_weight > 0 else None
        wave = read_input_audio(source, sample_rate=self.sample_rate, field_name="source")
        return self.convert_wave(wave, speaker, pitch_stats, frames)


#: Options of each family of converters, and the command-line flag that gives each one.
_VC_OPTIONS = {"match_weight": "--match-weight", "match_k": "--match-k", "exaggerate": "--exaggerate",
               "population": "--population", "population_per_speaker": "population_per_speaker"}
_KNN_OPTIONS = {"layer": "--layer", "k": "--k", "pitch_weight": "--pitch-weight"}


def _refuse_options(options: dict[str, Any], allowed: dict[str, str], model: str | Path, what: str) -> None:
    """Refuse, naming its flag, an option that the kind of ``model`` (``what``) does not take."""
    foreign = [o for o in options if o not in allowed]
    if foreign:
        flag = {**_VC_OPTIONS, **_KNN_OPTIONS}.get(foreign[0], foreign[0])
        raise ConfigError(f"does not apply to {what}", path=model, field=flag)


def load_converter(model: str | Path | None, *, vocoder: str | Path | None = None, device: str = "cpu",
                   **options: Any) -> "Converter | KnnConverter":
    """Load a conversion model, of the family its checkpoint says, and a vocoder.

    Parameters
    ----------
    model : experiment or checkpoint directory of a ``vc_*`` model (a trained converter),
        of a self-supervised feature model, or a packaged kNN directory (zero-shot kNN
        conversion, :mod:`speechrep.convert_knn`); None: the packaged default model.
    vocoder : ``"griffinlim"`` or the experiment directory of a trained neural vocoder; None:
        the vocoder packaged with a kNN model, else Griffin-Lim
        (:func:`speechrep.convert_knn.resolve_vocoder`).
    options : for a ``vc_*`` model, frame matching and exaggeration (``match_weight``,
        ``match_k``, ``exaggerate``, ``population``, ``population_per_speaker``), as in
        :class:`Converter`; for kNN conversion, ``layer``, ``k`` and ``pitch_weight``. An option of the
        other family is refused, not ignored.

    Raises
    ------
    CheckpointError
        No checkpoint, or one of a model that is neither a voice-conversion model nor a
        feature model.
    ConfigError
        No model given and none packaged; an option of the other family.
    """
    from speechrep.convert_knn import default_model, is_knn_package, load_knn_converter, resolve_vocoder
    from speechrep.models.vc import VoiceConversionModel
    from speechrep.train.checkpoint import load_model
    from speechrep.train.pretrained import load_vocoder

    model = default_model() if model is None else model
    voc = load_vocoder(resolve_vocoder(model, vocoder), device=device)
    if not Path(model).exists():
        raise CheckpointError("no such model directory", path=model, field="model")
    vc_only = "--match-weight, --match-k, --exaggerate and --population are options of trained vc_* converters"
    if is_knn_package(model):
        _refuse_options(options, _KNN_OPTIONS, model, f"a packaged zero-shot kNN model: {vc_only}")
        return load_knn_converter(model, voc, device=device, **options)
    module, name, _ = load_model(model, map_location=device)
    if isinstance(module, VoiceConversionModel):
        _refuse_options(options, _VC_OPTIONS, model, f"a trained '{name}' converter: --layer, --k and --pitch-weight "
                        "are options of zero-shot kNN conversion, whose --model is a self-supervised feature model")
        return Converter(module, voc, device=device, **options)
    _refuse_options(options, _KNN_OPTIONS, model, f"zero-shot kNN conversion with a '{name}' model: {vc_only}")
    return load_knn_converter(model, voc, device=device, loaded=(module, name), **options)


def convert_file(
    model: str | Path | None,
    source: str | Path,
    targets: Iterable[str | Path],
    out: str | Path,
    *,
    vocoder: str | Path | None = None,
    device: str = "cpu",
    **options: Any,
) -> Path:
    """Convert one source file to the voice of ``targets``; write ``out`` atomically.

    ``out`` is 16-bit WAV, or FLAC when it ends in ``.flac``. Returns the output path. On
    any error nothing is written. ``model`` and ``options``: as in :func:`load_converter`.

    Raises
    ------
    SpeechrepError
        ``out`` is a directory, an input, or has an extension other than .wav/.flac
        (checked before the model is loaded).
    """
    from speechrep.data.audio import write_wav
    from speechrep.utils.io import check_output_file

    out_format = _out_format(out)
    check_output_file(out, field="--out", inputs=[source, *targets, options.get("population")])
    conv = load_converter(model, vocoder=vocoder, device=device, **options)
    wave = conv.convert(source, targets)
    write_wav(out, wave, conv.sample_rate, format=out_format)
    return Path(out)


def _out_format(out: str | Path) -> str:
    suffix = Path(out).suffix.lower()
    if suffix not in _OUT_FORMATS:
        raise ConfigError(f"unknown audio extension '{Path(out).suffix}' (write .wav or .flac)", path=out, field="--out")
    return _OUT_FORMATS[suffix]


def _out_dir_rule(pairs: str | Path | list[ConversionPair], pair_list: list[ConversionPair], *, force: bool,
                  model: str | Path | None = None, population: str | Path | None = None) -> dict[str, Any]:
    """Where a batch may be written (:func:`speechrep.utils.io.check_output_dir`)."""
    audio = [f for p in pair_list for f in (p.source, *p.targets)]
    pairs_file = pairs if isinstance(pairs, (str, Path)) else None
    return dict(command="convert", field="--out-dir", force=force, inputs=[pairs_file, population, *audio],
                containers=[model])


def _write_all(pair_list: list[ConversionPair], out_dir: str | Path, make, *, sample_rate: int, desc: str,
               progress: bool, rule: dict[str, Any]) -> list[Path]:
    # The whole directory is built under a temporary name and renamed when every pair
    # succeeded, so an error leaves no new file behind.
    from speechrep.utils.progress import progress_bar

    from speechrep.data.audio import write_wav
    from speechrep.utils.io import output_dir

    out_dir = Path(out_dir)
    with output_dir(out_dir, **rule) as tmp:
        for p in progress_bar(pair_list, desc=desc, unit="pair", enabled=progress):
            try:
                wave = make(p)
            except DataError as e:
                raise DataError(f"pair '{p.id}': {e}") from None
            write_wav(tmp / f"{p.id}.wav", wave, sample_rate)
    return [out_dir / f"{p.id}.wav" for p in pair_list]


def convert_pairs(
    model: str | Path | None,
    pairs: str | Path | list[ConversionPair],
    out_dir: str | Path,
    *,
    vocoder: str | Path | None = None,
    device: str = "cpu",
    force: bool = False,
    progress: bool = True,
    **options: Any,
) -> list[Path]:
    """Convert every pair of a pairs file into ``out_dir/<id>.wav``; all or nothing.

    Returns the output paths, in the order of the pairs. ``force`` replaces an earlier
    output of ``speechrep convert`` at ``out_dir`` (nothing else is ever replaced).
    ``model`` and ``options``: as in :func:`load_converter`. Pairs are converted grouped by
    their targets, so that a kNN converter encodes each distinct target set once.
    """
    from speechrep.utils.io import check_output_dir

    pair_list = read_pairs(pairs) if isinstance(pairs, (str, Path)) else list(pairs)
    rule = _out_dir_rule(pairs, pair_list, force=force, model=model, population=options.get("population"))
    check_output_dir(out_dir, **rule)  # before the model is loaded
    conv = load_converter(model, vocoder=vocoder, device=device, **options)
    first: dict[tuple[str, ...], int] = {}
    for p in pair_list:
        first.setdefault(tuple(p.targets), len(first))
    grouped = sorted(pair_list, key=lambda p: first[tuple(p.targets)])  # stable: file order within a group
    _write_all(grouped, out_dir, lambda p: conv.convert(p.source, p.targets), sample_rate=conv.sample_rate,
               desc="convert", progress=progress, rule=rule)
    return [Path(out_dir) / f"{p.id}.wav" for p in pair_list]


def resynthesize_pairs(
    pairs: str | Path | list[ConversionPair],
    out_dir: str | Path,
    *,
    vocoder: str | Path | None = "griffinlim",
    device: str = "cpu",
    force: bool = False,
    progress: bool = True,
) -> list[Path]:
    """Copy synthesis: vocode the log-mel of every pair's source into ``out_dir/<id>.wav``.

    The baseline of conversion scores: what the vocoder (None: Griffin-Lim) alone does to
    the source. All or nothing, and ``out_dir`` checked, like :func:`convert_pairs`.
    """
    from speechrep.features.logmel import log_mel
    from speechrep.train.pretrained import load_vocoder
    from speechrep.utils.io import check_output_dir

    vocoder = "griffinlim" if vocoder is None else vocoder
    pair_list = read_pairs(pairs) if isinstance(pairs, (str, Path)) else list(pairs)
    rule = _out_dir_rule(pairs, pair_list, force=force, model=vocoder if vocoder != "griffinlim" else None)
    check_output_dir(out_dir, **rule)
    voc = load_vocoder(vocoder, device=device)

    def make(p: ConversionPair) -> np.ndarray:
        return voc.mel_to_wave(log_mel(read_input_audio(p.source, sample_rate=voc.sample_rate, field_name="source"), voc.spec))

    return _write_all(pair_list, out_dir, make, sample_rate=voc.sample_rate, desc="resynthesize", progress=progress,
                      rule=rule)
