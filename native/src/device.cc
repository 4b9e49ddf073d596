// Device: the protection domain of one verbs context (rxe0, mlx5_0, ...), and MemoryRegion:
// an ibv_mr over a whole ArrayBuffer (the JS side caches them per ArrayBuffer).
#include "rdma.h"

#include <cerrno>

namespace nexio {

Napi::Function Device::Init(Napi::Env env, AddonData*) {
  return DefineClass(env, "Device", {
      InstanceMethod("register", &Device::Register),
      InstanceMethod("query", &Device::Query),
      InstanceMethod("close", &Device::Close),
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
  if (pd_) {
    // EBUSY here means a QP or MR of this PD is still open: Tracked order prevents that at teardown.
    if (ibv_dealloc_pd(pd_) == 0) pd_ = nullptr;
  }
}

Napi::Value Device::Close(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (pd_) {
    int r = ibv_dealloc_pd(pd_);
    if (r != 0) return ThrowRdma(env, "DEALLOC_PD", "ibv_dealloc_pd", r, "close its queue pairs and memory regions first");
    pd_ = nullptr;
  }
  return env.Undefined();
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
  if (!pd_) return ThrowRdma(env, "CLOSED", "ibv_reg_mr", EBADF, "the device is closed");
  Napi::Object mr = env.GetInstanceData<AddonData>()->memoryRegionCtor.New({Value(), info[0], remote});
  if (env.IsExceptionPending()) return env.Undefined();
  return mr;
}

// ---------------------------------------------------------------- MemoryRegion

Napi::Function MemoryRegion::Init(Napi::Env env, AddonData* data) {
  Napi::Function f = DefineClass(env, "MemoryRegion", {InstanceMethod("deregister", &MemoryRegion::Deregister)});
  data->memoryRegionCtor = Napi::Persistent(f);
  return f;
}

// new MemoryRegion(device, arrayBuffer, remoteAccess: bool | 'read'); sets addr (bigint), length, lkey, rkey
MemoryRegion::MemoryRegion(const Napi::CallbackInfo& info)
    : Napi::ObjectWrap<MemoryRegion>(info), Tracked(info.Env().GetInstanceData<AddonData>()) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsObject() || !info[1].IsArrayBuffer()) { ThrowType(env, "MemoryRegion(device, arrayBuffer, remoteAccess)"); return; }
  Device* dev = Device::Unwrap(info[0].As<Napi::Object>());
  if (env.IsExceptionPending()) return;
  if (!dev || !dev->pd()) { ThrowRdma(env, "CLOSED", "ibv_reg_mr", EBADF, "the device is closed"); return; }
  Napi::ArrayBuffer ab = info[1].As<Napi::ArrayBuffer>();
  if (ab.ByteLength() == 0) { ThrowType(env, "register: empty buffer"); return; }
  int access = IBV_ACCESS_LOCAL_WRITE;
  if (info[2].IsString() && info[2].As<Napi::String>().Utf8Value() == "read") access |= IBV_ACCESS_REMOTE_READ;  // rendezvous sources
  else if (info[2].ToBoolean().Value()) access |= IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ;
  ibv_mr* mr = ibv_reg_mr(dev->pd(), ab.Data(), ab.ByteLength(), access);
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
