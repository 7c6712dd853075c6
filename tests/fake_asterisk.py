"""A stand-in for Debian's Asterisk English prompt pack (asterisk-core-sounds-en-g722): a few
prompts spoken by flite's kal voice, encoded to G.722 like the real ones, with transcripts in
the pack's format. Tests and the demo's real-voice stages read it through ASTERISK_SOUNDS and
ASTERISK_TRANSCRIPTS; it needs flite and the PyPI package g722 (``available()``)."""

from __future__ import annotations

import gzip
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

#: prompt name -> transcript (names as the real pack's: sub-directories, dashes)
PROMPTS = {
    "vm-goodbye": "Goodbye.",
    "vm-intro": "Please leave your message after the tone. When done, hang up, or press the pound key.",
    "agent-loginok": "Agent logged in. Thank you for calling, please wait.",
    "conf-onlyperson": "You are currently the only person in this conference.",
    "digits/7": "Seven. Eight. Nine. Ten.",
    "queue-thankyou": "Thank you for your patience, your call will be answered shortly.",
    "vm-options": "Press one to record your unavailable message, press two to record your busy message.",
    "auth-incorrect": "Password incorrect, please enter your password followed by the pound key.",
    "followme/options": "Press one to accept this call, press two to reject it.",
}
#: a tone (bracketed transcript: left out) and a silent prompt (left out by level)
TONE, SILENCE = "beep", "silence/2"
DIRECTORY = "en_US_f_Allison"


def available() -> bool:
    try:
        import G722  # noqa: F401
    except ImportError:
        return False
    return shutil.which("flite") is not None


def _encode(wave: np.ndarray) -> bytes:
    from G722 import G722

    pcm = np.clip(np.round(wave * 32767), -32768, 32767).astype(np.int16)
    return bytes(G722(16000, 64000, use_numpy=False).encode([int(v) for v in pcm]))


def _speak(text: str) -> np.ndarray:
    import soundfile as sf
    from scipy.signal import resample_poly

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "x.wav"
        subprocess.run(["flite", "-voice", "kal", "-t", text, "-o", str(out)], check=True, capture_output=True)
        wave, rate = sf.read(out, dtype="float32")
    return resample_poly(wave, 16000, rate).astype(np.float32) if rate != 16000 else wave


def make_pack(root: Path, prompts: dict[str, str] = PROMPTS) -> tuple[Path, Path]:
    """Write the pack under ``root``: (sounds dir, transcripts file)."""
    sounds = root / "sounds"
    rng = np.random.default_rng(0)
    waves = {name: _speak(text) for name, text in prompts.items()}
    waves[TONE] = 0.3 * np.sin(2 * np.pi * 440 * np.arange(16000) / 16000).astype(np.float32)
    waves[SILENCE] = 1e-4 * rng.standard_normal(32000).astype(np.float32)
    for name, wave in waves.items():
        path = sounds / DIRECTORY / f"{name}.g722"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(_encode(wave))
    lines = {**prompts, TONE: "[a beep]", SILENCE: "2 seconds of silence"}
    transcripts = root / "core-sounds-en.txt.gz"
    with gzip.open(transcripts, "wt", encoding="utf-8") as f:
        f.write("; transcripts of the fake pack\n" + "".join(f"{k}: {v}\n" for k, v in lines.items()))
    return sounds, transcripts
