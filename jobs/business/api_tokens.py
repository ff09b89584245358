"""Bearer tokens of the CRM API: one per reseller, stored only as a SHA-256 hash.

`issue_token(path, reseller_id)` makes a random token (256 bits from `secrets`), writes its SHA-256 to the
tokens file (JSON `{reseller_id: {"sha256": ..., "issued_at": ...}}`, mode 0600 under the git-ignored build/
folder) and returns the token, which is shown once and never stored. Issuing again replaces (revokes) the
reseller's previous token. A plain SHA-256 is enough because the token is random and long: there is nothing to
guess offline, unlike a password.

`TokenStore.authenticate(token)` hashes the presented token and compares it with every reseller's hash by
`hmac.compare_digest`, without stopping at the first match, so the time taken says nothing about which
reseller (or how much of a hash) matched.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

TOKEN_PREFIX = "vlk_"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class TokenStore:
    hashes: tuple[tuple[str, str], ...]  # (reseller_id, sha256 hex)

    @classmethod
    def load(cls, path: Path | str, *, resellers: tuple[str, ...] | None = None) -> "TokenStore":
        """The hashes in `path` (none if the file does not exist); with `resellers`, only theirs (a reseller
        removed from the policy loses its access even if its hash is still in the file)."""
        path = Path(path)
        if not path.exists():
            return cls(())
        raw = json.loads(path.read_text())
        hashes = tuple(sorted((rid, str(entry["sha256"])) for rid, entry in raw.items()
                              if resellers is None or rid in resellers))
        return cls(hashes)

    def authenticate(self, token: str | None) -> str | None:
        """The reseller whose token this is, or None. Constant-time per stored hash, all hashes compared."""
        if not token:
            return None
        presented = token_hash(token)
        match: str | None = None
        for reseller_id, stored in self.hashes:
            if hmac.compare_digest(presented, stored):
                match = reseller_id
        return match


def issue_token(path: Path | str, reseller_id: str) -> str:
    """A new random token for `reseller_id`; its SHA-256 replaces the reseller's entry in `path`. Returns the
    token (the only time it exists in plain text)."""
    path = Path(path)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    raw = json.loads(path.read_text()) if path.exists() else {}
    raw[reseller_id] = {"sha256": token_hash(token), "issued_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(raw, fh, indent=2, sort_keys=True)
    os.replace(tmp, path)
    return token
