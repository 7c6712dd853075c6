"""Feature extraction for Kaldi data directories (Kaldi ``steps/make_fbank.sh``).

``make_features(data_dir, out_dir, kind="fbank")`` splits the data directory into ``nj``
parts, runs one job per part (locally, on Slurm or on Dask, see
:mod:`speechrep.utils.jobs`) and writes, Kaldi style:

* ``out_dir/raw_{kind}_{data}.{j}.ark`` / ``.scp``: the features of job ``j`` (kaldiio);
* ``out_dir/log/make_{kind}.{j}.log``: the log of job ``j``;
* ``out_dir/{kind}.yaml``: the resolved feature configuration;
* ``data_dir/feats.scp``, ``data_dir/utt2num_frames``, ``data_dir/frame_shift`` and
  ``data_dir/frame_offset`` (seconds; the centre of frame 0)
  and ``data_dir/conf/{kind}.yaml`` (the configuration, beside the features it describes).

Jobs stream one utterance at a time, so memory does not grow with the corpus. Every file
is written under a temporary name and renamed when complete; a job's ``.scp`` is renamed
last, so a job whose ``.scp`` lists exactly its utterances is complete and a rerun with the
same configuration skips it. Audio in [-1, 1] is scaled by ``wave_scale`` (32768: Kaldi's
16-bit integer scale) before the features are computed.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from speechrep.config import OVERRIDE_SOURCE, from_dict, load_config, save_config, to_dict
from speechrep.errors import ConfigError, DataError, SpeechrepError
from speechrep.features.kaldi import fbank, mfcc, spectrogram

__all__ = [
    "FbankConfig",
    "MfccConfig",
    "SpectrogramConfig",
    "FEATURE_KINDS",
    "feature_config",
    "make_features",
    "compute_cmvn",
]

# options of the extraction itself, after those of the feature function
_EXTRACTION_FIELDS = [("wave_scale", float, 32768.0), ("allow_downsample", bool, False), ("allow_upsample", bool, False)]


def _options_dataclass(name: str, func: Any) -> type:
    """A config dataclass whose fields are the keyword options of ``func`` (same names,
    types and defaults, so the two cannot drift apart) plus the extraction options."""
    fields = []
    for p in list(inspect.signature(func, eval_str=True).parameters.values())[1:]:
        # a config file holds an integer seed, never a Generator
        fields.append((p.name, int if p.name == "seed" else p.annotation, p.default))
    fields += _EXTRACTION_FIELDS
    cls = dataclasses.make_dataclass(name, [(n, t, dataclasses.field(default=d)) for n, t, d in fields])
    cls.__module__ = __name__
    cls.__doc__ = (
        f"Options of :func:`speechrep.features.{func.__name__}` (see there), plus ``wave_scale`` "
        "(factor applied to audio in [-1, 1]; 32768 reproduces Kaldi on 16-bit audio) and Kaldi's "
        "``allow_downsample``/``allow_upsample`` (resample audio whose rate differs from "
        "``sample_frequency`` instead of failing)."
    )
    return cls


FbankConfig = _options_dataclass("FbankConfig", fbank)
MfccConfig = _options_dataclass("MfccConfig", mfcc)
SpectrogramConfig = _options_dataclass("SpectrogramConfig", spectrogram)

FEATURE_KINDS: dict[str, tuple[type, Any]] = {
    "fbank": (FbankConfig, fbank),
    "mfcc": (MfccConfig, mfcc),
    "spectrogram": (SpectrogramConfig, spectrogram),
}


def _kind(kind: str) -> tuple[type, Any]:
    if kind not in FEATURE_KINDS:
        raise ConfigError(f"unknown feature type {kind!r} (choose from {', '.join(FEATURE_KINDS)})", field="kind")
    return FEATURE_KINDS[kind]


def feature_config(kind: str, path: str | Path | None = None, *, overrides: list[str] | tuple[str, ...] = ()) -> Any:
    """Load and check the configuration of a feature type.

    Parameters
    ----------
    kind : ``fbank``, ``mfcc`` or ``spectrogram``.
    path : YAML file (None: defaults).
    overrides : ``key=value`` strings applied after the file.

    Raises
    ------
    ConfigError
        Unknown key (naming key and file), wrong type, or options the feature function
        rejects (tried on a short signal, so that no job starts with a bad config).
    """
    cls, func = _kind(kind)
    cfg = load_config(cls, path, overrides=overrides)
    try:
        func(np.zeros(int(cfg.sample_frequency * 0.1) + 1, np.float32), **_function_options(cfg))
    except ConfigError as e:
        # without a file, what the defaults do not allow came from --set
        raise ConfigError(str(e), path=path if path is not None else OVERRIDE_SOURCE) from None
    return cfg


def _function_options(cfg: Any) -> dict[str, Any]:
    extra = {name for name, _, _ in _EXTRACTION_FIELDS}
    return {k: v for k, v in dataclasses.asdict(cfg).items() if k not in extra}


def _utt_seed(seed: int, utt: str) -> np.random.Generator:
    # dither noise differs between utterances but not between runs or job splits
    return np.random.default_rng([seed, zlib.crc32(utt.encode("utf-8"))])


def _native_rate(spec: str) -> int | None:
    """Sample rate of an audio file from its header; None for pipe commands (unknown
    without running them; their audio is resampled to the configured rate)."""
    from speechrep.data.audio import is_pipe

    if is_pipe(spec):
        return None
    import soundfile as sf

    try:
        return int(sf.info(spec).samplerate)
    except (sf.SoundFileError, RuntimeError, OSError):
        return None  # load_audio reports unreadable files with the utterance name


def _check_rates(dd: Any, cfg: Any) -> None:
    """Kaldi refuses audio whose rate differs from ``sample_frequency`` unless allowed."""
    want = cfg.sample_frequency
    for reco, spec in dd.wav_scp.items():
        rate = _native_rate(spec)
        if rate is None or rate == want:
            continue
        if (rate > want and cfg.allow_downsample) or (rate < want and cfg.allow_upsample):
            continue
        flag = "allow_downsample" if rate > want else "allow_upsample"
        raise DataError(
            f"recording {reco}: sample rate {rate} Hz differs from sample_frequency={want:g} of the feature config "
            f"(set {flag}: true to resample)",
            path=spec,
        )


def _iter_features(part: Path, kind: str, cfg: Any) -> Iterator[tuple[str, np.ndarray]]:
    from speechrep.data.audio import iter_audio

    func = _kind(kind)[1]
    options = _function_options(cfg)
    for utt, wave in iter_audio(part, sample_rate=int(cfg.sample_frequency)):
        options["seed"] = _utt_seed(cfg.seed, utt)
        try:
            feats = func(wave * np.float32(cfg.wave_scale), **options)
        except DataError as e:
            raise DataError(f"utterance {utt}: {e}", path=part / "wav.scp") from None
        if feats.shape[0] == 0:
            raise DataError(
                f"utterance {utt}: {wave.shape[0]} samples are too short for one frame (frame_length={cfg.frame_length} ms)",
                path=part / "wav.scp",
            )
        yield utt, feats


def _job_files(out_dir: Path, kind: str, data_name: str, j: int) -> tuple[Path, Path, Path]:
    stem = out_dir / f"raw_{kind}_{data_name}.{j}"
    return stem.with_name(stem.name + ".ark"), stem.with_name(stem.name + ".scp"), out_dir / f"utt2num_frames.{kind}.{j}"


def _read_scp_keys(path: Path) -> list[str]:
    with open(path, encoding="utf-8") as f:
        return [line.split(maxsplit=1)[0] for line in f if line.strip()]


def _job_complete(part: Path, ark: Path, scp: Path, num_frames: Path) -> bool:
    from speechrep.data.kaldi_dir import read_kaldi_map

    if not (ark.is_file() and scp.is_file() and num_frames.is_file()):
        return False
    utts = sorted(read_kaldi_map(part / "utt2spk"))
    return _read_scp_keys(scp) == utts and sorted(read_kaldi_map(num_frames)) == utts


def extract_job(*, part: str, out_dir: str, kind: str, config: dict[str, Any], data_name: str, job: int) -> None:
    """One extraction job: features of the data directory ``part`` into job ``job``'s
    ark/scp (temporary names until complete). Runs in a worker process."""
    import kaldiio

    from speechrep.data.kaldi_dir import write_kaldi_map
    from speechrep.utils.io import atomic_write_text

    part_dir, out = Path(part), Path(out_dir)
    cfg = from_dict(_kind(kind)[0], config)
    ark, scp, num_frames_file = _job_files(out, kind, data_name, job)
    if _job_complete(part_dir, ark, scp, num_frames_file):
        print(f"outputs of job {job} are complete, skipping")
        return
    tmp_ark = ark.with_name(f".{ark.name}.tmp")
    tmp_scp = scp.with_name(f".{scp.name}.tmp")
    scp.unlink(missing_ok=True)  # the scp marks a complete job: remove it before touching the ark
    frames: dict[str, int] = {}
    try:
        with kaldiio.WriteHelper(f"ark,scp:{tmp_ark},{tmp_scp}") as writer:
            for utt, feats in _iter_features(part_dir, kind, cfg):
                writer(utt, feats)
                frames[utt] = feats.shape[0]
        # the scp points into the temporary ark: point it at the final name
        lines = []
        with open(tmp_scp, encoding="utf-8") as f:
            for line in f:
                utt, _, rest = line.rstrip("\n").partition(" ")
                offset = rest.rpartition(":")[2]
                lines.append(f"{utt} {ark}:{offset}\n")
        os.replace(tmp_ark, ark)
        write_kaldi_map(num_frames_file, frames)
        atomic_write_text(scp, "".join(lines))
    finally:
        tmp_ark.unlink(missing_ok=True)
        tmp_scp.unlink(missing_ok=True)
    print(f"job {job}: {len(frames)} utterances, {sum(frames.values())} frames -> {ark}")


def _failure_detail(log_dir: Path, log_name: str, nj: int) -> str:
    """The last error line of the first failed job's log (the exception message)."""
    for j in range(1, nj + 1):
        log = log_dir / f"{log_name}.{j}.log"
        if not log.is_file():
            continue
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
        if not lines or "FAILED" not in lines[-1]:
            continue
        for line in reversed(lines[:-1]):
            if line.strip() and not line.startswith("#"):
                # "speechrep.errors.DataError: <message>" -> "<message>"
                kind, sep, message = line.strip().partition(": ")
                return message if sep and kind.rpartition(".")[2].endswith("Error") else line.strip()
    return ""


