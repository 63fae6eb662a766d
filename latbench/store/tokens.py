"""Agent tokens: random secrets handed to lab machines; the store keeps only their SHA-256.

A token is shown once, when created (``eagle agents token create``). Verifying hashes the presented
token and looks the hash up, so a leaked database does not leak usable tokens.
"""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from latbench.store.models import AgentToken, utcnow

TOKEN_PREFIX = "eat_"  # "eagle agent token": recognisable in logs and secret scanners


class AuthError(Exception):
    """A missing, unknown or revoked agent token."""


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_agent_token(session: Session, note: str = "") -> str:
    """Create a token and return its plaintext (not stored anywhere; show it to the user once)."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(AgentToken(token_hash=hash_token(token), note=note[:256]))
    session.commit()
    return token


def find_token(session: Session, token: str) -> AgentToken | None:
    """The live (not revoked) token row for a plaintext token, or None."""
    if not token:
        return None
    row = session.scalar(select(AgentToken).where(AgentToken.token_hash == hash_token(token)))
    if row is None or row.revoked:
        return None
    return row


def verify_token(session: Session, token: str) -> bool:
    return find_token(session, token) is not None


def require_token(session: Session, token: str) -> AgentToken:
    """The token's row; raises :class:`AuthError` (without saying which check failed) otherwise."""
    row = find_token(session, token)
    if row is None:
        raise AuthError("invalid or revoked agent token")
    return row


def revoke_token(session: Session, token: int | str) -> bool:
    """Revoke a token by id or plaintext; False if there is no such token (or it was revoked already)."""
    if isinstance(token, int):
        row = session.get(AgentToken, token)
    else:
        row = session.scalar(select(AgentToken).where(AgentToken.token_hash == hash_token(token)))
    if row is None or row.revoked:
        session.rollback()
        return False
    row.revoked = True
    row.revoked_at = utcnow()
    session.commit()
    return True


def list_tokens(session: Session) -> list[AgentToken]:
    return list(session.scalars(select(AgentToken).order_by(AgentToken.id)))
