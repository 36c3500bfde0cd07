#!/usr/bin/env bash
# Builds SQLite with programs/sqlite_driver.c for wasm32-wasi (WebAssembly 2.0 features) into
# $1 (default target/peer/sqlite.wasm). The SQLite amalgamation (public domain) comes from the
# npm package better-sqlite3, which ships it; nothing fetched is committed.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here/../../target/peer/sqlite.wasm}"
work="$here/../../target/peer/sqlite-src"
mkdir -p "$work" "$(dirname "$out")"
if [ ! -f "$work/package/deps/sqlite3/sqlite3.c" ]; then
    (cd "$work" && npm pack --silent better-sqlite3@12.11.1 >/dev/null && tar xzf better-sqlite3-12.11.1.tgz)
fi
src="$work/package/deps/sqlite3"
clang --target=wasm32-wasi --sysroot=/usr -O2 \
    -mbulk-memory -mreference-types -mnontrapping-fptoint -msign-ext \
    -DSQLITE_THREADSAFE=0 -DSQLITE_OMIT_LOAD_EXTENSION -DSQLITE_OMIT_WAL \
    -DSQLITE_OMIT_SHARED_CACHE -DSQLITE_MAX_MMAP_SIZE=0 -DSQLITE_OMIT_RANDOMNESS \
    -D_WASI_EMULATED_MMAN -D_WASI_EMULATED_GETPID -D_WASI_EMULATED_SIGNAL \
    -I"$src" "$here/programs/sqlite_driver.c" "$src/sqlite3.c" \
    -lwasi-emulated-mman -lwasi-emulated-getpid -lwasi-emulated-signal \
    -o "$out"
echo "$out: $(stat -c %s "$out") bytes"
