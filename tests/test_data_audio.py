import numpy as np
import pytest
import soundfile as sf

from speechrep.data.audio import (
    AudioRule,
    SegmentReader,
    check_audio_file,
    iter_audio,
    load_audio,
    write_utt2dur,
    write_wav,
)
from speechrep.data.kaldi_dir import DataDir, read_kaldi_map, write_kaldi_map
from speechrep.errors import DataError

SR = 16000


def _sine(freq=440.0, seconds=0.25, sr=SR, amp=0.5):
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _peak_freq(wave, sr):
    spec = np.abs(np.fft.rfft(wave * np.hanning(len(wave))))
    return np.argmax(spec) * sr / len(wave)


@pytest.mark.parametrize(
    "fmt, subtype, tol",
    [
        ("WAV", "PCM_U8", 1 / 64),  # 8-bit wavs are unsigned
        ("WAV", "PCM_16", 1e-4),
        ("WAV", "PCM_24", 1e-6),
        ("WAV", "FLOAT", 0.0),
        ("FLAC", "PCM_16", 1e-4),
    ],
)
def test_load_formats(tmp_path, fmt, subtype, tol):
    x = _sine()
    path = tmp_path / f"a.{fmt.lower()}"
    sf.write(path, x, SR, format=fmt, subtype=subtype)
    y = load_audio(path, sample_rate=SR)
    assert y.dtype == np.float32 and y.shape == x.shape
    np.testing.assert_allclose(y, x, atol=tol)


def test_stereo_mixdown_average_and_channel_pick(tmp_path):
    left, right = _sine(300), _sine(500, amp=0.25)
    sf.write(tmp_path / "s.wav", np.stack([left, right], axis=1), SR, subtype="FLOAT")
    np.testing.assert_allclose(load_audio(tmp_path / "s.wav"), (left + right) / 2, atol=1e-7)
    np.testing.assert_array_equal(load_audio(tmp_path / "s.wav", channel=1), right)
    with pytest.raises(DataError, match="channel 2 requested but the audio has 2"):
        load_audio(tmp_path / "s.wav", channel=2)


@pytest.mark.parametrize("native", [8000, 22050, 44100])
def test_resampled_sine_keeps_frequency(tmp_path, native):
    sf.write(tmp_path / "x.wav", _sine(1000.0, seconds=0.5, sr=native), native, subtype="PCM_16")
    y = load_audio(tmp_path / "x.wav", sample_rate=SR)
    assert len(y) == SR // 2
    assert abs(_peak_freq(y, SR) - 1000.0) <= 2.0  # FFT bin = 2 Hz
    assert load_audio(tmp_path / "x.wav", sample_rate=None).shape == (native // 2,)


def test_segment_cut(tmp_path):
    x = np.linspace(-0.5, 0.5, SR, dtype=np.float32)
    sf.write(tmp_path / "r.wav", x, SR, subtype="FLOAT")
    y = load_audio(tmp_path / "r.wav", start=0.25, end=0.5)
    np.testing.assert_array_equal(y, x[4000:8000])
    # end within tolerance of the file's end is clipped; further is an error
    assert len(load_audio(tmp_path / "r.wav", start=0.5, end=1.01)) == 8000
    with pytest.raises(DataError, match=r"utterance u1: segment end 1.500 s is beyond the end of the file \(1.000 s\)"):
        load_audio(tmp_path / "r.wav", start=0.5, end=1.5, name="u1")


def test_errors_name_utterance_and_file(tmp_path):
    missing = tmp_path / "missing.wav"
    with pytest.raises(DataError, match=f"{missing}: utterance u1: audio file not found"):
        load_audio(missing, name="u1")

    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x10\x00\x00\x00WAVEnot really a wav")
    with pytest.raises(DataError, match=f"{corrupt}: utterance u2: unreadable audio"):
        load_audio(corrupt, name="u2")

    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, np.float32), SR)
    with pytest.raises(DataError, match=f"{empty}: utterance u3: empty audio"):
        load_audio(empty, name="u3")

    zero_bytes = tmp_path / "zero.wav"
    zero_bytes.write_bytes(b"")
    with pytest.raises(DataError, match="utterance u4: unreadable audio"):
        load_audio(zero_bytes, name="u4")

    nan = tmp_path / "nan.wav"
    x = _sine()
    x[1600] = np.nan
    sf.write(nan, x, SR, subtype="FLOAT")
    with pytest.raises(DataError, match=rf"{nan}: utterance u5: non-finite sample \(NaN or inf\) at 0.100 s"):
        load_audio(nan, name="u5")
    x[1600] = np.inf
    sf.write(nan, x, SR, subtype="FLOAT")
    with pytest.raises(DataError, match="non-finite"):
        load_audio(nan)


