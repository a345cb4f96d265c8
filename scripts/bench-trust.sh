#!/usr/bin/env bash
# What the consortium-trust work costs (mutual TLS and HTTPS, quorum
# certificates, clock attestations, the state root): the same `rxchain bench`
# load against a build of BASE (default: the last commit before that work)
# and against this tree, back to back in one run, on one node and on three.
#
#   ./scripts/bench-trust.sh [BASE_REV]
#
# Both builds are release builds in target/bench-trust/ (the base is checked
# out in a temporary git worktree there). The client is `rxchain bench
# --node`, a separate process from the node(s); the base runs plain HTTP
# (it has no TLS), this tree runs with `rxchain demo --tls`. Each row gives
# the load average read just before it. Output: a Markdown table on stdout,
# the raw JSON in target/bench-trust/results.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."
BASE_REV="${1:-2a40664}"
LIFECYCLES="${LIFECYCLES:-2000}"
OUT=target/bench-trust
mkdir -p "$OUT"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/$OUT/target}"

# REUSE_BUILDS=1 keeps binaries already in target/bench-trust/.
if [ -z "${REUSE_BUILDS:-}" ] || [ ! -x "$OUT/rxchain-after" ]; then
  cargo build --release --bin rxchain
  cp "$CARGO_TARGET_DIR/release/rxchain" "$OUT/rxchain-after"
fi
if [ ! -x "$OUT/rxchain-before" ]; then
  rm -rf "$OUT/base"
  git worktree add --force --detach "$OUT/base" "$BASE_REV"
  (cd "$OUT/base" && cargo build --release --bin rxchain)
  cp "$CARGO_TARGET_DIR/release/rxchain" "$OUT/rxchain-before"
  git worktree remove --force "$OUT/base"
fi

results="$OUT/results.jsonl"
: > "$results"
port=18400
run() { # label binary nodes tls
  local label=$1 bin=$2 nodes=$3 tls=$4
  local dir
  dir=$(mktemp -d)
  port=$((port + 10))
  local scheme=http extra=() trust=()
  if [ "$tls" = yes ]; then scheme=https; extra=(--tls); trust=(--genesis "$dir/genesis.json"); fi
  RXCHAIN_LOG=warn "$bin" demo --dir "$dir" --nodes "$nodes" --listen "127.0.0.1:$port" "${extra[@]}" \
    > "$dir/demo.log" 2>&1 &
  local pid=$!
  for _ in $(seq 1 120); do
    grep -q "Doctor:" "$dir/demo.log" 2>/dev/null && break
    sleep 1
  done
  grep -q "Doctor:" "$dir/demo.log" || { cat "$dir/demo.log"; kill "$pid"; exit 1; }
  local load
  load=$(cut -d' ' -f1 /proc/loadavg)
  "$bin" bench --node "$scheme://127.0.0.1:$port" "${trust[@]}" \
    --lifecycles "$LIFECYCLES" --concurrency 256 --rate 1000 --json \
    | python3 -c 'import json,sys
label, nodes, load = sys.argv[1], int(sys.argv[2]), sys.argv[3]
for r in json.load(sys.stdin):
    r.update(label=label, nodes=nodes, load=load); print(json.dumps(r))' "$label" "$nodes" "$load" >> "$results"
  kill "$pid"; wait "$pid" 2>/dev/null || true
  rm -rf "$dir"
}

run before "$OUT/rxchain-before" 1 no
run after "$OUT/rxchain-after" 1 yes
run before "$OUT/rxchain-before" 3 no
run after "$OUT/rxchain-after" 3 yes

python3 - "$results" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print("| nodes | build | run | load avg | committed | tx/s | p50 ms | p99 ms | failures |")
print("|---|---|---|---|---|---|---|---|---|")
for r in rows:
    print(f"| {r['nodes']} | {r['label']} | {r['name']} | {r['load']} | {r['committed']} | {r['tx_per_s']:.0f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['failures']} |")
EOF
