// QueuePair: an RC QP created on a CmId, with
// - a receive ring: recvCount slots of recvSize bytes in one registered ArrayBuffer, all posted
//   while the QP is open; a slot is reposted right after the JS callback that saw it returns;
// - send slots for frames above the inline limit (frames at or below it are posted inline, straight
//   from the caller's Buffer); one post carries a list of frames and only its last WR is signaled;
// - RDMA WRITE/READ between registered memory and a remote (addr, rkey);
// - completions through the completion channel fd (uv_poll): drained `batch` at a time into one
//   shared Uint32Array, one JS call per batch, CQ events acked in batches, then an optional
//   bounded busy-poll (`busyPoll` empty polls at most) before sleeping on the fd again. At most
//   `perWake` completions (default 4 x batch) per wakeup: then the drain yields to the event loop
//   (timers, other sockets) and resumes on its next turn (uv_idle), so a peer that keeps the CQ
//   busy cannot keep the thread from libuv.
#include "rdma.h"

#include <fcntl.h>
#include <time.h>
#include <cerrno>
#include <cstring>

namespace nexio {

namespace {
// wr_id layout: kind in bits 56..63; sends: slots in 16..31, WR count in 0..15; RDMA ops: token in 0..31.
constexpr uint64_t WrId(uint32_t kind, uint64_t low) { return (static_cast<uint64_t>(kind) << 56) | low; }
constexpr uint32_t WrKind(uint64_t wr_id) { return static_cast<uint32_t>(wr_id >> 56); }
constexpr uint32_t kAckBatch = 16;  // ibv_ack_cq_events takes a mutex: ack every 16 events, not each

uint32_t OptU32(Napi::Object o, const char* k, uint32_t def) {
  Napi::Value v = o.Get(k);
  return v.IsNumber() ? v.As<Napi::Number>().Uint32Value() : def;
}
}  // namespace

Napi::Function QueuePair::Init(Napi::Env env, AddonData*) {
  return DefineClass(env, "QueuePair", {
      InstanceMethod("postSends", &QueuePair::PostSends),
      InstanceMethod("postRdma", &QueuePair::PostRdma),
      InstanceMethod("close", &QueuePair::Close),
      InstanceMethod("stats", &QueuePair::Stats),
  });
}

bool QueuePair::AllocRing(Napi::Env env, size_t bytes, int access, Napi::Reference<Napi::ArrayBuffer>* ref,
                          uint8_t** base, ibv_mr** mr, const char* what) {
  Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(env, bytes);
  if (env.IsExceptionPending()) return false;
  Device* dev = Device::Unwrap(device_.Value());
  ibv_mr* m = ibv_reg_mr(dev->pd(), ab.Data(), bytes, access);
  if (!m) { ThrowRdma(env, "REG_MR", "ibv_reg_mr", errno, what); return false; }
  *ref = Napi::Persistent(ab);
  *base = static_cast<uint8_t*>(ab.Data());
  *mr = m;
  return true;
}

// new QueuePair(cmId, device, onCompletions(n), {recvCount, recvSize, sendCount, sendSize,
//               rdmaDepth, maxInline, batch, busyPoll})
QueuePair::QueuePair(const Napi::CallbackInfo& info)
    : Napi::ObjectWrap<QueuePair>(info), Tracked(info.Env().GetInstanceData<AddonData>()) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsObject() || !info[1].IsObject() || !info[2].IsFunction()) {
    ThrowType(env, "QueuePair(cmId, device, onCompletions[, options])");
    return;
  }
  Napi::Object opts = info.Length() > 3 && info[3].IsObject() ? info[3].As<Napi::Object>() : Napi::Object::New(env);
  CmId* cm = CmId::Unwrap(info[0].As<Napi::Object>());
  if (env.IsExceptionPending()) return;
  Device* dev = Device::Unwrap(info[1].As<Napi::Object>());
  if (env.IsExceptionPending()) return;
  if (!cm || !cm->id()) { ThrowRdma(env, "CLOSED", "rdma_create_qp", EBADF, "the rdma_cm id is closed"); return; }
  if (!dev || !dev->pd()) { ThrowRdma(env, "CLOSED", "rdma_create_qp", EBADF, "the device is closed"); return; }
  if (cm->id()->verbs != dev->verbs()) { ThrowRdma(env, "DEVICE_MISMATCH", "rdma_create_qp", EINVAL, "the id and the device differ"); return; }

  const ibv_device_attr& da = dev->attr();
  recvCount_ = OptU32(opts, "recvCount", 64);
  recvSize_ = OptU32(opts, "recvSize", 16384);
  sendCount_ = OptU32(opts, "sendCount", 64);
  sendSize_ = OptU32(opts, "sendSize", 16384);
  uint32_t rdmaDepth = OptU32(opts, "rdmaDepth", 16);
  uint32_t wantInline = OptU32(opts, "maxInline", 256);
  batch_ = OptU32(opts, "batch", 32);
  busyPoll_ = OptU32(opts, "busyPoll", 0);
  perWake_ = OptU32(opts, "perWake", 4 * batch_);
  spinUs_ = OptU32(opts, "spinUs", 0);
  adaptive_ = opts.Has("adaptive") && opts.Get("adaptive").ToBoolean().Value();
  budgetUs_ = spinUs_;
  if (recvCount_ == 0 || recvSize_ == 0 || sendCount_ == 0 || sendSize_ == 0 || batch_ == 0 || perWake_ == 0 ||
      recvCount_ > static_cast<uint32_t>(da.max_qp_wr) || sendCount_ + rdmaDepth > static_cast<uint32_t>(da.max_qp_wr) ||
      sendCount_ > 65535 || busyPoll_ > 1000000 || spinUs_ > 100000) {
    ThrowType(env, "QueuePair: counts must be > 0 and within the device's max_qp_wr (" + std::to_string(da.max_qp_wr) + ")");
    return;
  }
  cmId_ = Napi::Persistent(info[0].As<Napi::Object>());
  device_ = Napi::Persistent(info[1].As<Napi::Object>());
  cm_ = cm;

  // From here on every failure calls Release(), which undoes whatever was set up, in reverse.
  cc_ = ibv_create_comp_channel(dev->verbs());
  if (!cc_) { ThrowRdma(env, "CREATE_COMP_CHANNEL", "ibv_create_comp_channel", errno); Release(); return; }
  int fl = fcntl(cc_->fd, F_GETFL);
  if (fl < 0 || fcntl(cc_->fd, F_SETFL, fl | O_NONBLOCK) < 0) { ThrowRdma(env, "CREATE_COMP_CHANNEL", "fcntl", errno); Release(); return; }
  sqDepth_ = sendCount_ + rdmaDepth;
  int cqe = static_cast<int>(sqDepth_ + recvCount_);
  cq_ = ibv_create_cq(dev->verbs(), cqe, this, cc_, 0);
  if (!cq_) { ThrowRdma(env, "CREATE_CQ", "ibv_create_cq", errno, std::to_string(cqe) + " entries"); Release(); return; }
  int r = ibv_req_notify_cq(cq_, 0);
  if (r != 0) { ThrowRdma(env, "REQ_NOTIFY_CQ", "ibv_req_notify_cq", r); Release(); return; }

  ibv_qp_init_attr ia;
  for (uint32_t inl : {wantInline, 64u, 0u}) {  // the largest inline size the device accepts
    if (inl > wantInline) continue;
    memset(&ia, 0, sizeof ia);
    ia.send_cq = cq_;
    ia.recv_cq = cq_;
    ia.qp_type = IBV_QPT_RC;
    ia.sq_sig_all = 0;
    ia.cap.max_send_wr = sqDepth_;
    ia.cap.max_recv_wr = recvCount_;
    ia.cap.max_send_sge = 1;
    ia.cap.max_recv_sge = 1;
    ia.cap.max_inline_data = inl;
    if (rdma_create_qp(cm->id(), dev->pd(), &ia) == 0) break;
    if (inl == 0) { ThrowRdma(env, "CREATE_QP", "rdma_create_qp", errno); Release(); return; }
  }
  qp_ = cm->id()->qp;
  cm->AttachQp(this);
  maxInline_ = ia.cap.max_inline_data < wantInline ? ia.cap.max_inline_data : wantInline;
  sqFree_ = sqDepth_;

  if (!AllocRing(env, static_cast<size_t>(recvCount_) * recvSize_, IBV_ACCESS_LOCAL_WRITE, &recvRing_, &recvBase_, &recvMr_, "receive ring") ||
      !AllocRing(env, static_cast<size_t>(sendCount_) * sendSize_, 0, &sendRing_, &sendBase_, &sendMr_, "send slots")) {
    Release();
    return;
  }
  slotsFree_ = sendCount_;
  rwr_.resize(recvCount_);
  rsge_.resize(recvCount_);
  repost_.resize(recvCount_);
  swr_.resize(sqDepth_);
  ssge_.resize(sqDepth_);
  wc_.resize(batch_);
  for (uint32_t i = 0; i < recvCount_; i++) repost_[i] = i;
  if (!PostRecvs(repost_.data(), recvCount_)) { Release(); return; }

  Napi::Uint32Array out = Napi::Uint32Array::New(env, batch_ * 4);
  if (env.IsExceptionPending()) { Release(); return; }
  out_ = out.Data();
  outArray_ = Napi::Persistent(out);

  poll_ = new uv_poll_t;
  r = uv_poll_init(data_->loop, poll_, cc_->fd);
  if (r != 0) { delete poll_; poll_ = nullptr; ThrowRdma(env, "POLL", "uv_poll_init", -r); Release(); return; }
  poll_->data = this;
  r = uv_poll_start(poll_, UV_READABLE, OnPoll);
  if (r != 0) { ThrowRdma(env, "POLL", "uv_poll_start", -r); Release(); return; }
  idle_ = new uv_idle_t;
  r = uv_idle_init(data_->loop, idle_);
  if (r != 0) { delete idle_; idle_ = nullptr; ThrowRdma(env, "POLL", "uv_idle_init", -r); Release(); return; }
  idle_->data = this;
  onCompletions_ = Napi::Persistent(info[2].As<Napi::Function>());
  async_ = new Napi::AsyncContext(env, "nexio:rdma_cq");

  Napi::Object self = info.This().As<Napi::Object>();
  self.Set("completions", out);
  // A view of the ring's own ArrayBuffer: while JavaScript holds it, the memory stays
  // (an external Buffer over recvBase_ would outlive the ArrayBuffer once Release() drops it).
  self.Set("recvRing", Napi::Uint8Array::New(env, static_cast<size_t>(recvCount_) * recvSize_, recvRing_.Value(), 0));
  self.Set("recvSize", Napi::Number::New(env, recvSize_));
  self.Set("recvCount", Napi::Number::New(env, recvCount_));
  self.Set("sendCount", Napi::Number::New(env, sendCount_));
  self.Set("sendSize", Napi::Number::New(env, sendSize_));
  self.Set("maxInline", Napi::Number::New(env, maxInline_));
  self.Set("qpNum", Napi::Number::New(env, qp_->qp_num));
  Ref();  // alive while completions can arrive
}

