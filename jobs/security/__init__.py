"""Security: daily anomaly detectors with device quarantine, the SIEM export, the usage and anomaly dashboard."""
