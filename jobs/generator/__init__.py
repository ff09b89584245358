"""Synthetic telemetry: population, calls, faults, attack scenarios, encoded uploads and the landing writer."""
