/* kvmlab-vm dhcp NET (cmd_dhcp.c): argv in, exit status out. */
#ifndef KVMLAB_VMM_CMD_DHCP_H
#define KVMLAB_VMM_CMD_DHCP_H
extern const char cmd_dhcp_usage[];
int cmd_dhcp(int argc, char **argv);
/* The front's words for a failed net/ call rc on handle h: the library's
 * own line when it left one, else the errno's text (main.c uses it too). */
struct kl_net;
const char *front_net_why(struct kl_net *h, int rc);
#endif
