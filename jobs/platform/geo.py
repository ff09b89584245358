"""H3 geo zones as Arrow-vectorized Spark functions (Uber's H3 library; no hand-written geometry).

No `from __future__ import annotations` here: pandas UDFs infer their kind from real type hints.
"""

import pandas as pd
from pyspark.sql import Column
from pyspark.sql import functions as F


def h3_cell(latitude: Column, longitude: Column, *, resolution: int) -> Column:
    """H3 cell (hex string) of a point at `resolution`; null where either coordinate is null."""

    @F.pandas_udf("string")  # type: ignore[call-overload]
    def to_cell(lat: pd.Series, lon: pd.Series) -> pd.Series:
        import h3

        # h3 has no vectorized API for string cells; this loops per value inside one Arrow batch.
        return pd.Series(
            [None if pd.isna(a) or pd.isna(b) else h3.latlng_to_cell(float(a), float(b), resolution) for a, b in zip(lat, lon)],
            dtype=object,
        )

    return to_cell(latitude, longitude)


def h3_parent(cell: Column, *, resolution: int) -> Column:
    """The coarser H3 cell at `resolution` containing `cell`; null for null."""

    @F.pandas_udf("string")  # type: ignore[call-overload]
    def to_parent(cells: pd.Series) -> pd.Series:
        import h3

        return pd.Series([None if c is None else h3.cell_to_parent(c, resolution) for c in cells], dtype=object)

    return to_parent(cell)
