# A small runtime image of intercom-secure-proxy, running as a non-root user.
#   docker build -t intercom-secure-proxy .
#   docker run -v $PWD/conf:/etc/intercom-secure-proxy:ro -e INTERCOM_SECRET=... -p 8080:8080 intercom-secure-proxy
FROM rust:1.88-bookworm AS build
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends cmake && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
# No debug info in the image's binary.
ENV CARGO_PROFILE_RELEASE_DEBUG=0
RUN cargo build --release --locked --bin intercom-secure-proxy

FROM debian:bookworm-slim
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin isp
COPY --from=build /src/target/release/intercom-secure-proxy /usr/local/bin/intercom-secure-proxy
USER 10001:10001
EXPOSE 8080 9090
# SIGTERM stops it gracefully (requests in flight finish, then it exits).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/intercom-secure-proxy"]
CMD ["run", "-c", "/etc/intercom-secure-proxy/config.yaml"]
