// nexio native layer over librdmacm and libibverbs.
//
// Rules of this layer (see native/README.md):
// - one ObjectWrap per native object: CmChannel (rdma_cm event channel), CmId (rdma_cm_id),
//   Device (protection domain of one verbs context), MemoryRegion (ibv_mr over an ArrayBuffer),
//   QueuePair (RC QP + its CQ, completion channel, receive ring and send slots);
// - all state in instances or in the per-env AddonData, nothing static;
// - C++ exceptions are off: every failure sets a pending JS Error with a stable code
//   (NEXIO_ERR_RDMA_<WHAT>, errno, syscall) and the method returns undefined;
// - objects that the event loop can call back (CmChannel, CmId, QueuePair) hold a strong
//   reference to themselves while open; every object is registered with AddonData so an env
//   cleanup hook can release what is still open, newest first (dependents are always created
//   after what they depend on).
#pragma once

#define NAPI_DISABLE_CPP_EXCEPTIONS 1
#include <napi.h>
#include <uv.h>
#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>

#include <cstdint>
#include <list>
#include <map>
#include <string>
#include <vector>

namespace nexio {

struct AddonData;
struct AsyncWatch;

// A native object that holds RDMA resources. Release() frees them and is idempotent.
class Tracked {
 public:
  explicit Tracked(AddonData* data);
  virtual ~Tracked();
  virtual void Release() = 0;

 protected:
  AddonData* data_;

 private:
  std::list<Tracked*>::iterator pos_;
};

struct AddonData {
  Napi::FunctionReference cmIdCtor;
  Napi::FunctionReference memoryRegionCtor;
  uv_loop_t* loop = nullptr;
  std::list<Tracked*> live;  // creation order
  // One watcher of asynchronous events per verbs context on this thread's loop (a loop cannot
  // poll one fd twice), shared by every Device of this thread on that context.
  std::map<ibv_context*, AsyncWatch*> asyncWatches;
  bool finalized = false;    // env instance data finalizer ran; delete when `live` empties
  // TEST ONLY (NEXIO_RDMA_TEST_FAULT=adopt:N, read once at load; native/README.md): the next N
  // adoptions of a CONNECT_REQUEST's id fail, to drive CmChannel::Drain's failure path.
  uint32_t faultAdopt = 0;
  void ReleaseAll();
};

// ibv access flags for register()'s remoteAccess argument: true (READ and WRITE), 'read', false.
int AccessFlags(Napi::Value remote);

// Sets a pending JS Error: code NEXIO_ERR_RDMA_<what>, errno, syscall, message
// "<call> failed: <strerror> (<detail>)". Returns env.Undefined() for `return Throw(...)`.
Napi::Value ThrowRdma(Napi::Env env, const char* what, const char* call, int err,
                      const std::string& detail = "");
Napi::Value ThrowType(Napi::Env env, const std::string& message);
// Builds the Error without throwing it (for errors delivered through callbacks).
Napi::Error RdmaError(Napi::Env env, const char* what, const char* call, int err,
                      const std::string& detail = "");
// Calls fn(args) from a libuv callback; an exception thrown by JS becomes an uncaught exception.
void CallFromLoop(Napi::Env env, Napi::FunctionReference& fn, Napi::AsyncContext* ctx,
                  const std::vector<napi_value>& args);
bool GetU64(Napi::Value v, uint64_t* out);
bool ParseAddress(const std::string& host, int port, sockaddr_storage* ss);

class QueuePair;
class Device;
class CmId;

class CmChannel : public Napi::ObjectWrap<CmChannel>, public Tracked {
 public:
  static Napi::Function Init(Napi::Env env, AddonData* data);
  explicit CmChannel(const Napi::CallbackInfo& info);
  ~CmChannel() override;
  void Release() override;
  rdma_event_channel* channel() const { return ch_; }
  // The ids on this channel: librdmacm's rdma_destroy_id writes to the channel's fd, so the
  // channel is never destroyed under an id (Release releases them first).
  std::list<CmId*>::iterator Attach(CmId* id) { return ids_.insert(ids_.end(), id); }
  void Detach(std::list<CmId*>::iterator it) { ids_.erase(it); }

