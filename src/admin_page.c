/*
 * admin_page.c: the status page's HTML, made on the server from the
 * summary (admin_summary.c) for a shop owner on a phone: one headline that
 * answers "did every paid order get delivered?", then what needs a hand
 * (dead jobs with a Retry button, held jobs, flagged payments), then
 * today's numbers. Inline CSS, no script, nothing fetched from elsewhere.
 * Every value from the database goes through html_text().
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "admin_int.h"
#include "xmalloc.h"

static const char admin_css[] =
    "*{box-sizing:border-box}"
    "body{margin:0;font:16px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;"
    "background:#f2f3f5;color:#1d2330}"
    ".head{padding:22px 16px 18px;color:#fff}"
    ".head div{max-width:760px;margin:0 auto}"
    ".good{background:#1b7a36}.bad{background:#b3261e}.unknown{background:#55595f}"
    ".head h1{margin:0;font-size:1.75em;line-height:1.2}"
    ".head p{margin:8px 0 0;font-size:1.05em}"
    "main{max-width:760px;margin:0 auto;padding:4px 10px 24px}"
    "section{background:#fff;border-radius:10px;margin:12px 0;padding:12px 14px;"
    "box-shadow:0 1px 2px rgba(0,0,0,.1)}"
    "h2{font-size:1.1em;margin:0 0 8px}"
    ".note{background:#e7f0fe;border-left:4px solid #1a56db}"
    ".tiles{display:grid;grid-template-columns:repeat(auto-fit,minmax(140px,1fr));gap:8px}"
    ".tile{background:#f2f3f5;border-radius:8px;padding:8px 10px}"
    ".tile b{display:block;font-size:1.8em;line-height:1.1}"
    ".tile.red{background:#fbe9e7;color:#8c1d18}.tile.green{background:#e6f4ea;color:#135c28}"
    ".card{border-top:1px solid #e3e5e8;padding:10px 0}"
    ".card:first-of-type{border-top:0;padding-top:0}"
    ".inv{font-weight:700;font-size:1.1em;overflow-wrap:anywhere}"
    ".badge{font-size:.8em;font-weight:700;background:#fdecc8;color:#7a4b00;border-radius:4px;"
    "padding:1px 6px;white-space:nowrap}"
    ".err{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.88em;background:#fbe9e7;"
    "padding:6px 8px;border-radius:6px;margin:6px 0;white-space:pre-wrap;word-break:break-word}"
    "button{font:inherit;font-weight:700;background:#1a56db;color:#fff;border:0;"
    "border-radius:8px;padding:10px 20px;min-height:44px;margin-top:4px}"
    "table{border-collapse:collapse;width:100%}"
    "td{padding:5px 4px;border-bottom:1px solid #eceef0}td.n{text-align:right;font-weight:700}"
    ".muted{color:#5f6368;font-size:.9em}"
    "footer{max-width:760px;margin:0 auto;padding:0 14px 28px;color:#5f6368;font-size:.9em}";

/* Text into HTML: every character that could end an element or attribute is escaped. */
static void html_text(FILE *out, const char *s)
{
	for (; s != NULL && *s != '\0'; s++) {
		switch (*s) {
		case '&':
			fputs("&amp;", out);
			break;
		case '<':
			fputs("&lt;", out);
			break;
		case '>':
			fputs("&gt;", out);
			break;
		case '"':
			fputs("&quot;", out);
			break;
		case '\'':
			fputs("&#39;", out);
			break;
		default:
			fputc(*s, out);
		}
	}
}

static const char *str_of(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static long long num_of(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	return cJSON_IsNumber(v) ? (long long)v->valuedouble : 0;
}

static const char *plural(long long n)
{
	return n == 1 ? "" : "s";
}

void admin_mac_hex(const unsigned char *key, size_t keylen, const char *data,
                   char out[ADMIN_CSRF_LEN + 1])
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;

	if (HMAC(EVP_sha256(), key, (int)keylen, (const unsigned char *)data, strlen(data), mac,
	         &maclen) == NULL ||
	    maclen * 2 != ADMIN_CSRF_LEN)
		abort(); /* SHA-256 is always there; nothing sensible to answer without it */
	for (unsigned i = 0; i < maclen; i++)
		snprintf(out + 2 * i, 3, "%02x", mac[i]);
}

