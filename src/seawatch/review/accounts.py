"""Review station accounts: users with a role, argon2-hashed passwords, server-side sessions,
and a failed-login limit (all in one SQLite file, apart from the data).

A session is a random token (the cookie) with its own CSRF token; logging in always makes a
new session, so a token planted before the login is worth nothing (session fixation).
"""

from __future__ import annotations

import re
import secrets
import sqlite3
import time
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from seawatch.contracts.errors import ConfigError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY, role TEXT NOT NULL, hash TEXT NOT NULL, created_at_ns INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    token TEXT PRIMARY KEY, user TEXT NOT NULL REFERENCES users (name) ON DELETE CASCADE,
    csrf TEXT NOT NULL, expires_at_ns INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS failed_logins (
    user TEXT NOT NULL, address TEXT NOT NULL, at_ns INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS failed_logins_at ON failed_logins (user, address, at_ns);
"""
USER_NAME = re.compile(r"^[a-z][a-z0-9_.-]{1,31}$")
MIN_PASSWORD = 10


class Role(IntEnum):
    """What a user may do; each role may do what the ones below it may."""

    VIEWER = 1  # browse and search
    ANNOTATOR = 2  # validate, reassign, mark dubious, decide otoliths
    REVIEWER = 3  # and fish identities (confirm, rename, merge, split)
    ADMIN = 4  # and the taxonomy

    @classmethod
    def parse(cls, name: str) -> Role:
        try:
            return cls[name.upper()]
        except KeyError:
            roles = ", ".join(r.name.lower() for r in cls)
            raise ConfigError(f"unknown role {name!r}; choose one of {roles}") from None


@dataclass(frozen=True, slots=True)
class Session:
    """A logged-in user: who, with which role, and the CSRF token of the session."""

    token: str
    user: str
    role: Role
    csrf: str


class LoginRefused(Exception):
    """Wrong name or password, or too many failed attempts (``limited``)."""

    def __init__(self, message: str, *, limited: bool = False) -> None:
        super().__init__(message)
        self.limited = limited


class Accounts:
    """Users, sessions and the failed-login limit."""

    def __init__(
        self,
        path: Path,
        *,
        session_s: float = 12 * 3600,
        attempts: int = 5,
        window_s: float = 300.0,
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(
            self.path, timeout=10.0, isolation_level=None, check_same_thread=False
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(_SCHEMA)
        self._hasher = PasswordHasher()
        self._dummy = self._hasher.hash(secrets.token_hex(16))  # equal time for unknown users
        self.session_ns = int(session_s * 1e9)
        self.attempts = attempts
        self.window_ns = int(window_s * 1e9)

    def add_user(self, name: str, password: str, role: Role) -> None:
        """Create a user, or set an existing user's password and role."""
        if not USER_NAME.match(name):
            msg = f"user name {name!r}: 2-32 of a-z 0-9 _ . -, starting with a letter"
            raise ConfigError(msg)
        if len(password) < MIN_PASSWORD:
            raise ConfigError(f"the password needs at least {MIN_PASSWORD} characters")
        self._db.execute(
            "INSERT INTO users VALUES (?,?,?,?) ON CONFLICT (name) DO UPDATE SET "
            "role = excluded.role, hash = excluded.hash",
            (name, role.name.lower(), self._hasher.hash(password), time.time_ns()),
        )
        self._db.execute("DELETE FROM sessions WHERE user = ?", (name,))  # log out everywhere

    def users(self) -> list[tuple[str, Role]]:
        """Every user and their role."""
        rows = self._db.execute("SELECT name, role FROM users ORDER BY name")
        return [(name, Role.parse(role)) for name, role in rows]

    def login(self, name: str, password: str, address: str) -> Session:
        """A new session for a right password; raise LoginRefused otherwise (and after
        ``attempts`` failures from one address for one name within the window)."""
        now = time.time_ns()
        failures = self._db.execute(
            "SELECT COUNT(*) FROM failed_logins WHERE user = ? AND address = ? AND at_ns > ?",
            (name, address, now - self.window_ns),
        ).fetchone()[0]
        if failures >= self.attempts:
            raise LoginRefused("too many failed logins; wait a few minutes", limited=True)
        row = self._db.execute("SELECT hash, role FROM users WHERE name = ?", (name,)).fetchone()
        try:
            self._hasher.verify(row[0] if row else self._dummy, password)
            ok = row is not None
        except (VerificationError, InvalidHashError):
            ok = False
        if not ok:
            self._db.execute("INSERT INTO failed_logins VALUES (?,?,?)", (name, address, now))
            self._db.execute("DELETE FROM failed_logins WHERE at_ns < ?", (now - self.window_ns,))
            raise LoginRefused("wrong user name or password")
        session = Session(
            secrets.token_urlsafe(32), name, Role.parse(row[1]), secrets.token_hex(16)
        )
        self._db.execute(
            "INSERT INTO sessions VALUES (?,?,?,?)",
            (session.token, name, session.csrf, now + self.session_ns),
        )
        self._db.execute("DELETE FROM sessions WHERE expires_at_ns < ?", (now,))
        return session

    def session(self, token: str | None) -> Session | None:
        """The live session of a cookie's token, or None."""
        if not token:
            return None
        row = self._db.execute(
            "SELECT s.user, u.role, s.csrf FROM sessions s JOIN users u ON u.name = s.user "
            "WHERE s.token = ? AND s.expires_at_ns > ?",
            (token, time.time_ns()),
        ).fetchone()
        return None if row is None else Session(token, row[0], Role.parse(row[1]), row[2])

    def logout(self, token: str) -> None:
        """End a session."""
        self._db.execute("DELETE FROM sessions WHERE token = ?", (token,))

    def close(self) -> None:
        self._db.close()


__all__ = ["MIN_PASSWORD", "Accounts", "LoginRefused", "Role", "Session"]
