// Device: the protection domain of one verbs context (rxe0, mlx5_0, ...), and MemoryRegion:
// an ibv_mr over a whole ArrayBuffer (the JS side caches them per ArrayBuffer).
#include "rdma.h"

#include <fcntl.h>
#include <cerrno>

namespace nexio {

Napi::Function Device::Init(Napi::Env env, AddonData*) {
  return DefineClass(env, "Device", {
      InstanceMethod("register", &Device::Register),
      InstanceMethod("registerAsync", &Device::RegisterAsync),
      InstanceMethod("query", &Device::Query),
      InstanceMethod("close", &Device::Close),
      InstanceMethod("watch", &Device::Watch),
  });
}

// new Device(cmId): the id must be bound to a device (after ADDR_RESOLVED, or a request's id).
Device::Device(const Napi::CallbackInfo& info)
    : Napi::ObjectWrap<Device>(info), Tracked(info.Env().GetInstanceData<AddonData>()) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) { ThrowType(env, "Device(cmId)"); return; }
  CmId* id = CmId::Unwrap(info[0].As<Napi::Object>());
  if (env.IsExceptionPending()) return;
  if (!id || !id->id() || !id->id()->verbs) { ThrowRdma(env, "NO_DEVICE", "rdma_cm_id.verbs", ENODEV, "the id is not bound to an RDMA device"); return; }
  ibv_context* verbs = id->id()->verbs;
  if (ibv_query_device(verbs, &attr_) != 0) { ThrowRdma(env, "QUERY_DEVICE", "ibv_query_device", errno); return; }
  ibv_pd* pd = ibv_alloc_pd(verbs);
  if (!pd) { ThrowRdma(env, "ALLOC_PD", "ibv_alloc_pd", errno); return; }
  verbs_ = verbs;
  pd_ = pd;
}

Device::~Device() { Release(); }

void Device::Release() {
  StopWatching();
  DeallocPd();
}

// Deallocates the PD now, or once the registrations running on the thread pool are done.
void Device::DeallocPd() {
  if (!pd_) return;
  if (pendingRegs_ > 0) { closeDeferred_ = true; return; }
  // EBUSY here means a QP or MR of this PD is still open: Tracked order prevents that at teardown.
  if (ibv_dealloc_pd(pd_) == 0) pd_ = nullptr;
  closeDeferred_ = false;
}

void Device::RegistrationDone() {
  if (pendingRegs_ > 0) pendingRegs_--;
  if (closeDeferred_ && pendingRegs_ == 0) DeallocPd();
}

Napi::Value Device::Close(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  StopWatching();
  if (pd_ && pendingRegs_ > 0) { closeDeferred_ = true; return env.Undefined(); }  // done by the last job
  if (pd_) {
    int r = ibv_dealloc_pd(pd_);
    if (r != 0) return ThrowRdma(env, "DEALLOC_PD", "ibv_dealloc_pd", r, "close its queue pairs and memory regions first");
    pd_ = nullptr;
  }
  return env.Undefined();
}

// Asynchronous events (verbs async_fd, non-blocking, uv_poll): read and acked on the loop, then
// handed to every Device of this thread on that verbs context. The async fd belongs to the verbs
// context, which librdmacm shares across threads: another thread watching the same device takes
// the events it reads (a port event then reaches that thread's connections only).
struct AsyncWatch {
  uv_poll_t poll;
  ibv_context* verbs = nullptr;
  AddonData* data = nullptr;
  std::vector<Device*> devices;
};

static void OnAsyncEvents(uv_poll_t* h, int status, int) {
  auto* w = static_cast<AsyncWatch*>(h->data);
  if (!w || status < 0) return;
  // Bounded per wakeup like completions: the rest raises the fd again.
  for (int k = 0; k < 64 && !w->devices.empty(); k++) {
    ibv_async_event ev;
    if (ibv_get_async_event(w->verbs, &ev) != 0) return;  // EAGAIN: nothing more
    uint32_t qpNum = 0, port = 0;
    switch (ev.event_type) {
      case IBV_EVENT_QP_FATAL: case IBV_EVENT_QP_REQ_ERR: case IBV_EVENT_QP_ACCESS_ERR:
      case IBV_EVENT_COMM_EST: case IBV_EVENT_SQ_DRAINED: case IBV_EVENT_PATH_MIG:
      case IBV_EVENT_PATH_MIG_ERR: case IBV_EVENT_QP_LAST_WQE_REACHED:
        qpNum = ev.element.qp ? ev.element.qp->qp_num : 0;
        break;
      case IBV_EVENT_PORT_ACTIVE: case IBV_EVENT_PORT_ERR: case IBV_EVENT_LID_CHANGE:
      case IBV_EVENT_PKEY_CHANGE: case IBV_EVENT_SM_CHANGE: case IBV_EVENT_CLIENT_REREGISTER:
      case IBV_EVENT_GID_CHANGE:
        port = static_cast<uint32_t>(ev.element.port_num);
        break;
      default:
        break;
    }
    int type = static_cast<int>(ev.event_type);
    const char* name = ibv_event_type_str(ev.event_type);
    ibv_ack_async_event(&ev);  // before JS runs: a QP destroyed in a callback waits for its acks
    std::vector<Device*> to = w->devices;  // a callback may close devices
    for (Device* d : to) {
      bool still = false;
      for (Device* x : w->devices) still = still || x == d;
      if (still) d->Dispatch(type, name, qpNum, port);
    }
  }
}

