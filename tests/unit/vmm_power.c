/* power.c and i8042.c: the port writes that end a VM, and the i8042
 * controller commands Linux sends. */
#include <stdint.h>
#include <string.h>

#include "layout.h"
#include "power.h"
#include "t.h"
#include "exit.h"

static uint8_t rd(const struct bus_ops *ops, void *o, unsigned off)
{
	uint8_t v = 0;
	ops->read(o, off, &v, 1);
	return v;
}

static void wr(const struct bus_ops *ops, void *o, unsigned off, uint8_t v)
{
	ops->write(o, off, &v, 1);
}

int main(void)
{
	struct exit_latch x = { .ev = 0, .efd = -1 };
	const unsigned sleep_off = 0;
	const unsigned sts_off = LAYOUT_PORT_ACPI_SLEEP_STS - LAYOUT_PORT_ACPI_SLEEP;
	const unsigned reset_off = LAYOUT_PORT_ACPI_RESET - LAYOUT_PORT_ACPI_SLEEP;

	/* ACPI sleep control: only SLP_EN with SLP_TYP 5 is poweroff */
	wr(&power_acpi_ops, &x, sleep_off, 5 << 2);
	CHECK_EQ(x.ev, EXIT_EV_NONE, "SLP_TYP 5 without SLP_EN: nothing");
	wr(&power_acpi_ops, &x, sleep_off, 0x20 | (3 << 2));
	CHECK_EQ(x.ev, EXIT_EV_NONE, "SLP_EN with S3: nothing");
	CHECK_EQ(rd(&power_acpi_ops, &x, sts_off), 0, "sleep status reads 0");
	wr(&power_acpi_ops, &x, reset_off, 2);
	CHECK_EQ(x.ev, EXIT_EV_NONE, "reset register with a wrong value: nothing");
	wr(&power_acpi_ops, &x, sleep_off, 0x20 | (5 << 2));
	CHECK_EQ(x.ev, EXIT_EV_POWEROFF, "SLP_EN|S5: poweroff");
	wr(&power_acpi_ops, &x, reset_off, 1);
	CHECK_EQ(x.ev, EXIT_EV_POWEROFF, "the first event sticks");

	x.ev = 0;
	wr(&power_acpi_ops, &x, reset_off, 1);
	CHECK_EQ(x.ev, EXIT_EV_REBOOT, "reset register value 1: reboot");

	/* pvpanic */
	x.ev = 0;
	CHECK_EQ(rd(&power_pvpanic_ops, &x, 0), 1, "pvpanic advertises PANICKED");
	wr(&power_pvpanic_ops, &x, 0, 2);
	CHECK_EQ(x.ev, EXIT_EV_NONE, "crash-loaded bit alone: nothing");
	wr(&power_pvpanic_ops, &x, 0, 1);
	CHECK_EQ(x.ev, EXIT_EV_PANIC, "PANICKED: panic");

	/* i8042 */
	x.ev = 0;
	struct i8042 *k = i8042_new(&x);
	CHECK(k != NULL, "i8042_new");
	if (!k)
		return t_done();
	uint8_t st = rd(&i8042_cmd_ops, k, 0);
	CHECK_EQ(st & 0x01, 0, "no data waiting at start");
	CHECK_EQ(st & 0x02, 0, "input buffer empty: the guest may write");
	CHECK_EQ(st & 0x10, 0x10, "not keylocked");
	wr(&i8042_cmd_ops, k, 0, 0xaa);
	CHECK_EQ(rd(&i8042_cmd_ops, k, 0) & 0x01, 1, "self-test reply waiting");
	CHECK_EQ(rd(&i8042_data_ops, k, 0), 0x55, "self-test passes");
	CHECK_EQ(rd(&i8042_cmd_ops, k, 0) & 0x01, 0, "reply consumed");
	wr(&i8042_cmd_ops, k, 0, 0x60);
	wr(&i8042_data_ops, k, 0, 0x47);
	wr(&i8042_cmd_ops, k, 0, 0x20);
	CHECK_EQ(rd(&i8042_data_ops, k, 0), 0x47, "CTR written then read back");
	wr(&i8042_cmd_ops, k, 0, 0xd1);
	wr(&i8042_data_ops, k, 0, 0x03);
	CHECK_EQ(x.ev, EXIT_EV_NONE, "output port with the reset line high: nothing");
	wr(&i8042_cmd_ops, k, 0, 0xfe);
	CHECK_EQ(x.ev, EXIT_EV_REBOOT, "0xFE pulses reset: reboot");
	i8042_free(k);
	return t_done();
}
