#!/usr/bin/env python3
"""A real SMTP server for rxchain's e-mail tests (tests/email.rs).

aiosmtpd with STARTTLS required and AUTH (PLAIN, LOGIN) required. It listens
on 127.0.0.1:<--port> (0 picks a free port), prints "PORT <n>" on stdout once
listening, and writes each accepted message, exactly as received, to
<--maildir>/<sequence>.eml. Recipients whose address contains --reject
(if given) are answered "550 mailbox unavailable", a permanent refusal.

Installed by scripts/install-test-deps.sh (pip: aiosmtpd).
"""
import argparse
import asyncio
import os
import ssl
import sys

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--user", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--maildir", required=True)
    ap.add_argument("--reject", default=None)
    args = ap.parse_args()
    os.makedirs(args.maildir, exist_ok=True)

    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(args.cert, args.key)

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == args.user
            and auth_data.password.decode() == args.password
        )
        return AuthResult(success=ok)

    class Handler:
        async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
            if args.reject and args.reject in address:
                return "550 5.1.1 mailbox unavailable"
            envelope.rcpt_tos.append(address)
            return "250 OK"

        async def handle_DATA(self, server, session, envelope):
            existing = [n for n in os.listdir(args.maildir) if n.endswith(".eml")]
            seq = len(existing) + 1
            tmp = os.path.join(args.maildir, f".{seq:06d}.tmp")
            with open(tmp, "wb") as f:
                f.write(envelope.original_content or envelope.content)
            os.rename(tmp, os.path.join(args.maildir, f"{seq:06d}.eml"))
            return "250 Message accepted for delivery"

    def factory():
        return SMTP(
            Handler(),
            hostname="localhost",
            tls_context=ctx,
            require_starttls=True,
            authenticator=authenticator,
            auth_required=True,
            auth_require_tls=True,
        )

    async def serve():
        loop = asyncio.get_running_loop()
        server = await loop.create_server(factory, host="127.0.0.1", port=args.port)
        port = server.sockets[0].getsockname()[1]
        print(f"PORT {port}", flush=True)
        async with server:
            await server.serve_forever()

    asyncio.run(serve())


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(0)