def test_truncated_flac(tmp_path):
    path = tmp_path / "t.flac"
    sf.write(path, np.random.default_rng(0).uniform(-0.5, 0.5, SR).astype(np.float32), SR, format="FLAC")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="utterance t: (unreadable|truncated) audio"):
        load_audio(path, name="t")


def test_pipe_command(tmp_path):
    x = _sine(seconds=0.5)
    sf.write(tmp_path / "a.wav", x, SR, subtype="PCM_16")
    y = load_audio(f"cat {tmp_path}/a.wav |", name="u")
    np.testing.assert_allclose(y, x, atol=1e-4)
    y = load_audio(f"sox {tmp_path}/a.wav -t wav - |", start=0.1, end=0.2)
    np.testing.assert_allclose(y, x[1600:3200], atol=1e-4)


def test_pipe_command_failure_names_command(tmp_path):
    cmd = f"cat {tmp_path}/nope.wav |"
    with pytest.raises(DataError, match=rf"cat {tmp_path}/nope.wav \|: utterance u: command failed with exit status 1: .*No such file"):
        load_audio(cmd, name="u")
    with pytest.raises(DataError, match="command wrote no audio"):
        load_audio("true |")
    with pytest.raises(DataError, match="unreadable audio from command"):
        load_audio("echo hello |")


def test_iter_audio_sorted_and_resampled(data_dir):
    items = list(iter_audio(data_dir, sample_rate=8000))
    assert [u for u, _ in items] == ["spk1-utt1", "spk1-utt2", "spk2-utt1", "spk2-utt2"]
    assert all(w.shape == (4000,) and w.dtype == np.float32 for _, w in items)
    assert abs(_peak_freq(items[0][1], 8000) - 200) <= 2


def test_iter_audio_segments_and_pipe_run_once(tmp_path):
    x = np.linspace(-0.5, 0.5, SR, dtype=np.float32)
    sf.write(tmp_path / "r.wav", x, SR, subtype="FLOAT")
    counter = tmp_path / "count"
    d = tmp_path / "d"
    write_kaldi_map(d / "wav.scp", {"rec": f"echo run >> {counter}; cat {tmp_path}/r.wav |"})
    write_kaldi_map(d / "utt2spk", {"s-1": "s", "s-2": "s"})
    write_kaldi_map(d / "segments", {"s-1": ("rec", 0.0, 0.5), "s-2": ("rec", 0.5, 1.0)})
    out = dict(iter_audio(DataDir.load(d), sample_rate=None))
    np.testing.assert_array_equal(out["s-1"], x[:8000])
    np.testing.assert_array_equal(out["s-2"], x[8000:])
    assert counter.read_text() == "run\n"


def test_iter_audio_missing_recording(tmp_path, data_dir):
    wav = read_kaldi_map(data_dir / "wav.scp")
    del wav["spk1-utt2"]
    write_kaldi_map(data_dir / "wav.scp", wav)
    with pytest.raises(DataError, match="recording spk1-utt2 .* missing from wav.scp"):
        list(iter_audio(data_dir))


def test_write_wav_round_trip_and_clip(tmp_path):
    x = _sine()
    x[0] = 1.7
    write_wav(tmp_path / "o" / "x.wav", x, SR)
    info = sf.info(tmp_path / "o" / "x.wav")
    assert info.subtype == "PCM_16" and info.samplerate == SR
    y = load_audio(tmp_path / "o" / "x.wav", sample_rate=None)
    assert y[0] == pytest.approx(1.0, abs=1e-4)
    np.testing.assert_allclose(y[1:], x[1:], atol=1e-4)


@pytest.mark.parametrize(
    "wave, sr, message",
    [
        (np.zeros(0), SR, "non-empty"),
        (np.zeros((2, 2, 2)), SR, "non-empty"),
        (np.array([0.0, np.nan]), SR, "NaN"),
        (np.zeros(10), 0, "sample rate"),
    ],
)
def test_write_wav_bad_input(tmp_path, wave, sr, message):
    with pytest.raises(DataError, match=message):
        write_wav(tmp_path / "x.wav", wave, sr)
    assert list(tmp_path.iterdir()) == []


