"""The style family's fine-tune knobs (``LOOPLINE_FINETUNE_STYLE_*``), read by its trainer.

The service's own settings (``LOOPLINE_STYLE_*``) are ``StyleSettings`` in ``runtime.py``; these
are the family's part of the fine-tune service, which learns of them through the task table
(``Task.training_settings``). The job defaults a request may override (image size, content and
style weights) stay with the fine-tune service's hyper-parameters."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class StyleTrainingSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LOOPLINE_FINETUNE_STYLE_", extra="ignore", populate_by_name=True)

    # the name before the family prefix (LOOPLINE_FINETUNE_VGG19_WEIGHTS) stays accepted
    vgg19_weights: Path | None = Field(None, validation_alias=AliasChoices(
        "LOOPLINE_FINETUNE_STYLE_VGG19_WEIGHTS", "LOOPLINE_FINETUNE_VGG19_WEIGHTS"), description=(
        "Keras VGG19 no-top weights (vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5) for the perceptual loss "
        "(also read as LOOPLINE_FINETUNE_VGG19_WEIGHTS)"))
    loss_model: Path | None = Field(None, description=(
        "instead of VGG19: a saved Keras model (.keras) whose outputs are [content features, *style features]"))
    width: int = Field(32, ge=1, le=128, description="TransformerNet width of a brand-new style")
    res_blocks: int = Field(5, ge=0, le=16)
