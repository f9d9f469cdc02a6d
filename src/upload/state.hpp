// upload internals: the state record kept beside an upload's data so it survives a restart
// (owner, sizes, the acknowledged offset, metadata, expected checksum, times). A small
// line-based text, every free-form string hex-encoded, ending with "end" so a cut-off record is
// recognised. Pure: no I/O; used on the manager's I/O thread.
#pragma once

#include "upload/upload.hpp"

#include <optional>
#include <string>
#include <string_view>

namespace sg::upload {

struct SavedState {
  UploadInfo info;  // id, owner, names, metadata, size, received (= the saved offset), status
                    // (uploading or complete), sha256 when complete, created/updated/expires
  std::optional<Sha256> expected;  // the declared SHA-256 the complete file must match
};

std::string serialize_state(const UploadInfo& info, const std::optional<Sha256>& expected);

// nullopt for anything not written by serialize_state (unknown version, a missing or
// malformed line, a cut-off record, received > size).
std::optional<SavedState> parse_state(std::string_view text);

}  // namespace sg::upload
