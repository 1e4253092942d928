"""STFDiff (Huang, He, Zhang, Xia, Zhang, Information Fusion 111, 102505, 2024, doi 10.1016/j.inffus.2024.102505):
a conditional diffusion model whose denoiser is a dual-stream U-Net; spec: specs/models.md part 2 section 9.

Label official-code. Design read from GitHub prowDIY/STF @22a1c99 (also published as huang-he99/STF):
src/model/stfdiff/model6/{pred_resnet,bi_pred_resnet,diffusion}.py, src/trainer/stfdiff_trainer.py and the
model6 configs (PredNoiseNet(dim=64, dim_mults=(1, 2, 4)), timesteps 100, DDIM 50, eta 0, objective pred_x0, L1,
Adam 1e-3, batch 24, grad-norm clip 1.0, EMA 0.995 updated once per epoch), and re-written here.

The clean stream encodes the condition (F1 and [C1, C2]; the bi variant F1, F3 and [C1, C2, C3]), the noisy stream
x_t with time FiLM; every skip is the difference noisy - clean, so the decoder sees what the noisy image adds to
the condition. The network predicts x0 (trained with L1 at a uniformly drawn timestep, masked by ``valid_tgt``);
sampling is deterministic DDIM with x0 clipped to [-1, 1], seeded by ``sampling_seed`` on every call, so a scene
gives the same prediction each time; ``n_samples`` draws are averaged.

Fidelity: /work/scratch/stfdiff/fidelity.py loads the official PredNoiseNet (1 band) and BiPredNoiseNet, copies
its weights into ``STFDiff.denoiser`` (key map in that script) and compares the denoiser outputs on the same
(x_t, t, condition) at 64 x 64 (random weights, t = 3 and 87): max abs difference 0.0 for STFDiff and 0.0 for the bi
variant; the official DDIM loop (GaussianDiffusion.ddim_sample, 50 of 100 steps, eta 0, fed our initial noise)
against ``sample``: 0.0; the training loss at the same (t, noise): equal to 6 decimals. Command:
``cd /work/scratch/stfdiff && PYTHONPATH=/work/h1:shim:. python fidelity.py``.

Deviations:
- Values: inputs map to the internal [-1, 1] range with x' = 1.6 x - 0.8 (blocks/ranges.py SYMMETRIC), the output
  is mapped back; the x0 clip thus sits 12.5 % of the training span beyond the training extremes.
- The official PredNoiseNet builds an ``init_conv`` (640 parameters) that forward never uses; it is left out
  (count 7,466,689 vs the catalogue's 7,467,329 which includes it: -0.009 %).
- Sampling draws its initial noise from a seeded torch.Generator instead of the global RNG; with eta = 0 the
  official loop's per-step noise draws are multiplied by 0, so they are not drawn.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from stf_bench.models.blocks.masked import masked_l1
from stf_bench.models.blocks.ranges import SYMMETRIC

to_internal, from_internal = SYMMETRIC.to_internal, SYMMETRIC.from_internal


def cosine_alphas_cumprod(timesteps: int, s: float = 0.008) -> torch.Tensor:
    """Nichol & Dhariwal's cosine schedule, betas clipped at 0.999, in float64 (as the official code builds it)."""
    x = torch.linspace(0, timesteps, timesteps + 1, dtype=torch.float64)
    f = torch.cos(((x / timesteps) + s) / (1 + s) * math.pi * 0.5) ** 2
    f = f / f[0]
    betas = torch.clip(1 - f[1:] / f[:-1], 0, 0.999)
    return torch.cumprod(1.0 - betas, dim=0)


def ddim_time_pairs(timesteps: int, steps: int) -> list[tuple[int, int]]:
    """(t, t_next) from T-1 down to (.., -1): the official linspace(-1, T-1, steps+1) truncated to integers."""
    times = list(reversed(torch.linspace(-1, timesteps - 1, steps=steps + 1).int().tolist()))
    return list(zip(times[:-1], times[1:]))


