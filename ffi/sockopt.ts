/**
 * @module ffi/sockopt
 * The one C call the TLS server-name gate needs (vmm/network/sni-gate.ts):
 * `getsockopt(fd, SOL_IP, SO_ORIGINAL_DST)` on a connection nft DNATed to
 * it, which gives the IPv4 address and port the guest dialled (conntrack's
 * original tuple, looked up by the kernel in O(1)). Bun's sockets expose
 * their fd but no such option. glibc's symbol, from libc.so.6, opened once
 * on first use.
 *
 * Memory: the 16-byte `struct sockaddr_in` and the `socklen_t` are Buffers
 * owned by the caller's stack frame; the kernel writes into them during the
 * call and nothing keeps a pointer afterwards.
 */
import { dlopen, FFIType, ptr } from "bun:ffi";

/** `<linux/in.h>` SOL_IP. */
const SOL_IP = 0;
/** `<linux/netfilter_ipv4.h>` SO_ORIGINAL_DST. */
const SO_ORIGINAL_DST = 80;
/** `<bits/socket.h>` AF_INET. */
const AF_INET = 2;

let lib: ReturnType<typeof open> | undefined;

function open() {
  return dlopen("libc.so.6", {
    /** `int getsockopt(int sockfd, int level, int optname, void *optval, socklen_t *optlen);` */
    getsockopt: { args: [FFIType.i32, FFIType.i32, FFIType.i32, FFIType.ptr, FFIType.ptr], returns: FFIType.i32 },
  });
}

/**
 * The original destination of the IPv4 TCP connection on `fd` (before nft's
 * DNAT), or undefined when the kernel has none for it (not NATed, not IPv4).
 */
export function originalDestination(fd: number): { host: string; port: number } | undefined {
  if (!Number.isInteger(fd) || fd < 0) return undefined;
  lib ??= open();
  const addr = Buffer.alloc(16);
  const len = new Uint32Array([16]);
  const rc = lib.symbols.getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, ptr(addr), ptr(len));
  if (rc !== 0 || addr.readUInt16LE(0) !== AF_INET) return undefined;
  return { host: `${addr[4]}.${addr[5]}.${addr[6]}.${addr[7]}`, port: addr.readUInt16BE(2) };
}
