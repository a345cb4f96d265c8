#!/usr/bin/env bash
# The whole table of issue 13 in one run, back to back:
#
#   1 node, closed loop        rxchain bench (one tx per request, then batches)
#   3 nodes, closed loop       the same against three node processes
#   3 nodes, p99 at 1,000 tx/s an open-loop run at a fixed offered rate
#   3 nodes / etcd CAS         a three-member etcd doing compare-and-swap
#                              redeems, driven by wrk + Lua (256 connections)
#   storage per lifecycle      the one node's data directory / lifecycles
#   node RSS                   the one node's resident memory after its runs
#   rxchain verify             the one node's chain, offline, tx/s
#
# Release build; every node is its own `rxchain node` process with TLS
# (HTTPS to the client, mutual TLS between nodes) on loopback, the client a
# separate `rxchain bench --node` process. The 1-minute load average is read
# just before each figure and printed beside it; refused outcomes are
# counted apart from failures. Installs Debian's etcd-server and wrk with
# apt when missing (needs root or sudo).
#
#   ./scripts/bench.sh                 # LIFECYCLES=3000 CONCURRENCY=256 BATCH=32 RATE=1000
#   GROWTH_ONLY=1 GROWTH_STEPS="10000 100000 1000000" ./scripts/bench.sh
#                                      # growth: one node filled to each total
#                                      # of transactions in turn (batched
#                                      # lifecycles), stopped at each step for
#                                      # disk bytes and `rxchain verify`, then
#                                      # restarted; RSS and tx/s while filling
#   CACHE_MB=16 ...                    # every node's sled cache ([storage] cache_mb)
#   STORAGE_DETAIL=1 ...              # also where the bytes go: storage-report's
#                                      # logical bytes, an offline backup's size
#                                      # and that backup restored afresh
#   PIPELINE=2 ...                     # every node's [block] pipeline (blocks in flight)
#   KEEP_DIRS=1 ...                    # keep the data directories (for
#                                      # `rxchain storage-report`); prints them
#   SIGNATURES=1 ...                   # first, the contracts' criterion
#                                      # ECDSA sign and verify (the floor of
#                                      # admission, apply and verify), quiet
#
# Output: a Markdown table on stdout; raw JSON rows in target/bench/results.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."
LIFECYCLES="${LIFECYCLES:-3000}"
CONCURRENCY="${CONCURRENCY:-256}"
BATCH="${BATCH:-32}"
RATE="${RATE:-1000}"
WRK_SECONDS="${WRK_SECONDS:-15}"
OUT="$PWD/target/bench"
mkdir -p "$OUT"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"

# BENCH_BIN=path runs that binary instead (a quick check of the script
# with a debug build; its figures mean nothing).
if [ -n "${BENCH_BIN:-}" ]; then
  BIN="$BENCH_BIN"
else
  if [ -z "${REUSE_BUILD:-}" ] || [ ! -x "$CARGO_TARGET_DIR/release/rxchain" ]; then
    cargo build --release --bin rxchain >&2
  fi
  BIN="$CARGO_TARGET_DIR/release/rxchain"
fi

need_apt=()
command -v etcd >/dev/null || need_apt+=(etcd-server)
command -v wrk >/dev/null || need_apt+=(wrk)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing ${need_apt[*]} (Debian packages)" >&2
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

results="$OUT/results.jsonl"
: > "$results"
load() { cut -d' ' -f1 /proc/loadavg; }
row() { # measure value unit load [note]
  python3 -c 'import json,sys; print(json.dumps(dict(measure=sys.argv[1], value=sys.argv[2], unit=sys.argv[3], load=sys.argv[4], note=sys.argv[5])))' \
    "$1" "$2" "$3" "$4" "${5:-}" >> "$results"
}

