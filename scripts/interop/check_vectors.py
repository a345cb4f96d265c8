#!/usr/bin/env python3
"""Cross-check rxchain signatures with an independent secp256k1 implementation.

rxchain signs with k256 (Rust). This script uses python-ecdsa, a pure-Python
ECDSA implementation that shares no code with k256, to show that both sides
agree on the signature scheme:

    digest    = SHA3-256("rxchain-sig-v1" || 0x00 || tag || 0x00 || message)
    signature = ECDSA over secp256k1 on that digest, 64 bytes r || s, low-S
    key       = 33-byte compressed SEC1 point

Usage:
    check_vectors.py verify FILE     check every vector in FILE, whoever produced it
    check_vectors.py generate [OUT]  write python-ecdsa vectors as JSON (stdout by default)
    check_vectors.py refresh FILE    check FILE, replace its python-ecdsa vectors, write it back

Exit codes: 0 all good, 1 a vector failed, 2 bad usage or file,
3 python-ecdsa is missing and could not be installed.
"""

import hashlib
import json
import subprocess
import sys

PRODUCER = "python-ecdsa"
ECDSA_REQUIREMENT = "ecdsa>=0.19,<0.20"
KEY_TAG = "rxchain-interop-py-v1"


def load_ecdsa():
    """Imports python-ecdsa, installing it with pip if it is missing."""
    try:
        import ecdsa  # noqa: F401
    except ImportError:
        print(f"python-ecdsa is missing; installing {ECDSA_REQUIREMENT}", file=sys.stderr)
        done = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", ECDSA_REQUIREMENT],
            check=False,
        )
        if done.returncode != 0:
            print("could not install python-ecdsa", file=sys.stderr)
            sys.exit(3)
    try:
        import ecdsa
    except ImportError:
        print("python-ecdsa is still not importable after installing it", file=sys.stderr)
        sys.exit(3)
    return ecdsa


ecdsa = load_ecdsa()
from ecdsa import SECP256k1, BadSignatureError, SigningKey, VerifyingKey  # noqa: E402
from ecdsa.util import sigdecode_string, sigencode_string_canonize  # noqa: E402

N = SECP256k1.order


def signing_digest(tag: str, message: bytes) -> bytes:
    """The digest rxchain signs: the Python twin of crypto::signing_digest."""
    return hashlib.sha3_256(b"rxchain-sig-v1\0" + tag.encode() + b"\0" + message).digest()


def derive(tag: str, seed: bytes) -> bytes:
    """The Python twin of SecretKey::derive: SHA3-256(tag || 0 || seed || counter)
    with the smallest one-byte counter that gives a scalar in 1..n-1."""
    for counter in range(256):
        h = hashlib.sha3_256(tag.encode() + b"\0" + seed + bytes([counter])).digest()
        if 0 < int.from_bytes(h, "big") < N:
            return h
    raise AssertionError("no valid scalar in 256 SHA3 outputs")


def check(v: dict) -> list:
    """Every problem with one vector, as sentences; empty when it is good."""
    problems = []
    name = v.get("name", "?")
    try:
        sk_bytes = bytes.fromhex(v["secret_key"])
        pk_bytes = bytes.fromhex(v["public_key"])
        message = bytes.fromhex(v["message"])
        digest = bytes.fromhex(v["digest"])
        sig = bytes.fromhex(v["signature"])
        tag = v["tag"]
    except (KeyError, ValueError) as e:
        return [f"{name}: malformed vector: {e}"]

    # 1. The public key is the compressed point of the secret key.
    sk = SigningKey.from_string(sk_bytes, curve=SECP256k1)
    if sk.get_verifying_key().to_string("compressed") != pk_bytes:
        problems.append(f"{name}: public key does not match the secret key")
    # 2. The digest follows the domain-separated SHA3-256 rule.
    if signing_digest(tag, message) != digest:
        problems.append(f"{name}: digest is not SHA3-256 of the tagged message")
    # 3. The signature is 64 bytes, r and s in range, s in the lower half.
    if len(sig) != 64:
        problems.append(f"{name}: signature is {len(sig)} bytes, not 64")
        return problems
    r, s = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")
    if not (0 < r < N and 0 < s < N):
        problems.append(f"{name}: r or s out of range")
    if s > N // 2:
        problems.append(f"{name}: s is high; rxchain requires low-S")
    # 4. It verifies under the compressed key, decoded independently.
    vk = VerifyingKey.from_string(pk_bytes, curve=SECP256k1)
    try:
        vk.verify_digest(sig, digest, sigdecode=sigdecode_string)
    except BadSignatureError:
        problems.append(f"{name}: signature does not verify")
    # 5. And it does not verify for a different digest or tag.
    for other in (bytes([digest[0] ^ 1]) + digest[1:], signing_digest(tag + "x", message)):
        try:
            vk.verify_digest(sig, other, sigdecode=sigdecode_string)
            problems.append(f"{name}: signature also verifies for another digest")
        except BadSignatureError:
            pass
    # 6. Both sides use RFC 6979 nonces (HMAC-SHA-256 over the digest), so an
    #    independent re-signing must give the very same bytes.
    again = sk.sign_digest_deterministic(digest, hashfunc=hashlib.sha256, sigencode=sigencode_string_canonize)
    if again != sig:
        problems.append(f"{name}: RFC 6979 re-signing gives a different signature")
    return problems


