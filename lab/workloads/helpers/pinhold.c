/* pinhold: hold a FOLL_PIN on pages of a file for as long as asked, the way
 * a GUP user holds a short-term pin while it blocks on something else.
 *
 *   pinhold --file F [--pages N] [--hold SECONDS]
 *   pinhold --uring-pin --pages N --write-to F
 *
 * The file is mapped MAP_SHARED and written, then process_vm_readv() of our
 * own process copies from the mapping (the "remote" side: the kernel pins
 * those pages with pin_user_pages_remote(), FOLL_PIN) into a buffer whose
 * first page is registered with userfaultfd and never populated. The copy
 * faults there and the fault waits for our own userfaultfd thread, with the
 * file's pages still pinned. The thread reports {"event": "pinned"}, waits
 * --hold seconds (0: until the process is killed), then fills the page
 * (UFFDIO_ZEROPAGE): the copy finishes, the pages are unpinned, and
 * {"event": "released", "held_ms": ...} is printed.
 *
 * On a DAX file, truncate waits in *_break_layouts for as long as the pin is
 * held, and a writer of the file waits for the truncate's inode lock in D
 * state: a stall bounded by the pin's life, released by ending this process.
 * With --uring-pin, N anonymous pages are registered as io_uring fixed
 * buffers (FOLL_PIN | FOLL_LONGTERM, held until the ring is freed) and a
 * second thread writes to F: on a frozen filesystem that thread waits in D
 * state for good, the process cannot finish exiting when killed, its files
 * (the ring) stay open, and the pins stay held by a live task: pins held,
 * not leaked.
 *
 * One JSON object per line on stdout; exit 0 when released, 2 on bad usage,
 * 1 when a system call fails (the JSON says which).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/io_uring.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

static long page;
static int uffd = -1;
static char *trap;
static double hold_s;
static double pinned_at;

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int fail(const char *what)
{
	printf("{\"event\": \"error\", \"call\": \"%s\", \"errno\": %d, \"error\": \"%s\"}\n",
	       what, errno, strerror(errno));
	fflush(stdout);
	return 1;
}

static void *server(void *arg)
{
	(void)arg;
	struct pollfd p = { .fd = uffd, .events = POLLIN };
	struct uffd_msg msg;
	for (;;) {
		if (poll(&p, 1, -1) < 0 && errno != EINTR)
			exit(fail("poll"));
		if (read(uffd, &msg, sizeof(msg)) != sizeof(msg))
			continue;
		if (msg.event == UFFD_EVENT_PAGEFAULT)
			break;
	}
	/* The copy faulted: pin_user_pages_remote() has pinned the file's pages. */
	pinned_at = now();
	printf("{\"event\": \"pinned\", \"pid\": %d}\n", getpid());
	fflush(stdout);
	if (hold_s <= 0)
		for (;;)
			pause();
	struct timespec ts = { (time_t)hold_s, (long)((hold_s - (time_t)hold_s) * 1e9) };
	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
	struct uffdio_zeropage z = { .range = { (unsigned long)trap, page } };
	if (ioctl(uffd, UFFDIO_ZEROPAGE, &z))
		exit(fail("UFFDIO_ZEROPAGE"));
	return NULL;
}

static const char *write_to;

static void *writer(void *arg)
{
	(void)arg;
	int fd = open(write_to, O_WRONLY | O_CREAT | O_APPEND, 0644);
	if (fd < 0)
		exit(fail("open --write-to"));
	printf("{\"event\": \"writing\", \"file\": \"%s\"}\n", write_to);
	fflush(stdout);
	if (write(fd, "lab\n", 4) != 4)
		exit(fail("write"));
	fsync(fd);
	printf("{\"event\": \"written\"}\n");
	fflush(stdout);
	return NULL;
}

static int uring_pin(long pages)
{
	size_t len = pages * page;
	char *buf = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED)
		return fail("mmap");
	memset(buf, 0x5a, len);
	struct io_uring_params p = { 0 };
	int ring = syscall(__NR_io_uring_setup, 4, &p);
	if (ring < 0)
		return fail("io_uring_setup");
	struct iovec iov = { buf, len };
	if (syscall(__NR_io_uring_register, ring, IORING_REGISTER_BUFFERS, &iov, 1))
		return fail("IORING_REGISTER_BUFFERS");
	printf("{\"event\": \"pinned\", \"pid\": %d, \"pages\": %ld}\n", getpid(), pages);
	fflush(stdout);
	pthread_t t;
	if (write_to && pthread_create(&t, NULL, writer, NULL))
		return fail("pthread_create");
	for (;;)
		pause();
}

int main(int argc, char **argv)
{
	const char *file = NULL;
	long pages = 1;
	int uring = 0;
	for (int i = 1; i < argc; i += 2) {
		if (!strcmp(argv[i], "--uring-pin")) {
			uring = 1;
			i--;
		} else if (i + 1 >= argc) {
			file = NULL;
			uring = 0;
		} else if (!strcmp(argv[i], "--write-to"))
			write_to = argv[i + 1];
		else if (!strcmp(argv[i], "--file"))
			file = argv[i + 1];
		else if (!strcmp(argv[i], "--pages"))
			pages = atol(argv[i + 1]);
		else if (!strcmp(argv[i], "--hold"))
			hold_s = atof(argv[i + 1]);
		else
			file = NULL, i = argc;
	}
	page = sysconf(_SC_PAGESIZE);
	if (uring && pages >= 1 && pages <= 4096)
		return uring_pin(pages);
	if (!file || pages < 1 || pages > 4096 || hold_s < 0) {
		fprintf(stderr, "usage: pinhold --file F [--pages 1..4096] [--hold SECONDS]\n"
				"       pinhold --uring-pin [--pages 1..4096] [--write-to F]\n");
		return 2;
	}
	size_t len = pages * page;
	int fd = open(file, O_RDWR | O_CREAT, 0644);
	if (fd < 0)
		return fail("open");
	if (ftruncate(fd, len))
		return fail("ftruncate");
	char *map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED)
		return fail("mmap");
	memset(map, 0x5a, len);

	uffd = syscall(SYS_userfaultfd, O_CLOEXEC);
	if (uffd < 0)
		return fail("userfaultfd");
	struct uffdio_api api = { .api = UFFD_API };
	if (ioctl(uffd, UFFDIO_API, &api))
		return fail("UFFDIO_API");
	/* the destination: its first page is the trap, the rest is ordinary */
	char *dst = mmap(NULL, len + page, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (dst == MAP_FAILED)
		return fail("mmap dst");
	trap = dst;
	struct uffdio_register reg = {
		.range = { (unsigned long)trap, page },
		.mode = UFFDIO_REGISTER_MODE_MISSING,
	};
	if (ioctl(uffd, UFFDIO_REGISTER, &reg))
		return fail("UFFDIO_REGISTER");
	pthread_t t;
	if (pthread_create(&t, NULL, server, NULL))
		return fail("pthread_create");

	/* remote = our own mapping of the file: pinned before the copy starts */
	struct iovec local = { dst, len }, remote = { map, len };
	double start = now();
	ssize_t n = process_vm_readv(getpid(), &local, 1, &remote, 1, 0);
	if (n < 0)
		return fail("process_vm_readv");
	pthread_join(t, NULL);
	printf("{\"event\": \"released\", \"bytes\": %zd, \"held_ms\": %.1f, \"call_ms\": %.1f}\n",
	       n, (now() - (pinned_at ? pinned_at : start)) * 1e3, (now() - start) * 1e3);
	return 0;
}
