#!/usr/bin/env bash
# The same work as `rxchain bench`'s core, on a three-member etcd cluster on
# loopback, for a side-by-side number: one put per issued prescription, then
# one compare-and-swap "redeem" per prescription (a txn: value == "issued" ->
# put "redeemed"), plus a contested round where three clients redeem every
# prescription at once and at most one may win.
#
# Installs Debian's etcd-server and etcd-client with apt when etcd is missing.
# Talks to etcd's JSON gateway (/v3/kv/...) from a small Python load
# generator, so no etcd client library is needed.
#
# Usage: scripts/bench-etcd.sh [PRESCRIPTIONS] [CONCURRENCY]
set -euo pipefail

N="${1:-2000}"
C="${2:-64}"

if ! command -v etcd >/dev/null; then
    echo "installing etcd-server and etcd-client (Debian packages)" >&2
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server etcd-client >/dev/null
fi
# Debian's package starts a single-member etcd as a service on 2379; the
# cluster below uses other ports and does not touch it.

DIR="$(mktemp -d)"
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$DIR"
}
trap cleanup EXIT

CLUSTER="e1=http://127.0.0.1:23801,e2=http://127.0.0.1:23802,e3=http://127.0.0.1:23803"
for i in 1 2 3; do
    etcd --name "e$i" --data-dir "$DIR/e$i" \
        --listen-client-urls "http://127.0.0.1:2379$i" --advertise-client-urls "http://127.0.0.1:2379$i" \
        --listen-peer-urls "http://127.0.0.1:2380$i" --initial-advertise-peer-urls "http://127.0.0.1:2380$i" \
        --initial-cluster "$CLUSTER" --initial-cluster-state new --initial-cluster-token rxchain-bench \
        --log-level error >"$DIR/e$i.log" 2>&1 &
    PIDS+=("$!")
done

for _ in $(seq 1 100); do
    if ETCDCTL_API=3 etcdctl --endpoints=http://127.0.0.1:23791,http://127.0.0.1:23792,http://127.0.0.1:23793 endpoint health >/dev/null 2>&1; then
        break
    fi
    sleep 0.2
done
ETCDCTL_API=3 etcdctl --endpoints=http://127.0.0.1:23791,http://127.0.0.1:23792,http://127.0.0.1:23793 endpoint health

python3 - "$N" "$C" <<'PY'
import base64, json, sys, threading, time, urllib.request
from concurrent.futures import ThreadPoolExecutor

n, c = int(sys.argv[1]), int(sys.argv[2])
endpoints = ["http://127.0.0.1:23791", "http://127.0.0.1:23792", "http://127.0.0.1:23793"]
b64 = lambda s: base64.b64encode(s.encode()).decode()

def call(i, path, body):
    req = urllib.request.Request(endpoints[i % 3] + path, data=json.dumps(body).encode(),
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.load(r)

def issue(i):
    call(i, "/v3/kv/put", {"key": b64(f"rx/{i}"), "value": b64("issued")})

def redeem(i, who=0):
    key = b64(f"rx/{i}")
    r = call(i + who, "/v3/kv/txn", {
        "compare": [{"key": key, "target": "VALUE", "result": "EQUAL", "value": b64("issued")}],
        "success": [{"requestPut": {"key": key, "value": b64(f"redeemed-by-{who}")}}],
        "failure": [],
    })
    return bool(r.get("succeeded"))

def run(name, fn, jobs):
    lat = []
    lock = threading.Lock()
    def one(j):
        t = time.perf_counter()
        out = fn(*j)
        with lock:
            lat.append(time.perf_counter() - t)
        return out
    t0 = time.perf_counter()
    with ThreadPoolExecutor(c) as ex:
        results = list(ex.map(one, jobs))
    dt = time.perf_counter() - t0
    lat.sort()
    p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1000
    print(f"{name:<22} {len(jobs):>7} ops {dt:7.2f} s {len(jobs)/dt:9.0f} ops/s  p50 {p(0.5):6.1f} ms  p99 {p(0.99):6.1f} ms")
    return results

print(f"etcd 3-member cluster on loopback, {n} prescriptions, {c} concurrent clients")
run("issue (put)", issue, [(i,) for i in range(n)])
ok = run("redeem (txn CAS)", redeem, [(i,) for i in range(n)])
assert all(ok), "an uncontested redeem failed"
# Contested: re-issue, then three clients redeem each prescription at once.
run("re-issue (put)", issue, [(i,) for i in range(n)])
wins = run("contested redeem x3", redeem, [(i, w) for i in range(n) for w in range(3)])
per = [sum(wins[3 * i:3 * i + 3]) for i in range(n)]
assert all(x == 1 for x in per), "a contested prescription was redeemed other than exactly once"
print(f"contested: {n} prescriptions, each redeemed exactly once out of 3 attempts")
PY
