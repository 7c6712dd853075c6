"""Deep InfoMax on images: scikit-learn's bundled 8x8 digits (1,797 images, no download).

    image x (B, 1, 8, 8) --conv--> local map l (B, C, 4, 4) --linear--> code y (B, G)
    [optional discrete bottleneck on y: vq | onehot | binary]
    global: code y_i  vs  whole map l_j           (separable critic)
    local:  code y_i  vs  each location l_j,s     (separable critic)
    reconstruction: code y_i vs pixels x_j        (decoder critic; with the positive-only
                                                   estimator this is an autoencoder)

With ``shift > 0`` the positive pair is two views of one image, each translated by up
to ``shift`` pixels: the code of one view is scored against the map of the other. Without
it, global DIM has a trivial optimum, because y is a linear function of l and the critic
only has to recompute y from l; on 1,257 training images the codes then memorise images
and probe worse than an untrained encoder.

The objective is the critic plus an estimator from :mod:`speechrep.objectives.mi`
(JSD, DV, InfoNCE, or ``positive`` for the autoencoder); critics are those of
:mod:`speechrep.models.critics` and bottlenecks those of
:mod:`speechrep.models.bottlenecks`. The codes are judged by a linear probe and k-NN on a
held-out split, against PCA at the same dimension, raw pixels and an untrained encoder.
"""

from __future__ import annotations

import io
from dataclasses import field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn as nn

from speechrep.config import dataclass, save_config
from speechrep.errors import ConfigError, DataError
from speechrep.models.bottlenecks import BottleneckConfig, build_bottleneck
from speechrep.models.critics import ReconstructionCritic, SeparableCritic
from speechrep.objectives.collapse import effective_rank
from speechrep.objectives.mi import Estimator, estimator_loss
from speechrep.sidetasks.common import fit, format_table, seed_everything, write_results

__all__ = [
    "IMAGE_SHAPE",
    "DigitsData",
    "load_images",
    "check_images",
    "split_indices",
    "ConvImageEncoder",
    "DigitsSystem",
    "DigitsConfig",
    "ImageDIM",
    "probe_scores",
    "random_shift",
    "run_digits",
]

IMAGE_SHAPE = (8, 8)
#: Pixel values of the bundled digits are integers 0..16.
_PIXEL_MAX = 16.0


@dataclass
class DigitsData:
    """Images scaled to [0, 1] and their labels.

    Attributes
    ----------
    images : (N, 8, 8) float32.
    labels : (N,) int64.
    """

    images: np.ndarray
    labels: np.ndarray


def check_images(images: Any, labels: Any, *, source: str = "<array>") -> DigitsData:
    """Validate raw images (N, 8, 8) or (N, 64) with values 0..16 and labels (N,).

    Raises
    ------
    DataError
        Wrong shape, non-finite or out-of-range pixels, labels that do not match.
    """
    images = np.asarray(images)
    labels = np.asarray(labels)
    if images.ndim == 2 and images.shape[1] == IMAGE_SHAPE[0] * IMAGE_SHAPE[1]:
        images = images.reshape(-1, *IMAGE_SHAPE)
    if images.ndim != 3 or images.shape[1:] != IMAGE_SHAPE:
        raise DataError(f"expected images of shape (N, 8, 8) or (N, 64), got {images.shape}", path=source, field="images")
    if images.shape[0] < 2:
        raise DataError(f"need at least 2 images, got {images.shape[0]}", path=source, field="images")
    if not np.issubdtype(images.dtype, np.number) or not np.isfinite(images).all():
        raise DataError("pixels must be finite numbers", path=source, field="images")
    if images.min() < 0 or images.max() > _PIXEL_MAX:
        raise DataError(f"pixels must lie in [0, {_PIXEL_MAX:g}], got [{images.min()}, {images.max()}]", path=source, field="images")
    if labels.shape != (images.shape[0],) or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"expected {images.shape[0]} integer labels, got shape {labels.shape} of {labels.dtype}", path=source, field="labels")
    return DigitsData((images / _PIXEL_MAX).astype(np.float32), labels.astype(np.int64))


