/* Port devices that end the VM: ACPI sleep/reset, pvpanic, the i8042's
 * reset line. opaque is the struct exit_latch (exit.h) to raise. */
#ifndef KVMLAB_VMM_POWER_H
#define KVMLAB_VMM_POWER_H
#include "bus.h"

/* LAYOUT_PORT_ACPI_SLEEP .. LAYOUT_PORT_ACPI_RESET (3 ports) */
extern const struct bus_ops power_acpi_ops;
/* LAYOUT_PORT_PVPANIC (1 port) */
extern const struct bus_ops power_pvpanic_ops;

/* The i8042: just enough of the controller for Linux to probe it quickly
 * and for `reboot=k` (command 0xFE pulses the reset line). */
struct i8042;
struct exit_latch;
struct i8042 *i8042_new(struct exit_latch *x);
void i8042_free(struct i8042 *k);
extern const struct bus_ops i8042_data_ops; /* LAYOUT_PORT_I8042_DATA */
extern const struct bus_ops i8042_cmd_ops;  /* LAYOUT_PORT_I8042_CMD */
#endif
