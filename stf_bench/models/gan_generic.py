"""gan_generic: the survey's conditional-GAN template (pix2pix style), a starting point to copy.

Label: reconstructed. The template stands for the GAN family of the STF-LST survey (Bouaziz et al., arXiv
2412.16631, 2024); it is not any paper's model. The design is specs/models.md part 1, "gan_generic", trained by the
adversarial LightningModule (``stf_bench/training/adversarial.py``; its contract is models.md part 2 §0).

- Generator: ``ae_generic``'s network (``AEGeneric``) with ``skips: true`` (790,593 parameters), built from the
  YAML's ``net.generator`` block, so any ae_generic option (width, depth, fusion, two references) applies here.
- Discriminator: a 70x70 PatchGAN on [C2, F] (conditioned on the coarse target), 2,764,609 parameters:
  conv 4x4/2 2->64 + LeakyReLU 0.2; conv 4x4/2 64->128, 4x4/2 128->256, 4x4/1 256->512, each without bias, with
  BatchNorm and LeakyReLU; conv 4x4/1 512->1. Every score in its output map judges one 70x70 receptive field.
  It returns logits: the sigmoid lives in the loss (``gan_mode: bce``, BCE with logits, real 1 and fake 0).
- Losses: G = ``l1_weight`` (100) * L1(F2_hat, F2) over observed pixels + ``adv_weight`` (1) * BCE(D(C2, F2_hat), 1);
  D = 0.5 * [BCE(D(C2, F2), 1) + BCE(D(C2, F2_hat.detach()), 0)]. The reconstruction term comes from
  ``compute_loss``; the adversarial module adds the GAN terms of ``gan_mode`` and steps D, then G.

Only the generator counts as the model's parameters (and is used at inference); the discriminator trains alongside.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from stf_bench.models.ae_generic import AEGeneric
from stf_bench.models.blocks.masked import masked_l1
from stf_bench.models.blocks.patchgan import PatchDiscriminator


class GANGeneric(nn.Module):
    """Conditional GAN: ``generator`` (an AEGeneric) predicts F2; ``discriminator`` scores [C2, image] patches.

    Reads what the generator reads (``fine_ref``, ``coarse_ref``, ``coarse_tgt``, + the second pair if given).
    Args (the YAML ``net`` block): ``generator`` (the instantiated AEGeneric), ``d_widths`` of the PatchGAN,
    ``l1_weight`` of the masked L1 term, ``adv_weight`` of the generator's GAN term, ``gan_mode`` (one of the
    adversarial module's modes; ``bce`` is the pix2pix loss).
    """

    def __init__(self, generator: AEGeneric, d_widths: tuple[int, ...] = (64, 128, 256, 512),
                 l1_weight: float = 100.0, adv_weight: float = 1.0, gan_mode: str = "bce"):
        super().__init__()
        self.generator = generator
        self.discriminator = PatchDiscriminator(2 * generator.in_ch, d_widths)
        self.l1_weight, self.adv_weight, self.gan_mode = l1_weight, adv_weight, gan_mode

    @property
    def norm(self):
        """The training normalization lives on the generator (its ICW epsilon is in Kelvin)."""
        return self.generator.norm

    @norm.setter
    def norm(self, value) -> None:
        self.generator.norm = value

    def forward(self, batch: dict) -> torch.Tensor:
        return self.generator(batch)

    def d_input(self, batch: dict, image: torch.Tensor) -> torch.Tensor:
        """[C2, image]: the discriminator judges the image given the coarse target."""
        return torch.cat([batch["coarse_tgt"], image], 1)

    def discriminate(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, h, w) logits, one per 70x70 patch; the GAN losses average them."""
        return self.discriminator(x)

    def compute_loss(self, batch: dict, epoch: int, pred: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """The generator's reconstruction term, l1_weight * L1 over observed target pixels (the adversarial module
        adds adv_weight times the GAN term)."""
        if pred is None:
            pred = self(batch)
        l1 = masked_l1(pred, batch["fine_tgt"], batch["valid_tgt"])
        return {"loss": self.l1_weight * l1, "l1": l1.detach()}
