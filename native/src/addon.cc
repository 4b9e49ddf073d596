// Module init, per-env data, error mapping and the helpers every object shares.
#include "rdma.h"

#include <arpa/inet.h>
#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace nexio {

Tracked::Tracked(AddonData* data) : data_(data) { pos_ = data_->live.insert(data_->live.end(), this); }

Tracked::~Tracked() {
  data_->live.erase(pos_);
  if (data_->finalized && data_->live.empty()) delete data_;
}

void AddonData::ReleaseAll() {
  // newest first: a QueuePair before its CmId and Device, a MemoryRegion before its Device
  for (auto it = live.rbegin(); it != live.rend(); ++it) (*it)->Release();
}

Napi::Error RdmaError(Napi::Env env, const char* what, const char* call, int err, const std::string& detail) {
  std::string msg = std::string(call) + " failed";
  if (err) msg += std::string(": ") + strerror(err);
  if (!detail.empty()) msg += " (" + detail + ")";
  Napi::Error e = Napi::Error::New(env, msg);
  e.Set("code", Napi::String::New(env, std::string("NEXIO_ERR_RDMA_") + what));
  e.Set("errno", Napi::Number::New(env, err));
  e.Set("syscall", Napi::String::New(env, call));
  return e;
}

Napi::Value ThrowRdma(Napi::Env env, const char* what, const char* call, int err, const std::string& detail) {
  RdmaError(env, what, call, err, detail).ThrowAsJavaScriptException();
  return env.Undefined();
}

Napi::Value ThrowType(Napi::Env env, const std::string& message) {
  Napi::TypeError e = Napi::TypeError::New(env, message);
  e.Set("code", Napi::String::New(env, "NEXIO_ERR_RDMA_INVALID_ARG"));
  e.ThrowAsJavaScriptException();
  return env.Undefined();
}

void CallFromLoop(Napi::Env env, Napi::FunctionReference& fn, Napi::AsyncContext* ctx,
                  const std::vector<napi_value>& args) {
  napi_value recv;  // napi_make_callback needs an object receiver (undefined throws a TypeError)
  if (napi_get_global(env, &recv) != napi_ok) return;
  napi_value result;
  napi_status s = napi_make_callback(env, *ctx, recv, fn.Value(), args.size(), args.data(), &result);
  if (s != napi_ok) {
    bool pending = false;
    if (napi_is_exception_pending(env, &pending) == napi_ok && pending) {
      napi_value err;
      if (napi_get_and_clear_last_exception(env, &err) == napi_ok) napi_fatal_exception(env, err);
    }
  }
}

bool GetU64(Napi::Value v, uint64_t* out) {
  if (v.IsBigInt()) {
    bool lossless = false;
    *out = v.As<Napi::BigInt>().Uint64Value(&lossless);
    return lossless;
  }
  if (v.IsNumber()) {
    double d = v.As<Napi::Number>().DoubleValue();
    if (d < 0 || d > 9007199254740991.0) return false;
    *out = static_cast<uint64_t>(d);
    return true;
  }
  return false;
}

bool ParseAddress(const std::string& host, int port, sockaddr_storage* ss) {
  memset(ss, 0, sizeof *ss);
  if (port < 0 || port > 65535) return false;
  auto* in4 = reinterpret_cast<sockaddr_in*>(ss);
  auto* in6 = reinterpret_cast<sockaddr_in6*>(ss);
  if (inet_pton(AF_INET, host.c_str(), &in4->sin_addr) == 1) {
    in4->sin_family = AF_INET;
    in4->sin_port = htons(static_cast<uint16_t>(port));
    return true;
  }
  if (inet_pton(AF_INET6, host.c_str(), &in6->sin6_addr) == 1) {
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(static_cast<uint16_t>(port));
    return true;
  }
  return false;
}

static void CleanupHook(void* arg) { static_cast<AddonData*>(arg)->ReleaseAll(); }

static void FinalizeData(napi_env, void* arg, void*) {
  auto* data = static_cast<AddonData*>(arg);
  data->ReleaseAll();
  data->cmIdCtor.Reset();
  data->memoryRegionCtor.Reset();
  data->finalized = true;
  if (data->live.empty()) delete data;  // otherwise the last ~Tracked deletes it
}

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  auto* data = new AddonData();
  if (napi_get_uv_event_loop(env, &data->loop) != napi_ok || !data->loop) {
    delete data;
    ThrowRdma(env, "INIT", "napi_get_uv_event_loop", 0);
    return exports;
  }
  if (napi_set_instance_data(env, data, FinalizeData, nullptr) != napi_ok) {
    delete data;
    ThrowRdma(env, "INIT", "napi_set_instance_data", 0);
    return exports;
  }
  // Test-only fault injection, read once: never set it outside tests (native/README.md).
  if (const char* f = getenv("NEXIO_RDMA_TEST_FAULT")) {
    if (strncmp(f, "adopt:", 6) == 0) data->faultAdopt = static_cast<uint32_t>(strtoul(f + 6, nullptr, 10));
  }
  // Runs at env teardown (process exit, worker exit) before finalizers: closes what is open.
  if (napi_add_env_cleanup_hook(env, CleanupHook, data) != napi_ok) {
    ThrowRdma(env, "INIT", "napi_add_env_cleanup_hook", 0);
    return exports;
  }
  exports.Set("CmChannel", CmChannel::Init(env, data));
  exports.Set("CmId", CmId::Init(env, data));
  exports.Set("Device", Device::Init(env, data));
  exports.Set("MemoryRegion", MemoryRegion::Init(env, data));
  exports.Set("QueuePair", QueuePair::Init(env, data));
  Napi::Object ev = Napi::Object::New(env);
#define EV(name) ev.Set(#name, Napi::Number::New(env, RDMA_CM_EVENT_##name))
  EV(ADDR_RESOLVED); EV(ADDR_ERROR); EV(ROUTE_RESOLVED); EV(ROUTE_ERROR); EV(CONNECT_REQUEST);
  EV(CONNECT_RESPONSE); EV(CONNECT_ERROR); EV(UNREACHABLE); EV(REJECTED); EV(ESTABLISHED);
  EV(DISCONNECTED); EV(DEVICE_REMOVAL); EV(MULTICAST_JOIN); EV(MULTICAST_ERROR);
  EV(ADDR_CHANGE); EV(TIMEWAIT_EXIT);
#undef EV
  exports.Set("cmEvents", ev);
  Napi::Object kinds = Napi::Object::New(env);
  kinds.Set("RECV", Napi::Number::New(env, QueuePair::kRecv));
  kinds.Set("SEND", Napi::Number::New(env, QueuePair::kSend));
  kinds.Set("WRITE", Napi::Number::New(env, QueuePair::kWrite));
  kinds.Set("READ", Napi::Number::New(env, QueuePair::kRead));
  exports.Set("completionKinds", kinds);
  exports.Set("NAPI_VERSION", Napi::Number::New(env, NAPI_VERSION));
  exports.Set("buildId", Napi::String::New(env, __DATE__ " " __TIME__));
  return exports;
}

}  // namespace nexio

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) { return nexio::Init(env, exports); }
NODE_API_MODULE(nexio_rdma, InitModule)
