/*
 * pinstress: pin the pages of a file mapping while another thread truncates
 * and punches holes in the file, and check that truncate completes and that
 * what was read back is consistent. Built statically by lab on the host
 * (gcc -static -O2 -pthread) and copied into the guest; io_uring is driven
 * by raw syscalls, so no liburing is needed.
 *
 *   pinstress dax   --file F --dev D [--dev-offset-mb N] [--size-mb N]
 *                   [--seconds S] [--chunk-kb K] [--uring] [--stuck-after S]
 *                   [--kick-after S] [--interval-ms M]
 *   pinstress fsync --file F [--seconds S] [--write]
 *
 * dax: the pattern is written to D (O_DIRECT) first. Pinner threads then
 *   - O_DIRECT pread() from D into the shared mapping of F (the kernel takes
 *     references on the mapped pages for the duration of the IO), and
 *   - with --uring: register the mapping itself as an io_uring fixed buffer
 *     (a long-term pin; "refused:EOPNOTSUPP" on kernels that refuse it for
 *     file mappings or fsdax),
 *     falling back to a registered anonymous buffer: READ_FIXED from D,
 *     WRITE_FIXED into F;
 *   while a truncator thread shrinks and re-extends F and punches holes.
 *   A seqlock tells raced reads from verifiable ones: data must match the
 *   pattern whenever no truncate or punch overlapped the read and the check.
 *   Every truncate/punch is timed, and so is every IO of the pinners (the
 *   worst of each: max_truncate_ms, max_punch_ms, direct.max_io_ms,
 *   uring.max_io_ms; the file they were on is "file"). Once the pinners
 *   have stopped (nothing references a page of F any more), an op still
 *   waiting after --kick-after seconds gets a signal: its interruptible
 *   wait restarts, and if it then completes at once its wakeup was lost
 *   ("lost_wakeups", with the op's kernel stack). One still waiting
 *   --stuck-after seconds after the pinners stopped is reported as stuck
 *   (one that waited while they pinned and then completed is only slow:
 *   its time is in max_truncate_ms / max_punch_ms): the JSON is printed
 *   and the process then waits to be killed, so the stuck state can be
 *   examined. Finally F is refilled through the mapping, synced, and read
 *   back with pread(); a punched range must read as zeros.
 * fsync: loops (pwrite of 4 KiB, when --write, then) fsync() on F until the
 *   deadline or SIGTERM; every fsync is timed (max_fsync_ms, of "file").
 *
 * One JSON object is printed on stdout at the end; progress lines go to stderr.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/io_uring.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#ifndef STATX_ATTR_DAX
#define STATX_ATTR_DAX 0x00200000
#endif

#define MAGIC 0x50494e5354525353ULL   /* "PINSTRSS" */

static const char *opt_file, *opt_dev;
static long opt_dev_off, opt_size = 8L << 20, opt_chunk = 64L << 10;
static double opt_seconds = 5, opt_stuck = 20, opt_kick = 1;
static int opt_uring, opt_write, opt_interval_ms = 5;

static atomic_ulong seq;              /* odd while a truncate/punch runs */
static atomic_int stop;
static atomic_long op_started_ns;     /* 0 when no truncate/punch is running */
static atomic_int direct_done;        /* the O_DIRECT pinner has stopped */
static int file_fd, dev_fd;
static char *map;

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static long now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000L + ts.tv_nsec;
}

static void die(const char *fmt, ...)
{
	int err = errno;
	va_list ap;
	char msg[512];
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	printf("{\"ok\": false, \"fatal\": \"%s: %s\"}\n", msg, strerror(err));
	fflush(stdout);
	exit(2);
}

static inline uint64_t pattern_at(long off)
{
	return MAGIC ^ (uint64_t)(off / 8);
}

static void fill_pattern(char *buf, long off, long len)
{
	for (long i = 0; i < len; i += 8)
		*(uint64_t *)(buf + i) = pattern_at(off + i);
}

/* first mismatching byte offset within [off, off+len), or -1 */
static long check_pattern(const char *buf, long off, long len)
{
	for (long i = 0; i < len; i += 8)
		if (*(const uint64_t *)(buf + i) != pattern_at(off + i))
			return off + i;
	return -1;
}

static long check_zero(const char *buf, long len)
{
	for (long i = 0; i < len; i += 8)
		if (*(const uint64_t *)(buf + i))
			return i;
	return -1;
}

