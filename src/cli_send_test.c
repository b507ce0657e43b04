/*
 * cli_send_test.c: `bayarhook send-test`, a correctly signed sample callback
 * shaped like bayar.gg's, sent to this config's own listener by default.
 * Useful after an install, and for checking a proxy in front.
 *
 * A genuine signed callback is replayable within the replay window: sent
 * anywhere but this config's own listener it is signed with a throw-away
 * secret (SPEC §13), unless --real-secret says the receiver is ours.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <strings.h>
#include <cjson/cJSON.h>
#include <event2/http.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "cli.h"
#include "config.h"
#include "event.h"
#include "http_client.h"
#include "verify.h"

/* The listener's own URL; a wildcard address is reached over loopback. */
static void own_url(const struct config *cfg, char *buf, size_t len)
{
	const char *host = cfg->listen.host;

	if (strcmp(host, "0.0.0.0") == 0 || strcmp(host, "*") == 0)
		host = "127.0.0.1";
	else if (strcmp(host, "::") == 0)
		host = "::1";
	if (strchr(host, ':'))
		snprintf(buf, len, "http://[%s]:%d%s", host, cfg->listen.port, cfg->callback_path);
	else
		snprintf(buf, len, "http://%s:%d%s", host, cfg->listen.port, cfg->callback_path);
}

static bool loopback_host(const char *h)
{
	return strncmp(h, "127.", 4) == 0 || strcmp(h, "::1") == 0 ||
	       strcasecmp(h, "localhost") == 0;
}

/*
 * Whether url reaches this config's listener: http, its port, and its
 * host (any loopback name for a loopback or wildcard listener).
 */
static bool own_listener(const struct config *cfg, const char *url)
{
	struct evhttp_uri *u = evhttp_uri_parse(url);
	const char *scheme, *host, *listen = cfg->listen.host;
	bool own = false;
	int port;

	if (u == NULL)
		return false;
	scheme = evhttp_uri_get_scheme(u);
	host = evhttp_uri_get_host(u);
	port = evhttp_uri_get_port(u);
	if (port < 0)
		port = 80;
	if (scheme != NULL && strcasecmp(scheme, "http") == 0 && host != NULL &&
	    port == cfg->listen.port) {
		/* evhttp keeps the brackets of an IPv6 literal. */
		char bare[256];
		size_t n = strlen(host);

		if (n >= 2 && host[0] == '[' && host[n - 1] == ']' && n - 2 < sizeof(bare)) {
			memcpy(bare, host + 1, n - 2);
			bare[n - 2] = '\0';
			host = bare;
		}
		own = strcasecmp(host, listen) == 0 ||
		      (loopback_host(host) &&
		       (loopback_host(listen) || strcmp(listen, "0.0.0.0") == 0 ||
		        strcmp(listen, "::") == 0 || strcmp(listen, "*") == 0));
	}
	evhttp_uri_free(u);
	return own;
}

static const struct option cli_send_test_options[] = {
    /* clang-format off */
    {"url", required_argument, NULL, 'u'},
    {"real-secret", no_argument, NULL, 'R'},
    {"invoice", required_argument, NULL, 'i'},
    {"status", required_argument, NULL, 's'},
    {"amount", required_argument, NULL, 'a'},
    {"resolve", required_argument, NULL, 'r'},
    {"cacert", required_argument, NULL, 'C'},
    {"insecure", no_argument, NULL, 'k'},
    {NULL, 0, NULL, 0},
    /* clang-format on */
};

static int cli_send_test_check(struct cli *cli)
{
	const char *amount = cli_opt(cli, 'a'), *status = cli_opt(cli, 's');

	if (amount != NULL) {
		char *end;

		if (strtoll(amount, &end, 10) < 0 || *end != '\0') {
			fprintf(stderr, "bayarhook: --amount must be a whole number\n");
			return 2;
		}
	}
	/* Only aiming at another URL needs them; the own listener is plain http. */
	if ((cli_opt(cli, 'r') || cli_opt(cli, 'C') || cli_opt(cli, 'k')) && !cli_opt(cli, 'u')) {
		fprintf(stderr, "bayarhook: --resolve, --cacert and --insecure go with --url\n");
		return 2;
	}
	if (cli_opt(cli, 'r') != NULL && strchr(cli_opt(cli, 'r'), ':') == NULL) {
		fprintf(stderr, "bayarhook: --resolve takes HOST:PORT:ADDR\n");
		return 2;
	}
	if (status != NULL && event_status_parse(status) == STATUS_UNKNOWN) {
		fprintf(stderr,
		        "bayarhook: --status must be pending, paid, expired or cancelled\n");
		return 2;
	}
	return 0;
}

