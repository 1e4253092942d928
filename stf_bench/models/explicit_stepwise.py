"""explicit_stepwise: explicit and stepwise models: spatial (S), sensor (N) and temporal (T) networks trained in turn
(models.md part 2 §3).

Paper: "Explicit and stepwise models for spatiotemporal fusion of remote sensing images with deep neural networks",
Int. J. Appl. Earth Obs. Geoinf. 105, 102611, 2021
(https://www.sciencedirect.com/science/article/pii/S0303243421003184; models.md names no authors or doi). No code.
Label: reconstructed: only the abstract is public; every size, training pair and weight is ours (models.md §3).

- S (spatial, 298,632 with its duals 1,220): log2(p) = 4 cascaded dual-regression x2 stages after DRN (Guo et al.,
  CVPR 2020) on A_16 of an image. Head conv3x3 1->32; each stage 2 residual blocks, conv3x3 32->128 + PixelShuffle(2),
  y_k = conv3x3 32->1 + bilinear x2 (y_{k-1}); dual_k: conv3x3 s2 1->16, LeakyReLU 0.2, conv3x3 16->1.
  Loss (Landsat only, A_16(F1) -> F1): L1(y_4, F1) + 0.1 sum_k L1(dual_k(y_k), y_{k-1}.detach()).
- N (sensor, 82,913): conv9x9 1->64, ReLU, conv5x5 64->32, ReLU, conv5x5 32->32, ReLU, conv5x5 32->1, plus the input.
  MSE of N(S(A_16(C_t))) against F_t, for the reference pair and the target pair (observed pixels).
- T (temporal GAN; generator 593,793): C^ = N(S(A_16(C))); G([F1, C^1, C^2, C^2 - C^1]) = conv3x3 4->64, LeakyReLU
  0.2, 8 residual blocks (64), conv3x3 64->1; F2^ = F1 + C^2 - C^1 + G(...). D: the §6 PatchGAN on cat(image, C^2)
  (2,765,505). Loss: masked L1 + 0.01 LSGAN (the adversarial module adds the GAN term in stage T only).
- Schedule: the published 100 / 50 / 200 epochs, scaled to ``max_epochs``; each network trains in its stage only and
  is frozen after it (later stages run it without gradients, so its optimizer state never moves it). A run with fewer
  than 3 epochs (trainer=debug) trains the three losses together in every epoch, each on detached inputs.

Assumptions beyond the spec: S learns from F1 (complete) only; N's and T's zero-initialised last convs start them at
their baselines (the identity, the coarse delta F1 + C^2 - C^1). ``export_corrected_coarse`` is not implemented.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from stf_bench.errors import ConfigError
from stf_bench.models.blocks.fusion import coarse_pool
from stf_bench.models.blocks.head_init import zero_init_
from stf_bench.models.blocks.masked import masked_l1, masked_mse
from stf_bench.models.blocks.patchgan import section6_patchgan
from stf_bench.models.blocks.residual import ResidualBlock

PUBLISHED_EPOCHS = (100, 50, 200)  # S, N, T (models.md §3 "Training")


class DualRegressionSR(nn.Module):
    """S: x2 stages, each with a dual (down-mapping) net; returns [y_0, y_1, ..., y_n] (y_0 the input)."""

    def __init__(self, n_stages: int = 4, width: int = 32):
        super().__init__()
        self.head = nn.Conv2d(1, width, 3, padding=1)
        self.stages = nn.ModuleList(nn.Sequential(ResidualBlock(width), ResidualBlock(width),
                                                  nn.Conv2d(width, 4 * width, 3, padding=1), nn.PixelShuffle(2))
                                    for _ in range(n_stages))
        self.to_image = nn.ModuleList(nn.Conv2d(width, 1, 3, padding=1) for _ in range(n_stages))
        self.duals = nn.ModuleList(nn.Sequential(nn.Conv2d(1, 16, 3, stride=2, padding=1), nn.LeakyReLU(0.2),
                                                 nn.Conv2d(16, 1, 3, padding=1)) for _ in range(n_stages))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feat, ys = self.head(x), [x]
        for stage, to_image in zip(self.stages, self.to_image):
            feat = stage(feat)
            ys.append(to_image(feat) + F.interpolate(ys[-1], scale_factor=2, mode="bilinear", align_corners=False))
        return ys


def sensor_net() -> nn.Sequential:
    """N's four-layer CNN (its output is added to its input by the caller)."""
    return nn.Sequential(nn.Conv2d(1, 64, 9, padding=4), nn.ReLU(), nn.Conv2d(64, 32, 5, padding=2), nn.ReLU(),
                         nn.Conv2d(32, 32, 5, padding=2), nn.ReLU(), zero_init_(nn.Conv2d(32, 1, 5, padding=2)))