/* ---- SIGBUS guard: a truncate may pull the mapping out under a check ---- */
static __thread sigjmp_buf bus_jmp;
static __thread volatile int bus_armed;

static void on_sigbus(int sig)
{
	(void)sig;
	if (bus_armed)
		siglongjmp(bus_jmp, 1);
	signal(SIGBUS, SIG_DFL);
	raise(SIGBUS);
}

struct stats {
	long reads, bytes, verified, raced, efault, sigbus, mismatches, errors, writes;
	long first_bad;
	double max_io_ms;      /* the slowest IO (O_DIRECT pread / io_uring op) */
	char first_error[96];
};

static void note_latency(struct stats *s, double t0)
{
	double ms = (now() - t0) * 1000;
	if (ms > s->max_io_ms)
		s->max_io_ms = ms;
}

static void note_error(struct stats *s, const char *what, int err)
{
	s->errors++;
	if (!s->first_error[0])
		snprintf(s->first_error, sizeof(s->first_error), "%s: %s", what, strerror(err));
}

/* compare the mapping with the pattern; count it only if no truncate/punch
 * overlapped the IO and the check (seqlock) */
static void verify_range(struct stats *s, unsigned long s0, long off, long len)
{
	long bad = -1;
	int faulted = 0;
	bus_armed = 1;
	if (sigsetjmp(bus_jmp, 1) == 0)
		bad = check_pattern(map + off, off, len);
	else
		faulted = 1;
	bus_armed = 0;
	unsigned long s1 = atomic_load(&seq);
	if (faulted) {
		s->sigbus++;
		return;
	}
	if ((s0 & 1) || s0 != s1) {
		s->raced++;
		return;
	}
	if (bad >= 0) {
		s->mismatches++;
		if (s->first_bad < 0)
			s->first_bad = bad;
	} else {
		s->verified++;
	}
}

static long rand_chunk_off(unsigned *rs)
{
	long n = opt_size / opt_chunk;
	return (rand_r(rs) % n) * opt_chunk;
}

/* ---- pinner 1: O_DIRECT read from the device into the file mapping ---- */
static struct stats direct_st = {.first_bad = -1};

static void *direct_pinner(void *arg)
{
	(void)arg;
	unsigned rs = 1;
	struct stats *s = &direct_st;
	while (!atomic_load(&stop)) {
		long off = rand_chunk_off(&rs);
		unsigned long s0 = atomic_load(&seq);
		double t0 = now();
		ssize_t n = pread(dev_fd, map + off, opt_chunk, opt_dev_off + off);
		note_latency(s, t0);
		if (n < 0) {
			if (errno == EFAULT)
				s->efault++;   /* the range went beyond EOF under a truncate */
			else
				note_error(s, "pread(O_DIRECT) into the mapping", errno);
			continue;
		}
		s->reads++;
		s->bytes += n;
		if (n == opt_chunk)
			verify_range(s, s0, off, opt_chunk);
	}
	atomic_store(&direct_done, 1);
	return NULL;
}

/* ---- io_uring with raw syscalls ---- */
struct ring {
	int fd;
	unsigned *sq_head, *sq_tail, *sq_mask, *sq_array;
	unsigned *cq_head, *cq_tail, *cq_mask;
	struct io_uring_sqe *sqes;
	struct io_uring_cqe *cqes;
};

static int ring_init(struct ring *r, unsigned entries)
{
	struct io_uring_params p;
	memset(&p, 0, sizeof(p));
	r->fd = syscall(__NR_io_uring_setup, entries, &p);
	if (r->fd < 0)
		return -errno;
	size_t sq_sz = p.sq_off.array + p.sq_entries * sizeof(unsigned);
	size_t cq_sz = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
	char *sq = mmap(0, sq_sz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, r->fd,
			IORING_OFF_SQ_RING);
	char *cq = mmap(0, cq_sz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, r->fd,
			IORING_OFF_CQ_RING);
	r->sqes = mmap(0, p.sq_entries * sizeof(struct io_uring_sqe), PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_POPULATE, r->fd, IORING_OFF_SQES);
	if (sq == MAP_FAILED || cq == MAP_FAILED || r->sqes == MAP_FAILED)
		return -errno;
	r->sq_head = (unsigned *)(sq + p.sq_off.head);
	r->sq_tail = (unsigned *)(sq + p.sq_off.tail);
	r->sq_mask = (unsigned *)(sq + p.sq_off.ring_mask);
	r->sq_array = (unsigned *)(sq + p.sq_off.array);
	r->cq_head = (unsigned *)(cq + p.cq_off.head);
	r->cq_tail = (unsigned *)(cq + p.cq_off.tail);
	r->cq_mask = (unsigned *)(cq + p.cq_off.ring_mask);
	r->cqes = (struct io_uring_cqe *)(cq + p.cq_off.cqes);
	return 0;
}

