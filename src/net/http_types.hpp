// Plain HTTP request/response values, so routing and the API handlers don't depend on Beast.
// The HTTP session fills a Request from what it parsed and writes back a Response; handlers
// answer through a Reply, from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <new>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace sg::net {

struct HttpRequest {
  std::string_view method;
  std::string_view target;  // path and query as sent
  std::string_view path;
  std::string_view query;  // after '?', undecoded
  std::string_view body;
  // The headers streamgate reads; empty when absent.
  std::string_view authorization;
  std::string_view origin;
  bool has_origin = false;
  std::string_view upgrade;
  std::string_view connection;
  std::string_view ws_key;
  std::string_view ws_version;
  // Any other header by name (case-insensitive); empty when absent. Valid while the request is.
  std::function<std::string_view(std::string_view)> header;
  std::optional<std::uint64_t> content_length;  // nullopt: none sent (or chunked)
};

struct HttpResponse {
  unsigned status = 200;
  std::string reason;  // the reason phrase, for a status HTTP does not name (tus's 460)
  std::string body;
  // A literal (or other text that outlives the response): the default is the answer of almost
  // every request, and as a std::string it took an allocation per answer (16 bytes, one over
  // libstdc++'s inline capacity).
  std::string_view content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;
  bool close = false;  // close the connection after this response
};

// Takes a request's answer. May be called from any thread (a broker answers from its own); the
// HTTP session moves the answer back onto its worker. Used like std::function<void(HttpResponse)>
// (copyable; calling an empty one throws std::bad_function_call), but a callable of up to
// kInlineBytes that moves without throwing is kept in place: libstdc++'s std::function keeps
// only trivially copyable callables of 16 bytes, so the session's (a shared_ptr to itself) cost
// every request an allocation. Larger callables go to the heap, as std::function's do.
class Reply {
 public:
  static constexpr std::size_t kInlineBytes = 32;

  Reply() noexcept = default;
  Reply(std::nullptr_t) noexcept {}  // implicit, as std::function's
  template <class F>
  requires(!std::is_same_v<std::remove_cvref_t<F>, Reply> &&
           std::is_invocable_v<std::remove_cvref_t<F>&, HttpResponse>)
      Reply(F&& f) {  // implicit, as std::function's
    using Fn = std::remove_cvref_t<F>;
    if constexpr (kInline<Fn>) {
      ::new (static_cast<void*>(storage_)) Fn(std::forward<F>(f));
    } else {
      ::new (static_cast<void*>(storage_)) Fn*(new Fn(std::forward<F>(f)));
    }
    ops_ = &kOps<Fn>;
  }
  Reply(const Reply& other) : ops_(other.ops_) {
    if (ops_ != nullptr) ops_->copy(other.storage_, storage_);
  }
  Reply(Reply&& other) noexcept : ops_(std::exchange(other.ops_, nullptr)) {
    if (ops_ != nullptr) ops_->move(other.storage_, storage_);
  }
  Reply& operator=(const Reply& other) {
    if (this != &other) *this = Reply(other);
    return *this;
  }
  Reply& operator=(Reply&& other) noexcept {
    if (this == &other) return *this;
    reset();
    ops_ = std::exchange(other.ops_, nullptr);
    if (ops_ != nullptr) ops_->move(other.storage_, storage_);
    return *this;
  }
  Reply& operator=(std::nullptr_t) noexcept {
    reset();
    return *this;
  }
  ~Reply() { reset(); }

  void operator()(HttpResponse r) const {
    if (ops_ == nullptr) throw std::bad_function_call();
    ops_->call(storage_, std::move(r));
  }
  explicit operator bool() const noexcept { return ops_ != nullptr; }

 private:
  struct Ops {
    void (*call)(void* self, HttpResponse&& r);
    void (*copy)(const void* from, void* to);
    void (*move)(void* from, void* to) noexcept;  // leaves `from` destroyed
    void (*destroy)(void* self) noexcept;
  };
  template <class Fn>
  static constexpr bool kInline =
      sizeof(Fn) <= kInlineBytes &&
      alignof(Fn) <= alignof(std::max_align_t) && std::is_nothrow_move_constructible_v<Fn>;
  template <class Fn>
  static Fn& target(void* p) {
    if constexpr (kInline<Fn>) {
      return *std::launder(static_cast<Fn*>(p));
    } else {
      return **std::launder(static_cast<Fn**>(p));
    }
  }
  template <class Fn>
  static constexpr Ops kOps = {
      [](void* self, HttpResponse&& r) { target<Fn>(self)(std::move(r)); },
      [](const void* from, void* to) {
        const Fn& f = target<Fn>(const_cast<void*>(from));
        if constexpr (kInline<Fn>) {
          ::new (to) Fn(f);
        } else {
          ::new (to) Fn*(new Fn(f));
        }
      },
      [](void* from, void* to) noexcept {
        if constexpr (kInline<Fn>) {
          ::new (to) Fn(std::move(target<Fn>(from)));
          target<Fn>(from).~Fn();
        } else {
          ::new (to) Fn*(*std::launder(static_cast<Fn**>(from)));
        }
      },
      [](void* self) noexcept {
        if constexpr (kInline<Fn>) {
          target<Fn>(self).~Fn();
        } else {
          delete &target<Fn>(self);
        }
      },
  };

  void reset() noexcept {
    if (ops_ != nullptr) std::exchange(ops_, nullptr)->destroy(storage_);
  }

  alignas(std::max_align_t) mutable unsigned char storage_[kInlineBytes];
  const Ops* ops_ = nullptr;
};

// What an answer's Connection field says: nothing (HTTP/1.1 connections persist by default),
// `close`, or `keep-alive` for an HTTP/1.0 client that asked to keep the connection: such a
// client (ApacheBench's -k, for one) takes an answer without it as the server closing, and waits
// for that close (RFC 9112 §9.3, Appendix C.2.2).
enum class Persistence { kDefault, kClose, kKeepAlive };

// Appends `r` as HTTP/1.1 bytes, byte for byte what Beast's serializer writes for it (Server,
// Content-Type, Cache-Control: no-store, the Connection field of `persistence`, Content-Length),
// and returns true; for a response that needs Beast's field rules (extra headers, a reason phrase,
// a status outside 200-599 or 204, a content type with a line break) returns false and leaves
// `out` alone. The common answer skips Beast's field list and serializer, most of the CPU of
// answering a publish.
bool append_plain_response(const HttpResponse& r, Persistence persistence, std::string& out);

// {"error":code,"message":message} with the given status.
HttpResponse json_error(unsigned status, std::string_view code, std::string_view message);
// 400 {"error":code,"message":message,"field":field}: a request refused over one of its fields
// (a body field or a query parameter); without "field" when `field` is empty.
HttpResponse json_field_error(std::string_view code, std::string_view message,
                              std::string_view field);
// A 200 with `body` as its JSON.
HttpResponse json_ok(std::string body);

// A query parameter, percent-decoded; empty when absent or undecodable. The first one named
// `name` wins.
std::string query_param(std::string_view query, std::string_view name);

}  // namespace sg::net
