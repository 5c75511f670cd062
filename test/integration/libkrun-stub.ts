/**
 * The ABI-level stand-in for libkrun shared by the libkrun integration tests
 * (libkrun-abi.test.ts, libkrun-adopt.test.ts): C source of a stub library
 * exporting the `krun_*` symbols with the signatures of libkrun's
 * include/libkrun.h, and its compiler. It is NOT libkrun: no VM ever runs;
 * every call is logged to `<dir>/calls.log`, behaviour comes from
 * `<dir>/behaviour` (see the comments in the source), and its
 * `krun_start_enter` can play a guest on the vsock-mapped Unix socket.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";

/** C source of the stub; `STUB_DIR` (its log and behaviour directory) is defined at compile time. */
export const STUB_C = String.raw`
#include <stdint.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <poll.h>
#include <signal.h>
#include <time.h>

static char vsock_path[4096];

static FILE *logf_(void) { return fopen(STUB_DIR "/calls.log", "a"); }

/* Behaviour lines: "fail <fn> <rc>", "start exit <code>", "start return <rc>", "start guest". */
static int fail_rc(const char *fn) {
  FILE *f = fopen(STUB_DIR "/behaviour", "r");
  char a[64], b[128]; int rc;
  int out = 0;
  if (!f) return 0;
  while (fscanf(f, "%63s %127s %d", a, b, &rc) == 3) if (!strcmp(a, "fail") && !strcmp(b, fn)) out = rc;
  fclose(f);
  return out;
}

static void put_str(FILE *f, const char *key, const char *s) {
  if (!s) { fprintf(f, " %s=null", key); return; }
  fprintf(f, " %s=s%zu:", key, strlen(s));
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) fprintf(f, "%02x", *p);
}

static void put_arr(FILE *f, const char *key, const char *const arr[]) {
  if (!arr) { fprintf(f, " %s=null", key); return; }
  size_t n = 0;
  while (n < 4096 && arr[n]) n++;
  if (n == 4096) { fprintf(f, " %s=unterminated", key); return; }
  fprintf(f, " %s=a%zu:", key, n);
  for (size_t i = 0; i < n; i++) {
    if (i) fputc(',', f);
    for (const unsigned char *p = (const unsigned char *)arr[i]; *p; p++) fprintf(f, "%02x", *p);
  }
}

#define BEGIN(fn) FILE *f = logf_(); fprintf(f, "%s", fn)
#define END(fn) fputc('\n', f); fclose(f); return fail_rc(fn)

int32_t krun_set_log_level(uint32_t level) { BEGIN("krun_set_log_level"); fprintf(f, " level=%u", level); END("krun_set_log_level"); }
int32_t krun_create_ctx() { FILE *f = logf_(); fprintf(f, "krun_create_ctx\n"); fclose(f); int rc = fail_rc("krun_create_ctx"); return rc ? rc : 7; }
int32_t krun_free_ctx(uint32_t ctx_id) { BEGIN("krun_free_ctx"); fprintf(f, " ctx=%u", ctx_id); END("krun_free_ctx"); }
int32_t krun_set_vm_config(uint32_t ctx_id, uint8_t num_vcpus, uint32_t ram_mib) { BEGIN("krun_set_vm_config"); fprintf(f, " ctx=%u vcpus=%u ram=%u", ctx_id, (unsigned)num_vcpus, ram_mib); END("krun_set_vm_config"); }
int32_t krun_set_root(uint32_t ctx_id, const char *root_path) { BEGIN("krun_set_root"); fprintf(f, " ctx=%u", ctx_id); put_str(f, "path", root_path); END("krun_set_root"); }
int32_t krun_add_disk(uint32_t ctx_id, const char *block_id, const char *disk_path, bool read_only) { BEGIN("krun_add_disk"); fprintf(f, " ctx=%u", ctx_id); put_str(f, "id", block_id); put_str(f, "path", disk_path); fprintf(f, " ro=%d", read_only ? 1 : 0); END("krun_add_disk"); }
int32_t krun_add_virtiofs(uint32_t ctx_id, const char *c_tag, const char *c_path) { BEGIN("krun_add_virtiofs"); fprintf(f, " ctx=%u", ctx_id); put_str(f, "tag", c_tag); put_str(f, "path", c_path); END("krun_add_virtiofs"); }
int32_t krun_set_exec(uint32_t ctx_id, const char *exec_path, const char *const argv[], const char *const envp[]) { BEGIN("krun_set_exec"); fprintf(f, " ctx=%u", ctx_id); put_str(f, "path", exec_path); put_arr(f, "argv", argv); put_arr(f, "envp", envp); END("krun_set_exec"); }
int32_t krun_set_env(uint32_t ctx_id, const char *const envp[]) { BEGIN("krun_set_env"); fprintf(f, " ctx=%u", ctx_id); put_arr(f, "envp", envp); END("krun_set_env"); }
int32_t krun_set_workdir(uint32_t ctx_id, const char *workdir_path) { BEGIN("krun_set_workdir"); fprintf(f, " ctx=%u", ctx_id); put_str(f, "path", workdir_path); END("krun_set_workdir"); }
int32_t krun_add_vsock_port(uint32_t ctx_id, uint32_t port, const char *c_filepath) { BEGIN("krun_add_vsock_port"); fprintf(f, " ctx=%u port=%u", ctx_id, port); put_str(f, "path", c_filepath); snprintf(vsock_path, sizeof vsock_path, "%s", c_filepath); END("krun_add_vsock_port"); }
#ifndef OMIT_PORT_MAP
int32_t krun_set_port_map(uint32_t ctx_id, const char *const port_map[]) { BEGIN("krun_set_port_map"); fprintf(f, " ctx=%u", ctx_id); put_arr(f, "map", port_map); END("krun_set_port_map"); }
#endif
int32_t krun_set_console_output(uint32_t ctx_id, const char *c_filepath) { BEGIN("krun_set_console_output"); fprintf(f, " ctx=%u", ctx_id); put_str(f, "path", c_filepath); END("krun_set_console_output"); }
int32_t krun_has_feature(uint64_t feature) { FILE *f = logf_(); fprintf(f, "krun_has_feature feature=%llu\n", (unsigned long long)feature); fclose(f); return feature == 1 ? 1 : 0; }
int32_t krun_get_max_vcpus(void) { return 16; }

#define RING_MAX 20000
/* Seqs 1..produced were emitted; the guest keeps them all (the harness's replay ring, never acknowledged here). */
static int produced = 0;

static int guest_connect(void) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un sa; memset(&sa, 0, sizeof sa); sa.sun_family = AF_UNIX;
  snprintf(sa.sun_path, sizeof sa.sun_path, "%s", vsock_path);
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0) return fd;
  close(fd);
  return -1;
}

static int send_all(int fd, const char *s, size_t len) {
  for (size_t off = 0; off < len; ) {
    ssize_t n = send(fd, s + off, len - off, MSG_NOSIGNAL);
    if (n <= 0) return -1;
    off += (size_t)n;
  }
  return 0;
}

static long now_ms(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1000L + t.tv_nsec / 1000000L; }

#define OUTPUT_PARAMS "{\"id\":\"p1\",\"stream\":\"stdout\",\"data\":\"eA==\",\"seq\":%d}"

static int send_resume(int fd, long id, long after) {
  size_t cap = (size_t)produced * 128 + 256, len = 0;
  char *out = malloc(cap);
  len += (size_t)snprintf(out + len, cap - len, "{\"jsonrpc\":\"2.0\",\"id\":%ld,\"result\":{\"replay\":[", id);
  for (int s = (int)after + 1; s <= produced; s++)
    len += (size_t)snprintf(out + len, cap - len, "%s{\"method\":\"output\",\"params\":" OUTPUT_PARAMS "}", s == (int)after + 1 ? "" : ",", s);
  len += (size_t)snprintf(out + len, cap - len, "],\"last_seq\":%d}}\n", produced);
  int rc = send_all(fd, out, len);
  free(out);
  return rc;
}

/*
 * The stand-in guest on the vsock-mapped socket: sends 'ready', answers 'ping', 'shutdown' and 'resume'.
 * chatty: from the host's first request on, emits one seq'd 'output' every 50 ms and keeps them all, and
 * when the host end goes away (aegisd died) connects again every 50 ms, as the harness does under vsock.
 * Not chatty: exits 91 when the host end goes away.
 */
static void fake_guest(int chatty) {
  signal(SIGPIPE, SIG_IGN);
  int fd = -1;
  for (int i = 0; i < 250 && fd < 0; i++) { fd = guest_connect(); if (fd < 0) usleep(20000); }
  if (fd < 0) { perror("stub guest connect"); exit(90); }
  const char *ready = "{\"jsonrpc\":\"2.0\",\"method\":\"ready\",\"params\":{\"version\":\"stub\",\"uptime_ms\":1}}\n";
  send_all(fd, ready, strlen(ready));
  char buf[65536]; size_t len = 0;
  int producing = 0; long next = 0;
  for (;;) {
    if (fd < 0) {
      if (!chatty) exit(91);
      usleep(50000);
      fd = guest_connect();
      len = 0;
    } else {
      struct pollfd pfd = { fd, POLLIN, 0 };
      if (poll(&pfd, 1, 50) > 0) {
        ssize_t n = read(fd, buf + len, sizeof buf - 1 - len);
        if (n <= 0) { close(fd); fd = -1; continue; }
        len += (size_t)n; buf[len] = 0;
        char *nl;
        while (fd >= 0 && (nl = strchr(buf, '\n'))) {
          *nl = 0;
          char *idp = strstr(buf, "\"id\":");
          long id = idp ? strtol(idp + 5, NULL, 10) : -1;
          char out[256];
          int rc = 0;
          if (idp && chatty) producing = 1;
          if (strstr(buf, "\"method\":\"ping\"")) {
            snprintf(out, sizeof out, "{\"jsonrpc\":\"2.0\",\"id\":%ld,\"result\":{\"uptime_ms\":5}}\n", id);
            rc = send_all(fd, out, strlen(out));
          } else if (strstr(buf, "\"method\":\"resume\"")) {
            char *ap = strstr(buf, "\"after_seq\":");
            rc = send_resume(fd, id, ap ? strtol(ap + 12, NULL, 10) : 0);
          } else if (strstr(buf, "\"method\":\"shutdown\"")) {
            snprintf(out, sizeof out, "{\"jsonrpc\":\"2.0\",\"id\":%ld,\"result\":{\"ok\":true}}\n", id);
            send_all(fd, out, strlen(out));
            exit(0);
          }
          memmove(buf, nl + 1, len - (size_t)(nl + 1 - buf) + 1);
          len -= (size_t)(nl + 1 - buf);
          if (rc != 0) { close(fd); fd = -1; }
        }
      }
    }
    if (producing && produced < RING_MAX && now_ms() >= next) {
      produced++;
      next = now_ms() + 50;
      if (fd >= 0) {
        char out[256];
        int n = snprintf(out, sizeof out, "{\"jsonrpc\":\"2.0\",\"method\":\"output\",\"params\":" OUTPUT_PARAMS "}\n", produced);
        if (send_all(fd, out, (size_t)n) != 0) { close(fd); fd = -1; }
      }
    }
  }
}

int32_t krun_start_enter(uint32_t ctx_id) {
  FILE *f = logf_(); fprintf(f, "krun_start_enter ctx=%u\n", ctx_id); fclose(f);
  FILE *b = fopen(STUB_DIR "/behaviour", "r");
  char a[64], mode[64]; int v = 0;
  int act = 0, val = 0;
  if (b) {
    while (fscanf(b, "%63s %63s", a, mode) == 2) {
      if (!strcmp(a, "start") && !strcmp(mode, "guest")) act = 3;
      else if (!strcmp(a, "start") && !strcmp(mode, "chatty")) act = 4;
      else if (!strcmp(a, "start") && fscanf(b, "%d", &v) == 1) { act = !strcmp(mode, "exit") ? 1 : 2; val = v; }
      else if (!strcmp(a, "fail")) fscanf(b, "%d", &v);
    }
    fclose(b);
  }
  if (act == 1) exit(val);
  if (act == 3 || act == 4) fake_guest(act == 4);
  return act == 2 ? val : -EINVAL;
}
`;

/** Compile the stub into `out`, logging under `dir`; `extra` are more cc flags (`-DOMIT_PORT_MAP`: a library missing a required symbol). */
export async function compileStub(dir: string, out: string, extra: string[] = []): Promise<void> {
  const src = join(dir, "stub.c");
  writeFileSync(src, STUB_C);
  const proc = Bun.spawn(["cc", "-shared", "-fPIC", "-O1", "-Wall", `-DSTUB_DIR="${dir}"`, ...extra, "-o", out, src], { stdout: "pipe", stderr: "pipe" });
  const [o, e, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  if (code !== 0) throw new Error(`cc failed (${code}): ${o}${e}`);
}
