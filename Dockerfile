# syntax=docker/dockerfile:1
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#
# The looplessd image for deploy/kubernetes:
#   docker build --build-arg VERSION="$(git describe --tags --always)" -t loopless:latest .
# The build stage runs `make install`, so the image holds what a host install
# holds (binaries in /usr/sbin, /etc/loopless/looplessd.conf, the unit and
# the man pages). The BPF object is built against the build host's kernel
# BTF (/sys/kernel/btf/vmlinux) and relocated at load time (CO-RE), so one
# image runs on any kernel >= 6.2 with BTF (bpf_rdonly_cast).

FROM debian:12 AS build
RUN apt-get update \
	&& DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
		make gcc libc6-dev clang llvm bpftool libbpf-dev libelf-dev zlib1g-dev pkg-config \
		libinih-dev libsystemd-dev libcap-dev libmicrohttpd-dev \
	&& rm -rf /var/lib/apt/lists/*
# Compiling needs no privileges.
RUN useradd --system --create-home --home-dir /src builder
WORKDIR /src
COPY --chown=builder:builder . .
USER builder
ARG VERSION=0.1.0
RUN make -j"$(nproc)" VERSION="$VERSION" OUTPUT=/src/build install DESTDIR=/src/out PREFIX=/usr

FROM debian:12-slim
# Exactly the libraries the binaries link (tests/integration.sh t_dockerfile
# checks this list against the binaries' NEEDED entries).
RUN apt-get update \
	&& DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
		libbpf1 libcap2 libinih1 libmicrohttpd12 libsystemd0 \
	&& rm -rf /var/lib/apt/lists/*
COPY --from=build /src/out/ /
# looplessd runs as uid 0, on purpose: root owns the host's bpffs and cgroup
# tree, and the capabilities it needs (CAP_BPF, CAP_NET_ADMIN, CAP_PERFMON)
# reach a non-root user only as file capabilities, which no_new_privs
# (allowPrivilegeEscalation: false) turns off, or as ambient capabilities,
# which Kubernetes cannot grant. The DaemonSet drops every other capability
# and mounts the root file system read-only.
USER 0:0
EXPOSE 9464
ENTRYPOINT ["/usr/sbin/looplessd"]
CMD ["--config", "/etc/loopless/looplessd.conf"]
