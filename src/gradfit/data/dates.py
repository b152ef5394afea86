"""Date and time columns as numbers: a stated unit since a stated origin.

A fit needs numbers, so a date column becomes "days since 2020-01-01" (or seconds, minutes,
hours, weeks, years of 365.25 days). The unit, the origin and how the text was read (ISO, or
day-first / month-first) are recorded per column, so that a later read of the same data
(pictures of a saved run, predictions) gives the same numbers: pass the record back as
``dates={"when": record}`` to :func:`gradfit.data.io.read_table` or :func:`convert_dates`.

Text is read in these forms, one per column: ISO ``2020-03-31``, ``2020-03-31 14:05[:30]``,
``2020-03-31T14:05:30+01:00`` (zones are converted to UTC), ``2020/03/31``; day-first or
month-first ``31/03/2020``, ``31.03.2020``, ``31-03-20`` (with an optional time; a 2-digit year
below 69 is 20xx, else 19xx); or any ``strftime`` format given as ``format``. Which of day-first
and month-first is decided from the values (a first field above 12 means day-first), from ``.``
as separator (always day-first) or from decimal commas in the file; otherwise it is ambiguous
and the user is asked to say.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from gradfit.data.lines import LineNumbers, row_numbers
from gradfit.data.spelling import suggest
from gradfit.errors import ConfigError, DataError
from gradfit.lazy_exports import LazyModule

if TYPE_CHECKING:
    import pandas as pd
else:  # imported on first use: a plain numeric CSV file is read without pandas
    pd = LazyModule("pandas")

__all__ = ["UNITS", "apply_dates", "check_date_spec", "convert_dates", "datetime_columns", "to_numbers"]

UNITS = {
    "seconds": 1.0,
    "minutes": 60.0,
    "hours": 3600.0,
    "days": 86400.0,
    "weeks": 604800.0,
    "years": 365.25 * 86400.0,
}
_AUTO_ORDER = ("years", "days", "hours", "minutes", "seconds")  # weeks only when asked for
_SPEC_KEYS = ("unit", "origin", "dayfirst", "format")
_ISO = r"^\d{4}-\d{1,2}-\d{1,2}(?:[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?\s*(?:Z|[+-]\d{2}:?\d{2})?$"
_YMD = r"^(\d{4})[/.](\d{1,2})[/.](\d{1,2})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}(?:\.\d+)?))?)?$"
_DMY = r"^(\d{1,2})([/.-])(\d{1,2})\2(\d{4}|\d{2})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}(?:\.\d+)?))?)?$"
_FORMS = "YYYY-MM-DD [HH:MM[:SS]], DD/MM/YYYY, MM/DD/YYYY or DD.MM.YYYY"


def check_date_spec(name: str, spec) -> dict:
    """A column's date options, checked: ``{"unit": "auto"|UNIT, "origin": str|None, "dayfirst": bool|None,
    "format": str|None}``; a ConfigError naming the column otherwise."""
    if spec is None:
        spec = {}
    if not isinstance(spec, Mapping):
        raise ConfigError(
            f"The date options of column {name!r} must be a dict such as {{'unit': 'days'}}. Got {spec!r} instead."
        )
    unknown = sorted(set(spec) - set(_SPEC_KEYS))
    if unknown:
        raise ConfigError(
            f"Unknown date option(s) for column {name!r}: {', '.join(map(repr, unknown))}. "
            f"Known: {', '.join(_SPEC_KEYS)}."
        )
    unit = spec.get("unit") or "auto"
    if unit not in UNITS and unit != "auto":
        raise ConfigError(
            f"The date unit of column {name!r} must be one of auto, {', '.join(UNITS)}. Got {unit!r} instead."
        )
    origin = spec.get("origin")
    if origin is not None:
        try:
            pd.Timestamp(str(origin))
        except (ValueError, TypeError):
            raise ConfigError(
                f"The date origin of column {name!r} must be a date such as '2020-01-01'. Got {origin!r} instead."
            ) from None
        origin = str(origin)
    dayfirst = spec.get("dayfirst")
    if dayfirst is not None and not isinstance(dayfirst, bool):
        raise ConfigError(f"'dayfirst' for column {name!r} must be True, False or None. Got {dayfirst!r} instead.")
    fmt = spec.get("format")
    if fmt is not None and (not isinstance(fmt, str) or "%" not in fmt):
        raise ConfigError(
            f"The date format of column {name!r} must be a strftime format such as '%d %b %Y'. Got {fmt!r} instead."
        )
    return {"unit": unit, "origin": origin, "dayfirst": dayfirst, "format": fmt}


def datetime_columns(df: pd.DataFrame) -> list[str]:
    """The columns of ``df`` that hold dates, times or durations (datetime64, timedelta64, periods)."""
    # By the frame's dtypes, each kind judged once: taking out every column would cost ~0.1 ms a column.
    dtypes = df.dtypes
    dated = {dt for dt in set(dtypes) if _is_datetime(dt)}
    return [str(c) for c, dt in zip(df.columns, dtypes) if dt in dated] if dated else []


def _is_datetime(dtype) -> bool:
    return (
        pd.api.types.is_datetime64_any_dtype(dtype)
        or pd.api.types.is_timedelta64_dtype(dtype)
        or isinstance(dtype, pd.PeriodDtype)
    )


def convert_dates(
    df: pd.DataFrame,
    specs: Mapping[str, Mapping],
    *,
    source: str = "data",
    row_label: str = "row",
    first_row: int | LineNumbers = 0,
    decimal_comma: bool = False,
) -> tuple[pd.DataFrame, dict, list[str]]:
    """``df`` with the columns of ``specs`` turned into numbers (a copy), the records and notes.

    Parameters
    ----------
    df : DataFrame
    specs : mapping
        Column name -> options (see :func:`check_date_spec`); a record returned by an earlier call
        gives the same numbers again.
    source, row_label, first_row
        How messages name the data and count its rows (``line 2`` is a CSV's first data row).
    decimal_comma : bool
        The file writes numbers with decimal commas: ambiguous dates are then read day-first.

    Returns
    -------
    (DataFrame, dict, list of str)
        The converted frame; per column ``{"unit", "origin", ...}``; one note per column.

    Raises
    ------
    DataError
        Naming the column, the first value that is not a date and its line or row, and the fix.
    """
    out, records, notes = df.copy(deep=False), {}, []
    for name, raw in specs.items():
        spec = check_date_spec(name, raw)
        if name not in out.columns:
            columns = [str(c) for c in out.columns]
            close = suggest(name, columns)
            raise DataError(
                f"{source}: the date column {name!r} named in --dates (library: read={{'dates': ...}}) is "
                f"not a column. Columns: {', '.join(columns[:20])}." + (f" Did you mean {close!r}?" if close else "")
            )
        values, record, how = _to_times(out[name], name, spec, source, row_label, first_row, decimal_comma)
        numbers, record = to_numbers(values, {**spec, **record})
        out[name] = numbers
        records[name] = record
        origin = f" since {record['origin']}" if record["origin"] is not None else ""
        notes.append(
            f"column '{name}' ({how}) converted to {record['unit']}{origin}"
            + (" (years of 365.25 days)" if record["unit"] == "years" else "")
        )
    return out, records, notes


def apply_dates(
    df: pd.DataFrame,
    records: Mapping[str, Mapping],
    *,
    source: str = "data",
    row_label: str = "row",
    first_row: int | LineNumbers = 0,
) -> pd.DataFrame:
    """``df`` with the date columns of an earlier fit converted the same way (same unit, origin, day order).

    Columns of ``records`` (``FitResult.data["dates"]``) that ``df`` lacks or that hold numbers
    already are left alone, so a frame read with the same options passes through unchanged.
    """
    todo = {c: r for c, r in records.items() if c in df.columns and not pd.api.types.is_numeric_dtype(df[c].dtype)}
    if not todo:
        return df
    return convert_dates(df, todo, source=source, row_label=row_label, first_row=first_row)[0]


def to_numbers(values: pd.Series, spec: Mapping) -> tuple[np.ndarray, dict]:
    """Datetimes (or durations) as float64 in ``spec["unit"]`` since ``spec["origin"]``; the unit and origin used."""
    if pd.api.types.is_timedelta64_dtype(values.dtype):
        seconds = values.dt.total_seconds().to_numpy(dtype="float64", na_value=np.nan)
        unit = _unit(spec.get("unit", "auto"), np.nanmax(seconds) - np.nanmin(seconds) if _any(seconds) else 0.0)
        return seconds / UNITS[unit], {**_kept(spec), "unit": unit, "origin": None}
    tz = getattr(values.dtype, "tz", None)
    stamps = values.dt.tz_convert("UTC").dt.tz_localize(None) if tz is not None else values
    stamps = stamps.astype("datetime64[ns]")
    ns = stamps.to_numpy().astype("int64").astype("float64")
    ns[stamps.isna().to_numpy()] = np.nan
    span = (np.nanmax(ns) - np.nanmin(ns)) / 1e9 if _any(ns) else 0.0
    unit = _unit(spec.get("unit", "auto"), span)
    if spec.get("origin") is not None:
        origin = pd.Timestamp(spec["origin"])
        origin = origin.tz_convert("UTC").tz_localize(None) if origin.tzinfo is not None else origin
    elif _any(ns):
        origin = pd.Timestamp(int(np.nanmin(ns)))
        if UNITS[unit] >= UNITS["days"]:
            origin = origin.normalize()  # whole days: "days since 2020-01-01", not since 2020-01-01 13:45
    else:
        origin = pd.Timestamp("1970-01-01")
    seconds = (ns - origin.as_unit("ns").value) / 1e9
    text = origin.isoformat().replace("T00:00:00", "") + ("+00:00" if tz is not None else "")
    return seconds / UNITS[unit], {**_kept(spec), "unit": unit, "origin": text}


def _kept(spec: Mapping) -> dict:
    return {k: spec[k] for k in ("dayfirst", "format") if spec.get(k) is not None}


def _any(values: np.ndarray) -> bool:
    return bool(np.isfinite(values).any())


def _unit(unit: str, span_seconds: float) -> str:
    if unit != "auto":
        return unit
    # The largest unit that the data spans at least twice: decades in years, months in days, a day in hours.
    return next((u for u in _AUTO_ORDER if span_seconds >= 2 * UNITS[u]), "seconds" if span_seconds > 0 else "days")


def _to_times(
    col: pd.Series,
    name: str,
    spec: dict,
    source: str,
    row_label: str,
    first_row: int | LineNumbers,
    decimal_comma: bool,
) -> tuple[pd.Series, dict, str]:
    """The column as datetimes (or durations), what was decided about it, and how it was read (for the note)."""
    if _is_datetime(col.dtype):
        if isinstance(col.dtype, pd.PeriodDtype):
            col = col.dt.to_timestamp()
        return col, {}, "dates" if pd.api.types.is_datetime64_any_dtype(col.dtype) else "durations"
    text = col.astype(object).where(col.notna(), None).map(lambda v: None if v is None else str(v).strip())
    text = text.where(text != "", None)
    present = text.notna().to_numpy()
    where = _Where(source, name, row_label, first_row, text)
    if not present.any():
        raise DataError(
            f"{source}, column '{name}': no dates (every value is empty). Check the column named in --dates."
        )
    if spec["format"] is not None:
        parsed = pd.to_datetime(text, format=spec["format"], errors="coerce")
        where.check(parsed, present, f"in the format {spec['format']!r}", "Fix {it} or give the right format")
        return parsed, {}, f"format {spec['format']}"
    s = text[present].astype(str)
    first = s.iloc[0]
    if pd.Series([first]).str.match(_ISO).iloc[0]:
        utc = bool(s.str.contains(r"(?:Z|[+-]\d{2}:?\d{2})$", regex=True).any())
        iso = text.str.match(_ISO).fillna(False).to_numpy(dtype=bool)
        parsed = pd.to_datetime(text.where(iso, None), format="ISO8601", errors="coerce", utc=utc)
        where.check(parsed, present, "in the form YYYY-MM-DD [HH:MM[:SS]]", "Fix {it}")
        return parsed, {}, "ISO dates" + (", converted to UTC" if utc else "")
    for pattern, kind in ((_YMD, "ymd"), (_DMY, "dmy")):
        if pd.Series([first]).str.match(pattern).iloc[0]:
            parts = text.str.extract(pattern)
            return _from_parts(parts, kind, spec, where, present, decimal_comma)
    raise DataError(
        f"{source}, column '{name}': {first!r} at {where.at(np.flatnonzero(present)[0])} is not a date "
        f"gradfit can read ({_FORMS}). Give its format, e.g. --date-format '%d %b %Y' "
        f"(library: read={{'dates': {{'{name}': {{'format': '%d %b %Y'}}}}}})."
    )


def _from_parts(
    parts: pd.DataFrame, kind: str, spec: dict, where: _Where, present: np.ndarray, decimal_comma: bool
) -> tuple[pd.Series, dict, str]:
    if kind == "ymd":
        year, month, day, hour, minute, second = (parts[i] for i in range(6))
        record, how, form = {}, "dates YYYY/MM/DD", "YYYY/MM/DD"
    else:
        a, sep, b, year, hour, minute, second = (parts[i] for i in range(7))
        dayfirst = _dayfirst(a, b, sep, spec["dayfirst"], where, decimal_comma)
        day, month = (a, b) if dayfirst else (b, a)
        s = sep.dropna().iloc[0]
        form = f"DD{s}MM{s}YYYY" if dayfirst else f"MM{s}DD{s}YYYY"
        record, how = {"dayfirst": dayfirst}, f"dates {form}"
        yy = pd.to_numeric(year, errors="coerce")
        year = yy.where(year.str.len() != 2, yy + np.where(yy < 69, 2000, 1900))
    fields = {"year": year, "month": month, "day": day, "hour": hour, "minute": minute, "second": second}
    frame = pd.DataFrame({k: pd.to_numeric(v, errors="coerce") for k, v in fields.items()})
    frame[["hour", "minute", "second"]] = frame[["hour", "minute", "second"]].fillna(0)
    ok = frame[["year", "month", "day"]].notna().all(axis=1)
    parsed = pd.Series(pd.NaT, index=frame.index, dtype="datetime64[ns]")
    if ok.any():
        parsed[ok] = pd.to_datetime(frame[ok], errors="coerce")
    where.check(parsed, present, f"in the form {form}", "Fix {it}")
    return parsed, record, how


def _dayfirst(a: pd.Series, b: pd.Series, sep: pd.Series, given, where: _Where, decimal_comma: bool) -> bool:
    if given is not None:
        return given
    first, second = pd.to_numeric(a, errors="coerce"), pd.to_numeric(b, errors="coerce")
    if first.gt(12).any() and second.gt(12).any():
        where.fail(
            f"some dates have a first field above 12 (day-first, e.g. {where.value(first.gt(12))!r}) and some a "
            f"second field above 12 (month-first, e.g. {where.value(second.gt(12))!r})",
            "Write every date the same way",
        )
    if first.gt(12).any():
        return True
    if second.gt(12).any():
        return False
    if sep.eq(".").any() or decimal_comma:
        return True  # 31.12.2020 is day-first by convention, and so are the dates of files with decimal commas
    where.fail(
        f"every date could be day-first or month-first (no field is above 12, e.g. {where.value(first.notna())!r})",
        "Say which with --dayfirst or --monthfirst (library: read={'dayfirst': True})",
    )
    return True


class _Where:
    """Messages about one column's values: where a value is, as the user counts rows."""

    def __init__(self, source: str, name: str, row_label: str, first_row: int | LineNumbers, text: pd.Series):
        self.source, self.name, self.row_label, self.first_row, self.text = source, name, row_label, first_row, text

    def at(self, position) -> str:
        return f"{self.row_label} {row_numbers(self.first_row, [position])[0]}"

    def value(self, mask: pd.Series) -> str:
        return str(self.text[mask.fillna(False).to_numpy(dtype=bool)].iloc[0])

    def fail(self, what: str, fix: str):
        raise DataError(f"{self.source}, column '{self.name}': {what}. {fix}.")

    def check(self, parsed: pd.Series, present: np.ndarray, expected: str, fix: str) -> None:
        bad = np.flatnonzero(present & parsed.isna().to_numpy())
        if len(bad):
            value = str(self.text.iloc[bad[0]])
            shown = repr(value[:40] + ("..." if len(value) > 40 else ""))
            count = f"{len(bad)} values are not dates" if len(bad) > 1 else "1 value is not a date"
            it = "them" if len(bad) > 1 else "it"
            raise DataError(
                f"{self.source}, column '{self.name}': {count} {expected} (the first at "
                f"{self.at(bad[0])}: {shown}). {fix.format(it=it)}, or leave '{self.name}' out of --dates "
                f"(library: read={{'dates': [...]}})."
            )
