"""Feature extraction speed: speechrep vs kaldi-native-fbank, librosa, python_speech_features
and a bare batched ``scipy.fft.rfft`` over the same frames (the cost floor).

    .venv/bin/python bench/features.py                 # 600 s of audio, 1 and 2 threads
    .venv/bin/python bench/features.py --seconds 60 --runs 3 --no-rss   # quick look

Prints, for 80-bin log-fbank and 13-dim MFCC on 16 kHz audio, the median wall time (and
CPU time) of >= 5 runs after a warm-up, x-real-time, and speechrep's speed ratios against
the others; then the time of the first call in a fresh process with an empty and with a
warm numba cache, and the peak RSS of ``speechrep features make-fbank`` on 10 and 60
minutes of audio. Each thread count runs in its own process (BLAS/OpenMP thread counts are
fixed at import); speechrep and the floor use ``scipy.fft.set_workers(threads)``.
Timings on a shared machine are noisy: compare ratios within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SR = 16000
THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


def _audio(seconds: float, seed: int = 0) -> np.ndarray:
    """Speech-like test audio in Kaldi's 16-bit scale: harmonics with a moving pitch plus noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    f0 = 120.0 + 30.0 * np.sin(2 * np.pi * 0.5 * t)
    phase = 2 * np.pi * np.cumsum(f0) / SR
    y = sum(np.sin(k * phase) / k for k in range(1, 8)) * (0.5 + 0.5 * np.sin(2 * np.pi * 2.0 * t) ** 2)
    y = 3000.0 * y + 30.0 * rng.standard_normal(t.size)
    return y.astype(np.float32)


def _time(fn, runs: int) -> tuple[float, float]:
    fn()  # warm-up (compilation, caches, FFT plans)
    wall, cpu = [], []
    for _ in range(runs):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - w0)
        cpu.append(time.process_time() - c0)
    return statistics.median(wall), statistics.median(cpu)


def _methods(threads: int):
    import kaldi_native_fbank as knf
    import librosa
    import python_speech_features as psf
    import scipy.fft

    import speechrep.features as F
    from speechrep.features.framing import extract_frames
    from speechrep.features.window import feature_window

    def ours(func, **kw):
        def run(wave):
            with scipy.fft.set_workers(threads):
                return func(wave, dither=0.0, **kw)
        return run

    def knf_run(opts_cls, comp_cls, **kw):
        def run(wave):
            opts = opts_cls()
            opts.frame_opts.dither = 0.0
            for k, v in kw.items():
                setattr(opts.mel_opts if k == "num_bins" else opts, k, v)
            comp = comp_cls(opts)
            comp.accept_waveform(SR, wave)
            comp.input_finished()
            return np.array([comp.get_frame(i) for i in range(comp.num_frames_ready)], dtype=np.float32)
        return run

    stft = dict(sr=SR, n_fft=512, hop_length=160, win_length=400)
    frames = {}

    def floor(wave):
        # the same frames speechrep transforms, built once; only the FFT is timed
        key = wave.size
        if key not in frames:
            frames[key] = extract_frames(wave, frame_length=400, frame_shift=160, padded_length=512,
                                         window=feature_window("povey", 400))[0]
        return scipy.fft.rfft(frames[key], axis=1, workers=threads)

    return {
        "speechrep": (ours(F.fbank, num_mel_bins=80), ours(F.mfcc)),
        "kaldi-native-fbank": (knf_run(knf.FbankOptions, knf.OnlineFbank, num_bins=80), knf_run(knf.MfccOptions, knf.OnlineMfcc)),
        "librosa": (
            lambda w: np.log(librosa.feature.melspectrogram(y=w / 32768, n_mels=80, **stft) + 1e-10),
            lambda w: librosa.feature.mfcc(y=w / 32768, n_mfcc=13, n_mels=23, **stft),
        ),
        "python_speech_features": (
            lambda w: psf.logfbank(w / 32768, SR, nfilt=80, nfft=512),
            lambda w: psf.mfcc(w / 32768, SR, numcep=13, nfilt=23, nfft=512),
        ),
        "scipy.fft floor": (floor, floor),
    }


def worker(seconds: float, runs: int, threads: int) -> None:
    """Time every method in this process; print one JSON line."""
    wave = _audio(seconds)
    out = {}
    for name, (fb, mf) in _methods(threads).items():
        out[name] = {"fbank": _time(lambda: fb(wave), runs), "mfcc": _time(lambda: mf(wave), runs)}
        print(f"  [{threads} thread(s)] {name} done", file=sys.stderr, flush=True)
    print(json.dumps(out))


def _run_worker(seconds: float, runs: int, threads: int) -> dict:
    env = dict(os.environ, **{k: str(threads) for k in THREAD_ENV})
    r = subprocess.run([sys.executable, __file__, "--worker", "--seconds", str(seconds), "--runs", str(runs),
                        "--threads", str(threads)], env=env, stdout=subprocess.PIPE, text=True, check=True)
    return json.loads(r.stdout.strip().splitlines()[-1])


