# Multi-stage build: compile in the Rust image, run on a slim Debian as a
# non-root user with the data directory on a volume. The web pages are built
# into the binary; nothing else is copied.
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
USER rxchain
WORKDIR /var/lib/rxchain
VOLUME ["/var/lib/rxchain"]
# `rxchain genesis new` gives nodes port 8443 unless told otherwise.
EXPOSE 8443
# The node reads /etc/rxchain/node.toml unless the command names another
# (`node --config /etc/rxchain/node1.toml`, as deploy/docker-compose.yml
# does) or RXCHAIN_CONFIG does: mount the organisation's directory from
# `rxchain genesis new` there (genesis, node key, data key, the [tls]
# certificate and key; plain HTTP on 0.0.0.0 is refused unless
# insecure_plaintext = true). Put the data directory on the volume with
# RXCHAIN_DATA_DIR=/var/lib/rxchain/data.
ENV RXCHAIN_CONFIG=/etc/rxchain/node.toml
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD curl -fsSk https://127.0.0.1:8443/healthz || exit 1
ENTRYPOINT ["rxchain"]
CMD ["node"]