def temporal_generator(width: int = 64, n_blocks: int = 8) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(4, width, 3, padding=1), nn.LeakyReLU(0.2),
                         *[ResidualBlock(width) for _ in range(n_blocks)],
                         zero_init_(nn.Conv2d(width, 1, 3, padding=1)))


class ExplicitStepwise(nn.Module):
    """Reads ``fine_ref``, ``coarse_ref``, ``coarse_tgt``. Args (YAML ``net``): ``max_epochs`` (the schedule),
    ``coarse_factor`` p (16, a power of 2: log2 p stages), ``dual_weight`` (0.1), ``adv_weight`` (0.01), ``gan_mode``,
    ``stage_epochs`` (the published S, N, T lengths, scaled to max_epochs), ``export_corrected_coarse``."""

    def __init__(self, max_epochs: int, coarse_factor: int = 16, dual_weight: float = 0.1, adv_weight: float = 0.01,
                 gan_mode: str = "lsgan", stage_epochs: tuple[int, int, int] = PUBLISHED_EPOCHS,
                 export_corrected_coarse: bool = False):
        super().__init__()
        p = int(coarse_factor)
        if p < 2 or p & (p - 1):
            raise ConfigError(f"explicit_stepwise: model.net.coarse_factor={coarse_factor} must be a power of 2 "
                              f"(S has log2(p) x2 stages); the spec uses 16.")
        if int(max_epochs) < 1 or len(stage_epochs) != 3 or min(stage_epochs) < 1:
            raise ConfigError(f"explicit_stepwise: model.net.max_epochs={max_epochs} must be >= 1 (normally "
                              f"${{model.train.max_epochs}}) and stage_epochs={list(stage_epochs)} three lengths >= 1.")
        if export_corrected_coarse:
            raise ConfigError("explicit_stepwise: model.net.export_corrected_coarse=true (C^ for the classical "
                              "baselines) is not implemented yet; set it to false.")
        e, total = int(max_epochs), sum(stage_epochs)
        self.joint = e < 3  # too short for one epoch per stage: every stage trains in every epoch
        first = min(max(1, round(e * stage_epochs[0] / total)), e - 2)
        self.bounds = (first, min(max(first + 1, round(e * (stage_epochs[0] + stage_epochs[1]) / total)), e - 1))
        self.coarse_factor, self.dual_weight = p, dual_weight
        self.adv_weight, self.gan_mode = adv_weight, gan_mode
        self.spatial = DualRegressionSR(n_stages=p.bit_length() - 1)
        self.sensor = sensor_net()
        self.temporal = temporal_generator()
        self.discriminator = section6_patchgan(2)
        self.norm = None  # set by the training core; the model needs no Kelvin quantity

    def stage(self, epoch: int) -> str:
        """'S', 'N' or 'T' by epoch ('joint' for runs shorter than 3 epochs)."""
        if self.joint:
            return "joint"
        return "S" if epoch < self.bounds[0] else "N" if epoch < self.bounds[1] else "T"

    @property
    def stage_starts(self) -> tuple[int, ...]:
        """The first epoch of each stage: where a check of "every parameter trains" must look."""
        return (0,) if self.joint else (0, *self.bounds)

    def adversarial_at(self, epoch: int) -> bool:
        """The adversarial module adds the GAN term only in T's stage."""
        return self.stage(epoch) in ("T", "joint")

    def corrected_coarse(self, coarse: torch.Tensor) -> torch.Tensor:
        """C^ = N(S(A_p(C))), at C's size (a multiple of p)."""
        s = self.spatial(coarse_pool(coarse, self.coarse_factor))[-1]
        return s + self.sensor(s)

    def generate(self, fine_ref: torch.Tensor, c1: torch.Tensor, c2: torch.Tensor) -> torch.Tensor:
        return fine_ref + c2 - c1 + self.temporal(torch.cat([fine_ref, c1, c2, c2 - c1], 1))

    def forward(self, batch: dict) -> torch.Tensor:
        """S and N are trained by their own stage losses only, so they run here without gradients."""
        with torch.no_grad():
            c1, c2 = self.corrected_coarse(batch["coarse_ref"]), self.corrected_coarse(batch["coarse_tgt"])
        return self.generate(batch["fine_ref"], c1, c2)

    def d_input(self, batch: dict, image: torch.Tensor) -> torch.Tensor:
        """cat(image, C^2): the discriminator judges the image given the corrected coarse target."""
        with torch.no_grad():
            c2 = self.corrected_coarse(batch["coarse_tgt"])
        return torch.cat([image, c2], 1)

    def discriminate(self, x: torch.Tensor) -> torch.Tensor:
        return self.discriminator(x)

    def spatial_loss(self, fine: torch.Tensor) -> dict[str, torch.Tensor]:
        ys = self.spatial(coarse_pool(fine, self.coarse_factor))
        dual = sum(F.l1_loss(d(ys[k + 1]), ys[k].detach()) for k, d in enumerate(self.spatial.duals))
        primal = F.l1_loss(ys[-1], fine)
        return {"loss": primal + self.dual_weight * dual, "s_l1": primal.detach(), "s_dual": dual.detach()}

    def sensor_loss(self, batch: dict) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            s1, s2 = (self.spatial(coarse_pool(batch[k], self.coarse_factor))[-1] for k in ("coarse_ref", "coarse_tgt"))
        ref = masked_mse(s1 + self.sensor(s1), batch["fine_ref"])
        tgt = masked_mse(s2 + self.sensor(s2), batch["fine_tgt"], batch["valid_tgt"])
        loss = 0.5 * (ref + tgt)
        return {"loss": loss, "n_mse": loss.detach()}

    def compute_loss(self, batch: dict, epoch: int, pred: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """The current stage's terms (all three summed in a joint run); T's masked L1 is its reconstruction term,
        the adversarial module adds 0.01 LSGAN. ``pred`` (T's output) is used in T's stage."""
        stage = self.stage(epoch)
        parts: dict[str, torch.Tensor] = {}
        losses = []
        if stage in ("S", "joint"):
            terms = self.spatial_loss(batch["fine_ref"])
            losses.append(terms.pop("loss"))
            parts.update(terms)
        if stage in ("N", "joint"):
            terms = self.sensor_loss(batch)
            losses.append(terms.pop("loss"))
            parts.update(terms)
        if stage in ("T", "joint"):
            pred = self(batch) if pred is None else pred
            l1 = masked_l1(pred, batch["fine_tgt"], batch["valid_tgt"])
            losses.append(l1)
            parts["t_l1"] = l1.detach()
        loss = sum(losses)
        stage_id = {"S": 1.0, "N": 2.0, "T": 3.0, "joint": 0.0}[stage]
        return {"loss": loss, "stage": torch.tensor(stage_id, device=loss.device), **parts}