// watch(onAsync(type, name, qpNum, port)): qpNum for QP events, port for port events (0
// otherwise). One callback per Device; close() stops it.
Napi::Value Device::Watch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsFunction()) return ThrowType(env, "watch(onAsync)");
  if (!verbs_ || !pd_) return ThrowRdma(env, "CLOSED", "ibv_get_async_event", EBADF, "the device is closed");
  if (watch_) return ThrowRdma(env, "BUSY", "ibv_get_async_event", EBUSY, "already watched");
  auto it = data_->asyncWatches.find(verbs_);
  AsyncWatch* w = it == data_->asyncWatches.end() ? nullptr : it->second;
  if (!w) {
    int fl = fcntl(verbs_->async_fd, F_GETFL);
    if (fl < 0 || fcntl(verbs_->async_fd, F_SETFL, fl | O_NONBLOCK) < 0) return ThrowRdma(env, "ASYNC_EVENTS", "fcntl", errno);
    w = new AsyncWatch;
    w->verbs = verbs_;
    w->data = data_;
    int r = uv_poll_init(data_->loop, &w->poll, verbs_->async_fd);
    if (r != 0) { delete w; return ThrowRdma(env, "ASYNC_EVENTS", "uv_poll_init", -r); }
    w->poll.data = w;
    r = uv_poll_start(&w->poll, UV_READABLE, OnAsyncEvents);
    if (r != 0) {
      uv_close(reinterpret_cast<uv_handle_t*>(&w->poll), [](uv_handle_t* h) { delete static_cast<AsyncWatch*>(h->data); });
      return ThrowRdma(env, "ASYNC_EVENTS", "uv_poll_start", -r);
    }
    data_->asyncWatches[verbs_] = w;
  }
  w->devices.push_back(this);
  watch_ = w;
  onAsync_ = Napi::Persistent(info[0].As<Napi::Function>());
  asyncCtx_ = new Napi::AsyncContext(env, "nexio:rdma_async");
  return env.Undefined();
}

void Device::StopWatching() {
  AsyncWatch* w = watch_;
  watch_ = nullptr;
  if (w) {
    for (size_t i = 0; i < w->devices.size(); i++) {
      if (w->devices[i] == this) { w->devices.erase(w->devices.begin() + static_cast<long>(i)); break; }
    }
    if (w->devices.empty()) {
      w->data->asyncWatches.erase(w->verbs);
      uv_close(reinterpret_cast<uv_handle_t*>(&w->poll), [](uv_handle_t* h) { delete static_cast<AsyncWatch*>(h->data); });
    }
  }
  onAsync_.Reset();
  delete asyncCtx_;
  asyncCtx_ = nullptr;
}

void Device::Dispatch(int type, const char* name, uint32_t qpNum, uint32_t port) {
  if (onAsync_.IsEmpty()) return;
  Napi::Env env = Env();
  Napi::HandleScope scope(env);
  CallFromLoop(env, onAsync_, asyncCtx_, {Napi::Number::New(env, type), Napi::String::New(env, name),
                                         Napi::Number::New(env, qpNum), Napi::Number::New(env, port)});
}

Napi::Value Device::Query(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!verbs_) return ThrowRdma(env, "CLOSED", "ibv_query_device", EBADF);
  Napi::Object o = Napi::Object::New(env);
  o.Set("name", Napi::String::New(env, ibv_get_device_name(verbs_->device)));
  o.Set("maxQpWr", Napi::Number::New(env, attr_.max_qp_wr));
  o.Set("maxSge", Napi::Number::New(env, attr_.max_sge));
  o.Set("maxCqe", Napi::Number::New(env, attr_.max_cqe));
  o.Set("maxMrSize", Napi::Number::New(env, static_cast<double>(attr_.max_mr_size)));
  o.Set("maxQpRdAtom", Napi::Number::New(env, attr_.max_qp_rd_atom));
  o.Set("maxQpInitRdAtom", Napi::Number::New(env, attr_.max_qp_init_rd_atom));
  o.Set("fwVer", Napi::String::New(env, attr_.fw_ver));
  ibv_port_attr pa;
  if (ibv_query_port(verbs_, 1, &pa) == 0) {
    o.Set("portState", Napi::String::New(env, ibv_port_state_str(pa.state)));
    o.Set("activeMtu", Napi::Number::New(env, 128 << pa.active_mtu));
    o.Set("linkLayer", Napi::String::New(env, pa.link_layer == IBV_LINK_LAYER_ETHERNET ? "ethernet" : "infiniband"));
  }
  return o;
}

