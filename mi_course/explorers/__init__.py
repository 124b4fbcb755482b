"""Interactive explorers (ipywidgets) for moving a slider instead of editing a cell.

    from mi_course.explorers import attention_explorer, logit_lens_explorer, superposition_explorer
    attention_explorer(model, text)                       # lesson 06: one head's pattern and scores
    logit_lens_explorer(model, text)                      # lesson 07: top guesses and KL per layer
    superposition_explorer(ToyModel, train_toy_model)     # lesson 08: sparsity slider, arrows redrawn
    microscope({"vision": model})                         # lessons 03-04: a channel's render, examples, tuning

Each returns an object whose controls are attributes (``.layer``, ``.head``, ``.sparsity`` ...), whose
``current()`` returns what it shows, and which displays as a widget in JupyterLab and Colab.
"""

from mi_course.explorers.attention import AttentionExplorer, attention_explorer
from mi_course.explorers.base import Explorer, enable_colab_widgets
from mi_course.explorers.feature_browser import FeatureBrowser, feature_browser
from mi_course.explorers.logit_lens import LogitLensExplorer, logit_lens_explorer
from mi_course.explorers.microscope import Microscope, microscope
from mi_course.explorers.superposition import SuperpositionExplorer, superposition_explorer

__all__ = ["AttentionExplorer", "Explorer", "FeatureBrowser", "LogitLensExplorer", "Microscope",
           "SuperpositionExplorer", "attention_explorer", "enable_colab_widgets", "feature_browser",
           "logit_lens_explorer", "microscope", "superposition_explorer"]
