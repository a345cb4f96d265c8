# Multi-stage build: compile in the Rust image, run on a slim Debian as a
# non-root user with the data directory on a volume.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin rxchain

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/rxchain --create-home rxchain
COPY --from=build /src/target/release/rxchain /usr/local/bin/rxchain
COPY --from=build /src/web /usr/share/rxchain/web
USER rxchain
WORKDIR /var/lib/rxchain
VOLUME ["/var/lib/rxchain"]
EXPOSE 8080
# The node reads /var/lib/rxchain/node.toml (mount it with genesis, node key
# and the [tls] certificate and key: plain HTTP on 0.0.0.0 is refused unless
# insecure_plaintext = true); override with RXCHAIN_CONFIG. Listen on all
# interfaces inside the container.
ENV RXCHAIN_CONFIG=/var/lib/rxchain/node.toml \
    RXCHAIN_LISTEN=0.0.0.0:8080 \
    RXCHAIN_WEB_DIR=/usr/share/rxchain/web
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD curl -fsSk https://127.0.0.1:8080/healthz || curl -fsS http://127.0.0.1:8080/healthz || exit 1
ENTRYPOINT ["rxchain"]
CMD ["node"]