QueuePair::~QueuePair() { Release(); }

void QueuePair::Release() {
  bool wasOpen = async_ != nullptr;
  closing_ = true;
  if (poll_) {
    poll_->data = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(poll_), [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
    poll_ = nullptr;
  }
  if (idle_) {
    idle_->data = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(idle_), [](uv_handle_t* h) { delete reinterpret_cast<uv_idle_t*>(h); });
    idle_ = nullptr;
  }
  if (qp_ && cm_) {
    rdma_destroy_qp(cm_->id());  // void: librdmacm ignores ibv_destroy_qp's status
    cm_->DetachQp();
    qp_ = nullptr;
  }
  if (cq_) {
    if (unacked_) { ibv_ack_cq_events(cq_, unacked_); unacked_ = 0; }
    // events raised but not yet read must be read and acked too, or ibv_destroy_cq waits forever
    ibv_cq* evcq; void* evctx;
    while (cc_ && ibv_get_cq_event(cc_, &evcq, &evctx) == 0) ibv_ack_cq_events(evcq, 1);
    if (ibv_destroy_cq(cq_) == 0) cq_ = nullptr;
  }
  if (cc_ && !cq_ && ibv_destroy_comp_channel(cc_) == 0) cc_ = nullptr;
  if (sendMr_ && ibv_dereg_mr(sendMr_) == 0) sendMr_ = nullptr;
  if (recvMr_ && ibv_dereg_mr(recvMr_) == 0) recvMr_ = nullptr;
  // The ring ArrayBuffers stay alive while JS holds views on them (recvRing); the memory is no
  // longer registered, so the NIC can no longer write into it.
  recvRing_.Reset();
  sendRing_.Reset();
  outArray_.Reset();
  out_ = nullptr;
  onCompletions_.Reset();
  delete async_;
  async_ = nullptr;
  cmId_.Reset();
  device_.Reset();
  cm_ = nullptr;
  if (wasOpen) Unref();
}

