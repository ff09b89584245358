"""The table registry's vocabulary: column classification, retention tiers, table specs.

Declarations live in `lake_layout.tables`; this module only defines what a declaration is.
It imports no Spark at module level so that DAG files can read the registry at parse time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql.types import StructType

    from lake_layout.config import Settings


class Sensitivity(str, Enum):
    """The four sensitivity levels access policy is written in (lake_layout.access), least to most."""

    PUBLIC = "public"
    INTERNAL = "internal"
    CONFIDENTIAL = "confidential"
    RESTRICTED = "restricted"

    @property
    def rank(self) -> int:
        return list(Sensitivity).index(self)


class Classification(str, Enum):
    """What kind of data a column holds; drives encryption, access (via its sensitivity) and DSR scope."""

    PUBLIC = "public"  # safe to publish
    INTERNAL = "internal"  # operational metadata, no personal data
    PSEUDONYMOUS = "pseudonymous"  # personal data behind a keyed pseudonym (still GDPR personal data)
    PERSONAL = "personal"  # directly describes a person's behaviour or place (location, coarse IP)
    RESTRICTED = "restricted"  # encrypted originals; decryption limited to network operations

    @property
    def sensitivity(self) -> Sensitivity:
        # Pseudonyms and coarse personal data are both GDPR personal data: confidential. Only ciphertext of
        # originals is restricted; public aggregates are public.
        return _SENSITIVITY[self]


_SENSITIVITY = {
    Classification.PUBLIC: Sensitivity.PUBLIC,
    Classification.INTERNAL: Sensitivity.INTERNAL,
    Classification.PSEUDONYMOUS: Sensitivity.CONFIDENTIAL,
    Classification.PERSONAL: Sensitivity.CONFIDENTIAL,
    Classification.RESTRICTED: Sensitivity.RESTRICTED,
}


class Plane(str, Enum):
    """Where a telecom field comes from; the two are regulated differently (e.g. ePrivacy traffic data)."""

    SIGNALING = "signaling"  # call set-up and tear-down: who, when, from where, how it ended (traffic data)
    MEDIA = "media"  # the media stream's volume and quality, never its content


class RetentionTier(str, Enum):
    """Retention class of a table; periods per jurisdiction come from the retention policy."""

    RAW = "raw"  # landing objects
    BRONZE_RESTRICTED = "bronze_restricted"  # pseudonymized events with encrypted originals
    OPERATIONAL = "operational"  # quarantine and ingestion manifests
    SILVER = "silver"
    GOLD_AGGREGATE = "gold_aggregate"  # anonymous aggregates
    FINANCIAL = "financial"  # billing records: kept as commercial and tax law require
    AUDIT = "audit"  # audit and lineage records, kept longest


_SPARK_TYPES = {
    "string": "StringType",
    "int": "IntegerType",
    "long": "LongType",
    "double": "DoubleType",
    "boolean": "BooleanType",
    "timestamp": "TimestampType",
    "date": "DateType",
    "binary": "BinaryType",
}


# Classifications whose values never enter a Delta transaction log (TableSpec.stats_columns).
LOG_PRIVATE = frozenset({Classification.PSEUDONYMOUS, Classification.PERSONAL, Classification.RESTRICTED})


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # one of _SPARK_TYPES
    classification: Classification
    description: str
    nullable: bool = True
    plane: Plane | None = None  # signaling or media field (None: neither, e.g. bookkeeping or radio metrics)
    plane_reason: str = ""  # why the field is classified as it is, given its plane

    def __post_init__(self) -> None:
        if self.type not in _SPARK_TYPES:
            raise ValueError(f"column {self.name}: unknown type {self.type!r}; known: {sorted(_SPARK_TYPES)}")
        if self.plane is not None and not self.plane_reason:
            raise ValueError(f"column {self.name}: a {self.plane.value} field needs plane_reason (why its classification)")
        if self.classification is Classification.RESTRICTED and self.type != "binary":
            raise ValueError(f"column {self.name}: restricted columns hold ciphertext only (type binary), got {self.type}")

    @property
    def sensitivity(self) -> Sensitivity:
        return self.classification.sensitivity


@dataclass(frozen=True)
class TableSpec:
    """One table: the only place its name, location, schema and policies are written."""

    name: str  # "<layer>.<table>", e.g. "bronze.call_events"
    description: str
    columns: tuple[Column, ...]
    partition_by: tuple[str, ...] = ()
    merge_keys: tuple[str, ...] = ()  # identity of a row; writers MERGE on these
    retention_tier: RetentionTier = RetentionTier.OPERATIONAL
    purpose: str = ""  # why the data is held (data minimization)
    # Delta optimized writes (table property delta.autoOptimize.optimizeWrite): a write, MERGEs included, shuffles
    # its rows into bins of spark.databricks.delta.optimizeWrite.binSize (jobs/platform/spark.py) per partition value
    # instead of one task per partition value. For the day-sized fact tables; a small table would only pay a shuffle.
    optimize_write: bool = False
    # The job module that writes the table (e.g. "jobs.ingest.bronze"): `voiplake tables`, the docs and lineage's
    # source-code facet point a reader from the table to its code; tests/lake_layout/test_registry.py checks it.
    writer: str = ""
    extra: dict[str, str] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        layer, _, table = self.name.partition(".")
        if not layer or not table:
            raise ValueError(f"table name {self.name!r} must be '<layer>.<table>'")
        if not self.writer.startswith("jobs."):
            raise ValueError(f"{self.name}: writer must name the job module that writes it, e.g. 'jobs.ingest.bronze'")
        names = [c.name for c in self.columns]
        if len(set(names)) != len(names):
            raise ValueError(f"{self.name}: duplicate column names")
        for key in (*self.partition_by, *self.merge_keys):
            if key not in names:
                raise ValueError(f"{self.name}: {key!r} is not a column")

    @property
    def layer(self) -> str:
        return self.name.split(".", 1)[0]

    @property
    def table(self) -> str:
        return self.name.split(".", 1)[1]

    @property
    def stats_columns(self) -> tuple[str, ...] | None:
        """The columns whose min / max values Delta may keep in the transaction log (data-skipping statistics): all
        but personal data (pseudonyms, coarse IPs and places, ciphertext). A value in a log entry outlives the
        erasure or retention purge of its row, since VACUUM removes data files, never log entries. None: every
        column (the table holds no personal data)."""
        if not any(c.classification in LOG_PRIVATE for c in self.columns):
            return None
        # Delta refuses partition columns (their values are the files' partition values) and types it keeps no
        # min / max of (boolean, binary) in this list
        return tuple(c.name for c in self.columns if c.classification not in LOG_PRIVATE
                     and c.name not in self.partition_by and c.type not in ("boolean", "binary"))

    @property
    def writer_path(self) -> str:
        """The writer module's file, relative to the project root (jobs/ingest/bronze.py)."""
        return self.writer.replace(".", "/") + ".py"

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def location(self, settings: "Settings") -> str:
        """URI of the table's Delta directory under the configured lake root."""
        return f"{settings.lake.root.rstrip('/')}/{self.layer}/{self.table}"

    def asset_uri(self, settings: "Settings") -> str:
        """URI for Airflow Assets: a local root becomes file://, s3a:// becomes s3://."""
        location = self.location(settings)
        if location.startswith("s3a://"):
            return "s3://" + location[len("s3a://"):]
        if "://" not in location:
            return "file://" + location
        return location

    def columns_of(self, classification: Classification) -> list[str]:
        return [c.name for c in self.columns if c.classification is classification]

    def columns_up_to(self, sensitivity: Sensitivity) -> list[str]:
        """Columns whose sensitivity is at most `sensitivity` (what a role with that clearance may read)."""
        return [c.name for c in self.columns if c.sensitivity.rank <= sensitivity.rank]

    def spark_schema(self) -> "StructType":
        from pyspark.sql import types as T

        return T.StructType(
            [T.StructField(c.name, getattr(T, _SPARK_TYPES[c.type])(), c.nullable) for c in self.columns]
        )