/* one fixed-buffer read or write, waited for; returns res (bytes or -errno) */
static int ring_rw_fixed(struct ring *r, int op, int fd, void *buf, unsigned len, long off)
{
	unsigned tail = atomic_load_explicit((_Atomic unsigned *)r->sq_tail, memory_order_acquire);
	unsigned idx = tail & *r->sq_mask;
	struct io_uring_sqe *sqe = &r->sqes[idx];
	memset(sqe, 0, sizeof(*sqe));
	sqe->opcode = op;
	sqe->fd = fd;
	sqe->addr = (unsigned long)buf;
	sqe->len = len;
	sqe->off = off;
	sqe->buf_index = 0;
	r->sq_array[idx] = idx;
	atomic_store_explicit((_Atomic unsigned *)r->sq_tail, tail + 1, memory_order_release);
	int ret = syscall(__NR_io_uring_enter, r->fd, 1, 1, IORING_ENTER_GETEVENTS, NULL, 0);
	if (ret < 0)
		return -errno;
	unsigned head = atomic_load_explicit((_Atomic unsigned *)r->cq_head, memory_order_acquire);
	while (head == atomic_load_explicit((_Atomic unsigned *)r->cq_tail, memory_order_acquire)) {
		ret = syscall(__NR_io_uring_enter, r->fd, 0, 1, IORING_ENTER_GETEVENTS, NULL, 0);
		if (ret < 0 && errno != EINTR)
			return -errno;
	}
	int res = r->cqes[head & *r->cq_mask].res;
	atomic_store_explicit((_Atomic unsigned *)r->cq_head, head + 1, memory_order_release);
	return res;
}

static struct stats uring_st = {.first_bad = -1};
static char uring_mapping[32] = "off";       /* registration of the mapping itself */
static struct ring uring;
static atomic_int uring_mapping_pinned;
static double truncate_blocked_s;            /* while the mapping was registered */

static void *uring_pinner(void *arg)
{
	(void)arg;
	unsigned rs = 2;
	struct stats *s = &uring_st;
	struct iovec iov;
	if (atomic_load(&uring_mapping_pinned)) {
		/* READ_FIXED straight into the pinned mapping */
		while (!atomic_load(&stop) && atomic_load(&uring_mapping_pinned)) {
			long off = rand_chunk_off(&rs);
			unsigned long s0 = atomic_load(&seq);
			double t0 = now();
			int res = ring_rw_fixed(&uring, IORING_OP_READ_FIXED, dev_fd, map + off,
						opt_chunk, opt_dev_off + off);
			note_latency(s, t0);
			if (res < 0) {
				if (res == -EFAULT)
					s->efault++;
				else
					note_error(s, "READ_FIXED into the registered mapping", -res);
				continue;
			}
			s->reads++;
			s->bytes += res;
			if (res == opt_chunk)
				verify_range(s, s0, off, opt_chunk);
		}
		return NULL;
	}
	/* refused: pin an anonymous buffer instead, READ_FIXED from the device,
	 * WRITE_FIXED into the file */
	char *buf = mmap(NULL, opt_chunk, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			 -1, 0);
	if (buf == MAP_FAILED) {
		note_error(s, "mmap anonymous buffer", errno);
		return NULL;
	}
	memset(buf, 0, opt_chunk);
	iov.iov_base = buf;
	iov.iov_len = opt_chunk;
	if (syscall(__NR_io_uring_register, uring.fd, IORING_REGISTER_BUFFERS, &iov, 1)) {
		note_error(s, "IORING_REGISTER_BUFFERS (anonymous)", errno);
		return NULL;
	}
	while (!atomic_load(&stop)) {
		long off = rand_chunk_off(&rs);
		double t0 = now();
		int res = ring_rw_fixed(&uring, IORING_OP_READ_FIXED, dev_fd, buf, opt_chunk,
					opt_dev_off + off);
		note_latency(s, t0);
		if (res != opt_chunk) {
			note_error(s, "READ_FIXED from the device", res < 0 ? -res : EIO);
			continue;
		}
		s->reads++;
		s->bytes += res;
		if (check_pattern(buf, off, opt_chunk) >= 0) {
			s->mismatches++;   /* the device read itself was wrong */
			continue;
		}
		unsigned long s0 = atomic_load(&seq);
		t0 = now();
		res = ring_rw_fixed(&uring, IORING_OP_WRITE_FIXED, file_fd, buf, opt_chunk, off);
		note_latency(s, t0);
		if (res < 0) {
			note_error(s, "WRITE_FIXED into the file", -res);
			continue;
		}
		s->writes++;
		if (res == opt_chunk)
			verify_range(s, s0, off, opt_chunk);
	}
	syscall(__NR_io_uring_register, uring.fd, IORING_UNREGISTER_BUFFERS, NULL, 0);
	return NULL;
}

