"""Driver-level SQL for the engine's hot path: statements built once, values converted by column type.

An inbound request runs about ten small statements inside one write transaction; building and
compiling each through SQLAlchemy's expression layer cost more than running it.  These helpers
keep the schema (``Table`` objects) as the single source of column names and types, format each
statement once, and hand tuples straight to the driver's cursor, on the connection's own
transaction.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from operator import itemgetter
from typing import Any

from sqlalchemy import JSON, Boolean, Connection, Date, DateTime, Table
from sqlalchemy.exc import DBAPIError

__all__ = ["bulk_insert", "bulk_update", "next_ids", "select_in"]

_Converter = Callable[[Any], Any] | None
#: Column name and the converter its values go through on the way in.
_Plan = list[tuple[str, _Converter]]


def _json_default(value: Any) -> Any:
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    raise TypeError(f"cannot store {type(value).__name__}")


#: One encoder for every JSON value (``json.dumps`` with options builds a new one per call).
_JSON = json.JSONEncoder(ensure_ascii=False, default=_json_default)


def _json_text(value: Any) -> str | None:
    return None if value is None else _JSON.encode(value)


@functools.lru_cache(maxsize=256)  # a batch stamps every row with the same time
def _sqlite_datetime(value: Any) -> str | None:
    return None if value is None else value.strftime("%Y-%m-%d %H:%M:%S.%f")


def _sqlite_date(value: Any) -> str | None:
    return None if value is None else value.isoformat()


def _read_json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, (str, bytes)) else value


def _read_date(value: Any) -> Any:
    return dt.date.fromisoformat(value) if isinstance(value, str) else value


def _read_datetime(value: Any) -> Any:
    return dt.datetime.fromisoformat(value) if isinstance(value, str) else value


def _read_bool(value: Any) -> Any:
    return None if value is None else bool(value)


class _Dialect:
    """What differs between SQLite and PostgreSQL at the driver: markers, casts, value forms."""

    def __init__(self, dialect: Any) -> None:
        self.sqlite = dialect.name == "sqlite"
        self.mark = "?" if dialect.paramstyle == "qmark" else "%s"
        self.quote = dialect.identifier_preparer.quote

    def write_converter(self, column: Any) -> _Converter:
        if isinstance(column.type, JSON):
            return _json_text
        if self.sqlite and isinstance(column.type, DateTime):
            return _sqlite_datetime
        if self.sqlite and isinstance(column.type, Date):
            return _sqlite_date
        return None

    def read_converter(self, column: Any) -> _Converter:
        if isinstance(column.type, JSON):
            return _read_json
        if not self.sqlite:
            return None
        if isinstance(column.type, DateTime):
            return _read_datetime
        if isinstance(column.type, Date):
            return _read_date
        if isinstance(column.type, Boolean):
            return _read_bool
        return None

    def placeholder(self, column: Any) -> str:
        if isinstance(column.type, JSON) and not self.sqlite:
            return f"CAST({self.mark} AS json)"
        return self.mark


@functools.lru_cache(maxsize=8)
def _dialect_for(name: str, paramstyle: str, dialect: Any) -> _Dialect:
    return _Dialect(dialect)


def _dialect(conn: Connection) -> _Dialect:
    return _dialect_for(conn.dialect.name, conn.dialect.paramstyle, conn.dialect)


@contextlib.contextmanager
def _driver_errors(conn: Connection, sql: str) -> Iterator[None]:
    """Raise driver errors as SQLAlchemy's (IntegrityError, OperationalError...), as Core would."""
    try:
        yield
    except conn.dialect.loaded_dbapi.Error as exc:
        raise DBAPIError.instance(sql, None, exc, conn.dialect.loaded_dbapi.Error) from exc


def _cursor(conn: Connection) -> Any:
    return conn.connection.driver_connection.cursor()  # type: ignore[union-attr]


@functools.lru_cache(maxsize=512)
def _select_sql(
    table: Table,
    dialect_key: tuple[bool, str],
    columns: tuple[str, ...],
    where: tuple[tuple[str, int], ...],
    in_col: str,
    n: int,
) -> str:
    mark = dialect_key[1]
    cols = ", ".join(f'"{c}"' for c in columns)
    conds = [f'"{w}" = {mark}' if size < 0 else f'"{w}" IN ({", ".join([mark] * size)})' for w, size in where]
    conds.append(f'"{in_col}" IN ({", ".join([mark] * n)})')
    return f'SELECT {cols} FROM "{table.name}" WHERE {" AND ".join(conds)}'


