// Local-disk Storage: temporary files under <dir>/.partial, committed files under <dir>.
#include "upload/upload.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>

namespace sg::upload {

namespace {

namespace fs = std::filesystem;

ErrorCode last_errno() {
  return ErrorCode(errno, boost::system::generic_category());
}

class FileWriter final : public StorageWriter {
 public:
  explicit FileWriter(int fd) : fd_(fd) {}
  ~FileWriter() override { ::close(fd_); }
  FileWriter(const FileWriter&) = delete;
  FileWriter& operator=(const FileWriter&) = delete;

  Result<void> append(std::string_view bytes) override {
    while (!bytes.empty()) {
      const ssize_t n = ::write(fd_, bytes.data(), bytes.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        return last_errno();
      }
      bytes.remove_prefix(static_cast<std::size_t>(n));
    }
    return {};
  }

  Result<void> truncate(std::uint64_t size) override {
    if (::ftruncate(fd_, static_cast<off_t>(size)) != 0) return last_errno();
    return {};
  }

  Result<std::size_t> read(std::uint64_t offset, std::span<char> out) override {
    for (;;) {
      const ssize_t n = ::pread(fd_, out.data(), out.size(), static_cast<off_t>(offset));
      if (n >= 0) return static_cast<std::size_t>(n);
      if (errno != EINTR) return last_errno();
    }
  }

  Result<void> sync() override {
    if (::fsync(fd_) != 0) return last_errno();
    return {};
  }

 private:
  int fd_;
};

// The rename is only durable once the directory entry is: fsync the directory too.
void sync_directory(const fs::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

class LocalStorage final : public Storage {
 public:
  LocalStorage(fs::path dir, fs::path partial)
      : dir_(std::move(dir)), partial_(std::move(partial)) {}

  Result<std::unique_ptr<StorageWriter>> begin(std::string_view id) override {
    const fs::path path = partial_ / std::string(id);
    // O_APPEND: after a truncate the next write lands at the new end without a seek.
    const int fd = ::open(path.c_str(), O_CREAT | O_TRUNC | O_RDWR | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) return last_errno();
    return std::unique_ptr<StorageWriter>(new FileWriter(fd));
  }

  Result<void> commit(std::string_view id, std::string_view name) override {
    const fs::path from = partial_ / std::string(id);
    const fs::path to = dir_ / std::string(name);
    if (::rename(from.c_str(), to.c_str()) != 0) return last_errno();
    sync_directory(dir_);
    return {};
  }

  void remove(std::string_view id) override {
    const fs::path path = partial_ / std::string(id);
    ::unlink(path.c_str());
  }

  std::string describe(std::string_view name) const override {
    return (dir_ / std::string(name)).string();
  }

 private:
  fs::path dir_;
  fs::path partial_;
};

void remove_stale(const fs::path& partial, std::chrono::seconds stale_after) {
  std::error_code ec;
  const auto now = fs::file_time_type::clock::now();
  for (fs::directory_iterator it(partial, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code ec2;
    if (!it->is_regular_file(ec2)) continue;
    const auto mtime = it->last_write_time(ec2);
    if (!ec2 && now - mtime > stale_after) fs::remove(it->path(), ec2);
  }
}

}  // namespace

Result<std::unique_ptr<Storage>> make_local_storage(const std::string& dir,
                                                    std::chrono::seconds stale_after) {
  std::error_code ec;
  const fs::path root = fs::absolute(fs::path(dir), ec);
  if (ec) return ErrorCode(ec.value(), boost::system::generic_category());
  const fs::path partial = root / ".partial";
  fs::create_directories(partial, ec);
  if (ec) return ErrorCode(ec.value(), boost::system::generic_category());
  if (!fs::is_directory(partial, ec)) return ErrorCode(ENOTDIR, boost::system::generic_category());
  remove_stale(partial, stale_after);
  return std::unique_ptr<Storage>(new LocalStorage(root, partial));
}

}  // namespace sg::upload