def sinusoidal_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    half = dim // 2
    freq = torch.exp(torch.arange(half, device=t.device) * -(math.log(10000) / (half - 1)))
    arg = t.float()[:, None] * freq[None, :]
    return torch.cat((arg.sin(), arg.cos()), dim=-1)


class WSConv2d(nn.Conv2d):
    """Weight-standardised convolution (Qiao et al. 2019): per output channel zero mean, unit variance.

    Without autograd the standardised weight is kept until the weight changes (its version counter moves), so the
    50 network evaluations of one sample standardise it once."""

    _cache: tuple | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        eps = 1e-5 if x.dtype == torch.float32 else 1e-3
        w = self.weight
        key = (w._version, w.data_ptr(), eps)
        if torch.is_grad_enabled() or self._cache is None or self._cache[0] != key:
            mean = w.mean(dim=(1, 2, 3), keepdim=True)
            var = w.var(dim=(1, 2, 3), unbiased=False, keepdim=True)
            standardised = (w - mean) * (var + eps).rsqrt()
            if torch.is_grad_enabled():
                return F.conv2d(x, standardised, self.bias, self.stride, self.padding)
            self._cache = (key, standardised)
        return F.conv2d(x, self._cache[1], self.bias, self.stride, self.padding)


class ResBlock(nn.Module):
    """WSConv3x3 -> GN -> (time FiLM: x (scale + 1) + shift) -> SiLU -> Conv3x3 -> GN -> ReLU, plus a (1x1) skip."""

    def __init__(self, dim_in: int, dim_out: int, time_dim: int | None = None, groups: int = 8):
        super().__init__()
        self.film = nn.Sequential(nn.SiLU(), nn.Linear(time_dim, 2 * dim_out)) if time_dim else None
        self.conv1 = WSConv2d(dim_in, dim_out, 3, padding=1)
        self.norm1 = nn.GroupNorm(groups, dim_out)
        self.conv2 = nn.Conv2d(dim_out, dim_out, 3, padding=1)
        self.norm2 = nn.GroupNorm(groups, dim_out)
        self.skip = nn.Conv2d(dim_in, dim_out, 1) if dim_in != dim_out else nn.Identity()

    def forward(self, x: torch.Tensor, temb: torch.Tensor | None = None) -> torch.Tensor:
        h = self.norm1(self.conv1(x))
        if self.film is not None:
            scale, shift = self.film(temb)[:, :, None, None].chunk(2, dim=1)
            h = h * (scale + 1) + shift
        h = F.relu(self.norm2(self.conv2(F.silu(h))))
        return h + self.skip(x)


