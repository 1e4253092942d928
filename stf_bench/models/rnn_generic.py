"""RNN template (survey family "sequence model"), reconstructed: a ConvGRU walks through the reference pairs and the
target date, predicting a fine image at every step.

Template for new sequence ideas: copy this file and `conf/model/rnn_generic.yaml`, rename, and change one part at a
time. Source: the RNN family of S. Bouaziz, A. Hafiane, R. Canals, R. Nedjai, "Deep Learning for Spatio-Temporal
Fusion in Land Surface Temperature Estimation: A Comprehensive Survey, Experimental Analysis, and Future Trends",
arXiv 2412.16631, 2024 (GitHub Sofianebouaziz1/STF-LST README.md): "the RNN maps coarse inputs to fine predictions at
each time step of a sequence of pairs, and the fine estimates for new steps are then fused with the coarse data".
Label: reconstructed; the design is models.md part 1 "rnn_generic" (481,185 parameters for one band).

How it works, in the order of the code:

1. **The sequence** (`reference_sequence`, stf_bench/models/blocks/sequence.py): the K references of a
   `pairing=sequence` batch, or the one or two of a standard batch, from the farthest to the nearest date; then the
   target date as the last step. Absent slots (`ref_mask` false) leave the recurrent state unchanged.
2. **One step** (`encode`): the inputs [C_t, m_t * F_t, m_t, dt_t] - the coarse image, the fine image where it is
   shown (m_t = 1), the flag itself and a constant plane of the step's date relative to the target (days /
   `dt_scale_days`) - go through a small conv encoder to H/2. The target step shows no fine image (m = 0, dt = 0).
3. **Memory** (`ConvGRUCell` x `layers`, stf_bench/models/blocks/recurrent.py): each layer updates its state from
   the layer below; the state carries what earlier dates showed to the later ones.
4. **Read-out** (`decode`): bilinear x2 and two convs give a residual on the step's own coarse image:
   F_hat_t = C_t + decode(h_t). Every step predicts its date, so a step whose fine image is hidden can be supervised.
5. **Coarse fusion** (`coarse_correction`): the target's prediction is moved so that its r x r block means equal
   the coarse image's: F_hat_2 += U(A_r(C2) - A_r(F_hat_2)), r = `coarse_factor` (hence `size_multiple` = r).
6. **Training** (`compute_loss`): every present reference's fine image is hidden with probability `hide_prob`;
   the loss is L1 at the target (valid pixels) plus L1 at the hidden references (all pixels: references may be
   gap-filled). Hiding teaches the network to predict a date from coarse data and the memory alone, which is the
   task at the target date. At inference nothing is hidden.

Deviations: none from models.md; the LeakyReLU slope (0.2) and the dt scaling are our choices.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from stf_bench.models.blocks.fusion import coarse_pool, upsample
from stf_bench.models.blocks.masked import masked_l1, masked_mean
from stf_bench.models.blocks.recurrent import ConvGRUCell
from stf_bench.models.blocks.sequence import ReferenceSequence, reference_sequence


class RNNGeneric(nn.Module):
    """Per-step encoder -> stacked ConvGRU -> per-step decoder (+ C_t); the target date is the last step."""

    def __init__(self, in_ch: int, width: int, hidden: int, layers: int, hide_prob: float, coarse_correction: bool,
                 coarse_factor: int, dt_scale_days: float) -> None:
        super().__init__()
        self.hide_prob, self.coarse_correction = float(hide_prob), bool(coarse_correction)
        self.coarse_factor, self.dt_scale_days = int(coarse_factor), float(dt_scale_days)
        self.norm = None  # set by the training core; unused (no Kelvin quantity in this model)
        act = nn.LeakyReLU(0.2)
        # step inputs [C_t, m_t * F_t, m_t, dt_t] -> H/2: 1,184 + 18,496 parameters for one band
        self.encoder = nn.Sequential(nn.Conv2d(2 * in_ch + 2, width, 3, padding=1), act,
                                     nn.Conv2d(width, hidden, 3, stride=2, padding=1), act)
        # 221,376 parameters per layer at hidden 64
        self.cells = nn.ModuleList(ConvGRUCell(hidden, hidden) for _ in range(layers))
        # H/2 -> H, then the residual on C_t: 18,464 + 289 parameters
        self.decoder = nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                                     nn.Conv2d(hidden, width, 3, padding=1), act, nn.Conv2d(width, in_ch, 3, padding=1))

    # -- the parts of one step ---------------------------------------------------------------------------------------

    def encode(self, coarse: torch.Tensor, fine: torch.Tensor, shown: torch.Tensor, days: torch.Tensor) -> torch.Tensor:
        """Features of one step; `shown` (B,1,1,1) says whether the fine image is given, `days` (B,1,1,1) its date."""
        shown = shown.to(coarse.dtype).expand_as(coarse)
        dt_plane = (days / self.dt_scale_days).to(coarse.dtype).expand_as(coarse)
        return self.encoder(torch.cat([coarse, shown * fine, shown, dt_plane], dim=1))

    def remember(self, x: torch.Tensor, states: list[torch.Tensor], present: torch.Tensor) -> list[torch.Tensor]:
        """Update every GRU layer with the step's features; an absent step (`present` false) changes nothing."""
        new_states = []
        for cell, h in zip(self.cells, states):
            x = torch.where(present, cell(x, h), h)
            new_states.append(x)
        return new_states

    def decode(self, top: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
        """The step's fine prediction: its coarse image plus the decoded residual."""
        return coarse + self.decoder(top)

    # -- the sequence ------------------------------------------------------------------------------------------------

    def run(self, seq: ReferenceSequence, coarse_tgt: torch.Tensor,
            shown: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Walk the references, then the target. `shown` (B,K): which reference fine images the network sees.
        Returns the target prediction (B,1,H,W) and each reference step's prediction (B,K,H,W)."""
        b = coarse_tgt.shape[0]
        states = None
        ref_preds = []
        for i in range(seq.length):
            fine, coarse, present, days = seq.step(i)
            x = self.encode(coarse, fine, shown[:, i].view(b, 1, 1, 1) & present, days)
            states = self.remember(x, states or [cell.zero_state(x) for cell in self.cells], present)
            ref_preds.append(self.decode(states[-1], coarse))
        # the target step: coarse only, no fine image, dt = 0, always present
        nothing = torch.zeros(b, 1, 1, 1, dtype=torch.bool, device=coarse_tgt.device)
        x = self.encode(coarse_tgt, torch.zeros_like(coarse_tgt), nothing, coarse_tgt.new_zeros(b, 1, 1, 1))
        states = self.remember(x, states, ~nothing)
        pred = self.decode(states[-1], coarse_tgt)
        if self.coarse_correction:
            r = self.coarse_factor
            pred = pred + upsample(coarse_pool(coarse_tgt, r) - coarse_pool(pred, r), pred.shape[-2:])
        return pred, torch.cat(ref_preds, dim=1)

    def forward(self, batch: dict) -> torch.Tensor:
        seq = reference_sequence(batch)
        return self.run(seq, batch["coarse_tgt"], seq.mask)[0]

    def compute_loss(self, batch: dict, epoch: int, pred: torch.Tensor | None = None) -> dict:
        """L1 at the target (valid pixels) + L1 at the references whose fine image was hidden (all their pixels).

        `pred` is ignored: the target prediction must come from the same hidden sequence as the reference terms.
        """
        seq = reference_sequence(batch)
        hidden = seq.mask & (torch.rand(seq.mask.shape, device=seq.mask.device) < self.hide_prob)
        pred, ref_preds = self.run(seq, batch["coarse_tgt"], seq.mask & ~hidden)
        target = masked_l1(pred, batch["fine_tgt"], batch["valid_tgt"])
        where_hidden = hidden[:, :, None, None].expand_as(ref_preds)
        refs = masked_mean((ref_preds - seq.fine).abs(), where_hidden)  # 0 when nothing is hidden
        return {"loss": target + refs, "target": target.detach(), "hidden_refs": refs.detach()}
