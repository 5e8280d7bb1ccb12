"""jaxseg: segmentation losses and exact, reducible metrics for JAX."""

from jaxseg._boundary import BoundaryStats as BoundaryStats
from jaxseg._boundary import DistanceStats as DistanceStats
from jaxseg._checked import checked as checked
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
    "BoundaryStats",
    "ConfusionMatrix",
    "DistanceStats",
    "SoftStats",
    "average_surface_distance",
    "checked",
    "class_weights_from_counts",
    "cross_entropy_loss",
    "dice",
    "dice_loss",
    "distance_transform",
    "fbeta",
    "fbeta_loss",
    "focal_loss",
    "frequency_weighted_iou",
    "generalized_dice",
    "generalized_dice_loss",
    "hausdorff_distance",
    "iou",
    "iou_loss",
    "lovasz_hinge_loss",
    "lovasz_softmax_loss",
    "mean_accuracy",
    "pixel_accuracy",
    "precision",
    "recall",
    "sigmoid_dice_loss",
    "sigmoid_focal_loss",
    "sigmoid_iou_loss",
    "sigmoid_tversky_loss",
    "surface_dice",
    "tversky",
    "tversky_loss",
]