def vector(name: str, sk_bytes: bytes, tag: str, message: bytes) -> dict:
    sk = SigningKey.from_string(sk_bytes, curve=SECP256k1)
    digest = signing_digest(tag, message)
    sig = sk.sign_digest_deterministic(digest, hashfunc=hashlib.sha256, sigencode=sigencode_string_canonize)
    return {
        "name": name,
        "producer": PRODUCER,
        "secret_key": sk_bytes.hex(),
        "public_key": sk.get_verifying_key().to_string("compressed").hex(),
        "tag": tag,
        "message": message.hex(),
        "digest": digest.hex(),
        "signature": sig.hex(),
    }


def generate() -> list:
    """Deterministic python-ecdsa vectors: synthetic derived keys, real tags."""
    key = lambda i: derive(KEY_TAG, f"py-{i}".encode())  # noqa: E731
    return [
        vector("py-empty-message", key(0), "tx/rxchain-test/release", b""),
        vector("py-short-message", key(1), "tx/rxchain-test/claim", b"abc"),
        vector("py-all-byte-values", key(2), "tx/rxchain-test/dispense", bytes(range(256))),
        vector("py-long-message", key(3), "tx/rxchain-test/issue", bytes((i * 7 + 3) % 256 for i in range(4096))),
        vector("py-block-header", key(4), "block/rxchain-test", hashlib.sha3_256(b"header").digest()),
        vector("py-claim-proof", key(5), "claim-proof", b"\x0crxchain-test" + bytes(16) + b"\x07pharm-b" + bytes([9]) * 16),
        vector("py-empty-tag", key(6), "", b"x"),
        vector("py-other-chain", key(7), "tx/another-consortium/cancel", b"\x00\x01\x02"),
        vector("py-edge-secret-one", (1).to_bytes(32, "big"), "tx/rxchain-test/release", b"edge"),
        vector("py-edge-secret-n-minus-1", (N - 1).to_bytes(32, "big"), "tx/rxchain-test/release", b"edge"),
    ]


def read(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        print(f"cannot read {path}: {e}", file=sys.stderr)
        sys.exit(2)
    if not isinstance(doc.get("vectors"), list):
        print(f"{path} has no vectors list", file=sys.stderr)
        sys.exit(2)
    return doc


def verify_file(path: str) -> int:
    doc = read(path)
    problems = [p for v in doc["vectors"] for p in check(v)]
    by = {}
    for v in doc["vectors"]:
        by[v.get("producer", "?")] = by.get(v.get("producer", "?"), 0) + 1
    for p in problems:
        print(f"FAIL {p}")
    good = len(doc["vectors"]) - len({p.split(":")[0] for p in problems})
    print(f"python-ecdsa {ecdsa.__version__}: {good} of {len(doc['vectors'])} vectors good {by}")
    return 1 if problems else 0


def main(argv: list) -> int:
    if len(argv) >= 2 and argv[0] == "verify":
        return verify_file(argv[1])
    if len(argv) >= 1 and argv[0] == "generate":
        text = json.dumps({"vectors": generate()}, indent=2) + "\n"
        if len(argv) >= 2:
            with open(argv[1], "w", encoding="utf-8") as f:
                f.write(text)
        else:
            sys.stdout.write(text)
        return 0
    if len(argv) >= 2 and argv[0] == "refresh":
        status = verify_file(argv[1])
        if status != 0:
            return status
        doc = read(argv[1])
        doc["vectors"] = [v for v in doc["vectors"] if v.get("producer") != PRODUCER] + generate()
        with open(argv[1], "w", encoding="utf-8") as f:
            f.write(json.dumps(doc, indent=2) + "\n")
        return verify_file(argv[1])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
