"""Common reporting units for network metrics: one network class, signal in dBm, a 0-4 quality score.

Each platform reports its own radio metric (iOS and Android: the serving cell's RSRP / RSCP in dBm, or
GSM RSSI in ASU; Wi-Fi RSSI in dBm; browsers: nothing). Silver converts every metric to dBm and scores
it 0 (none / poor) .. 4 (great) with the thresholds Android uses for its signal bars
(`CellSignalStrengthLte/Nr/Wcdma/Gsm`, `WifiManager.calculateSignalLevel`), so a "3" means the same on
every platform. Declared here, next to the table registry, so analysts read units where they read
schemas; `jobs.curate.silver_calls.normalize_network` is the only code that applies them.
"""

from __future__ import annotations

from dataclasses import dataclass

# network_type as reported -> the one network class reports group by.
NETWORK_CLASSES: dict[str, str] = {
    "wifi": "wifi",
    "ethernet": "wired",
    "5g": "cellular_5g",
    "lte": "cellular_4g",
    "3g": "cellular_legacy",
    "2g": "cellular_legacy",
}


@dataclass(frozen=True)
class SignalScale:
    """How one platform metric becomes dBm (dbm = value * scale + offset) and a 0-4 score.

    `thresholds_dbm`: lower bounds (inclusive) of scores 1, 2, 3, 4, ascending.
    """

    metric: str
    unit: str
    scale: float
    offset: float
    thresholds_dbm: tuple[float, float, float, float]
    valid_dbm: tuple[float, float]  # physically meaningful range; outside it the value is discarded

    def __post_init__(self) -> None:
        if list(self.thresholds_dbm) != sorted(self.thresholds_dbm):
            raise ValueError(f"{self.metric}: thresholds must ascend")

    def to_dbm(self, value: float) -> float:
        return value * self.scale + self.offset

    def quality(self, dbm: float) -> int:
        return sum(1 for t in self.thresholds_dbm if dbm >= t)


SIGNAL_SCALES: dict[str, SignalScale] = {
    s.metric: s
    for s in (
        SignalScale("wifi_rssi_dbm", "dBm", 1.0, 0.0, (-88.0, -77.0, -66.0, -55.0), (-100.0, -10.0)),
        SignalScale("nr_rsrp_dbm", "dBm", 1.0, 0.0, (-110.0, -90.0, -80.0, -65.0), (-140.0, -44.0)),
        SignalScale("lte_rsrp_dbm", "dBm", 1.0, 0.0, (-115.0, -105.0, -95.0, -85.0), (-140.0, -44.0)),
        SignalScale("umts_rscp_dbm", "dBm", 1.0, 0.0, (-115.0, -105.0, -95.0, -85.0), (-120.0, -24.0)),
        # 3GPP TS 27.007: GSM RSSI ASU 0..31 maps to -113 .. -51 dBm.
        SignalScale("gsm_rssi_asu", "ASU", 2.0, -113.0, (-107.0, -103.0, -97.0, -89.0), (-113.0, -51.0)),
    )
}

# Classes of dialled numbers (jobs.ingest.destinations decides all but on_net at bronze; billing adds on_net).
DESTINATION_CLASSES = ("on_net", "domestic_mobile", "domestic_fixed", "international", "premium", "unknown")
