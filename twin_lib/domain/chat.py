"""Chat messages, the unit every dataset, trainer and server of the platform speaks in."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

Role = Literal["system", "user", "assistant"]


class ChatMessage(BaseModel):
    """One turn; the same shape as the OpenAI chat API and Hugging Face chat templates."""

    model_config = ConfigDict(frozen=True)

    role: Role
    content: str


def as_dicts(messages: list[ChatMessage]) -> list[dict[str, str]]:
    """The plain-dict form chat templates and the OpenAI client take."""
    return [{"role": m.role, "content": m.content} for m in messages]
