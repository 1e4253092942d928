"""ae_generic: the survey's autoencoder template (encoder -> latent fusion -> decoder), a starting point to copy.

Label: reconstructed. The template stands for the autoencoder family of the STF-LST survey (Bouaziz, Hafiane,
Canals, Nedjai, "Deep Learning for Spatio-Temporal Fusion in Land Surface Temperature Estimation: A Comprehensive
Survey, Experimental Analysis, and Future Trends", arXiv 2412.16631, 2024); it is not any paper's model. The design
is specs/models.md part 1, "ae_generic"; its YAML defaults give the design count exactly (744,513; 790,593 with
``skips: true``, which is the generator of ``gan_generic``).

One reference pair (F1, C1) and the coarse target C2::

    F1 ------> spatial encoder E_S --> H1 (H/4) --+
               |  level outputs (H, H/2) ------------------ skips (optional) ---+
    [C1, C2] -> temporal encoder E_T -> H2 (H/4) -+-> fuse(H1, H2) -> decoder --+--> 1x1 conv -> F2_hat

- Encoders: level 0 keeps the resolution, each further level starts with a stride-2 conv; every conv is 3x3 with
  LeakyReLU. ``widths`` sets the channels per level (and so the depth), ``convs_per_level`` the convs per level.
- Fusion (``fusion``): ``concat`` (1x1 conv 2c->c, LeakyReLU), ``add`` (H1 + H2, no parameters), or ``gated``
  (H1 + sigmoid(1x1 conv [H1, H2]) * H2: the change code is let through where the gate trusts it).
- Decoder: per level, bilinear x2 then convs (the first one also takes the spatial encoder's output of that level
  when ``skips`` is on, U-Net style), then a linear 1x1 head: no activation bounds the normalized output.
- Two references: one shared-weight pass per pair, combined with inverse-change weighting (ICW, eps 0.05 K) or the
  small learned weighting CNN (``weighting: learned``, +11,010 parameters, trained by the two-reference loss).
- Loss (``compute_loss``): L1 against F2 over observed pixels, plus ``identity_weight`` times the identity term
  L1(dec(fuse(H1, E_T([C1, C1]))), F1): with no coarse change the network must give its reference back. The
  identity term compares with a reference image, so it uses all its pixels.

To try an idea, copy this file and its YAML, rename the class and the id, and change one piece: the pieces are
separate modules (``Encoder``, ``LatentFusion``, ``Decoder``) so that each can be replaced alone.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from stf_bench.errors import ConfigError
from stf_bench.models.blocks.masked import masked_l1
from stf_bench.models.blocks.weighting import LearnedWeighting, icw_combine

FUSIONS = ("concat", "add", "gated")
WEIGHTINGS = ("icw", "learned")


def conv3x3(cin: int, cout: int, slope: float, stride: int = 1) -> nn.Sequential:
    """3x3 conv (zero padding 1) + LeakyReLU: the only convolution the template uses besides the 1x1 ones."""
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1), nn.LeakyReLU(slope))


class Encoder(nn.Module):
    """A conv pyramid: level 0 at full resolution, each further level halved by its first (stride-2) conv.

    Returns every level's output, finest first, so that the decoder can take skips from them.
    """

    def __init__(self, in_ch: int, widths: list[int], convs_per_level: int, slope: float):
        super().__init__()
        self.levels = nn.ModuleList()
        cin = in_ch
        for level, width in enumerate(widths):
            stride = 1 if level == 0 else 2
            convs = [conv3x3(cin, width, slope, stride)]
            convs += [conv3x3(width, width, slope) for _ in range(convs_per_level - 1)]
            self.levels.append(nn.Sequential(*convs))
            cin = width

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outputs = []
        for level in self.levels:
            x = level(x)
            outputs.append(x)
        return outputs


class LatentFusion(nn.Module):
    """Combines the spatial code H1 and the temporal code H2 (both c channels) into one c-channel code."""

    def __init__(self, mode: str, channels: int, slope: float):
        super().__init__()
        self.mode = mode
        if mode == "concat":
            self.mix = nn.Sequential(nn.Conv2d(2 * channels, channels, 1), nn.LeakyReLU(slope))
        elif mode == "gated":
            self.gate = nn.Conv2d(2 * channels, channels, 1)

    def forward(self, h1: torch.Tensor, h2: torch.Tensor) -> torch.Tensor:
        if self.mode == "concat":
            return self.mix(torch.cat([h1, h2], 1))
        if self.mode == "add":
            return h1 + h2
        return h1 + torch.sigmoid(self.gate(torch.cat([h1, h2], 1))) * h2


class Decoder(nn.Module):
    """Mirror of the encoder: per level, bilinear x2 then convs; a linear 1x1 head to ``out_ch`` bands.

    With ``skips`` the first conv of each level also reads the spatial encoder's output at that resolution.
    """

    def __init__(self, out_ch: int, widths: list[int], convs_per_level: int, slope: float, skips: bool):
        super().__init__()
        self.skips = skips
        self.levels = nn.ModuleList()
        for level in reversed(range(len(widths) - 1)):  # from the second-deepest level up to full resolution
            cin = widths[level + 1] + (widths[level] if skips else 0)
            convs = [conv3x3(cin, widths[level], slope)]
            convs += [conv3x3(widths[level], widths[level], slope) for _ in range(convs_per_level - 1)]
            self.levels.append(nn.Sequential(*convs))
        self.head = nn.Conv2d(widths[0], out_ch, 1)

    def forward(self, code: torch.Tensor, spatial_levels: list[torch.Tensor]) -> torch.Tensor:
        x = code
        for conv, skip in zip(self.levels, reversed(spatial_levels[:-1])):
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = conv(torch.cat([x, skip], 1) if self.skips else x)
        return self.head(x)


class AEGeneric(nn.Module):
    """Encoder-fusion-decoder template; reads ``fine_ref``, ``coarse_ref``, ``coarse_tgt`` (+ ``fine_ref2``,
    ``coarse_ref2`` when the pairing gives two references).

    Args (the YAML ``net`` block): ``widths`` channels per encoder level (its length is the depth: the deepest code
    lies at H / 2**(len - 1)), ``convs_per_level``, ``fusion`` (concat | add | gated), ``skips``, ``weighting``
    (icw | learned), ``identity_weight`` of the identity term (0 drops it), ``icw_kernel`` and ``icw_eps_k`` (the
    ICW box size in pixels and epsilon in Kelvin), ``negative_slope`` of the LeakyReLUs, and ``size_multiple``, the
    YAML declaration, checked against the depth.
    """

    def __init__(
        self,
        in_ch: int = 1,
        widths: tuple[int, ...] = (32, 64, 128),
        convs_per_level: int = 2,
        fusion: str = "concat",
        skips: bool = False,
        weighting: str = "icw",
        identity_weight: float = 0.1,
        icw_kernel: int = 31,
        icw_eps_k: float = 0.05,
        negative_slope: float = 0.2,
        size_multiple: int = 4,
    ):
        super().__init__()
        widths = [int(w) for w in widths]
        if not widths or convs_per_level < 1:
            raise ConfigError(f"ae_generic: model.net.widths={widths} and convs_per_level={convs_per_level}; give at "
                              f"least one width and one conv per level, e.g. widths: [32, 64, 128], convs_per_level: 2")
        if fusion not in FUSIONS:
            raise ConfigError(f"ae_generic: model.net.fusion={fusion!r}; use one of {FUSIONS}")
        if weighting not in WEIGHTINGS:
            raise ConfigError(f"ae_generic: model.net.weighting={weighting!r}; use one of {WEIGHTINGS}")
        downsampling = 2 ** (len(widths) - 1)
        if int(size_multiple) % downsampling:
            raise ConfigError(f"ae_generic: model.size_multiple={size_multiple} but {len(widths)} encoder levels halve "
                              f"the image {len(widths) - 1} times; set model.size_multiple to a multiple of "
                              f"{downsampling} (and model.train.patch_size with it)")
        self.in_ch, self.identity_weight = in_ch, identity_weight
        self.icw_kernel, self.icw_eps_k = icw_kernel, icw_eps_k
        self.norm = None  # AffineNorm, set by the training core before fitting; ICW needs it for its epsilon
        self.spatial_encoder = Encoder(in_ch, widths, convs_per_level, negative_slope)
        self.temporal_encoder = Encoder(2 * in_ch, widths, convs_per_level, negative_slope)
        self.fusion = LatentFusion(fusion, widths[-1], negative_slope)
        self.decoder = Decoder(in_ch, widths, convs_per_level, negative_slope, skips)
        self.weighting = LearnedWeighting() if weighting == "learned" else None

    # ------------------------------------------------------------------------------------------ one reference
    @staticmethod
    def references(batch: dict) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """[(F1, C1)] or, when the batch has a second pair, [(F1, C1), (F3, C3)]."""
        refs = [(batch["fine_ref"], batch["coarse_ref"])]
        second = [k in batch for k in ("fine_ref2", "coarse_ref2")]
        if any(second) and not all(second):
            raise ValueError("ae_generic: a second reference needs both 'fine_ref2' and 'coarse_ref2' in the batch")
        if all(second):
            refs.append((batch["fine_ref2"], batch["coarse_ref2"]))
        return refs

    def decode(self, spatial_levels: list[torch.Tensor], coarse_a: torch.Tensor, coarse_b: torch.Tensor):
        """dec(fuse(H1, E_T([coarse_a, coarse_b]))) for the spatial encoder's levels of one reference."""
        change_code = self.temporal_encoder(torch.cat([coarse_a, coarse_b], 1))[-1]
        return self.decoder(self.fusion(spatial_levels[-1], change_code), spatial_levels)

    # ---------------------------------------------------------------------------------------- two references
    def combine(self, preds: list[torch.Tensor], batch: dict) -> torch.Tensor:
        """One prediction per reference -> one prediction: ICW (epsilon 0.05 K in normalized units) or learned."""
        if len(preds) == 1:
            return preds[0]
        if self.weighting is not None:
            return self.weighting(preds[0], preds[1], batch)
        if self.norm is None:
            raise RuntimeError("ae_generic: ICW needs model.norm (its epsilon is in Kelvin) and it is not set; the "
                               "training core sets it before fitting - set net.norm = AffineNorm(...) when using "
                               "the network alone")
        return icw_combine(preds[0], preds[1], batch, self.norm.kelvin_to_units(self.icw_eps_k), self.icw_kernel)

    def forward(self, batch: dict) -> torch.Tensor:
        c2 = batch["coarse_tgt"]
        preds = [self.decode(self.spatial_encoder(fine), coarse, c2) for fine, coarse in self.references(batch)]
        return self.combine(preds, batch)

    def compute_loss(self, batch: dict, epoch: int, pred: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """L1(F2_hat, F2) over observed pixels + identity_weight * mean over references of L1(identity, F_i).

        ``pred`` (the prediction of this batch, when the caller already has it) is reused for the first term.
        """
        refs = self.references(batch)
        levels = [self.spatial_encoder(fine) for fine, _ in refs]
        if pred is None:
            pred = self.combine([self.decode(lv, c, batch["coarse_tgt"]) for lv, (_, c) in zip(levels, refs)], batch)
        l1 = masked_l1(pred, batch["fine_tgt"], batch["valid_tgt"])
        terms = {"l1": l1}
        loss = l1
        if self.identity_weight:
            identity = torch.stack([masked_l1(self.decode(lv, c, c), f) for lv, (f, c) in zip(levels, refs)]).mean()
            loss = loss + self.identity_weight * identity
            terms["identity"] = identity
        return {"loss": loss, **{k: v.detach() for k, v in terms.items()}}
