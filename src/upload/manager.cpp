#include "upload/upload.hpp"

namespace sg::upload {

// Skeleton: the real manager follows.
std::unique_ptr<Manager> make_manager(const ManagerOptions&, std::unique_ptr<Storage>, Observer) {
  return nullptr;
}

Result<std::unique_ptr<Storage>> make_local_storage(const std::string&, std::chrono::seconds) {
  return ErrorCode(UploadError::kStorage);
}

}  // namespace sg::upload
