"""Audio input/output for data directories.

Reading uses soundfile (libsndfile): WAV with 8-bit unsigned, 16/24/32-bit integer or
float samples, FLAC, and whatever else libsndfile decodes, always returned as float32 in
[-1, 1].

Policies
--------
* Channels: multi-channel audio is mixed down to mono by **averaging the channels**
  (as ``librosa.to_mono`` does; it keeps both sides of a stereo recording at the same
  level instead of dropping one); pass ``channel=k`` to take channel ``k`` alone.
* Resampling: ``soxr.resample(..., quality="HQ")``. soxr is the resampler librosa uses
  by default, it is fast (a C library: 600 s of 44.1 kHz audio to 16 kHz in about half
  the time of ``scipy.signal.resample_poly``) and needs no torch; "HQ" keeps the passband
  flat and aliasing far below 16-bit noise.
* Segments: ``start``/``end`` in seconds are rounded to the nearest sample. An ``end``
  past the end of the file by at most :data:`SEGMENT_END_TOLERANCE` seconds (rounding in
  a ``segments`` file) is clipped; further past it is an error, as is anything that would
  give no samples.
* ``wav.scp`` entries ending in ``|`` are shell commands (Kaldi's convention), run by
  ``/bin/sh``, whose standard output is read as an audio file; a non-zero exit is an error
  naming the command. A pipe line is code: ``AudioRule(allow_pipes=False)`` (the
  ``--no-pipes`` option) refuses them for data directories from untrusted sources.
  Relative paths are relative to the working directory, as in Kaldi.
* Truncation: a WAV file whose ``data`` chunk promises more bytes than the file holds is
  refused (libsndfile would silently return the samples present). A chunk size of 0 or
  0xFFFFFFFF means "unknown" (a stream written to a file) and is read to the end.
* :class:`AudioRule`: what a consumer needs of its audio (native rate, resampling allowed,
  enough samples for one frame, pipes allowed). Feature extraction and ``data validate
  --check-audio`` check the same rule, on files and on the output of pipes alike.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import struct
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from speechrep.data.kaldi_dir import DataDir
from speechrep.errors import DataError
from speechrep.utils.io import atomic_open

__all__ = [
    "SEGMENT_END_TOLERANCE",
    "AudioRule",
    "check_audio_file",
    "SegmentReader",
    "is_pipe",
    "iter_audio",
    "load_audio",
    "write_utt2dur",
    "write_wav",
]

#: Seconds a segment may run past the end of its recording before it is an error.
SEGMENT_END_TOLERANCE = 0.02


def is_pipe(spec: str | Path) -> bool:
    """True when ``spec`` is a Kaldi pipe command (``"cmd args |"``)."""
    return isinstance(spec, str) and spec.rstrip().endswith("|")


def _fail(where: str | Path, name: str | None, message: str) -> DataError:
    return DataError(f"utterance {name}: {message}" if name else message, path=where)


def _decode_error(e: Exception) -> str:
    return getattr(e, "error_string", None) or str(e)


@dataclass(frozen=True)
class AudioRule:
    """What a consumer needs of its audio; one rule for every way audio is read.

    Parameters
    ----------
    sample_rate : the rate the consumer works at (Hz); ``None``: any rate.
    allow_downsample, allow_upsample : accept (and resample) audio above / below
        ``sample_rate`` (Kaldi's options of the same names).
    min_samples : fewest samples, counted at ``sample_rate``, an utterance may have (one
        feature frame).
    allow_pipes : accept ``wav.scp`` pipe commands (they are shell code).
    """

    sample_rate: int | None = None
    allow_downsample: bool = False
    allow_upsample: bool = False
    min_samples: int = 1
    allow_pipes: bool = True

    def pipe_problem(self, spec: str | Path) -> str | None:
        """Why ``spec`` is refused before anything runs (a pipe when pipes are not allowed), or None."""
        if not self.allow_pipes and is_pipe(spec):
            return "pipe command refused (--no-pipes): wav.scp entries must be audio files"
        return None

    def rate_problem(self, rate: int) -> str | None:
        """Why a native ``rate`` is refused (it differs from ``sample_rate`` and resampling
        that way is not allowed), or None."""
        want = self.sample_rate
        if want is None or rate == want:
            return None
        if (rate > want and self.allow_downsample) or (rate < want and self.allow_upsample):
            return None
        flag = "allow_downsample" if rate > want else "allow_upsample"
        return (
            f"sample rate {rate} Hz differs from sample_frequency={want:g} of the feature config "
            f"(set {flag}: true to resample)"
        )

    def length_problem(self, num_samples: int, rate: int) -> str | None:
        """Why ``num_samples`` at ``rate`` are too few (fewer than ``min_samples`` once
        counted at ``sample_rate``), or None."""
        target = num_samples if self.sample_rate in (None, rate) else int(round(num_samples * self.sample_rate / rate))
        if target >= self.min_samples:
            return None
        at = self.sample_rate or rate
        return f"{target} samples are too short for one frame (at least {self.min_samples} at {at} Hz)"


def check_audio_file(path: str | Path, name: str | None = None) -> None:
    """Refuse a missing path, a directory, and a WAV file shorter than its header says
    (reads the header only; ``name``: the utterance named in the message).

    Raises
    ------
    DataError
        Naming the file.
    """
    path = Path(path)
    if path.is_dir():
        raise _fail(path, name, "is a directory, not an audio file")
    if not path.exists():
        raise _fail(path, name, "audio file not found")
    _check_wav_length(path, name)


def _check_wav_length(path: Path, name: str | None) -> None:
    """Compare the ``data`` chunk size of a RIFF/RIFX WAV file with the bytes the file holds.

    libsndfile reads a truncated file without complaint (it counts the samples present),
    so a cut copy would silently give shorter audio.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] not in (b"RIFF", b"RIFX") or head[8:12] != b"WAVE":
                return  # not a WAV file (or RF64, whose sizes live in its ds64 chunk)
            order = "<" if head[:4] == b"RIFF" else ">"
            size = os.fstat(f.fileno()).st_size
            pos, block_align = 12, 0
            while pos + 8 <= size:
                f.seek(pos)
                chunk, length = struct.unpack(order + "4sI", f.read(8))
                if chunk == b"fmt " and length >= 14:
                    block_align = struct.unpack(order + "H", f.read(14)[12:14])[0]
                elif chunk == b"data":
                    present = size - pos - 8
                    if length in (0, 0xFFFFFFFF) or length <= present:
                        return  # unknown length (streamed) or complete
                    unit, count = ("samples", block_align) if block_align else ("bytes", 1)
                    raise _fail(
                        path,
                        name,
                        f"truncated WAV: the header promises {length // count} {unit}, "
                        f"the file holds {present // count}",
                    )
                pos += 8 + length + (length & 1)  # chunks are padded to an even size
    except OSError as e:
        raise _fail(path, name, f"unreadable audio: {e.strerror}") from None


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
    """Hold SIGINT and SIGTERM while libsndfile opens, reads and closes a file.

    A ``KeyboardInterrupt`` raised by a signal handler in the middle of soundfile's open or
    close (or inside its read callbacks for in-memory audio) can leave libsndfile's handle
    half released, and its later close aborts the process ("double free"): an interrupted job
    then dies without cleaning up. Held signals are delivered, and the interrupt raised, as soon
    as the file is closed, a few milliseconds later.
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # Python runs signal handlers in the main thread only
        return
    held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)


def _run_pipe(command: str, name: str | None) -> tuple[np.ndarray, int]:
    """Run a pipe command and decode its stdout: ``(samples (frames, channels), rate)``."""
    shell = command.rstrip()[:-1].strip()
    result = subprocess.run(shell, shell=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if result.returncode != 0:
        lines = result.stderr.decode("utf-8", "replace").strip().splitlines()
        detail = f": {lines[-1]}" if lines else ""
        raise _fail(command, name, f"command failed with exit status {result.returncode}{detail}")
    if not result.stdout:
        raise _fail(command, name, "command wrote no audio")
    try:
        with _signals_deferred():
            data, rate = sf.read(io.BytesIO(result.stdout), dtype="float32", always_2d=True)
    except (sf.SoundFileError, RuntimeError) as e:
        raise _fail(command, name, f"unreadable audio from command: {_decode_error(e)}") from None
    return data, rate


def _segment_frames(
    start: float, end: float | None, num_frames: int, rate: int, where: str | Path, name: str | None
) -> tuple[int, int]:
    """Sample range ``[begin, stop)`` of a segment, checked against the file length."""
    if num_frames == 0:
        raise _fail(where, name, "empty audio (0 samples)")
    duration = num_frames / rate
    if start < 0 or (end is not None and end <= start):
        raise _fail(where, name, f"invalid segment start={start} end={end}")
    if end is not None and end > duration + SEGMENT_END_TOLERANCE:
        raise _fail(where, name, f"segment end {end:.3f} s is beyond the end of the file ({duration:.3f} s)")
    begin = int(round(start * rate))
    stop = num_frames if end is None else min(int(round(end * rate)), num_frames)
    if begin >= stop:
        raise _fail(where, name, f"segment {start:.3f}-{end} s is empty (file is {duration:.3f} s)")
    return begin, stop


def _to_mono(
    data: np.ndarray, rate: int, *, sample_rate: int | None, channel: int | None, where: str | Path, name: str | None
) -> np.ndarray:
    """Check finiteness, pick/mix channels, resample: ``(frames, channels)`` -> ``(samples,)``."""
    finite = np.isfinite(data)
    if not finite.all():
        first = int(np.argmin(finite.all(axis=1)))
        raise _fail(where, name, f"non-finite sample (NaN or inf) at {first / rate:.3f} s")
    if channel is None:
        wave = data[:, 0] if data.shape[1] == 1 else data.mean(axis=1)
    elif not -data.shape[1] <= channel < data.shape[1]:
        raise _fail(where, name, f"channel {channel} requested but the audio has {data.shape[1]}")
    else:
        wave = data[:, channel]
    if sample_rate is not None and sample_rate != rate:
        import soxr

        wave = soxr.resample(wave, rate, sample_rate, quality="HQ")
    return np.array(wave, dtype=np.float32, copy=True)


def _read_file(path: Path, start: float, end: float | None, name: str | None) -> tuple[np.ndarray, int]:
    check_audio_file(path, name)
    try:
        with _signals_deferred(), sf.SoundFile(path) as f:
            begin, stop = _segment_frames(start, end, f.frames, f.samplerate, path, name)
            f.seek(begin)
            data = f.read(stop - begin, dtype="float32", always_2d=True)
            rate = f.samplerate
    except (sf.SoundFileError, RuntimeError) as e:
        raise _fail(path, name, f"unreadable audio: {_decode_error(e)}") from None
    if len(data) < stop - begin:
        # header promises more samples than the file holds
        raise _fail(path, name, f"truncated audio: {len(data)} of {stop - begin} samples read")
    return data, rate


def _finish(
    data: np.ndarray,
    rate: int,
    *,
    sample_rate: int | None,
    channel: int | None,
    rule: AudioRule,
    where: str | Path,
    name: str | None,
) -> np.ndarray:
    """Apply ``rule`` to decoded audio ``(frames, channels)`` and make it mono at ``sample_rate``."""
    problem = rule.rate_problem(rate)
    if problem is None:
        wave = _to_mono(data, rate, sample_rate=sample_rate, channel=channel, where=where, name=name)
        problem = rule.length_problem(len(wave), sample_rate or rate)
    if problem is not None:
        raise _fail(where, name, problem)
    return wave


def _check_spec(rule: AudioRule, spec: str | Path, name: str | None) -> None:
    problem = rule.pipe_problem(spec)
    if problem is not None:
        raise _fail(spec, name, problem)


def load_audio(
    spec: str | Path,
    *,
    sample_rate: int | None = 16000,
    start: float = 0.0,
    end: float | None = None,
    name: str | None = None,
    channel: int | None = None,
    rule: AudioRule | None = None,
) -> np.ndarray:
    """Load one utterance as mono float32.

    Parameters
    ----------
    spec : audio file path, or a Kaldi pipe command ending in ``|``.
    sample_rate : output rate in Hz (resampled with soxr "HQ"); ``None`` keeps the file's.
    start, end : segment to cut, in seconds (``end=None``: to the end of the file).
    name : utterance id, named in error messages.
    channel : channel to take; ``None`` averages all channels.
    rule : what the audio must satisfy (native rate, length, no pipes); default: anything.

    Returns
    -------
    wave : (samples,) float32

    Raises
    ------
    DataError
        Missing, unreadable/corrupt, truncated or empty audio, a directory, NaN/inf
        samples, a segment beyond the end of the file, a failing pipe command, audio that
        breaks ``rule``; the message names the utterance and the file (or command).
    """
    rule = AudioRule() if rule is None else rule
    _check_spec(rule, spec, name)
    if is_pipe(spec):
        data, rate = _run_pipe(str(spec), name)
        begin, stop = _segment_frames(start, end, len(data), rate, str(spec), name)
        data = data[begin:stop]
    else:
        data, rate = _read_file(Path(spec), start, end, name)
    return _finish(data, rate, sample_rate=sample_rate, channel=channel, rule=rule, where=spec, name=name)


class SegmentReader:
    """Loads utterances one after another, running a pipe command only once for
    consecutive segments of the same recording (the last decoded recording is kept, so
    memory stays bounded by one recording)."""

    def __init__(
        self, *, sample_rate: int | None = 16000, channel: int | None = None, rule: AudioRule | None = None
    ) -> None:
        self.sample_rate = sample_rate
        self.channel = channel
        self.rule = AudioRule() if rule is None else rule
        self._last: tuple[str, np.ndarray, int] | None = None

    def load(self, spec: str | Path, *, start: float = 0.0, end: float | None = None, name: str | None = None) -> np.ndarray:
        """Like :func:`load_audio` with this reader's rate, channel and rule; (samples,) float32."""
        if not (is_pipe(spec) and (start > 0 or end is not None)):
            return load_audio(
                spec, sample_rate=self.sample_rate, start=start, end=end, name=name, channel=self.channel, rule=self.rule
            )
        command = str(spec)
        _check_spec(self.rule, command, name)
        if self._last is None or self._last[0] != command:
            self._last = None  # free the previous recording before decoding the next
            self._last = (command, *_run_pipe(command, name))
        _, data, rate = self._last
        begin, stop = _segment_frames(start, end, len(data), rate, command, name)
        return _finish(
            data[begin:stop], rate, sample_rate=self.sample_rate, channel=self.channel, rule=self.rule, where=command,
            name=name,
        )


