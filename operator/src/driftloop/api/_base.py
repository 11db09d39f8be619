"""Building blocks shared by the four kinds."""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    WithJsonSchema,
    model_validator,
)
from pydantic.alias_generators import to_camel

GROUP = "driftloop.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
CATEGORY = "driftloop"
MANAGED_BY = "driftloop"


@dataclass(frozen=True)
class Rule:
    """One validation rule, declared once.

    ``cel`` becomes an ``x-kubernetes-validations`` entry so the API server
    rejects bad objects at admission; ``check`` (when given) enforces the same
    rule in Python so the models reject them too.  Transition rules (using
    ``oldSelf``) can only be checked by the API server, so they have no
    ``check``.
    """

    cel: str
    message: str
    check: Callable[[Any], bool] | None = None
    field_path: str | None = None

    def as_schema(self) -> dict[str, str]:
        schema = {"rule": self.cel, "message": self.message}
        if self.field_path:
            schema["fieldPath"] = self.field_path
        return schema


class ApiModel(BaseModel):
    """Base of every API model: camelCase on the wire, unknown fields rejected."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        use_enum_values=True,
    )

    #: Cross-field rules of this object; see :class:`Rule`.
    __rules__: tuple[Rule, ...] = ()

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: Any, handler: Any) -> dict[str, Any]:
        schema: dict[str, Any] = handler(core_schema)
        rules = cls.__dict__.get("__rules__", ())
        if rules:
            target = handler.resolve_ref_schema(schema)
            target["x-kubernetes-validations"] = [rule.as_schema() for rule in rules]
        return schema

    @model_validator(mode="after")
    def _check_rules(self) -> ApiModel:
        for rule in type(self).__dict__.get("__rules__", ()):
            if rule.check is not None and not rule.check(self):
                raise ValueError(rule.message)
        return self

    def to_wire(self) -> dict[str, Any]:
        """The JSON-ready dict Kubernetes stores (camelCase, no unset optionals)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


# --------------------------------------------------------------------------- #
# Scalar types
# --------------------------------------------------------------------------- #

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
DURATION_PATTERN = r"^(\d+(\.\d+)?(ms|s|m|h))+$"
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> timedelta:
    """Parse a Go-style duration ("90s", "1h30m", "250ms")."""
    if not re.fullmatch(DURATION_PATTERN, text):
        raise ValueError(f"invalid duration {text!r}: use e.g. 30s, 5m, 1h30m")
    seconds = sum(
        float(value) * _UNIT_SECONDS[unit] for value, unit in _DURATION_PART.findall(text)
    )
    return timedelta(seconds=seconds)


def _valid_duration(text: str) -> str:
    parse_duration(text)
    return text


Duration = Annotated[
    str,
    Field(pattern=DURATION_PATTERN, max_length=32),
    AfterValidator(_valid_duration),
]

#: A Kubernetes resource quantity ("500m", "1Gi", 2).
Quantity = Annotated[
    int | str,
    WithJsonSchema(
        {
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "x-kubernetes-int-or-string": True,
            "pattern": r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|"
            r"([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$",
        }
    ),
]

#: A DNS-1123 label, the shape of most Kubernetes names we derive child names from.
DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
ObjectName = Annotated[str, Field(min_length=1, max_length=63, pattern=DNS_LABEL_PATTERN)]
#: Model names appear in child object names, so they are shorter than a label.
ModelName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=40,
        pattern=DNS_LABEL_PATTERN,
        description="Model name: lowercase letters, digits and '-', at most 40 characters.",
    ),
]


class LocalObjectReference(ApiModel):
    """A reference to an object in the same namespace."""

    name: ObjectName = Field(description="Name of the referenced object.")


class SecretKeySelector(ApiModel):
    """A key of a Secret in the same namespace."""

    name: ObjectName = Field(description="Name of the Secret.")
    key: str = Field(min_length=1, max_length=253, description="Key within the Secret.")


class ResourceRequirements(ApiModel):
    """Compute resources of the container (same shape as core/v1)."""

    requests: dict[str, Quantity] = Field(
        default_factory=dict,
        max_length=8,
        json_schema_extra={"maxProperties": 8},
        description="Minimum resources, e.g. {cpu: 100m, memory: 256Mi}.",
    )
    limits: dict[str, Quantity] = Field(
        default_factory=dict,
        max_length=8,
        json_schema_extra={"maxProperties": 8},
        description="Maximum resources, e.g. {cpu: '1', memory: 1Gi}.",
    )


# --------------------------------------------------------------------------- #
# Conditions (metav1.Condition)
# --------------------------------------------------------------------------- #


class ConditionStatus(enum.StrEnum):
    true = "True"
    false = "False"
    unknown = "Unknown"


class Condition(ApiModel):
    """Latest observation of one aspect of the object (metav1.Condition)."""

    type: str = Field(
        max_length=316,
        pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
        r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$",
        description="Type of condition in CamelCase; Ready is the summary.",
    )
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str = Field(
        min_length=1,
        max_length=1024,
        pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$",
        description="Machine-readable CamelCase reason for the last transition.",
    )
    message: str = Field(default="", max_length=32768, description="Human-readable details.")
    last_transition_time: str = Field(
        json_schema_extra={"format": "date-time"},
        description="When the status last changed (RFC 3339).",
    )
    observed_generation: int | None = Field(
        default=None, ge=0, description="The .metadata.generation the condition was set for."
    )


Conditions = Annotated[
    list[Condition],
    Field(
        max_length=16,
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["type"],
        },
        description="Conditions; Ready summarises the others.",
    ),
]


class StatusBase(ApiModel):
    """Fields every status has."""

    observed_generation: int | None = Field(
        default=None, ge=0, description="The .metadata.generation last reconciled."
    )
    conditions: Conditions = Field(default_factory=list)
