"""The style-transfer contract, torch-free: one definition for the gateway's ``/v1/style`` and the style service."""

from __future__ import annotations

from pydantic import BaseModel, Field, model_validator

from services.common.runtime import ModelInfo, PredictRequest

FAMILY_NAME = "style"  # the name it registers under (family.py), for its own modules
DEFAULT_PORT = 8103


class StyleInput(BaseModel):
    """``POST /v1/style`` as JSON, or its multipart form fields (the image then comes as a file)."""

    style: str = Field(..., min_length=1, max_length=64, description="a style from GET /v1/styles")
    image_b64: str | None = Field(None, description="JPEG/PNG/WebP bytes, base64")
    image_path: str | None = Field(None, description="path relative to the data root", max_length=1024)


class StyleRequest(PredictRequest):
    """What the style service takes: a style or a ``style-<name>`` model, and exactly one image."""

    style: str | None = Field(None, description="style name, e.g. mosaic (model style-<name>)", max_length=64)
    image_b64: str | None = Field(None, description="JPEG/PNG/WebP bytes, base64")
    image_path: str | None = Field(None, description="path relative to the data root", max_length=1024)

    @model_validator(mode="after")
    def _one_image(self) -> StyleRequest:
        if (self.image_b64 is None) == (self.image_path is None):
            raise ValueError("send exactly one of image_b64 or image_path")
        if self.style is None and self.model is None:
            raise ValueError("name a style (GET /v1/styles lists them)")
        return self


class StyleResponse(BaseModel):
    image_b64: str = Field(..., description="PNG, base64")
    style: str | None
    model: ModelInfo
    latency_ms: float
    request_id: str
