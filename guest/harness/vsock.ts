/**
 * @module guest/harness/vsock
 * The guest end of the control channel under libkrun: an AF_VSOCK stream
 * connected to the host (CID 2) on `CONTROL_VSOCK_PORT`. libkrun maps that
 * port to the Unix socket the host listens on (`krun_add_vsock_port`,
 * vmm/libkrun-config.ts), so the host side is the same ControlChannel as
 * with QEMU's virtio-serial port.
 *
 * Bun has no AF_VSOCK sockets, so `socket(2)` and `connect(2)` go through
 * bun:ffi into the glibc the guest already carries (loaded on first use);
 * the connected fd is then read and written with `node:fs` like the
 * virtio-serial device (port.ts).
 *
 * C signatures:
 * - `int socket(int domain, int type, int protocol);`
 * - `int connect(int sockfd, const struct sockaddr *addr, socklen_t addrlen);`
 * - `int close(int fd);`
 * - `int *__errno_location(void);`
 * - `struct sockaddr_vm { sa_family_t svm_family; unsigned short svm_reserved1;
 *    unsigned int svm_port; unsigned int svm_cid; unsigned char svm_zero[4]; };` (16 bytes)
 */
import { dlopen, FFIType, ptr, read } from "bun:ffi";
import { constants } from "node:os";

/** `VMADDR_CID_HOST`: the host, as seen from a guest. */
export const VMADDR_CID_HOST = 2;

const AF_VSOCK = 40;
const SOCK_STREAM = 1;
const SOCK_CLOEXEC = 0o2000000;

/** Errnos after which connecting again may succeed (the host side is not there yet). */
const RETRYABLE = new Set(["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EINTR"]);

/** Encode a `struct sockaddr_vm` (little-endian, as on every host we target). */
export function sockaddrVm(cid: number, port: number): Buffer {
  const b = Buffer.alloc(16);
  b.writeUInt16LE(AF_VSOCK, 0);
  b.writeUInt32LE(port >>> 0, 4);
  b.writeUInt32LE(cid >>> 0, 8);
  return b;
}

function open() {
  return dlopen("libc.so.6", {
    socket: { args: [FFIType.i32, FFIType.i32, FFIType.i32], returns: FFIType.i32 },
    connect: { args: [FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i32 },
    close: { args: [FFIType.i32], returns: FFIType.i32 },
    __errno_location: { args: [], returns: FFIType.ptr },
  }).symbols;
}

let lib: ReturnType<typeof open> | undefined;

function errnoName(L: ReturnType<typeof open>): string {
  const n = read.i32(L.__errno_location()!, 0);
  return Object.entries(constants.errno).find(([, v]) => v === n)?.[0] ?? `errno ${n}`;
}

/** A vsock connect failed; `code` is the errno name. */
export class VsockConnectError extends Error {
  override name = "VsockConnectError";
  constructor(
    readonly cid: number,
    readonly port: number,
    readonly code: string,
    readonly step: "socket" | "connect",
  ) {
    super(`vsock ${step} to CID ${cid} port ${port}: ${code}${code === "EAFNOSUPPORT" ? " (the kernel has no vsock transport)" : ""}`);
  }
}

/**
 * Connect a blocking AF_VSOCK stream to `cid:port` and return its fd.
 * Retries refused/reset/timed-out connects until `timeoutMs` (the host
 * listens before the VM starts, so this normally succeeds at once).
 */
export function connectVsock(cid: number, port: number, timeoutMs = 5000): number {
  const L = (lib ??= open());
  const addr = sockaddrVm(cid, port); // owned here; the kernel copies it during connect()
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const fd = L.socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) throw new VsockConnectError(cid, port, errnoName(L), "socket");
    if (L.connect(fd, ptr(addr), addr.length) === 0) return fd;
    const code = errnoName(L);
    L.close(fd);
    if (!RETRYABLE.has(code) || Date.now() >= deadline) throw new VsockConnectError(cid, port, code, "connect");
    Bun.sleepSync(20);
  }
}
