"""jaxseg: segmentation losses and exact, reducible metrics for JAX.

The public names are imported on first use (PEP 562), so that ``import jaxseg``
and the command line do not pay for importing JAX until a name needs it.
"""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the same names, for type checkers and documentation tools
    from jaxseg._boundary import BoundaryStats as BoundaryStats
    from jaxseg._checked import checked as checked
    from jaxseg._components import connected_components as connected_components
    from jaxseg._cross_entropy import cross_entropy_loss as cross_entropy_loss
    from jaxseg._cross_entropy import focal_loss as focal_loss
    from jaxseg._cross_entropy import sigmoid_focal_loss as sigmoid_focal_loss
    from jaxseg._distance import average_surface_distance as average_surface_distance
    from jaxseg._distance import distance_transform as distance_transform
    from jaxseg._distance import hausdorff_distance as hausdorff_distance
    from jaxseg._distance import surface_dice as surface_dice
    from jaxseg._losses import dice_loss as dice_loss
    from jaxseg._losses import fbeta_loss as fbeta_loss
    from jaxseg._losses import generalized_dice_loss as generalized_dice_loss
    from jaxseg._losses import iou_loss as iou_loss
    from jaxseg._losses import sigmoid_dice_loss as sigmoid_dice_loss
    from jaxseg._losses import sigmoid_iou_loss as sigmoid_iou_loss
    from jaxseg._losses import sigmoid_tversky_loss as sigmoid_tversky_loss
    from jaxseg._losses import tversky_loss as tversky_loss
    from jaxseg._lovasz import lovasz_hinge_loss as lovasz_hinge_loss
    from jaxseg._lovasz import lovasz_softmax_loss as lovasz_softmax_loss
    from jaxseg._panoptic import InstanceIoUStats as InstanceIoUStats
    from jaxseg._panoptic import PanopticStats as PanopticStats
    from jaxseg._panoptic_rules import lesion_wise as lesion_wise
    from jaxseg._panoptic_rules import panoptic_quality as panoptic_quality
    from jaxseg._panoptic_rules import panoptic_summary as panoptic_summary
    from jaxseg._panoptic_rules import recognition_quality as recognition_quality
    from jaxseg._panoptic_rules import segmentation_quality as segmentation_quality
    from jaxseg._probability import ProbabilityHistogram as ProbabilityHistogram
    from jaxseg._probability import auroc as auroc
    from jaxseg._probability import average_precision as average_precision
    from jaxseg._probability import best_threshold as best_threshold
    from jaxseg._probability import expected_calibration_error as expected_calibration_error
    from jaxseg._probability import precision_recall_curve as precision_recall_curve
    from jaxseg._probability import reliability_diagram as reliability_diagram
    from jaxseg._probability import roc_curve as roc_curve
    from jaxseg._scores import balanced_accuracy as balanced_accuracy
    from jaxseg._scores import class_weights_from_counts as class_weights_from_counts
    from jaxseg._scores import cohen_kappa as cohen_kappa
    from jaxseg._scores import dice as dice
    from jaxseg._scores import fbeta as fbeta
    from jaxseg._scores import frequency_weighted_iou as frequency_weighted_iou
    from jaxseg._scores import generalized_dice as generalized_dice
    from jaxseg._scores import iou as iou
    from jaxseg._scores import matthews_corrcoef as matthews_corrcoef
    from jaxseg._scores import mean_accuracy as mean_accuracy
    from jaxseg._scores import negative_predictive_value as negative_predictive_value
    from jaxseg._scores import pixel_accuracy as pixel_accuracy
    from jaxseg._scores import precision as precision
    from jaxseg._scores import recall as recall
    from jaxseg._scores import specificity as specificity
    from jaxseg._scores import tversky as tversky
    from jaxseg._soft import SoftStats as SoftStats
    from jaxseg._state import BinaryStats as BinaryStats
    from jaxseg._state import ClassCounts as ClassCounts
    from jaxseg._state import ConfusionMatrix as ConfusionMatrix
    from jaxseg._state import DistanceStats as DistanceStats
    from jaxseg._state import Statistics as Statistics
    from jaxseg._topology import boundary_loss as boundary_loss
    from jaxseg._topology import cldice as cldice
    from jaxseg._topology import hausdorff_dt_loss as hausdorff_dt_loss
    from jaxseg._topology import skeletonize as skeletonize
    from jaxseg._topology import soft_cldice_loss as soft_cldice_loss

