/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Socket I/O the way event-driven programs do it, the kind loopless redirects into: connect
 * non-blocking, look once at a new socket, read with recv(MSG_DONTWAIT) and poll() when nothing
 * is there. A reader seen blocking would be kept on plain TCP (ll_recv in bpf/loopless.bpf.c),
 * so every tool reads through here. The writers block (a full send buffer waits in the kernel).
 * Functions return a count or 0, or -errno.
 */
#ifndef LOOPLESS_TESTS_IO_H
#define LOOPLESS_TESTS_IO_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

/*
 * EAGAIN after a poll(), on a read (readable, yet nothing to read) or a blocking write: a
 * blocking recv() on a socket in a sockmap can fail so, since tcp_bpf_recvmsg()
 * (net/ipv4/tcp_bpf.c) waits for one wake-up only and a wake-up for another reason ends the wait
 * empty-handed. Retried and counted here; a tool reports the count ("eagain=N") or not.
 */
extern _Atomic uint64_t io_eagain;

/* How long one poll() for readiness waits before the call is retried (ms; -1: no limit). */
extern int io_poll_ms;

int set_nonblock(int fd, bool on);

/*
 * The first read attempt of an event loop on a new socket (Go's netpoller makes one before it
 * parks): loopless redirects into a reader only once it has been seen reading non-blocking, and
 * a tool's figures must not depend on which thread the scheduler runs first. A peek: no byte is
 * taken.
 */
void look_once(int fd);

/*
 * Connects the non-blocking socket @fd to @sa as event-driven programs do (loopless leaves
 * programs that connect blocking on TCP), waits for the end of the handshake with poll(), and
 * leaves @fd blocking, for the writers.
 */
int connect_wait(int fd, const struct sockaddr_storage *sa, socklen_t len);

/* From the non-blocking listener @lfd: poll() for a connection, accept it into *@out. @peer may
 * be NULL. A client that gave up before accept() is not a failure: the next one is waited for. */
int accept_wait(int lfd, struct sockaddr_storage *peer, int *out);

/* One read of up to @len bytes: the count, 0 at EOF. Pipes (not sockets) are read with read(). */
ssize_t read_some(int fd, void *buf, size_t len);

/* Reads until @len bytes or EOF: the count, short only at EOF. */
ssize_t read_full(int fd, void *buf, size_t len);

/* Writes all of @buf, adding to *@progress (if not NULL) as the kernel takes bytes. 0 or -errno. */
int write_full(int fd, const void *buf, size_t len, _Atomic uint64_t *progress);

/* @content into @path, written to a temporary name and renamed: no reader sees it half-written. */
int write_file_atomic(const char *path, const char *content);

#endif