class DualStreamUNet(nn.Module):
    """The denoiser: x0 from (x_t, t, fine condition, coarse condition), all in the internal [-1, 1] range."""

    def __init__(self, in_ch: int = 1, dim: int = 64, dim_mults=(1, 2, 4), groups: int = 8, n_refs: int = 1):
        super().__init__()
        self.dim, time_dim = dim, 4 * dim
        self.time_mlp = nn.Sequential(nn.Linear(dim, time_dim), nn.GELU(), nn.Linear(time_dim, time_dim))
        self.fine_stem = nn.Conv2d(in_ch * n_refs, dim, 3, padding=1)
        self.coarse_stem = nn.Conv2d(in_ch * (n_refs + 1), dim, 3, padding=1)
        self.clean_stem = nn.Conv2d(2 * dim, dim, 1)
        self.noisy_stem = nn.Conv2d(in_ch, dim, 3, padding=1)
        dims = [dim, *(dim * m for m in dim_mults)]
        pairs = list(zip(dims[:-1], dims[1:]))
        self.clean_blocks, self.noisy_blocks = nn.ModuleList(), nn.ModuleList()
        self.clean_downs, self.noisy_downs = nn.ModuleList(), nn.ModuleList()
        for k, (a, b) in enumerate(pairs):
            last = k == len(pairs) - 1
            self.clean_blocks.append(ResBlock(a, a, groups=groups))
            self.noisy_blocks.append(ResBlock(a, a, time_dim, groups))
            for downs in (self.clean_downs, self.noisy_downs):  # stride-2 4x4, the last level a 3x3 at H/4
                downs.append(nn.Conv2d(a, b, 3, padding=1) if last else nn.Conv2d(a, b, 4, 2, 1))
        self.clean_mid = ResBlock(dims[-1], dims[-1], groups=groups)
        self.noisy_mid = ResBlock(dims[-1], dims[-1], time_dim, groups)
        self.up_blocks, self.ups = nn.ModuleList(), nn.ModuleList()
        for k, (a, b) in enumerate(reversed(pairs)):
            last = k == len(pairs) - 1
            self.up_blocks.append(ResBlock(b + a, b, time_dim, groups))
            self.ups.append(nn.Conv2d(b, a, 3, padding=1) if last
                            else nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(b, a, 3, padding=1)))
        self.out_block = ResBlock(2 * dim, dim, time_dim, groups)
        self.head = nn.Conv2d(dim, in_ch, 1)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, fine: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
        clean = self.clean_stem(torch.cat((self.fine_stem(fine), self.coarse_stem(coarse)), dim=1))
        noisy = self.noisy_stem(x_t)
        r = noisy - clean
        temb = self.time_mlp(sinusoidal_embedding(t, self.dim))
        skips = []
        for cb, nb, cd, nd in zip(self.clean_blocks, self.noisy_blocks, self.clean_downs, self.noisy_downs):
            clean, noisy = cb(clean), nb(noisy, temb)
            skips.append(noisy - clean)
            clean, noisy = cd(clean), nd(noisy)
        h = self.noisy_mid(noisy, temb) - self.clean_mid(clean)
        for block, up in zip(self.up_blocks, self.ups):
            h = up(block(torch.cat((h, skips.pop()), dim=1), temb))
        return self.head(self.out_block(torch.cat((h, r), dim=1), temb))


