/* fuzz-srcs: vmm/serial.c vmm/i8042.c vmm/power.c vmm/exit.c vmm/console.c */
/* The legacy port devices as vm.c wires them (16550 COM1, i8042, ACPI
 * sleep/reset, pvpanic) plus the PCI conf1 ports, driven by random port
 * accesses of every width through the real bus dispatch, mixed with host
 * console input. Checks: nothing outside an access's len bytes changes,
 * and the UART's interrupt line only ever changes level. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bus.h"
#include "console.h"
#include "layout.h"
#include "pci.h"
#include "power.h"
#include "serial.h"
#include "exit.h"

static struct bus pio;
static struct serial *ser;
static struct i8042 *kbd;
static struct pci_bus pb;
static struct exit_latch ex = { .efd = -1 };
static int line;

static int irq_line(void *o, unsigned gsi, int level)
{
	(void)o;
	if (gsi != LAYOUT_IRQ_COM1 || level == line)
		abort(); /* a repeated level is a lost (or doubled) edge */
	line = level;
	return 0;
}

static void setup(void)
{
	struct err e;
	struct console *con = NULL;
	int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	if (fd < 0 || console_new(&con, fd, &e))
		abort();
	struct serial_cfg sc = {
		.out = con, .exit = &ex, .irq_line = irq_line, .gsi = LAYOUT_IRQ_COM1,
	};
	kbd = i8042_new(&ex);
	if (!kbd || serial_new(&ser, &sc, &e) ||
	    bus_register(&pio, LAYOUT_PORT_COM1, 8, &serial_ops, ser) ||
	    bus_register(&pio, LAYOUT_PORT_I8042_DATA, 1, &i8042_data_ops, kbd) ||
	    bus_register(&pio, LAYOUT_PORT_I8042_CMD, 1, &i8042_cmd_ops, kbd) ||
	    bus_register(&pio, LAYOUT_PORT_ACPI_SLEEP, 3, &power_acpi_ops, &ex) ||
	    bus_register(&pio, LAYOUT_PORT_PVPANIC, 1, &power_pvpanic_ops, &ex) ||
	    pci_bus_init(&pb, &pio, NULL, &e))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint16_t base[8] = {
		LAYOUT_PORT_COM1, LAYOUT_PORT_COM1, LAYOUT_PORT_COM1, LAYOUT_PORT_I8042_DATA,
		LAYOUT_PORT_I8042_CMD, LAYOUT_PORT_ACPI_SLEEP, LAYOUT_PORT_PVPANIC,
		LAYOUT_PORT_PCI_CONF,
	};
	static const unsigned lens[4] = { 1, 2, 4, 8 };
	if (!ser)
		setup();
	ex.ev = EXIT_EV_NONE;
	/* the device state carries over between inputs on purpose: the state
	 * machines must cope with any history */
	for (; size >= 4; data += 4, size -= 4) {
		uint8_t op = data[0];
		if (op & 0x80) { /* host side: console input */
			(void)serial_input(ser, data + 1, (op >> 4) & 3);
			(void)serial_rx_space(ser);
			continue;
		}
		unsigned len = lens[(op >> 4) & 3];
		/* one below to one past each block, to hit the edges */
		uint16_t port = (uint16_t)(base[op & 7] + (data[1] & 7) - 1);
		bool wr = op & 0x40;
		uint8_t buf[16], before[16];
		memset(buf, 0xa5, sizeof(buf));
		memcpy(buf, data + 2, 2);
		memcpy(before, buf, sizeof(buf));
		bus_dispatch(&pio, port, buf, len, wr);
		/* a read may fill only its len bytes; a write changes nothing */
		for (unsigned i = wr ? 0 : len; i < sizeof(buf); i++)
			if (buf[i] != before[i])
				abort();
	}
	return 0;
}