// register(arrayBuffer, remoteAccess: boolean | 'read') -> MemoryRegion
Napi::Value Device::Register(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsArrayBuffer()) return ThrowType(env, "register(arrayBuffer[, remoteAccess])");
  Napi::Value remote = info.Length() < 2 ? Napi::Boolean::New(env, true)
                       : info[1].IsString() ? info[1] : Napi::Boolean::New(env, info[1].ToBoolean().Value());
  if (!pd()) return ThrowRdma(env, "CLOSED", "ibv_reg_mr", EBADF, "the device is closed");
  Napi::Object mr = env.GetInstanceData<AddonData>()->memoryRegionCtor.New({Value(), info[0], remote});
  if (env.IsExceptionPending()) return env.Undefined();
  return mr;
}

int AccessFlags(Napi::Value remote) {
  int access = IBV_ACCESS_LOCAL_WRITE;
  if (remote.IsString() && remote.As<Napi::String>().Utf8Value() == "read") access |= IBV_ACCESS_REMOTE_READ;  // rendezvous sources
  else if (remote.ToBoolean().Value()) access |= IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ;
  return access;
}

// ibv_reg_mr on the libuv thread pool. It pins and maps every page of the buffer: on the JS thread
// a first-time rendezvous source would stall the event loop for as long (native/README.md, the
// measurements). The job holds the ArrayBuffer and the Device (whose PD stays allocated until the
// job is done, see Device::DeallocPd); the callback gets (err, MemoryRegion).
class RegisterJob : public Napi::AsyncWorker {
 public:
  RegisterJob(Napi::Function cb, Device* dev, Napi::Object devObj, Napi::ArrayBuffer ab, Napi::Value remote)
      : Napi::AsyncWorker(cb, "nexio:rdma_reg_mr"), dev_(dev), pd_(dev->jobPd()),
        addr_(ab.Data()), len_(ab.ByteLength()), access_(AccessFlags(remote)) {
    devObj_ = Napi::Persistent(devObj);
    ab_ = Napi::Persistent(ab);
    remoteWasRead_ = remote.IsString();
    remoteFlag_ = remote.ToBoolean().Value();
  }
  void Execute() override {
    mr_ = ibv_reg_mr(pd_, addr_, len_, access_);
    if (!mr_) err_ = errno;
  }
  void OnOK() override {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    bool closed = dev_->jobPd() == nullptr;  // closed (or closing) while registering
    if (mr_ && closed) { ibv_dereg_mr(mr_); mr_ = nullptr; }
    dev_->RegistrationDone();
    if (!mr_) {
      Napi::Error e = closed ? RdmaError(env, "CLOSED", "ibv_reg_mr", EBADF, "the device closed while registering")
                             : RdmaError(env, "REG_MR", "ibv_reg_mr", err_, std::to_string(len_) + " bytes");
      Callback().Call({e.Value()});
      return;
    }
    // the MemoryRegion adopts mr_ (it deregisters it if it cannot be made)
    Napi::Value remote = remoteWasRead_ ? Napi::String::New(env, "read").As<Napi::Value>() : Napi::Boolean::New(env, remoteFlag_);
    Napi::Object mr = env.GetInstanceData<AddonData>()->memoryRegionCtor.New(
        {devObj_.Value(), ab_.Value(), remote, Napi::External<ibv_mr*>::New(env, &mr_)});
    if (mr_) { ibv_dereg_mr(mr_); mr_ = nullptr; }  // the constructor never ran (env going away)
    if (env.IsExceptionPending() || mr.IsEmpty()) {
      if (env.IsExceptionPending()) Callback().Call({env.GetAndClearPendingException().Value()});
      return;
    }
    Callback().Call({env.Null(), mr});
  }

 private:
  Device* dev_;
  ibv_pd* pd_;
  void* addr_;
  size_t len_;
  int access_;
  ibv_mr* mr_ = nullptr;
  int err_ = 0;
  bool remoteWasRead_ = false, remoteFlag_ = false;
  Napi::ObjectReference devObj_;
  Napi::Reference<Napi::ArrayBuffer> ab_;
};

