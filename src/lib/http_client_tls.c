/*
 * http_client_tls.c: OpenSSL for the HTTP client: the client context (the
 * system store plus an optional CA file, TLS 1.2 at least) and one SSL per
 * attempt that verifies the chain and the host name or address. The first
 * verification error is kept on the request so the failure can name it.
 */
#include <pthread.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "http_client_int.h"

static pthread_once_t hc_once = PTHREAD_ONCE_INIT;
static int hc_ssl_idx = -1; /* SSL ex_data slot pointing back to the request */

static void hc_init_once(void)
{
	hc_ssl_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

const char *hc_tls_reason(unsigned long e, char *buf, size_t len)
{
	const char *r;

#ifdef ERR_SYSTEM_ERROR
	if (ERR_SYSTEM_ERROR(e))
		return strerror(ERR_GET_REASON(e));
#endif
	r = ERR_reason_error_string(e);
	if (r != NULL)
		return r;
	ERR_error_string_n(e, buf, len);
	return buf;
}

static int hc_verify_cb(int ok, X509_STORE_CTX *store)
{
	SSL *ssl;
	struct http_client_call *rq;

	if (ok || hc_ssl_idx < 0)
		return ok;
	ssl = X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx());
	rq = ssl != NULL ? SSL_get_ex_data(ssl, hc_ssl_idx) : NULL;
	if (rq != NULL && rq->verify_err == 0)
		rq->verify_err = X509_STORE_CTX_get_error(store);
	return ok;
}

SSL_CTX *hc_tls_ctx_new(const char *ca_file, char *err, size_t errlen)
{
	char buf[128];
	SSL_CTX *ctx;

	pthread_once(&hc_once, hc_init_once);
	ctx = SSL_CTX_new(TLS_client_method());
	if (ctx == NULL) {
		snprintf(err, errlen, "TLS: cannot create context: %s",
		         hc_tls_reason(ERR_peek_error(), buf, sizeof(buf)));
		ERR_clear_error();
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, hc_verify_cb);
#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF
	/*
	 * OpenSSL 3 reports a peer that closes without close_notify as a
	 * protocol error, which libevent 2.1 cannot tell from a dirty
	 * shutdown; evhttp still checks Content-Length and chunk framing.
	 */
	SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
#endif
	/* A machine without a system store still works with ca_file. */
	if (SSL_CTX_set_default_verify_paths(ctx) != 1)
		ERR_clear_error();
	if (ca_file != NULL && SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1) {
		/* The first error is the cause (open failed, no certificate, ...). */
		snprintf(err, errlen, "TLS: cannot load CA file %s: %s", ca_file,
		         hc_tls_reason(ERR_peek_error(), buf, sizeof(buf)));
		ERR_clear_error();
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

SSL *hc_tls_new(SSL_CTX *ctx, struct http_client_call *rq)
{
	SSL *ssl = SSL_new(ctx);

	if (ssl == NULL)
		return NULL;
	if (hc_ssl_idx >= 0)
		SSL_set_ex_data(ssl, hc_ssl_idx, rq);
	if (rq->insecure) {
		/* Asked for by the caller for one request: any certificate, any name. */
		SSL_set_verify(ssl, SSL_VERIFY_NONE, NULL);
		if (!rq->host_is_ip && SSL_set_tlsext_host_name(ssl, rq->host) != 1)
			goto fail;
		return ssl;
	}
	if (rq->host_is_ip) {
		/* RFC 6066: no SNI for address literals. */
		if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), rq->host) != 1)
			goto fail;
	} else {
		SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
		if (SSL_set_tlsext_host_name(ssl, rq->host) != 1 ||
		    SSL_set1_host(ssl, rq->host) != 1)
			goto fail;
	}
	return ssl;
fail:
	SSL_free(ssl);
	return NULL;
}
