"""VDCN (Remote Sensing 11(22):2701, 2019, doi 10.3390/rs11222701): "Spatiotemporal Fusion of Satellite Images via
Very Deep Convolutional Networks".

Label: reconstructed. Only the abstract is public: a very deep CNN for spatiotemporal fusion, set against
sparse-representation methods. Our design (models.md "vdcn") assumes the STFDCNN two-stage pipeline (co-author
H. Song) with VDSR-style stage networks: the pipeline is `stf_bench.models.stfdcnn.STFDCNN` unchanged (inputs, LSR
scale 8, two fusion passes, ICW, hpm in Kelvin, the NLM + SR losses), and each of NLM and SR is `vdsr` below.
It is not the published model and its numbers are not the paper's.
"""

from __future__ import annotations

from torch import nn

from stf_bench.models.stfdcnn import GlobalResidual


def vdsr(in_ch: int = 1, width: int = 64, depth: int = 20) -> GlobalResidual:
    """VDSR-`depth`: conv 3x3 in->64, ReLU; depth-2 x [conv 3x3 64->64, ReLU]; conv 3x3 64->in; global residual;
    no normalization; He-normal weights and zero biases as VDSR (665,921 parameters for one band at depth 20)."""
    layers: list[nn.Module] = [nn.Conv2d(in_ch, width, 3, padding=1), nn.ReLU(inplace=True)]
    for _ in range(depth - 2):
        layers += [nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=True)]
    layers.append(nn.Conv2d(width, in_ch, 3, padding=1))
    for layer in layers:  # VDSR's initialisation (He et al. 2015): without it a 20-layer plain CNN barely trains
        if isinstance(layer, nn.Conv2d):
            nn.init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(layer.bias)
    return GlobalResidual(nn.Sequential(*layers))