/* ---- the truncator ---- */
static long truncates, punches;
static double max_trunc_ms, max_punch_ms;
static atomic_int truncator_done;
static long kicks, lost_wakeups;
static pthread_t truncator_thread;
static atomic_int truncator_tid;
static char slow_stack[2048];          /* the kernel stack of a slow truncate/punch */

static void read_stack(int tid, char *buf, size_t len)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/task/%d/stack", tid);
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return;
	ssize_t n = read(fd, buf, len - 1);
	buf[n > 0 ? n : 0] = 0;
	close(fd);
}

static void print_json_string(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			printf("\\%c", *s);
		else if (*s == '\n')
			printf("\\n");
		else if ((unsigned char)*s >= 0x20)
			putchar(*s);
	}
	putchar('"');
}

static void on_kick(int sig)
{
	(void)sig;
}

static void *truncator(void *arg)
{
	(void)arg;
	unsigned rs = 3;
	int k = 0;
	atomic_store(&truncator_tid, (int)syscall(SYS_gettid));
	while (!atomic_load(&stop)) {
		atomic_fetch_add(&seq, 1);
		double t0 = now();
		atomic_store(&op_started_ns, now_ns());
		if (k++ % 2 == 0) {
			if (ftruncate(file_fd, opt_size / 2) || ftruncate(file_fd, opt_size))
				note_error(&direct_st, "ftruncate", errno);
			double ms = (now() - t0) * 1000;
			if (ms > max_trunc_ms)
				max_trunc_ms = ms;
			truncates++;
		} else {
			long len = ((rand_r(&rs) % 16) + 1) * 65536;
			long off = (rand_r(&rs) % (opt_size / 65536)) * 65536;
			if (off + len > opt_size)
				len = opt_size - off;
			if (fallocate(file_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, len))
				note_error(&direct_st, "fallocate(PUNCH_HOLE)", errno);
			double ms = (now() - t0) * 1000;
			if (ms > max_punch_ms)
				max_punch_ms = ms;
			punches++;
		}
		atomic_store(&op_started_ns, 0);
		atomic_fetch_add(&seq, 1);
		usleep(opt_interval_ms * 1000);
	}
	atomic_store(&truncator_done, 1);
	return NULL;
}

static void print_stats(const char *name, struct stats *s, int last)
{
	printf("\"%s\": {\"reads\": %ld, \"bytes\": %ld, \"writes\": %ld, \"verified\": %ld, "
	       "\"raced\": %ld, \"efault\": %ld, \"sigbus\": %ld, \"mismatches\": %ld, "
	       "\"first_bad_offset\": %ld, \"errors\": %ld, \"first_error\": \"%s\", "
	       "\"max_io_ms\": %.1f}%s ",
	       name, s->reads, s->bytes, s->writes, s->verified, s->raced, s->efault, s->sigbus,
	       s->mismatches, s->first_bad, s->errors, s->first_error, s->max_io_ms,
	       last ? "" : ",");
}

static int statx_dax(const char *path)
{
	struct statx stx;
	if (statx(AT_FDCWD, path, 0, STATX_BASIC_STATS, &stx))
		return -1;
	if (!(stx.stx_attributes_mask & STATX_ATTR_DAX))
		return -1;
	return !!(stx.stx_attributes & STATX_ATTR_DAX);
}

