"""The parameter table generated from the code: each model's 1-band count against its catalogue target.

    python -m stf_bench.models.param_table        # prints the Markdown table that README.md's "Models" shows

Counts cover the trainable parameters used at inference, as the catalogue's targets do: frozen loss networks
(requires_grad off), the ``discriminator`` and the submodules a network names in ``training_only_modules`` (a tuple
of attribute names, e.g. a CVAE's recognition encoder that only training runs) are excluded. Official-code and
re-implementation designs must land within 2 %, reconstructed ones exactly.
"""

from __future__ import annotations

from pathlib import Path

from hydra.utils import instantiate
from omegaconf import OmegaConf

CONF_MODEL = Path(__file__).resolve().parents[2] / "conf" / "model"
TOLERANCE = {"official-code": 0.02, "re-implementation": 0.02, "reconstructed": 0.0}


def inference_parameters(net) -> int:
    """Trainable parameters outside the discriminator and the declared ``training_only_modules`` (frozen loss
    networks have requires_grad off)."""
    skipped = [net.discriminator] if hasattr(net, "discriminator") else []
    skipped += [getattr(net, name) for name in getattr(net, "training_only_modules", ())]  # a typo raises
    skip = {id(p) for module in skipped for p in module.parameters()}
    return sum(p.numel() for p in net.parameters() if p.requires_grad and id(p) not in skip)


def rows(conf_dir: Path = CONF_MODEL) -> list[dict]:
    """One row per deep model config: id, label, count, target, relative difference, within tolerance."""
    out = []
    for path in sorted(conf_dir.glob("*.yaml")):
        cfg = OmegaConf.load(path)
        if cfg.lightning_module == "none":
            continue
        net_cfg = OmegaConf.merge({"dataset": {"coarse_block": 33}}, {"model": cfg}).model.net
        net = instantiate(net_cfg)
        count = inference_parameters(net)
        target = int(cfg.params_target)
        diff = (count - target) / target
        out.append({"id": cfg.id, "family": cfg.family, "label": cfg.label, "params": count, "target": target,
                    "diff": diff, "ok": abs(diff) <= TOLERANCE[cfg.label], **_other_parameters(net)})
    return out


def _other_parameters(net) -> dict:
    """What the inference count leaves out: the discriminator, frozen loss networks, training-only modules."""
    disc = sum(p.numel() for p in net.discriminator.parameters()) if hasattr(net, "discriminator") else 0
    frozen = sum(p.numel() for p in net.parameters() if not p.requires_grad)
    training = sum(p.numel() for name in getattr(net, "training_only_modules", ())
                   for p in getattr(net, name).parameters())
    return {"discriminator": disc, "frozen": frozen, "training_only": training}


def markdown(table: list[dict]) -> str:
    lines = ["| id | family | label | parameters | target | difference | not counted |",
             "|---|---|---|---:|---:|---:|---|"]
    for r in table:
        name = f"`{r['id']}` (reconstructed)" if r["label"] == "reconstructed" else f"`{r['id']}`"
        other = "; ".join(f"{what} {r[key]:,}" for key, what in (("discriminator", "D"), ("frozen", "frozen"),
                                                                   ("training_only", "training-only")) if r[key])
        lines.append(f"| {name} | {r['family']} | {r['label']} | {r['params']:,} | {r['target']:,} | "
                     f"{100 * r['diff']:+.2f} %{'' if r['ok'] else ' **out of tolerance**'} | {other} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown(rows()))
