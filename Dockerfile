# syntax=docker/dockerfile:1
#
# vitals: one image for vitals-agent, vitals-scorer and vitalsctl; the
# command chooses which one runs.
#
#   docker build --build-arg VERSION=0.1.0 -t vitals:0.1.0 .
#   docker run vitals:0.1.0 vitals-scorer --help
#
# Stage `build` runs exactly what CI runs (scripts/setup, then the CMake
# Release configure + build). CI has no Docker engine, so
# tests/integration/test_deploy.py parses the RUN lines of this stage and runs
# them itself, with BUILD_DIR / ROOTFS / JOBS given as build arguments would
# give them; keep every build step in a RUN line of this stage.
#
# Stage `runtime` is `scratch` plus the three binaries, the shared libraries
# `ldd` says they load (and the loader), CA certificates, and passwd/group
# entries for the non-root user 65532. No shell, no package manager: nothing
# at run time that the daemons do not execute themselves.

FROM debian:bookworm AS build
ARG BUILD_DIR=build
ARG ROOTFS=/rootfs
ARG JOBS=
WORKDIR /src
COPY . .
RUN scripts/setup
RUN cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release && cmake --build "$BUILD_DIR" -j$JOBS
RUN deploy/docker/stage-rootfs "$BUILD_DIR/bin" "$ROOTFS"

FROM scratch AS runtime
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="vitals" \
      org.opencontainers.image.description="One weighted health score per LLM service: vitals-agent (sidecar), vitals-scorer (central), vitalsctl" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/vitals-dev/vitals"
# Owned by root and read-only to the daemons: binaries, libraries, /etc.
COPY --from=build /rootfs/root/ /
# Owned by 65532: the default socket, spool, data and temp directories, for
# a plain `docker run` without volumes (Kubernetes mounts emptyDirs/PVCs here).
COPY --from=build --chown=65532:65532 /rootfs/data/ /
ENV PATH=/usr/local/bin \
    VITALS_SOCKET_DIR=/run/vitals \
    VITALS_SPOOL_DIR=/var/lib/vitals/spool \
    VITALS_DATA_DIR=/var/lib/vitals/data
USER 65532:65532
WORKDIR /var/lib/vitals
EXPOSE 7400 7401 7402 4317 4318
CMD ["vitalsctl", "--help"]
