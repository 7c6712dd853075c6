"""Shared fixtures: tiny, valid Kaldi data directories with generated audio.

``data_dir``       a data directory of 2 speakers x 2 utterances (0.5 s, 16 kHz wavs:
                   sines for ``spk1``, white noise for ``spk2``) with ``text`` and
                   ``utt2dur``.
``make_data_dir``  factory with the same layout and options (see :func:`write_data_dir`).
``synth_tiny_db``  the tiny synthetic corpus of the recipes (``egs/synth/local/data.sh
                   --size tiny``), generated once per test session.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf


def write_data_dir(
    root: Path,
    *,
    speakers: tuple[str, ...] = ("spk1", "spk2"),
    utts_per_speaker: int = 2,
    duration: float = 0.5,
    sample_rate: int = 16000,
    seed: int = 0,
) -> Path:
    """Write wavs under ``root/wav`` and a sorted, valid data directory ``root/data``.

    Odd-numbered speakers (1st, 3rd, ...) get sines of 200, 300, ... Hz at amplitude
    0.5, even-numbered ones white noise (std 0.1). Utterance ids are ``{spk}-utt{j}``.

    Returns
    -------
    path of the data directory.
    """
    rng = np.random.default_rng(seed)
    wav_dir = root / "wav"
    data = root / "data"
    wav_dir.mkdir(parents=True, exist_ok=True)
    data.mkdir(parents=True, exist_ok=True)
    n = int(round(duration * sample_rate))
    t = np.arange(n) / sample_rate
    entries = []
    for s, spk in enumerate(speakers):
        for j in range(1, utts_per_speaker + 1):
            utt = f"{spk}-utt{j}"
            if s % 2 == 0:
                wave = 0.5 * np.sin(2 * np.pi * (100 + 100 * j) * t)
            else:
                wave = np.clip(0.1 * rng.standard_normal(n), -1, 1)
            path = wav_dir / f"{utt}.wav"
            sf.write(path, wave.astype(np.float32), sample_rate, subtype="PCM_16")
            entries.append((utt, spk, path))
    entries.sort()
    (data / "wav.scp").write_text("".join(f"{u} {p}\n" for u, _, p in entries))
    (data / "utt2spk").write_text("".join(f"{u} {s}\n" for u, s, _ in entries))
    spk2utt = {s: sorted(u for u, s2, _ in entries if s2 == s) for s in sorted(speakers)}
    (data / "spk2utt").write_text("".join(f"{s} {' '.join(us)}\n" for s, us in spk2utt.items()))
    (data / "text").write_text("".join(f"{u} HELLO WORLD {i}\n" for i, (u, _, _) in enumerate(entries)))
    (data / "utt2dur").write_text("".join(f"{u} {n / sample_rate}\n" for u, _, _ in entries))
    return data


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A valid data directory: 2 speakers x 2 utterances of 0.5 s at 16 kHz."""
    return write_data_dir(tmp_path)


@pytest.fixture
def make_data_dir(tmp_path: Path):
    """Factory ``make_data_dir(name="corpus", **options) -> Path`` (see :func:`write_data_dir`)."""

    def make(name: str = "corpus", **options) -> Path:
        return write_data_dir(tmp_path / name, **options)

    return make


@pytest.fixture
def torch_one_thread():
    """Run a test with one torch intra-op thread (tiny models: more threads only add contention)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def synth_tiny_db(tmp_path_factory) -> Path:
    """The recipes' tiny synthetic corpus (``--size tiny``), generated once for every test that reads it."""
    db = tmp_path_factory.mktemp("synth") / "db"
    script = Path(__file__).resolve().parents[1] / "egs" / "synth" / "local" / "data.sh"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    r = subprocess.run(["bash", str(script), "--size", "tiny", "--nj", "2", str(db)], capture_output=True, text=True,
                       env=env)
    assert r.returncode == 0, r.stderr
    return db
