/* A PS/2 controller with no keyboard or mouse behind it. It answers the
 * controller commands Linux sends while probing, so the probe finishes
 * without timeouts, and turns the reset pulse into a reboot. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "power.h"
#include "exit.h"

#define STS_OBF 0x01      /* output buffer full: data waits at 0x60 */
#define STS_SYS 0x04      /* passed self-test */
#define STS_CMD 0x08      /* last write went to the command port */
#define STS_UNLOCKED 0x10 /* keyboard not inhibited by a keylock */

#define CMD_READ_CTR 0x20
#define CMD_WRITE_CTR 0x60
#define CMD_AUX_DISABLE 0xa7
#define CMD_AUX_ENABLE 0xa8
#define CMD_AUX_TEST 0xa9
#define CMD_SELF_TEST 0xaa
#define CMD_KBD_TEST 0xab
#define CMD_KBD_DISABLE 0xad
#define CMD_KBD_ENABLE 0xae
#define CMD_WRITE_OUTPUT 0xd1
#define CMD_RESET 0xfe

struct i8042 {
	pthread_mutex_t lock;
	struct exit_latch *exit;
	uint8_t status, ctr, out, pending_cmd;
};

struct i8042 *i8042_new(struct exit_latch *x)
{
	struct i8042 *k = calloc(1, sizeof(*k));
	if (!k)
		return NULL;
	pthread_mutex_init(&k->lock, NULL);
	k->exit = x;
	k->status = STS_SYS | STS_UNLOCKED;
	k->ctr = 0x30; /* both ports disabled, no interrupts */
	return k;
}

void i8042_free(struct i8042 *k)
{
	if (!k)
		return;
	pthread_mutex_destroy(&k->lock);
	free(k);
}

static void reply(struct i8042 *k, uint8_t v)
{
	k->out = v;
	k->status |= STS_OBF;
}

static void data_read(void *opaque, uint64_t off, void *data, unsigned len)
{
	struct i8042 *k = opaque;
	(void)off;
	memset(data, 0, len);
	pthread_mutex_lock(&k->lock);
	*(uint8_t *)data = k->out;
	k->status &= (uint8_t)~STS_OBF;
	pthread_mutex_unlock(&k->lock);
}

static void data_write(void *opaque, uint64_t off, const void *data, unsigned len)
{
	struct i8042 *k = opaque;
	/* len >= 1 always (a 1-port range only ever sees len 1) */
	uint8_t v = *(const uint8_t *)data;
	(void)off;
	(void)len;
	pthread_mutex_lock(&k->lock);
	k->status &= (uint8_t)~STS_CMD;
	if (k->pending_cmd == CMD_WRITE_CTR) {
		k->ctr = v;
	} else if (k->pending_cmd == CMD_WRITE_OUTPUT) {
		/* bit 0 of the output port is the CPU's reset line (active low) */
		if (!(v & 1))
			exit_raise(k->exit, EXIT_EV_REBOOT);
	}
	/* bytes for a keyboard/mouse reach no device: no reply, the guest's
	 * driver times out as with an empty port */
	k->pending_cmd = 0;
	pthread_mutex_unlock(&k->lock);
}

static void cmd_read(void *opaque, uint64_t off, void *data, unsigned len)
{
	struct i8042 *k = opaque;
	(void)off;
	memset(data, 0, len);
	pthread_mutex_lock(&k->lock);
	*(uint8_t *)data = k->status;
	pthread_mutex_unlock(&k->lock);
}

static void cmd_write(void *opaque, uint64_t off, const void *data, unsigned len)
{
	struct i8042 *k = opaque;
	uint8_t v = *(const uint8_t *)data;
	(void)off;
	(void)len;
	pthread_mutex_lock(&k->lock);
	k->status |= STS_CMD;
	k->pending_cmd = 0;
	switch (v) {
	case CMD_READ_CTR:
		reply(k, k->ctr);
		break;
	case CMD_WRITE_CTR:
	case CMD_WRITE_OUTPUT:
		k->pending_cmd = v;
		break;
	case CMD_SELF_TEST:
		reply(k, 0x55);
		break;
	case CMD_KBD_TEST:
	case CMD_AUX_TEST:
		reply(k, 0x00);
		break;
	case CMD_KBD_DISABLE:
		k->ctr |= 0x10;
		break;
	case CMD_KBD_ENABLE:
		k->ctr &= (uint8_t)~0x10;
		break;
	case CMD_AUX_DISABLE:
		k->ctr |= 0x20;
		break;
	case CMD_AUX_ENABLE:
		k->ctr &= (uint8_t)~0x20;
		break;
	case CMD_RESET:
		exit_raise(k->exit, EXIT_EV_REBOOT);
		break;
	default:
		break;
	}
	pthread_mutex_unlock(&k->lock);
}

const struct bus_ops i8042_data_ops = { .read = data_read, .write = data_write };
const struct bus_ops i8042_cmd_ops = { .read = cmd_read, .write = cmd_write };
