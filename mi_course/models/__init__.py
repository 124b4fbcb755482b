"""Course models by role, in full or lite mode."""

from mi_course.models.registry import (
    ROLES,
    ModelUnavailable,
    available_models,
    curve_layer,
    load_model,
    model_card,
    universality_roles,
)

__all__ = ["ROLES", "ModelUnavailable", "available_models", "curve_layer", "load_model", "model_card",
           "universality_roles"]