def select_in(
    conn: Connection,
    table: Table,
    in_col: str,
    values: Sequence[Any],
    *,
    where: dict[str, Any] | None = None,
    columns: Sequence[str] | None = None,
    chunk: int = 400,
) -> list[dict[str, Any]]:
    """Rows of ``table`` (every column, as dicts) whose ``in_col`` is one of ``values``.

    ``where`` adds conditions: a scalar is ``=``, a list or tuple is ``IN``.
    """
    if not values:
        return []
    d = _dialect(conn)
    where = where or {}
    shape = tuple((k, len(v) if isinstance(v, (list, tuple)) else -1) for k, v in where.items())
    fixed: list[Any] = []
    for v in where.values():
        fixed.extend(v if isinstance(v, (list, tuple)) else (v,))
    picked = [table.c[name] for name in columns] if columns else list(table.columns)
    names = tuple(c.name for c in picked)
    readers = [(c.name, conv) for c in picked if (conv := d.read_converter(c)) is not None]
    out: list[dict[str, Any]] = []
    cur = _cursor(conn)
    try:
        for start in range(0, len(values), chunk):
            part = list(values[start : start + chunk])
            sql = _select_sql(table, (d.sqlite, d.mark), names, shape, in_col, len(part))
            with _driver_errors(conn, sql):
                cur.execute(sql, (*fixed, *part))
            for row in cur.fetchall():
                data = dict(zip(names, row, strict=True))
                for name, conv in readers:
                    data[name] = conv(data[name])
                out.append(data)
    finally:
        cur.close()
    return out


@functools.lru_cache(maxsize=256)
def _insert_plan(
    table: Table, names: tuple[str, ...], d: _Dialect
) -> tuple[str, list[tuple[str, _Converter]]]:
    columns = [table.c[n] for n in names]
    cols = ", ".join(d.quote(c.name) for c in columns)
    sql = (
        f"INSERT INTO {d.quote(table.name)} ({cols}) VALUES ({', '.join(d.placeholder(c) for c in columns)})"
    )
    return sql, [(c.name, d.write_converter(c)) for c in columns]


@functools.lru_cache(maxsize=256)
def _update_plan(
    table: Table, names: tuple[str, ...], d: _Dialect
) -> tuple[str, list[tuple[str, _Converter]]]:
    columns = [table.c[n] for n in names]
    sets = ", ".join(f"{d.quote(c.name)} = {d.placeholder(c)}" for c in columns)
    sql = f"UPDATE {d.quote(table.name)} SET {sets} WHERE id = {d.mark}"
    return sql, [(c.name, d.write_converter(c)) for c in columns]


def bulk_insert(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """INSERT many rows (all with the same keys) through the driver's executemany."""
    if not rows:
        return
    names = tuple(c.name for c in table.columns if c.name in rows[0])
    sql, pairs = _insert_plan(table, names, _dialect(conn))
    _executemany(conn, sql, _params(pairs, rows))


def bulk_update(conn: Connection, table: Table, names: Iterable[str], rows: Sequence[dict[str, Any]]) -> None:
    """UPDATE the ``names`` columns of many rows, each found by its ``id``."""
    if not rows:
        return
    sql, pairs = _update_plan(table, tuple(names), _dialect(conn))
    _executemany(conn, sql, _params([*pairs, ("id", None)], rows))


def _params(pairs: Sequence[tuple[str, _Converter]], rows: Sequence[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """The driver's parameter tuples, built column by column (a per-value generator costs more)."""
    if not any(conv for _, conv in pairs):
        if len(pairs) == 1:
            return [(row[pairs[0][0]],) for row in rows]
        return list(map(itemgetter(*(name for name, _ in pairs)), rows))
    columns = [
        list(map(itemgetter(name), rows)) if conv is None else list(map(conv, map(itemgetter(name), rows)))
        for name, conv in pairs
    ]
    return list(zip(*columns, strict=True))


def next_ids(conn: Connection, table: Table, count: int) -> list[int]:
    """Reserve ``count`` new primary keys, so a batch insert needs no RETURNING round trips.

    PostgreSQL draws them from the table's sequence; SQLite continues after the largest id, which
    is safe because a write transaction there holds the only write lock.
    """
    if count <= 0:
        return []
    cur = _cursor(conn)
    try:
        with _driver_errors(conn, "SELECT next ids"):
            if _dialect(conn).sqlite:
                cur.execute(f'SELECT coalesce(max(id), 0) FROM "{table.name}"')
                start = int(cur.fetchone()[0])
                return list(range(start + 1, start + 1 + count))
            cur.execute(f"SELECT nextval('{table.name}_id_seq') FROM generate_series(1, %s)", (count,))
            return [int(r[0]) for r in cur.fetchall()]
    finally:
        cur.close()


def _executemany(conn: Connection, sql: str, params: list[tuple[Any, ...]]) -> None:
    cur = _cursor(conn)
    try:
        with _driver_errors(conn, sql):
            if len(params) == 1:
                cur.execute(sql, params[0])
            else:
                cur.executemany(sql, params)
    finally:
        cur.close()