void admin_csrf_token(const unsigned char *key, size_t keylen, const char *job_id,
                      char out[ADMIN_CSRF_LEN + 1])
{
	char msg[48];

	snprintf(msg, sizeof(msg), "retry %s", job_id); /* job ids: at most 19 digits */
	admin_mac_hex(key, keylen, msg, out);
}

/* Words a shop owner reads for each verdict (verdict.c's names), and job states. */
static const char *const verdict_words[][2] = {
    {"accepted", "Accepted"},
    {"duplicate", "Duplicate (already had it)"},
    {"out_of_order", "Out of order (ignored)"},
    {"bad_signature", "Bad signature (refused)"},
    {"stale_timestamp", "Too old (refused)"},
    {"malformed", "Malformed (refused)"},
    {"forbidden", "Not allowed (refused)"},
    {"too_large", "Too large (refused)"},
    {"unsigned", "Unsigned (checked with bayar.gg)"},
    {"pending", "Waiting to run"},
    {"running", "Running"},
    {"held", "Held"},
    {"succeeded", "Done"},
    {"dead", "Failed (gave up)"},
    {"cancelled", "Cancelled"},
};

static const char *words_for(const char *name)
{
	for (size_t i = 0; i < sizeof(verdict_words) / sizeof(verdict_words[0]); i++)
		if (strcmp(verdict_words[i][0], name) == 0)
			return verdict_words[i][1];
	return name;
}

static void page_headline(FILE *out, const struct admin_summary *s)
{
	const cJSON *paid =
	    s->data ? cJSON_GetObjectItemCaseSensitive(s->data, "paid_today") : NULL;
	long long need = s->data ? num_of(s->data, "orders_needing_attention") : 0;
	long long npaid = num_of(paid, "paid"), moving = num_of(paid, "in_progress");

	if (!s->db_up) {
		fputs("<header class='head unknown'><div><h1>Cannot check orders right now</h1><p>"
		      "The database is not answering (",
		      out);
		html_text(out, s->why);
		fputs("). Payments are not lost: bayar.gg sends its callbacks again, and bayarhook "
		      "catches up when the database is back.</p></div></header>",
		      out);
		return;
	}
	if (need > 0) {
		long long dead = num_of(s->data, "orders_not_delivered");
		long long flagged = num_of(s->data, "flagged_today");

		fprintf(out,
		        "<header class='head bad'><div><h1>%lld order%s need%s attention</h1><p>",
		        need, plural(need), need == 1 ? "s" : "");
		if (dead > 0)
			fprintf(
			    out,
			    "%lld paid order%s %s not delivered: fix the cause shown below, then "
			    "press Retry delivery. ",
			    dead, plural(dead), dead == 1 ? "was" : "were");
		if (flagged > 0)
			fprintf(out, "%lld payment%s flagged today: check %s below.", flagged,
			        flagged == 1 ? " was" : "s were", flagged == 1 ? "it" : "them");
		fputs("</p></div></header>", out);
		return;
	}
	fputs("<header class='head good'><div><h1>All paid orders delivered</h1><p>", out);
	if (npaid == 0)
		fputs("No payments yet today.", out);
	else if (moving > 0)
		fprintf(out, "%lld paid today; %lld being delivered right now.", npaid, moving);
	else
		fprintf(out, "%lld paid today, every one delivered.", npaid);
	fputs("</p></div></header>", out);
}

static void page_tile(FILE *out, const char *cls, long long n, const char *what)
{
	fprintf(out, "<div class='tile%s'><b>%lld</b>%s</div>", cls, n, what);
}

static void page_today(FILE *out, const cJSON *d)
{
	const cJSON *paid = cJSON_GetObjectItemCaseSensitive(d, "paid_today");
	long long failed = num_of(paid, "failed");

	fputs("<section><h2>Today</h2><div class='tiles'>", out);
	page_tile(out, "", num_of(paid, "paid"), "paid");
	page_tile(out, " green", num_of(paid, "fulfilled"), "delivered");
	page_tile(out, "", num_of(paid, "in_progress"), "being delivered");
	page_tile(out, failed > 0 ? " red" : "", failed, "not delivered");
	fputs("</div><p class='muted'>Since ", out);
	html_text(out, str_of(d, "today_since"));
	fputs(" (", out);
	html_text(out, str_of(d, "time_zone"));
	fputs(")</p></section>", out);
}

