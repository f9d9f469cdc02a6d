#include "uploads/upload_quota.hpp"

#include "core/core.hpp"

#include <algorithm>
#include <chrono>

namespace sg::uploads {
namespace {

std::int64_t unix_seconds(tenancy::Quotas::WallClock::time_point t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

std::int64_t utc_day(tenancy::Quotas::WallClock::time_point t) {
  const std::int64_t secs = unix_seconds(t);
  return secs >= 0 ? secs / 86400 : (secs - 86399) / 86400;
}

}  // namespace

void reserve_upload_bytes(node::Context& ctx, const std::string& org, std::uint64_t bytes,
                          std::function<void(tenancy::Decision, UploadReservation)> done) {
  const auto now = core::WallClock::now();
  UploadReservation local{false, utc_day(now)};
  broker::SharedStore* store = ctx.broker.shared_store();
  const std::uint64_t quota = ctx.quotas->limit(org, tenancy::Quota::kUploadBytesPerDay);
  if (store == nullptr || quota == 0) {
    return done(ctx.quotas->take_upload_bytes(org, bytes, now), local);
  }
  if (bytes > quota) {
    // Never fits, whatever the others did: no need to ask the store.
    return done(tenancy::Decision{false, std::max<std::int64_t>(
                                             1, (local.day + 1) * 86400 - unix_seconds(now))},
                local);
  }
  store->add_upload_bytes(
      org, local.day, bytes, quota,
      [&ctx, org, bytes, local, done = std::move(done)](Result<bool> added) {
        if (!added) {
          // The store is away: count on this node meanwhile rather than refuse every upload.
          return done(ctx.quotas->take_upload_bytes(org, bytes, core::WallClock::now()), local);
        }
        if (!*added) {
          const auto secs = unix_seconds(core::WallClock::now());
          return done(
              tenancy::Decision{false, std::max<std::int64_t>(1, (local.day + 1) * 86400 - secs)},
              local);
        }
        UploadReservation shared = local;
        shared.shared = true;
        done(tenancy::Decision{}, shared);
      });
}

void return_upload_bytes(node::Context& ctx, const std::string& org, std::uint64_t bytes,
                         const UploadReservation& reservation) {
  broker::SharedStore* store = ctx.broker.shared_store();
  if (reservation.shared && store != nullptr) {
    store->return_upload_bytes(org, reservation.day, bytes);
    return;
  }
  ctx.quotas->return_upload_bytes(org, bytes, core::WallClock::now());
}

}  // namespace sg::uploads
