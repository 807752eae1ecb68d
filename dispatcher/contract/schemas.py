"""Generate the public JSON Schemas from the pydantic models, and check them for drift."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

from dispatcher.contract.events import INPUT_MODEL_BY_TOPIC, DeadLetter, Escalation
from dispatcher.contract.topics import DEAD_LETTER, ESCALATIONS

# Every public topic: the inputs the decoder validates, plus our two outputs.
MODEL_BY_TOPIC: dict[str, type[BaseModel]] = {
    **INPUT_MODEL_BY_TOPIC,
    ESCALATIONS: Escalation,
    DEAD_LETTER: DeadLetter,
}


def render(model: type[BaseModel], topic: str) -> str:
    schema = model.model_json_schema()
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"urn:acute-dispatcher:schema:{topic}:v1",
        "x-topic": topic,
        **schema,
    }
    return json.dumps(schema, indent=2, ensure_ascii=False, sort_keys=False) + "\n"


def expected_files() -> dict[str, str]:
    return {f"{topic}.schema.json": render(m, topic) for topic, m in MODEL_BY_TOPIC.items()}


def write(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in expected_files().items():
        path = folder / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def drift(folder: Path) -> list[str]:
    """Names of schema files that are missing or differ from the models."""
    out = []
    for name, text in expected_files().items():
        path = folder / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            out.append(name)
    return out
