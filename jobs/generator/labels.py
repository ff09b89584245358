"""Ground truth of the generated attack scenarios, pseudonymized as bronze would, for measuring detection.

`label_records` replaces each `ScenarioLabel`'s raw identifiers with pseudonyms under bronze's active key (so labels
compare with findings); `write_labels` stores them as JSON (build/scenarios/labels-<date>.json from
`voiplake generate --scenarios`). Detectors never read them.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Sequence

from jobs.generator.day import GeneratedDay
from jobs.generator.scenarios import ScenarioLabel
from jobs.platform.identifiers import pseudonymize
from jobs.platform.keys import KeyMaterial


def label_records(labels: Sequence[ScenarioLabel], keys: KeyMaterial) -> list[dict[str, Any]]:
    """Labels with pseudonyms instead of raw identifiers (bronze's active key), windows as ISO-8601 UTC."""
    key = keys.pseudonym.active_key

    def iso(ms: int) -> str:
        return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")

    return [{
        "scenario": label.scenario, "account_id": label.account_id,
        "subscriber_pseudonym": pseudonymize("msisdn", label.msisdn, key),
        "device_pseudonym": pseudonymize("device", label.device_id, key),
        "window_start": iso(label.start_ms), "window_end": iso(label.end_ms), "call_ids": list(label.call_ids),
    } for label in labels]


def write_labels(path: Path, generated: GeneratedDay, keys: KeyMaterial) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"day": generated.day.isoformat(), "labels": label_records(generated.labels, keys)},
                               indent=2, sort_keys=True))
    return path
