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
from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]
from operator import countOf, itemgetter
from typing import Any

from sqlalchemy import JSON, Boolean, Connection, Date, DateTime, Table
from sqlalchemy.exc import DBAPIError

__all__ = [
    "bulk_insert",
    "bulk_update",
    "insert_tuples",
    "json_encoder",
    "next_ids",
    "savepoint",
    "select_in",
]

_Converter = Callable[[Any], Any] | None


def _json_default(value: Any) -> Any:
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    raise TypeError(f"cannot store {type(value).__name__}")


def json_encoder(
    *, sort_keys: bool = False, default: Callable[[Any], Any] | None = None
) -> Callable[[Any], str]:
    """``json.JSONEncoder(ensure_ascii=False, ...).encode``, with the C encoder built once.

    ``JSONEncoder.encode`` builds a new C encoder (and its closures) on every call, which costs
    more than encoding a person's custom fields or a creation's values; the engine does that for
    every row. Without circular-reference markers a self-containing value would recurse: that
    case (and any other error) is handed back to the ordinary encoder, which reports it as ever.
    """
    slow = json.JSONEncoder(ensure_ascii=False, sort_keys=sort_keys, default=default)
    if c_make_encoder is None:  # pragma: no cover - an interpreter without the C accelerator
        return slow.encode
    fast = c_make_encoder(None, slow.default, encode_basestring, None, ": ", ", ", sort_keys, False, True)

    def encode(value: Any) -> str:
        if isinstance(value, (dict, list, tuple)):
            try:
                return "".join(fast(value, 0))
            except (RecursionError, ValueError, TypeError):
                pass
        return slow.encode(value)

    return encode


#: One encoder for every JSON value (``json.dumps`` with options builds a new one per call).
_json_encode = json_encoder(default=_json_default)


def _json_text(value: Any) -> str | None:
    return None if value is None else _json_encode(value)


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


@contextlib.contextmanager
def savepoint(conn: Connection, name: str = "azorus_batch") -> Iterator[None]:
    """A savepoint in the open transaction on ``conn``: released when the block ends, rolled back
    to (undoing only the block's writes) when it raises."""
    cursor = _cursor(conn)
    with _driver_errors(conn, "SAVEPOINT"):
        cursor.execute(f"SAVEPOINT {name}")
    try:
        yield
    except BaseException:
        with _driver_errors(conn, "ROLLBACK TO SAVEPOINT"):
            cursor.execute(f"ROLLBACK TO SAVEPOINT {name}")
            cursor.execute(f"RELEASE SAVEPOINT {name}")
        raise
    with _driver_errors(conn, "RELEASE SAVEPOINT"):
        cursor.execute(f"RELEASE SAVEPOINT {name}")


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


@functools.lru_cache(maxsize=256)
def _read_plan(
    table: Table, columns: tuple[str, ...] | None, d: _Dialect
) -> tuple[tuple[str, ...], list[tuple[str, Callable[[Any], Any]]]]:
    """The columns a select names, and the converters of those whose values need one."""
    picked = [table.c[name] for name in columns] if columns else list(table.columns)
    readers = [(c.name, conv) for c in picked if (conv := d.read_converter(c)) is not None]
    return tuple(c.name for c in picked), readers


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
    names, readers = _read_plan(table, tuple(columns) if columns else None, d)
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