static void page_dead(FILE *out, const cJSON *d, const unsigned char *key, size_t keylen)
{
	const cJSON *list = cJSON_GetObjectItemCaseSensitive(d, "dead_jobs"), *j;
	const cJSON *jobs = cJSON_GetObjectItemCaseSensitive(d, "jobs");
	long long total = num_of(jobs, "dead");
	char csrf[ADMIN_CSRF_LEN + 1], id[24];

	if (total == 0)
		return;
	fprintf(out, "<section id='dead'><h2>Not delivered (%lld)</h2>", total);
	cJSON_ArrayForEach(j, list)
	{
		snprintf(id, sizeof(id), "%lld", num_of(j, "id"));
		admin_csrf_token(key, keylen, id, csrf);
		fputs("<div class='card'><div class='inv'>", out);
		html_text(out, str_of(j, "invoice_id"));
		fputs("</div><div class='muted'>Action <b>", out);
		html_text(out, str_of(j, "action"));
		fprintf(out, "</b> · job %s · %lld attempt%s · last tried ", id,
		        num_of(j, "attempts"), plural(num_of(j, "attempts")));
		html_text(out, str_of(j, "failed_at"));
		fputs("</div><div class='err'>", out);
		html_text(out,
		          str_of(j, "last_error") ? str_of(j, "last_error") : "(no error text)");
		fprintf(out,
		        "</div><form method='post' action='/jobs/%s/retry'>"
		        "<input type='hidden' name='csrf' value='%s'>"
		        "<button type='submit'>Retry delivery</button></form></div>",
		        id, csrf);
	}
	if (total > cJSON_GetArraySize(list))
		fprintf(
		    out,
		    "<p class='muted'>and %lld more: <code>bayarhook jobs --state dead</code></p>",
		    total - cJSON_GetArraySize(list));
	fputs("</section>", out);
}

static void page_held(FILE *out, const cJSON *d)
{
	const cJSON *list = cJSON_GetObjectItemCaseSensitive(d, "held_jobs"), *j;
	long long total = num_of(cJSON_GetObjectItemCaseSensitive(d, "jobs"), "held");

	if (total == 0)
		return;
	fprintf(out, "<section id='held'><h2>Waiting (%lld)</h2>", total);
	cJSON_ArrayForEach(j, list)
	{
		const char *why = str_of(j, "held_reason");

		fputs("<div class='card'><div class='inv'>", out);
		html_text(out, str_of(j, "invoice_id"));
		fputs("</div><div class='muted'>Action <b>", out);
		html_text(out, str_of(j, "action"));
		fprintf(out, "</b> · job %lld · since ", num_of(j, "id"));
		html_text(out, str_of(j, "created_at"));
		fputs("</div><div>", out);
		if (why != NULL && strcmp(why, "after") == 0) {
			fputs("Waits for action <b>", out);
			html_text(out, str_of(j, "after_action"));
			fputs("</b> to succeed first.", out);
		} else if (why != NULL && strcmp(why, "action_removed") == 0) {
			fputs("Its action is no longer in the config.", out);
		} else {
			fputs("Waits for bayar.gg to confirm the payment.", out);
		}
		fputs("</div></div>", out);
	}
	fputs("</section>", out);
}

static void page_flagged(FILE *out, const cJSON *d)
{
	const cJSON *list = cJSON_GetObjectItemCaseSensitive(d, "flagged_payments"), *p;
	long long total = num_of(d, "flagged_total");

	if (total == 0)
		return;
	fprintf(out,
	        "<section id='flagged'><h2>Flagged payments (%lld)</h2><p class='muted'>Recorded, "
	        "but something about them was odd: check each in your bayar.gg dashboard before "
	        "you ship or refund.</p>",
	        total);
	cJSON_ArrayForEach(p, list)
	{
		fputs("<div class='card'><div class='inv'>", out);
		html_text(out, str_of(p, "invoice_id"));
		if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, "today")))
			fputs(" <span class='badge'>today</span>", out);
		fputs("</div><div class='muted'>", out);
		html_text(out, str_of(p, "status"));
		fputs(" · Rp ", out);
		html_text(out, str_of(p, "amount") ? str_of(p, "amount") : "?");
		fputs(" · ", out);
		html_text(out, str_of(p, "updated_at"));
		fputs("</div><div class='err'>", out);
		html_text(out, str_of(p, "flag_reason"));
		fputs("</div></div>", out);
	}
	fputs("</section>", out);
}

