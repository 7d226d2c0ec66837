# syntax=docker/dockerfile:1
# tokenroute: a multi-stage build. The builder compiles a release binary from the locked dependency set; the
# runtime image holds that binary, CA roots and nothing else, and runs as an unprivileged user.
#
#   docker build -t tokenroute .
#   docker run --rm -p 8080:8080 -p 127.0.0.1:9901:9901 \
#       -v "$PWD/config.toml:/etc/tokenroute/config.toml:ro" -v tokenroute-state:/var/lib/tokenroute tokenroute
#
# In the mounted config: listener and admin addresses on 0.0.0.0 (the admin API then needs a token in
# TOKENROUTE_ADMIN_TOKEN), and `[affinity] snapshot_path = "/var/lib/tokenroute/affinity.snapshot"`.

FROM rust:1-slim-bookworm AS builder
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
COPY examples ./examples
RUN cargo build --release --locked --bin tokenroute \
    && strip target/release/tokenroute

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 tokenroute \
    && useradd --system --uid 10001 --gid tokenroute --home-dir /var/lib/tokenroute --shell /usr/sbin/nologin tokenroute \
    && install -d -o tokenroute -g tokenroute -m 0700 /var/lib/tokenroute \
    && install -d -m 0755 /etc/tokenroute
COPY --from=builder /src/target/release/tokenroute /usr/local/bin/tokenroute
COPY config.toml /etc/tokenroute/config.toml
USER tokenroute:tokenroute
VOLUME ["/var/lib/tokenroute"]
EXPOSE 8080 9901
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/tokenroute", "--config", "/etc/tokenroute/config.toml"]
CMD ["run"]