Napi::Value QueuePair::Close(const Napi::CallbackInfo& info) {
  Release();
  return info.Env().Undefined();
}

bool QueuePair::PostRecvs(const uint32_t* slots, uint32_t n) {
  if (n == 0 || !qp_) return true;
  for (uint32_t i = 0; i < n; i++) {
    uint32_t s = slots[i];
    rsge_[i].addr = reinterpret_cast<uintptr_t>(recvBase_ + static_cast<size_t>(s) * recvSize_);
    rsge_[i].length = recvSize_;
    rsge_[i].lkey = recvMr_->lkey;
    rwr_[i].wr_id = WrId(kRecv, s);
    rwr_[i].sg_list = &rsge_[i];
    rwr_[i].num_sge = 1;
    rwr_[i].next = i + 1 < n ? &rwr_[i + 1] : nullptr;
  }
  ibv_recv_wr* bad = nullptr;
  int r = ibv_post_recv(qp_, rwr_.data(), &bad);
  if (r != 0) {
    ThrowRdma(Env(), "POST_RECV", "ibv_post_recv", r);
    return false;
  }
  return true;
}

// postSends(frames: Uint8Array[], start = 0) -> number of frames posted (from `start`).
// Fewer than asked means no room (send queue or send slots): post the rest after a SEND completion.
Napi::Value QueuePair::PostSends(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!qp_) return ThrowRdma(env, "CLOSED", "ibv_post_send", EBADF, "the queue pair is closed");
  if (info.Length() < 1 || !info[0].IsArray()) return ThrowType(env, "postSends(frames: Uint8Array[], start?)");
  Napi::Array frames = info[0].As<Napi::Array>();
  uint32_t start = info.Length() > 1 && info[1].IsNumber() ? info[1].As<Napi::Number>().Uint32Value() : 0;
  uint32_t total = frames.Length();
  uint32_t n = 0, slotsUsed = 0;
  for (uint32_t i = start; i < total && n < sqFree_; i++) {
    Napi::Value v = frames.Get(i);
    if (!v.IsTypedArray()) return ThrowType(env, "postSends: frame " + std::to_string(i) + " is not a Uint8Array");
    napi_typedarray_type tt;
    size_t count = 0;
    void* data = nullptr;
    if (napi_get_typedarray_info(env, v, &tt, &count, &data, nullptr, nullptr) != napi_ok || tt != napi_uint8_array)
      return ThrowType(env, "postSends: frame " + std::to_string(i) + " is not a Uint8Array");
    uint8_t* p = static_cast<uint8_t*>(data);
    size_t len = count;
    ibv_send_wr& wr = swr_[n];
    ibv_sge& sge = ssge_[n];
    memset(&wr, 0, sizeof wr);
    if (len <= maxInline_) {
      // inline: the HCA copies the bytes at post time, so the caller's memory need not be registered
      sge.addr = reinterpret_cast<uintptr_t>(p);
      sge.lkey = 0;
      wr.send_flags = IBV_SEND_INLINE;
      nInline_++;
    } else {
      if (len > sendSize_) {
        if (n == 0) return ThrowRdma(env, "FRAME_TOO_LARGE", "ibv_post_send", EMSGSIZE,
                                     std::to_string(len) + " bytes > send slot " + std::to_string(sendSize_) + ": use RDMA for large payloads");
        break;  // post what precedes it; the next call throws
      }
      if (slotsFree_ - slotsUsed == 0) break;
      uint8_t* slot = sendBase_ + static_cast<size_t>((slotHead_ + slotsUsed) % sendCount_) * sendSize_;
      memcpy(slot, p, len);
      sge.addr = reinterpret_cast<uintptr_t>(slot);
      sge.lkey = sendMr_->lkey;
      slotsUsed++;
    }
    sge.length = static_cast<uint32_t>(len);
    wr.sg_list = &sge;
    wr.num_sge = 1;
    wr.opcode = IBV_WR_SEND;
    if (n > 0) swr_[n - 1].next = &wr;
    n++;
  }
  if (n == 0) return Napi::Number::New(env, 0);
  ibv_send_wr& last = swr_[n - 1];
  last.send_flags |= IBV_SEND_SIGNALED;
  last.wr_id = WrId(kSend, (static_cast<uint64_t>(slotsUsed) << 16) | n);
  ibv_send_wr* bad = nullptr;
  int r = ibv_post_send(qp_, swr_.data(), &bad);
  if (r != 0) return ThrowRdma(env, "POST_SEND", "ibv_post_send", r);
  sqFree_ -= n;
  slotsFree_ -= slotsUsed;
  slotHead_ = (slotHead_ + slotsUsed) % sendCount_;
  nSendPosts_++;
  nSendWrs_ += n;
  return Napi::Number::New(env, n);
}