__version__ = "0.1.0.dev0"

#: Public name -> the private module that defines it.
_SOURCES = {
    "BoundaryStats": "jaxseg._boundary",
    "average_surface_distance": "jaxseg._distance",
    "distance_transform": "jaxseg._distance",
    "hausdorff_distance": "jaxseg._distance",
    "surface_dice": "jaxseg._distance",
    "checked": "jaxseg._checked",
    "connected_components": "jaxseg._components",
    "InstanceIoUStats": "jaxseg._panoptic",
    "PanopticStats": "jaxseg._panoptic",
    "lesion_wise": "jaxseg._panoptic_rules",
    "panoptic_quality": "jaxseg._panoptic_rules",
    "panoptic_summary": "jaxseg._panoptic_rules",
    "recognition_quality": "jaxseg._panoptic_rules",
    "segmentation_quality": "jaxseg._panoptic_rules",
    "cross_entropy_loss": "jaxseg._cross_entropy",
    "focal_loss": "jaxseg._cross_entropy",
    "sigmoid_focal_loss": "jaxseg._cross_entropy",
    "dice_loss": "jaxseg._losses",
    "fbeta_loss": "jaxseg._losses",
    "generalized_dice_loss": "jaxseg._losses",
    "iou_loss": "jaxseg._losses",
    "sigmoid_dice_loss": "jaxseg._losses",
    "sigmoid_iou_loss": "jaxseg._losses",
    "sigmoid_tversky_loss": "jaxseg._losses",
    "tversky_loss": "jaxseg._losses",
    "lovasz_hinge_loss": "jaxseg._lovasz",
    "lovasz_softmax_loss": "jaxseg._lovasz",
    "ProbabilityHistogram": "jaxseg._probability",
    "auroc": "jaxseg._probability",
    "average_precision": "jaxseg._probability",
    "best_threshold": "jaxseg._probability",
    "expected_calibration_error": "jaxseg._probability",
    "precision_recall_curve": "jaxseg._probability",
    "reliability_diagram": "jaxseg._probability",
    "roc_curve": "jaxseg._probability",
    "class_weights_from_counts": "jaxseg._scores",
    "balanced_accuracy": "jaxseg._scores",
    "cohen_kappa": "jaxseg._scores",
    "matthews_corrcoef": "jaxseg._scores",
    "negative_predictive_value": "jaxseg._scores",
    "specificity": "jaxseg._scores",
    "dice": "jaxseg._scores",
    "fbeta": "jaxseg._scores",
    "frequency_weighted_iou": "jaxseg._scores",
    "generalized_dice": "jaxseg._scores",
    "iou": "jaxseg._scores",
    "mean_accuracy": "jaxseg._scores",
    "pixel_accuracy": "jaxseg._scores",
    "precision": "jaxseg._scores",
    "recall": "jaxseg._scores",
    "tversky": "jaxseg._scores",
    "SoftStats": "jaxseg._soft",
    "BinaryStats": "jaxseg._state",
    "ClassCounts": "jaxseg._state",
    "Statistics": "jaxseg._state",
    "ConfusionMatrix": "jaxseg._state",
    "DistanceStats": "jaxseg._state",
    "boundary_loss": "jaxseg._topology",
    "cldice": "jaxseg._topology",
    "hausdorff_dt_loss": "jaxseg._topology",
    "skeletonize": "jaxseg._topology",
    "soft_cldice_loss": "jaxseg._topology",
}

__all__ = sorted(_SOURCES)


def __getattr__(name: str) -> Any:
    try:
        module = _SOURCES[name]
    except KeyError:
        raise AttributeError(f"module 'jaxseg' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_SOURCES})


# Checked mode's flag is a JAX user context (jaxseg._checked), and creating one adds a
# value to the key of every jit cache. Created lazily inside a user's first trace, it
# would make that function (and any compiled before) miss its cache once and compile
# twice; with JAX already imported it is created now, before any trace.
if "jax" in sys.modules:
    importlib.import_module("jaxseg._checked")
