/* curl_floor.c - the bare libcurl floor that rest2mqtt's polling path is compared with
 * (DESIGN.md 2b): a minimal libcurl multi client that fetches PREFIX1.json ..
 * PREFIXN.json round-robin with CONCURRENCY easy handles (default 16), reusing the
 * handles (and so their connections), discarding the bodies, for SECONDS seconds.
 *
 *   curl_floor URL_PREFIX N SECONDS [CONCURRENCY [RATE]]   (URL_PREFIX: http://127.0.0.1:P/n/)
 *
 * RATE (requests/s, default 0 = as fast as possible) paces the starts evenly, to see what
 * the floor costs when it is woken up for each request instead of running saturated.
 *
 * No parsing, no headers of its own, no allocation per request: the cheapest a C program
 * can poll with libcurl. bench/compare/run reads its CPU time from /proc/PID/stat and
 * counts its requests in nginx's access log, exactly as it does for rest2mqtt; the line
 * printed at the end (own counters, getrusage) is a cross-check. */
#define _GNU_SOURCE
#include <curl/curl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

#define MAX_CONC 1024

static size_t discard(char *p, size_t size, size_t nmemb, void *userp)
{
    (void)p;
    (void)userp;
    return size * nmemb;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void set_url(CURL *e, const char *base, long i)
{
    char url[2048];
    snprintf(url, sizeof url, "%s%ld.json", base, i);
    curl_easy_setopt(e, CURLOPT_URL, url); /* libcurl copies the string */
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s URL_PREFIX N SECONDS [CONCURRENCY]\n", argv[0]);
        return 1;
    }
    const char *base = argv[1];
    long n = atol(argv[2]);
    double secs = atof(argv[3]);
    int conc = argc > 4 ? atoi(argv[4]) : 16;
    double rate = argc > 5 ? atof(argv[5]) : 0;
    if (n < 1 || secs <= 0 || conc < 1 || conc > MAX_CONC) {
        fprintf(stderr, "curl_floor: bad arguments\n");
        return 1;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return 2;
    CURLM *m = curl_multi_init();
    static CURL *h[MAX_CONC];
    long next = 0;
    static CURL *idle[MAX_CONC];
    int n_idle = 0;
    for (int i = 0; i < conc; i++) {
        h[i] = curl_easy_init();
        if (!h[i])
            return 2;
        curl_easy_setopt(h[i], CURLOPT_WRITEFUNCTION, discard);
        curl_easy_setopt(h[i], CURLOPT_NOSIGNAL, 1L);
        if (rate > 0) {
            idle[n_idle++] = h[i];
            continue;
        }
        set_url(h[i], base, next++ % n + 1);
        curl_multi_add_handle(m, h[i]);
    }
    double start = now_s(), end = start + secs;
    unsigned long long ok = 0, failed = 0, started = 0;
    int running = 1, stopping = 0;
    while (running || !stopping || (rate > 0 && n_idle < conc)) {
        /* paced mode: start what is due, if a handle is free */
        double t = now_s();
        while (rate > 0 && !stopping && n_idle > 0 && (double)started < (t - start) * rate) {
            CURL *e = idle[--n_idle];
            set_url(e, base, next++ % n + 1);
            curl_multi_add_handle(m, e);
            started++;
        }
        curl_multi_perform(m, &running);
        CURLMsg *msg;
        int left;
        int restarted = 0;
        while ((msg = curl_multi_info_read(m, &left))) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            CURL *e = msg->easy_handle;
            long status = 0;
            curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
            if (msg->data.result == CURLE_OK && status == 200)
                ok++;
            else
                failed++;
            curl_multi_remove_handle(m, e);
            if (rate > 0) {
                idle[n_idle++] = e;
            } else if (!stopping) {
                set_url(e, base, next++ % n + 1);
                curl_multi_add_handle(m, e);
                restarted = 1;
            }
        }
        if (!stopping && now_s() >= end)
            stopping = 1;
        if (restarted)
            continue; /* let curl_multi_perform start the re-added handles at once */
        int wait_ms = 1000;
        if (rate > 0 && !stopping) {
            double due = start + (double)(started + 1) / rate - now_s();
            wait_ms = due <= 0 ? 0 : (int)(due * 1000) + 1;
            if (wait_ms > 1000)
                wait_ms = 1000;
        }
        if (running || (rate > 0 && !stopping))
            curl_multi_poll(m, NULL, 0, wait_ms, NULL);
        else if (stopping)
            break;
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                 (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    printf("curl_floor: %llu ok, %llu failed, %.3f s CPU, %.2f us CPU/request (whole run, "
           "getrusage)\n",
           ok, failed, cpu, ok ? cpu * 1e6 / (double)ok : 0.0);
    for (int i = 0; i < conc; i++)
        curl_easy_cleanup(h[i]);
    curl_multi_cleanup(m);
    curl_global_cleanup();
    return failed ? 3 : 0;
}