// postRdma(op 'write'|'read' as kind number, token, localAddr, length, lkey, remoteAddr, rkey) -> bool
// false = send queue full (retry after a completion).
Napi::Value QueuePair::PostRdma(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!qp_) return ThrowRdma(env, "CLOSED", "ibv_post_send", EBADF, "the queue pair is closed");
  uint64_t laddr, raddr;
  if (info.Length() < 7 || !info[0].IsNumber() || !info[1].IsNumber() || !GetU64(info[2], &laddr) ||
      !info[3].IsNumber() || !info[4].IsNumber() || !GetU64(info[5], &raddr) || !info[6].IsNumber())
    return ThrowType(env, "postRdma(kind, token, localAddr, length, lkey, remoteAddr, rkey)");
  uint32_t kind = info[0].As<Napi::Number>().Uint32Value();
  if (kind != kWrite && kind != kRead) return ThrowType(env, "postRdma: kind must be WRITE or READ");
  if (sqFree_ == 0) return Napi::Boolean::New(env, false);
  ibv_sge sge;
  sge.addr = laddr;
  sge.length = info[3].As<Napi::Number>().Uint32Value();
  sge.lkey = info[4].As<Napi::Number>().Uint32Value();
  ibv_send_wr wr;
  memset(&wr, 0, sizeof wr);
  wr.wr_id = WrId(kind, info[1].As<Napi::Number>().Uint32Value());
  wr.sg_list = &sge;
  wr.num_sge = 1;
  wr.opcode = kind == kWrite ? IBV_WR_RDMA_WRITE : IBV_WR_RDMA_READ;
  wr.send_flags = IBV_SEND_SIGNALED;
  wr.wr.rdma.remote_addr = raddr;
  wr.wr.rdma.rkey = info[6].As<Napi::Number>().Uint32Value();
  ibv_send_wr* bad = nullptr;
  int r = ibv_post_send(qp_, &wr, &bad);
  if (r != 0) return ThrowRdma(env, "POST_SEND", "ibv_post_send", r, kind == kWrite ? "RDMA WRITE" : "RDMA READ");
  sqFree_--;
  return Napi::Boolean::New(env, true);
}

