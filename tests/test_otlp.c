// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* test_otlp.c - `kgate audit export --otlp`: batches posted to a collector
 * on a loopback address (a small OTLP/HTTP receiver built here with
 * libmicrohttpd, started and stopped by the test), with the receiver down,
 * answering 500, refusing for good; what was not delivered is counted and
 * recorded; a posted batch verifies against the trail, a tampered one not. */
#include "testlib.h"
#include "ship_fixture.h"
#include "record/tail.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>

/* ---- the receiver ---- */

static struct {
	struct MHD_Daemon *d;
	int port;
	pthread_mutex_t mu;
	int status;		/* what it answers */
	unsigned requests;	/* every POST, whatever it answered */
	json_t *accepted;	/* bodies answered 2xx */
} rx = { .mu = PTHREAD_MUTEX_INITIALIZER };

struct upload {
	char *buf;
	size_t len;
};

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
				  const char *method, const char *version, const char *data,
				  size_t *size, void **con_cls)
{
	struct upload *u = *con_cls;
	struct MHD_Response *resp;
	enum MHD_Result r;
	int status;

	(void)cls;
	(void)version;
	if (!u) {
		u = calloc(1, sizeof(*u));
		*con_cls = u;
		return MHD_YES;
	}
	if (*size) {
		char *nb = realloc(u->buf, u->len + *size + 1);

		if (!nb)
			return MHD_NO;
		u->buf = nb;
		memcpy(u->buf + u->len, data, *size);
		u->len += *size;
		u->buf[u->len] = '\0';
		*size = 0;
		return MHD_YES;
	}
	pthread_mutex_lock(&rx.mu);
	rx.requests++;
	status = rx.status;
	if (strcmp(method, "POST") || strcmp(url, "/v1/logs"))
		status = 404;
	if (status >= 200 && status < 300 && u->buf)
		json_array_append_new(rx.accepted, json_string(u->buf));
	pthread_mutex_unlock(&rx.mu);
	resp = MHD_create_response_from_buffer(2, (void *)"{}", MHD_RESPMEM_PERSISTENT);
	r = MHD_queue_response(c, (unsigned)status, resp);
	MHD_destroy_response(resp);
	return r;
}

static void on_done(void *cls, struct MHD_Connection *c, void **con_cls,
		    enum MHD_RequestTerminationCode toe)
{
	struct upload *u = *con_cls;

	(void)cls;
	(void)c;
	(void)toe;
	if (u) {
		free(u->buf);
		free(u);
	}
	*con_cls = NULL;
}

/* a loopback TCP socket on port (0 = any free one) */
static int bind_loopback(int port, int *out_port)
{
	struct sockaddr_in in = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	socklen_t len = sizeof(in);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

	inet_pton(AF_INET, "127.0.0.1", &in.sin_addr);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (fd < 0 || bind(fd, (struct sockaddr *)&in, sizeof(in))) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	getsockname(fd, (struct sockaddr *)&in, &len);
	*out_port = ntohs(in.sin_port);
	return fd;
}

static void rx_start(int port, int status)
{
	int fd = bind_loopback(port, &rx.port);

	if (fd < 0 || listen(fd, 64))
		SKIP("cannot listen on 127.0.0.1:%d", port);
	rx.status = status;
	if (!rx.accepted)
		rx.accepted = json_array();
	rx.d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL,
				on_request, NULL, MHD_OPTION_LISTEN_SOCKET, fd,
				MHD_OPTION_NOTIFY_COMPLETED, on_done, NULL, MHD_OPTION_END);
	if (!rx.d)
		SKIP("libmicrohttpd did not start");
	printf("  receiver on 127.0.0.1:%d answering %d\n", rx.port, status);
}

static void rx_stop(void)
{
	if (rx.d)
		MHD_stop_daemon(rx.d);	/* closes the listening socket */
	rx.d = NULL;
}

