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
* ``wav.scp`` entries ending in ``|`` are shell commands (Kaldi's convention) whose
  standard output is read as an audio file; a non-zero exit is an error naming the command.
  Relative paths are relative to the working directory, as in Kaldi.
"""

from __future__ import annotations

import io
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf

from speechrep.data.kaldi_dir import DataDir
from speechrep.errors import DataError
from speechrep.utils.io import atomic_open

__all__ = [
    "SEGMENT_END_TOLERANCE",
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
    if not path.is_file():
        raise _fail(path, name, "audio file not found")
    try:
        with sf.SoundFile(path) as f:
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


def load_audio(
    spec: str | Path,
    *,
    sample_rate: int | None = 16000,
    start: float = 0.0,
    end: float | None = None,
    name: str | None = None,
    channel: int | None = None,
) -> np.ndarray:
    """Load one utterance as mono float32.

    Parameters
    ----------
    spec : audio file path, or a Kaldi pipe command ending in ``|``.
    sample_rate : output rate in Hz (resampled with soxr "HQ"); ``None`` keeps the file's.
    start, end : segment to cut, in seconds (``end=None``: to the end of the file).
    name : utterance id, named in error messages.
    channel : channel to take; ``None`` averages all channels.

    Returns
    -------
    wave : (samples,) float32

    Raises
    ------
    DataError
        Missing, unreadable/corrupt, truncated or empty audio, NaN/inf samples, a segment
        beyond the end of the file, a failing pipe command; the message names the
        utterance and the file (or command).
    """
    if is_pipe(spec):
        data, rate = _run_pipe(str(spec), name)
        begin, stop = _segment_frames(start, end, len(data), rate, str(spec), name)
        data = data[begin:stop]
    else:
        data, rate = _read_file(Path(spec), start, end, name)
    return _to_mono(data, rate, sample_rate=sample_rate, channel=channel, where=spec, name=name)


class SegmentReader:
    """Loads utterances one after another, running a pipe command only once for
    consecutive segments of the same recording (the last decoded recording is kept, so
    memory stays bounded by one recording)."""

    def __init__(self, *, sample_rate: int | None = 16000, channel: int | None = None) -> None:
        self.sample_rate = sample_rate
        self.channel = channel
        self._last: tuple[str, np.ndarray, int] | None = None

    def load(self, spec: str | Path, *, start: float = 0.0, end: float | None = None, name: str | None = None) -> np.ndarray:
        """Like :func:`load_audio` with this reader's rate and channel; (samples,) float32."""
        if not (is_pipe(spec) and (start > 0 or end is not None)):
            return load_audio(spec, sample_rate=self.sample_rate, start=start, end=end, name=name, channel=self.channel)
        command = str(spec)
        if self._last is None or self._last[0] != command:
            self._last = None  # free the previous recording before decoding the next
            self._last = (command, *_run_pipe(command, name))
        _, data, rate = self._last
        begin, stop = _segment_frames(start, end, len(data), rate, command, name)
        return _to_mono(data[begin:stop], rate, sample_rate=self.sample_rate, channel=self.channel, where=command, name=name)


def iter_audio(
    data_dir: str | Path | DataDir, *, sample_rate: int | None = 16000, channel: int | None = None
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
        An utterance without a ``segments``/``wav.scp`` entry, or unusable audio.
    """
    dd = data_dir if isinstance(data_dir, DataDir) else DataDir.load(data_dir)
    reader = SegmentReader(sample_rate=sample_rate, channel=channel)
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
        An utterance without a ``wav.scp`` entry, unreadable or empty audio.
    """
    from tqdm import tqdm

    from speechrep.data.kaldi_dir import write_kaldi_map

    dd = DataDir.load(data_dir)
    durations: dict[str, float] = {}
    for utt in tqdm(dd.utts, desc="utt2dur", unit="utt", disable=not progress):
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
            if not Path(spec).is_file():
                raise _fail(spec, utt, "audio file not found")
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