def iter_audio(
    data_dir: str | Path | DataDir,
    *,
    sample_rate: int | None = 16000,
    channel: int | None = None,
    rule: AudioRule | None = None,
) -> Iterator[tuple[str, np.ndarray]]:
    """Yield ``(utt, wave)`` for every utterance of a data directory, C-sorted.

    With ``segments``, each utterance is cut from its recording; a pipe command is run
    once for consecutive segments of the same recording (see :class:`SegmentReader`).

    Yields
    ------
    utt : utterance id
    wave : (samples,) float32 at ``sample_rate``

    Raises
    ------
    DataError
        An utterance without a ``segments``/``wav.scp`` entry, or unusable audio (or audio
        that breaks ``rule``, see :class:`AudioRule`).
    """
    dd = data_dir if isinstance(data_dir, DataDir) else DataDir.load(data_dir)
    reader = SegmentReader(sample_rate=sample_rate, channel=channel, rule=rule)
    for utt in dd.utts:
        if dd.segments is not None:
            if utt not in dd.segments:
                raise DataError(f"utterance {utt} missing from segments", path=dd.path / "segments")
            reco, start, end = dd.segments[utt]
        else:
            reco, start, end = utt, 0.0, None
        if reco not in dd.wav_scp:
            raise DataError(f"recording {reco} (utterance {utt}) missing from wav.scp", path=dd.path / "wav.scp")
        yield utt, reader.load(dd.wav_scp[reco], start=start, end=end, name=utt)


