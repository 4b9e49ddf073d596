// Protocol trace, compiled only into the debug core (asc --use TRACE=1):
// one line per frame received, batch sent and lane change, written to WASI
// stdout. The release core compiles these calls to nothing and so imports
// nothing. Lines are formatted by hand into a static buffer: no allocation.

// @ts-ignore: decorator
@external("wasi_snapshot_preview1", "fd_write")
declare function fd_write(fd: u32, iovs: usize, iovsLen: u32, written: usize): u32;

const LINE: usize = memory.data(512);
const IOV: usize = memory.data(16);
let at: u32 = 0;

function text(s: string): void {
  for (let i = 0; i < s.length && at < 500; i++) {
    store<u8>(LINE + at, <u8>s.charCodeAt(i));
    at++;
  }
}

function num(v: u64): void {
  let digits: u32 = 1;
  for (let x = v; x >= 10; x /= 10) digits++;
  if (at + digits >= 500) return;
  let x = v;
  for (let k = digits; k > 0; k--) {
    store<u8>(LINE + at + k - 1, <u8>(48 + <u32>(x % 10)));
    x /= 10;
  }
  at += digits;
}

function flush(): void {
  store<u8>(LINE + at, 10);
  at++;
  store<u32>(IOV, <u32>LINE);
  store<u32>(IOV, at, 4);
  fd_write(1, IOV, 1, IOV + 8);
  at = 0;
}

function frameName(t: u8): string {
  switch (t) {
    case 0x01: return "HELLO";
    case 0x02: return "ACCEPT";
    case 0x03: return "REJECT";
    case 0x04: return "REDIRECT";
    case 0x10: return "REQUEST";
    case 0x11: return "RESPONSE";
    case 0x12: return "ONEWAY";
    case 0x13: return "CANCEL";
    case 0x14: return "CLOSE";
    case 0x20: return "ACK";
    case 0x21: return "RECEIPT";
    case 0x22: return "KEEPALIVE";
    case 0x23: return "ERROR";
    case 0x30: return "BATCH";
  }
  return "?";
}

/**
 * Writes a frame's name. CHALLENGE and AUTH are spelled byte by byte: a new
 * string literal would grow the debug core's static data and move its heap,
 * and recordings of the release core replay under --trace on the debug core
 * address for address.
 */
function name(t: u8): void {
  if (t == 0x05 && at + 9 < 500) {
    store<u64>(LINE + at, 0x474e454c4c414843); // "CHALLENG", then "E"
    store<u8>(LINE + at + 8, 0x45);
    at += 9;
  } else if (t == 0x06 && at + 4 < 500) {
    store<u32>(LINE + at, 0x48545541); // "AUTH"
    at += 4;
  } else {
    text(frameName(t));
  }
}

export function traceFrame(lane: i32, f: usize, len: u32): void {
  if (isDefined(TRACE)) {
    let t = load<u8>(f);
    text("rx lane=");
    num(<u64>lane);
    text(" ");
    name(t);
    text(" len=");
    num(len);
    if (t >= 0x10 && t <= 0x14) {
      text(" seq=");
      num(load<u64>(f, 8));
      text(" tag=");
      num(load<u32>(f, 24));
    } else if (t == 0x20 || t == 0x21) {
      text(" seq=");
      num(load<u64>(f, 8));
    }
    flush();
  }
}

export function traceTx(lane: i32, p: usize, len: u32, ext: u32): void {
  if (isDefined(TRACE)) {
    text("tx lane=");
    num(<u64>lane);
    text(" ");
    name(load<u8>(p));
    text(" len=");
    num(len);
    if (ext) {
      text(" ext=");
      num(ext);
    }
    flush();
  }
}

export function traceLane(lane: i32, what: i32, code: i32): void {
  if (isDefined(TRACE)) {
    text(what == 1 ? "lane open " : what == 2 ? "lane down " : "lane protocol-error ");
    num(<u64>lane);
    text(" code=");
    num(<u64>code);
    flush();
  }
}
