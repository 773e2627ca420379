"""Identity resolution: which stored person a record means, by its identifiers.

A record is matched on the identifier schemes its connection names, in order; every other
identifier it carries must not belong to someone else.  Two different people is an
:class:`~azorus_connect.exceptions.IdentityConflict`, never a merge.  Lookups are batched: one
query per few hundred identifiers, whatever the batch size.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import Connection

from .exceptions import IdentityConflict, InvalidRecord
from .store.schema import identifier, person
from .store.sql import select_in

__all__ = ["IdentityIndex"]

_CHUNK = 400


class IdentityIndex:
    """Identifier -> person id for one batch, including people the batch itself creates."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._owner: dict[tuple[str, str], int | None] = {}
        #: Provisional ids (negative) for people the batch creates, before the insert assigns real ones.
        self._next_new = -1

    def load(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Look up every (scheme, value) not yet known, in chunks."""
        by_scheme: dict[str, list[str]] = {}
        for key in dict.fromkeys(pairs):
            if key not in self._owner:
                self._owner[key] = None
                by_scheme.setdefault(key[0], []).append(key[1])
        total = sum(len(v) for v in by_scheme.values())
        if len(by_scheme) > 1 and total <= _CHUNK:
            # A small batch (an inbound request): scheme IN (...) AND value IN (...) walks the
            # (scheme, value) index in one query; pairs nobody asked for are dropped.
            values = sorted({v for vs in by_scheme.values() for v in vs})
            cols = ("scheme", "value", "person_id")
            where = {"scheme": sorted(by_scheme)}
            for row in select_in(self.conn, identifier, "value", values, where=where, columns=cols):
                key = (row["scheme"], row["value"])
                if key in self._owner:
                    self._owner[key] = row["person_id"]
            return
        # One scheme per query, so the (scheme, value) index is used (a row-value IN scans).
        for scheme, values in by_scheme.items():
            found = select_in(
                self.conn,
                identifier,
                "value",
                values,
                where={"scheme": scheme},
                columns=("value", "person_id"),
            )
            for row in found:
                self._owner[(scheme, row["value"])] = row["person_id"]

    def load_ids(self, ids: Iterable[int]) -> set[int]:
        """Which of these hub ids exist."""
        wanted = sorted(i for i in set(ids) if i > 0)
        return {r["id"] for r in select_in(self.conn, person, "id", wanted, columns=("id",))}

    def owner(self, scheme: str, value: str) -> int | None:
        return self._owner.get((scheme, value))

    def claim(self, pid: int, identifiers: dict[str, str]) -> None:
        """Record that ``pid`` now holds these identifiers (so later records in the batch see it)."""
        for scheme, value in identifiers.items():
            self._owner[(scheme, value)] = pid

    def new_person(self) -> int:
        pid = self._next_new
        self._next_new -= 1
        return pid

    def rebind(self, mapping: dict[int, int]) -> None:
        """Replace provisional ids by the ids the insert assigned."""
        if mapping:
            for key, pid in self._owner.items():
                if pid is not None and pid < 0:
                    self._owner[key] = mapping.get(pid, pid)

    def resolve(
        self,
        identifiers: dict[str, str],
        match_on: Sequence[str],
        *,
        hub_id: int | None = None,
        known_ids: set[int] | None = None,
    ) -> int | None:
        """The person these identifiers mean, or None for a new person.

        Raises IdentityConflict when they point at two people, and InvalidRecord when there is
        nothing to match on.
        """
        found: list[int] = []
        if hub_id is not None:
            if known_ids is not None and hub_id not in known_ids:
                raise InvalidRecord(f"no person with hub id {hub_id}")
            found.append(hub_id)
        for scheme in match_on:
            value = identifiers.get(scheme)
            if value is None:
                continue
            pid = self.owner(scheme, value)
            if pid is not None and pid not in found:
                found.append(pid)
        if not found and hub_id is None and not any(s in identifiers for s in match_on):
            raise InvalidRecord(
                f"no identifier to match on (needs one of: {', '.join(match_on)})"
                if match_on
                else "no identifier to match on"
            )
        if len(found) > 1:
            raise IdentityConflict(
                f"identifiers {_show(identifiers)} match {len(found)} different people",
                person_ids=[p for p in found if p > 0],
            )
        # Identifiers outside match_on must not belong to anyone else.
        for scheme, value in identifiers.items():
            pid = self.owner(scheme, value)
            if pid is not None and pid not in found:
                raise IdentityConflict(
                    f"identifier {scheme}={value} already belongs to another person",
                    person_ids=[p for p in (*found, pid) if p > 0],
                )
        return found[0] if found else None


def _show(identifiers: dict[str, str]) -> str:
    return ", ".join(f"{s}={v}" for s, v in sorted(identifiers.items()))
