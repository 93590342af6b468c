/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Which process holds a socket: /proc/PID/fd links read "socket:[INODE]".
 * For `loopless conns`, so an operator sees "sidecar" and "app", not only
 * addresses.
 */
#ifndef LOOPLESS_PROCS_H
#define LOOPLESS_PROCS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct sock_owner {
	uint64_t ino;
	pid_t pid; /* 0: not found (not accept()ed yet, or another pid namespace) */
	char comm[16];
};

/* Sort @owners by inode (distinct, non-zero) and fill in pid and comm: one
 * walk of @proc_root ("/proc") whatever @n. A process that exits meanwhile
 * is simply not found; of several holding one socket (fork()) the first
 * seen wins. */
void procs_find_owners(struct sock_owner *owners, size_t n, const char *proc_root);
/* The owner of socket inode @ino in @owners (as sorted above), or NULL. */
const struct sock_owner *procs_owner(const struct sock_owner *owners, size_t n, uint64_t ino);

#endif
