"""mi_course: helpers for a hands-on course in mechanistic interpretability.

    import mi_course
    mi_course.setup_notebook("08")          # first cell of every lesson
    model = mi_course.load_model("attn-only-2l")
    mi_course.check("08.ToyModel")          # instant feedback on an exercise
"""

from mi_course.config import get_device, get_mode, seed_everything, set_device, set_mode, silence_known_warnings

silence_known_warnings()

from mi_course.claims import claim  # noqa: E402
from mi_course.grading import check, grade  # noqa: E402
from mi_course.models import ModelUnavailable, available_models, load_model, model_card  # noqa: E402
from mi_course.notebook import setup_notebook  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "ModelUnavailable", "available_models", "check", "claim", "get_device", "get_mode", "grade", "load_model",
    "model_card", "seed_everything", "set_device", "set_mode", "setup_notebook",
]
