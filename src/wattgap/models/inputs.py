"""What a model takes: one InputSpec per input (name, shape without the batch axis, dtype, value range),
and the seeded synthetic batches every stack feeds it. The same specs drive PyTorch, ONNX Runtime,
OpenVINO and TensorFlow cells and the guardrail, so that every stack of a model sees the same numbers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from wattgap.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np

Dtype = Literal["float32", "float16", "float64", "int64", "int32", "int8", "uint8", "bool"]
FLOATS = ("float32", "float16", "float64")
IMAGE = "input"  # the one input of a zoo model, and of a user model given only an input shape


class InputSpec(BaseModel):
    """One model input. Floats are N(0, 1) unless a range is given (then uniform in [low, high)); integers
    are uniform in [low, high) and need the range (token ids: [0, vocabulary size)); bools are fair coins."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    name: str = Field(min_length=1, max_length=200)
    shape: list[int]
    dtype: Dtype = "float32"
    range: list[float] | None = Field(None, min_length=2, max_length=2)  # [low, high)

    @model_validator(mode="after")
    def _consistent(self) -> InputSpec:
        if any(size < 1 for size in self.shape):
            raise ConfigError(
                f"inputs.{self.name}.shape: got {self.shape}; allowed: positive integers without the batch axis"
            )
        if self.range is not None and not self.range[0] < self.range[1]:
            raise ConfigError(f"inputs.{self.name}.range: got {self.range}; allowed: [low, high] with low < high")
        if self.dtype not in FLOATS and self.dtype != "bool" and self.range is None:
            raise ConfigError(
                f"inputs.{self.name}.range: required for {self.dtype} input {self.name!r} (the values it may take, "
                "[low, high), e.g. [0, 30522] for token ids below a vocabulary of 30522)"
            )
        return self

    def sample(self, batch: int, rng: np.random.Generator) -> np.ndarray:
        import numpy as np

        shape = (batch, *self.shape)
        if self.dtype == "bool":
            return rng.integers(0, 2, shape).astype(bool)
        if self.dtype in FLOATS:
            if self.range is None:
                values = rng.standard_normal(shape, dtype=np.float32)
            else:
                values = rng.uniform(self.range[0], self.range[1], shape).astype(np.float32)
            return values.astype(self.dtype)
        low, high = int(self.range[0]), int(self.range[1])  # type: ignore[index]  # required above
        return rng.integers(low, max(high, low + 1), shape).astype(self.dtype)

    def describe(self) -> str:
        bounds = f" in [{self.range[0]:g}, {self.range[1]:g})" if self.range else ""
        return f"{self.name} {self.dtype}[{'x'.join(map(str, self.shape))}]{bounds}"


def image_inputs(shape: tuple[int, ...] | list[int]) -> list[InputSpec]:
    """The single float input of a zoo model or a user model given only an input shape."""
    return [InputSpec(name=IMAGE, shape=list(shape))]


def synthesize(specs: list[InputSpec], batch: int, seed: int) -> dict[str, np.ndarray]:
    """A batch of every input, in the specs' order, from one generator seeded by ``seed``."""
    import numpy as np

    rng = np.random.default_rng(seed)
    return {spec.name: spec.sample(batch, rng) for spec in specs}


def floating(specs: list[InputSpec]) -> bool:
    """Every input is a float tensor (what image-model set-ups such as channels-last assume)."""
    return all(spec.dtype in FLOATS for spec in specs)
