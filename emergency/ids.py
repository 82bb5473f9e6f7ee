"""Identifiers for emergencies and grants: random, so they reveal neither count nor order."""

from __future__ import annotations

import secrets


def new_id() -> str:
    return secrets.token_urlsafe(9)
