// Local-disk Storage: an unfinished upload is <dir>/.partial/<id> with its state record
// <dir>/.partial/<id>.info; a complete one is <dir>/<id> with <dir>/<id>.info.
#include "upload/upload.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <optional>
#include <set>
#include <vector>

namespace sg::upload {

namespace {

namespace fs = std::filesystem;

constexpr std::string_view kStateSuffix = ".info";
constexpr std::string_view kTmpSuffix = ".tmp";
// A record is a few hundred bytes plus at most 8 KiB of metadata (hex doubles it).
constexpr std::size_t kMaxStateBytes = 64 * 1024;

ErrorCode last_errno() {
  return ErrorCode(errno, boost::system::generic_category());
}

class FileWriter final : public StorageWriter {
 public:
  explicit FileWriter(int fd) : fd_(fd) {}
  ~FileWriter() override { ::close(fd_); }
  FileWriter(const FileWriter&) = delete;
  FileWriter& operator=(const FileWriter&) = delete;

  Result<void> append(std::string_view bytes) override { return write_all(fd_, bytes); }

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

  Result<std::uint64_t> size() override {
    struct stat st {};
    if (::fstat(fd_, &st) != 0) return last_errno();
    return static_cast<std::uint64_t>(st.st_size);
  }

  Result<void> sync() override {
    if (::fdatasync(fd_) != 0) return last_errno();
    return {};
  }

  static Result<void> write_all(int fd, std::string_view bytes) {
    while (!bytes.empty()) {
      const ssize_t n = ::write(fd, bytes.data(), bytes.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        return last_errno();
      }
      bytes.remove_prefix(static_cast<std::size_t>(n));
    }
    return {};
  }

 private:
  int fd_;
};

// The rename is only durable once the directory entry is: fsync the directory too.
Result<void> sync_directory(const fs::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return last_errno();
  const int rc = ::fsync(fd);
  const ErrorCode ec = rc != 0 ? last_errno() : ErrorCode();
  ::close(fd);
  if (ec) return ec;
  return {};
}

// Replaces `path` by `text` so that a crash leaves either the old or the new text, never a mix:
// written to <path>.tmp, synced, renamed over. The caller syncs the directory.
Result<void> write_atomically(const fs::path& path, std::string_view text) {
  const fs::path tmp = fs::path(path) += kTmpSuffix;
  const int fd = ::open(tmp.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0600);
  if (fd < 0) return last_errno();
  auto r = FileWriter::write_all(fd, text);
  if (r && ::fdatasync(fd) != 0) r = last_errno();
  ::close(fd);
  if (r && ::rename(tmp.c_str(), path.c_str()) != 0) r = last_errno();
  if (!r) ::unlink(tmp.c_str());
  return r;
}

// nullopt when it can't be read or is larger than any record the Manager writes.
std::optional<std::string> read_small_file(const fs::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  std::string out;
  char buf[4096];
  bool ok = true;
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) ok = false;
    if (n <= 0) break;
    out.append(buf, static_cast<std::size_t>(n));
    if (out.size() > kMaxStateBytes) {
      ok = false;
      break;
    }
  }
  ::close(fd);
  if (!ok) return std::nullopt;
  return out;
}

bool present(const fs::path& p) {
  struct stat st {};
  return ::lstat(p.c_str(), &st) == 0;
}

// The names that belong to upload `id` under a directory: its data, its record, their temps.
std::string strip_suffixes(std::string name) {
  for (std::string_view suffix : {kTmpSuffix, kStateSuffix}) {
    if (name.size() > suffix.size() && name.ends_with(suffix)) {
      name.resize(name.size() - suffix.size());
    }
  }
  return name;
}

class LocalStorage final : public Storage {
 public:
  LocalStorage(fs::path dir, fs::path partial)
      : dir_(std::move(dir)), partial_(std::move(partial)) {}

  Result<std::unique_ptr<StorageWriter>> begin(std::string_view id) override {
    return open_file(id, O_CREAT | O_TRUNC);
  }

  Result<std::unique_ptr<StorageWriter>> open(std::string_view id) override {
    return open_file(id, 0);
  }

  Result<void> save_state(std::string_view id, std::string_view state) override {
    if (auto r = write_atomically(state_path(partial_, id), state); !r) return r;
    return sync_directory(partial_);
  }

