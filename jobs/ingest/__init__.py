"""Ingestion: the door (replay, rate and device-quarantine verdicts), bronze (verify, decode, pseudonymize at the door), landing integrity, authentication-log and reference-data ingestion."""
