"""Probes and metrics shared by every section (docs/ARCHITECTURE.md §2, evaluation layer).

One implementation of each, in small modules:

* :mod:`.features` — frozen features of an image model and its masked-reconstruction loss;
* :mod:`.probe` — the linear probe (LP): standardised features + L2 logistic regression, ``C`` chosen on
  validation (sklearn's lbfgs on the CPU, or the torch L-BFGS of :mod:`.lbfgs` for large inputs and GPUs), with
  the metrics a section selects on and reports (accuracy, macro-F1, F1, Matthews correlation);
* :mod:`.heads` — the training loop of torch heads and the BN+LP;
* :mod:`.finetune` — partial or full fine-tuning of image and token encoders;
* :mod:`.knn` — k-NN accuracy; :mod:`.spectrum` — singular values and effective rank;
* :mod:`.mlm` — masked-token loss and accuracy of token models.

Every function is seeded and deterministic on CPU. Hyper-parameters (the LP's ``C``, a fine-tune's learning
rate and epoch) are chosen on validation data; the test set is only ever scored.
"""

from ._common import METRICS, ProbeResult
from .features import extract_features, reconstruction_loss
from .finetune import finetune
from .heads import bn_linear_probe
from .knn import KNN_BLOCK, knn_accuracy
from .mlm import mlm_eval
from .probe import linear_probe
from .spectrum import effective_rank, singular_values

__all__ = ["ProbeResult", "METRICS", "extract_features", "reconstruction_loss", "linear_probe", "bn_linear_probe",
           "finetune", "knn_accuracy", "KNN_BLOCK", "effective_rank", "singular_values", "mlm_eval"]
