"""The taxonomy reviewers choose from: the settings' tree, plus taxa admins add in the app
(kept in the local store, so every reviewer and host sees them)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable

from seawatch.review.decisions import DecisionError, transaction, write_audit
from seawatch.review_settings import GROUP, TAXON

_SCHEMA = """
CREATE TABLE IF NOT EXISTS taxa_added (
    taxon TEXT PRIMARY KEY, grp TEXT NOT NULL, user TEXT NOT NULL, at_ns INTEGER NOT NULL
);
"""


class Taxonomy:
    """Group path -> taxa, from the settings and the store."""

    def __init__(
        self, configured: dict[str, list[str]], connection: Callable[[], sqlite3.Connection]
    ) -> None:
        self.configured = configured
        self.connection = connection  # the calling thread's write connection
        connection().executescript(_SCHEMA)

    @property
    def db(self) -> sqlite3.Connection:
        return self.connection()

    def groups(self) -> dict[str, list[str]]:
        """Every group with its taxa, sorted."""
        tree = {group: sorted(taxa) for group, taxa in self.configured.items()}
        for taxon, group in self.db.execute("SELECT taxon, grp FROM taxa_added"):
            tree.setdefault(group, []).append(taxon)
        return {g: sorted(set(t)) for g, t in sorted(tree.items())}

    def names(self) -> set[str]:
        """Every taxon name."""
        return {t for taxa in self.groups().values() for t in taxa}

    def add(self, group: str, taxon: str, user: str) -> None:
        """Add a taxon under a group (an admin's decision, audited)."""
        taxon, group = taxon.strip(), group.strip()
        if not TAXON.match(taxon):
            raise DecisionError(
                "a taxon name starts with a letter and holds letters, digits, space, _ . -"
            )
        if len(group) > 128 or not GROUP.match(group):
            raise DecisionError("a group is a path of names like 'living>Metazoa'")
        if taxon in self.names():
            raise DecisionError(f"{taxon!r} is in the taxonomy already")
        with transaction(self.db):
            self.db.execute(
                "INSERT INTO taxa_added VALUES (?,?,?,?)", (taxon, group, user, time.time_ns())
            )
            write_audit(self.db, f"taxon:{taxon}", "add_taxon", user, {}, {"group": group})


__all__ = ["Taxonomy"]
