"""Speaker probe on a small CPC's context after training with and without the speaker adversary.

A toy where the speaker is an easy constant: each utterance is a sequence of phones (6
random prototype vectors, 4 frames each, a little noise) plus its speaker's constant
vector (4 speakers). The feature encoder's per-utterance input normalisation would
remove that constant outright, so it is switched off here: the speaker reaches the
encoder. A small CPC (``model.args`` below, ``speaker_adversary.layer``, ``negatives`` and
``utt_norm`` from the options) trains for ``--steps`` Adam steps per weight of the adversary (0: none),
from the same seed; then the speaker probe of ``speechrep eval features``
(:func:`speechrep.eval.probe.speaker_probe`, pooled utterance statistics, 16 utterances
per speaker) reads the representation of fresh utterances.

Printed per seed and weight: the probe's accuracy (chance 0.25), the adversary's own
accuracy on the last training batch, and CPC's step-1 accuracy.

Usage::

    .venv/bin/python bench/speaker_adversary.py                            # 60 steps, 3 seeds
    .venv/bin/python bench/speaker_adversary.py --negatives batch --steps 200 --weights 0,0.1,0.3
    .venv/bin/python bench/speaker_adversary.py --utt-norm --weights 0
"""

from __future__ import annotations

import argparse

import torch

from speechrep.eval.probe import speaker_probe
from speechrep.models.registry import build_model

SPEAKERS, DIM, FRAMES, PHONES = 4, 12, 40, 6


def _corpus(gen: torch.Generator, per_speaker: int, protos: torch.Tensor, offsets: torch.Tensor):
    """``(utterances, FRAMES, DIM)`` features and ``(utterances,)`` speakers."""
    feats, speakers = [], []
    for s in range(SPEAKERS):
        for _ in range(per_speaker):
            phones = torch.randint(0, PHONES, (FRAMES // 4 + 1,), generator=gen).repeat_interleave(4)[:FRAMES]
            feats.append(protos[phones] + offsets[s] + 0.1 * torch.randn(FRAMES, DIM, generator=gen))
            speakers.append(s)
    return torch.stack(feats), torch.tensor(speakers)


def run(seed: int, weight: float, *, steps: int, layer: str, negatives: str,
        utt_norm: bool = False) -> tuple[float, float, float]:
    """(probe accuracy, adversary accuracy, CPC step-1 accuracy) of one training run."""
    gen = torch.Generator().manual_seed(seed)
    protos, offsets = torch.randn(PHONES, DIM, generator=gen), torch.randn(SPEAKERS, DIM, generator=gen)
    x, speaker = _corpus(gen, 8, protos, offsets)
    probe_x, probe_speaker = _corpus(gen, 16, protos, offsets)
    torch.manual_seed(seed)
    args = {"dim": 16, "context": "gru", "context_dim": 16, "num_steps": 2, "num_negatives": 8, "negatives": negatives,
            "utt_norm": utt_norm, "speaker_adversary": {"weight": weight, "layer": layer, "hidden": 32}}
    model, _ = build_model("cpc", args, input_dim=DIM, num_speakers=SPEAKERS)
    model.encoder.input_norm = torch.nn.Identity()  # keep the speaker's constant
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    out: dict[str, torch.Tensor] = {}
    for _ in range(steps):
        idx = torch.randperm(len(x))[:8]
        out = model({"feats": x[idx], "speaker": speaker[idx]})
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        rep = model.encode({"feats": probe_x}, layer=layer).numpy()
    feats = {f"s{int(probe_speaker[i])}-u{i:03d}": rep[i] for i in range(len(rep))}
    probe = speaker_probe(feats, {u: u.split("-")[0] for u in feats}, seed=seed)
    assert probe is not None
    return probe["accuracy"], float(out.get("adv/acc", float("nan"))), float(out.get("acc/k1", float("nan")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--weights", default="0,0.3,1", help="adversary weights, comma-separated (0: none)")
    parser.add_argument("--layer", default="context", choices=["context", "encoder"])
    parser.add_argument("--negatives", default="speaker", choices=["speaker", "sequence", "batch"])
    parser.add_argument("--utt-norm", action="store_true", help="model.args.utt_norm: true")
    parser.add_argument("--threads", type=int, default=1)
    a = parser.parse_args()
    torch.set_num_threads(a.threads)
    print(f"steps {a.steps}, layer {a.layer}, negatives {a.negatives}, utt_norm {a.utt_norm}; "
          "per weight: probe / adversary / CPC k1 accuracy")
    for seed in range(a.seeds):
        cells = []
        for w in (float(v) for v in a.weights.split(",")):
            probe, adv, k1 = run(seed, w, steps=a.steps, layer=a.layer, negatives=a.negatives, utt_norm=a.utt_norm)
            cells.append(f"w={w:g}: {probe:.3f} / {adv:.3f} / {k1:.3f}")
        print(f"seed {seed}  " + "   ".join(cells), flush=True)


if __name__ == "__main__":
    main()
