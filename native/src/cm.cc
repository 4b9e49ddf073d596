// rdma_cm: the event channel (delivered to the event loop through its fd and uv_poll) and ids.
// The connection state machine (resolve addr -> route -> create QP -> connect, the retry of a
// connect that the server refused because it was not listening yet) lives in JS (native/index.js).
#include "rdma.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <cerrno>
#include <cstring>

namespace nexio {

// ---------------------------------------------------------------- CmChannel

Napi::Function CmChannel::Init(Napi::Env env, AddonData*) {
  return DefineClass(env, "CmChannel", {InstanceMethod("close", &CmChannel::Close)});
}

// new CmChannel(onEvent(cmId, event, status, privateData?, child?, info?))
CmChannel::CmChannel(const Napi::CallbackInfo& info)
    : Napi::ObjectWrap<CmChannel>(info), Tracked(info.Env().GetInstanceData<AddonData>()) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsFunction()) { ThrowType(env, "CmChannel(onEvent): onEvent must be a function"); return; }
  ch_ = rdma_create_event_channel();
  if (!ch_) { ThrowRdma(env, "CM_CHANNEL", "rdma_create_event_channel", errno, "is rdma_ucm loaded and /dev/infiniband/rdma_cm present?"); return; }
  int fl = fcntl(ch_->fd, F_GETFL);
  if (fl < 0 || fcntl(ch_->fd, F_SETFL, fl | O_NONBLOCK) < 0) { int e = errno; Release(); ThrowRdma(env, "CM_CHANNEL", "fcntl", e); return; }
  poll_ = new uv_poll_t;
  int r = uv_poll_init(data_->loop, poll_, ch_->fd);
  if (r != 0) { delete poll_; poll_ = nullptr; Release(); ThrowRdma(env, "CM_CHANNEL", "uv_poll_init", -r); return; }
  poll_->data = this;
  r = uv_poll_start(poll_, UV_READABLE, OnPoll);
  if (r != 0) { Release(); ThrowRdma(env, "CM_CHANNEL", "uv_poll_start", -r); return; }
  onEvent_ = Napi::Persistent(info[0].As<Napi::Function>());
  async_ = new Napi::AsyncContext(env, "nexio:rdma_cm");
  Ref();  // alive while the channel can deliver events
}

CmChannel::~CmChannel() { Release(); }