 private:
  Napi::Value Close(const Napi::CallbackInfo& info);
  static void OnPoll(uv_poll_t* h, int status, int events);
  void Drain();

  std::list<CmId*> ids_;
  rdma_event_channel* ch_ = nullptr;
  uv_poll_t* poll_ = nullptr;
  Napi::FunctionReference onEvent_;
  Napi::AsyncContext* async_ = nullptr;
};

class CmId : public Napi::ObjectWrap<CmId>, public Tracked {
 public:
  static Napi::Function Init(Napi::Env env, AddonData* data);
  explicit CmId(const Napi::CallbackInfo& info);
  ~CmId() override;
  void Release() override;
  rdma_cm_id* id() const { return id_; }
  void AttachQp(QueuePair* qp) { qp_ = qp; }
  void DetachQp() { qp_ = nullptr; }
  // From the CONNECT_REQUEST: what the requester offered, to bound accept()'s parameters.
  uint8_t reqInitiatorDepth = 0, reqResponderResources = 0;

 private:
  Napi::Value Listen(const Napi::CallbackInfo& info);
  Napi::Value ResolveAddr(const Napi::CallbackInfo& info);
  Napi::Value ResolveRoute(const Napi::CallbackInfo& info);
  Napi::Value Connect(const Napi::CallbackInfo& info);
  Napi::Value Accept(const Napi::CallbackInfo& info);
  Napi::Value Reject(const Napi::CallbackInfo& info);
  Napi::Value Disconnect(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
  Napi::Value DeviceName(const Napi::CallbackInfo& info);
  Napi::Value Addresses(const Napi::CallbackInfo& info);
  bool ConnParam(const Napi::CallbackInfo& info, rdma_conn_param* p, const char* what);

  rdma_cm_id* id_ = nullptr;
  QueuePair* qp_ = nullptr;
  Napi::ObjectReference channel_;
  CmChannel* ch_ = nullptr;  // while id_ is open
  std::list<CmId*>::iterator chPos_;
  std::vector<uint8_t> pdata_;
};

class Device : public Napi::ObjectWrap<Device>, public Tracked {
 public:
  static Napi::Function Init(Napi::Env env, AddonData* data);
  explicit Device(const Napi::CallbackInfo& info);
  ~Device() override;
  void Release() override;
  ibv_pd* pd() const { return closeDeferred_ ? nullptr : pd_; }
  ibv_context* verbs() const { return verbs_; }
  const ibv_device_attr& attr() const { return attr_; }

 private:
  Napi::Value Register(const Napi::CallbackInfo& info);
  Napi::Value RegisterAsync(const Napi::CallbackInfo& info);
  Napi::Value Query(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
  Napi::Value Watch(const Napi::CallbackInfo& info);
  void StopWatching();

 public:
  /** An asynchronous event of this device's verbs context (AsyncWatch). */
  void Dispatch(int type, const char* name, uint32_t qpNum, uint32_t port);
  /** A registration on the thread pool (RegisterJob) finished: a deferred close may proceed. */
  void RegistrationDone();
  /** The PD for a registration job: null when closed or closing. */
  ibv_pd* jobPd() const { return pd(); }

 private:

  ibv_context* verbs_ = nullptr;  // owned by librdmacm
  ibv_pd* pd_ = nullptr;
  // Registrations running on the libuv thread pool use pd_: it is deallocated only once they
  // are all done (a close meanwhile is deferred: closeDeferred_, pd() reads as closed).
  uint32_t pendingRegs_ = 0;
  bool closeDeferred_ = false;
  void DeallocPd();
  ibv_device_attr attr_{};
  // Asynchronous events (port down, QP fatal, device fatal) from verbs_->async_fd, handed to
  // onAsync_(type, name, qpNum, port); see Watch().
  AsyncWatch* watch_ = nullptr;
  Napi::FunctionReference onAsync_;
  Napi::AsyncContext* asyncCtx_ = nullptr;
};

class MemoryRegion : public Napi::ObjectWrap<MemoryRegion>, public Tracked {
 public:
  static Napi::Function Init(Napi::Env env, AddonData* data);
  explicit MemoryRegion(const Napi::CallbackInfo& info);
  ~MemoryRegion() override;
  void Release() override;

