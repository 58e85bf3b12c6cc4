/* `kvmlab-vm check`: what this host can run. */
#ifndef KVMLAB_VMM_CHECK_H
#define KVMLAB_VMM_CHECK_H
#include <stdio.h>

/* Exit codes of `check` */
#define CHECK_RC_OK     0 /* stock guests will boot */
#define CHECK_RC_CANNOT 1 /* the VMM cannot run here (reason printed) */
#define CHECK_RC_PVM    3 /* /dev/kvm is PVM: only PVM-enlightened kernels boot */

/* Print the report to out; return one of the codes above. */
int check_host(FILE *out);
#endif