# The cost of one signature, from the contracts' criterion bench, before
# anything else runs (a node or etcd in the background would inflate it).
if [ -n "${SIGNATURES:-}" ]; then
  l=$(load)
  crit="$OUT/criterion-ecdsa.txt"
  cargo bench -q -p rxchain-contracts --bench contracts -- ecdsa \
    --warm-up-time 1 --measurement-time 5 > "$crit" 2>&1
  for op in sign verify; do
    t=$(python3 - "$crit" "$op" <<'PYC'
import re, sys
text = open(sys.argv[1]).read()
m = re.search(r"ecdsa/" + sys.argv[2] + r"\s+time:\s+\[\S+ \S+ (\S+) (\S+)", text)
if not m:
    sys.exit("no criterion estimate for ecdsa/" + sys.argv[2] + " in " + sys.argv[1])
print(m.group(1), m.group(2))
PYC
)
    row "ECDSA $op (criterion, one signature)" "${t% *}" "${t#* }" "$l" \
      "cargo bench -p rxchain-contracts --bench contracts -- ecdsa/$op: criterion's median estimate"
  done
fi

PIDS=()
DIRS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -n "${KEEP_DIRS:-}" ]; then
    echo "kept: ${DIRS[*]}" >&2
  else
    for d in "${DIRS[@]}"; do rm -rf "$d"; done
  fi
}
trap cleanup EXIT

# Writes the demo consortium's genesis and keys for nodes 1..N into $1 (by
# starting `rxchain demo` just long enough to write them), then one
# settings file per node: TLS, fixed loopback ports from $2, node 1
# bootstraps and the others join through it.
write_consortium() {
  local dir=$1 base=$2 n=$3
  "$BIN" demo --dir "$dir/seed" --nodes "$n" --listen "127.0.0.1:$((base + 90))" --tls \
    > "$dir/seed.log" 2>&1 &
  local pid=$!
  for _ in $(seq 1 120); do
    [ -f "$dir/seed/genesis.json" ] && [ -f "$dir/seed/node$n.tls.key" ] && break
    sleep 0.5
  done
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  cp "$dir/seed/genesis.json" "$dir/"
  for i in $(seq 1 "$n"); do
    cp "$dir/seed/node$i.key" "$dir/seed/node$i.tls.crt" "$dir/seed/node$i.tls.key" "$dir/"
    {
      echo "node_id = $i"
      echo "data_dir = \"node$i\""
      echo "genesis = \"genesis.json\""
      echo "node_key_file = \"node$i.key\""
      echo "listen = \"127.0.0.1:$((base + i))\""
      if [ "$i" = 1 ]; then echo "bootstrap = true"; else echo "bootstrap = false"; fi
      if [ "$i" != 1 ]; then echo "[peers]"; echo "\"1\" = \"127.0.0.1:$((base + 1))\""; fi
      if [ -n "${CACHE_MB:-}" ]; then echo "[storage]"; echo "cache_mb = $CACHE_MB"; fi
      if [ -n "${PIPELINE:-}" ]; then echo "[block]"; echo "pipeline = $PIPELINE"; fi
      echo "[tls]"
      echo "cert_file = \"node$i.tls.crt\""
      echo "key_file = \"node$i.tls.key\""
    } > "$dir/node$i.toml"
  done
  rm -rf "$dir/seed"
}

# Starts nodes 1..N of the consortium in $1 as separate processes and waits
# until they are all voters; their pids are left in NODE_PIDS.
start_nodes() {
  local dir=$1 base=$2 n=$3
  NODE_PIDS=()
  for i in $(seq 1 "$n"); do
    (cd "$dir" && RXCHAIN_LOG=warn exec "$BIN" node --config "node$i.toml" > "node$i.log" 2>&1) &
    NODE_PIDS+=("$!")
    PIDS+=("$!")
    if [ "$i" = 1 ]; then
      for _ in $(seq 1 120); do
        curl -skf --max-time 2 "https://127.0.0.1:$((base + 1))/readyz" >/dev/null && break
        sleep 0.5
      done
    fi
  done
  # Every node a voter before the load starts.
  for _ in $(seq 1 240); do
    local voters
    voters=$(curl -sk --max-time 2 "https://127.0.0.1:$((base + 1))/v1/cluster/local" \
      | python3 -c 'import json,sys; print(len(json.load(sys.stdin).get("voters",[])))' 2>/dev/null || echo 0)
    [ "$voters" = "$n" ] && return 0
    sleep 0.5
  done
  echo "the $n nodes in $dir never all became voters" >&2
  tail -n 20 "$dir"/node*.log >&2
  exit 1
}

