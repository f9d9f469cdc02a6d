// The uploadBytesPerDay check both upload paths (the upload socket and tus) make when an upload
// is created: with a shared store (Redis), against the cluster's count of the org's UTC day;
// otherwise, or while the store does not answer, against this node's (tenancy::Quotas).
#pragma once

#include "node/context.hpp"
#include "tenancy/tenancy.hpp"

#include <cstdint>
#include <functional>
#include <string>

namespace sg::uploads {

// Where reserve_upload_bytes counted the bytes, for giving them back.
struct UploadReservation {
  bool shared = false;   // in the store, else in this node's Quotas
  std::int64_t day = 0;  // the UTC day counted (days since the epoch)
};

// Counts `bytes` against org's uploadBytesPerDay. `done` runs once, on the caller's thread when
// the store is not asked, else on the broker's thread: allowed, or refused with the seconds to
// midnight UTC (nothing counted then). Never throws.
void reserve_upload_bytes(node::Context& ctx, const std::string& org, std::uint64_t bytes,
                          std::function<void(tenancy::Decision, UploadReservation)> done);

// Gives back a reservation whose upload was then not created. Any thread.
void return_upload_bytes(node::Context& ctx, const std::string& org, std::uint64_t bytes,
                         const UploadReservation& reservation);

}  // namespace sg::uploads
