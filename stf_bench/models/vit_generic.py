"""vit_generic: the survey's patch-transformer template, a starting point to copy.

Label: reconstructed. The template stands for the ViT family of the STF-LST survey (Bouaziz et al., arXiv
2412.16631, 2024); it is not any paper's model. The design is specs/models.md part 1, "vit_generic"; the YAML
defaults give the design count exactly (10,730,816, of which each encoder 3,159,552 and the decoder 4,214,272).

::

    F1       -> patch embed (conv p x p / p) + pos -> spatial encoder  -> S (N tokens) --+--------------+
    [C1, C2] -> patch embed (conv p x p / p) + pos -> temporal encoder -> T (N tokens) --+              |
                                         queries: linear([S, T], 2d -> d) -> decoder <- memory: [S; T] (2N)
                                                                          -> linear d -> p*p -> unpatchify
                                                                          (+ F1 + C2 - C1 with residual)

- Tokens are non-overlapping p x p patches (N = H/p * W/p). Both streams get the same fixed 2-D sin-cos positional
  embedding, computed for the token grid of each input, so any size that is a multiple of p works.
- The encoders and the decoder are torch's standard ``nn.TransformerEncoder`` / ``nn.TransformerDecoder`` layers:
  pre-norm (``norm_first``), GELU, ``batch_first``, with a final LayerNorm. Only those torch classes are used, so a
  block can be swapped for another torch layer without touching the rest.
- The decoder's queries are the fused tokens; its memory is both encoders' tokens side by side, so every query can
  attend to the fine texture and to the coarse change at once.
- ``residual: true`` (default) predicts a correction of the delta baseline F1 + (C2 - C1), which the transformer
  then only has to refine; the linear head keeps the output unbounded.
- Loss (YAML ``loss:``): L1 + 0.1 (1 - SSIM). Training: AdamW with a 10-epoch warm-up then cosine decay
  (``stf_bench.models.blocks.schedule.warmup_cosine``).

Weights are initialised as ``nn.Transformer`` does (Xavier-uniform for every matrix): torch's encoder copies one
layer ``depth`` times, so without it all layers would start identical.

Learning rate: at 1e-3 without warm-up this transformer stalls near the delta baseline when overfitting a single
sample, while at its 2e-4 it keeps learning. Start new variants from 2e-4 with the warm-up.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from stf_bench.errors import ConfigError
from stf_bench.models.blocks.fusion import delta_baseline


def sincos_position_embedding(height: int, width: int, dim: int, device=None) -> torch.Tensor:
    """(height * width, dim) fixed 2-D embedding, row-major like the tokens: a quarter of the channels each for
    sin(y w_k), cos(y w_k), sin(x w_k), cos(x w_k) with w_k = 10000^(-k / (dim / 4)), as in MAE."""
    quarter = dim // 4
    omega = 1.0 / 10000 ** (torch.arange(quarter, device=device, dtype=torch.float32) / quarter)
    y, x = torch.meshgrid(torch.arange(height, device=device, dtype=torch.float32),
                          torch.arange(width, device=device, dtype=torch.float32), indexing="ij")
    y, x = y.reshape(-1, 1) * omega, x.reshape(-1, 1) * omega
    return torch.cat([y.sin(), y.cos(), x.sin(), x.cos()], dim=1)


class PatchEmbedding(nn.Module):
    """(B, C, H, W) -> (B, N, dim) tokens of non-overlapping p x p patches (a conv with kernel and stride p)."""

    def __init__(self, in_ch: int, dim: int, patch: int):
        super().__init__()
        self.proj = nn.Conv2d(in_ch, dim, patch, stride=patch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class ViTGeneric(nn.Module):
    """Two-stream patch transformer; reads ``fine_ref``, ``coarse_ref`` and ``coarse_tgt``.

    Args (the YAML ``net`` block): ``patch`` size p, token width ``dim``, attention ``heads``, ``mlp_dim`` of the
    feed-forward layers, ``encoder_depth`` (layers per encoder) and ``decoder_depth``, ``dropout`` inside the
    transformer layers, ``residual`` (add the delta baseline), and ``size_multiple``, the YAML declaration, which
    must be a multiple of ``patch``.
    """

    def __init__(
        self,
        in_ch: int = 1,
        patch: int = 8,
        dim: int = 256,
        heads: int = 8,
        mlp_dim: int = 1024,
        encoder_depth: int = 4,
        decoder_depth: int = 4,
        dropout: float = 0.0,
        residual: bool = True,
        size_multiple: int = 8,
    ):
        super().__init__()
        if dim % 4 or dim % heads:
            raise ConfigError(f"vit_generic: model.net.dim={dim} must be a multiple of 4 (the 2-D sin-cos embedding) "
                              f"and of model.net.heads={heads}; e.g. dim: 256, heads: 8")
        if int(size_multiple) % patch:
            raise ConfigError(f"vit_generic: model.size_multiple={size_multiple} is not a multiple of "
                              f"model.net.patch={patch}; set model.size_multiple (and model.train.patch_size) to a "
                              f"multiple of {patch}")
        self.in_ch, self.patch, self.dim, self.residual = in_ch, patch, dim, residual
        self.norm = None  # set by the training core; the model needs no Kelvin quantity
        self.spatial_embed = PatchEmbedding(in_ch, dim, patch)
        self.temporal_embed = PatchEmbedding(2 * in_ch, dim, patch)

        def encoder_layer():
            return nn.TransformerEncoderLayer(dim, heads, mlp_dim, dropout, activation="gelu", batch_first=True,
                                              norm_first=True)

        # enable_nested_tensor=False: the nested-tensor fast path does not apply to pre-norm layers (and warns)
        self.spatial_encoder = nn.TransformerEncoder(encoder_layer(), encoder_depth, norm=nn.LayerNorm(dim),
                                                     enable_nested_tensor=False)
        self.temporal_encoder = nn.TransformerEncoder(encoder_layer(), encoder_depth, norm=nn.LayerNorm(dim),
                                                      enable_nested_tensor=False)
        self.fusion = nn.Linear(2 * dim, dim)
        decoder_layer = nn.TransformerDecoderLayer(dim, heads, mlp_dim, dropout, activation="gelu", batch_first=True,
                                                   norm_first=True)
        self.decoder = nn.TransformerDecoder(decoder_layer, decoder_depth, norm=nn.LayerNorm(dim))
        self.head = nn.Linear(dim, patch * patch * in_ch)
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

    def unpatchify(self, tokens: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """(B, N, p*p*C) -> (B, C, H, W), the inverse of the patch cut (row-major tokens)."""
        p, c = self.patch, self.in_ch
        h, w = height // p, width // p
        x = tokens.reshape(tokens.shape[0], h, w, c, p, p)
        return x.permute(0, 3, 1, 4, 2, 5).reshape(tokens.shape[0], c, height, width)

    def forward(self, batch: dict) -> torch.Tensor:
        f1, c1, c2 = batch["fine_ref"], batch["coarse_ref"], batch["coarse_tgt"]
        height, width = f1.shape[-2:]
        if height % self.patch or width % self.patch:
            raise ValueError(f"vit_generic: input {height}x{width} is not a multiple of the patch size {self.patch}")
        pos = sincos_position_embedding(height // self.patch, width // self.patch, self.dim, f1.device).to(f1.dtype)
        spatial = self.spatial_encoder(self.spatial_embed(f1) + pos)
        temporal = self.temporal_encoder(self.temporal_embed(torch.cat([c1, c2], 1)) + pos)
        queries = self.fusion(torch.cat([spatial, temporal], dim=-1))
        tokens = self.decoder(queries, torch.cat([spatial, temporal], dim=1))
        out = self.unpatchify(self.head(tokens), height, width)
        return out + delta_baseline(f1, c1, c2) if self.residual else out