void CmChannel::Release() {
  // the ids first, newest first (each detaches itself): destroying the channel under an open
  // id would leave rdma_destroy_id writing to a freed channel's fd
  while (!ids_.empty()) ids_.back()->Release();
  if (poll_) {
    poll_->data = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(poll_), [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
    poll_ = nullptr;
  }
  if (ch_) {
    rdma_destroy_event_channel(ch_);
    ch_ = nullptr;
    onEvent_.Reset();
    delete async_;
    async_ = nullptr;
    Unref();
  }
}

Napi::Value CmChannel::Close(const Napi::CallbackInfo& info) {
  Release();
  return info.Env().Undefined();
}

void CmChannel::OnPoll(uv_poll_t* h, int status, int) {
  auto* self = static_cast<CmChannel*>(h->data);
  if (!self) return;
  if (status < 0) return;  // the fd stays valid; the next readable event retries
  self->Drain();
}

void CmChannel::Drain() {
  Napi::Env env = Env();
  while (ch_) {
    rdma_cm_event* ev = nullptr;
    if (rdma_get_cm_event(ch_, &ev) != 0) {
      int e = errno;
      if (e != EAGAIN && e != EWOULDBLOCK) {
        Napi::HandleScope scope(env);
        CallFromLoop(env, onEvent_, async_, {env.Null(), Napi::Number::New(env, -1), Napi::Number::New(env, -e),
                                            env.Undefined(), env.Undefined(),
                                            RdmaError(env, "CM_EVENT", "rdma_get_cm_event", e).Value()});
      }
      return;
    }
    Napi::HandleScope scope(env);
    // Copy all we need out of the event, then ack it at once (rdma_destroy_id waits for acks).
    rdma_cm_event_type type = ev->event;
    int st = ev->status;
    Napi::Value pdata = env.Undefined();
    const rdma_conn_param& cp = ev->param.conn;
    if (cp.private_data && cp.private_data_len > 0)
      pdata = Napi::Buffer<uint8_t>::Copy(env, static_cast<const uint8_t*>(cp.private_data), cp.private_data_len);
    Napi::Value target = env.Null(), child = env.Undefined();
    Napi::Object extra = Napi::Object::New(env);
    extra.Set("name", Napi::String::New(env, rdma_event_str(type)));
    if (type == RDMA_CM_EVENT_CONNECT_REQUEST) {
      auto* listener = static_cast<CmId*>(ev->listen_id->context);
      if (listener) target = listener->Value();
      // Adopt the new id: the wrapper owns it from here (rejected or not, JS closes it).
      Napi::Object obj = data_->cmIdCtor.New({Value(), Napi::External<rdma_cm_id>::New(env, ev->id)});
      if (env.IsExceptionPending() || obj.IsEmpty()) {
        // The event is freed by its ack: take the id first. Reject before the ack,
        // destroy after it (rdma_destroy_id waits until every event of the id is acked).
        rdma_cm_id* nid = ev->id;
        rdma_reject(nid, nullptr, 0);
        rdma_ack_cm_event(ev);
        rdma_destroy_id(nid);
        Napi::Error e = env.GetAndClearPendingException();
        napi_fatal_exception(env, e.Value());
        continue;
      }
      CmId* c = CmId::Unwrap(obj);
      c->reqInitiatorDepth = cp.initiator_depth;
      c->reqResponderResources = cp.responder_resources;
      extra.Set("initiatorDepth", Napi::Number::New(env, cp.initiator_depth));
      extra.Set("responderResources", Napi::Number::New(env, cp.responder_resources));
      child = obj;
    } else {
      auto* id = static_cast<CmId*>(ev->id->context);
      if (id) target = id->Value();
    }
    rdma_ack_cm_event(ev);
    if (target.IsNull()) continue;  // the id was closed: nobody to tell
    CallFromLoop(env, onEvent_, async_, {target, Napi::Number::New(env, type), Napi::Number::New(env, st), pdata, child, extra});
  }
}

// ---------------------------------------------------------------- CmId

Napi::Function CmId::Init(Napi::Env env, AddonData* data) {
  Napi::Function f = DefineClass(env, "CmId", {
      InstanceMethod("listen", &CmId::Listen),
      InstanceMethod("resolveAddr", &CmId::ResolveAddr),
      InstanceMethod("resolveRoute", &CmId::ResolveRoute),
      InstanceMethod("connect", &CmId::Connect),
      InstanceMethod("accept", &CmId::Accept),
      InstanceMethod("reject", &CmId::Reject),
      InstanceMethod("disconnect", &CmId::Disconnect),
      InstanceMethod("close", &CmId::Close),
      InstanceMethod("deviceName", &CmId::DeviceName),
      InstanceMethod("addresses", &CmId::Addresses),
  });
  data->cmIdCtor = Napi::Persistent(f);
  return f;
}

// new CmId(channel) creates an id; new CmId(channel, External<rdma_cm_id>) adopts one (CONNECT_REQUEST).
CmId::CmId(const Napi::CallbackInfo& info)
    : Napi::ObjectWrap<CmId>(info), Tracked(info.Env().GetInstanceData<AddonData>()) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) { ThrowType(env, "CmId(channel): channel must be a CmChannel"); return; }
  Napi::Object chObj = info[0].As<Napi::Object>();
  CmChannel* ch = CmChannel::Unwrap(chObj);
  if (env.IsExceptionPending()) return;
  if (!ch || !ch->channel()) { ThrowRdma(env, "CLOSED", "rdma_create_id", EBADF, "the event channel is closed"); return; }
  if (info.Length() > 1 && info[1].IsExternal()) {
    if (data_->faultAdopt > 0) {  // test only: fail before the id is taken (the caller still owns it)
      data_->faultAdopt--;
      ThrowRdma(env, "TEST_FAULT", "CmId", EIO, "test-only fault NEXIO_RDMA_TEST_FAULT=adopt");
      return;
    }
    id_ = info[1].As<Napi::External<rdma_cm_id>>().Data();
    id_->context = this;
  } else if (rdma_create_id(ch->channel(), &id_, this, RDMA_PS_TCP) != 0) {
    id_ = nullptr;
    ThrowRdma(env, "CREATE_ID", "rdma_create_id", errno);
    return;
  }
  channel_ = Napi::Persistent(chObj);
  ch_ = ch;
  chPos_ = ch->Attach(this);
  Ref();  // alive while the id can receive events
}