  Result<void> commit(std::string_view id, std::string_view name, std::string_view state) override {
    // The complete record first: a crash before the rename leaves a record that load() finds
    // with its data still in .partial, and finishes the move (the data was synced and checked).
    if (auto r = write_atomically(state_path(dir_, name), state); !r) return r;
    const fs::path from = partial_ / std::string(id);
    const fs::path to = dir_ / std::string(name);
    if (::rename(from.c_str(), to.c_str()) != 0) {
      const ErrorCode ec = last_errno();
      ::unlink(state_path(dir_, name).c_str());
      return ec;
    }
    ::unlink(state_path(partial_, id).c_str());
    if (auto r = sync_directory(dir_); !r) return r;
    return sync_directory(partial_);
  }

  void remove(std::string_view id) override {
    for (const fs::path& p : names_of(partial_, id)) ::unlink(p.c_str());
  }

  Result<void> remove_committed(std::string_view name) override {
    const fs::path path = dir_ / std::string(name);
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) return last_errno();
    forget_committed(name);
    return sync_directory(dir_);
  }

  void forget_committed(std::string_view name) override {
    ::unlink(state_path(dir_, name).c_str());
  }

  std::vector<StoredUpload> load() override {
    std::vector<StoredUpload> out;
    std::set<std::string> committed;
    for (const auto& name : state_names(dir_)) {
      const fs::path final_path = dir_ / name;
      if (!present(final_path)) {
        // Crashed between writing the complete record and the rename: finish the move.
        const fs::path data = partial_ / name;
        if (!present(data) || ::rename(data.c_str(), final_path.c_str()) != 0) {
          forget_committed(name);
          continue;
        }
      }
      auto text = read_small_file(state_path(dir_, name));
      if (!text) continue;
      committed.insert(name);
      out.push_back(StoredUpload{name, std::move(*text), true});
    }
    for (const auto& id : state_names(partial_)) {
      if (committed.contains(id)) {
        remove(id);  // committed already; only the unfinished record was left behind
        continue;
      }
      auto text = read_small_file(state_path(partial_, id));
      if (!text) continue;
      out.push_back(StoredUpload{id, std::move(*text), false});
    }
    sync_directory(dir_);
    sync_directory(partial_);
    return out;
  }

  std::vector<std::string> temporaries() override {
    std::set<std::string> ids;
    std::error_code ec;
    for (fs::directory_iterator it(partial_, ec), end; !ec && it != end; it.increment(ec)) {
      ids.insert(strip_suffixes(it->path().filename().string()));
    }
    return {ids.begin(), ids.end()};
  }

  std::string describe(std::string_view name) const override {
    return (dir_ / std::string(name)).string();
  }

 private:
  static fs::path state_path(const fs::path& dir, std::string_view id) {
    return dir / (std::string(id) + std::string(kStateSuffix));
  }

  static std::vector<fs::path> names_of(const fs::path& dir, std::string_view id) {
    const fs::path state = state_path(dir, id);
    return {dir / std::string(id), state, fs::path(state) += kTmpSuffix};
  }

  // Ids with a record in `dir`; temps of records whose write was interrupted are removed.
  std::vector<std::string> state_names(const fs::path& dir) {
    std::vector<std::string> out;
    std::error_code ec;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
      const std::string name = it->path().filename().string();
      if (name.ends_with(std::string(kStateSuffix) + std::string(kTmpSuffix))) {
        ::unlink(it->path().c_str());
      } else if (name.size() > kStateSuffix.size() && name.ends_with(kStateSuffix)) {
        out.push_back(name.substr(0, name.size() - kStateSuffix.size()));
      }
    }
    return out;
  }

  Result<std::unique_ptr<StorageWriter>> open_file(std::string_view id, int extra) {
    const fs::path path = partial_ / std::string(id);
    // O_APPEND: after a truncate the next write lands at the new end without a seek.
    const int fd = ::open(path.c_str(), extra | O_RDWR | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) return last_errno();
    return std::unique_ptr<StorageWriter>(new FileWriter(fd));
  }

  fs::path dir_;
  fs::path partial_;
};

}  // namespace

Result<std::unique_ptr<Storage>> make_local_storage(const std::string& dir) {
  std::error_code ec;
  const fs::path root = fs::absolute(fs::path(dir), ec);
  if (ec) return ErrorCode(ec.value(), boost::system::generic_category());
  const fs::path partial = root / ".partial";
  fs::create_directories(partial, ec);
  if (ec) return ErrorCode(ec.value(), boost::system::generic_category());
  if (!fs::is_directory(partial, ec)) return ErrorCode(ENOTDIR, boost::system::generic_category());
  return std::unique_ptr<Storage>(new LocalStorage(root, partial));
}

}  // namespace sg::upload
