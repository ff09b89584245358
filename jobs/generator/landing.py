"""A generated day of uploads put into the landing zone of the object store, as `voiplake generate` and `make run` do."""

from __future__ import annotations

import time
from datetime import date
from pathlib import Path
from typing import Any

from jobs.generator.labels import write_labels
from lake_layout.config import PROJECT_ROOT, Settings


def generate_to_landing(settings: Settings, day: date, *, events: int, seed: int, faults: bool,
                        scenarios: bool = False, noncompliant: bool = False) -> dict[str, Any]:
    """Generate a day of uploads and put them into the landing zone; returns a summary.

    `scenarios`: add labelled attack scenarios and the day's auth log (landing), and write the labels, pseudonymized,
    to build/scenarios/labels-<date>.json (ground truth for measuring detection; detectors never read it)."""
    from concurrent.futures import ThreadPoolExecutor

    from jobs.generator.day import generate_day
    from jobs.generator.faults import FaultPlan
    from jobs.generator.noncompliance import NonCompliancePlan
    from jobs.generator.scenarios import ScenarioPlan
    from jobs.platform.keys import load_key_material
    from jobs.platform.objectstore import ensure_bucket, s3_client

    keys = load_key_material(Path(settings.keys.file))
    t0 = time.monotonic()
    generated = generate_day(
        day, events=events, seed=seed, keys=keys, prefix=settings.landing.prefix,
        faults=FaultPlan.default(max(1, events // 40)) if faults else None,
        scenarios=ScenarioPlan(irsf_bursts=1, compromised_accounts=2, telemetry_floods=1, call_floods=1)
        if scenarios else None,
        # one client per breach of the central SDK configuration (gold.telemetry_compliance finds them)
        noncompliance=NonCompliancePlan(1, 1, 1, 1, 1) if noncompliant else None,
    )
    gen_seconds = time.monotonic() - t0
    client = s3_client(settings.object_store)
    ensure_bucket(client, settings.landing.bucket)
    t1 = time.monotonic()
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda o: client.put_object(Bucket=settings.landing.bucket, Key=o.key, Body=o.body), generated.objects))
    client.put_object(Bucket=settings.landing.bucket, Key=generated.directory_key, Body=generated.directory_body)
    extra: dict[str, Any] = {}
    if generated.auth_key:
        from collections import Counter


        client.put_object(Bucket=settings.landing.bucket, Key=generated.auth_key, Body=generated.auth_body)
        labels = write_labels(PROJECT_ROOT / "build" / "scenarios" / f"labels-{day.isoformat()}.json", generated, keys)
        extra = {"auth_log": f"s3://{settings.landing.bucket}/{generated.auth_key}", "scenario_labels": str(labels),
                 "scenarios": dict(sorted(Counter(label.scenario for label in generated.labels).items()))}
    faults_by_kind: dict[str, int] = {}
    time_faults: dict[str, int] = {}  # events silver must quarantine, by reason
    for obj in generated.objects:
        if obj.fault:
            faults_by_kind[obj.fault] = faults_by_kind.get(obj.fault, 0) + 1
        for reason in obj.time_fault_reasons:
            time_faults[reason] = time_faults.get(reason, 0) + 1
    return {
        "date": day.isoformat(), "objects": len(generated.objects), "events": generated.events_total,
        "retried_objects": sum(o.is_retry for o in generated.objects),
        "bad_records": sum(len(o.bad_record_indexes) for o in generated.objects),
        "faulty_objects": faults_by_kind, "time_faults": dict(sorted(time_faults.items())),
        "landing": f"s3://{settings.landing.bucket}/{settings.landing.prefix}/",
        "directory_export": f"s3://{settings.landing.bucket}/{generated.directory_key}",
        "consent_changes": len(generated.consent_changes), **extra,
        "noncompliant_clients": {label.kind: label.app_version for label in generated.noncompliant},
        "generate_seconds": round(gen_seconds, 1), "upload_seconds": round(time.monotonic() - t1, 1),
    }