def write_utt2dur(data_dir: str | Path, *, progress: bool = False) -> dict[str, float]:
    """Write ``utt2dur`` of a data directory (Kaldi ``utils/data/get_utt2dur.sh``).

    Durations come from ``segments`` when present, else from the audio file headers;
    pipe commands are run and decoded. Returns the durations (seconds) written.

    Raises
    ------
    DataError
        An utterance without a ``wav.scp`` entry, unreadable, truncated or empty audio.
    """
    from speechrep.utils.progress import progress_bar

    from speechrep.data.kaldi_dir import write_kaldi_map

    dd = DataDir.load(data_dir)
    durations: dict[str, float] = {}
    for utt in progress_bar(dd.utts, desc="utt2dur", unit="utt", enabled=progress):
        if dd.segments is not None and utt in dd.segments:
            _, start, end = dd.segments[utt]
            durations[utt] = end - start
            continue
        if utt not in dd.wav_scp:
            raise DataError(f"utterance {utt} missing from wav.scp", path=dd.path / "wav.scp")
        spec = dd.wav_scp[utt]
        if is_pipe(spec):
            data, rate = _run_pipe(spec, utt)
            frames = len(data)
        else:
            check_audio_file(spec, utt)
            try:
                info = sf.info(spec)
            except (sf.SoundFileError, RuntimeError) as e:
                raise _fail(spec, utt, f"unreadable audio: {_decode_error(e)}") from None
            frames, rate = info.frames, info.samplerate
        if frames == 0:
            raise _fail(spec, utt, "empty audio (0 samples)")
        durations[utt] = frames / rate
    write_kaldi_map(dd.path / "utt2dur", durations)
    return durations


