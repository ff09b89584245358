"""`voiplake` command line: generate telemetry, run the demo day, query and list tables.

    voiplake generate --date 2026-11-24 --events 200000 --seed 7 [--faults] [--scenarios]
    voiplake ingest --date 2026-11-24            # the bronze job directly, without Airflow
    voiplake publish-stats --date 2026-11-24      # differentially private public statistics (budget ledger)
    voiplake demo --date 2026-11-24               # object store + generate + Airflow DAG + summary
    voiplake bench --date 2026-11-24 --events 1000000 [--scale [--scale-sizes 1000000,3000000,10000000]]   # jobs.pipeline.bench
    voiplake summary --date 2026-11-24
    voiplake privacy-audit --date 2026-11-24 [--targets 200] [--known-calls 3]   # exit 3 when a published table fails
    voiplake query "SELECT platform, count(*) FROM bronze.call_events GROUP BY 1" [--format csv|json] [--role R] [--as USER]
    voiplake audit verify                          # access log + landing integrity chains, objects re-hashed (exit 5 on a problem)
    voiplake tables
    voiplake retention run --as-of 2027-06-01 [--dry-run]   # purge expired data per lake_layout/retention_policy.toml
    voiplake schema check [--new jobs/telemetry/schemas/v3.proto]   # compatible with every in-field version (exit 1 if not)
    voiplake report lineage --out DIR [--from 2026-11-01 --to 2026-11-30]   # auditors' HTML report (lineage graph, audit records)
    voiplake dashboard --out DIR [--from 2026-11-01 --to 2026-11-30] [--role noc_operator]   # static HTML: usage + anomaly plots, filters
    voiplake capacity --date 2026-11-24                # SIP trunk busy hour, peak calls, Erlang B channels
    voiplake extract cost-allocation --period 2026-11 --out costs.csv   # finance: costs by account (.parquet too)
    voiplake support-triggers --date 2026-11-24        # quota / quality triggers, delivered to the file or webhook sink
    voiplake billing --date 2026-11-24                 # B2B billing: rate the open period, adjustments for late calls
    voiplake extract billing --period 2026-11 --out billing.csv   # billing lines, reconciled with silver (.parquet too)
    voiplake account-usage --date 2026-11-24           # usage per B2B account and day (gold.account_usage_daily)
    voiplake extract usage-report --reseller northwind --from 2026-11-01 --to 2026-11-30 --out usage.csv
    voiplake api token --reseller northwind            # issue a reseller's CRM API token (printed once, hash kept)
    voiplake api serve [--port 8765]                   # read-only CRM API on 127.0.0.1 (docs at /docs)
    voiplake api openapi --out docs/crm_api.openapi.json
    voiplake anomalies --date 2026-11-24               # gold.anomalies, SIEM files / syslog, device quarantine
    voiplake quarantine list [--all] | release --device PSEUDONYM --reason TEXT
    voiplake keys rotate                          # new KEK version; re-wrap the data keys (tables untouched)
    voiplake keys decrypt-check --date 2026-11-24 --role security   # every restricted cell decrypts (counts only)
    voiplake forensics timeline --subscriber +49... --from 2026-11-01 --to 2026-11-30 [--out t.jsonl]   # or --call-id
    voiplake forensics drill --days 30 [--subscriber +49...] [--as-of 2026-11-24]   # exit 7 if incomplete
    voiplake dsr export --subscriber +4915112345678 --request-id DSR-42 [--out DIR]   # the subject's data, JSON + CSV
    voiplake dsr delete --subscriber +4915112345678 --request-id DSR-42   # erase + VACUUM; exit 8 under a legal hold

Spark's and Airflow's logs go to stderr; stdout carries only the command's result.

Each command group's parsers and handlers live in a module of jobs.cli (COMMANDS below); this module builds the
parser from them and dispatches.
"""

from __future__ import annotations

import argparse
import sys
from types import ModuleType
from typing import Sequence

from jobs.cli import business, demo, governance, platform, privacy, query, reports, security
from lake_layout.config import load_settings

# Every command, in the order `voiplake --help` lists them, with the module that builds its parser (PARSERS) and
# runs it (run).
COMMANDS: tuple[tuple[str, ModuleType], ...] = (
    ("generate", demo),
    ("ingest", demo),
    ("publish-stats", privacy),
    ("demo", demo),
    ("bench", demo),
    ("summary", demo),
    ("query", query),
    ("audit", governance),
    ("dsr", governance),
    ("forensics", governance),
    ("retention", governance),
    ("hold", governance),
    ("pipeline", demo),
    ("tables", query),
    ("report", reports),
    ("dashboard", security),
    ("lineage", query),
    ("warmup", platform),
    ("keys", platform),
    ("privacy-audit", privacy),
    ("capacity", business),
    ("billing", business),
    ("support-triggers", business),
    ("extract", business),
    ("account-usage", business),
    ("api", business),
    ("anomalies", security),
    ("quarantine", security),
    ("sdk-config", platform),
    ("schema", platform),
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="voiplake", description="Privacy-first lakehouse for VoIP telemetry")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, group in COMMANDS:
        group.PARSERS[name](sub)

    args = parser.parse_args(argv)
    if args.command == "schema":  # the one command that runs without the settings
        return platform.schema_command(args)
    return dict(COMMANDS)[args.command].run(load_settings(), args)


if __name__ == "__main__":
    sys.exit(main())
