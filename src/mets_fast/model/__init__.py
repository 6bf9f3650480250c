"""The METS model: ResNet1d-18 ECG encoder, projections, logit scale, and run directories."""

from .checkpoint import load, load_encoder, read_config, run_identity
from .mets import DEFAULT_SETTINGS, METSModel
from .resnet1d import ResNet1d

__all__ = ["METSModel", "ResNet1d", "DEFAULT_SETTINGS", "load", "load_encoder", "read_config",
           "run_identity"]
