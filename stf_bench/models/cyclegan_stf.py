"""cyclegan_stf: CycleGAN-STF, a CycleGAN between the two fine references feeding a selection, a wavelet
enhancement and FSDAF (models.md part 2 §1).

Paper: J. Chen, L. Wang, R. Feng, P. Liu, W. Han, X. Chen, "CycleGAN-STF: Spatiotemporal Fusion via CycleGAN-Based
Image Generation", IEEE TGRS 59(7), 2021, doi 10.1109/TGRS.2020.3023432. No code.
Label: reconstructed. The design is models.md part 2 §1; the training domains, snapshots, selection rule, wavelet
detail rule and the synthetic coarse pair are ours, as the spec says.

- CycleGAN: G_AB (F1 -> F3 domain) and G_BA (F3 -> F1), each the ResNet-9 generator (c7s1-64, d128, d256, 9 residual
  blocks, u128, u64, c7s1-1; reflection padding, InstanceNorm without affine, biased convs, linear output:
  11,365,633 parameters); two unconditional 70x70 PatchGANs with InstanceNorm (2,762,689 each) in
  ``discriminator`` (a ModuleDict ``a``, ``b``). Trained by the cycle adversarial module
  (stf_bench/training/cycle.py): LSGAN, cycle L1 10, identity L1 5, image pool 50. Both generators are used at
  inference, so both count as the model's parameters (2 x 11,365,633 = 22,731,266).
- Candidates: the generators are snapshotted every max_epochs/10 epochs (``take_snapshot``, called by the module);
  candidates are G_AB^k(F1), G_BA^k(F3) for every snapshot and the current generators, plus F1 and F3. Snapshots
  are frozen and travel in the state dict (a checkpoint grows by 2 x 45 MB per snapshot).
- Selection per scene (per batch item): the lowest centred RMSE between A_32(candidate) and A_32(C2).
- Wavelet: one-level Haar DWT of the chosen X and of the temporally nearer reference F_n (from ``meta["dates"]``);
  X's LL band, each detail coefficient the larger-magnitude of the two; the inverse gives E.
- FSDAF: the project's classical baseline (stf_bench/baselines/fsdaf.py, a leaf package models may use) on the pair
  (E, U(A_32(E))) and C2, in Kelvin; ``fsdaf`` in the YAML takes conf/model/fsdaf.yaml's values.

Deviations: the adversarial term uses the house LSGAN generator term 0.5 (D(G) - 1)^2, so ``adv_weight: 2`` gives
CycleGAN's weight 1. Whole scenes are one batch item; a tiled scene would select per tile. ``fit_per_scene``
(20 extra epochs on the test scene's F1, F3) is not implemented and raises a ConfigError when set.
"""

from __future__ import annotations

import copy
from datetime import date

import torch
import torch.nn as nn

from stf_bench.baselines.fsdaf import FSDAF
from stf_bench.errors import ConfigError
from stf_bench.models.blocks.fusion import coarse_pool, upsample
from stf_bench.models.blocks.patchgan import PatchDiscriminator


def _norm_act(conv: nn.Module, channels: int) -> list[nn.Module]:
    return [conv, nn.InstanceNorm2d(channels, affine=False), nn.ReLU(True)]