static int cli_send_test(struct cli *cli)
{
	const struct config *cfg = cli->cfg;
	const char *url = cli_opt(cli, 'u'), *invoice = cli_opt(cli, 'i');
	const char *status = cli_opt(cli, 's') ? cli_opt(cli, 's') : "paid";
	long long amount = cli_opt(cli, 'a') ? strtoll(cli_opt(cli, 'a'), NULL, 10) : 10000;
	char urlbuf[512], invbuf[96], ts[32], sig[65], final[32], throwaway[65];
	const char *secret = cfg->secrets[0];
	struct http_client_resp_owned out;
	struct http_client_req req;
	cJSON *body = NULL;
	char *text = NULL;
	int rc = 1;
	time_t now = time(NULL);

	if (url == NULL) {
		own_url(cfg, urlbuf, sizeof(urlbuf));
		url = urlbuf;
	} else if (cli_opt(cli, 'R') == NULL && !own_listener(cfg, url)) {
		unsigned char rnd[32];

		if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
			fprintf(stderr,
			        "bayarhook: send-test: no random bytes for a throw-away secret\n");
			return 1;
		}
		for (size_t i = 0; i < sizeof(rnd); i++)
			snprintf(throwaway + 2 * i, 3, "%02x", rnd[i]);
		secret = throwaway;
		fprintf(stderr,
		        "bayarhook: send-test: %s is not this config's listener: signed with a "
		        "throw-away secret, so a genuine receiver answers 401 (--real-secret signs "
		        "with the webhook secret)\n",
		        url);
	}
	if (invoice == NULL) {
		srand((unsigned)now ^ (unsigned)getpid());
		snprintf(invbuf, sizeof(invbuf), "PAY-test-%lld-%06d", (long long)now,
		         rand() % 1000000);
		invoice = invbuf;
	}
	/* A unique code of 1..999 is what bayar.gg adds to make amounts distinct. */
	snprintf(final, sizeof(final), "%lld", amount + 123);
	snprintf(ts, sizeof(ts), "%lld", (long long)now);
	verify_sign(secret, invoice, status, final, ts, sig);
	OPENSSL_cleanse(throwaway, sizeof(throwaway));

	body = cJSON_CreateObject();
	{
		char ev[48];

		snprintf(ev, sizeof(ev), "payment.%s", status);
		cJSON_AddStringToObject(body, "event", ev);
	}
	cJSON_AddStringToObject(body, "invoice_id", invoice);
	cJSON_AddStringToObject(body, "status", status);
	cJSON_AddNumberToObject(body, "amount", (double)amount);
	cJSON_AddNumberToObject(body, "final_amount", (double)(amount + 123));
	cJSON_AddNumberToObject(body, "unique_code", 123);
	if (strcmp(status, "paid") == 0) {
		char paid_at[32];
		time_t wib = now + 7 * 3600;
		struct tm tm;

		gmtime_r(&wib, &tm);
		strftime(paid_at, sizeof(paid_at), "%Y-%m-%d %H:%M:%S", &tm);
		cJSON_AddStringToObject(body, "paid_at", paid_at);
		cJSON_AddNumberToObject(body, "paid_amount", (double)(amount + 123));
		cJSON_AddStringToObject(body, "paid_reff_num", "TEST-REFF");
	}
	cJSON_AddStringToObject(body, "customer_name", "bayarhook send-test");
	cJSON_AddStringToObject(body, "customer_email", "test@example.invalid");
	cJSON_AddStringToObject(body, "description", "bayarhook send-test");
	cJSON_AddNumberToObject(body, "timestamp", (double)now);
	cJSON_AddStringToObject(body, "signature", sig);
	text = cJSON_PrintUnformatted(body);
	{
		char ev[48];
		const char *headers[] = {"Content-Type",
		                         "application/json",
		                         "X-Webhook-Event",
		                         ev,
		                         "X-Webhook-Signature",
		                         sig,
		                         "X-Webhook-Timestamp",
		                         ts,
		                         "X-Invoice-ID",
		                         invoice,
		                         "User-Agent",
		                         "bayarhook-send-test/" BAYARHOOK_VERSION,
		                         NULL};

		snprintf(ev, sizeof(ev), "payment.%s", status);
		memset(&req, 0, sizeof(req));
		req.method = "POST";
		req.url = url;
		req.headers = headers;
		req.body = text;
		req.body_len = text ? strlen(text) : 0;
		req.timeout_sec = 10;
		req.resolve = cli_opt(cli, 'r');
		req.insecure = cli_opt(cli, 'k') != NULL;
		if (http_client_fetch(&req, cli_opt(cli, 'C'), &out) < 0 || out.resp.status == 0) {
			fprintf(stderr, "bayarhook: send-test to %s failed: %s\n", url,
			        out.resp.error ? out.resp.error : "unknown error");
			http_client_resp_owned_free(&out);
			goto out;
		}
	}
	printf("POST %s invoice=%s status=%s final_amount=%s\n", url, invoice, status, final);
	printf("HTTP %d %.*s\n", out.resp.status, (int)out.resp.body_len, out.resp.body);
	rc = out.resp.status == 200 ? 0 : 1;
	if (rc)
		fprintf(stderr, "bayarhook: send-test: answered HTTP %d\n", out.resp.status);
	http_client_resp_owned_free(&out);
out:
	free(text);
	cJSON_Delete(body);
	return rc;
}

const struct cli_command cli_cmd_send_test = {
    .name = "send-test",
    .args = "[--url URL [--real-secret] [--resolve HOST:PORT:ADDR] [--cacert FILE] "
            "[--insecure]] [--invoice ID] [--status S] [--amount N]",
    .help = "send a correctly signed sample callback",
    .config = true,
    .secrets = true, /* it signs with the current webhook secret */
    .shortopts = "",
    .longopts = cli_send_test_options,
    .check = cli_send_test_check,
    .run = cli_send_test,
};
