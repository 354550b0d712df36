"""The store: every SQL statement of coopflow lives in this package (docs/design.md, "The map").

`Tx` is what other packages name an open store transaction by (`SqlStore.transaction()` or
`SqlStore.reading()` yields one) and hand back to this package's functions, so that nothing
outside engine/store imports SQLAlchemy (tests/test_store.py checks it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeAlias

if TYPE_CHECKING:  # a name for annotations only: importing engine.store.statuses (plain StrEnums) loads no SQLAlchemy
    from sqlalchemy.engine import Connection

Tx: TypeAlias = "Connection"
