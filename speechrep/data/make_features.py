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
is written under a unique temporary name and renamed when complete; a job's ``.scp`` is
renamed last, after ``raw_{kind}_{data}.{j}.key``: a digest of everything its features
depend on (the feature type and configuration, the job's ``utt2spk``, ``wav.scp`` and
``segments`` lines, and the size and modification time of each audio file). A rerun skips
a job only when its ``.scp`` lists exactly its utterances and its key is unchanged, so
edited audio or a changed ``wav.scp`` line is never served from stale features. Audio in
[-1, 1] is scaled by ``wave_scale`` (32768: Kaldi's 16-bit integer scale) before the
features are computed.

Before anything is written the options, the job engine, the data directory, every
recording's sample rate (file headers; pipes when decoded, by the same
:class:`speechrep.data.audio.AudioRule`) and the writability of the outputs are checked.
An exclusive lock on ``out_dir`` refuses a second run writing there at the same time.
When any job has to run, ``data_dir/feats.scp`` and ``data_dir/cmvn.scp`` are removed
first: they would describe features that are about to change.
"""

from __future__ import annotations

import hashlib
import json
import os
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from speechrep.config import from_dict, save_config, to_dict
from speechrep.errors import ConfigError, DataError, SpeechrepError
from speechrep.features.options import FEATURE_KINDS, feature_config, feature_kind, function_options

if TYPE_CHECKING:  # imported where used: data/ imports heavy modules (soundfile, soxr)
    from speechrep.data.audio import AudioRule
    from speechrep.data.kaldi_dir import DataDir

__all__ = ["audio_rule", "feature_config_for_audio", "iter_features", "make_features", "compute_cmvn"]


def _utt_seed(seed: int, utt: str) -> np.random.Generator:
    # dither noise differs between utterances but not between runs or job splits
    return np.random.default_rng([seed, zlib.crc32(utt.encode("utf-8"))])


def audio_rule(cfg: Any, *, allow_pipes: bool = True) -> AudioRule:
    """The :class:`speechrep.data.audio.AudioRule` of a feature configuration: its sample
    rate and resampling options, and enough samples for one frame.

    The same rule is checked by :func:`make_features` and by ``data validate --check-audio``.
    """
    from speechrep.data.audio import AudioRule
    from speechrep.features.framing import num_frames, window_shift, window_size

    length = window_size(cfg.sample_frequency, cfg.frame_length)
    shift = window_shift(cfg.sample_frequency, cfg.frame_shift)
    min_samples = next(
        n
        for n in range(1, max(length, shift) + 1)
        if num_frames(n, frame_length=length, frame_shift=shift, snip_edges=cfg.snip_edges) > 0
    )
    return AudioRule(
        sample_rate=int(cfg.sample_frequency),
        allow_downsample=cfg.allow_downsample,
        allow_upsample=cfg.allow_upsample,
        min_samples=min_samples,
        allow_pipes=allow_pipes,
    )


def feature_config_for_audio(data_dir: str | Path, config: str | Path | None = None) -> Any:
    """The feature configuration the audio of ``data_dir`` is checked against.

    ``config`` (a fbank, MFCC or spectrogram YAML, whichever it parses as); else the
    ``data_dir/conf/{kind}.yaml`` that :func:`make_features` leaves beside the features;
    else the fbank defaults.

    Raises
    ------
    ConfigError
        ``config`` parses as no feature type (the fbank error is reported).
    """
    if config is None:
        for kind in FEATURE_KINDS:
            beside = Path(data_dir) / "conf" / f"{kind}.yaml"
            if beside.is_file():
                return feature_config(kind, beside)
        return feature_config("fbank")
    errors = []
    for kind in FEATURE_KINDS:
        try:
            return feature_config(kind, config)
        except ConfigError as e:
            errors.append(e)
    raise errors[0]


def _check_recordings(dd: DataDir, rule: AudioRule) -> None:
    """Refuse, before any job starts, pipes that ``rule`` forbids, and audio files that are
    missing, directories, truncated or of a rate ``rule`` refuses (from their headers; a
    pipe's rate is known once decoded, which the jobs check with the same rule)."""
    import soundfile as sf

    from speechrep.data.audio import check_audio_file, is_pipe

    for reco, spec in dd.wav_scp.items():
        problem = rule.pipe_problem(spec)
        if problem is not None:
            raise DataError(f"recording {reco}: {problem}", path=dd.path / "wav.scp")
        if is_pipe(spec):
            continue
        check_audio_file(spec)
        try:
            rate = int(sf.info(spec).samplerate)
        except (sf.SoundFileError, RuntimeError, OSError):
            continue  # the job reports unreadable files with the utterance name
        problem = rule.rate_problem(rate)
        if problem is not None:
            raise DataError(f"recording {reco}: {problem}", path=spec)


def iter_features(part: Path, kind: str, cfg: Any, rule: AudioRule) -> Iterator[tuple[str, np.ndarray]]:
    """``(utt, features (frames, dim))`` of every utterance of data directory ``part``, as
    :func:`make_features` writes them (the same per-utterance dither seed)."""
    from speechrep.data.audio import iter_audio

    func = feature_kind(kind)[1]
    options = function_options(cfg)
    # the rule guarantees at least one frame per utterance
    for utt, wave in iter_audio(part, sample_rate=int(cfg.sample_frequency), rule=rule):
        options["seed"] = _utt_seed(cfg.seed, utt)
        try:
            feats = func(wave * np.float32(cfg.wave_scale), **options)
        except DataError as e:
            raise DataError(f"utterance {utt}: {e}", path=part / "wav.scp") from None
        yield utt, feats


def _job_files(out_dir: Path, kind: str, data_name: str, j: int) -> tuple[Path, Path, Path, Path]:
    """``(ark, scp, utt2num_frames, key)`` of job ``j``."""
    stem = out_dir / f"raw_{kind}_{data_name}.{j}"
    return (
        stem.with_name(stem.name + ".ark"),
        stem.with_name(stem.name + ".scp"),
        out_dir / f"utt2num_frames.{kind}.{j}",
        stem.with_name(stem.name + ".key"),
    )


def _job_key(part: Path, kind: str, cfg: Any) -> str:
    """Digest of everything the features of the data directory ``part`` depend on: feature
    type and configuration, the ``utt2spk``/``wav.scp``/``segments`` lines, and the size and
    modification time of every audio file (so audio replaced under the same name counts)."""
    from speechrep.data.audio import is_pipe
    from speechrep.data.kaldi_dir import read_kaldi_map

    digest = hashlib.sha256(json.dumps([kind, to_dict(cfg)], sort_keys=True).encode("utf-8"))
    for name in ("utt2spk", "wav.scp", "segments"):
        file = part / name
        digest.update(f"\0{name}\0".encode("utf-8") + (file.read_bytes() if file.is_file() else b"-"))
    for spec in read_kaldi_map(part / "wav.scp").values():
        if is_pipe(spec):
            continue  # the command line itself is hashed above
        try:
            st = os.stat(spec)
            digest.update(f"\0{spec}\0{st.st_size}\0{st.st_mtime_ns}".encode("utf-8"))
        except OSError:
            digest.update(f"\0{spec}\0missing".encode("utf-8"))
    return digest.hexdigest()


def _read_scp_keys(path: Path) -> list[str]:
    with open(path, encoding="utf-8") as f:
        return [line.split(maxsplit=1)[0] for line in f if line.strip()]


def _job_complete(part: Path, key: str, ark: Path, scp: Path, num_frames: Path, key_file: Path) -> bool:
    from speechrep.data.kaldi_dir import read_kaldi_map

    if not all(p.is_file() for p in (ark, scp, num_frames, key_file)):
        return False
    if key_file.read_text(encoding="utf-8").strip() != key:
        return False
    utts = sorted(read_kaldi_map(part / "utt2spk"))
    return _read_scp_keys(scp) == utts and sorted(read_kaldi_map(num_frames)) == utts


def _write_ark(ark: Path, items: Iterable[tuple[str, np.ndarray]]) -> dict[str, str]:
    """Write matrices to the Kaldi ark ``ark`` atomically; return their scp entries
    (``key -> "ark:offset"``, the offset pointing just past ``"key "``)."""
    import kaldiio

    from speechrep.utils.io import atomic_open

    entries: dict[str, str] = {}
    with atomic_open(ark, "wb") as f:
        for key, mat in items:
            entries[key] = f"{ark}:{f.tell() + len(key.encode('utf-8')) + 1}"
            kaldiio.save_ark(f, {key: mat})
    return entries


def _remove_stale_temporaries(outputs: Iterable[Path]) -> None:
    """Remove the temporary files of ``outputs`` left by a killed run (the output lock
    guarantees no other run is writing them now)."""
    for path in outputs:
        for tmp in path.parent.glob(f".{path.name}.*.tmp"):
            tmp.unlink(missing_ok=True)


def extract_job(
    *, part: str, out_dir: str, kind: str, config: dict[str, Any], data_name: str, job: int, key: str,
    allow_pipes: bool = True,
) -> None:
    """One extraction job: features of the data directory ``part`` into job ``job``'s
    ark/scp (unique temporary names until complete); ``key`` is :func:`_job_key` of the
    part. Runs in a worker process."""
    from speechrep.data.kaldi_dir import write_kaldi_map
    from speechrep.utils.io import atomic_write_text

    part_dir, out = Path(part), Path(out_dir)
    cfg = from_dict(feature_kind(kind)[0], config)
    files = _job_files(out, kind, data_name, job)
    ark, scp, num_frames_file, key_file = files
    if _job_complete(part_dir, key, *files):
        print(f"outputs of job {job} are complete, skipping")
        return
    # the scp (then the key) marks a complete job: remove them before touching the ark
    scp.unlink(missing_ok=True)
    key_file.unlink(missing_ok=True)
    _remove_stale_temporaries(files)
    frames: dict[str, int] = {}

    def features() -> Iterator[tuple[str, np.ndarray]]:
        for utt, feats in iter_features(part_dir, kind, cfg, audio_rule(cfg, allow_pipes=allow_pipes)):
            frames[utt] = feats.shape[0]
            yield utt, feats

    entries = _write_ark(ark, features())
    write_kaldi_map(num_frames_file, frames)
    atomic_write_text(key_file, key + "\n")
    write_kaldi_map(scp, entries)
    print(f"job {job}: {len(frames)} utterances, {sum(frames.values())} frames -> {ark}")


def _check_file_targets(*paths: Path) -> None:
    """Refuse outputs that exist as something other than a regular file."""
    for path in paths:
        if path.exists() and not path.is_file():
            raise DataError("exists and is not a regular file (it would be replaced by an output)", path=path)


def _check_dir_target(path: Path) -> None:
    """Refuse an output directory that exists as something else (a file)."""
    if path.exists() and not path.is_dir():
        raise DataError("exists and is not a directory", path=path)
    for parent in path.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise DataError("is not a directory", path=parent)
            break


def _check_writable(*dirs: Path) -> None:
    """Refuse existing directories that cannot be written to, before any work is done."""
    for d in dirs:
        if d.is_dir() and not os.access(d, os.W_OK | os.X_OK):
            raise DataError("directory is not writable (outputs go here)", path=d)


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
    allow_pipes: bool = True,
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
    allow_pipes : accept ``wav.scp`` pipe commands (shell code run by ``/bin/sh``); False
        refuses them, for data directories from untrusted sources.
    progress : show a progress bar.

    Returns
    -------
    Path
        ``data_dir/feats.scp``.

    Raises
    ------
    ConfigError
        Bad configuration (unknown key: named with the file), ``nj`` out of range, bad
        ``cmd`` or its engine not installed.
    DataError
        Bad data directory, audio whose sample rate differs from the configuration, a
        refused pipe, an output path that is not writable or is in the way.
    SpeechrepError
        Another run holds ``out_dir``; a failed job: its error line and its log file. No
        ``feats.scp`` is written then; jobs that finished keep their outputs for the rerun.
    """
    from speechrep.data.dir_ops import split_data_dir
    from speechrep.data.kaldi_dir import DataDir, read_kaldi_map, write_kaldi_map
    from speechrep.utils.io import atomic_write_text
    from speechrep.utils.job_cmd import check_cmd
    from speechrep.utils.jobs import output_lock, run_jobs

    # everything that can be refused is checked before anything is written
    cfg = feature_config(kind, config, overrides=overrides)
    if nj < 1:
        raise ConfigError(f"must be >= 1, got {nj}", field="--nj")
    check_cmd(cmd)
    data_dir, out_dir = Path(data_dir), Path(out_dir).absolute()
    dd = DataDir.load(data_dir)
    if not dd.utts:
        raise DataError("no utterances", path=data_dir / "utt2spk")
    if nj > len(dd.utts):
        raise ConfigError(f"{nj} jobs for {len(dd.utts)} utterances (at most one job per utterance)", field="--nj")
    _check_recordings(dd, audio_rule(cfg, allow_pipes=allow_pipes))
    logs = out_dir / "log" if log_dir is None else Path(log_dir)
    data_name = data_dir.absolute().name
    resolved = out_dir / f"{kind}.yaml"
    data_outputs = [data_dir / name for name in ("feats.scp", "utt2num_frames", "frame_shift", "frame_offset")]
    _check_dir_target(out_dir)
    _check_dir_target(logs)
    _check_dir_target(data_dir / "conf")
    _check_file_targets(resolved, data_dir / "conf" / f"{kind}.yaml", *data_outputs)
    _check_writable(data_dir, data_dir / "conf", out_dir, logs)
    out_dir.mkdir(parents=True, exist_ok=True)
    with output_lock(out_dir, what=f"make-{kind} run"):
        save_config(cfg, resolved)
        parts = [data_dir] if nj == 1 else split_data_dir(data_dir, nj)
        files = [_job_files(out_dir, kind, data_name, j) for j in range(1, nj + 1)]
        keys = [_job_key(p, kind, cfg) for p in parts]
        if not all(_job_complete(p, k, *f) for p, k, f in zip(parts, keys, files)):
            # features change: what describes the old ones must not outlive them
            for stale in (data_dir / "feats.scp", data_dir / "cmvn.scp"):
                stale.unlink(missing_ok=True)
            jobs = [
                dict(part=str(p.absolute()), out_dir=str(out_dir), kind=kind, config=to_dict(cfg), data_name=data_name,
                     job=j, key=k, allow_pipes=allow_pipes)
                for j, (p, k) in enumerate(zip(parts, keys), start=1)
            ]
            log_name = f"make_{kind}"
            try:
                try:
                    run_jobs(extract_job, jobs, cmd=cmd, log_dir=logs, log_name=log_name, progress=progress)
                finally:
                    # every job has ended here; one interrupted right after creating a temporary
                    # file (before its own clean-up was armed) cannot remove it itself
                    _remove_stale_temporaries(path for job_files in files for path in job_files)
            except SpeechrepError as e:
                detail = _failure_detail(logs, log_name, nj)
                raise SpeechrepError(f"{e}: {detail}" if detail else str(e)) from None
        feats: dict[str, str] = {}
        num_frames: dict[str, str] = {}
        for _, scp, frames_file, _ in files:
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
        speaker, an output path that is not writable or is in the way (checked before the
        features are read).
    """
    import kaldiio
    from speechrep.utils.progress import progress_bar

    from speechrep.data.kaldi_dir import DataDir, write_kaldi_map
    from speechrep.features.cmvn import accumulate_cmvn_stats

    data_dir, out_dir = Path(data_dir), Path(out_dir).absolute()
    dd = DataDir.load(data_dir)
    if dd.feats_scp is None:
        raise DataError("no feats.scp: extract features first (speechrep features make-fbank)", path=data_dir)
    ark = out_dir / f"cmvn_{data_dir.absolute().name}.ark"
    scp = ark.with_suffix(".scp")
    # refused before the features are read
    _check_dir_target(out_dir)
    _check_file_targets(ark, scp, data_dir / "cmvn.scp")
    _check_writable(data_dir, out_dir)

    def feats() -> Iterator[tuple[str, np.ndarray]]:
        for utt in progress_bar(dd.utts, desc="compute-cmvn", unit="utt", enabled=progress):
            if utt not in dd.feats_scp:
                raise DataError(f"utterance {utt} has no features", path=data_dir / "feats.scp")
            try:
                yield utt, kaldiio.load_mat(dd.feats_scp[utt])
            except Exception as e:  # noqa: BLE001  (kaldiio raises many types for a bad ark)
                raise DataError(f"utterance {utt}: cannot read features ({e})", path=data_dir / "feats.scp") from None

    stats = accumulate_cmvn_stats(feats(), utt2spk=None if per_utt else dd.utt2spk)
    out_dir.mkdir(parents=True, exist_ok=True)
    entries = _write_ark(ark, ((key, stats[key]) for key in sorted(stats)))
    write_kaldi_map(scp, entries)
    write_kaldi_map(data_dir / "cmvn.scp", entries)
    return data_dir / "cmvn.scp"
