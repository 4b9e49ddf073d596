#!/usr/bin/env bash
# Installs nexio as a user does and checks that it works (npm run pack-check; a step of .ci/run).
#   1. npm pack (its prepare script builds), and the tarball's contents: the core, the CJS and ESM
#      entry points and their types, native/ sources and build script, LICENSE, docs; no tests,
#      lab, maps or CI files
#   2. npm install of the tarball into a fresh project in a temporary folder (needs the npm
#      registry for node-addon-api; no build on install, no devDependency); the installed size;
#      the tools-only dependencies are not installed
#   3. the getting-started server and client (test/package/), CommonJS, then ESM
#   4. the CLI: --version, an argument error exits 2 at once, a missing tool is named
#   5. a strict TypeScript consumer (test/package/consumer.ts and .mts: strict, skipLibCheck off),
#      compiled with the repository's TypeScript (5.9) against @types/node 20, and mistakes.ts:
#      a misspelled event and error code, each expected to be an error
# Every check runs; one line per check, a summary, exit 1 if any failed. KEEP=1 keeps the folder.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TMP=$(mktemp -d /tmp/nexio-pack-check.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  if [ "${KEEP:-0}" = 1 ]; then echo "pack-check: kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
t0=$SECONDS
failed=()
ok() { printf '  ok    %s\n' "$*"; }
bad() { printf '  FAIL  %s\n' "$*"; failed+=("$1"); }
show() { sed 's/^/        | /' "$@"; }

echo "pack-check: npm pack"
if ! (cd "$ROOT" && npm pack --pack-destination "$TMP") >"$TMP/pack.log" 2>&1; then
  show "$TMP/pack.log"; bad "npm pack failed"; exit 1
fi
TGZ=$(ls "$TMP"/nexio-*.tgz)
tar tzf "$TGZ" | sed 's|^package/||' | sort >"$TMP/files.txt"
printf '  %s: %s files, %s packed, %s unpacked\n' "$(basename "$TGZ")" "$(wc -l <"$TMP/files.txt")" \
  "$(du -h "$TGZ" | cut -f1)" "$(grep -o 'unpacked size: .*' "$TMP/pack.log" | cut -d' ' -f3-)"
missing=()
for f in package.json README.md LICENSE build/core.wasm build/core.debug.wasm dist/host/index.js dist/host/index.d.ts \
  dist/host/index.mjs dist/host/index.d.mts dist/host/cli.js dist/host/echo.js dist/host/worker.js \
  dist/host/transports/tcp.js native/index.js native/index.d.ts native/build.js native/detect.js native/binding.gyp \
  native/src/addon.cc docs/getting-started.md docs/api.md; do
  grep -qxF "$f" "$TMP/files.txt" || missing+=("$f")