bench() { # nodes label dir url args...
  local nodes=$1 label=$2 dir=$3 url=$4
  shift 4
  local l
  l=$(load)
  "$BIN" bench --node "$url" --genesis "$dir/genesis.json" --json "$@" 2>>"$dir/bench.log" \
    | python3 "$OUT/row.py" "$nodes" "$label" "$l" >> "$results"
}
cat > "$OUT/row.py" <<'PY'
import json, sys
nodes, label, load = sys.argv[1], sys.argv[2], sys.argv[3]
for r in json.load(sys.stdin):
    note = "committed %d, refused %d, failed %d, p50 %.1f ms, p99 %.1f ms" % (
        r["committed"], r["refused"], r["failures"], r["p50_ms"], r["p99_ms"])
    print(json.dumps(dict(measure="%s node(s), %s: %s" % (nodes, label, r["name"]),
                          value=round(r["tx_per_s"]), unit="tx/s", load=load, note=note)))
PY

# Reads the RSS of node process $2, stops it, and adds the rows of its
# data directory $3/node1 holding $4 lifecycles: RSS, bytes per lifecycle,
# and `rxchain verify` time; $1 prefixes each measure.
measure_stopped() {
  local label=$1 pid=$2 dir=$3 lifecycles=$4 rss_kb bytes l start end
  rss_kb=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
  row "$label: node RSS" "$((rss_kb / 1024))" "MiB" "$(load)" "$lifecycles lifecycles on the chain"
  kill "$pid"; wait "$pid" 2>/dev/null || true
  bytes=$(du -sb "$dir/node1" | cut -f1)
  row "$label: storage per 5-transaction lifecycle" "$((bytes / lifecycles))" "bytes" "$(load)" \
    "data directory $bytes bytes for $lifecycles lifecycles (plus the demo staff's few transactions)"
  l=$(load)
  start=$(date +%s.%N)
  "$BIN" verify "$dir/node1" --genesis "$dir/genesis.json" > "$dir/verify.txt" 2>&1
  end=$(date +%s.%N)
  local txs secs phases
  txs=$(grep -oE '[0-9]+ transactions' "$dir/verify.txt" | head -n1 | grep -oE '[0-9]+' || echo 0)
  secs=$(python3 -c "print(round($end - $start, 2))")
  # verify's own split: the private copy (with sled opening it), then the checks.
  phases=$(grep -oE 'copied and opened the directory in [0-9.]+ s, verified the copy in [0-9.]+ s' "$dir/verify.txt" || echo "no phase times printed")
  row "$label: rxchain verify" "$(python3 -c "print(round(${txs:-0} / max($secs, 0.001)))")" "tx/s" "$l" \
    "$txs transactions in $secs s (the private copy of the directory included; $phases): $(tail -n 1 "$dir/verify.txt" | cut -c1-100)"
  [ -n "${STORAGE_DETAIL:-}" ] || return 0
  # Where the bytes go: sled's logical bytes (storage-report), the size of
  # an offline backup (the records with no store overhead), and the disk
  # bytes of that backup restored into a fresh directory (every record
  # written once).
  l=$(load)
  "$BIN" storage-report "$dir/node1" --genesis "$dir/genesis.json" --json > "$dir/storage.json"
  python3 - "$label" "$l" "$dir/storage.json" >> "$results" <<'PYS'
import json, sys
label, load, d = sys.argv[1], sys.argv[2], json.load(open(sys.argv[3]))
n = max(d["transactions"], 1)
top = sorted(d["chain"].items(), key=lambda kv: -(kv[1]["key_bytes"] + kv[1]["value_bytes"]))[:6]
parts = ", ".join("%s %d" % (k, (v["key_bytes"] + v["value_bytes"]) / n) for k, v in top)
print(json.dumps(dict(measure=label + ": sled keys and values per transaction", value=d["logical_bytes_per_tx"],
    unit="bytes", load=load, note="disk %d per tx; largest chain records per tx: %s" % (d["disk_bytes_per_tx"], parts))))
PYS
  rm -rf "$dir/backup" "$dir/restored"
  "$BIN" backup "$dir/node1" --genesis "$dir/genesis.json" --out "$dir/backup" --quiet > /dev/null
  "$BIN" restore "$dir/backup" --data-dir "$dir/restored" --genesis "$dir/genesis.json" --quiet > /dev/null
  local bb rb
  bb=$(du -sb "$dir/backup" | cut -f1)
  rb=$(du -sb "$dir/restored" | cut -f1)
  row "$label: offline backup per lifecycle" "$((bb / lifecycles))" "bytes" "$l" "backup file $bb bytes"
  row "$label: that backup restored into a fresh directory, per lifecycle" "$((rb / lifecycles))" "bytes" "$l" \
    "restored directory $rb bytes (every record written once)"
  rm -rf "$dir/backup" "$dir/restored"
}

