/* serial.c: the 16550A as the Linux 8250 driver probes and drives it,
 * with a fake interrupt line and a pipe for output. */
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "console.h"
#include "serial.h"
#include "t.h"
#include "exit.h"

static int irq_level = -1, irq_raises, irq_gsi = -1;

static int fake_irq(void *opaque, unsigned gsi, int level)
{
	(void)opaque;
	irq_gsi = (int)gsi;
	if (level && irq_level != 1)
		irq_raises++;
	irq_level = level;
	return 0;
}

/* Console output arrives from the console's own thread: wait for it. */
static ssize_t read_wait(int fd, char *buf, size_t want)
{
	size_t got = 0;
	for (int i = 0; i < 300 && got < want; i++) {
		ssize_t n = read(fd, buf + got, want - got);
		if (n > 0)
			got += (size_t)n;
		else
			usleep(10000);
	}
	return (ssize_t)got;
}

static uint8_t rd(struct serial *s, unsigned off)
{
	uint8_t v = 0;
	serial_ops.read(s, off, &v, 1);
	return v;
}

static void wr(struct serial *s, unsigned off, uint8_t v)
{
	serial_ops.write(s, off, &v, 1);
}

int main(void)
{
	struct serial *s;
	struct err e;
	int p[2];
	char buf[256];
	struct exit_latch x = { .ev = 0, .efd = -1 };

	if (pipe2(p, O_CLOEXEC | O_NONBLOCK))
		return 1;
	struct console *con;
	CHECK_EQ(console_new(&con, p[1], &e), 0, "console_new");
	struct serial_cfg cfg = { .out = con, .exit = &x, .irq_line = fake_irq, .gsi = 4 };
	CHECK_EQ(serial_new(&s, &cfg, &e), 0, "serial_new");

	/* scratch register and DLAB */
	wr(s, 7, 0xa5);
	CHECK_EQ(rd(s, 7), 0xa5, "scratch register keeps its value");
	wr(s, 3, 0x80);
	wr(s, 0, 0x01);
	wr(s, 1, 0x00);
	CHECK_EQ(rd(s, 0), 0x01, "DLL readable under DLAB");
	wr(s, 3, 0x03);
	CHECK_EQ(rd(s, 3), 0x03, "LCR reads back");
	CHECK_EQ(rd(s, 1), 0x00, "IER, not DLM, without DLAB");

	/* the driver's loopback test: MCR LOOP|OUT2|RTS -> MSR DCD|CTS */
	wr(s, 4, 0x1a);
	CHECK_EQ(rd(s, 6) & 0xf0, 0x90, "loopback MSR mirrors MCR");
	wr(s, 0, 'L');
	CHECK_EQ(rd(s, 5) & 0x01, 1, "loopback byte is received (LSR.DR)");
	CHECK_EQ(rd(s, 0), 'L', "and read back from RBR");
	CHECK_EQ(rd(s, 5) & 0x01, 0, "receive buffer empty again");
	CHECK_EQ(read(p[0], buf, sizeof(buf)), -1, "loopback writes reach no output");
	wr(s, 4, 0x0b); /* DTR RTS OUT2: normal operation */
	CHECK_EQ(rd(s, 6) & 0xf0, 0xb0, "modem lines DCD DSR CTS up");

	/* FIFO: IIR top bits say 16550A */
	wr(s, 2, 0x01);
	CHECK_EQ(rd(s, 2) & 0xc0, 0xc0, "FIFO enabled bits in IIR");
	CHECK_EQ(rd(s, 2) & 0x0f, 0x01, "no interrupt pending");
	CHECK_EQ(rd(s, 5) & 0x60, 0x60, "LSR THRE|TEMT");

	/* THRE interrupt: enabling it with an empty THR raises it */
	int before = irq_raises;
	wr(s, 1, 0x02);
	CHECK_EQ(irq_level, 1, "THRI enable raises the line");
	CHECK_EQ(irq_gsi, 4, "on the configured GSI");
	CHECK_EQ(rd(s, 2) & 0x0f, 0x02, "IIR says THRE");
	CHECK_EQ(irq_level, 0, "reading IIR clears THRE and drops the line");
	CHECK_EQ(rd(s, 2) & 0x0f, 0x01, "then nothing pending");
	wr(s, 0, 'a');
	CHECK_EQ(irq_level, 1, "a transmitted byte raises THRE again");
	CHECK(irq_raises == before + 2, "two rising edges so far (%d)", irq_raises - before);
	wr(s, 1, 0x00);
	CHECK_EQ(irq_level, 0, "IER 0 drops the line");

	/* OUT2 gates the interrupt, as on a PC */
	wr(s, 4, 0x03);
	wr(s, 1, 0x02);
	CHECK_EQ(irq_level, 0, "no interrupt without OUT2");
	wr(s, 1, 0x00);
	wr(s, 4, 0x0b);

	/* output reaches the console's fd in order */
	wr(s, 0, 'b');
	wr(s, 0, '\n');
	ssize_t n = read_wait(p[0], buf, 3);
	CHECK(n == 3 && !memcmp(buf, "ab\n", 3), "output 'ab\\n' (%zd)", n);
	wr(s, 0, '>');
	n = read_wait(p[0], buf, 1);
	CHECK(n == 1 && buf[0] == '>', "a prompt without a newline comes out too");

	/* input: RDI interrupt, data in order */
	wr(s, 1, 0x01);
	CHECK_EQ(serial_input(s, (const uint8_t *)"xyz", 3), 3, "3 input bytes taken");
	CHECK_EQ(irq_level, 1, "received data raises the line");
	CHECK_EQ(rd(s, 2) & 0x0f, 0x04, "IIR says received data");
	CHECK_EQ(rd(s, 0), 'x', "first byte");
	CHECK_EQ(rd(s, 0), 'y', "second byte");
	CHECK_EQ(rd(s, 0), 'z', "third byte");
	CHECK_EQ(irq_level, 0, "line drops when the buffer is empty");
	CHECK_EQ(rd(s, 5) & 0x01, 0, "LSR.DR clear");
	uint8_t big[1024];
	memset(big, 'q', sizeof(big));
	size_t took = serial_input(s, big, sizeof(big));
	CHECK(took > 0 && took < sizeof(big), "a full buffer takes only part (%zu)", took);
	CHECK_EQ(serial_rx_space(s), 0, "no room left");
	wr(s, 2, 0x03); /* FIFO enable + clear RX */
	CHECK_EQ(serial_rx_space(s), took, "FCR clears the receive buffer");

	/* the kernel's panic line raises EXIT_EV_PANIC */
	CHECK_EQ(x.ev, EXIT_EV_NONE, "no event yet");
	const char *msg = "sh: echo Kernel panic - not syncing: not really\r\n";
	for (const char *c = msg; *c; c++)
		wr(s, 0, (uint8_t)*c);
	CHECK_EQ(x.ev, EXIT_EV_NONE, "the words inside a line are not a panic");
	msg = "[ 1.0] Kernel panic - not syncing: Attempted to kill init!\r\n";
	for (const char *c = msg; *c; c++)
		wr(s, 0, (uint8_t)*c);
	CHECK_EQ(x.ev, EXIT_EV_PANIC, "panic line seen");
	CHECK_EQ(serial_panic_done(s), 0, "report not finished yet");
	msg = "---[ end Kernel panic - not syncing: Attempted to kill init! ]---\n";
	for (const char *c = msg; *c; c++)
		wr(s, 0, (uint8_t)*c);
	CHECK_EQ(serial_panic_done(s), 1, "end of the report seen");

	/* odd access sizes are ignored and read all-ones */
	uint16_t w16 = 0;
	serial_ops.read(s, 0, &w16, 2);
	CHECK_EQ(w16, 0xffff, "2-byte read of a byte register: all-ones");

	serial_free(s);
	console_free(con, 1000);
	close(p[0]);
	close(p[1]);
	return t_done();
}