static void rx_set_status(int status)
{
	pthread_mutex_lock(&rx.mu);
	rx.status = status;
	pthread_mutex_unlock(&rx.mu);
	printf("  receiver now answers %d\n", status);
}

static unsigned rx_requests(void)
{
	unsigned n;

	pthread_mutex_lock(&rx.mu);
	n = rx.requests;
	pthread_mutex_unlock(&rx.mu);
	return n;
}

/* seqs of every log record the receiver accepted, in order of arrival */
static size_t rx_seqs(uint64_t *seqs, size_t max)
{
	size_t n = 0, i, j, k;
	json_t *b, *lr;

	pthread_mutex_lock(&rx.mu);
	json_array_foreach(rx.accepted, i, b) {
		json_t *req = json_loads(json_string_value(b), 0, NULL);
		json_t *logs = json_object_get(json_array_get(json_object_get(json_array_get(
			json_object_get(req, "resourceLogs"), 0), "scopeLogs"), 0), "logRecords");

		json_array_foreach(logs, j, lr) {
			json_t *kv;

			json_array_foreach(json_object_get(lr, "attributes"), k, kv)
				if (!strcmp(json_string_value(json_object_get(kv, "key")), "kgate.seq") &&
				    n < max)
					seqs[n++] = strtoull(json_string_value(json_object_get(
						json_object_get(kv, "value"), "intValue")), NULL, 10);
		}
		json_decref(req);
	}
	pthread_mutex_unlock(&rx.mu);
	return n;
}

static void rx_reset(void)
{
	rx_stop();
	json_decref(rx.accepted);
	rx.accepted = NULL;
	rx.requests = 0;
}

/* ---- helpers ---- */

static json_int_t stat_of(const char *stats, const char *key)
{
	char *s = sf_read(stats);
	json_t *o = json_loads(s, 0, NULL);
	json_int_t v = json_integer_value(json_object_get(o, key));

	json_decref(o);
	free(s);
	return v;
}

/* waits until cond() or timeout_ms; true if it held */
#define WAIT_UNTIL(cond, timeout_ms) ({					\
		uint64_t ___t0 = sf_now_ms();					\
		while (!(cond) && sf_now_ms() - ___t0 < (timeout_ms))		\
			usleep(20000);						\
		(cond); })

static void expect_each_once(uint64_t first, uint64_t last)
{
	static uint64_t seqs[20000];
	size_t n = rx_seqs(seqs, 20000), i, bad = 0;

	for (i = 0; i < n; i++)
		if (seqs[i] != first + i && !bad++)
			printf("  record %zu has seq %llu, expected %llu\n", i,
			       (unsigned long long)seqs[i], (unsigned long long)(first + i));
	ASSERT_EQ(bad, 0, "each record accepted once, in order");
	ASSERT_EQ(n, last - first + 1, "every record accepted");
}

static pid_t start_exporter(const char *stats, const char *posfile, const char *extra1,
			    const char *extra2)
{
	static char url[128], out[512], err[512];
	char *argv[] = { (char *)sf_kgate(), "audit", "export", "--otlp", url, "--dir", sf_trail,
			 "--batch", "100", "--batch-ms", "100", "--backoff-ms", "50,400",
			 "--timeout-ms", "2000", "--stats", (char *)stats,
			 "--position-file", (char *)posfile, (char *)extra1, (char *)extra2, NULL };

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1/logs", rx.port);
	sf_path(out, sizeof(out), "export.out");
	sf_path(err, sizeof(err), "export.err");
	return sf_spawn(argv, out, err);
}

static int stop_exporter(pid_t pid)
{
	char err[512], *e;
	int rc;

	kill(pid, SIGTERM);
	rc = sf_wait(pid);
	sf_path(err, sizeof(err), "export.err");
	e = sf_read(err);
	printf("%s", e);
	free(e);
	return rc;
}