# --- growth (opt-in) --------------------------------------------------------
if [ -n "${GROWTH_STEPS:-}" ]; then
  DG=$(mktemp -d); DIRS+=("$DG")
  write_consortium "$DG" 18700 1
  URLG="https://127.0.0.1:18701"
  have=0
  for total in $GROWTH_STEPS; do
    start_nodes "$DG" 18700 1
    PG=("${NODE_PIDS[@]}")
    lifecycles=$(( (total - have) / 5 ))
    bench 1 "growth to $total tx, batched" "$DG" "$URLG" --lifecycles "$lifecycles" \
      --concurrency "$((CONCURRENCY / BATCH > 0 ? CONCURRENCY / BATCH : 1))" --batch "$BATCH" --rate 0
    have=$((have + 5 * lifecycles))
    measure_stopped "growth at $total tx" "${PG[0]}" "$DG" "$((have / 5))"
  done
fi
if [ -n "${GROWTH_ONLY:-}" ]; then
  python3 - "$results" <<'PYG'
import json, sys
for l in open(sys.argv[1]):
    r = json.loads(l)
    print(f"| {r['measure']} | {r['value']} {r['unit']} | {r['load']} | {r['note']} |")
PYG
  exit 0
fi

# --- one node -------------------------------------------------------------
D1=$(mktemp -d); DIRS+=("$D1")
write_consortium "$D1" 18500 1
start_nodes "$D1" 18500 1
P1=("${NODE_PIDS[@]}")
URL1="https://127.0.0.1:18501"
bench 1 "closed loop" "$D1" "$URL1" --lifecycles "$LIFECYCLES" --concurrency "$CONCURRENCY" --rate 0
bench 1 "closed loop, batched" "$D1" "$URL1" --lifecycles "$LIFECYCLES" --concurrency "$((CONCURRENCY / BATCH > 0 ? CONCURRENCY / BATCH : 1))" --batch "$BATCH" --rate 0
measure_stopped "1 node" "${P1[0]}" "$D1" "$((2 * LIFECYCLES))"

