"""jaxseg: segmentation losses and exact, reducible metrics for JAX."""

from jaxseg._checked import checked as checked
from jaxseg._scores import class_weights_from_counts as class_weights_from_counts
from jaxseg._scores import dice as dice
from jaxseg._scores import fbeta as fbeta
from jaxseg._scores import frequency_weighted_iou as frequency_weighted_iou
from jaxseg._scores import generalized_dice as generalized_dice
from jaxseg._scores import iou as iou
from jaxseg._scores import mean_accuracy as mean_accuracy
from jaxseg._scores import pixel_accuracy as pixel_accuracy
from jaxseg._scores import precision as precision
from jaxseg._scores import recall as recall
from jaxseg._scores import tversky as tversky
from jaxseg._soft import SoftStats as SoftStats
from jaxseg._state import BinaryStats as BinaryStats
from jaxseg._state import ConfusionMatrix as ConfusionMatrix

__version__ = "0.1.0.dev0"

__all__ = [
    "BinaryStats",
    "ConfusionMatrix",
    "SoftStats",
    "checked",
    "class_weights_from_counts",
    "dice",
    "fbeta",
    "frequency_weighted_iou",
    "generalized_dice",
    "iou",
    "mean_accuracy",
    "pixel_accuracy",
    "precision",
    "recall",
    "tversky",
]
