/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* IPv4 and IPv6 socket addresses in a sockaddr_storage, as the tools print and compare them. */
#ifndef LOOPLESS_TESTS_ADDR_H
#define LOOPLESS_TESTS_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

socklen_t sa_len(const struct sockaddr_storage *ss);

/* The port in host order; 0 for a family without ports. */
unsigned int sa_port(const struct sockaddr_storage *ss);

void sa_set_port(struct sockaddr_storage *ss, unsigned int port);

/* ::ffff:a.b.c.d -> a.b.c.d (AF_INET), so addresses compare and print the same either way. */
void sa_unmap(struct sockaddr_storage *ss);

/* Same family, address and port. */
bool sa_equal(const struct sockaddr_storage *a, const struct sockaddr_storage *b);

/*
 * The numeric address in the first @len characters of @host, with the numeric @port (NULL: 0),
 * into @ss. Numeric only (AI_NUMERICHOST): a name would mean a DNS lookup and another address.
 * 0 or -EINVAL.
 */
int sa_parse(const char *host, size_t len, const char *port, struct sockaddr_storage *ss);

/* "127.0.0.1:41234" or "[::1]:41234"; "?" when it cannot be printed. */
void fmt_sa(const struct sockaddr_storage *ss, char *buf, size_t len);

#endif