def make_features(
    data_dir: str | Path,
    out_dir: str | Path,
    *,
    kind: str = "fbank",
    config: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    nj: int = 1,
    cmd: str = "local",
    log_dir: str | Path | None = None,
    progress: bool = True,
) -> Path:
    """Extract features of every utterance of a data directory (see the module docstring).

    Parameters
    ----------
    data_dir : Kaldi data directory (``wav.scp``, ``utt2spk``, optional ``segments``).
    out_dir : where the arks, scps, logs and the resolved config go.
    kind : ``fbank``, ``mfcc`` or ``spectrogram``.
    config, overrides : feature configuration file and ``key=value`` overrides.
    nj : number of jobs (the data directory is split into ``nj`` parts).
    cmd : ``local``, ``slurm[:...]`` or ``dask://HOST:PORT`` (:func:`speechrep.utils.jobs.parse_cmd`).
    log_dir : where the job logs go (default ``out_dir/log``).
    progress : show a progress bar.

    Returns
    -------
    Path
        ``data_dir/feats.scp``.

    Raises
    ------
    ConfigError
        Bad configuration (unknown key: named with the file).
    DataError
        Bad data directory, audio whose sample rate differs from the configuration.
    SpeechrepError
        A failed job: its error line and its log file. No ``feats.scp`` is written then;
        jobs that finished keep their outputs for the rerun.
    """
    from speechrep.data.kaldi_dir import DataDir, read_kaldi_map, split_data_dir, write_kaldi_map
    from speechrep.utils.io import atomic_write_text
    from speechrep.utils.jobs import run_jobs

    cfg = feature_config(kind, config, overrides=overrides)
    data_dir, out_dir = Path(data_dir), Path(out_dir).absolute()
    if nj < 1:
        raise ConfigError(f"must be >= 1, got {nj}", field="--nj")
    dd = DataDir.load(data_dir)
    _check_rates(dd, cfg)
    out_dir.mkdir(parents=True, exist_ok=True)
    data_name = data_dir.absolute().name
    resolved = out_dir / f"{kind}.yaml"
    if resolved.is_file():
        try:
            previous = load_config(type(cfg), resolved)
        except ConfigError:
            previous = None
        if previous != cfg:
            # outputs of another configuration must not count as complete
            for j in range(1, nj + 1):
                _job_files(out_dir, kind, data_name, j)[1].unlink(missing_ok=True)
    save_config(cfg, resolved)
    parts = [data_dir] if nj == 1 else split_data_dir(data_dir, nj)
    files = [_job_files(out_dir, kind, data_name, j) for j in range(1, nj + 1)]
    if not all(_job_complete(p, *f) for p, f in zip(parts, files)):
        jobs = [
            dict(part=str(p.absolute()), out_dir=str(out_dir), kind=kind, config=to_dict(cfg), data_name=data_name, job=j)
            for j, p in enumerate(parts, start=1)
        ]
        log_name = f"make_{kind}"
        logs = out_dir / "log" if log_dir is None else Path(log_dir)
        try:
            run_jobs(extract_job, jobs, cmd=cmd, log_dir=logs, log_name=log_name, progress=progress)
        except SpeechrepError as e:
            detail = _failure_detail(logs, log_name, nj)
            raise SpeechrepError(f"{e}: {detail}" if detail else str(e)) from None
    feats: dict[str, str] = {}
    num_frames: dict[str, str] = {}
    for _, scp, frames_file in files:
        with open(scp, encoding="utf-8") as f:
            for line in f:
                utt, _, rest = line.rstrip("\n").partition(" ")
                feats[utt] = rest
        num_frames.update(read_kaldi_map(frames_file))
    write_kaldi_map(data_dir / "utt2num_frames", num_frames)
    atomic_write_text(data_dir / "frame_shift", f"{cfg.frame_shift / 1000:g}\n")
    # Centre of frame 0: half a window with snip_edges, else half a shift (Kaldi's framing).
    offset = (cfg.frame_length if cfg.snip_edges else cfg.frame_shift) / 2000
    atomic_write_text(data_dir / "frame_offset", f"{offset:g}\n")
    for other in FEATURE_KINDS:
        (data_dir / "conf" / f"{other}.yaml").unlink(missing_ok=True)
    save_config(cfg, data_dir / "conf" / f"{kind}.yaml")
    write_kaldi_map(data_dir / "feats.scp", feats)  # last: feats.scp announces finished features
    return data_dir / "feats.scp"