// registerAsync(arrayBuffer, remoteAccess, callback(err, MemoryRegion)): the registration runs on
// the libuv thread pool; the callback comes on the loop.
Napi::Value Device::RegisterAsync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsArrayBuffer() || !info[2].IsFunction())
    return ThrowType(env, "registerAsync(arrayBuffer, remoteAccess, callback)");
  if (!pd()) return ThrowRdma(env, "CLOSED", "ibv_reg_mr", EBADF, "the device is closed");
  Napi::ArrayBuffer ab = info[0].As<Napi::ArrayBuffer>();
  if (ab.ByteLength() == 0) return ThrowType(env, "registerAsync: empty buffer");
  Napi::Value remote = info[1].IsString() ? info[1] : Napi::Boolean::New(env, info[1].ToBoolean().Value());
  auto* job = new RegisterJob(info[2].As<Napi::Function>(), this, Value(), ab, remote);
  pendingRegs_++;
  job->Queue();
  return env.Undefined();
}

// ---------------------------------------------------------------- MemoryRegion

Napi::Function MemoryRegion::Init(Napi::Env env, AddonData* data) {
  Napi::Function f = DefineClass(env, "MemoryRegion", {InstanceMethod("deregister", &MemoryRegion::Deregister)});
  data->memoryRegionCtor = Napi::Persistent(f);
  return f;
}

// new MemoryRegion(device, arrayBuffer, remoteAccess: bool | 'read'[, External<ibv_mr*>]); sets addr
// (bigint), length, lkey, rkey. With the External it adopts a registration made on the thread pool
// (RegisterJob): it takes the ibv_mr out of the slot (nulls it), and deregisters it if the object
// cannot be made.
MemoryRegion::MemoryRegion(const Napi::CallbackInfo& info)
    : Napi::ObjectWrap<MemoryRegion>(info), Tracked(info.Env().GetInstanceData<AddonData>()) {
  Napi::Env env = info.Env();
  ibv_mr* adopt = nullptr;
  if (info.Length() > 3 && info[3].IsExternal()) {
    ibv_mr** slot = info[3].As<Napi::External<ibv_mr*>>().Data();
    adopt = *slot;
    *slot = nullptr;
  }
  auto fail = [&]() { if (adopt) ibv_dereg_mr(adopt); };
  if (info.Length() < 3 || !info[0].IsObject() || !info[1].IsArrayBuffer()) { fail(); ThrowType(env, "MemoryRegion(device, arrayBuffer, remoteAccess)"); return; }
  Device* dev = Device::Unwrap(info[0].As<Napi::Object>());
  if (env.IsExceptionPending()) { fail(); return; }
  if (!dev || !dev->pd()) { fail(); ThrowRdma(env, "CLOSED", "ibv_reg_mr", EBADF, "the device is closed"); return; }
  Napi::ArrayBuffer ab = info[1].As<Napi::ArrayBuffer>();
  if (ab.ByteLength() == 0) { fail(); ThrowType(env, "register: empty buffer"); return; }
  ibv_mr* mr = adopt ? adopt : ibv_reg_mr(dev->pd(), ab.Data(), ab.ByteLength(), AccessFlags(info[2]));
  if (!mr) { ThrowRdma(env, "REG_MR", "ibv_reg_mr", errno, std::to_string(ab.ByteLength()) + " bytes"); return; }
  mr_ = mr;
  buffer_ = Napi::Persistent(ab);
  device_ = Napi::Persistent(info[0].As<Napi::Object>());
  Napi::Object self = info.This().As<Napi::Object>();
  self.Set("addr", Napi::BigInt::New(env, static_cast<uint64_t>(reinterpret_cast<uintptr_t>(mr->addr))));
  self.Set("length", Napi::Number::New(env, static_cast<double>(mr->length)));
  self.Set("lkey", Napi::Number::New(env, mr->lkey));
  self.Set("rkey", Napi::Number::New(env, mr->rkey));
}

MemoryRegion::~MemoryRegion() { Release(); }

void MemoryRegion::Release() {
  if (mr_ && ibv_dereg_mr(mr_) == 0) {
    mr_ = nullptr;
    buffer_.Reset();
    device_.Reset();
  }
}

Napi::Value MemoryRegion::Deregister(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (mr_) {
    int r = ibv_dereg_mr(mr_);
    if (r != 0) return ThrowRdma(env, "DEREG_MR", "ibv_dereg_mr", r);
    mr_ = nullptr;
    buffer_.Reset();
    device_.Reset();
  }
  return env.Undefined();
}

}  // namespace nexio
