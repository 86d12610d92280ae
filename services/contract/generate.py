"""Write (or check) the JSON Schema file of every topic from the typed contract.

python -m services.contract.generate          # rewrite schemas/*.json
python -m services.contract.generate --check  # exit 1 if a committed file is stale
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Literal

from services.contract.events import SCHEMA_VERSION, TOPIC_MODELS

SCHEMA_DIR = Path(__file__).parent / "schemas"


def schema_for(topic: str) -> dict[str, object]:
    """The JSON Schema a producer to (or consumer of) ``topic`` validates against."""
    model = TOPIC_MODELS[topic]
    # Inputs are described as producers may write them; outputs as we serialise them.
    mode: Literal["validation", "serialization"] = (
        "validation" if topic in ("clicks", "items") else "serialization"
    )
    schema = model.model_json_schema(mode=mode)
    if topic == "clicks":
        # Producers may omit event_id: the decoder derives it from topic, partition, offset.
        schema["required"] = [f for f in schema.get("required", []) if f != "event_id"]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://streamrec.dev/schemas/v{SCHEMA_VERSION}/{topic}.schema.json",
        "title": f"{topic} (v{SCHEMA_VERSION})",
        **{k: v for k, v in schema.items() if k != "title"},
    }


def render(topic: str) -> str:
    return json.dumps(schema_for(topic), indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if committed files are stale")
    args = parser.parse_args(argv)
    stale = []
    for topic in TOPIC_MODELS:
        path = SCHEMA_DIR / f"{topic}.schema.json"
        text = render(topic)
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(path.name)
        else:
            SCHEMA_DIR.mkdir(exist_ok=True)
            path.write_text(text)
    if stale:
        print(
            f"stale schemas: {', '.join(stale)}; run python -m services.contract.generate",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