def write_wav(path: str | Path, wave: np.ndarray, sample_rate: int, *, format: str = "WAV") -> None:
    """Write ``wave`` as a 16-bit PCM WAV (or FLAC) file, atomically.

    Parameters
    ----------
    path : output file.
    wave : (samples,) or (samples, channels) float in [-1, 1]; values outside are clipped.
    sample_rate : Hz.
    format : ``WAV`` or ``FLAC`` (soundfile's format names).

    Raises
    ------
    DataError
        Empty or non-finite wave, wrong number of dimensions, non-positive sample rate.
    """
    wave = np.asarray(wave)
    if wave.ndim not in (1, 2) or wave.shape[0] == 0:
        raise DataError(f"expected a non-empty (samples,) or (samples, channels) wave, got shape {wave.shape}", path=path)
    if not np.isfinite(wave).all():
        raise DataError("wave has NaN or inf samples", path=path)
    if int(sample_rate) <= 0:
        raise DataError(f"sample rate must be positive, got {sample_rate}", path=path)
    clipped = np.clip(wave.astype(np.float32, copy=False), -1.0, 1.0)
    # Encoded in memory first: soundfile seeks back to complete the header, which a pipe or
    # a device cannot do, and its I/O callbacks swallow the output's errors (a full disk)
    # into "Exception ignored" noise; a plain write reports them as an ordinary OSError.
    encoded = io.BytesIO()
    sf.write(encoded, clipped, int(sample_rate), format=format, subtype="PCM_16")
    with atomic_open(path, "wb") as f:
        f.write(encoded.getbuffer())