# --- three nodes ------------------------------------------------------------
D3=$(mktemp -d); DIRS+=("$D3")
write_consortium "$D3" 18600 3
start_nodes "$D3" 18600 3
P3=("${NODE_PIDS[@]}")
URL3="https://127.0.0.1:18601"
bench 3 "closed loop" "$D3" "$URL3" --lifecycles "$LIFECYCLES" --concurrency "$CONCURRENCY" --rate 0
bench 3 "closed loop, batched" "$D3" "$URL3" --lifecycles "$LIFECYCLES" --concurrency "$((CONCURRENCY / BATCH > 0 ? CONCURRENCY / BATCH : 1))" --batch "$BATCH" --rate 0
bench 3 "open loop" "$D3" "$URL3" --lifecycles 1 --concurrency 1 --rate "$RATE"
for p in "${P3[@]}"; do kill "$p" 2>/dev/null || true; done
wait 2>/dev/null || true

# --- etcd, three members, wrk + Lua compare-and-swap -----------------------
DE=$(mktemp -d); DIRS+=("$DE")
CLUSTER="e1=http://127.0.0.1:23801,e2=http://127.0.0.1:23802,e3=http://127.0.0.1:23803"
for i in 1 2 3; do
  etcd --name "e$i" --data-dir "$DE/e$i" \
    --listen-client-urls "http://127.0.0.1:2379$i" --advertise-client-urls "http://127.0.0.1:2379$i" \
    --listen-peer-urls "http://127.0.0.1:2380$i" --initial-advertise-peer-urls "http://127.0.0.1:2380$i" \
    --initial-cluster "$CLUSTER" --initial-cluster-state new --initial-cluster-token rxchain-bench \
    --log-level error > "$DE/e$i.log" 2>&1 &
  PIDS+=("$!")
done
for _ in $(seq 1 100); do
  curl -sf --max-time 1 http://127.0.0.1:23791/health >/dev/null && break
  sleep 0.2
