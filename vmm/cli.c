#include "cli.h"

#include <stdarg.h>
#include <stdio.h>

#include "vm.h"

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "kvmlab-vm: %s%s", cmd ? cmd : "", cmd ? ": " : "");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (try 'kvmlab-vm %s%s--help')\n", cmd ? cmd : "", cmd ? " " : "");
	return VM_RC_USAGE;
}

int cli_value_error(const char *fmt, ...)
{
	va_list ap;
	fputs("kvmlab-vm: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return VM_RC_SETUP;
}
