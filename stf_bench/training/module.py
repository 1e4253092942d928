"""The LightningModules: one base that validates on whole scenes in Kelvin, and the supervised trainer.

Hyper-parameters stay plain (the model config as a dict, the normalization as two floats) so that
``load_from_checkpoint`` rebuilds the exact network and turns its predictions back into Kelvin the same way.
"""

from __future__ import annotations

import math

import lightning as L
import numpy as np
import torch
from hydra.utils import instantiate

from stf_bench.data.normalization import AffineNorm
from stf_bench.errors import ConfigError, TrainingDiverged
from stf_bench.metrics import scene_metrics
from stf_bench.models.prediction import ScenePredictor
from stf_bench.training.losses import CompositeLoss


class FusionModule(L.LightningModule):
    """Holds the network and its normalization; validation and test score whole scenes in Kelvin."""

    def __init__(self, model_cfg: dict, norm: dict, data_range_k: float, dataset_id: dict) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.model_cfg = model_cfg
        self.norm = AffineNorm.from_json(norm)
        self.net = instantiate(model_cfg["net"])
        self.net.norm = self.norm
        self.predictor = ScenePredictor.from_model_cfg(self.net, self.norm, model_cfg)
        self._scores: list[dict] = []

    def forward(self, batch: dict) -> torch.Tensor:
        return self.net(batch)

    def compile_network(self) -> None:
        """torch.compile the forward pass; the state dict keeps its keys, so checkpoints stay loadable."""
        self.net.forward = torch.compile(self.net.forward)

    def predict_kelvin(self, batch: dict) -> torch.Tensor:
        """Whole-scene prediction in K from a normalized batch (the model's size constraints honoured)."""
        return self.predictor.predict_normalized(batch)

    def _score(self, batch: dict) -> None:
        pred = self.predict_kelvin(batch).cpu().numpy()
        ref = self.norm.to_kelvin(batch["fine_tgt"].float()).cpu().numpy()
        valid = batch["valid_tgt"].cpu().numpy()
        for b in range(pred.shape[0]):
            scores = scene_metrics(pred[b, 0], ref[b, 0], valid[b, 0], self.hparams.data_range_k)
            self._scores.append({k: scores[k] for k in ("rmse", "ssim", "bias", "n_pixels")})

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._score(batch)

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._score(batch)

    def _log_scores(self, stage: str) -> dict[str, float]:
        values = {}
        if self._scores:
            for key in ("rmse", "ssim", "bias"):
                v = np.array([s[key] for s in self._scores], dtype=np.float64)
                if key == "ssim" and np.isfinite(v).any():
                    v = v[np.isfinite(v)]  # a scene too cloudy for SSIM (NaN, metrics.md) must not blank the epoch
                values[key] = float(np.mean(v))
                self.log(f"{stage}/{key}", values[key], prog_bar=key == "rmse", sync_dist=True)
            self._scores.clear()
        return values

    def on_validation_epoch_end(self) -> None:
        self._log_scores("val")

    def on_test_epoch_end(self) -> None:
        self._log_scores("test")

    def _optimizer(self, key: str, params):
        return instantiate(self.model_cfg[key])(params=self._param_groups(list(params)))

    def _param_groups(self, params: list) -> list:
        """The model config's ``optimizer_groups`` ([{prefix: "sr.", lr: 0.1}, ...]): parameters of ``net`` whose name
        starts with a prefix form a group with those options; the rest keep the optimizer's own (models.md part 1,
        "Loss hook": independent stages in one optimizer, with groups where the learning rates differ)."""
        specs = self.model_cfg.get("optimizer_groups") or []
        if not specs:
            return params
        wanted = {id(p) for p in params}
        named = [(n, p) for n, p in self.net.named_parameters() if id(p) in wanted]
        groups, taken = [], set()
        for spec in specs:
            spec = dict(spec)
            prefix = spec.pop("prefix")
            members = [p for n, p in named if n.startswith(prefix) and id(p) not in taken]
            if not members:
                raise ConfigError(f"model {self.model_cfg['id']}: optimizer_groups prefix {prefix!r} matches no "
                                  f"trainable parameter; names start with {sorted({n.split('.')[0] for n, _ in named})}.")
            taken |= {id(p) for p in members}
            groups.append({"params": members, **spec})
        rest = [p for _, p in named if id(p) not in taken]
        return groups + ([{"params": rest}] if rest else [])

    def _scheduler(self, optimizer):
        if not self.model_cfg.get("scheduler"):
            return None
        return {"scheduler": instantiate(self.model_cfg["scheduler"])(optimizer=optimizer),
                "monitor": self.model_cfg.get("scheduler_monitor", "val/rmse"), "interval": "epoch"}

    def _check_loss(self, loss: torch.Tensor, parts: dict) -> None:
        if not torch.isfinite(loss):
            details = ", ".join(f"{k}={float(v.detach()):.4g}" for k, v in parts.items())
            raise TrainingDiverged(
                f"the training loss became {float(loss.detach())} at epoch {self.current_epoch}, "
                f"step {self.global_step} "
                f"({details}). Lower the learning rate (model.optimizer.lr), enable gradient clipping "
                f"(trainer.gradient_clip_val=1.0) or check the data for NaN."
            )


class SupervisedModule(FusionModule):
    """One optimizer on the model's own ``compute_loss`` or on the config's composite loss."""

    def __init__(self, model_cfg: dict, norm: dict, data_range_k: float, dataset_id: dict) -> None:
        super().__init__(model_cfg, norm, data_range_k, dataset_id)
        if hasattr(self.net, "compute_loss"):
            self.loss_fn = None
        elif model_cfg.get("loss"):
            self.loss_fn = CompositeLoss(**model_cfg["loss"])
        else:
            raise ConfigError(f"model {model_cfg['id']}: the network has no compute_loss and the config no loss: block.")

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        if self.loss_fn is None:
            parts = self.net.compute_loss(batch, self.current_epoch)
        else:
            parts = self.loss_fn(self.net(batch), batch)
        loss = parts["loss"]
        self._check_loss(loss, parts)
        self.log_dict({f"train/{k}": v for k, v in parts.items()}, prog_bar=False, on_epoch=True, on_step=False,
                      batch_size=batch["fine_tgt"].shape[0])
        return loss

    def configure_optimizers(self):
        optimizer = self._optimizer("optimizer", [p for p in self.net.parameters() if p.requires_grad])
        scheduler = self._scheduler(optimizer)
        return optimizer if scheduler is None else {"optimizer": optimizer, "lr_scheduler": scheduler}


def finite_or_none(value) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None
