"""The hottest statements, run on the database driver's cursor directly.

SQLAlchemy Core costs 40-60 µs of Python per statement on top of the
driver (compiled-cache lookup, parameter processing, execution context,
result set-up), several times what SQLite takes to run a small statement.
A workflow step, a worker's claim or an execution request runs a handful of
these, so for the statements on those paths the work SQLAlchemy does per
call is done once per dialect here: the statement is compiled, its bind and
result type processors (JSON, booleans) are looked up, and each call only
converts the values and calls the cursor.

The statements stay SQLAlchemy constructs, so SQL is still written once for
both databases; the call runs inside the connection's current transaction,
like ``conn.execute``. Not supported: expanding ``IN`` parameters, and
column defaults an INSERT would fill in (give every column).

On PostgreSQL each statement is a round trip, and the writer's transaction
waits for each in turn. INSERTs marked ``deferrable`` (new rows nobody
expects to conflict: executions, queue entries, audit records, trigger
instances, enforcements) are therefore held back while :func:`defer` is in
force and sent together, in one round trip, just before the next other
statement on the connection or the commit (:func:`flush`). An error in one
of them surfaces there, still inside the transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.sql import ClauseElement, sqltypes

Row = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class _Prepared:
    sql: str
    positional: bool
    names: tuple[str, ...]  # bind names, in order for a positional paramstyle
    fixed: Mapping[str, Any]  # binds with a value in the statement (a literal)
    binds: Mapping[str, Callable[[Any], Any]]  # bind processors by name
    columns: tuple[str, ...]  # result column names
    types: tuple[Any, ...]  # result column types, by position


class Statement:
    """A statement prepared per dialect; see the module's description."""

    __slots__ = ("_bulk", "_prepared", "_results", "column_keys", "deferrable", "stmt")

    def __init__(
        self,
        stmt: ClauseElement,
        *,
        column_keys: Sequence[str] | None = None,
        deferrable: bool = False,
    ) -> None:
        self.stmt = stmt
        self.column_keys = list(column_keys) if column_keys is not None else None
        self.deferrable = deferrable
        self._bulk: str | None = None
        self._prepared: dict[str, _Prepared] = {}
        self._results: dict[str, tuple[Callable[[Any], Any] | None, ...]] = {}

    def _prepare(self, dialect: Dialect) -> _Prepared:
        found = self._prepared.get(dialect.name)
        if found is not None:
            return found
        compiled: Any = self.stmt.compile(dialect=dialect, column_keys=self.column_keys)
        if compiled.literal_execute_params or compiled.post_compile_params:
            raise TypeError("fast statements cannot have expanding parameters")
        binds: dict[str, Callable[[Any], Any]] = {}
        fixed: dict[str, Any] = {}
        for name, bind in compiled.binds.items():
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if processor is not None:
                binds[name] = processor
            if not bind.required and bind.callable is None and bind.value is not None:
                fixed[name] = bind.value
        names = tuple(compiled.positiontup or ()) if dialect.positional else tuple(compiled.binds)
        entries = compiled._result_columns
        prepared = _Prepared(
            sql=compiled.string,
            positional=dialect.positional,
            names=names,
            fixed=fixed,
            binds=binds,
            columns=tuple(e.keyname for e in entries),
            types=tuple(e.type.dialect_impl(dialect) for e in entries),
        )
        self._prepared[dialect.name] = prepared
        return prepared

    def _params(self, p: _Prepared, values: Mapping[str, Any]) -> Any:
        merged = {**p.fixed, **values} if p.fixed else values
        binds = p.binds
        out = []
        for name in p.names:
            value = merged[name]
            fn = binds.get(name)
            out.append(fn(value) if fn is not None else value)
        return out if p.positional else dict(zip(p.names, out, strict=True))

    def _processors(
        self, dialect: Dialect, p: _Prepared, description: Any
    ) -> tuple[Callable[[Any], Any] | None, ...]:
        """Result processors, found at the first execution: some drivers'
        depend on the type the server reports for the column."""
        found = self._results.get(dialect.name)
        if found is None:
            found = tuple(
                _sqlite_json
                if dialect.name == "sqlite" and isinstance(t, sqltypes.JSON)
                else t.result_processor(dialect, d[1])
                for t, d in zip(p.types, description, strict=True)
            )
            self._results[dialect.name] = found
        return found

    def _convert(self, results: tuple[Any, ...], rows: Iterable[Row]) -> list[Row]:
        if not any(results):
            return [tuple(r) for r in rows]
        return [
            tuple(v if fn is None or v is None else fn(v) for fn, v in zip(results, r, strict=True))
            for r in rows
        ]

    def rows(self, conn: Connection, values: Mapping[str, Any] | None = None) -> list[Row]:
        """Run the statement with ``values`` and return its rows (tuples in
        the order of :meth:`columns`)."""
        p = self._prepare(conn.dialect)
        params = self._params(p, values or {})
        flush(conn)
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(p.sql, params)
            if not p.columns:
                return []
            results = self._processors(conn.dialect, p, cursor.description)
            return self._convert(results, cursor.fetchall())
        except conn.dialect.loaded_dbapi.Error as exc:
            raise _wrapped(conn, cursor, p.sql, params, exc) from exc
        finally:
            cursor.close()

    def dicts(
        self, conn: Connection, values: Mapping[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        names = self.columns(conn)
        return [dict(zip(names, r, strict=True)) for r in self.rows(conn, values)]

    def many(self, conn: Connection, values: Sequence[Mapping[str, Any]]) -> int:
        """Run the statement once per set of values (no rows returned); the
        number of rows it changed."""
        if not values:
            return 0
        p = self._prepare(conn.dialect)
        params = [self._params(p, v) for v in values]
        if self.deferrable:
            held = conn.info.get(_DEFERRED)
            if held is not None:
                held.append((self, params))
                return len(params)
        flush(conn)
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            if len(params) == 1:
                cursor.execute(p.sql, params[0])
            else:
                cursor.executemany(p.sql, params)
            return int(cursor.rowcount)
        except conn.dialect.loaded_dbapi.Error as exc:
            raise _wrapped(conn, cursor, p.sql, params, exc) from exc
        finally:
            cursor.close()

    def columns(self, conn: Connection) -> tuple[str, ...]:
        return self._prepare(conn.dialect).columns

    def _send_held(self, cursor: Any, dialect: Dialect, params: list[Any]) -> None:
        """Send rows held back: on PostgreSQL, many rows as one ``INSERT ...
        SELECT FROM json_to_recordset()`` of one JSON document (the driver's
        ``executemany`` handled each row's result in Python, and its arrays
        dumped each value in Python: both cost more than the database took to
        insert the rows)."""
        p = self._prepare(dialect)
        if dialect.name != "postgresql" or len(params) == 1 or not self.stmt.is_insert:  # type: ignore[attr-defined]
            cursor.executemany(p.sql, params)
            return
        if self._bulk is None:
            self._bulk = _bulk_insert(self.stmt.table, p.names, dialect)  # type: ignore[attr-defined]
        json_names = [n for n in p.names if n in p.binds]  # JSON columns: wrapped by the driver
        for row in params:
            for name in json_names:
                value = row[name]
                if value is not None:
                    row[name] = dump_json(value.obj)
        cursor.execute(self._bulk, [dump_json(params)])


def _bulk_insert(table: Any, names: Sequence[str], dialect: Dialect) -> str:
    """``INSERT INTO table (names) SELECT ... FROM json_to_recordset(%s)``.
    JSON columns travel as text and are cast, so a value is stored exactly as
    a single-row INSERT stores it (``None`` as JSON ``null``)."""
    quote = dialect.identifier_preparer
    columns = [table.c[name] for name in names]
    selected, declared = [], []
    for c in columns:
        name = quote.format_column(c)
        if isinstance(c.type, sqltypes.JSON):
            selected.append(f"CAST({name} AS {c.type.compile(dialect=dialect)})")
            declared.append(f"{name} TEXT")
        else:
            selected.append(name)
            declared.append(f"{name} {c.type.compile(dialect=dialect)}")
    return "INSERT INTO {} ({}) SELECT {} FROM json_to_recordset(%s::json) AS v({})".format(
        quote.format_table(table),
        ", ".join(quote.format_column(c) for c in columns),
        ", ".join(selected),
        ", ".join(declared),
    )


_DEFERRED = "squall_deferred"


def defer(conn: Connection) -> None:
    """Hold deferrable INSERTs back until :func:`flush` (see the module)."""
    conn.info[_DEFERRED] = []


def discard(conn: Connection) -> None:
    """Stop deferring, dropping what is held (the transaction rolled back)."""
    conn.info.pop(_DEFERRED, None)


def flush(conn: Connection) -> None:
    """Send the INSERTs held back, in one round trip."""
    held = conn.info.get(_DEFERRED)
    if not held:
        return
    conn.info[_DEFERRED] = []
    # Each statement's rows together, statements in the order first used (so
    # a row never goes before one it refers to).
    rows: dict[Statement, list[Any]] = {}
    for stmt, params in held:
        rows.setdefault(stmt, []).extend(params)
    dbapi_conn: Any = conn.connection.dbapi_connection
    cursor = dbapi_conn.cursor()
    stmt, params = held[0]
    try:
        with dbapi_conn.pipeline():
            for stmt, params in rows.items():
                stmt._send_held(cursor, conn.dialect, params)
    except conn.dialect.loaded_dbapi.Error as exc:
        raise _wrapped(conn, cursor, stmt._prepare(conn.dialect).sql, params, exc) from exc
    finally:
        cursor.close()


def flush_before_execute(conn: Connection, *_args: Any) -> None:
    """For SQLAlchemy's ``before_cursor_execute`` event: any other statement
    sees the rows held back."""
    if conn.info.get(_DEFERRED):
        flush(conn)


def dump_json(value: Any) -> str:
    """JSON text as the store writes it (``None`` is JSON ``null``)."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def recordset(columns: Mapping[str, Any]) -> Any:
    """PostgreSQL's ``json_to_recordset(:b_rows) AS v(name type, ...)``: many
    rows bound as one JSON array of objects (:func:`rows_json`), so that
    changing many rows differently is one statement instead of one per row
    (``executemany``, whose result handling cost the driver more than the
    database took to run them). JSON values go in as text (``dump_json``);
    cast them where they are used.

    ``LIMIT :b_count`` (the number of rows) is there for the planner, which
    otherwise guesses a hundred rows from any such function and joins them
    to a table of a few thousand by reading all of it."""
    rows = sa.cast(sa.bindparam("b_rows", type_=sa.Text), sa.JSON)
    table = sa.func.json_to_recordset(rows).table_valued(
        *(sa.column(name, type_) for name, type_ in columns.items())
    )
    derived = table.render_derived(name="r", with_types=True)
    return sa.select(derived).limit(sa.bindparam("b_count", type_=sa.Integer)).subquery("v")


def rows_json(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The parameters of a statement on a :func:`recordset`."""
    return {"b_rows": dump_json(rows), "b_count": len(rows)}


def load_json(value: Any) -> Any:
    """A JSON value as read: SQLite gives a JSON number back as a number
    (the column has numeric affinity), already decoded."""
    return orjson.loads(value) if isinstance(value, str | bytes) else value


# SQLAlchemy's JSON result processor for SQLite, in one step: it runs for
# every JSON value read.
_sqlite_json = load_json


def _wrapped(conn: Connection, cursor: Any, sql: str, params: Any, exc: Exception) -> Exception:
    """The driver's error as SQLAlchemy would have raised it (an
    ``IntegrityError``, an ``OperationalError``...), so it is translated the
    same way; a lost connection is invalidated, so the next transaction
    reconnects rather than reusing it."""
    dialect = conn.dialect
    lost = dialect.is_disconnect(exc, conn.connection.dbapi_connection, cursor)  # type: ignore[arg-type]
    if lost:
        conn.invalidate(exc)
    return sa_exc.DBAPIError.instance(
        sql,
        params,
        exc,
        dialect.loaded_dbapi.Error,
        hide_parameters=True,
        connection_invalidated=lost,
        dialect=dialect,
    )