def test_write_utt2dur(data_dir, tmp_path):
    (data_dir / "utt2dur").unlink()
    wav = read_kaldi_map(data_dir / "wav.scp")
    wav["spk2-utt2"] = f"sox {wav['spk2-utt2']} -r 8000 -t wav - trim 0 0.25 |"
    write_kaldi_map(data_dir / "wav.scp", wav)
    durations = write_utt2dur(data_dir)
    assert durations == {"spk1-utt1": 0.5, "spk1-utt2": 0.5, "spk2-utt1": 0.5, "spk2-utt2": 0.25}
    assert DataDir.load(data_dir).utt2dur == durations
    write_kaldi_map(data_dir / "segments", {u: ("r", 0.1, 0.35) for u in durations})
    assert list(write_utt2dur(data_dir).values()) == [pytest.approx(0.25)] * 4
    (data_dir / "segments").unlink()
    wav["spk1-utt2"] = str(tmp_path / "gone.wav")
    write_kaldi_map(data_dir / "wav.scp", wav)
    with pytest.raises(DataError, match="gone.wav: utterance spk1-utt2: audio file not found"):
        write_utt2dur(data_dir)


def _truncated_wav(path, samples=8000, keep=3000):
    sf.write(path, _sine(seconds=samples / SR), SR, subtype="PCM_16")
    data = path.read_bytes()
    path.write_bytes(data[: 44 + 2 * keep])
    return path


def test_truncated_wav_is_refused_by_every_reader(tmp_path, data_dir):
    cut = _truncated_wav(tmp_path / "cut.wav")
    assert sf.info(cut).frames == 3000  # libsndfile alone would read what is there
    message = rf"{cut}: utterance u: truncated WAV: the header promises 8000 samples, the file holds 3000"
    with pytest.raises(DataError, match=message):
        load_audio(cut, name="u")
    with pytest.raises(DataError, match="truncated WAV"):
        check_audio_file(cut)
    wav = read_kaldi_map(data_dir / "wav.scp")
    wav["spk2-utt1"] = str(cut)
    write_kaldi_map(data_dir / "wav.scp", wav)
    with pytest.raises(DataError, match="utterance spk2-utt1: truncated WAV"):
        list(iter_audio(data_dir))
    with pytest.raises(DataError, match="utterance spk2-utt1: truncated WAV"):
        write_utt2dur(data_dir)


def test_wav_of_unknown_length_is_read_to_the_end(tmp_path):
    # a stream saved to a file: data chunk size 0xFFFFFFFF (ffmpeg, sox to a pipe)
    path = tmp_path / "stream.wav"
    sf.write(path, _sine(), SR, subtype="PCM_16")
    data = bytearray(path.read_bytes())
    data[40:44] = b"\xff\xff\xff\xff"
    path.write_bytes(bytes(data))
    check_audio_file(path)
    assert load_audio(path).shape == _sine().shape


def test_directory_given_as_audio_says_so(tmp_path):
    (tmp_path / "a.wav").mkdir()
    with pytest.raises(DataError, match=f"{tmp_path}/a.wav: utterance u: is a directory, not an audio file"):
        load_audio(tmp_path / "a.wav", name="u")


def test_audio_rule_applies_to_files_and_pipes_alike(tmp_path):
    sf.write(tmp_path / "cd.wav", _sine(sr=44100), 44100, subtype="PCM_16")
    rule = AudioRule(sample_rate=SR)
    for spec in (tmp_path / "cd.wav", f"cat {tmp_path}/cd.wav |"):
        with pytest.raises(DataError, match="sample rate 44100 Hz differs from sample_frequency=16000 .*allow_downsample"):
            load_audio(spec, sample_rate=SR, rule=rule)
        assert load_audio(spec, sample_rate=SR, rule=AudioRule(sample_rate=SR, allow_downsample=True)).shape == (4000,)
    # length counted at the rule's rate: 0.25 s at 44.1 kHz is 4000 samples at 16 kHz
    with pytest.raises(DataError, match=r"4000 samples are too short for one frame \(at least 4001 at 16000 Hz\)"):
        load_audio(tmp_path / "cd.wav", sample_rate=None,
                   rule=AudioRule(sample_rate=SR, allow_downsample=True, min_samples=4001))


def test_audio_rule_refuses_pipes_without_running_them(tmp_path):
    sf.write(tmp_path / "a.wav", _sine(), SR, subtype="PCM_16")
    spec = f"touch {tmp_path}/ran; cat {tmp_path}/a.wav |"
    with pytest.raises(DataError, match=r"pipe command refused \(--no-pipes\)"):
        load_audio(spec, rule=AudioRule(allow_pipes=False))
    with pytest.raises(DataError, match=r"pipe command refused"):
        SegmentReader(rule=AudioRule(allow_pipes=False)).load(spec, start=0.0, end=0.1)
    assert not (tmp_path / "ran").exists()
