"""Frozen loss networks that a model's loss needs: their description, their pre-training, and strict loading.

A model with such a network (EDCSTFN, GAN-STFM, RSFN) declares it as a `PretrainedPiece`; when the config gives no
checkpoint, the training core calls `train_piece` on the training split's fine images, caches the encoder weights
and hands them to `model.load_pretrained`. The model keeps the network in a `FrozenEncoder`, which refuses to run
until weights were loaded: both official feature losses run silently on a random network when loading goes wrong
(EDCSTFN's loader drops keys whose `encoder.` prefix does not match), and GAN-STFM has no pixel term to rescue it.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from omegaconf import DictConfig, OmegaConf
from tqdm.auto import tqdm

from stf_bench.durations import format_duration
from stf_bench.errors import ConfigError, DataError

log = logging.getLogger(__name__)

RECIPE_KEYS = (
    "patch",  # square patch side cut from each image (px)
    "stride",  # grid stride; a last, edge-flush patch is always added
    "batch_size",
    "max_epochs",
    "lr",  # Adam
    "weight_decay",  # Adam
    "plateau_factor",  # ReduceLROnPlateau on the validation loss
    "plateau_patience",
    "val_fraction",  # random share of the patches held out for validation (and checkpoint choice)
)


@dataclass
class PretrainedPiece:
    """A frozen network a loss needs, and how to train it when `ckpt` is None.

    build_autoencoder: returns the full autoencoder, with an `.encoder` submodule whose state dict is what
    `model.load_pretrained(name, ...)` accepts, and `forward(x) -> reconstruction`; an optional `size_multiple`
    attribute is the factor the patch side must be a multiple of.
    loss: (reconstruction, x) -> scalar training loss.
    recipe: the `RECIPE_KEYS` (from the model's YAML, so the cache key covers them).
    ckpt: path to saved encoder weights, or None to train them.
    """

    name: str
    build_autoencoder: Callable[[], nn.Module]
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    recipe: dict
    ckpt: str | None = None


def piece_block(block: Mapping, keys: tuple[str, ...], what: str) -> dict:
    """A piece's YAML block (e.g. `net.feature_encoder`) as a plain dict holding exactly `keys`."""
    plain = OmegaConf.to_container(block, resolve=True) if isinstance(block, DictConfig) else dict(block)
    missing = [k for k in keys if k not in plain]
    unknown = [k for k in plain if k not in keys]
    if missing or unknown:
        raise ConfigError(f"{what}: config block has missing keys {missing} and unknown keys {unknown}; "
                          f"it needs exactly {list(keys)}")
    return plain


def load_strict(module: nn.Module, state_dict: Mapping[str, torch.Tensor], what: str) -> None:
    """Load every key or fail, naming the missing and unexpected keys and any wrong shapes."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    shapes = [
        f"{k}: {tuple(state_dict[k].shape)} != {tuple(own[k].shape)}"
        for k in sorted(set(own) & set(state_dict))
        if tuple(state_dict[k].shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or shapes:
        hint = ""
        for prefix in sorted({k.split(".", 1)[0] + "." for k in unexpected if "." in k}):
            if missing and set(missing) <= {k[len(prefix):] for k in unexpected if k.startswith(prefix)}:
                hint = (f" The missing keys are present with the prefix {prefix!r}: pass that submodule's own state "
                        f"dict (e.g. the autoencoder's .encoder), not its parent's.")
        raise ConfigError(
            f"{what}: the weights do not match the network (every key must load). "
            f"Missing keys {missing[:8]}{' ...' if len(missing) > 8 else ''}; "
            f"unexpected keys {unexpected[:8]}{' ...' if len(unexpected) > 8 else ''}; "
            f"wrong shapes {shapes[:8]}.{hint} Retrain the piece (set its ckpt to null) or point ckpt at weights "
            f"saved for this architecture and band count."
        )
    module.load_state_dict(state_dict, strict=True)


class FrozenEncoder(nn.Module):
    """A loss network that is frozen, stays in eval mode, and refuses to run before weights were loaded.

    Gradients still flow through it to its input (the prediction). The `loaded` flag is a buffer, so a model
    restored from a training checkpoint counts as loaded.
    """

    def __init__(self, net: nn.Module, what: str):
        super().__init__()
        self.net = net.requires_grad_(False).eval()
        self.what = what
        self.register_buffer("loaded", torch.tensor(False))

    def load(self, state_dict: Mapping[str, torch.Tensor]) -> None:
        load_strict(self.net, state_dict, self.what)
        self.net.requires_grad_(False)
        self.loaded.fill_(True)

    def train(self, mode: bool = True) -> FrozenEncoder:
        super().train(mode)
        self.net.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not bool(self.loaded):
            raise RuntimeError(
                f"{self.what} has no weights: the training core must call model.load_pretrained() first "
                f"(train_piece() when the piece's ckpt is null); a random loss network silently ruins training"
            )
        return self.net(x)


class FeatureLossModel:
    """Mixin for a model whose loss runs one frozen feature encoder (EDCSTFN, GAN-STFM), pre-trained as an autoencoder.

    The model sets `autoencoder_cls` (full autoencoder, built from the band count) and `autoencoder_loss`
    (recon, x, *, ssim_weight, data_range) as class attributes, and `in_ch`, `data_range`, `piece` (its config block)
    and `feature_encoder` (a FrozenEncoder) in __init__.
    """

    PIECE = "feature_encoder"
    autoencoder_cls: Callable[..., nn.Module]
    autoencoder_loss: Callable[..., torch.Tensor]

    def pretrained_pieces(self) -> list[PretrainedPiece]:
        loss = partial(type(self).autoencoder_loss, ssim_weight=self.piece["ssim_weight"], data_range=self.data_range)
        return [PretrainedPiece(self.PIECE, partial(self.autoencoder_cls, self.in_ch), loss,
                                dict(self.piece["recipe"]), self.piece["ckpt"])]

    def load_pretrained(self, name: str, encoder_state_dict: Mapping[str, torch.Tensor]) -> None:
        if name != self.PIECE:
            raise KeyError(f"{type(self).__name__} has one pretrained piece, {self.PIECE!r}; got {name!r}")
        self.feature_encoder.load(encoder_state_dict)


def patch_offsets(size: int, patch: int, stride: int) -> list[int]:
    """Grid offsets 0, stride, ... plus an edge-flush last one, so that every row/column is covered."""
    if patch > size:
        raise ValueError(f"patch {patch} is larger than the image side {size}")
    offsets = list(range(0, size - patch + 1, stride))
    if offsets[-1] != size - patch:
        offsets.append(size - patch)
    return offsets


def _check_recipe(piece: PretrainedPiece) -> dict:
    recipe = dict(piece.recipe)
    missing = [k for k in RECIPE_KEYS if k not in recipe]
    unknown = [k for k in recipe if k not in RECIPE_KEYS]
    if missing or unknown:
        raise ConfigError(
            f"pretrained piece {piece.name!r}: recipe has missing keys {missing} and unknown keys {unknown}; "
            f"a recipe needs exactly {list(RECIPE_KEYS)}"
        )
    if not 0 < recipe["val_fraction"] < 1:
        raise ConfigError(f"pretrained piece {piece.name!r}: recipe.val_fraction must lie in (0, 1), got "
                          f"{recipe['val_fraction']}")
    return recipe


def _flip(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Independent random horizontal and vertical flips per patch."""
    h, v = (torch.rand(2, x.shape[0], generator=gen) < 0.5).to(x.device)
    x = torch.where(h[:, None, None, None], x.flip(-1), x)
    return torch.where(v[:, None, None, None], x.flip(-2), x)


def train_piece(
    piece: PretrainedPiece,
    images: list[np.ndarray],
    *,
    seed: int,
    max_epochs: int | None = None,
    progress: bool = True,
    device: str | torch.device | None = None,
    resume_path: str | Path | None = None,
) -> dict[str, torch.Tensor]:
    """Train the piece's autoencoder on (H,W) normalized, NaN-free fine images; return the best encoder weights.

    Patches come from a grid with an edge-flush last patch; a random `val_fraction` of them validates. Training
    patches get random flips. Adam + ReduceLROnPlateau on the validation loss; the encoder of the epoch with the
    lowest validation loss is returned (CPU tensors). `max_epochs` overrides the recipe (demos, tests); `device`
    defaults to CUDA when available. `progress`: a progress bar on a terminal, else a log line per epoch. With
    `resume_path`, the complete state is saved there after every epoch and an interrupted call continues from it
    (same result as an uninterrupted one); the file is removed at the end.
    """
    recipe = _check_recipe(piece)
    patch, stride, batch_size = int(recipe["patch"]), int(recipe["stride"]), int(recipe["batch_size"])
    epochs = int(recipe["max_epochs"] if max_epochs is None else max_epochs)
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        ae = piece.build_autoencoder()
    multiple = getattr(ae, "size_multiple", 1)
    if patch % multiple:
        raise ConfigError(f"pretrained piece {piece.name!r}: model.net.{piece.name}.recipe.patch={patch} must "
                          f"be a multiple of {multiple} for this autoencoder")

    tensors, index = [], []
    for i, im in enumerate(images):
        im = np.asarray(im, dtype=np.float32)
        if im.ndim != 2 or not np.isfinite(im).all():
            raise DataError(f"pretrained piece {piece.name!r}: image {i} must be a 2-D NaN-free array, got shape "
                            f"{im.shape} with {int((~np.isfinite(im)).sum())} non-finite values; fill gaps first")
        if min(im.shape) < patch:
            raise DataError(f"pretrained piece {piece.name!r}: image {i} of shape {im.shape} is smaller than "
                            f"the pre-training patch {patch}; set model.net.{piece.name}.recipe.patch to at most "
                            f"{min(im.shape)} (and recipe.stride below it)")
        tensors.append(torch.from_numpy(im))
        index += [(i, r, c) for r in patch_offsets(im.shape[0], patch, stride)
                  for c in patch_offsets(im.shape[1], patch, stride)]
    n_val = math.ceil(len(index) * recipe["val_fraction"])
    if len(index) - n_val < 1:
        raise DataError(f"pretrained piece {piece.name!r}: {len(index)} patch(es) cannot be split into training "
                        f"and validation; give more images or a smaller recipe.stride")

    gen = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(index), generator=gen).tolist()
    val_idx, train_idx = order[:n_val], order[n_val:]

    def cut(ids: list[int]) -> torch.Tensor:
        return torch.stack([tensors[i][r:r + patch, c:c + patch] for i, r, c in (index[j] for j in ids)])[:, None]

    ae.to(device)
    optimizer = torch.optim.Adam(ae.parameters(), lr=recipe["lr"], weight_decay=recipe["weight_decay"])
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="min", factor=recipe["plateau_factor"], patience=recipe["plateau_patience"]
    )
    best_loss, best_state, first = math.inf, None, 0
    if resume_path is not None and Path(resume_path).is_file():
        saved = torch.load(resume_path, map_location="cpu", weights_only=True)
        ae.load_state_dict(saved["autoencoder"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        gen.set_state(saved["generator"])
        best_loss, best_state, first = saved["best_loss"], saved["best_state"], saved["epoch"]
    log_lines = progress and not sys.stdout.isatty()  # a log file or SLURM: no bar is drawn there
    bar = tqdm(range(first, epochs), desc=f"pre-training {piece.name}", unit="epoch",
               disable=not progress or log_lines, initial=first, total=epochs)
    started = time.time()
    for epoch in bar:
        ae.train()
        perm = torch.randperm(len(train_idx), generator=gen).tolist()
        train_sum = 0.0
        for start in range(0, len(perm), batch_size):
            x = _flip(cut([train_idx[k] for k in perm[start:start + batch_size]]), gen).to(device)
            loss = piece.loss(ae(x), x)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            train_sum += loss.item() * x.shape[0]
        ae.eval()
        val_sum = 0.0
        with torch.no_grad():
            for start in range(0, n_val, batch_size):
                x = cut(val_idx[start:start + batch_size]).to(device)
                val_sum += piece.loss(ae(x), x).item() * x.shape[0]
        val_loss = val_sum / n_val
        scheduler.step(val_loss)
        if val_loss < best_loss:
            best_loss = val_loss
            best_state = {k: v.detach().cpu().clone() for k, v in ae.encoder.state_dict().items()}
        bar.set_postfix(train=train_sum / len(train_idx), val=val_loss, best=best_loss)
        if log_lines:
            elapsed = time.time() - started
            log.info("pre-training %s: epoch %d/%d train=%.4g val=%.4g best=%.4g | %s/epoch, ETA %s", piece.name,
                     epoch + 1, epochs, train_sum / len(train_idx), val_loss, best_loss,
                     format_duration(elapsed / (epoch + 1)), format_duration(elapsed / (epoch + 1) * (epochs - epoch - 1)))
        if resume_path is not None:
            tmp = Path(f"{resume_path}.{os.getpid()}.part")
            torch.save({"autoencoder": ae.state_dict(), "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(), "generator": gen.get_state(), "best_loss": best_loss,
                        "best_state": best_state, "epoch": epoch + 1}, tmp)
            os.replace(tmp, resume_path)
    if best_state is None:
        raise ValueError(f"pretrained piece {piece.name!r}: no epoch finished (max_epochs={epochs}, validation "
                         f"loss {best_loss}); max_epochs must be >= 1 and the loss finite")
    if resume_path is not None:
        Path(resume_path).unlink(missing_ok=True)
    return best_state