class ResnetBlock(nn.Module):
    """x + [pad, conv3x3, IN, ReLU, pad, conv3x3, IN]: 2 (9 c^2 + c) parameters."""

    def __init__(self, c: int):
        super().__init__()
        self.body = nn.Sequential(nn.ReflectionPad2d(1), *_norm_act(nn.Conv2d(c, c, 3), c), nn.ReflectionPad2d(1),
                                  nn.Conv2d(c, c, 3), nn.InstanceNorm2d(c, affine=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def resnet_generator(in_ch: int = 1, out_ch: int = 1, width: int = 64, n_blocks: int = 9) -> nn.Sequential:
    """CycleGAN's ResNet generator (c7s1-w, d2w, d4w, n_blocks R4w, u2w, uw, c7s1-out), linear output."""
    w = width
    layers = [nn.ReflectionPad2d(3), *_norm_act(nn.Conv2d(in_ch, w, 7), w),
              *_norm_act(nn.Conv2d(w, 2 * w, 3, stride=2, padding=1), 2 * w),
              *_norm_act(nn.Conv2d(2 * w, 4 * w, 3, stride=2, padding=1), 4 * w),
              *[ResnetBlock(4 * w) for _ in range(n_blocks)],
              *_norm_act(nn.ConvTranspose2d(4 * w, 2 * w, 3, stride=2, padding=1, output_padding=1), 2 * w),
              *_norm_act(nn.ConvTranspose2d(2 * w, w, 3, stride=2, padding=1, output_padding=1), w),
              nn.ReflectionPad2d(3), nn.Conv2d(w, out_ch, 7)]
    return nn.Sequential(*layers)


def haar(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One-level orthonormal Haar DWT of (B, 1, H, W), H and W even: LL (B, 1, H/2, W/2), details (B, 3, H/2, W/2)."""
    a, b = x[..., 0::2, 0::2], x[..., 0::2, 1::2]
    c, d = x[..., 1::2, 0::2], x[..., 1::2, 1::2]
    ll = (a + b + c + d) / 2
    details = torch.cat([(a - b + c - d) / 2, (a + b - c - d) / 2, (a - b - c + d) / 2], 1)
    return ll, details


def inverse_haar(ll: torch.Tensor, details: torch.Tensor) -> torch.Tensor:
    h, v, dd = details[:, 0:1], details[:, 1:2], details[:, 2:3]
    out = ll.new_empty(ll.shape[0], 1, 2 * ll.shape[-2], 2 * ll.shape[-1])
    out[..., 0::2, 0::2] = (ll + h + v + dd) / 2
    out[..., 0::2, 1::2] = (ll - h + v - dd) / 2
    out[..., 1::2, 0::2] = (ll + h - v - dd) / 2
    out[..., 1::2, 1::2] = (ll - h - v + dd) / 2
    return out


def wavelet_enhance(x: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """X's LL band; each detail coefficient the larger-magnitude one of X's and the reference's."""
    ll, dx = haar(x)
    _, dr = haar(reference)
    return inverse_haar(ll, torch.where(dx.abs() >= dr.abs(), dx, dr))


def centred_rmse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(..., H, W) -> (...): RMSE after removing the mean difference (the sensor offset)."""
    d = a - b
    d = d - d.mean(dim=(-2, -1), keepdim=True)
    return d.pow(2).mean(dim=(-2, -1)).sqrt()


def nearer_is_first(meta: dict | None, batch_size: int) -> torch.Tensor:
    """(B,) bool: F1's date is at least as near the target as F3's, from meta['dates'] ('target,ref1,ref2')."""
    dates = (meta or {}).get("dates")
    if dates is None:
        raise ValueError("cyclegan_stf: the batch needs meta['dates'] ('target,ref1,ref2' ISO dates) to pick the "
                         "temporally nearer reference for the wavelet step")
    dates = [dates] * batch_size if isinstance(dates, str) else list(dates)
    if len(dates) != batch_size:
        raise ValueError(f"cyclegan_stf: meta['dates'] has {len(dates)} entries for a batch of {batch_size}")
    out = []
    for entry in dates:
        parts = [date.fromisoformat(d) for d in entry.split(",")]
        if len(parts) != 3:
            raise ValueError(f"cyclegan_stf: meta date string {entry!r} must hold the target and two reference dates")
        out.append(abs((parts[0] - parts[1]).days) <= abs((parts[2] - parts[0]).days))
    return torch.tensor(out)


class CycleGANSTF(nn.Module):
    """Reads ``fine_ref`` (domain A), ``fine_ref2`` (domain B), ``coarse_tgt`` and ``meta``; see the module docstring.

    Args (the YAML ``net`` block): ``max_epochs`` (snapshot spacing), ``n_snapshots`` (10), ``width``/``n_blocks``
    of the generators (64/9), ``cycle_weight`` (10), ``identity_weight`` (5), ``adv_weight``, ``gan_mode``,
    ``coarse_factor`` (A_32), ``fsdaf`` (the instantiated FSDAF baseline), ``fit_per_scene`` (not implemented).
    """

    def __init__(self, max_epochs: int, fsdaf: FSDAF, n_snapshots: int = 10, width: int = 64, n_blocks: int = 9,
                 d_widths: tuple[int, ...] = (64, 128, 256, 512), cycle_weight: float = 10.0,
                 identity_weight: float = 5.0, adv_weight: float = 2.0, gan_mode: str = "lsgan",
                 coarse_factor: int = 32, fit_per_scene: bool = False):
        super().__init__()
        if fit_per_scene:
            raise ConfigError("cyclegan_stf: model.net.fit_per_scene=true (20 extra epochs on each test scene's F1 "
                              "and F3) is not implemented yet; set model.net.fit_per_scene=false.")
        if int(max_epochs) < 1 or int(n_snapshots) < 1:
            raise ConfigError(f"cyclegan_stf: model.net.max_epochs={max_epochs} and n_snapshots={n_snapshots} must "
                              f"be >= 1 (max_epochs is normally ${{model.train.max_epochs}}).")
        self.max_epochs, self.every = int(max_epochs), max(1, int(max_epochs) // int(n_snapshots))
        self.g_ab = resnet_generator(width=width, n_blocks=n_blocks)
        self.g_ba = resnet_generator(width=width, n_blocks=n_blocks)
        self.discriminator = nn.ModuleDict({
            d: PatchDiscriminator(1, d_widths, padding=1, bias=True, norm="instance") for d in ("a", "b")})
        self.snapshots = nn.ModuleList()
        self.fsdaf = fsdaf
        self.cycle_weight, self.identity_weight = cycle_weight, identity_weight
        self.adv_weight, self.gan_mode, self.coarse_factor = adv_weight, gan_mode, coarse_factor
        self.norm = None  # set by the training core; FSDAF works in Kelvin

    # --- CycleGAN training (the cycle adversarial module) ---------------------------------------------------------
    def domains(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """A = F1 patches, B = F3 patches shifted by one item, so that the two domains are sampled unpaired."""
        return batch["fine_ref"], batch["fine_ref2"].roll(1, dims=0)

    def cycle_terms(self, batch: dict) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Cycle and identity L1 terms (whole reference patches, no mask: F2 is never read) and the fakes."""
        real_a, real_b = self.domains(batch)
        fake_b, fake_a = self.g_ab(real_a), self.g_ba(real_b)
        l1 = nn.functional.l1_loss
        cycle = l1(self.g_ba(fake_b), real_a) + l1(self.g_ab(fake_a), real_b)
        identity = l1(self.g_ab(real_b), real_b) + l1(self.g_ba(real_a), real_a)
        loss = self.cycle_weight * cycle + self.identity_weight * identity
        parts = {"loss": loss, "cycle": cycle.detach(), "identity": identity.detach()}
        return parts, {"real_a": real_a, "real_b": real_b, "fake_a": fake_a, "fake_b": fake_b}

    def compute_loss(self, batch: dict, epoch: int, pred: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """The generators' reconstruction terms; the cycle module adds adv_weight times both GAN terms."""
        return self.cycle_terms(batch)[0]

    def d_input(self, batch: dict, image: torch.Tensor) -> torch.Tensor:
        """Unconditional discriminators: the image alone."""
        return image

    def discriminate(self, x: torch.Tensor) -> torch.Tensor:
        """Both domains' scores of x, stacked on the batch axis (the contract's single-D view; the cycle module
        scores each domain with its own discriminator)."""
        return torch.cat([self.discriminator["a"](x), self.discriminator["b"](x)], 0)

    # --- snapshots ---------------------------------------------------------------------------------------------------
    def snapshot_due(self, epoch: int) -> bool:
        """After every ``every`` epochs but the last: the current generators are always the last candidate."""
        return (epoch + 1) % self.every == 0 and epoch + 1 < self.max_epochs

    def take_snapshot(self) -> None:
        pair = nn.ModuleDict({"ab": copy.deepcopy(self.g_ab), "ba": copy.deepcopy(self.g_ba)})
        self.snapshots.append(pair.requires_grad_(False).eval())

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        """A checkpoint carries the snapshots taken in training: make their slots before the keys load."""
        marker = prefix + "snapshots."
        indices = {int(k[len(marker):].split(".")[0]) for k in state_dict if k.startswith(marker)}
        while len(self.snapshots) < (max(indices) + 1 if indices else 0):
            self.take_snapshot()
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # --- inference pipeline --------------------------------------------------------------------------------------
    def candidates(self, f1: torch.Tensor, f3: torch.Tensor) -> torch.Tensor:
        """(K, B, 1, H, W): F1, F3, then G_AB^k(F1), G_BA^k(F3) for each snapshot and the current generators."""
        out = [f1, f3]
        for g_ab, g_ba in [(s["ab"], s["ba"]) for s in self.snapshots] + [(self.g_ab, self.g_ba)]:
            out += [g_ab(f1), g_ba(f3)]
        return torch.stack(out)

    def select(self, cands: torch.Tensor, coarse_tgt: torch.Tensor) -> torch.Tensor:
        """Per batch item, the candidate with the lowest centred RMSE at the A_32 scale against C2."""
        r = self.coarse_factor
        k, b = cands.shape[:2]
        scores = centred_rmse(coarse_pool(cands.flatten(0, 1), r).view(k, b, -1, 1),
                              coarse_pool(coarse_tgt, r).view(1, b, -1, 1))[..., 0]  # (K, B)
        best = scores.argmin(0)
        return cands[best, torch.arange(b, device=cands.device)]

    @torch.no_grad()
    def forward(self, batch: dict) -> torch.Tensor:
        if self.norm is None:
            raise RuntimeError("cyclegan_stf: self.norm is not set; the training core sets it before use (FSDAF "
                               "runs in Kelvin)")
        f1, f3, c2 = batch["fine_ref"], batch["fine_ref2"], batch["coarse_tgt"]
        chosen = self.select(self.candidates(f1, f3), c2)
        first = nearer_is_first(batch.get("meta"), f1.shape[0]).to(f1.device).view(-1, 1, 1, 1)
        enhanced = wavelet_enhance(chosen, torch.where(first, f1, f3))
        synthetic = upsample(coarse_pool(enhanced, self.coarse_factor), enhanced.shape[-2:])
        k = self.norm.to_kelvin
        sample = {"fine_ref": k(enhanced), "coarse_ref": k(synthetic), "coarse_tgt": k(c2),
                  "meta": {key: v for key, v in (batch.get("meta") or {}).items() if key in ("offset", "coarse_block")}}
        return self.norm.from_kelvin(self.fsdaf(sample))


def linear_decay(epoch: int, constant_epochs: int, max_epochs: int) -> float:
    """CycleGAN's schedule as a LambdaLR factor: 1 for ``constant_epochs``, then linearly towards 0 at max_epochs."""
    return 1.0 - max(0, epoch + 1 - constant_epochs) / float(max(1, max_epochs - constant_epochs) + 1)
