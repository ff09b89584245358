"""Governance: retention, legal holds, data-subject requests, forensic bundles and timelines, the auditors' lineage report."""