class STFDiff(nn.Module):
    """Denoiser plus the cosine-schedule diffusion around it: ``compute_loss`` trains, ``forward`` samples."""

    def __init__(self, in_ch: int = 1, dim: int = 64, dim_mults=(1, 2, 4), groups: int = 8, n_refs: int = 1,
                 timesteps: int = 100, sampling_steps: int = 50, eta: float = 0.0, n_samples: int = 1,
                 sampling_seed: int = 0):
        super().__init__()
        if n_refs not in (1, 2):
            raise ValueError(f"stfdiff: n_refs={n_refs}; use 1 (STFDiff) or 2 (the bi variant).")
        if not 1 <= sampling_steps <= timesteps or n_samples < 1:
            raise ValueError(f"stfdiff: sampling_steps={sampling_steps} must lie in 1..timesteps ({timesteps}) and "
                             f"n_samples={n_samples} be >= 1.")
        self.norm = None
        self.n_refs, self.timesteps = n_refs, timesteps
        self.sampling_steps, self.eta, self.n_samples, self.sampling_seed = sampling_steps, eta, n_samples, sampling_seed
        self.denoiser = DualStreamUNet(in_ch, dim, dim_mults, groups, n_refs)
        ac = cosine_alphas_cumprod(timesteps)
        for name, value in (("alphas_cumprod", ac), ("sqrt_ac", ac.sqrt()), ("sqrt_1m_ac", (1 - ac).sqrt()),
                            ("sqrt_recip_ac", (1 / ac).sqrt()), ("sqrt_recipm1_ac", (1 / ac - 1).sqrt())):
            self.register_buffer(name, value.float(), persistent=False)

    @property
    def sampling(self) -> dict:
        """What a run records next to its model config: the settings that decide the sampled prediction."""
        return {"sampling_steps": self.sampling_steps, "n_samples": self.n_samples,
                "sampling_seed": self.sampling_seed, "eta": self.eta}

    def condition(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        fine_keys, coarse_keys = ["fine_ref"], ["coarse_ref", "coarse_tgt"]
        if self.n_refs == 2:
            missing = [k for k in ("fine_ref2", "coarse_ref2") if k not in batch]
            if missing:
                raise ValueError(f"stfdiff bi variant (n_refs=2) needs {missing}: use pairing=two_refs.")
            fine_keys, coarse_keys = ["fine_ref", "fine_ref2"], ["coarse_ref", "coarse_tgt", "coarse_ref2"]
        fine = to_internal(torch.cat([batch[k] for k in fine_keys], dim=1))
        return fine, to_internal(torch.cat([batch[k] for k in coarse_keys], dim=1))

    def denoise(self, x_t: torch.Tensor, t: torch.Tensor, fine: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
        """x0 predicted in the internal range."""
        return self.denoiser(x_t, t, fine, coarse)

    def compute_loss(self, batch: dict, epoch: int, pred: torch.Tensor | None = None) -> dict:
        """pred_x0 objective: L1 between the denoiser's x0 and F2 at a uniform timestep, over valid_tgt (``pred``,
        a sampled prediction, has no part in it). x_t is noised from F2 itself, so unobserved target pixels (whatever
        the loader wrote there) are replaced by C2 first: the masked loss alone would still let them into the input."""
        target = batch["fine_tgt"]
        if "valid_tgt" in batch:
            target = torch.where(batch["valid_tgt"].bool(), target, batch["coarse_tgt"])
        x0 = to_internal(target)
        fine, coarse = self.condition(batch)
        t = torch.randint(0, self.timesteps, (x0.shape[0],), device=x0.device)
        noise = torch.randn_like(x0)
        x_t = self.sqrt_ac[t].view(-1, 1, 1, 1) * x0 + self.sqrt_1m_ac[t].view(-1, 1, 1, 1) * noise
        loss = masked_l1(self.denoise(x_t, t, fine, coarse), x0, batch.get("valid_tgt"))
        return {"loss": loss, "l1": loss.detach()}

    @torch.no_grad()
    def sample(self, fine: torch.Tensor, coarse: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Deterministic DDIM (eta 0) from seeded noise; x0 clipped to [-1, 1] at every step. Internal range."""
        shape = (fine.shape[0], self.denoiser.head.out_channels, *fine.shape[-2:])
        x = torch.randn(shape, generator=generator, device=fine.device, dtype=fine.dtype)
        for t, t_next in ddim_time_pairs(self.timesteps, self.sampling_steps):
            tt = torch.full((x.shape[0],), t, device=x.device, dtype=torch.long)
            x0 = self.denoise(x, tt, fine, coarse).clamp(-1.0, 1.0)
            if t_next < 0:
                return x0
            eps = (self.sqrt_recip_ac[t] * x - x0) / self.sqrt_recipm1_ac[t]
            a, a_next = self.alphas_cumprod[t], self.alphas_cumprod[t_next]
            sigma = self.eta * ((1 - a / a_next) * (1 - a_next) / (1 - a)).sqrt()
            x = x0 * a_next.sqrt() + (1 - a_next - sigma**2).sqrt() * eps
            if self.eta > 0:
                x = x + sigma * torch.randn(shape, generator=generator, device=x.device, dtype=x.dtype)
        return x

    @torch.no_grad()
    def forward(self, batch: dict) -> torch.Tensor:
        fine, coarse = self.condition(batch)
        generator = torch.Generator(device=fine.device).manual_seed(int(self.sampling_seed))
        total = sum(self.sample(fine, coarse, generator) for _ in range(self.n_samples))
        return from_internal(total / self.n_samples)
