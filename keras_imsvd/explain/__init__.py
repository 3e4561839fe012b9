"""Variable-level explainability and discrete codes of IMSVD models.

- `joint_probability_matrix`: the D x D joint matrix `P` over a whole two-view
  dataset, accumulated batch by batch (`JointMatrixAccumulator`), or from codes
  (`joint_probability_matrix_from_codes`); `plot_joint_matrix` draws its first
  blocks.
- `mutual_information_matrix` (between views, from `P`) and `redundancy_matrix`
  (between the variables of one view); `plot_redundancy` draws the latter,
  beside a reference.
- `variable_statistics`: entropy, bin usage, dead bins and confidence of each
  variable; `plot_bin_usage` draws them.
- `exemplars` / `plot_exemplars`: the images that fill each bin most.
- `CodeIndex`: retrieval and kNN classification on hard codes
  (`model.codes(images)`), `bits_per_image`, `pack_codes` / `unpack_codes`.
- `save_explain_report`: all of the above, written to a folder.
"""

from keras_imsvd.explain.code_index import CodeIndex
from keras_imsvd.explain.code_index import bits_per_image
from keras_imsvd.explain.code_index import pack_codes
from keras_imsvd.explain.code_index import unpack_codes
from keras_imsvd.explain.exemplars import exemplars
from keras_imsvd.explain.exemplars import plot_exemplars
from keras_imsvd.explain.joint_matrix import JointMatrixAccumulator
from keras_imsvd.explain.joint_matrix import joint_probability_matrix
from keras_imsvd.explain.joint_matrix import joint_probability_matrix_from_codes
from keras_imsvd.explain.mutual_information import mutual_information_matrix
from keras_imsvd.explain.mutual_information import normalize_redundancy
from keras_imsvd.explain.mutual_information import redundancy_matrix
from keras_imsvd.explain.plots import plot_bin_usage
from keras_imsvd.explain.plots import plot_joint_matrix
from keras_imsvd.explain.plots import plot_redundancy
from keras_imsvd.explain.report import save_explain_report
from keras_imsvd.explain.statistics import variable_statistics

__all__ = [
    "CodeIndex",
    "JointMatrixAccumulator",
    "bits_per_image",
    "exemplars",
    "joint_probability_matrix",
    "joint_probability_matrix_from_codes",
    "mutual_information_matrix",
    "normalize_redundancy",
    "pack_codes",
    "plot_bin_usage",
    "plot_exemplars",
    "plot_joint_matrix",
    "plot_redundancy",
    "redundancy_matrix",
    "save_explain_report",
    "unpack_codes",
    "variable_statistics",
]
