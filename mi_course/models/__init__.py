"""Course models by role, in full or lite mode."""

from mi_course.models.registry import ROLES, ModelUnavailable, available_models, load_model, model_card

__all__ = ["ROLES", "ModelUnavailable", "available_models", "load_model", "model_card"]