/* refill through the mapping, sync, read back with pread; punch and expect zeros */
static void final_verify(long *bad_out, int *punch_ok)
{
	*bad_out = -1;
	*punch_ok = 0;
	if (ftruncate(file_fd, 0) || ftruncate(file_fd, opt_size))
		die("final ftruncate");
	for (long off = 0; off < opt_size; off += opt_chunk)
		if (pread(dev_fd, map + off, opt_chunk, opt_dev_off + off) != opt_chunk)
			die("final pread into the mapping");
	if (msync(map, opt_size, MS_SYNC) || fsync(file_fd))
		die("final msync/fsync");
	char *buf = malloc(opt_chunk);
	for (long off = 0; off < opt_size && *bad_out < 0; off += opt_chunk) {
		if (pread(file_fd, buf, opt_chunk, off) != opt_chunk)
			die("final pread of the file");
		*bad_out = check_pattern(buf, off, opt_chunk);
	}
	long hole = opt_size / 2, hlen = opt_chunk;
	if (fallocate(file_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, hole, hlen) == 0 &&
	    pread(file_fd, buf, hlen, hole) == hlen && check_zero(buf, hlen) < 0 &&
	    check_zero(map + hole, hlen) < 0 &&
	    check_pattern(map + hole + hlen, hole + hlen, opt_chunk) < 0)
		*punch_ok = 1;
	free(buf);
}

