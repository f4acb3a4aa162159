"""Why a study storage failed, judged once: :class:`StorageError` (a storage that cannot be used as it is, on
one line) and the reading of a database driver's error by its code (a server that cannot be reached, a lock
conflict worth another attempt), never by its message.

It exists apart because the storage's opening (:mod:`.storage`), the journal's checks (:mod:`.journal`) and
the claims (:mod:`.claims`) all raise the one error and judge the same driver errors.
"""

from __future__ import annotations

from typing import Any

from hydra.errors import CompactHydraException


class StorageError(CompactHydraException):
    """A study storage that cannot be used as it is, reported on one line."""


# MySQL client/server error codes of a server that cannot be reached or refuses us: can't connect (2002, 2003),
# unknown host (2005), gone away / lost (2006, 2013), access denied (1044, 1045)
MYSQL_UNREACHABLE = {2002, 2003, 2005, 2006, 2013, 1044, 1045}
MYSQL_LOCK_CONFLICT = {1213, 1205}  # ER_LOCK_DEADLOCK, ER_LOCK_WAIT_TIMEOUT


def _driver_error(err: BaseException) -> Any:
    """The DB-API driver's own exception behind an SQLAlchemy error (else the error itself)."""
    from sqlalchemy.exc import DBAPIError

    return err.orig if isinstance(err, DBAPIError) else err


def _mysql_code(orig: Any) -> int | None:
    """A MySQL driver error's number (PyMySQL, mysqlclient: ``args[0]``), else None."""
    args = getattr(orig, "args", None)
    return args[0] if args and isinstance(args[0], int) and not isinstance(args[0], bool) else None


def lock_conflict(err: BaseException) -> bool:
    """A deadlock or lock wait timeout (worth another attempt), by the driver's error code, not its message:
    MySQL 1213 / 1205, PostgreSQL SQLSTATE 40P01 / 55P03."""
    orig = _driver_error(err)
    if hasattr(orig, "pgcode"):
        return orig.pgcode in ("40P01", "55P03")
    return _mysql_code(orig) in MYSQL_LOCK_CONFLICT


def underlying(err: BaseException) -> BaseException:
    """The database's own error behind Optuna's "An exception is raised during the commit" wrapper."""
    from optuna.exceptions import StorageInternalError

    while isinstance(err, StorageInternalError) and (err.__cause__ or err.__context__) is not None:
        err = err.__cause__ or err.__context__  # type: ignore[assignment]
    return err


def is_connection_error(err: BaseException) -> bool:
    """Could the server not be reached at all (refused, unknown host, timeout, bad credentials)? Judged by the
    driver's error type and code, not by the message."""
    import sqlite3

    orig = _driver_error(err)
    if isinstance(orig, sqlite3.Error):
        return getattr(orig, "sqlite_errorcode", None) == sqlite3.SQLITE_CANTOPEN
    if hasattr(orig, "pgcode"):  # PostgreSQL (psycopg): no SQLSTATE means the server was never reached
        return orig.pgcode is None
    return _mysql_code(orig) in MYSQL_UNREACHABLE