static void append_n(unsigned long from, unsigned long n)
{
	struct kg_audit *a = sf_open(0);
	unsigned long i;

	for (i = from; i < from + n; i++)
		ASSERT_OK(sf_append(a, i), "append");
	kg_audit_close(a);
}

/* ---- tests ---- */

TEST(otlp_batches_reach_the_collector_with_their_seal)
{
	char stats[512], pos[512], body[512], bad[512], err[512];
	pid_t pid;

	sf_setup();
	sf_path(stats, sizeof(stats), "stats.json");
	sf_path(pos, sizeof(pos), "position");
	append_n(0, 1000);
	rx_start(0, 200);
	pid = start_exporter(stats, pos, "--from", "start");
	ASSERT_TRUE(WAIT_UNTIL(stat_of(stats, "delivered_records") >= 1000, 60000),
		    "1000 records delivered");
	append_n(1000, 50);	/* written while the exporter runs */
	ASSERT_TRUE(WAIT_UNTIL(stat_of(stats, "delivered_records") >= 1050, 30000),
		    "the new ones too");
	ASSERT_EQ(stop_exporter(pid), 0, "exporter exits 0 on SIGTERM");
	expect_each_once(1, 1050);
	ASSERT_EQ(stat_of(stats, "failed_attempts"), 0, "no failure");
	ASSERT_GE(stat_of(stats, "delivered_batches"), 11, "in batches of at most 100");
	{
		char *p = sf_read(pos);

		ASSERT_TRUE(!strncmp(p, "1050:", 5), "position file after the last delivered");
		free(p);
	}
	/* a posted request carries its seal and verifies */
	{
		FILE *f;

		sf_path(body, sizeof(body), "body.json");
		sf_path(bad, sizeof(bad), "bad.json");
		sf_path(err, sizeof(err), "verify.err");
		f = fopen(body, "w");
		fputs(json_string_value(json_array_get(rx.accepted, 3)), f);
		fclose(f);
		{
			char *argv[] = { (char *)sf_kgate(), "audit", "verify", "--batch", body, "--dir",
					 sf_trail, "--against-trail", NULL };

			ASSERT_EQ(sf_run(argv, err, err), 0, "a posted batch verifies against the trail");
		}
		{
			char *s = sf_read(body), *p = strstr(s, "secret-3");
			char *argv[] = { (char *)sf_kgate(), "audit", "verify", "--batch", bad, "--dir",
					 sf_trail, NULL };

			ASSERT_TRUE(p != NULL, "the batch holds record 304's target");
			if (p)
				p[7] = '9';
			f = fopen(bad, "w");
			fputs(s, f);
			fclose(f);
			free(s);
			ASSERT_EQ(sf_run(argv, err, err), 6, "a tampered posted batch: tampered");
		}
	}
	rx_reset();
	sf_teardown();
}

TEST(otlp_collector_down_then_500_then_up_nothing_lost)
{
	char stats[512], pos[512];
	int fd, port;
	pid_t pid;

	sf_setup();
	sf_path(stats, sizeof(stats), "stats.json");
	sf_path(pos, sizeof(pos), "position");
	append_n(0, 200);
	/* a free port nobody listens on: the collector is down */
	fd = bind_loopback(0, &port);
	close(fd);
	rx.port = port;
	pid = start_exporter(stats, pos, "--from", "start");
	ASSERT_TRUE(WAIT_UNTIL(stat_of(stats, "failed_attempts") >= 3, 20000),
		    "connection refused: retried with backoff");
	ASSERT_EQ(stat_of(stats, "delivered_records"), 0, "nothing delivered");
	ASSERT_EQ(stat_of(stats, "pending_records"), 100, "the batch waits (counted as pending)");
	ASSERT_EQ(stat_of(stats, "dropped_records"), 0, "nothing dropped");
	append_n(200, 100);	/* the trail is written meanwhile: nobody waits for the exporter */
	rx_start(port, 500);
	ASSERT_TRUE(WAIT_UNTIL(rx_requests() >= 3, 20000), "the collector answers 500: retried");
	ASSERT_EQ(stat_of(stats, "delivered_records"), 0, "nothing delivered on 500");
	ASSERT_EQ(stat_of(stats, "last_status"), 500, "the status is reported");
	rx_set_status(200);
	ASSERT_TRUE(WAIT_UNTIL(stat_of(stats, "delivered_records") >= 300, 30000),
		    "every record delivered once the collector is back");
	ASSERT_EQ(stop_exporter(pid), 0, "exits 0");
	expect_each_once(1, 300);
	ASSERT_GE(stat_of(stats, "failed_attempts"), 6, "the failures are counted");
	ASSERT_EQ(stat_of(stats, "dropped_records"), 0, "none dropped");
	rx_reset();
	sf_teardown();
}

