/* kvmlab-vm list, stop, pause, resume and console (cmd_ctl.c): argv in, exit status out. */
#ifndef KVMLAB_VMM_CMD_CTL_H
#define KVMLAB_VMM_CMD_CTL_H
extern const char cmd_list_usage[], cmd_stop_usage[], cmd_pause_usage[], cmd_resume_usage[],
	cmd_console_usage[];
int cmd_list(int argc, char **argv);
int cmd_stop(int argc, char **argv);
int cmd_pause(int argc, char **argv);
int cmd_resume(int argc, char **argv);
int cmd_console(int argc, char **argv);
#endif