/* A table of name → count (callbacks by verdict, jobs by state). */
static void page_counts(FILE *out, const char *id, const char *title, const cJSON *obj,
                        const char *empty)
{
	const cJSON *it;

	fprintf(out, "<section id='%s'><h2>%s</h2>", id, title);
	if (cJSON_GetArraySize(obj) == 0) {
		fprintf(out, "<p class='muted'>%s</p></section>", empty);
		return;
	}
	fputs("<table>", out);
	cJSON_ArrayForEach(it, obj)
	{
		fputs("<tr><td>", out);
		html_text(out, words_for(it->string));
		fputs(" <span class='muted'>", out);
		html_text(out, it->string);
		fprintf(out, "</span></td><td class='n'>%lld</td></tr>",
		        (long long)it->valuedouble);
	}
	fputs("</table></section>", out);
}

static void page_reconcile(FILE *out, const cJSON *d)
{
	const cJSON *r = cJSON_GetObjectItemCaseSensitive(d, "last_reconcile");

	fputs("<section id='reconcile'><h2>Last check with bayar.gg</h2>", out);
	if (!cJSON_IsObject(r)) {
		fputs("<p class='muted'>No reconcile pass yet.</p></section>", out);
		return;
	}
	fputs("<p>", out);
	html_text(out, str_of(r, "result"));
	fputs(", started ", out);
	html_text(out, str_of(r, "started_at"));
	fprintf(out, ": %lld invoice%s checked, %lld payment%s found, %lld error%s.",
	        num_of(r, "checked"), plural(num_of(r, "checked")), num_of(r, "found"),
	        plural(num_of(r, "found")), num_of(r, "errors"), plural(num_of(r, "errors")));
	if (str_of(r, "note") != NULL) {
		fputs(" <span class='muted'>", out);
		html_text(out, str_of(r, "note"));
		fputs("</span>", out);
	}
	fputs("</p></section>", out);
}

char *admin_page_render(const struct admin_summary *s, const unsigned char *key, size_t keylen,
                        const char *notice, size_t *len)
{
	char *buf = NULL;
	const cJSON *d = s->data;
	FILE *out = open_memstream(&buf, len);

	if (out == NULL)
		abort(); /* out of memory: as xmalloc */
	fputs("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
	      "<meta name='viewport' content='width=device-width,initial-scale=1'>"
	      "<meta http-equiv='refresh' content='60;url=/'>"
	      "<title>bayarhook status</title><style>",
	      out);
	fputs(admin_css, out);
	fputs("</style></head><body>", out);
	page_headline(out, s);
	fputs("<main>", out);
	if (notice != NULL) {
		fputs("<section class='note'>", out);
		html_text(out, notice);
		fputs("</section>", out);
	}
	if (s->db_up && d != NULL) {
		page_dead(out, d, key, keylen);
		page_held(out, d);
		page_flagged(out, d);
		page_today(out, d);
		page_counts(out, "callbacks", "Callbacks today",
		            cJSON_GetObjectItemCaseSensitive(d, "callbacks_today"),
		            "None received today.");
		page_counts(out, "jobs", "Deliveries (jobs)",
		            cJSON_GetObjectItemCaseSensitive(d, "jobs"), "No jobs yet.");
		page_reconcile(out, d);
	}
	fputs("</main><footer>Database <b>", out);
	fputs(s->db_up ? "up" : "down", out);
	fputs("</b>", out);
	if (d != NULL) {
		fputs(" · updated ", out);
		html_text(out, str_of(d, "now"));
		fputs(" (", out);
		html_text(out, str_of(d, "time_zone"));
		fputs(")", out);
	}
	fputs(
	    " · <a href='/'>Refresh</a> · <a href='/api/summary'>JSON</a></footer></body></html>\n",
	    out);
	if (fclose(out) != 0)
		abort();
	return buf;
}
