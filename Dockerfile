# syntax=docker/dockerfile:1
# wson in a container: `docker build -t wson .`, then
#   docker run -d --name wson -p 8099:8099 -v wson-run:/run/wson -v wson-state:/var/lib/wson wson
# The WebSocket port is 8099; the Unix listener and the control socket are in the /run/wson
# volume (mount it into the nginx and PHP containers too), the secret in /var/lib/wson.
# Mount your own config over /etc/wson/wson.toml (conf/docker.toml is the default one).

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

# Builder: the release binary, from the locked dependencies. The cache mounts keep the
# registry and target folder between builds; the binary is copied out of them.
FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS builder
WORKDIR /build
COPY Cargo.toml Cargo.lock ./
COPY src ./src
ENV CARGO_PROFILE_RELEASE_DEBUG=0 CARGO_PROFILE_RELEASE_STRIP=symbols
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/build/target \
    cargo build --release --locked --bin wson \
    && install -m 755 target/release/wson /usr/local/bin/wson

# Runtime: the binary, CA certificates (for a rediss:// cluster link) and nothing else.
FROM debian:${DEBIAN_RELEASE}-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 wson \
    && useradd --system --uid 10001 --gid wson --no-create-home --shell /usr/sbin/nologin wson \
    && install -d -o wson -g wson -m 755 /run/wson \
    && install -d -o wson -g wson -m 700 /var/lib/wson
COPY --from=builder /usr/local/bin/wson /usr/local/bin/wson
COPY conf/docker.toml /etc/wson/wson.toml
USER wson:wson
VOLUME ["/run/wson", "/var/lib/wson"]
EXPOSE 8099
# SIGTERM (docker stop) sends Close 1001 to every client and waits up to close_timeout:
# keep `docker stop -t` above it.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/wson"]
CMD ["start", "-c", "/etc/wson/wson.toml"]
