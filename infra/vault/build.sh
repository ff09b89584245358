#!/usr/bin/env bash
# Build a HashiCorp Vault server binary into build/vault/vault for the test fixture that runs
# `vault server -dev` on 127.0.0.1 to exercise the Transit key provider (jobs/platform/envelope.py).
#
# The module source comes from the Go module proxy (`go mod download`). Vault's go.mod replaces its own
# api/ and sdk/ submodules with local directories that the module zip does not contain, so the build works
# in a copy whose go.mod drops those replace directives and takes the published api/sdk modules instead
# (plus a two-line source adaptation to the published sdk, below).
# The binary is cached per version outside the work tree (~/.cache/voiplake), so fresh clones on the same
# machine (CI) copy it instead of rebuilding; a new machine builds it once (module download + compile:
# tens of minutes on 2 cores).
set -euo pipefail
VAULT_VERSION="${VAULT_VERSION:-v1.21.4}"
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
OUT="$ROOT/build/vault"
BIN="$OUT/vault"
CACHE="${VOIPLAKE_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/voiplake}/vault-$VAULT_VERSION"
if [ -x "$BIN" ] && [ "$(cat "$OUT/.version" 2>/dev/null)" = "$VAULT_VERSION" ]; then
  echo "vault $VAULT_VERSION already built: $BIN"
  exit 0
fi
mkdir -p "$OUT"
if [ ! -x "$CACHE/vault" ]; then
  command -v go >/dev/null || { echo "go toolchain not found; cannot build vault" >&2; exit 1; }
  DIR="$(go mod download -json "github.com/hashicorp/vault@$VAULT_VERSION" | sed -n 's/.*"Dir": "\(.*\)",*/\1/p')"
  SRC="$OUT/src-$VAULT_VERSION"
  rm -rf "$SRC"
  cp -r "$DIR" "$SRC"
  chmod -R u+w "$SRC"
  sed -i -E '/^replace github.com\/hashicorp\/vault\/(api|sdk)/d' "$SRC/go.mod"
  # v1.21.4's in-tree sdk differs from the published sdk v0.21.0 it requires: there
  # framework.Backend.ActivationFunc has a third (flag name) argument: adapt the two call sites...
  if [ "$VAULT_VERSION" = "v1.21.4" ]; then
    sed -i 's/ActivationFunc: iStore.activateDeduplication,/ActivationFunc: func(ctx context.Context, req *logical.Request, _ string) error { return iStore.activateDeduplication(ctx, req) },/' "$SRC/vault/identity_store.go"
    sed -i 's/b.idStoreBackend.ActivationFunc(ctx, nil)/b.idStoreBackend.ActivationFunc(ctx, nil, "")/' "$SRC/vault/logical_system_activation_flags.go"
    # ...and whose keysutil.LockManager.RestorePolicy does not return the restored key's name yet.
    sed -i 's/restoredKeyName, err := b.lm.RestorePolicy(ctx, req.Storage, keyName, backupB64, force)/restoredKeyName, err := keyName, b.lm.RestorePolicy(ctx, req.Storage, keyName, backupB64, force)/' "$SRC/builtin/logical/transit/path_restore.go"
  fi
  mkdir -p "$CACHE"
  (cd "$SRC" && GOFLAGS=-mod=mod go mod download && GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w" -o "$CACHE/vault.tmp" .)
  mv "$CACHE/vault.tmp" "$CACHE/vault"
  rm -rf "$SRC"
fi
cp "$CACHE/vault" "$BIN.tmp"
mv "$BIN.tmp" "$BIN"
echo "$VAULT_VERSION" > "$OUT/.version"
"$BIN" version
