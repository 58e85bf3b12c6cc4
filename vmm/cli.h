/* kvmlab-vm's command-line messages and terminal, shared by its
 * commands (main.c, cmd_ctl.c, cmd_dhcp.c). The split between a line
 * that cannot be parsed (exit 2) and a bad value (exit 1) is
 * kvmlab-net's too (doc/exit-status.txt). */
#ifndef KVMLAB_VMM_CLI_H
#define KVMLAB_VMM_CLI_H
#include <stdint.h>

/* "kvmlab-vm: CMD: <text> (try 'kvmlab-vm CMD --help')"; returns 2. */
__attribute__((format(printf, 2, 3)))
int cli_usage_error(const char *cmd, const char *fmt, ...);
/* "kvmlab-vm: <text>"; returns 1. */
__attribute__((format(printf, 1, 2)))
int cli_value_error(const char *fmt, ...);
/* An IPv4 address (host order) and a MAC as text. */
#define CLI_IP4_LEN 16
#define CLI_MAC_LEN 18
void cli_ip4(char out[CLI_IP4_LEN], uint32_t a);
void cli_mac(char out[CLI_MAC_LEN], const uint8_t m[6]);
/* The options of a command whose only one is --help (optind is left at
 * the first argument): -1 to go on, else the exit status (0: usage
 * printed; 2: an unknown option, said). */
int cli_help_only(const char *cmd, const char *usage, int argc, char **argv);
/* stdin, when a terminal, raw (output processing kept: our own lines
 * still end right) until cli_tty_restore, which also runs at exit and
 * before a crash kills the process. Again after a restore: raw again. */
void cli_tty_raw(void);
void cli_tty_restore(void);
#endif