Napi::Value QueuePair::Stats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("cqEvents", Napi::Number::New(env, static_cast<double>(nCqEvents_)));
  o.Set("polls", Napi::Number::New(env, static_cast<double>(nPolls_)));
  o.Set("completions", Napi::Number::New(env, static_cast<double>(nCompletions_)));
  o.Set("callbacks", Napi::Number::New(env, static_cast<double>(nCallbacks_)));
  o.Set("busyPollHits", Napi::Number::New(env, static_cast<double>(nBusyHits_)));
  o.Set("yields", Napi::Number::New(env, static_cast<double>(nYields_)));
  o.Set("maxPerWake", Napi::Number::New(env, static_cast<double>(maxWake_)));
  o.Set("spinHits", Napi::Number::New(env, static_cast<double>(nSpinHits_)));
  o.Set("spinMisses", Napi::Number::New(env, static_cast<double>(nSpinMisses_)));
  o.Set("spinBudgetUs", Napi::Number::New(env, budgetUs_));
  o.Set("sendPosts", Napi::Number::New(env, static_cast<double>(nSendPosts_)));
  o.Set("sendWrs", Napi::Number::New(env, static_cast<double>(nSendWrs_)));
  o.Set("inlineSends", Napi::Number::New(env, static_cast<double>(nInline_)));
  o.Set("sqFree", Napi::Number::New(env, sqFree_));
  o.Set("slotsFree", Napi::Number::New(env, slotsFree_));
  return o;
}