static int run_dax(void)
{
	if (!opt_file || !opt_dev) {
		fprintf(stderr, "dax needs --file and --dev\n");
		return 64;
	}
	opt_size = opt_size / opt_chunk * opt_chunk;
	dev_fd = open(opt_dev, O_RDWR | O_DIRECT);
	if (dev_fd < 0)
		die("open %s O_DIRECT", opt_dev);
	char *pat;
	if (posix_memalign((void **)&pat, 4096, opt_chunk))
		die("posix_memalign");
	for (long off = 0; off < opt_size; off += opt_chunk) {
		fill_pattern(pat, off, opt_chunk);
		if (pwrite(dev_fd, pat, opt_chunk, opt_dev_off + off) != opt_chunk)
			die("writing the pattern to %s", opt_dev);
	}
	free(pat);
	file_fd = open(opt_file, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (file_fd < 0 || ftruncate(file_fd, opt_size))
		die("create %s", opt_file);
	int dax = statx_dax(opt_file);
	map = mmap(NULL, opt_size, PROT_READ | PROT_WRITE, MAP_SHARED, file_fd, 0);
	if (map == MAP_FAILED)
		die("mmap %s", opt_file);
	struct sigaction sa = {.sa_handler = on_sigbus};
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_NODEFER;
	sigaction(SIGBUS, &sa, NULL);

	pthread_t td, tu, tt;
	int have_uring = 0;
	if (opt_uring) {
		int ret = ring_init(&uring, 8);
		if (ret < 0)
			snprintf(uring_mapping, sizeof(uring_mapping), "setup:%s", strerror(-ret));
		else
			have_uring = 1;
	}
	if (have_uring) {
		/* before the truncator starts, so the answer does not depend on a race */
		struct iovec iov = {map, (size_t)opt_size};
		if (syscall(__NR_io_uring_register, uring.fd, IORING_REGISTER_BUFFERS, &iov, 1) == 0) {
			snprintf(uring_mapping, sizeof(uring_mapping), "ok");
			atomic_store(&uring_mapping_pinned, 1);
		} else {
			const char *e = strerrorname_np(errno);
			snprintf(uring_mapping, sizeof(uring_mapping), "refused:%s", e ? e : "?");
		}
	}
	double start = now();
	struct sigaction ka = {.sa_handler = on_kick, .sa_flags = SA_RESTART};
	sigemptyset(&ka.sa_mask);
	sigaction(SIGUSR1, &ka, NULL);
	pthread_create(&tt, NULL, truncator, NULL);
	truncator_thread = tt;
	pthread_create(&td, NULL, direct_pinner, NULL);
	if (have_uring)
		pthread_create(&tu, NULL, uring_pinner, NULL);

	double stuck_s = 0, last_report = start, last_kick = 0, idle_since = 0;
	int stuck = 0;
	long idle_kick_op = 0;   /* op_started_ns of the op kicked while nothing was pinned */
	for (;;) {
		usleep(100000);
		double t = now();
		long started = atomic_load(&op_started_ns);
		double op_age = started ? (now_ns() - started) / 1e9 : 0;
		if (op_age > stuck_s)
			stuck_s = op_age;
		/* idle: the pinners are done, so no page of the file is referenced */
		int idle = atomic_load(&direct_done) && !atomic_load(&uring_mapping_pinned);
		if (idle && !idle_since)
			idle_since = t;
		if (idle_kick_op && started != idle_kick_op) {
			/* the op kicked while idle completed after the kick: a lost wakeup */
			if (now() - last_kick < 2.5)
				lost_wakeups++;
			idle_kick_op = 0;
		}
		if (opt_kick > 0 && started && idle && t - idle_since > opt_kick &&
		    op_age > opt_kick && t - last_kick >= 1) {
			/* Nothing references a page of the file any more, yet the op
			 * still waits. Its wait is interruptible and the syscall restarts
			 * after a signal: if it then completes at once, the wakeup it
			 * waited for was lost (a page that stays busy would block it
			 * again). */
			if (!idle_kick_op) {
				idle_kick_op = started;
				if (!slow_stack[0])
					read_stack(truncator_tid, slow_stack, sizeof(slow_stack));
			}
			kicks++;
			pthread_kill(truncator_thread, SIGUSR1);
			last_kick = t;
		}
		if (op_age > opt_stuck && atomic_load(&uring_mapping_pinned)) {
			/* a truncate waits on the long-term pin: drop the pin and see */
			truncate_blocked_s = op_age;
			atomic_store(&uring_mapping_pinned, 0);
			syscall(__NR_io_uring_register, uring.fd, IORING_UNREGISTER_BUFFERS, NULL, 0);
			fprintf(stderr, "truncate blocked %.1fs behind the registered mapping; "
				"unregistered\n", op_age);
		}
		if (t - last_report >= 1) {
			fprintf(stderr, "progress t=%.0fs direct_reads=%ld uring_reads=%ld "
				"truncates=%ld punches=%ld op_age=%.1fs\n", t - start, direct_st.reads,
				uring_st.reads, truncates, punches, op_age);
			last_report = t;
		}
		if (t - start >= opt_seconds)
			atomic_store(&stop, 1);
		if (atomic_load(&stop)) {
			if (atomic_load(&truncator_done))
				break;
			/* Stuck only when the op has had --stuck-after seconds with no
			 * page of F referenced any more (pinners stopped, buffers
			 * unregistered, kicks tried): an op that waits while pinners
			 * keep pinning and completes once they stop is a stall (its
			 * time shows in max_truncate_ms / max_punch_ms), not stuck.
			 * A cap covers pinners that never stop. */
			if ((idle && idle_since && t - idle_since > opt_stuck &&
			     op_age > opt_stuck) ||
			    op_age > opt_seconds + 4 * opt_stuck) {
				if (!slow_stack[0])
					read_stack(truncator_tid, slow_stack, sizeof(slow_stack));
				stuck = 1;
				break;
			}
		}
	}
	if (idle_kick_op && !stuck && now() - last_kick < 2.5)
		lost_wakeups++;   /* it completed right after the kick */
	double elapsed = now() - start;
	long bad = -1;
	int punch_ok = 0, final_done = 0;
	if (!stuck) {
		pthread_join(td, NULL);
		if (have_uring)
			pthread_join(tu, NULL);
		pthread_join(tt, NULL);
		final_verify(&bad, &punch_ok);
		final_done = 1;
	}
	int ok = !stuck && bad < 0 && punch_ok && !direct_st.mismatches && !uring_st.mismatches &&
		 !direct_st.errors && !uring_st.errors && !truncate_blocked_s && !lost_wakeups;
	printf("{\"mode\": \"dax\", \"file\": \"%s\", \"size\": %ld, \"chunk\": %ld, "
	       "\"seconds\": %.2f, \"statx_dax\": %s, ", opt_file, opt_size, opt_chunk, elapsed,
	       dax < 0 ? "null" : dax ? "true" : "false");
	print_stats("direct", &direct_st, 0);
	printf("\"uring_mapping\": \"%s\", ", uring_mapping);
	print_stats("uring", &uring_st, 0);
	printf("\"truncate\": {\"truncates\": %ld, \"punches\": %ld, \"max_truncate_ms\": %.1f, "
	       "\"max_punch_ms\": %.1f, \"stuck\": %s, \"longest_op_s\": %.1f, "
	       "\"blocked_by_registered_mapping_s\": %.1f, \"kicks\": %ld, "
	       "\"lost_wakeups\": %ld, \"slow_op_stack\": ",
	       truncates, punches, max_trunc_ms, max_punch_ms, stuck ? "true" : "false", stuck_s,
	       truncate_blocked_s, kicks, lost_wakeups);
	print_json_string(slow_stack);
	printf("}, ");
	printf("\"final\": {\"done\": %s, \"first_bad_offset\": %ld, \"punch_ok\": %s}, "
	       "\"ok\": %s}\n", final_done ? "true" : "false", bad, punch_ok ? "true" : "false",
	       ok ? "true" : "false");
	fflush(stdout);
	if (stuck)
		for (;;)
			pause();   /* keep the stuck state for lab's evidence; lab kills us */
	return ok ? 0 : 1;
}

/* ---- fsync loop ---- */
static void on_term(int sig)
{
	(void)sig;
	atomic_store(&stop, 1);
}

static int run_fsync(void)
{
	if (!opt_file) {
		fprintf(stderr, "fsync needs --file\n");
		return 64;
	}
	int fd = open(opt_file, O_RDWR);
	if (fd < 0)
		die("open %s", opt_file);
	struct stat st;
	fstat(fd, &st);
	long size = st.st_size >= 4096 ? st.st_size : 4096;
	struct sigaction sa = {.sa_handler = on_term};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	char buf[4096];
	long fsyncs = 0, writes = 0, errors = 0;
	double max_ms = 0, total_ms = 0, start = now(), last = start;
	char first_error[96] = "";
	for (long i = 0; !atomic_load(&stop) && now() - start < opt_seconds; i++) {
		if (opt_write) {
			long off = (i * 7 * 4096) % (size / 4096 * 4096);
			memset(buf, (int)(i & 0xff), sizeof(buf));
			if (pwrite(fd, buf, sizeof(buf), off) == (ssize_t)sizeof(buf))
				writes++;
		}
		double t0 = now();
		if (fsync(fd)) {
			if (!errors++)
				snprintf(first_error, sizeof(first_error), "fsync: %s", strerror(errno));
		}
		double ms = (now() - t0) * 1000;
		total_ms += ms;
		if (ms > max_ms)
			max_ms = ms;
		fsyncs++;
		if (now() - last >= 1) {
			fprintf(stderr, "progress fsyncs=%ld max_ms=%.1f\n", fsyncs, max_ms);
			last = now();
		}
		usleep(1000);
	}
	printf("{\"mode\": \"fsync\", \"file\": \"%s\", \"seconds\": %.2f, \"fsyncs\": %ld, "
	       "\"writes\": %ld, \"max_fsync_ms\": %.1f, \"avg_fsync_ms\": %.2f, \"errors\": %ld, "
	       "\"first_error\": \"%s\", \"ok\": %s}\n", opt_file, now() - start, fsyncs, writes,
	       max_ms, fsyncs ? total_ms / fsyncs : 0, errors, first_error,
	       errors ? "false" : "true");
	return errors ? 1 : 0;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: pinstress dax|fsync [options] (see the source)\n");
		return 64;
	}
	for (int i = 2; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define ARG(name) (!strcmp(a, name) && v && ++i)
		if (ARG("--file"))
			opt_file = v;
		else if (ARG("--dev"))
			opt_dev = v;
		else if (ARG("--dev-offset-mb"))
			opt_dev_off = atol(v) << 20;
		else if (ARG("--size-mb"))
			opt_size = atol(v) << 20;
		else if (ARG("--chunk-kb"))
			opt_chunk = atol(v) << 10;
		else if (ARG("--seconds"))
			opt_seconds = atof(v);
		else if (ARG("--stuck-after"))
			opt_stuck = atof(v);
		else if (ARG("--kick-after"))
			opt_kick = atof(v);
		else if (ARG("--interval-ms"))
			opt_interval_ms = atoi(v);
		else if (!strcmp(a, "--uring"))
			opt_uring = 1;
		else if (!strcmp(a, "--write"))
			opt_write = 1;
		else {
			fprintf(stderr, "unknown or incomplete argument: %s\n", a);
			return 64;
		}
	}
	if (opt_chunk < 4096 || opt_chunk % 4096 || opt_size < 2 * opt_chunk) {
		fprintf(stderr, "--chunk-kb must be a multiple of 4 and --size-mb at least two chunks\n");
		return 64;
	}
	if (!strcmp(argv[1], "dax"))
		return run_dax();
	if (!strcmp(argv[1], "fsync"))
		return run_fsync();
	fprintf(stderr, "unknown mode %s\n", argv[1]);
	return 64;
}
