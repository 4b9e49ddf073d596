// Error codes: stable numbers shared by the wire (REJECT reasons, ERROR
// frames), events and return values (negated). host/errors.ts maps each to
// its NEXIO_ERR_* name; docs/protocol.md lists them.

export const E_OK: i32 = 0;
// Remote protocol errors: the peer broke the protocol; its lane is closed.
export const E_MALFORMED: i32 = 1;
export const E_FRAME_TOO_LARGE: i32 = 2;
export const E_BAD_TYPE: i32 = 3;
export const E_BAD_STATE: i32 = 4;
export const E_WINDOW: i32 = 5;
export const E_VERSION: i32 = 6;
// Session outcomes.
export const E_REJECTED: i32 = 7;
export const E_UNKNOWN_SESSION: i32 = 8;
export const E_TIMEOUT: i32 = 9;
export const E_ABORTED: i32 = 10;
export const E_SESSION_LOST: i32 = 11;
export const E_LANE_DEAD: i32 = 12;
export const E_BACKPRESSURE: i32 = 13;
export const E_LIMIT: i32 = 14;
export const E_REDIRECT_LOOP: i32 = 15;
export const E_CLOSED: i32 = 16;
// Local errors: the host called the core wrongly.
export const E_BAD_HANDLE: i32 = 17;
export const E_BAD_ARGUMENT: i32 = 18;
export const E_NOT_OPEN: i32 = 19;
// Transport failures reported by the host (lane_down codes).
export const E_TRANSPORT: i32 = 20;
// A one-way message to a peer that takes none (its ACCEPT had F_NO_ONEWAY).
export const E_NO_HANDLER: i32 = 21;
// Pre-shared keys: a lane did not prove the key (REJECT reason; a client's own finding).
export const E_AUTH: i32 = 22;