done
cat > "$DE/kv.lua" <<'LUA'
-- Each wrk thread redeems its own keys rx/<thread>/<n>, issued before by
-- the loader, in order with a txn (value == "issued" -> put "redeemed"),
-- and counts the successes.
local b64chars = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'
local function b64(data)
  return ((data:gsub('.', function(x)
    local r, b = '', x:byte()
    for i = 8, 1, -1 do r = r .. (b % 2 ^ i - b % 2 ^ (i - 1) > 0 and '1' or '0') end
    return r
  end) .. '0000'):gsub('%d%d%d?%d?%d?%d?', function(x)
    if #x < 6 then return '' end
    local c = 0
    for i = 1, 6 do c = c + (x:sub(i, i) == '1' and 2 ^ (6 - i) or 0) end
    return b64chars:sub(c + 1, c + 1)
  end) .. ({ '', '==', '=' })[#data % 3 + 1])
end
local threads = {}
-- The counter must not be named `tid`: a chunk-level local of that name
-- would shadow, in every thread, the global `tid` that setup() gives it,
-- and all threads would redeem the keys of thread 0 (the old bug).
local threads_made = 0
function setup(thread)
  threads_made = threads_made + 1
  thread:set("tid", threads_made)
  table.insert(threads, thread)
end
function init(args)
  n = 0
  won = 0
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end
function request()
  n = n + 1
  local key = b64("rx/" .. tid .. "/" .. n)
  return wrk.format(nil, "/v3/kv/txn", nil,
    '{"compare":[{"key":"' .. key .. '","target":"VALUE","result":"EQUAL","value":"' .. b64("issued") ..
    '"}],"success":[{"requestPut":{"key":"' .. key .. '","value":"' .. b64("redeemed") .. '"}}],"failure":[]}')
end
function response(status, headers, body)
  if status == 200 and body:find('"succeeded":true', 1, true) then won = won + 1 end
end
function done(summary, latency, requests)
  local total, reached = 0, 0
  for _, t in ipairs(threads) do
    total = total + (t:get("won") or 0)
    reached = math.max(reached, t:get("n") or 0)
  end
  io.write(string.format("WON %d\nREACHED %d\n", total, reached))
end
LUA
# The keys are issued first by a loader that checks every answer (wrk's
# own put phase lost keys: requests cut at its deadline, so some swaps
# later found nothing to redeem and etcd was undercounted). Each wrk thread
# then redeems its own keys rx/<thread>/1.. in order; KEYS per thread is
# well above what it can reach, and the script fails if it got there.
KEYS="${ETCD_KEYS_PER_THREAD:-60000}"
python3 - "$KEYS" <<'PYPUT'
import base64, http.client, json, sys, threading
per = int(sys.argv[1])
b64 = lambda s: base64.b64encode(s.encode()).decode()
todo = [(t, n) for t in (1, 2) for n in range(1, per + 1)]
lock = threading.Lock()
failed = []
def work(part):
    c = http.client.HTTPConnection("127.0.0.1", 23791, timeout=30)
    for t, n in part:
        body = json.dumps({"key": b64(f"rx/{t}/{n}"), "value": b64("issued")})
        c.request("POST", "/v3/kv/put", body, {"Content-Type": "application/json"})
        r = c.getresponse(); r.read()
        if r.status != 200:
            with lock: failed.append((t, n, r.status))
threads = [threading.Thread(target=work, args=(todo[i::32],)) for i in range(32)]
for th in threads: th.start()
for th in threads: th.join()
if failed:
    sys.exit(f"etcd refused {len(failed)} puts, first {failed[0]}")
c = http.client.HTTPConnection("127.0.0.1", 23791, timeout=30)
c.request("POST", "/v3/kv/range", json.dumps({"key": b64("rx/"), "range_end": b64("rx0"), "count_only": True}))
count = int(json.loads(c.getresponse().read()).get("count", 0))
if count != 2 * per:
    sys.exit(f"etcd holds {count} issued keys, not {2 * per}")
PYPUT
l=$(load)
wrk -t2 -c256 -d"${WRK_SECONDS}s" --latency -s "$DE/kv.lua" http://127.0.0.1:23791 > "$DE/cas.txt" 2>&1
won=$(grep -oE '^WON [0-9]+' "$DE/cas.txt" | cut -d' ' -f2)
reached=$(grep -oE '^REACHED [0-9]+' "$DE/cas.txt" | cut -d' ' -f2)
if [ "${reached:-0}" -gt "$KEYS" ]; then
  echo "a wrk thread redeemed past the $KEYS issued keys: raise ETCD_KEYS_PER_THREAD" >&2
  exit 1
fi
if [ "${won:-0}" -lt 1 ]; then
  echo "no compare-and-swap found an issued key: the Lua script and the loader disagree on the keys" >&2
  cat "$DE/cas.txt" >&2
  exit 1
fi
rps=$(grep -oE 'Requests/sec: +[0-9.]+' "$DE/cas.txt" | grep -oE '[0-9.]+$')
p99=$(grep -E '^ +99%' "$DE/cas.txt" | awk '{print $2}')
row "etcd 3 members, CAS redeems (wrk + Lua, 256 connections)" \
  "$(python3 -c "print(round(${won:-0} / $WRK_SECONDS))")" "successful CAS/s" "$l" \
  "$rps requests/s, p99 $p99; only swaps that found \"issued\" are counted; $((2 * KEYS)) keys issued and counted first"

python3 - "$results" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print("| measure | value | load avg | notes |")
print("|---|---|---|---|")
for r in rows:
    print(f"| {r['measure']} | {r['value']} {r['unit']} | {r['load']} | {r['note']} |")
three = [r for r in rows if r["measure"].startswith("3 node(s), closed loop:")]
etcd = [r for r in rows if r["measure"].startswith("etcd")]
if three and etcd and float(etcd[0]["value"]) > 0:
    print(f"\n3 nodes (closed loop, one tx per request) / etcd CAS: "
          f"{float(three[0]['value']) / float(etcd[0]['value']):.2f}")
EOF
