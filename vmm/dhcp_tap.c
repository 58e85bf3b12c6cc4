#include "dhcp_tap.h"

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <linux/filter.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/if_tun.h>

int dhcp_tap_open(struct dhcp_tap *t, int tap_fd, const struct sock_fprog *match,
		  dhcp_tap_fn *fn, void *opaque, struct err *e)
{
	struct ifreq ifr;

	t->fd = -1;
	memset(&ifr, 0, sizeof(ifr));
	if (ioctl(tap_fd, TUNGETIFF, &ifr) < 0)
		return errf(e, errno, "dhcp: TUNGETIFF: %s", strerror(errno));
	return dhcp_sock_open(t, ifr.ifr_name, match, fn, opaque, e);
}

int dhcp_sock_open(struct dhcp_tap *t, const char *ifname, const struct sock_fprog *match,
		   dhcp_tap_fn *fn, void *opaque, struct err *e)
{
	int one = 1, rc;

	t->fd = -1;
	/* no filter would hand every frame the interface takes to this socket */
	if (!match || !match->len)
		return errf(e, EINVAL, "dhcp: no filter for %s's packet socket", ifname);
	t->ifindex = (int)if_nametoindex(ifname);
	if (!t->ifindex)
		return errf(e, errno, "dhcp: %s: %s", ifname, strerror(errno));
	/* protocol 0 until bound and filtered: nothing queues before that */
	int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return errf(e, errno, "dhcp: packet socket on %s: %s", ifname, strerror(errno));
	/* ETH_P_ALL: a bridge port's frames are the bridge's before any
	 * per-protocol socket sees them; the filter keeps this one cheap */
	struct sockaddr_ll sll = { .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL),
				   .sll_ifindex = t->ifindex };
	/* the clients' frames come in through the interface; ours go out
	 * through it: PACKET_IGNORE_OUTGOING keeps our replies out */
	if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, match, sizeof(*match)) ||
	    setsockopt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof(one)) ||
	    bind(fd, (struct sockaddr *)&sll, sizeof(sll))) {
		rc = errf(e, errno, "dhcp: packet socket on %s: %s", ifname, strerror(errno));
		close(fd);
		return rc;
	}
	t->fd = fd;
	t->fn = fn;
	t->opaque = opaque;
	return 0;
}

void dhcp_tap_ready(void *opaque, uint32_t events)
{
	struct dhcp_tap *t = opaque;
	(void)events;
	for (;;) {
		ssize_t r = recv(t->fd, t->frame, sizeof(t->frame), MSG_TRUNC);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return; /* EAGAIN: all answered */
		}
		/* a frame the filter passed but longer than any DHCP request we
		 * parse: the guest's, and hostile until parsed; drop it whole */
		if ((size_t)r > sizeof(t->frame))
			continue;
		size_t rl = sizeof(t->reply);
		if (!t->fn(t->opaque, t->frame, (size_t)r, t->reply, &rl) || !rl ||
		    rl > sizeof(t->reply))
			continue;
		dhcp_tap_send(t, t->reply, rl);
	}
}

void dhcp_tap_send(struct dhcp_tap *t, const uint8_t *frame, size_t len)
{
	struct sockaddr_ll to = { .sll_family = AF_PACKET, .sll_ifindex = t->ifindex,
				  .sll_halen = ETH_ALEN };

	if (t->fd < 0 || len < ETH_ALEN)
		return;
	memcpy(to.sll_addr, frame, ETH_ALEN);
	/* sent out of the tap, that is to the guest; a full queue loses it
	 * as a wire would, and the client asks again */
	(void)!sendto(t->fd, frame, len, 0, (struct sockaddr *)&to, sizeof(to));
}

void dhcp_tap_close(struct dhcp_tap *t)
{
	if (t->fd >= 0)
		close(t->fd);
	t->fd = -1;
}