def _first_call(cache_dir: str) -> tuple[float, float, float]:
    """Seconds from interpreter start to the end of the first fbank call (wall, CPU), and
    the wall time of the whole process."""
    code = (
        "import time; t0, c0 = time.perf_counter(), time.process_time()\n"
        "import numpy as np, speechrep.features as F\n"
        "F.fbank(np.ones(16000, np.float32), dither=0.0, num_mel_bins=80)\n"
        "print(time.perf_counter() - t0, time.process_time() - c0)\n"
    )
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True, check=True, cwd=ROOT)
    wall, cpu = map(float, r.stdout.split())
    return wall, cpu, time.perf_counter() - t0


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, stack = [], [pid]
    while stack:
        p = stack.pop()
        out.append(p)
        stack.extend(children.get(p, []))
    return out


def _peak_rss_mb(cmd: list[str]) -> float:
    """Largest peak RSS (VmHWM) of any process of the command's tree, polled every 50 ms."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    peak = 0
    done = threading.Event()

    def poll() -> None:
        nonlocal peak
        while not done.is_set():
            for p in _descendants(proc.pid):
                try:
                    with open(f"/proc/{p}/status") as f:
                        for line in f:
                            if line.startswith("VmHWM:"):
                                peak = max(peak, int(line.split()[1]))
                except OSError:
                    pass
            time.sleep(0.05)

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    _, err = proc.communicate()
    done.set()
    thread.join()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {err.strip()}")
    return peak / 1024


def _rss(minutes: float, tmp: Path) -> float:
    import soundfile as sf

    data = tmp / f"data_{minutes:g}min"
    (data / "wav").mkdir(parents=True)
    utt_seconds = 20.0
    chunk = _audio(utt_seconds, seed=1) / 32768
    wav_scp, utt2spk = [], []
    for i in range(int(minutes * 60 / utt_seconds)):
        utt = f"spk{i % 10:02d}-utt{i:05d}"
        path = data / "wav" / f"{utt}.wav"
        sf.write(path, chunk, SR, subtype="PCM_16")
        wav_scp.append(f"{utt} {path}\n")
        utt2spk.append(f"{utt} spk{i % 10:02d}\n")
    (data / "wav.scp").write_text("".join(sorted(wav_scp)))
    (data / "utt2spk").write_text("".join(sorted(utt2spk)))
    cmd = [sys.executable, "-m", "speechrep", "features", "make-fbank", str(data), str(tmp / f"fbank_{minutes:g}"),
           "--nj", "1", "--set", "num_mel_bins=80"]
    return _peak_rss_mb(cmd)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=600.0, help="audio length (default 600 s)")
    parser.add_argument("--runs", type=int, default=5, help="timed runs per method (median; default 5)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts (default 1 2)")
    parser.add_argument("--rss-minutes", type=float, nargs="+", default=[10.0, 60.0], help="corpus sizes for the RSS test")
    parser.add_argument("--no-rss", action="store_true", help="skip the make-fbank memory test")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.seconds, args.runs, args.threads[0])
        return

    print(f"# {args.seconds:g} s of 16 kHz audio, median of {args.runs} runs after a warm-up; "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start (shared machines are noisy)")
    for threads in args.threads:
        res = _run_worker(args.seconds, args.runs, threads)
        print(f"\n## {threads} thread(s)")
        print(f"{'method':24s} {'feature':6s} {'wall s':>8s} {'cpu s':>8s} {'x real time':>12s}")
        for name, feats in res.items():
            for feat, (wall, cpu) in feats.items():
                print(f"{name:24s} {feat:6s} {wall:8.3f} {cpu:8.3f} {args.seconds / wall:12.0f}")
        ours = res["speechrep"]
        for feat in ("fbank", "mfcc"):
            for i, clock in enumerate(("wall", "CPU")):
                ratios = ", ".join(f"{res[n][feat][i] / ours[feat][i]:.2f}x vs {n}" for n in res if n != "speechrep")
                print(f"speechrep {feat} speed-up ({clock} time): {ratios}")
        print("(vs the floor, below 1 means speechrep takes longer than the FFT alone; on a loaded machine "
              "CPU-time ratios of 1-thread runs are the steadier figure)")
    print("\n## first call in a fresh process (import + 1 s fbank)")
    with tempfile.TemporaryDirectory() as cache:
        for label in ("empty numba cache", "warm numba cache"):
            wall, cpu, outer = _first_call(cache)
            print(f"{label:18s}: {wall:6.2f} s wall ({cpu:.2f} s CPU) in-process, {outer:6.2f} s whole process")
    if not args.no_rss:
        print("\n## peak RSS of `speechrep features make-fbank --nj 1` (largest process)")
        with tempfile.TemporaryDirectory() as tmp:
            for minutes in args.rss_minutes:
                print(f"{minutes:5g} min of audio: {_rss(minutes, Path(tmp)):7.1f} MB", flush=True)


if __name__ == "__main__":
    main()
