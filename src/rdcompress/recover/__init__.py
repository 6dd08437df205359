"""Recovery after compression: give back the accuracy compression took, keep the file honest.

Bottom: level 0 without gradients (``level0``: BatchNorm re-estimation, bias correction) and the
recovery losses (``losses``); middle: the trainable leaves that keep a model inside its ``.rdz``
structure (``structure.TiedWeights``) and the training loop (``finetune``); top:
``recover(file_or_compressed, data, config, original)`` -> ``RecoveryResult`` (``.save``).
"""

from rdcompress.recover.api import RecoveryResult, recover
from rdcompress.recover.config import LOSSES, RecoverConfig
from rdcompress.recover.level0 import (
    BiasCorrection,
    correct_bias,
    reestimate_batchnorm,
)
from rdcompress.recover.losses import distill_loss, recovery_loss
from rdcompress.recover.structure import TiedWeights, decoded_state
from rdcompress.recover.training import finetune

__all__ = [
    "LOSSES", "BiasCorrection", "RecoverConfig", "RecoveryResult", "TiedWeights",
    "correct_bias", "decoded_state", "distill_loss", "finetune", "recover", "recovery_loss",
    "reestimate_batchnorm",
]
