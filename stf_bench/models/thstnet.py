"""THSTNet (Hu, Pan, Yang, Dai, Chen, IEEE TGRS 63, 2025, doi 10.1109/TGRS.2025.3552577): a two-stage hierarchical
spatiotemporal fusion network for land-surface temperature with Transformer. Label: official-code.

Design read from GitHub HuPengHua2021/THSTNet @c930199 (stage_one/stage1.py, stage_two/{stage2,down_block,
swin_fusion,Texture_Transformer}.py, base_models/swin_transformer.py, tools/{loss,pytorch_ssim}.py) and re-written
here; see specs/models.md part 2 §18.
- Stage 1: a parameter-free per-16x16-window linear mapping (C_ref -> C_tgt applied to F_ref, C_ref -> F_ref applied
  to C_tgt) gives two first guesses; a Swin U-Net fuses them. It also hands its down and up features to stage 2.
- Stage 2: Swin encoders (one shared by C_ref and C_tgt, one for F_ref); per level a texture transformer moves F_ref
  patches to where C_tgt matches C_ref best (hard attention over the whole patch) and adds the coarse change; a
  Swin decoder fuses that with C_tgt and, per level, with stage 1's features (cross-stage fusion).
- Loss of each stage: Charbonnier (eps^2 = 1e-6) + (1 - MS-SSIM, relu variant), computed as the official code does on
  the internal [0, 1] range with data range 1. Pixels where |C_ref - F_ref| > 8 K leave the Charbonnier mask.

One run trains both stages (spec): the first `stage1_fraction` of the epochs train stage 1; later epochs train stage
2 with stage 1 frozen (no_grad, eval mode). `forward` returns the output of the latest stage trained (a persistent
buffer, so a checkpoint predicts with the stage it was saved in): validation during stage 1 measures stage 1.

Fidelity (/work/scratch/thstnet/fidelity.py, outside the repository): the official stage_one / stage_two modules
(patch 256, one band, randomised biases and norms) with their weights copied into this module, same 256 px input:
max abs diff 1.0e-15 (stage 1) and 7.2e-16 (stage 2) with both sides in float64. In float32 ours stays within
7.0e-7 / 4.6e-4 of the official float64 output, while the official float32 run is 0.67 / 0.28 away from it: its
float32 pinv is unstable on 16x16 windows, hence our float64 mapping.

Deliberate deviations:
- Internal range: inputs are mapped x' = 0.1 + 0.8 x (blocks/ranges.py UNIT) and the Tanh output mapped back
  (`output_activation: none` removes the Tanh). The official data are scaled to [0, 1] outright.
- The window mapping's pinv runs in float64 (uniform windows are singular; float32 is unstable there).
- The texture search takes max/argmax over chunks of `search_chunk` positions, in float32 at least, and computes R*
  as the dot product of the chosen patch pair: the same values and gradient as the official full R matrix
  (16384^2 per sample at the 128^2 level) without storing it.
- Maps smaller than the Swin window (patches below 256 px) read the window-8 relative-position table's centre
  instead of building a smaller table (blocks/swin_clamped.py); at 256 px nothing changes.
- Official ResBlocks are not chained (each is applied to the same input; only the last result is kept):
  `chain_resblocks: false` reproduces this, so the first ResBlock of each texture transformer never trains
  (its parameters still count, as in the official model); `true` chains them.
- The official code trains the stages in two runs with their own schedulers (stage 1 on validation RMSE, stage 2 on
  SSIM); here one ReduceLROnPlateau on validation SSIM spans both stages.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from stf_bench.models.blocks.masked import fill_invalid, masked_charbonnier
from stf_bench.models.blocks.msssim import ms_ssim
from stf_bench.models.blocks.ranges import UNIT
from stf_bench.models.blocks.swin import PatchEmbed, PatchMerging
from stf_bench.models.blocks.swin_clamped import ClampedSwinLayer

OUTPUT_ACTIVATIONS = ("tanh", "none")
KEYS = ("coarse_ref", "fine_ref", "coarse_tgt")
to_internal, from_internal = UNIT.to_internal, UNIT.from_internal


def nchw(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 3, 1, 2)


def nhwc(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 2, 3, 1)


def window_mapping(src: torch.Tensor, dst: torch.Tensor, apply_to: torch.Tensor, window: int) -> torch.Tensor:
    """Per window (a matrix X of src, Y of dst): M = Y X^T pinv(X X^T), returned as M @ (the window of apply_to).

    The least-squares linear map taking src's window rows to dst's, applied to a third image; float64 because
    uniform windows make X X^T singular.
    """
    b, c, h, w = src.shape

    def windows(t):
        return t.double().reshape(b, c, h // window, window, w // window, window).permute(0, 2, 4, 1, 3, 5)

    x, y, a = windows(src), windows(dst), windows(apply_to)
    xt = x.transpose(-2, -1)
    out = (y @ xt) @ torch.linalg.pinv(x @ xt) @ a
    return out.permute(0, 3, 1, 4, 2, 5).reshape(b, c, h, w).to(src.dtype)


def texture_search(c_ref: torch.Tensor, f_ref: torch.Tensor, c_tgt: torch.Tensor, chunk: int):
    """Hard attention: for each C_tgt position the best-matching C_ref 3x3 patch (cosine R* and index).

    Returns T (the F_ref patches at those indices, folded and divided by 9) and S = R* as (B, 1, H, W). The argmax is
    taken over chunks of `chunk` C_tgt positions without gradient and in float32 or float64 (bf16 ties would flip the chosen
    patch); R* is then recomputed from the chosen pair, which carries the same gradient as max(R).
    """
    b, _, h, w = c_tgt.shape
    dtype = torch.promote_types(c_tgt.dtype, torch.float32)
    with torch.autocast(device_type=c_tgt.device.type, enabled=False):
        q = F.normalize(F.unfold(c_tgt.to(dtype), 3, padding=1), dim=1)  # (B, 9C, L)
        k = F.normalize(F.unfold(c_ref.to(dtype), 3, padding=1), dim=1)
        with torch.no_grad():
            kt = k.transpose(1, 2)
            idx = torch.cat([torch.bmm(kt, q[:, :, s:s + chunk]).argmax(dim=1) for s in range(0, h * w, chunk)], 1)
        gather = idx.unsqueeze(1).expand(-1, k.shape[1], -1)
        r_star = (torch.gather(k, 2, gather) * q).sum(dim=1)  # (B, L)
        t = torch.gather(F.unfold(f_ref.to(dtype), 3, padding=1), 2, gather)
        t = F.fold(t, (h, w), 3, padding=1) / 9.0
    return t.to(f_ref.dtype), r_star.view(b, 1, h, w).to(c_tgt.dtype)


class ResBlock(nn.Module):
    """x + Conv3x3(ReLU(Conv3x3(x)))."""

    def __init__(self, dim: int):
        super().__init__()
        self.conv1 = nn.Conv2d(dim, dim, 3, padding=1)
        self.conv2 = nn.Conv2d(dim, dim, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(x)))


class TextureTransformer(nn.Module):
    """dC = tail(ResBlocks(head(C_tgt - C_ref))) + head(...); out = dC + R* Conv5x5([dC, T]) on (B, H, W, C) maps."""

    def __init__(self, dim: int, res_blocks: int = 2, chain_resblocks: bool = False, search_chunk: int = 2048):
        super().__init__()
        self.chain_resblocks, self.search_chunk = chain_resblocks, search_chunk
        self.conv_head = nn.Conv2d(dim, dim, 5, padding=2)
        self.res_blocks = nn.ModuleList(ResBlock(dim) for _ in range(res_blocks))
        self.conv_tail = nn.Conv2d(dim, dim, 5, padding=2)
        self.conv_squeeze = nn.Conv2d(2 * dim, dim, 5, padding=2)

    def forward(self, c_ref, f_ref, c_tgt) -> torch.Tensor:
        c_ref, f_ref, c_tgt = nchw(c_ref), nchw(f_ref), nchw(c_tgt)
        t, s = texture_search(c_ref, f_ref, c_tgt, self.search_chunk)
        x1 = self.conv_head(c_tgt - c_ref)
        if self.chain_resblocks:
            x = x1
            for blk in self.res_blocks:
                x = blk(x)
        else:  # official: every ResBlock is applied to x1 and only the last result kept
            x = self.res_blocks[-1](x1)
        delta = self.conv_tail(x) + x1
        return nhwc(delta + self.conv_squeeze(torch.cat([delta, t], dim=1)) * s)


class DownStage(nn.Module):
    def __init__(self, dim: int, out_dim: int, depth: int, window: int, head_dim: int, mlp_ratio: float):
        super().__init__()
        self.layer = ClampedSwinLayer(dim, depth, dim // head_dim, window, mlp_ratio)
        self.merge = PatchMerging(dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.merge(self.layer(x))


class SwinEncoder(nn.Module):
    """PatchEmbed k2 + LN, then per stage a Swin layer and a PatchMerging: five levels, channel-last."""

    def __init__(self, in_ch: int, dims: list[int], depths: list[int], window: int, head_dim: int,
                 mlp_ratio: float):
        super().__init__()
        self.embed = PatchEmbed(in_ch, dims[0], 2)
        self.stages = nn.ModuleList(DownStage(dims[i], dims[i + 1], d, window, head_dim, mlp_ratio)
                                    for i, d in enumerate(depths))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        levels = [self.embed(x)]
        for stage in self.stages:
            levels.append(stage(levels[-1]))
        return levels


def up_conv(dim: int) -> nn.Sequential:
    """Conv3x3 (C -> 4C) + PixelShuffle(2)."""
    return nn.Sequential(nn.Conv2d(dim, 4 * dim, 3, padding=1), nn.PixelShuffle(2))


def head(dim: int) -> nn.Sequential:
    """Conv3x3 (C -> 4C) + PixelShuffle(2) -> Conv3x3 (C -> 1); linear (the Tanh is applied in `forward`)."""
    return nn.Sequential(nn.Conv2d(dim, 4 * dim, 3, padding=1), nn.PixelShuffle(2), nn.Conv2d(dim, 1, 3, padding=1))


class StageOneUp(nn.Module):
    """up(prev) concatenated after the skip -> Linear (2C -> C_out) -> Swin layer (prev and skip are C wide)."""

    def __init__(self, dim: int, out_dim: int, depth: int, window: int, head_dim: int, mlp_ratio: float):
        super().__init__()
        self.up = up_conv(dim)
        self.fuse = nn.Linear(2 * dim, out_dim)
        self.layer = ClampedSwinLayer(out_dim, depth, out_dim // head_dim, window, mlp_ratio)

    def forward(self, prev, skip) -> torch.Tensor:
        return self.layer(self.fuse(torch.cat([skip, nhwc(self.up(nchw(prev)))], dim=-1)))


class StageOne(nn.Module):
    """Window mapping -> Swin U-Net. Returns (output before Tanh, down features, up features), fine to coarse."""

    def __init__(self, dims, depths, window, head_dim, mlp_ratio, map_window):
        super().__init__()
        self.map_window = map_window
        self.encoder = SwinEncoder(2, dims, depths, window, head_dim, mlp_ratio)
        n = len(depths)
        self.up_blocks = nn.ModuleList(
            StageOneUp(dims[i], dims[i - 1] if i > 0 else dims[0], depths[i], window, head_dim, mlp_ratio)
            for i in reversed(range(n)))
        self.head = head(dims[0])

    def forward(self, c_ref, f_ref, c_tgt):
        guess = torch.cat([window_mapping(c_ref, c_tgt, f_ref, self.map_window),
                           window_mapping(c_ref, f_ref, c_tgt, self.map_window)], dim=1)
        levels = self.encoder(guess)
        x, ups = levels[-1], []
        for i, block in zip(reversed(range(len(self.up_blocks))), self.up_blocks):
            x = block(x, levels[i])
            ups.append(x)
        # down[i] and ups[i] share a resolution: level n-1-i of the encoder (the official down_feature order)
        return self.head(nchw(x)), levels[-2::-1], ups


class CrossStageFusion(nn.Module):
    """Conv3x3 (stage-1 down) and Conv3x3 (stage-1 up), concatenated with x -> Conv3x3 (3C -> C)."""

    def __init__(self, down_dim: int, up_dim: int, dim: int):
        super().__init__()
        self.conv_down = nn.Conv2d(down_dim, dim, 3, padding=1)
        self.conv_up = nn.Conv2d(up_dim, dim, 3, padding=1)
        self.project = nn.Conv2d(3 * dim, dim, 3, padding=1)

    def forward(self, down, up, x) -> torch.Tensor:
        y = torch.cat([self.conv_down(nchw(down)), self.conv_up(nchw(up)), nchw(x)], dim=1)
        return nhwc(self.project(y))


class StageTwoUp(nn.Module):
    """up(prev); x = TT(level) + F_ref level; Linear (3C -> C_out) on [C_tgt, x, up] -> Swin layer."""

    def __init__(self, dim, out_dim, depth, window, head_dim, mlp_ratio, tt_kwargs):
        super().__init__()
        self.up = up_conv(dim)
        self.texture = TextureTransformer(dim, **tt_kwargs)
        self.fuse = nn.Linear(3 * dim, out_dim)
        self.layer = ClampedSwinLayer(out_dim, depth, out_dim // head_dim, window, mlp_ratio)

    def forward(self, prev, c_ref, f_ref, c_tgt) -> torch.Tensor:
        up = nhwc(self.up(nchw(prev)))
        x = self.texture(c_ref, f_ref, c_tgt) + f_ref
        return self.layer(self.fuse(torch.cat([c_tgt, x, up], dim=-1)))


class StageTwo(nn.Module):
    def __init__(self, dims, depths, window, head_dim, mlp_ratio, tt_kwargs):
        super().__init__()
        n = len(depths)
        self.coarse_encoder = SwinEncoder(1, dims, depths, window, head_dim, mlp_ratio)  # C_ref and C_tgt
        self.fine_encoder = SwinEncoder(1, dims, depths, window, head_dim, mlp_ratio)
        self.bottleneck = TextureTransformer(dims[n], **tt_kwargs)
        outs = [dims[i - 1] if i > 0 else dims[0] for i in range(n)]  # the up-block at level i narrows to this
        self.up_blocks = nn.ModuleList(
            StageTwoUp(dims[i], outs[i], depths[i], window, head_dim, mlp_ratio, tt_kwargs)
            for i in reversed(range(n)))
        # stage-1 down features at level i have width dims[i], its up features (and ours) outs[i]
        self.cross_fusion = nn.ModuleList(CrossStageFusion(dims[i], outs[i], outs[i]) for i in reversed(range(n)))
        self.head = head(dims[0])

    def forward(self, c_ref, f_ref, c_tgt, down, ups) -> torch.Tensor:
        cr, ct, fr = self.coarse_encoder(c_ref), self.coarse_encoder(c_tgt), self.fine_encoder(f_ref)
        x = self.bottleneck(cr[-1], fr[-1], ct[-1]) + fr[-1]
        for k, (block, fusion) in enumerate(zip(self.up_blocks, self.cross_fusion)):
            lv = len(self.up_blocks) - 1 - k
            x = fusion(down[k], ups[k], block(x, cr[lv], fr[lv], ct[lv]))
        return self.head(nchw(x))


class THSTNet(nn.Module):
    """C_ref, F_ref, C_tgt (normalized, B x 1 x H x W) -> F_tgt (normalized), from stage 1 or stage 2.

    H and W must equal `fixed_size` when it is set; else multiples of `size_multiple` (16: the mapping window and four
    halvings) such that every Swin map is either at most one window or a multiple of it (64, 128, 256, 512 px).
    """

    def __init__(
        self,
        max_epochs: int,
        stage1_fraction: float = 0.5,
        embed_dim: int = 32,
        depths: tuple[int, ...] = (2, 2, 6, 2),
        window_size: int = 8,
        head_dim: int = 32,
        mlp_ratio: float = 1.0,
        map_window: int = 16,
        res_blocks: int = 2,
        chain_resblocks: bool = False,
        search_chunk: int = 2048,
        mask_ref_diff_k: float | None = 8.0,
        charbonnier_eps: float = 1e-3,
        output_activation: str = "tanh",
        fixed_size: int | None = None,
    ):
        super().__init__()
        if output_activation not in OUTPUT_ACTIVATIONS:
            raise ValueError(f"THSTNet: output_activation={output_activation!r}; use one of {OUTPUT_ACTIVATIONS}")
        if int(max_epochs) < 1 or not 0.0 < stage1_fraction < 1.0:
            raise ValueError(f"THSTNet: max_epochs={max_epochs} must be >= 1 and stage1_fraction={stage1_fraction} "
                             "in (0, 1); max_epochs is normally ${model.train.max_epochs}")
        depths = list(depths)
        n = len(depths)
        dims = [embed_dim * 2 ** i for i in range(n)] + [embed_dim * 2 ** (n - 1)]
        if any(d % head_dim for d in dims):
            raise ValueError(f"THSTNet: head_dim {head_dim} must divide every level width {dims}")
        self.size_multiple = max(map_window, 2 ** n)
        if fixed_size is not None and fixed_size % self.size_multiple:
            raise ValueError(f"THSTNet: fixed_size {fixed_size} is not a multiple of {self.size_multiple}")
        self.fixed_size, self.window_size, self.n_levels = fixed_size, window_size, n
        self.stage1_epochs = max(1, round(stage1_fraction * int(max_epochs)))
        self.output_activation = output_activation
        self.mask_ref_diff_k, self.charbonnier_eps = mask_ref_diff_k, charbonnier_eps
        self.norm = None  # AffineNorm, set by the training core; the loss mask needs Kelvin
        tt = {"res_blocks": res_blocks, "chain_resblocks": chain_resblocks, "search_chunk": search_chunk}
        self.stage1 = StageOne(dims, depths, window_size, head_dim, mlp_ratio, map_window)
        self.stage2 = StageTwo(dims, depths, window_size, head_dim, mlp_ratio, tt)
        # the stage whose output `forward` returns: 2 once stage 2 has trained (saved with the checkpoint)
        self.register_buffer("active_stage", torch.tensor(1))

    def stage(self, epoch: int) -> int:
        return 1 if epoch < self.stage1_epochs else 2

    def _check_inputs(self, batch: dict) -> tuple[torch.Tensor, ...]:
        missing = [k for k in KEYS if k not in batch]
        if missing:
            raise KeyError(f"THSTNet: batch lacks {missing}; it reads coarse_ref, fine_ref and coarse_tgt")
        c_ref, f_ref, c_tgt = (batch[k] for k in KEYS)
        shape = tuple(c_ref.shape)
        if len(shape) != 4 or shape[1] != 1 or tuple(f_ref.shape) != shape or tuple(c_tgt.shape) != shape:
            raise ValueError(f"THSTNet: coarse_ref {shape}, fine_ref {tuple(f_ref.shape)} and coarse_tgt "
                             f"{tuple(c_tgt.shape)} must share one shape (B, 1, H, W)")
        h, w = shape[-2:]
        if self.fixed_size is not None and (h, w) != (self.fixed_size, self.fixed_size):
            raise ValueError(
                f"THSTNet: input is {h}x{w} but the model's fixed_size is {self.fixed_size}; cut "
                f"{self.fixed_size}x{self.fixed_size} patches (the evaluation tiler does this for whole scenes)")
        sides = [s // 2 ** i for s in (h, w) for i in range(1, self.n_levels + 1)]
        if h % self.size_multiple or w % self.size_multiple or any(
                s > self.window_size and s % self.window_size for s in sides):
            raise ValueError(
                f"THSTNet: input is {h}x{w}; H and W must be multiples of {self.size_multiple} whose halvings "
                f"H/2 .. H/{2 ** self.n_levels} are each <= {self.window_size} or a multiple of it "
                f"(64, 128, 256, 512 work)")
        return tuple(to_internal(x) for x in (c_ref, f_ref, c_tgt))

    def _bound(self, y: torch.Tensor) -> torch.Tensor:
        return torch.tanh(y) if self.output_activation == "tanh" else y

    def run_stage1(self, c_ref, f_ref, c_tgt):
        """Internal-range stage-1 output and its down/up features."""
        y, down, ups = self.stage1(c_ref, f_ref, c_tgt)
        return self._bound(y), down, ups

    def run_stage2(self, c_ref, f_ref, c_tgt) -> torch.Tensor:
        """Internal-range stage-2 output; stage 1 is frozen: eval mode, no gradient."""
        was_training = self.stage1.training
        self.stage1.eval()
        with torch.no_grad():
            _, down, ups = self.run_stage1(c_ref, f_ref, c_tgt)
        self.stage1.train(was_training)
        return self._bound(self.stage2(c_ref, f_ref, c_tgt, down, ups))

    def forward(self, batch: dict) -> torch.Tensor:
        inputs = self._check_inputs(batch)
        if int(self.active_stage) == 1:
            return from_internal(self.run_stage1(*inputs)[0])
        return from_internal(self.run_stage2(*inputs))

    def loss_mask(self, batch: dict) -> torch.Tensor:
        """valid_tgt minus the pixels where |C_ref - F_ref| > mask_ref_diff_k (a changed or mismatched reference)."""
        mask = batch["valid_tgt"].bool()
        if self.mask_ref_diff_k is None:
            return mask
        if self.norm is None:
            raise RuntimeError("THSTNet: self.norm is None; the training core sets it before fitting (the loss "
                               "mask compares C_ref and F_ref in Kelvin)")
        diff = (self.norm.to_kelvin(batch["coarse_ref"]) - self.norm.to_kelvin(batch["fine_ref"])).abs()
        return mask & (diff <= self.mask_ref_diff_k)

    def compute_loss(self, batch: dict, epoch: int, pred: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """The loss of the stage that trains at `epoch` (stage 1 first, then stage 2 with stage 1 frozen).

        `pred` is not used: the stage trained may not be the one `forward` returned."""
        stage = self.stage(epoch)
        inputs = self._check_inputs(batch)
        y = self.run_stage1(*inputs)[0] if stage == 1 else self.run_stage2(*inputs)
        if stage == 2 and int(self.active_stage) != 2:
            self.active_stage.fill_(2)
        target = to_internal(batch["fine_tgt"])
        charb = masked_charbonnier(y, target, self.loss_mask(batch), self.charbonnier_eps)
        if "valid_tgt" in batch:  # MS-SSIM mixes neighbours: unobserved target pixels take the prediction's value
            target = fill_invalid(target, batch["valid_tgt"].bool(), y)
        ssim_term = 1.0 - ms_ssim(y, target, 1.0, variant="relu")
        loss = charb + ssim_term
        return {"loss": loss, "charbonnier": charb.detach(), "ms_ssim": ssim_term.detach(),
                "stage": torch.tensor(float(stage), device=loss.device)}
