"""Where support triggers go: a small sink protocol with a file sink (default) and a webhook sink.

A sink delivers one event (a JSON-serializable dict carrying `trigger_id`) and says how it went; it never
raises for a delivery failure, it reports it (`DeliveryResult.error`), so the job records the status in
gold.support_triggers and the next run tries again. Delivery is at-least-once: a receiver dedupes on the
`Idempotency-Key` header (= trigger_id), which is stable across retries and reruns.

* `FileSink` appends one JSON line per event (`quotas.file_path`, under build/ by default).
* `WebhookSink` POSTs the event as JSON. Connection errors, timeouts, 5xx and 429 are retried up to
  `max_retries` times, waiting `backoff * 2**i` before retry i; any other 4xx is the request's fault and is not
  retried (retrying cannot fix it).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol

from lake_layout.config import QuotaSettings

IDEMPOTENCY_HEADER = "Idempotency-Key"
USER_AGENT = "voiplake-support-triggers/1"


@dataclass(frozen=True)
class DeliveryResult:
    delivered: bool
    attempts: int  # requests (or writes) made for this delivery
    error: str | None = None  # why the last attempt failed; None when delivered
    transient: bool = False  # the failure may pass (receiver down, 5xx): later events would likely fail too


class SupportSink(Protocol):
    """Delivers support trigger events; `name` identifies it in gold.support_triggers.sink."""

    @property
    def name(self) -> str: ...

    def deliver(self, event: Mapping[str, Any]) -> DeliveryResult: ...


def event_json(event: Mapping[str, Any]) -> str:
    """The wire form of an event: compact JSON, keys sorted, dates and timestamps ISO 8601."""
    return json.dumps(event, sort_keys=True, separators=(",", ":"), default=lambda v: v.isoformat())


@dataclass(frozen=True)
class FileSink:
    """Appends each event as one JSON line to `path` (directories created as needed)."""

    path: Path

    @property
    def name(self) -> str:
        return f"file:{self.path}"

    def deliver(self, event: Mapping[str, Any]) -> DeliveryResult:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as out:
                out.write(event_json(event) + "\n")
        except OSError as exc:
            return DeliveryResult(False, 1, f"{type(exc).__name__}: {exc}", transient=True)
        return DeliveryResult(True, 1)


@dataclass(frozen=True)
class WebhookSink:
    """POSTs each event as JSON to `url` with an Idempotency-Key header; retries transient failures.

    `sleep` is the wait between retries (injectable so a test can record the backoff schedule).
    """

    url: str
    timeout_seconds: float = 5.0
    max_retries: int = 4
    backoff_seconds: float = 0.5
    sleep: Callable[[float], None] = time.sleep

    def __post_init__(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise ValueError(f"webhook url must be http[s]://..., got {self.url!r}")
        if self.max_retries < 0 or self.backoff_seconds < 0 or self.timeout_seconds <= 0:
            raise ValueError("webhook max_retries and backoff_seconds must be >= 0, timeout_seconds > 0")

    @property
    def name(self) -> str:
        return f"webhook:{self.url}"

    def deliver(self, event: Mapping[str, Any]) -> DeliveryResult:
        import httpx

        headers = {"Content-Type": "application/json", IDEMPOTENCY_HEADER: str(event["trigger_id"]), "User-Agent": USER_AGENT}
        body = event_json(event).encode()
        error, attempts, transient = "not attempted", 0, True
        with httpx.Client(timeout=self.timeout_seconds) as client:
            for attempt in range(self.max_retries + 1):
                if attempt:
                    self.sleep(self.backoff_seconds * 2 ** (attempt - 1))
                attempts += 1
                try:
                    response = client.post(self.url, content=body, headers=headers)
                except httpx.TransportError as exc:  # refused, reset, timed out: the receiver may come back
                    error, transient = f"{type(exc).__name__}: {exc}", True
                    continue
                if response.is_success:
                    return DeliveryResult(True, attempts)
                error = f"HTTP {response.status_code}: {response.text[:200]}"
                transient = response.status_code >= 500 or response.status_code == 429
                if not transient:
                    break  # the request itself was refused: sending it again cannot help
        return DeliveryResult(False, attempts, error, transient)


def sink_from_settings(quotas: QuotaSettings) -> SupportSink:
    """The configured sink: quotas.sink = file (default) or webhook."""
    if quotas.sink == "webhook":
        return WebhookSink(
            url=quotas.webhook_url, timeout_seconds=float(quotas.webhook_timeout_seconds),
            max_retries=quotas.webhook_max_retries, backoff_seconds=float(quotas.webhook_backoff_seconds),
        )
    return FileSink(Path(quotas.file_path))
