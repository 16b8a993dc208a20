# Multi-stage build of the stampede binary (load generator and demo wallet in one).
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY scenarios ./scenarios
COPY scripts ./scripts
COPY tests ./tests
COPY benches ./benches
RUN cargo build --release --locked && cp target/release/stampede /usr/local/bin/stampede

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /usr/local/bin/stampede /usr/local/bin/stampede
WORKDIR /work
COPY scenarios ./scenarios
COPY scripts ./scripts
ENTRYPOINT ["stampede"]
CMD ["--help"]