def compute_cmvn(data_dir: str | Path, out_dir: str | Path, *, per_utt: bool = False, progress: bool = True) -> Path:
    """CMVN statistics of ``data_dir/feats.scp`` (Kaldi ``steps/compute_cmvn_stats.sh``).

    Writes ``out_dir/cmvn_{data}.ark``/``.scp`` (one ``(2, dim + 1)`` stats matrix per
    speaker, or per utterance with ``per_utt``) and ``data_dir/cmvn.scp``. Features are
    read one utterance at a time.

    Returns
    -------
    Path
        ``data_dir/cmvn.scp``.

    Raises
    ------
    DataError
        No ``feats.scp`` (run make-fbank first), unreadable features, utterances without a
        speaker.
    """
    import kaldiio
    from tqdm import tqdm

    from speechrep.data.kaldi_dir import DataDir, write_kaldi_map
    from speechrep.features.cmvn import accumulate_cmvn_stats
    from speechrep.utils.io import atomic_open

    data_dir, out_dir = Path(data_dir), Path(out_dir).absolute()
    dd = DataDir.load(data_dir)
    if dd.feats_scp is None:
        raise DataError("no feats.scp: extract features first (speechrep features make-fbank)", path=data_dir)

    def feats() -> Iterator[tuple[str, np.ndarray]]:
        for utt in tqdm(dd.utts, desc="compute-cmvn", unit="utt", disable=None if progress else True):
            if utt not in dd.feats_scp:
                raise DataError(f"utterance {utt} has no features", path=data_dir / "feats.scp")
            try:
                yield utt, kaldiio.load_mat(dd.feats_scp[utt])
            except Exception as e:  # noqa: BLE001  (kaldiio raises many types for a bad ark)
                raise DataError(f"utterance {utt}: cannot read features ({e})", path=data_dir / "feats.scp") from None

    stats = accumulate_cmvn_stats(feats(), utt2spk=None if per_utt else dd.utt2spk)
    out_dir.mkdir(parents=True, exist_ok=True)
    ark = out_dir / f"cmvn_{data_dir.absolute().name}.ark"
    scp = ark.with_suffix(".scp")
    entries: dict[str, str] = {}
    with atomic_open(ark, "wb") as f:
        for key in sorted(stats):
            # an scp offset points just past "key " in the ark
            entries[key] = f"{ark}:{f.tell() + len(key.encode('utf-8')) + 1}"
            kaldiio.save_ark(f, {key: stats[key]})
    write_kaldi_map(scp, entries)
    write_kaldi_map(data_dir / "cmvn.scp", entries)
    return data_dir / "cmvn.scp"