def load_images(path: str | Path | None = None) -> DigitsData:
    """The bundled scikit-learn digits, or an ``.npz`` with arrays ``images`` and ``labels``."""
    if path is None:
        from sklearn.datasets import load_digits

        d = load_digits()
        return check_images(d.images, d.target, source="sklearn.datasets.load_digits")
    path = Path(path)
    if not path.is_file():
        raise DataError("image file not found", path=path)
    try:
        with np.load(path, allow_pickle=False) as z:
            if "images" not in z or "labels" not in z:
                raise DataError(f"needs arrays 'images' and 'labels', has {sorted(z.files)}", path=path)
            return check_images(z["images"], z["labels"], source=str(path))
    except (ValueError, OSError) as e:
        raise DataError(f"not a readable .npz file ({e})", path=path) from None


def split_indices(labels: np.ndarray, *, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified train/test split of ``range(N)``; returns sorted index arrays."""
    from sklearn.model_selection import train_test_split

    if not 0.0 < test_fraction < 1.0:
        raise ConfigError(f"must be in (0, 1), got {test_fraction}", field="test_fraction")
    idx = np.arange(len(labels))
    train, test = train_test_split(idx, test_size=test_fraction, random_state=seed, stratify=labels)
    return np.sort(train), np.sort(test)


class ConvImageEncoder(nn.Module):
    """Two 3x3 convolutions at 8x8, a stride-2 convolution to 4x4, a linear code head.

    Parameters
    ----------
    channels : C, channels of the local feature map.
    code_dim : G, size of the code.
    """

    def __init__(self, *, channels: int = 64, code_dim: int = 32):
        super().__init__()
        self.local = nn.Sequential(
            nn.Conv2d(1, channels, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, stride=2, padding=1),
            nn.ReLU(),
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(channels * 16, code_dim))
        self.channels, self.code_dim = channels, code_dim

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 8, 8) images -> local map (B, C, 4, 4) and code (B, G)."""
        local = self.local(images.unsqueeze(1))
        return local, self.head(local)


@dataclass
class DigitsSystem:
    """One trained system of the digits table.

    ``critic``: ``separable`` (Deep InfoMax) or ``reconstruction`` (a decoder; with
    ``estimator: positive`` the autoencoder), as in :mod:`speechrep.models.dim`. ``mode``: ``global`` scores the code
    against the whole local map, ``local`` against each of its 16 locations.
    ``bottleneck``: a discrete layer on the code (``kind``: vq | onehot | binary).
    """

    name: str = "dim_jsd_global"
    critic: Literal["separable", "reconstruction"] = "separable"
    estimator: Estimator = "jsd"
    mode: Literal["global", "local"] = "global"
    bottleneck: BottleneckConfig | None = None

    def __post_init__(self) -> None:
        if self.critic == "separable" and self.estimator == "positive":
            # without negatives the separable score grows without bound: no MI estimate
            raise ConfigError("the separable critic needs negatives: use jsd, dv or infonce", field=f"systems.{self.name}.estimator")
        if self.critic == "reconstruction" and self.mode == "local":
            raise ConfigError("the reconstruction critic decodes whole images: use mode global", field=f"systems.{self.name}.mode")
        if self.bottleneck is not None and self.bottleneck.estimator == "reinforce":
            raise ConfigError("REINFORCE needs a per-image cost; use st, gumbel or gumbel_st", field=f"systems.{self.name}.bottleneck.estimator")


def _default_systems() -> list[DigitsSystem]:
    dim = [DigitsSystem(name=f"dim_{e}_{m}", estimator=e, mode=m) for e in ("jsd", "dv", "infonce") for m in ("global", "local")]
    ae = DigitsSystem(name="autoencoder", critic="reconstruction", estimator="positive")
    vq = [
        DigitsSystem(name="dim_infonce_global_vq", estimator="infonce", bottleneck=BottleneckConfig(kind="vq", num_codes=64, code_dim=32)),
        DigitsSystem(name="dim_jsd_local_onehot", mode="local", bottleneck=BottleneckConfig(kind="onehot", num_codes=64)),
        DigitsSystem(name="dim_infonce_global_binary", estimator="infonce", bottleneck=BottleneckConfig(kind="binary", num_bits=16)),
    ]
    return [*dim, ae, *vq]


@dataclass
class DigitsConfig:
    """``egs/digits/dim/conf/*.yaml``."""

    exp_dir: str = "exp/digits_dim"
    images: str | None = None  #: .npz with images/labels; None: the bundled digits
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    test_fraction: float = 0.3
    code_dim: int = 32
    channels: int = 64
    critic_dim: int = 128
    steps: int = 1500
    batch_size: int = 128
    lr: float = 1e-3
    shift: int = 1  #: positive views are translated by up to this many pixels (0: same image)
    knn_k: int = 5
    systems: list[DigitsSystem] = field(default_factory=_default_systems)
    untrained_baseline: bool = True  #: also probe the encoder at initialisation
    plot: bool = True  #: PCA 2-D scatter of each system's test codes (seed 0)

    def __post_init__(self) -> None:
        if not 0 <= self.shift <= 3:
            raise ConfigError(f"must be in 0..3 pixels, got {self.shift}", field="shift")
        for name in ("code_dim", "channels", "critic_dim", "steps", "batch_size", "knn_k"):
            if getattr(self, name) < 1:
                raise ConfigError(f"must be a positive integer, got {getattr(self, name)}", field=name)
        if not self.seeds:
            raise ConfigError("need at least one seed", field="seeds")
        names = [s.name for s in self.systems]
        if len(set(names)) != len(names):
            raise ConfigError(f"system names must be unique, got {names}", field="systems")


def random_shift(images: torch.Tensor, shift: int, *, generator: torch.Generator) -> torch.Tensor:
    """Translate each image by a random (dy, dx) in ``-shift..shift`` pixels, zero filled.

    Parameters
    ----------
    images : (B, H, W).
    shift : largest translation in pixels (0 returns ``images``).

    Returns
    -------
    (B, H, W) translated images.
    """
    if shift == 0:
        return images
    B, H, W = images.shape
    padded = nn.functional.pad(images, (shift, shift, shift, shift))  # (B, H + 2s, W + 2s)
    dy, dx = torch.randint(0, 2 * shift + 1, (2, B, 1), generator=generator)
    rows = dy + torch.arange(H)  # (B, H)
    cols = dx + torch.arange(W)  # (B, W)
    return padded[torch.arange(B)[:, None, None], rows[:, :, None], cols[:, None, :]]


class ImageDIM(nn.Module):
    """Deep InfoMax (or autoencoder) on 8x8 images; see the module docstring.

    Parameters
    ----------
    system : which critic, estimator, mode and bottleneck.
    channels, code_dim, critic_dim : sizes (C, G, critic embedding).
    """

    def __init__(self, system: DigitsSystem, *, channels: int, code_dim: int, critic_dim: int):
        super().__init__()
        self.system = system
        self.encoder = ConvImageEncoder(channels=channels, code_dim=code_dim)
        self.bottleneck = build_bottleneck(system.bottleneck, code_dim) if system.bottleneck is not None else None
        out_dim = self.bottleneck.output_dim if self.bottleneck is not None else code_dim
        self.code_dim = out_dim
        self.critic: nn.Module
        if system.critic == "reconstruction":
            self.critic = ReconstructionCritic(out_dim, IMAGE_SHAPE[0] * IMAGE_SHAPE[1], hidden=critic_dim)
            self._targets = self._pixels
        elif system.mode == "global":
            self.critic = SeparableCritic(out_dim, channels * 16, proj_dim=critic_dim)
            self._targets = self._whole_map
        else:
            self.critic = SeparableCritic(out_dim, channels, proj_dim=critic_dim)
            self._targets = self._locations
        self.estimate = estimator_loss(system.estimator)

    def _code(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """Local map, code before and after the bottleneck, bottleneck logs."""
        local, prequant = self.encoder(images)
        code, logs = prequant, {}
        if self.bottleneck is not None:
            out = self.bottleneck(prequant.unsqueeze(1))  # one "frame" per image
            code = out.quantized.squeeze(1)
            logs = {"bottleneck/loss": out.loss, **{f"bottleneck/{k}": v for k, v in out.stats.items()}}
        return local, prequant, code, logs

    def encode(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, 8, 8) ``batch["images"]`` -> (B, G') codes (quantized when there is a bottleneck)."""
        return self._code(batch["images"])[2]

    def features(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Every representation a probe can read, for (B, 8, 8) ``batch["images"]``.

        Returns
        -------
        ``{"code": (B, G') the code (quantized when there is a bottleneck), "prequant":
        (B, G) the code before the bottleneck, "map": (B, C * 16) the local feature map}``.
        """
        local, prequant, code, _ = self._code(batch["images"])
        return {"code": code, "prequant": prequant, "map": local.flatten(1)}

    def _pixels(self, batch: dict[str, torch.Tensor], local: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Reconstruction targets: the pixels (B, 64) of each image; positives on the diagonal."""
        images = batch["images"]
        return images.reshape(images.shape[0], -1), torch.eye(images.shape[0], dtype=torch.bool, device=images.device)

    def _view_map(self, batch: dict[str, torch.Tensor], local: torch.Tensor) -> torch.Tensor:
        """The local map (B, C, 4, 4) the separable critic reads: of the second view when there is one."""
        return self.encoder(batch["views"])[0] if "views" in batch else local

    def _whole_map(self, batch: dict[str, torch.Tensor], local: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Global targets: each whole map (B, C * 16); positives on the diagonal."""
        flat = self._view_map(batch, local).flatten(1)
        return flat, torch.eye(flat.shape[0], dtype=torch.bool, device=flat.device)

    def _locations(self, batch: dict[str, torch.Tensor], local: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Local targets: every location (B * L, C); an image's code goes with its L locations."""
        locations = self._view_map(batch, local).flatten(2).transpose(1, 2)  # (B, L, C)
        B, L, C = locations.shape
        eye = torch.eye(B, dtype=torch.bool, device=locations.device)
        return locations.reshape(B * L, C), eye.repeat_interleave(L, dim=1)

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Loss of a batch of images ``batch["images"]`` (B, 8, 8).

        An optional ``batch["views"]`` (B, 8, 8) holds a second view of each image: the
        separable critics then score the code of ``images`` against the map of ``views``.
        """
        local, _, code, logs = self._code(batch["images"])
        targets, positive = self._targets(batch, local)
        loss = self.estimate(self.critic.scores(code, targets), positive)
        if self.bottleneck is not None:
            loss = loss + logs["bottleneck/loss"]
        with torch.no_grad():
            logs["collapse/eff_rank"] = effective_rank(code)
        return {"loss": loss, **logs}

    def on_step_end(self, step: int) -> None:
        if self.bottleneck is not None:
            self.bottleneck.on_step_end(step)


def probe_scores(
    train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray, *, knn_k: int = 5
) -> dict[str, float]:
    """Linear-probe (logistic regression) and k-NN test accuracy of fixed features.

    Parameters
    ----------
    train_x, test_x : (N, D) features (standardised here with the training statistics).
    train_y, test_y : (N,) labels.
    knn_k : neighbours of the k-NN classifier (Euclidean, on standardised features).

    Returns
    -------
    ``{"linear": accuracy, "knn": accuracy}``.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(train_x)
    a, b = scaler.transform(train_x), scaler.transform(test_x)
    linear = LogisticRegression(max_iter=2000).fit(a, train_y)
    knn = KNeighborsClassifier(n_neighbors=knn_k).fit(a, train_y)
    return {"linear": float(linear.score(b, test_y)), "knn": float(knn.score(b, test_y))}


@torch.no_grad()
def _features(model: ImageDIM, images: np.ndarray) -> dict[str, np.ndarray]:
    model.eval()
    return {k: v.float().numpy() for k, v in model.features({"images": torch.from_numpy(images)}).items()}


def _probe_all(model: ImageDIM, x_tr: np.ndarray, y_tr: np.ndarray, x_te: np.ndarray, y_te: np.ndarray, *, knn_k: int) -> dict[str, float]:
    """Probe the code (linear, k-NN), the pre-bottleneck code and the feature map (linear).

    With a bottleneck, ``distinct_codes`` counts the different code vectors of the test
    images (a collapsed bottleneck gives 1).
    """
    f_tr, f_te = _features(model, x_tr), _features(model, x_te)
    scores = probe_scores(f_tr["code"], y_tr, f_te["code"], y_te, knn_k=knn_k)
    if model.bottleneck is not None:
        scores["linear_prequant"] = probe_scores(f_tr["prequant"], y_tr, f_te["prequant"], y_te, knn_k=knn_k)["linear"]
        scores["distinct_codes"] = float(len(np.unique(f_te["code"], axis=0)))
    scores["linear_map"] = probe_scores(f_tr["map"], y_tr, f_te["map"], y_te, knn_k=knn_k)["linear"]
    return scores


def _save_scatter(path: Path, codes: np.ndarray, labels: np.ndarray, title: str) -> None:
    """PCA 2-D scatter of (N, D) codes coloured by label, written atomically as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.decomposition import PCA

    from speechrep.utils.io import atomic_open

    xy = PCA(n_components=2).fit_transform(codes - codes.mean(0))
    fig, ax = plt.subplots(figsize=(4.5, 4.0), dpi=100)
    sc = ax.scatter(xy[:, 0], xy[:, 1], c=labels, cmap="tab10", s=6, vmin=-0.5, vmax=9.5)
    fig.colorbar(sc, ax=ax, ticks=range(10))
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    plt.close(fig)
    with atomic_open(path, "wb") as f:
        f.write(buf.getvalue())


def run_digits(cfg: DigitsConfig, *, progress: bool = True) -> dict[str, Any]:
    """Train every system for every seed, probe the codes, write the results table.

    Writes ``exp_dir/results.json``, ``exp_dir/results.txt`` (the table) and, with
    ``cfg.plot``, ``exp_dir/plots/<system>.png``.

    Returns
    -------
    ``{"systems": {name: {"linear": [per seed], "knn": [...], "final_loss": [...]}},
    "chance": float, "table": str}``.
    """
    data = load_images(cfg.images)
    save_config(cfg, Path(cfg.exp_dir) / "config.yaml")
    exp = Path(cfg.exp_dir)
    results: dict[str, dict[str, list[float]]] = {}

    def add(name: str, scores: dict[str, float]) -> None:
        row = results.setdefault(name, {})
        for k, v in scores.items():
            row.setdefault(k, []).append(v)

    from sklearn.decomposition import PCA

    for seed in cfg.seeds:
        train, test = split_indices(data.labels, test_fraction=cfg.test_fraction, seed=seed)
        x_tr, x_te = data.images[train], data.images[test]
        y_tr, y_te = data.labels[train], data.labels[test]
        flat_tr, flat_te = x_tr.reshape(len(train), -1), x_te.reshape(len(test), -1)
        add("raw_pixels", probe_scores(flat_tr, y_tr, flat_te, y_te, knn_k=cfg.knn_k))
        pca = PCA(n_components=min(cfg.code_dim, flat_tr.shape[1]), random_state=seed).fit(flat_tr)
        add(f"pca_{pca.n_components_}", probe_scores(pca.transform(flat_tr), y_tr, pca.transform(flat_te), y_te, knn_k=cfg.knn_k))
        for system in cfg.systems:
            gen = seed_everything(seed)
            model = ImageDIM(system, channels=cfg.channels, code_dim=cfg.code_dim, critic_dim=cfg.critic_dim)
            if cfg.untrained_baseline and system is cfg.systems[0]:
                add("untrained_encoder", _probe_all(model, x_tr, y_tr, x_te, y_te, knn_k=cfg.knn_k))
            images = torch.from_numpy(x_tr)

            def next_batch(step: int, images: torch.Tensor = images, gen: torch.Generator = gen) -> dict[str, torch.Tensor]:
                idx = torch.randint(0, images.shape[0], (min(cfg.batch_size, images.shape[0]),), generator=gen)
                if cfg.shift == 0:
                    return {"images": images[idx]}
                return {"images": random_shift(images[idx], cfg.shift, generator=gen), "views": random_shift(images[idx], cfg.shift, generator=gen)}

            history = fit(model, next_batch, steps=cfg.steps, lr=cfg.lr, warmup_steps=min(100, cfg.steps // 10),
                          desc=f"{system.name} seed {seed}", progress=progress)
            scores = _probe_all(model, x_tr, y_tr, x_te, y_te, knn_k=cfg.knn_k)
            scores["first_loss"], scores["final_loss"] = history[0]["loss"], history[-1]["loss"]
            add(system.name, scores)
            if cfg.plot and seed == cfg.seeds[0]:
                _save_scatter(exp / "plots" / f"{system.name}.png", _features(model, x_te)["code"], y_te, f"{system.name}: test codes (PCA)")
    chance = float(np.bincount(data.labels).max() / len(data.labels))
    title = (f"digits: test accuracy of fixed features, {len(cfg.seeds)} seed(s), code dim {cfg.code_dim}, "
             f"views shifted by <= {cfg.shift} px, majority class {chance:.3f}\n"
             "linear/knn: the code (after the bottleneck: one-hot/bits/VQ vector); linear_prequant: the "
             f"code before the bottleneck; distinct: different test codes; linear_map: the {cfg.channels}x4x4 conv map")
    table = format_table(title, results, ["linear", "knn", "linear_prequant", "distinct_codes", "linear_map", "final_loss"])
    write_results(exp, "results", {"systems": results, "chance": chance, "config_seeds": cfg.seeds}, table)
    return {"systems": results, "chance": chance, "table": table}