struct losses {
	json_int_t lost, records;
};

static int count_loss_records(json_t *o, const char *line, size_t len, void *ctx)
{
	struct losses *l = ctx;

	(void)line;
	(void)len;
	if (!strcmp(json_string_value(json_object_get(o, "op")) ?: "", "otlp_export")) {
		l->lost += json_integer_value(json_object_get(json_object_get(json_object_get(o,
			"extra"), "counts"), "lost"));
		l->records++;
	}
	return 0;
}

TEST(otlp_undeliverable_batches_are_counted_and_recorded)
{
	char stats[512], pos[512];
	struct kg_audit_filter f = { .type = "events_lost" };
	struct kg_audit_qstats qs;
	struct losses l = { 0 };
	pid_t pid;

	sf_setup();
	sf_path(stats, sizeof(stats), "stats.json");
	sf_path(pos, sizeof(pos), "position");
	append_n(0, 150);
	rx_start(0, 500);
	pid = start_exporter(stats, pos, "--max-retries", "2");
	ASSERT_TRUE(WAIT_UNTIL(stat_of(stats, "dropped_records") >= 150, 30000),
		    "after 3 attempts each batch is dropped");
	ASSERT_GE(stat_of(stats, "dropped_batches"), 2, "two batches (100 + 50)");
	ASSERT_OK(kg_audit_query(sf_trail, &f, count_loss_records, &l, true, &qs), "query");
	/* 150, or 151 when the first loss record was read with the last 50 */
	ASSERT_TRUE(l.lost >= 150 && l.lost <= 152,
		    "the drops are recorded in the trail (events_lost, op otlp_export)");
	/* a collector that refuses for good (400): dropped at the first answer */
	rx_set_status(400);
	append_n(150, 10);
	ASSERT_TRUE(WAIT_UNTIL(stat_of(stats, "dropped_records") >= 150 + 10 + 2, 30000),
		    "the new records and the two loss records dropped at once");
	rx_set_status(200);
	append_n(160, 5);
	ASSERT_TRUE(WAIT_UNTIL(stat_of(stats, "delivered_records") >= 5, 30000),
		    "later records are delivered");
	ASSERT_EQ(stop_exporter(pid), 0, "exits 0");
	l = (struct losses){ 0 };
	ASSERT_OK(kg_audit_query(sf_trail, &f, count_loss_records, &l, true, &qs), "query");
	printf("  %lld loss records for %lld records\n", (long long)l.records, (long long)l.lost);
	ASSERT_TRUE(l.records >= 3 && l.records <= 4,
		    "one loss record per dropped batch of real records; a batch of loss records "
		    "only is not recorded again (no endless loop while the collector refuses)");
	{
		static uint64_t seqs[64];
		size_t n = rx_seqs(seqs, 64);

		/* the last loss record (for the 400 batch) and the five new ones */
		ASSERT_GE(n, 5, "delivered");
		ASSERT_EQ(seqs[n - 1], 1 + 150 + 2 + 10 + 1 + 5 - 1, "up to the last record");
	}
	rx_reset();
	sf_teardown();
}
