/* The guest's ways to say it is done: the hardware-reduced ACPI sleep
 * control and reset registers that the FADT points at (acpi.c), and the
 * pvpanic port (ACPI device QEMU0001). */
#include "power.h"

#include <string.h>

#include "layout.h"
#include "exit.h"

#define SLP_EN (1u << 5)
#define SLP_TYP(v) (((v) >> 2) & 7u)
#define SLP_TYP_S5 5u          /* matches the DSDT's \_S5 package */
#define ACPI_RESET_VALUE 1u    /* matches the FADT's RESET_VALUE */
#define PVPANIC_PANICKED (1u << 0)

/* off 0: sleep control, 1: sleep status, 2: reset (LAYOUT_PORT_ACPI_*) */
static void acpi_read(void *opaque, uint64_t off, void *data, unsigned len)
{
	(void)opaque;
	(void)off;
	memset(data, 0, len); /* sleep status: never "woken" */
}

static void acpi_write(void *opaque, uint64_t off, const void *data, unsigned len)
{
	struct exit_latch *x = opaque;
	uint8_t v = *(const uint8_t *)data;

	(void)len;
	if (off == LAYOUT_PORT_ACPI_SLEEP - LAYOUT_PORT_ACPI_SLEEP) {
		if ((v & SLP_EN) && SLP_TYP(v) == SLP_TYP_S5)
			exit_raise(x, EXIT_EV_POWEROFF);
	} else if (off == LAYOUT_PORT_ACPI_RESET - LAYOUT_PORT_ACPI_SLEEP) {
		if (v == ACPI_RESET_VALUE)
			exit_raise(x, EXIT_EV_REBOOT);
	}
}

const struct bus_ops power_acpi_ops = { .read = acpi_read, .write = acpi_write };

static void pvpanic_read(void *opaque, uint64_t off, void *data, unsigned len)
{
	(void)opaque;
	(void)off;
	memset(data, 0, len);
	*(uint8_t *)data = PVPANIC_PANICKED; /* the events we understand */
}

static void pvpanic_write(void *opaque, uint64_t off, const void *data, unsigned len)
{
	(void)off;
	(void)len;
	if (*(const uint8_t *)data & PVPANIC_PANICKED)
		exit_raise(opaque, EXIT_EV_PANIC);
}

const struct bus_ops power_pvpanic_ops = { .read = pvpanic_read, .write = pvpanic_write };
