"""Chat messages as engines receive them (see base.py): building them from rendered prompts,
attaching a question's images, and turning image parts into what an API takes (data URLs).

Image parts carry the file path (``{"type": "image", "path": ...}``), never the bytes, so
run records stay small and readable; an engine that sends images encodes them itself.
"""

from __future__ import annotations

import base64
import mimetypes
from pathlib import Path
from typing import Any, Sequence

from jmedllm.engines.base import Message, PromptInput

IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
               ".webp": "image/webp"}


def user_message(text: str) -> list[Message]:
    """A rendered text prompt as one user message."""
    return [{"role": "user", "content": text}]


def as_messages(prompt: PromptInput) -> list[Message]:
    """A prompt input as a list of messages (a string becomes one user message); copies."""
    if isinstance(prompt, str):
        return user_message(prompt)
    return [dict(m, content=list(m["content"]) if isinstance(m.get("content"), list) else m.get("content"))
            for m in prompt]


def with_images(prompt: PromptInput, images: Sequence[str | Path]) -> list[Message]:
    """The prompt as messages with ``images`` appended as image parts of the last user message."""
    messages = as_messages(prompt)
    users = [i for i, m in enumerate(messages) if m.get("role") == "user"]
    if not users:
        raise ValueError("a prompt with images needs a user message to carry them")
    last = messages[users[-1]]
    content = last["content"]
    parts: list[dict[str, Any]] = [{"type": "text", "text": content}] if isinstance(content, str) else list(content)
    parts += [{"type": "image", "path": str(p)} for p in images]
    last["content"] = parts
    return messages


def has_images(prompt: PromptInput) -> bool:
    if isinstance(prompt, str):
        return False
    return any(isinstance(m.get("content"), list) and any(p.get("type") == "image" for p in m["content"])
               for m in prompt)


def text_only(messages: Sequence[Message]) -> list[dict[str, str]]:
    """Messages with every content a plain string (text parts joined); refuses image parts."""
    out = []
    for m in messages:
        content = m.get("content")
        if isinstance(content, list):
            if any(p.get("type") != "text" for p in content):
                raise ValueError("this engine is text-only: a message holds an image part")
            content = "".join(p.get("text", "") for p in content)
        out.append({"role": m["role"], "content": content})
    return out


def data_url(path: str | Path) -> str:
    """A file as a ``data:`` URL (base64), as OpenAI-compatible vision APIs take images."""
    path = Path(path)
    mime = IMAGE_TYPES.get(path.suffix.lower()) or mimetypes.guess_type(path.name)[0]
    if not mime or not mime.startswith("image/"):
        raise ValueError(f"{path}: not an image file type this toolkit sends ({', '.join(IMAGE_TYPES)})")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"{path}: cannot read image ({exc.strerror or exc})") from None
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def to_openai(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """Messages in the OpenAI chat format: image parts become ``image_url`` parts with data URLs."""
    out = []
    for m in messages:
        content = m.get("content")
        if isinstance(content, list):
            parts = []
            for p in content:
                if p.get("type") == "image":
                    parts.append({"type": "image_url", "image_url": {"url": data_url(p["path"])}})
                elif p.get("type") == "text":
                    parts.append({"type": "text", "text": p["text"]})
                else:
                    raise ValueError(f"unknown message part type {p.get('type')!r} (text or image)")
            content = parts
        out.append({"role": m["role"], "content": content})
    return out


__all__ = ["as_messages", "data_url", "has_images", "text_only", "to_openai", "user_message", "with_images"]