 private:
  Napi::Value Deregister(const Napi::CallbackInfo& info);
  ibv_mr* mr_ = nullptr;
  Napi::Reference<Napi::ArrayBuffer> buffer_;  // keeps the memory alive while registered
  Napi::ObjectReference device_;
};

class QueuePair : public Napi::ObjectWrap<QueuePair>, public Tracked {
 public:
  static Napi::Function Init(Napi::Env env, AddonData* data);
  explicit QueuePair(const Napi::CallbackInfo& info);
  ~QueuePair() override;
  void Release() override;

  // Completion record kinds written to the shared completions array, 4 x u32 per record:
  // [kind, id, byteLen, wcStatus].
  enum Kind : uint32_t { kRecv = 1, kSend = 2, kWrite = 3, kRead = 4 };

 private:
  Napi::Value PostSends(const Napi::CallbackInfo& info);
  Napi::Value PostRdma(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
  Napi::Value Stats(const Napi::CallbackInfo& info);
  static void OnPoll(uv_poll_t* h, int status, int events);
  static void OnIdle(uv_idle_t* h);
  void Drain();
  bool Deliver(uint32_t n);
  bool PostRecvs(const uint32_t* slots, uint32_t n);
  bool AllocRing(Napi::Env env, size_t bytes, int access, Napi::Reference<Napi::ArrayBuffer>* ref,
                 uint8_t** base, ibv_mr** mr, const char* what);

  Napi::ObjectReference cmId_, device_;
  CmId* cm_ = nullptr;
  ibv_comp_channel* cc_ = nullptr;
  ibv_cq* cq_ = nullptr;
  ibv_qp* qp_ = nullptr;
  uv_poll_t* poll_ = nullptr;
  // A drain that reached perWake_ completions yields to the event loop; this resumes it on the
  // loop's next turn (the CQ may hold more, and they raise no new event: the CQ is armed).
  uv_idle_t* idle_ = nullptr;
  Napi::FunctionReference onCompletions_;
  Napi::AsyncContext* async_ = nullptr;

  // receive ring: recvCount_ slots of recvSize_ bytes, all posted while the QP is open
  uint32_t recvCount_ = 0, recvSize_ = 0;
  uint8_t* recvBase_ = nullptr;
  ibv_mr* recvMr_ = nullptr;
  Napi::Reference<Napi::ArrayBuffer> recvRing_;
  std::vector<ibv_recv_wr> rwr_;
  std::vector<ibv_sge> rsge_;
  std::vector<uint32_t> repost_;

  // send slots for frames above the inline limit; RC completes sends in order, so slots are a ring
  uint32_t sendCount_ = 0, sendSize_ = 0, slotHead_ = 0, slotsFree_ = 0;
  uint8_t* sendBase_ = nullptr;
  ibv_mr* sendMr_ = nullptr;
  Napi::Reference<Napi::ArrayBuffer> sendRing_;
  uint32_t sqDepth_ = 0, sqFree_ = 0, maxInline_ = 0;
  std::vector<ibv_send_wr> swr_;
  std::vector<ibv_sge> ssge_;

  // completions: drained batch_ at a time, handed to JS through one shared Uint32Array
  uint32_t batch_ = 32, busyPoll_ = 0, unacked_ = 0, perWake_ = 128;
  // Time-bounded polling after activity (spinUs > 0): poll the CQ for up to budgetUs_ after the
  // last completion before sleeping on the fd; adaptive: the budget doubles (to spinUs) when a
  // spin found a completion and halves (to kMinSpinUs) when it ran out empty.
  uint32_t spinUs_ = 0, budgetUs_ = 0;
  bool adaptive_ = false;
  std::vector<ibv_wc> wc_;
  uint32_t* out_ = nullptr;
  Napi::Reference<Napi::Uint32Array> outArray_;
  bool closing_ = false;

  // counters for stats()
  uint64_t nCqEvents_ = 0, nPolls_ = 0, nCompletions_ = 0, nCallbacks_ = 0, nBusyHits_ = 0;
  uint64_t nYields_ = 0, maxWake_ = 0, nSpinHits_ = 0, nSpinMisses_ = 0;
  uint64_t nSendPosts_ = 0, nSendWrs_ = 0, nInline_ = 0;
};

}  // namespace nexio