class _WritePlan:
    """One write statement and how a row becomes its parameter tuple (built once per shape).

    Rows are dicts read by ``names``, or (``names`` None) tuples already in column order; a
    ``tail`` of values shared by every row is appended to each.
    """

    def __init__(self, sql: str, names: Sequence[str] | None, converters: Sequence[_Converter]) -> None:
        self.sql = sql
        self._get: Callable[[Any], tuple[Any, ...]] | None = None
        if names is not None:
            self._get = itemgetter(*names) if len(names) > 1 else _one_value(names[0])
        self._convert = [(i, conv) for i, conv in enumerate(converters) if conv is not None]

    def params(self, rows: Sequence[Any], tail: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        get = self._get
        if not self._convert:
            if get is None:
                return [row + tail for row in rows] if tail else list(rows)
            return [get(row) + tail for row in rows] if tail else [get(row) for row in rows]
        out = []
        for row in rows:
            values = list(row if get is None else get(row))
            for i, conv in self._convert:
                values[i] = conv(values[i])
            out.append((*values, *tail))
        return out


def _one_value(name: str) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
    def get(row: dict[str, Any]) -> tuple[Any, ...]:
        return (row[name],)

    return get


@functools.lru_cache(maxsize=256)
def _insert_plan(
    table: Table, keys: tuple[str, ...], fixed: tuple[str, ...], d: _Dialect, *, by_name: bool = True
) -> _WritePlan:
    """INSERT of the ``keys`` columns (in table order when rows are dicts), then the ``fixed`` ones."""
    columns = [c for c in table.columns if c.name in keys] if by_name else [table.c[k] for k in keys]
    sql_columns = [*columns, *(table.c[f] for f in fixed)]
    cols = ", ".join(d.quote(c.name) for c in sql_columns)
    marks = ", ".join(d.placeholder(c) for c in sql_columns)
    sql = f"INSERT INTO {d.quote(table.name)} ({cols}) VALUES ({marks})"
    names = [c.name for c in columns] if by_name else None
    return _WritePlan(sql, names, [d.write_converter(c) for c in columns])


@functools.lru_cache(maxsize=256)
def _update_plan(table: Table, names: tuple[str, ...], d: _Dialect) -> _WritePlan:
    columns = [table.c[n] for n in names]
    sets = ", ".join(f"{d.quote(c.name)} = {d.placeholder(c)}" for c in columns)
    sql = f"UPDATE {d.quote(table.name)} SET {sets} WHERE id = {d.mark}"
    return _WritePlan(sql, [*names, "id"], [*(d.write_converter(c) for c in columns), None])


def bulk_insert(
    conn: Connection, table: Table, rows: Sequence[dict[str, Any]], fixed: dict[str, Any] | None = None
) -> None:
    """INSERT many rows (all with the same keys) through the driver's executemany.

    ``fixed`` columns hold one value for every row, converted once (a batch's time, its source).
    A column that is None in every row is left out of the statement: without a server default
    it is NULL all the same, and every bound parameter costs (a new person sets about half of
    its 22 columns; binding only those halves SQLite's insert time).
    """
    if not rows:
        return
    d = _dialect(conn)
    omissible = _omissible(table)
    shared, tail = _shared(table, fixed, d)
    keys = tuple(k for k in rows[0] if k not in shared and (k not in omissible or not _all_null(rows, k)))
    plan = _insert_plan(table, keys, shared, d)
    _executemany(conn, plan.sql, plan.params(rows, tail))


def insert_tuples(
    conn: Connection,
    table: Table,
    names: tuple[str, ...],
    rows: Sequence[tuple[Any, ...]],
    fixed: dict[str, Any] | None = None,
) -> None:
    """INSERT rows given as tuples of the ``names`` columns, each followed by the ``fixed`` values.

    For a hot path that builds its rows itself, without a dict per row; values are converted by
    column type as in :func:`bulk_insert`, and a fixed value of None is left out the same way.
    """
    if not rows:
        return
    d = _dialect(conn)
    shared, tail = _shared(table, fixed, d)
    plan = _insert_plan(table, names, shared, d, by_name=False)
    _executemany(conn, plan.sql, plan.params(rows, tail))


def _shared(
    table: Table, fixed: dict[str, Any] | None, d: _Dialect
) -> tuple[tuple[str, ...], tuple[Any, ...]]:
    """The fixed columns an insert names (a None one is left out if it may be) and their values."""
    if not fixed:
        return (), ()
    omissible = _omissible(table)
    names = tuple(k for k, v in fixed.items() if v is not None or k not in omissible)
    convert = [d.write_converter(table.c[k]) for k in names]
    return names, tuple(
        fixed[k] if conv is None else conv(fixed[k]) for k, conv in zip(names, convert, strict=True)
    )


@functools.lru_cache(maxsize=64)
def _omissible(table: Table) -> frozenset[str]:
    """Columns an INSERT may leave out when their value is NULL: no server default, not the key."""
    return frozenset(c.name for c in table.columns if c.server_default is None and not c.primary_key)


def _all_null(rows: Sequence[dict[str, Any]], key: str) -> bool:
    if rows[0][key] is not None:
        return False
    return countOf(map(itemgetter(key), rows), None) == len(rows)


def bulk_update(conn: Connection, table: Table, names: Iterable[str], rows: Sequence[dict[str, Any]]) -> None:
    """UPDATE the ``names`` columns of many rows, each found by its ``id``."""
    if not rows:
        return
    plan = _update_plan(table, tuple(names), _dialect(conn))
    _executemany(conn, plan.sql, plan.params(rows))


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
