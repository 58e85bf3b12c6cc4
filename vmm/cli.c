#include "cli.h"

#include <signal.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

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

static struct termios saved_tio;
static int tio_saved;

void cli_tty_restore(void)
{
	if (tio_saved) {
		tcsetattr(STDIN_FILENO, TCSANOW, &saved_tio);
		tio_saved = 0;
	}
}

/* A crash must not leave the user's terminal raw: put it back, then die
 * of the same signal. tcsetattr() is async-signal-safe. */
static void crash_handler(int sig)
{
	tcsetattr(STDIN_FILENO, TCSANOW, &saved_tio);
	raise(sig); /* SA_RESETHAND: default action now */
}

void cli_tty_raw(void)
{
	static const int crash_sigs[] = { SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT };
	struct sigaction sa;
	struct termios t;

	static int registered;
	if (!isatty(STDIN_FILENO) || tcgetattr(STDIN_FILENO, &saved_tio) < 0)
		return;
	tio_saved = 1;
	if (!registered++) /* once: a guest that reboots comes back here */
		atexit(cli_tty_restore);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = crash_handler;
	sa.sa_flags = SA_RESETHAND | SA_NODEFER;
	sigemptyset(&sa.sa_mask);
	for (unsigned i = 0; i < sizeof(crash_sigs) / sizeof(crash_sigs[0]); i++)
		sigaction(crash_sigs[i], &sa, NULL);
	t = saved_tio;
	cfmakeraw(&t);
	/* keep output processing: our own messages still end lines */
	t.c_oflag |= OPOST;
	tcsetattr(STDIN_FILENO, TCSANOW, &t);
}

int cli_help_only(const char *cmd, const char *usage, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
	};
	int c;
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		if (c == 'h') {
			fputs(usage, stdout);
			return 0;
		}
		return cli_usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
	}
	return -1;
}

void cli_ip4(char out[CLI_IP4_LEN], uint32_t a)
{
	snprintf(out, CLI_IP4_LEN, "%u.%u.%u.%u", a >> 24, (a >> 16) & 255, (a >> 8) & 255, a & 255);
}

void cli_mac(char out[CLI_MAC_LEN], const uint8_t m[6])
{
	snprintf(out, CLI_MAC_LEN, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4],
		 m[5]);
}