done
[ ${#missing[@]} = 0 ] && ok "tarball holds the core, both entry points and types, native/, LICENSE, docs" \
  || bad "tarball lacks: ${missing[*]}"
extra=$(grep -E '^(test|testbed|bench|assembly|host|scripts|\.ci)/|^dist/(test|bench)/|^Vagrantfile$|\.map$|\.wat$|^native/build/|\.log$|tsbuildinfo' "$TMP/files.txt")
[ -z "$extra" ] && ok "tarball holds no tests, lab, sources of the build, maps or CI files" \
  || bad "tarball holds what a consumer does not run: $(echo $extra | head -c 300)"

echo "pack-check: install into a fresh project"
APP=$TMP/app
mkdir -p "$APP" && cd "$APP" || exit 1
npm init -y >/dev/null
if npm install --no-audit --no-fund "$TGZ" >"$TMP/install.log" 2>&1; then
  ok "npm install $(basename "$TGZ") ($(grep -o 'added [0-9]* packages*' "$TMP/install.log"))"
else
  show "$TMP/install.log"; bad "npm install of the tarball failed"; exit 1
fi
if [ -f node_modules/nexio/native/build.log ]; then
  ok "install script: $(head -1 node_modules/nexio/native/build.log)"
else
  ok "install script did not run (npm did not allow it): rdma:// needs npm rebuild nexio"
fi
echo "  installed size: $(du -sh node_modules | cut -f1) (node_modules: $(ls node_modules | grep -v '^\.' | tr '\n' ' '))"
tools=$(ls -d node_modules/@wasmer node_modules/cli-progress node_modules/hdr-histogram-js 2>/dev/null)
[ -z "$tools" ] && ok "tools-only dependencies not installed (@wasmer/wasi, cli-progress, hdr-histogram-js)" \
  || bad "tools-only dependencies installed: $tools"
cp "$ROOT"/test/package/* .

# node SERVER then node CLIENT URI; the client must print the reply and the abort's code.
getting_started() { # KIND SERVER CLIENT
  local kind=$1 log=$TMP/server-$1.log uri="" pid i
  node "$2" >"$log" 2>&1 &
  pid=$!; PIDS+=("$pid")
  for i in $(seq 100); do
    uri=$(grep -o 'tcp://[^ ]*' "$log" | head -1)
    [ -n "$uri" ] || ! kill -0 "$pid" 2>/dev/null && break
    sleep 0.1
  done
  if [ -z "$uri" ]; then show "$log"; bad "getting-started $kind: the server did not start"; kill "$pid" 2>/dev/null; return; fi
  if timeout 30 node "$3" "$uri" >"$TMP/client-$kind.log" 2>&1 && grep -q '^got 5 bytes$' "$TMP/client-$kind.log" \
     && grep -q '^NEXIO_ERR_ABORTED$' "$TMP/client-$kind.log"; then
    ok "getting-started $kind: server on $uri, client: $(tr '\n' ' ' <"$TMP/client-$kind.log")"
  else
    show "$TMP/client-$kind.log"; bad "getting-started $kind: the client failed"
  fi
  kill -TERM "$pid" 2>/dev/null
  for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid"; bad "getting-started $kind: the server did not exit on SIGTERM"; fi
  grep -q '^message log delivered for sure$' "$log" || { show "$log"; bad "getting-started $kind: the server did not get the one-way messages"; }
}
echo "pack-check: getting started"
getting_started cjs server.cjs client.cjs
getting_started esm server.mjs client.mjs

echo "pack-check: CLI"
v=$(npx --no-install nexio --version 2>&1)
[ "$v" = "$(node -p "require('$ROOT/package.json').version")" ] && ok "nexio --version: $v" || bad "nexio --version printed '$v'"
s=$SECONDS
out=$(timeout 10 npx --no-install nexio ping tcp://127.0.0.1:9/x --count abc 2>&1); r=$?
[ $r = 2 ] && [ $((SECONDS - s)) -le 3 ] && ok "nexio ping URI --count abc: exit 2 at once: $out" \
  || bad "nexio ping URI --count abc: exit $r after $((SECONDS - s)) s: $out"
out=$(timeout 10 npx --no-install nexio ping tcp://127.0.0.1:9/x 2>&1); r=$?
[ $r = 1 ] && grep -q 'npm install hdr-histogram-js' <<<"$out" && ok "nexio ping without its tool: $out" \
  || bad "nexio ping without hdr-histogram-js: exit $r: $out"

echo "pack-check: strict TypeScript consumer"
TSC=$ROOT/node_modules/.bin/tsc
if npm install --no-audit --no-fund --no-save '@types/node@^20' >"$TMP/types.log" 2>&1; then
  if "$TSC" -p tsconfig.json >"$TMP/tsc.log" 2>&1; then
    ok "tsc $("$TSC" --version | cut -d' ' -f2) -p test/package/tsconfig.json (strict, skipLibCheck false): consumer.ts and consumer.mts compile; mistakes.ts's misspelled event and error code do not"
  else
    show "$TMP/tsc.log"
    bad "the strict TypeScript consumer does not compile against the installed declarations (errors above: $(grep -c 'error TS' "$TMP/tsc.log"))"
  fi
else
  show "$TMP/types.log"; bad "npm install @types/node@20 failed"
fi

echo "pack-check: $([ ${#failed[@]} = 0 ] && echo PASSED || echo "FAILED (${#failed[@]} checks: the FAIL lines above)") in $((SECONDS - t0)) s"
[ ${#failed[@]} = 0 ]
