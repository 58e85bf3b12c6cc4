/* kvmlab-vm dhcp NET (cmd_dhcp.c): argv in, exit status out. */
#ifndef KVMLAB_VMM_CMD_DHCP_H
#define KVMLAB_VMM_CMD_DHCP_H
extern const char cmd_dhcp_usage[];
int cmd_dhcp(int argc, char **argv);
#endif