void QueuePair::OnPoll(uv_poll_t* h, int status, int) {
  auto* self = static_cast<QueuePair*>(h->data);
  if (!self || status < 0) return;
  self->Drain();
}

static uint64_t NowUs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000u + static_cast<uint64_t>(ts.tv_nsec) / 1000u;
}

// The smallest adaptive spin budget: below it a spin costs more than the wake-up it saves.
static const uint32_t kMinSpinUs = 2;
// The most one wakeup spins in all (each completion restarts the budget): the loop must get back
// to timers and other sockets even when a peer answers just inside every budget.
static const uint64_t kMaxSpinPerWakeUs = 1000;

void QueuePair::OnIdle(uv_idle_t* h) {
  uv_idle_stop(h);
  auto* self = static_cast<QueuePair*>(h->data);
  if (self) self->Drain();
}

// Hands records [0, n) of the completions array to JS, then reposts the receive slots they named.
bool QueuePair::Deliver(uint32_t n) {
  if (n == 0) return true;
  Napi::Env env = Env();
  Napi::HandleScope scope(env);
  uint32_t nrepost = 0;
  for (uint32_t i = 0; i < n; i++)
    if (out_[i * 4] == kRecv && out_[i * 4 + 3] == IBV_WC_SUCCESS) repost_[nrepost++] = out_[i * 4 + 1];
  nCallbacks_++;
  CallFromLoop(env, onCompletions_, async_, {Napi::Number::New(env, n)});
  if (closing_ || !qp_) return false;  // JS closed us in the callback
  if (!PostRecvs(repost_.data(), nrepost)) {
    Napi::Error e = env.GetAndClearPendingException();
    napi_fatal_exception(env, e.Value());
    return false;
  }
  return true;
}