CmId::~CmId() { Release(); }

void CmId::Release() {
  if (qp_) qp_->Release();  // the QP must go first (it calls DetachQp)
  if (id_) {
    id_->context = nullptr;
    rdma_destroy_id(id_);
    id_ = nullptr;
    if (ch_) { ch_->Detach(chPos_); ch_ = nullptr; }
    channel_.Reset();
    Unref();
  }
}

#define NEED_ID(env, call)                                                                   \
  if (!id_) return ThrowRdma(env, "CLOSED", call, EBADF, "the rdma_cm id is closed")

// listen(host, port, backlog) -> bound port
Napi::Value CmId::Listen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  NEED_ID(env, "rdma_listen");
  if (info.Length() < 2 || !info[0].IsString() || !info[1].IsNumber()) return ThrowType(env, "listen(host, port[, backlog])");
  std::string host = info[0].As<Napi::String>().Utf8Value();
  int port = info[1].As<Napi::Number>().Int32Value();
  int backlog = info.Length() > 2 && info[2].IsNumber() ? info[2].As<Napi::Number>().Int32Value() : 128;
  sockaddr_storage ss;
  if (!ParseAddress(host, port, &ss)) return ThrowType(env, "listen: '" + host + "' is not a numeric IPv4/IPv6 address or the port is out of range");
  if (rdma_bind_addr(id_, reinterpret_cast<sockaddr*>(&ss)) != 0)
    return ThrowRdma(env, "LISTEN", "rdma_bind_addr", errno, host + ":" + std::to_string(port));
  if (rdma_listen(id_, backlog) != 0) return ThrowRdma(env, "LISTEN", "rdma_listen", errno, host + ":" + std::to_string(port));
  return Napi::Number::New(env, ntohs(rdma_get_src_port(id_)));
}

// resolveAddr(host, port, timeoutMs): ADDR_RESOLVED or ADDR_ERROR follows
Napi::Value CmId::ResolveAddr(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  NEED_ID(env, "rdma_resolve_addr");
  if (info.Length() < 3 || !info[0].IsString() || !info[1].IsNumber() || !info[2].IsNumber())
    return ThrowType(env, "resolveAddr(host, port, timeoutMs)");
  std::string host = info[0].As<Napi::String>().Utf8Value();
  int port = info[1].As<Napi::Number>().Int32Value();
  sockaddr_storage ss;
  if (!ParseAddress(host, port, &ss)) return ThrowType(env, "connect: '" + host + "' is not a numeric IPv4/IPv6 address or the port is out of range");
  if (rdma_resolve_addr(id_, nullptr, reinterpret_cast<sockaddr*>(&ss), info[2].As<Napi::Number>().Int32Value()) != 0)
    return ThrowRdma(env, "RESOLVE_ADDR", "rdma_resolve_addr", errno, host + ":" + std::to_string(port));
  return env.Undefined();
}

Napi::Value CmId::ResolveRoute(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  NEED_ID(env, "rdma_resolve_route");
  int tmo = info.Length() > 0 && info[0].IsNumber() ? info[0].As<Napi::Number>().Int32Value() : 2000;
  if (rdma_resolve_route(id_, tmo) != 0) return ThrowRdma(env, "RESOLVE_ROUTE", "rdma_resolve_route", errno);
  return env.Undefined();
}

