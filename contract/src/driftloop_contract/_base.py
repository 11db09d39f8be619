"""The base of every payload model."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Payload(BaseModel):
    """A JSON payload: camelCase aliases where declared, unknown fields rejected."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