void QueuePair::Drain() {
  // Read the pending CQ event(s) (the fd is non-blocking), re-arm, then poll until empty: a
  // completion that lands between the last poll and the re-arm raises a new event.
  ibv_cq* evcq;
  void* evctx;
  while (ibv_get_cq_event(cc_, &evcq, &evctx) == 0) {
    nCqEvents_++;
    if (++unacked_ >= kAckBatch) { ibv_ack_cq_events(cq_, unacked_); unacked_ = 0; }
  }
  int r = ibv_req_notify_cq(cq_, 0);
  if (r != 0) {
    Napi::HandleScope scope(Env());
    napi_fatal_exception(Env(), RdmaError(Env(), "REQ_NOTIFY_CQ", "ibv_req_notify_cq", r).Value());
    return;
  }
  uint32_t spins = 0, done = 0;
  bool active = false;
  uint64_t lastHit = 0;   // when the last completions were handed to JS (spinUs)
  bool spinning = false;  // polling on only because of the spin budget
  uint64_t spunUs = 0;    // spinning done in this wakeup: at most kMaxSpinPerWakeUs
  uint64_t spinFrom = 0;
  while (!closing_) {
    if (done >= perWake_) {
      // Bounded work per wakeup: timers, other sockets and JS get the loop; the rest of the
      // CQ is drained on its next turn (nothing is lost: the completions wait in the CQ).
      nYields_++;
      if (idle_) uv_idle_start(idle_, OnIdle);
      return;
    }
    // never more than the wakeup has left: perWake_ is a bound, not a threshold
    uint32_t want = perWake_ - done < batch_ ? perWake_ - done : batch_;
    int got = ibv_poll_cq(cq_, static_cast<int>(want), wc_.data());
    nPolls_++;
    if (got < 0) {
      Napi::HandleScope scope(Env());
      napi_fatal_exception(Env(), RdmaError(Env(), "POLL_CQ", "ibv_poll_cq", EIO).Value());
      return;
    }
    if (got == 0) {
      // bounded busy-poll: after activity, look again up to busyPoll times before sleeping on the fd
      if (active && spins++ < busyPoll_) continue;
      if (active && budgetUs_ > 0) {
        // time-bounded spin: up to budgetUs_ after the last completions were handled (the JS
        // callback's own time does not count), and at most kMaxSpinPerWakeUs per wakeup
        uint64_t now = NowUs();
        if (!spinning) { spinning = true; spinFrom = now; }
        if (now - lastHit < budgetUs_ && spunUs + (now - spinFrom) < kMaxSpinPerWakeUs) continue;
        nSpinMisses_++;
        if (adaptive_) {
          uint32_t floor = kMinSpinUs < spinUs_ ? kMinSpinUs : spinUs_;
          budgetUs_ = budgetUs_ / 2 > floor ? budgetUs_ / 2 : floor;
        }
      }
      return;
    }
    if (spins > 0) nBusyHits_++;
    if (spinning) {
      // the spin paid off: a completion came while we were looking
      nSpinHits_++;
      if (adaptive_) budgetUs_ = budgetUs_ * 2 < spinUs_ ? budgetUs_ * 2 : spinUs_;
      spinning = false;
      spunUs += NowUs() - spinFrom;
    }
    spins = 0;
    active = true;
    uint32_t n = 0;
    for (int i = 0; i < got; i++) {
      const ibv_wc& wc = wc_[i];
      uint32_t kind = WrKind(wc.wr_id);
      uint32_t* rec = out_ + n * 4;
      nCompletions_++;
      if (kind == kSend) {
        // the signaled last WR of a post completes; with it, every WR of that post
        uint32_t nwr = static_cast<uint32_t>(wc.wr_id & 0xffff);
        uint32_t nslots = static_cast<uint32_t>((wc.wr_id >> 16) & 0xffff);
        sqFree_ += nwr;
        slotsFree_ += nslots;
        rec[1] = nwr;
      } else if (kind == kWrite || kind == kRead) {
        sqFree_ += 1;
        rec[1] = static_cast<uint32_t>(wc.wr_id & 0xffffffffu);
      } else {
        // a flushed receive (QP in error after a disconnect) is not reported: close() follows
        if (wc.status == IBV_WC_WR_FLUSH_ERR) continue;
        rec[1] = static_cast<uint32_t>(wc.wr_id & 0xffffffffu);
      }
      rec[0] = kind;
      rec[2] = wc.byte_len;
      rec[3] = wc.status;
      n++;
    }
    done += static_cast<uint32_t>(got);
    if (done > maxWake_) maxWake_ = done;
    if (!Deliver(n)) return;
    if (budgetUs_ > 0) lastHit = NowUs();
  }
}

}  // namespace nexio