// Fills conn param from (privateData?, {responderResources, initiatorDepth, retryCount, rnrRetryCount}?).
bool CmId::ConnParam(const Napi::CallbackInfo& info, rdma_conn_param* p, const char* what) {
  Napi::Env env = info.Env();
  memset(p, 0, sizeof *p);
  pdata_.clear();
  if (info.Length() > 0 && !info[0].IsUndefined() && !info[0].IsNull()) {
    if (!info[0].IsTypedArray()) { ThrowType(env, std::string(what) + ": privateData must be a Buffer/Uint8Array"); return false; }
    Napi::Uint8Array b = info[0].As<Napi::Uint8Array>();
    pdata_.assign(b.Data(), b.Data() + b.ByteLength());
    if (pdata_.size() > 255) { ThrowType(env, std::string(what) + ": privateData too long"); return false; }
    p->private_data = pdata_.data();
    p->private_data_len = static_cast<uint8_t>(pdata_.size());
  }
  p->retry_count = 7;
  p->rnr_retry_count = 7;  // 7 = retry forever on receiver-not-ready
  if (info.Length() > 1 && info[1].IsObject()) {
    Napi::Object o = info[1].As<Napi::Object>();
    auto u8 = [&](const char* k, uint8_t* dst) {
      Napi::Value v = o.Get(k);
      if (v.IsNumber()) *dst = static_cast<uint8_t>(v.As<Napi::Number>().Uint32Value());
    };
    u8("responderResources", &p->responder_resources);
    u8("initiatorDepth", &p->initiator_depth);
    u8("retryCount", &p->retry_count);
    u8("rnrRetryCount", &p->rnr_retry_count);
  }
  return !env.IsExceptionPending();
}

// connect(privateData?, params?): ESTABLISHED, REJECTED, UNREACHABLE or CONNECT_ERROR follows
Napi::Value CmId::Connect(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  NEED_ID(env, "rdma_connect");
  rdma_conn_param p;
  if (!ConnParam(info, &p, "connect")) return env.Undefined();
  if (rdma_connect(id_, &p) != 0) return ThrowRdma(env, "CONNECT", "rdma_connect", errno);
  return env.Undefined();
}

Napi::Value CmId::Accept(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  NEED_ID(env, "rdma_accept");
  rdma_conn_param p;
  if (!ConnParam(info, &p, "accept")) return env.Undefined();
  // never promise more RDMA READs than the requester can take or asked to issue
  if (p.responder_resources > reqInitiatorDepth) p.responder_resources = reqInitiatorDepth;
  if (p.initiator_depth > reqResponderResources) p.initiator_depth = reqResponderResources;
  if (rdma_accept(id_, &p) != 0) return ThrowRdma(env, "ACCEPT", "rdma_accept", errno);
  return env.Undefined();
}

Napi::Value CmId::Reject(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  NEED_ID(env, "rdma_reject");
  rdma_conn_param p;
  if (!ConnParam(info, &p, "reject")) return env.Undefined();
  if (rdma_reject(id_, p.private_data, p.private_data_len) != 0) return ThrowRdma(env, "REJECT", "rdma_reject", errno);
  return env.Undefined();
}

Napi::Value CmId::Disconnect(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  NEED_ID(env, "rdma_disconnect");
  if (rdma_disconnect(id_) != 0) return ThrowRdma(env, "DISCONNECT", "rdma_disconnect", errno);
  return env.Undefined();
}

Napi::Value CmId::Close(const Napi::CallbackInfo& info) {
  Release();
  return info.Env().Undefined();
}

Napi::Value CmId::DeviceName(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!id_ || !id_->verbs) return env.Null();
  return Napi::String::New(env, ibv_get_device_name(id_->verbs->device));
}

static Napi::Value AddrToJs(Napi::Env env, const sockaddr* sa) {
  char buf[INET6_ADDRSTRLEN] = {0};
  if (sa->sa_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(sa)->sin_addr, buf, sizeof buf);
  } else if (sa->sa_family == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr, buf, sizeof buf);
  } else {
    return env.Null();
  }
  return Napi::String::New(env, buf);
}

Napi::Value CmId::Addresses(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  NEED_ID(env, "rdma_get_local_addr");
  Napi::Object o = Napi::Object::New(env);
  o.Set("localAddress", AddrToJs(env, rdma_get_local_addr(id_)));
  o.Set("localPort", Napi::Number::New(env, ntohs(rdma_get_src_port(id_))));
  o.Set("remoteAddress", AddrToJs(env, rdma_get_peer_addr(id_)));
  o.Set("remotePort", Napi::Number::New(env, ntohs(rdma_get_dst_port(id_))));
  return o;
}

}  // namespace nexio
