// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Command-line errors both mains report in their own words: getopt_long() is
 * told to be quiet (opterr = 0), and its '?' and ':' become one line naming
 * the option as the user meant it.
 */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "config.h" /* config_quote_len(), CONFIG_QUOTE_MAX */
#include "options.h"

/*
 * The option that "--@name" (@len bytes) selects the way getopt_long() does:
 * an exact match, else the only one it abbreviates. *@n counts the options
 * it abbreviates (more than one: ambiguous).
 */
static const struct option *match_long(const struct option *longopts, const char *name, size_t len,
				       int *n)
{
	const struct option *o, *found = NULL;

	*n = 0;
	for (o = longopts; o && o->name; o++) {
		if (strncmp(o->name, name, len))
			continue;
		if (strlen(o->name) == len) {
			*n = 1;
			return o;
		}
		found = o;
		(*n)++;
	}
	return *n == 1 ? found : NULL;
}

void options_error(char *buf, size_t size, int c, const struct option *longopts, char *const argv[],
		   int ind, int opt)
{
	/* The element getopt stopped at when it finished one (a long option
	 * always, a short one when it was the last of its cluster). */
	const char *arg = ind > 0 && argv ? argv[ind - 1] : "";
	const struct option *o = NULL, *p;
	char q[CONFIG_QUOTE_MAX], list[CONFIG_QUOTE_MAX * 2];
	bool is_long = false;
	size_t len = 0, used = 0;
	int n = 0;

	if (!buf || !size)
		return;
	if (!strncmp(arg, "--", 2) && arg[2]) {
		len = strcspn(arg + 2, "=");
		o = match_long(longopts, arg + 2, len, &n);
		/* optopt is the val of a long option that failed, 0 for one
		 * getopt did not know. */
		is_long = o ? o->val == opt : !opt;
	}
	if (is_long && o) {
		/* Its full name: "--conf" is "--config". */
		snprintf(q, sizeof(q), "--%s", o->name);
	} else if (is_long) {
		config_quote_len(q, sizeof(q), arg, len + 2);
	} else {
		char ch = (char)opt;

		q[0] = '-';
		config_quote_len(q + 1, sizeof(q) - 1, &ch, 1);
	}

	if (c == ':') {
		snprintf(buf, size, "option \"%s\" needs an argument (try --help)", q);
	} else if (c == '?' && is_long && o && o->has_arg == no_argument && arg[2 + len] == '=') {
		snprintf(buf, size, "option \"%s\" takes no argument (try --help)", q);
	} else if (c == '?' && is_long && n > 1 && len) {
		list[0] = '\0';
		for (p = longopts; p->name; p++) {
			if (strncmp(p->name, arg + 2, len) || used >= sizeof(list))
				continue;
			used += (size_t)snprintf(list + used, sizeof(list) - used, "%s--%s",
						 used ? ", " : "", p->name);
		}
		snprintf(buf, size, "ambiguous option \"%s\" (%s; try --help)", q, list);
	} else {
		snprintf(buf, size, "unknown option \"%s\" (try --help)", q);
	}
}
