# syntax=docker/dockerfile:1
# Multi-stage build: compile in the Rust image, run as a non-root user in a slim Debian image.

FROM rust:1.95-bookworm AS build
# Set by BuildKit. A multi-platform build (the release's linux/amd64 and linux/arm64) runs one
# build per platform at once: each gets its own target cache, and they take turns on the
# registry cache, whose lock file is outside the mount.
ARG TARGETPLATFORM
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/src/target,id=orderly-target-${TARGETPLATFORM} \
    cargo build --release --locked -p orderly-server --bin orderly \
    && cp target/release/orderly /usr/local/bin/orderly

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /app orderly \
    && mkdir -p /app/data && chown orderly /app/data
COPY --from=build /usr/local/bin/orderly /usr/local/bin/orderly
WORKDIR /app
USER orderly
ENV APP_ENV=production HOST=0.0.0.0 PORT=3000
EXPOSE 3000
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD curl -fsS http://127.0.0.1:3000/health || exit 1
ENTRYPOINT ["orderly"]
CMD ["serve"]
